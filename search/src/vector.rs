//! The approximate-nearest-neighbour index: HNSW (hnsw_rs) over the documents' sentence embeddings.
//!
//! Derived state: the embeddings are stored in the tantivy documents (so they commit atomically with
//! the text and the positions), each with the sequence number of the batch that wrote it; this graph
//! follows them. It is saved beside the index ([`persist`]: the graph, its points and the last batch it
//! holds) and, on open, loaded and brought up to date from the index — only what was committed after
//! the save is read and inserted (see `SearchIndex::sync_vectors`). hnsw_rs cannot remove a point, so an
//! update or delete tombstones the old point and the graph is rebuilt from the live points once
//! tombstones exceed [`REBUILD_FRACTION`].
//!
//! Every point carries its tenant, type and owner; searches pass a [`Visibility`] into hnsw_rs's
//! filtered search, so invisible points are skipped *during* the graph walk and never take a slot.

mod persist;

use std::borrow::Borrow;
use std::collections::HashMap;

use hnsw_rs::filter::FilterT;
use hnsw_rs::prelude::{Distance, Hnsw};
use tracing::debug;

use crate::document::{DocType, SearchDoc};
use crate::visibility::Visibility;

pub use persist::SAVED_DIR;

/// Tombstones above this share of all points trigger a rebuild.
pub const REBUILD_FRACTION: f32 = 0.2;
const MAX_CONNECTIONS: usize = 16;
const EF_CONSTRUCTION: usize = 200;
const MAX_LAYERS: usize = 16;

/// Cosine distance between unit vectors: `1 − a·b`, clamped to `[0, 2]`. The graph holds only unit
/// vectors (every vector is normalised on the way in, queries too), so the norms hnsw_rs's
/// `DistCosine` recomputes for every pair — in f64, one element at a time — are not needed; the dot
/// product runs over 16 independent lanes, which the compiler turns into SIMD. No assertion: a
/// rounding error just clamps (hnsw_rs's `DistDot` asserts, and a panic mid-search is not an answer).
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).clamp(0.0, 2.0)
    }
}

const LANES: usize = 16;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0.0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `v` scaled to unit length (a zero vector stays zero: it is at distance 1 from everything).
fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt();
    if norm > 0.0 && (norm - 1.0).abs() > 1e-6 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// What a point stands for (its vector lives in the graph).
#[derive(Debug, Clone, PartialEq)]
struct Point {
    id: String,
    tenant_id: String,
    doc_type: DocType,
    owner_id: Option<String>,
    /// The batch that wrote the document's vector.
    seq: u64,
    alive: bool,
}

/// A hit of the ANN search: the document id and its cosine similarity to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    pub id: String,
    pub similarity: f32,
}

/// The HNSW graph with its points' metadata.
pub struct VectorIndex {
    graph: Hnsw<'static, f32, UnitCosine>,
    /// Indexed by the graph's data id.
    points: Vec<Point>,
    /// The live point of each document id.
    live: HashMap<String, usize>,
    tombstones: usize,
    /// The last batch whose vectors the graph holds (every vector of a later batch is missing).
    seq: u64,
    /// Points inserted or tombstoned since the graph was last saved or loaded.
    unsaved: usize,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("points", &self.points.len())
            .field("live", &self.live.len())
            .field("tombstones", &self.tombstones)
            .field("seq", &self.seq)
            .field("unsaved", &self.unsaved)
            .finish()
    }
}

impl Default for VectorIndex {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl VectorIndex {
    fn with_capacity(n: usize) -> Self {
        Self {
            graph: Hnsw::new(MAX_CONNECTIONS, n.max(1024), MAX_LAYERS, EF_CONSTRUCTION, UnitCosine),
            points: Vec::new(),
            live: HashMap::new(),
            tombstones: 0,
            seq: 0,
            unsaved: 0,
        }
    }

