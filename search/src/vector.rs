//! The approximate-nearest-neighbour index: HNSW (hnsw_rs) over the documents' sentence embeddings.
//!
//! Derived state: the embeddings are stored in the tantivy documents (so they commit atomically with
//! the text and the positions); this graph is rebuilt from them on open and kept current in memory as
//! batches are applied. hnsw_rs cannot remove a point, so an update or delete tombstones the old point
//! and the graph is rebuilt from the live points once tombstones exceed [`REBUILD_FRACTION`].
//!
//! Every point carries its tenant, type and owner; searches pass a [`Visibility`] into hnsw_rs's
//! filtered search, so invisible points are skipped *during* the graph walk and never take a slot.

use std::borrow::Borrow;
use std::collections::HashMap;

use hnsw_rs::filter::FilterT;
use hnsw_rs::prelude::{DistCosine, Hnsw};
use tracing::debug;

use crate::document::{DocType, SearchDoc};
use crate::visibility::Visibility;

/// Tombstones above this share of all points trigger a rebuild.
pub const REBUILD_FRACTION: f32 = 0.2;
const MAX_CONNECTIONS: usize = 16;
const EF_CONSTRUCTION: usize = 200;
const MAX_LAYERS: usize = 16;

/// What a point stands for.
#[derive(Debug, Clone)]
struct Point {
    id: String,
    tenant_id: String,
    doc_type: DocType,
    owner_id: Option<String>,
    vector: Vec<f32>,
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
    graph: Hnsw<'static, f32, DistCosine>,
    points: Vec<Point>,
    /// The live point of each document id.
    live: HashMap<String, usize>,
    tombstones: usize,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("points", &self.points.len())
            .field("live", &self.live.len())
            .field("tombstones", &self.tombstones)
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
            graph: Hnsw::new(MAX_CONNECTIONS, n.max(1024), MAX_LAYERS, EF_CONSTRUCTION, DistCosine),
            points: Vec::new(),
            live: HashMap::new(),
            tombstones: 0,
        }
    }

    /// A graph of `docs` (documents with their embeddings).
    pub fn build(docs: impl IntoIterator<Item = (SearchDoc, Vec<f32>)>) -> Self {
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

    /// Adds or replaces a document's vector (the old point becomes a tombstone).
    pub fn upsert(&mut self, d: &SearchDoc, vector: Vec<f32>) {
        self.upsert_many(std::iter::once((d, vector)));
    }

    /// Adds or replaces many documents' vectors, in order (a later vector of the same document wins).
    /// The new points enter the graph together, on every core (hnsw_rs's parallel insertion).
    pub fn upsert_many<D: Borrow<SearchDoc>>(&mut self, docs: impl IntoIterator<Item = (D, Vec<f32>)>) {
        let first = self.points.len();
        for (d, vector) in docs {
            let d = d.borrow();
            self.remove(&d.id);
            let at = self.points.len();
            self.points.push(Point {
                id: d.id.clone(),
                tenant_id: d.tenant_id.clone(),
                doc_type: d.doc_type,
                owner_id: d.owner_id.clone(),
                vector,
                alive: true,
            });
            self.live.insert(d.id.clone(), at);
        }
        self.insert_points_from(first);
    }

    /// Inserts the points from `first` on into the graph.
    fn insert_points_from(&self, first: usize) {
        let new: Vec<(&[f32], usize)> =
            self.points.iter().enumerate().skip(first).map(|(at, p)| (p.vector.as_slice(), at)).collect();
        match new.as_slice() {
            [] => {}
            [one] => self.graph.insert_slice(*one),
            _ => self.graph.parallel_insert_slice(&new),
        }
    }

    /// Tombstones a document's point; rebuilds when tombstones pile up.
    pub fn remove(&mut self, id: &str) {
        if let Some(at) = self.live.remove(id) {
            if let Some(p) = self.points.get_mut(at) {
                p.alive = false;
            }
            self.tombstones += 1;
        }
    }

    /// Tombstones every point of a type.
    pub fn remove_type(&mut self, doc_type: DocType) {
        let ids: Vec<String> =
            self.points.iter().filter(|p| p.alive && p.doc_type == doc_type).map(|p| p.id.clone()).collect();
        for id in ids {
            self.remove(&id);
        }
    }

    /// Rebuilds the graph from the live points if tombstones exceed [`REBUILD_FRACTION`].
    pub fn compact_if_needed(&mut self) {
        if self.points.is_empty() || (self.tombstones as f32) <= REBUILD_FRACTION * self.points.len() as f32 {
            return;
        }
        debug!(points = self.points.len(), tombstones = self.tombstones, "rebuilding the HNSW graph");
        let live: Vec<Point> = std::mem::take(&mut self.points).into_iter().filter(|p| p.alive).collect();
        let mut fresh = Self::with_capacity(live.len());
        for p in live {
            fresh.live.insert(p.id.clone(), fresh.points.len());
            fresh.points.push(p);
        }
        fresh.insert_points_from(0);
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
        self.graph
            .search_filter(query, k, ef, Some(filter))
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
        SearchDoc {
            id: id.into(),
            doc_type: DocType::Account,
            tenant_id: tenant.into(),
            title: String::new(),
            names: String::new(),
            body: String::new(),
            owner_id: None,
            stage: None,
            status: None,
            parent_id: None,
            updated_at: None,
        }
    }

    fn unit(i: usize, n: usize) -> Vec<f32> {
        let a = i as f32 / n as f32 * std::f32::consts::PI;
        let mut v = vec![a.cos(), a.sin()];
        v.extend([0.0; 6]);
        v
    }

    #[test]
    fn foreign_tenants_never_take_slots_and_deletes_leave() {
        let mut v = VectorIndex::default();
        // Tenant b's points are the nearest to the query; tenant a's are further away.
        for i in 0..50 {
            v.upsert(&doc(&format!("b{i}"), "b"), unit(0, 100));
            v.upsert(&doc(&format!("a{i}"), "a"), unit(i + 10, 100));
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
        let docs: Vec<(SearchDoc, Vec<f32>)> = (0..n).map(|i| (doc(&format!("d{i}"), "a"), unit(i, n))).collect();
        let mut v = VectorIndex::build(docs);
        assert_eq!(v.len(), n);
        for i in (0..n).step_by(37) {
            let hits = v.search(&unit(i, n), 1, &Visibility::tenant("a"));
            assert_eq!(hits[0].id, format!("d{i}"), "nearest to its own vector");
        }
        // One run holding the same document twice: the later vector is the live one.
        let d = doc("d0", "a");
        v.upsert_many([(&d, unit(200, n)), (&d, unit(300, n))]);
        assert_eq!(v.len(), n);
        assert_eq!(v.tombstones(), 2);
        let hits = v.search(&unit(300, n), 2, &Visibility::tenant("a"));
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert!(ids.contains(&"d0") && ids.contains(&"d300"), "{ids:?}");
        assert!(v.search(&unit(0, n), 1, &Visibility::tenant("a"))[0].id != "d0", "the old vector is gone");
    }
}