    /// A graph of `docs` (documents with the batch that wrote them and their embeddings).
    pub fn build(docs: impl IntoIterator<Item = (SearchDoc, u64, Vec<f32>)>) -> Self {
        let docs: Vec<_> = docs.into_iter().collect();
        let mut v = Self::with_capacity(docs.len());
        v.upsert_many(docs);
        v
    }

    /// Number of live documents.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The last batch whose vectors the graph holds.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Records that the graph holds every vector up to batch `seq` (never goes back).
    pub fn advance_to(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
    }

    /// Points inserted or tombstoned since the graph was last saved or loaded.
    pub fn unsaved(&self) -> usize {
        self.unsaved
    }

    /// The batch of a document's live vector.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        self.live.get(id).and_then(|at| self.points.get(*at)).map(|p| p.seq)
    }

    /// Adds or replaces a document's vector written by batch `seq` (the old point becomes a tombstone).
    pub fn upsert(&mut self, d: &SearchDoc, seq: u64, vector: Vec<f32>) {
        self.upsert_many(std::iter::once((d, seq, vector)));
    }

    /// Adds or replaces many documents' vectors (each with the batch that wrote it), in order: a later
    /// vector of the same document wins. The new points enter the graph together, on every core
    /// (hnsw_rs's parallel insertion).
    pub fn upsert_many<D: Borrow<SearchDoc>>(&mut self, docs: impl IntoIterator<Item = (D, u64, Vec<f32>)>) {
        let first = self.points.len();
        let mut vectors = Vec::new();
        for (d, seq, vector) in docs {
            let d = d.borrow();
            self.remove(&d.id);
            let at = self.points.len();
            self.points.push(Point {
                id: d.id.clone(),
                tenant_id: d.tenant_id.clone(),
                doc_type: d.doc_type,
                owner_id: d.owner_id.clone(),
                seq,
                alive: true,
            });
            self.live.insert(d.id.clone(), at);
            vectors.push(normalised(vector));
        }
        self.insert(first, &vectors);
    }

    /// Inserts `vectors`, those of the points from `first` on, into the graph.
    fn insert(&mut self, first: usize, vectors: &[Vec<f32>]) {
        let new: Vec<(&[f32], usize)> = vectors.iter().enumerate().map(|(i, v)| (v.as_slice(), first + i)).collect();
        // Into an empty graph the first point goes alone: hnsw_rs's parallel insertion races on the
        // entry point there (a point of a higher layer can be stored without becoming the entry point,
        // leaving it unlinked and above the layers its iterator walks).
        let rest = match new.split_first() {
            Some((first, rest)) if self.graph.get_nb_point() == 0 => {
                self.graph.insert_slice(*first);
                rest
            }
            _ => new.as_slice(),
        };
        match rest {
            [] => {}
            [one] => self.graph.insert_slice(*one),
            _ => self.graph.parallel_insert_slice(&rest.to_vec()),
        }
        self.unsaved += new.len();
    }

    /// Tombstones a document's point (see [`compact_if_needed`](Self::compact_if_needed)).
    pub fn remove(&mut self, id: &str) {
        if let Some(at) = self.live.remove(id) {
            if let Some(p) = self.points.get_mut(at) {
                p.alive = false;
            }
            self.tombstones += 1;
            self.unsaved += 1;
        }
    }

    /// Tombstones every point of a type.
    pub fn remove_type(&mut self, doc_type: DocType) {
        self.retain(|p| p.doc_type != doc_type);
    }

    /// Tombstones every live document for which `keep(id, seq)` is false.
    pub fn retain_docs(&mut self, mut keep: impl FnMut(&str, u64) -> bool) {
        self.retain(|p| keep(&p.id, p.seq));
    }

    fn retain(&mut self, mut keep: impl FnMut(&Point) -> bool) {
        let gone: Vec<String> = self.points.iter().filter(|p| p.alive && !keep(p)).map(|p| p.id.clone()).collect();
        for id in gone {
            self.remove(&id);
        }
    }

    /// Rebuilds the graph from the live points if tombstones exceed [`REBUILD_FRACTION`].
    pub fn compact_if_needed(&mut self) {
        if self.points.is_empty() || (self.tombstones as f32) <= REBUILD_FRACTION * self.points.len() as f32 {
            return;
        }
        debug!(points = self.points.len(), tombstones = self.tombstones, "rebuilding the HNSW graph");
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; self.points.len()];
        // Every layer, not hnsw_rs's iterator: that one stops at the entry point's layer (see `insert`).
        let indexation = self.graph.get_point_indexation();
        let layers = (0..=MAX_LAYERS).filter(|l| indexation.get_layer_nb_point(*l) > 0);
        for p in layers.flat_map(|l| indexation.get_layer_iterator(l)) {
            let at = p.get_origin_id();
            if let Some(slot) = vectors.get_mut(at).filter(|_| self.points.get(at).is_some_and(|p| p.alive)) {
                *slot = Some(p.get_v().to_vec());
            }
        }
        let mut fresh = Self::with_capacity(self.live.len());
        let mut live_vectors = Vec::with_capacity(self.live.len());
        for (p, v) in std::mem::take(&mut self.points).into_iter().zip(vectors) {
            // A live point the graph lost (it never does) is dropped rather than given a wrong vector.
            let Some(v) = v else { continue };
            fresh.live.insert(p.id.clone(), fresh.points.len());
            fresh.points.push(p);
            live_vectors.push(v);
        }
        fresh.seq = self.seq;
        fresh.insert(0, &live_vectors);
        *self = fresh;
    }

    /// Tombstones (for tests and metrics).
    pub fn tombstones(&self) -> usize {
        self.tombstones
    }

    /// The `k` visible documents nearest to `query` (a unit vector). Visibility and liveness are
    /// checked inside the graph walk.
    pub fn search(&self, query: &[f32], k: usize, visibility: &Visibility) -> Vec<VectorHit> {
        if self.live.is_empty() || k == 0 {
            return Vec::new();
        }
        let visible = |id: &usize| {
            self.points
                .get(*id)
                .is_some_and(|p| p.alive && visibility.allows(&p.tenant_id, p.doc_type, p.owner_id.as_deref()))
        };
        let filter: &dyn FilterT = &visible;
        let ef = (k * 4).max(64);
        let query = normalised(query.to_vec());
        self.graph
            .search_filter(&query, k, ef, Some(filter))
            .into_iter()
            .filter_map(|n| {
                let p = self.points.get(n.d_id)?;
                // The filter already excluded these; checked again so a filter bug cannot leak.
                (p.alive && visibility.allows(&p.tenant_id, p.doc_type, p.owner_id.as_deref()))
                    .then(|| VectorHit { id: p.id.clone(), similarity: 1.0 - n.distance })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, tenant: &str) -> SearchDoc {
        SearchDoc::new(id, DocType::Account, tenant)
    }

    fn unit(i: usize, n: usize) -> Vec<f32> {
        let a = i as f32 / n as f32 * std::f32::consts::PI;
        let mut v = vec![a.cos(), a.sin()];
        v.extend([0.0; 6]);
        v
    }

    #[test]
    fn the_distance_is_cosine_whatever_the_length_and_never_panics() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).cos()).collect();
        let cosine = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum::<f64>()
            / (a.iter().map(|x| f64::from(x * x)).sum::<f64>() * b.iter().map(|x| f64::from(x * x)).sum::<f64>())
                .sqrt();
        let d = UnitCosine.eval(&normalised(a.clone()), &normalised(b));
        assert!((f64::from(d) - (1.0 - cosine)).abs() < 1e-5, "{d} vs {}", 1.0 - cosine);
        let same = normalised(a.clone());
        assert_eq!(UnitCosine.eval(&same, &same), 0.0, "clamped, not negative");
        let scaled: Vec<f32> = a.iter().map(|x| x * 3.0).collect();
        assert!(UnitCosine.eval(&normalised(scaled), &same) < 1e-6, "length does not matter");
        assert_eq!(UnitCosine.eval(&normalised(vec![0.0; 5]), &normalised(vec![1.0; 5])), 1.0, "a zero vector");
    }

    #[test]
    fn foreign_tenants_never_take_slots_and_deletes_leave() {
        let mut v = VectorIndex::default();
        // Tenant b's points are the nearest to the query; tenant a's are further away.
        for i in 0..50 {
            v.upsert(&doc(&format!("b{i}"), "b"), 1, unit(0, 100));
            v.upsert(&doc(&format!("a{i}"), "a"), 1, unit(i + 10, 100));
        }
        let hits = v.search(&unit(0, 100), 5, &Visibility::tenant("a"));
        assert_eq!(hits.len(), 5);
        assert!(hits.iter().all(|h| h.id.starts_with('a')), "{hits:?}");
        assert_eq!(hits[0].id, "a0");

        v.remove("a0");
        let hits = v.search(&unit(0, 100), 5, &Visibility::tenant("a"));
        assert!(hits.iter().all(|h| h.id != "a0"));
        for i in 1..30 {
            v.remove(&format!("b{i}"));
        }
        v.compact_if_needed();
        assert_eq!(v.tombstones(), 0);
        assert_eq!(v.len(), 70);
        assert_eq!(v.search(&unit(0, 100), 1, &Visibility::tenant("a"))[0].id, "a1");
    }

    #[test]
    fn a_graph_built_in_parallel_finds_every_point_and_the_last_vector_wins() {
        let n = 400;
        let docs: Vec<(SearchDoc, u64, Vec<f32>)> =
            (0..n).map(|i| (doc(&format!("d{i}"), "a"), 1, unit(i, n))).collect();
        let mut v = VectorIndex::build(docs);
        assert_eq!(v.len(), n);
        for i in (0..n).step_by(37) {
            let hits = v.search(&unit(i, n), 1, &Visibility::tenant("a"));
            assert_eq!(hits[0].id, format!("d{i}"), "nearest to its own vector");
        }
        // One run holding the same document twice: the later vector is the live one.
        let d = doc("d0", "a");
        v.upsert_many([(&d, 2, unit(200, n)), (&d, 3, unit(300, n))]);
        assert_eq!(v.seq_of("d0"), Some(3));
        assert_eq!(v.len(), n);
        assert_eq!(v.tombstones(), 2);
        let hits = v.search(&unit(300, n), 2, &Visibility::tenant("a"));
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert!(ids.contains(&"d0") && ids.contains(&"d300"), "{ids:?}");
        assert!(v.search(&unit(0, n), 1, &Visibility::tenant("a"))[0].id != "d0", "the old vector is gone");
    }

    #[test]
    fn small_graphs_built_in_parallel_keep_every_point_through_a_rebuild() {
        // A few points inserted together into an empty graph, then a rebuild: many times over, since
        // hnsw_rs's parallel insertion into an empty graph races on the entry point.
        let n = 5;
        for round in 0..300 {
            let docs: Vec<(SearchDoc, u64, Vec<f32>)> =
                (0..n).map(|i| (doc(&format!("d{i}"), "a"), 1, unit(i, n))).collect();
            let mut v = VectorIndex::default();
            v.upsert_many(docs);
            v.remove("d0");
            v.remove("d1");
            v.compact_if_needed();
            assert_eq!((v.len(), v.tombstones()), (n - 2, 0), "round {round}: rebuilt without tombstones");
            for i in 2..n {
                let hits = v.search(&unit(i, n), 1, &Visibility::tenant("a"));
                assert_eq!(hits.first().map(|h| h.id.clone()), Some(format!("d{i}")), "round {round}");
            }
        }
    }
}
