//! Saving the vector graph beside the index and loading it back.
//!
//! A save is a directory `vectors/<seq>` (`seq`, zero-padded, the last batch the graph holds) with
//! hnsw_rs's dump of the graph (`graph.hnsw.graph`, `graph.hnsw.data`) and `points.bin`: our points in
//! the graph's data-id order (document, tenant, type, owner, batch, alive) behind a header and closed
//! by a checksum. It is written under a temporary name, synced, and renamed into place, so a directory
//! with a final name is whole; a crash mid-save leaves a temporary directory the next save removes.
//! The two newest saves are kept (a follower may be loading the older one while the writer saves).
//!
//! Loading takes the newest save that reads back whole and agrees with itself (point count,
//! dimension); any other is skipped with a warning and the caller builds from the stored embeddings:
//! a save is a cache of the index, never a source of truth. hnsw_rs asserts on a malformed dump rather
//! than returning an error, so its loader runs under `catch_unwind`; and its loaded graph borrows the
//! loader, which is therefore leaked (a few hundred bytes per load, once per open).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use hnsw_rs::api::AnnT as _;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::Hnsw;
use tracing::{debug, info, warn};

use super::{Point, UnitCosine, VectorIndex};
use crate::document::DocType;

/// The directory of the saves, inside the index directory.
pub const SAVED_DIR: &str = "vectors";
const POINTS_FILE: &str = "points.bin";
const GRAPH_BASENAME: &str = "graph";
const TMP_PREFIX: &str = ".tmp-";
const MAGIC: &[u8; 8] = b"ORBVEC01";
/// Saves kept after a new one is in place.
const KEEP: usize = 2;

impl VectorIndex {
    /// Saves the graph under `root` (see the module docs) and returns the save's directory; an empty
    /// graph removes every save instead (`None`). Call [`mark_saved`](Self::mark_saved) after.
    pub fn save(&self, root: &Path, dim: usize) -> io::Result<Option<PathBuf>> {
        fs::create_dir_all(root)?;
        let saves = saves(root)?;
        for entry in fs::read_dir(root)? {
            let path = entry?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(TMP_PREFIX)) {
                fs::remove_dir_all(&path)?;
            }
        }
        if self.points.is_empty() {
            for (_, dir) in saves {
                fs::remove_dir_all(dir)?;
            }
            return Ok(None);
        }
        let tmp = root.join(format!("{TMP_PREFIX}{}-{}", self.seq, std::process::id()));
        fs::create_dir(&tmp)?;
        let basename = self.graph.file_dump(&tmp, GRAPH_BASENAME).map_err(|e| io::Error::other(e.to_string()))?;
        if basename != GRAPH_BASENAME {
            return Err(io::Error::other(format!("hnsw_rs dumped under {basename:?}, not {GRAPH_BASENAME:?}")));
        }
        let graph_files =
            graph_files(&tmp).map(|f| fs::metadata(f).map(|m| m.len())).collect::<io::Result<Vec<_>>>()?;
        let sizes = [graph_files[0], graph_files[1]];
        fs::write(tmp.join(POINTS_FILE), encode(&self.points, Header { seq: self.seq, dim, sizes }))?;
        for entry in fs::read_dir(&tmp)? {
            fs::File::open(entry?.path())?.sync_all()?;
        }
        let dir = root.join(format!("{:020}", self.seq));
        if dir.exists() {
            // The same batch saved before (the graph was compacted since): the newer save replaces it.
            fs::remove_dir_all(&dir)?;
        }
        fs::rename(&tmp, &dir)?;
        fs::File::open(root)?.sync_all()?;
        for (_, old) in saves.into_iter().filter(|(_, d)| *d != dir).skip(KEEP - 1) {
            fs::remove_dir_all(old)?;
        }
        info!(dir = %dir.display(), points = self.points.len(), live = self.live.len(), "vector graph saved");
        Ok(Some(dir))
    }

    /// Records a save that held all but the changes made after `unsaved` (the count when it began).
    pub fn mark_saved(&mut self, unsaved: usize) {
        self.unsaved = self.unsaved.saturating_sub(unsaved);
    }

    /// The newest save under `root` that loads whole, with vectors of `dim` dimensions.
    pub fn load(root: &Path, dim: usize) -> Option<(VectorIndex, PathBuf)> {
        let saves = match saves(root) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn!(dir = %root.display(), error = %e, "cannot list the saved vector graphs");
                return None;
            }
        };
        for (_, dir) in saves {
            match load_one(&dir, dim) {
                Ok(v) => {
                    info!(dir = %dir.display(), points = v.points.len(), live = v.live.len(), seq = v.seq,
                        "vector graph loaded");
                    return Some((v, dir));
                }
                Err(why) => warn!(dir = %dir.display(), %why, "skipping a saved vector graph"),
            }
        }
        None
    }
}

/// The saves under `root`, newest first.
fn saves(root: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if let Some(seq) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) {
            found.push((seq, entry.path()));
        }
    }
    found.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    Ok(found)
}

fn load_one(dir: &Path, dim: usize) -> Result<VectorIndex, String> {
    let bytes = fs::read(dir.join(POINTS_FILE)).map_err(|e| format!("{POINTS_FILE}: {e}"))?;
    let decoded = decode(&bytes)?;
    let Header { seq, dim: saved_dim, sizes } = decoded.header;
    if saved_dim != dim {
        return Err(format!("vectors of {saved_dim} dimensions, the embedder makes {dim}"));
    }
    for (f, size) in graph_files(dir).zip(sizes) {
        let found = fs::metadata(&f).map_err(|e| format!("{}: {e}", f.display()))?.len();
        if found != size {
            return Err(format!("{} has {found} bytes, {size} were saved", f.display()));
        }
    }
    let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, GRAPH_BASENAME)));
    let graph: Hnsw<'static, f32, UnitCosine> =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| io.load_hnsw_with_dist(UnitCosine)))
            .map_err(|_| "the graph files are malformed (hnsw_rs panicked reading them)".to_owned())?
            .map_err(|e| format!("the graph files: {e}"))?;
    if graph.get_nb_point() != decoded.points.len() {
        return Err(format!("the graph has {} points, {POINTS_FILE} {}", graph.get_nb_point(), decoded.points.len()));
    }
    if let Some(p) = graph.get_point_indexation().into_iter().next()
        && p.get_v().len() != dim
    {
        return Err(format!("the graph's vectors have {} dimensions, not {dim}", p.get_v().len()));
    }
    let mut live = HashMap::new();
    let mut tombstones = 0;
    for (at, p) in decoded.points.iter().enumerate() {
        if !p.alive {
            tombstones += 1;
        } else if live.insert(p.id.clone(), at).is_some() {
            return Err(format!("document {} has two live points", p.id));
        }
    }
    debug!(points = decoded.points.len(), "saved points read");
    Ok(VectorIndex { graph, points: decoded.points, live, tombstones, seq, unsaved: 0 })
}

/// hnsw_rs's two files of a save.
fn graph_files(dir: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    ["graph", "data"].into_iter().map(move |ext| dir.join(format!("{GRAPH_BASENAME}.hnsw.{ext}")))
}

/// What a save says of itself.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Header {
    /// The last batch the graph holds.
    seq: u64,
    /// The vectors' dimension.
    dim: usize,
    /// The sizes of hnsw_rs's graph and data files: a torn or swapped file is refused before hnsw_rs
    /// reads it.
    sizes: [u64; 2],
}

/// What `points.bin` holds.
#[derive(Debug, Clone, PartialEq)]
struct Decoded {
    header: Header,
    points: Vec<Point>,
}

/// FNV-1a, 64 bits: catches a torn or bit-flipped file (not an adversary).
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// `MAGIC, seq u64, dim u64, graph size u64, data size u64, count u64, count × point, checksum u64`
/// (little-endian); a point is
/// `alive u8, seq u64, id, tenant, type, owner?` with strings as `len u32, UTF-8` and `owner?` as
/// `0` or `1, string`.
fn encode(points: &[Point], header: Header) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        // Ids, tenants and types are short; a longer string could not have been indexed.
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&s.as_bytes()[..len as usize]);
    }
    let mut out = Vec::with_capacity(32 + points.len() * 96);
    out.extend_from_slice(MAGIC);
    for n in [header.seq, header.dim as u64, header.sizes[0], header.sizes[1], points.len() as u64] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    for p in points {
        out.push(u8::from(p.alive));
        out.extend_from_slice(&p.seq.to_le_bytes());
        string(&mut out, &p.id);
        string(&mut out, &p.tenant_id);
        string(&mut out, p.doc_type.as_str());
        match &p.owner_id {
            None => out.push(0),
            Some(o) => {
                out.push(1);
                string(&mut out, o);
            }
        }
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    struct Cursor<'a>(&'a [u8]);
    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            if self.0.len() < n {
                return Err("truncated".into());
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }
        fn u8(&mut self) -> Result<u8, String> {
            Ok(self.take(1)?[0])
        }
        fn u64(&mut self) -> Result<u64, String> {
            let mut b = [0; 8];
            b.copy_from_slice(self.take(8)?);
            Ok(u64::from_le_bytes(b))
        }
        fn string(&mut self) -> Result<String, String> {
            let mut b = [0; 4];
            b.copy_from_slice(self.take(4)?);
            let s = self.take(u32::from_le_bytes(b) as usize)?;
            String::from_utf8(s.to_vec()).map_err(|_| "a string is not UTF-8".to_owned())
        }
    }
    let Some((body, sum)) = bytes.split_last_chunk::<8>() else { return Err("truncated".into()) };
    if !body.starts_with(MAGIC) {
        return Err(format!("not a {POINTS_FILE} of this version"));
    }
    if checksum(body) != u64::from_le_bytes(*sum) {
        return Err("checksum mismatch (torn or damaged file)".into());
    }
    let mut c = Cursor(&body[MAGIC.len()..]);
    let seq = c.u64()?;
    let dim = usize::try_from(c.u64()?).map_err(|_| "dimension out of range".to_owned())?;
    let sizes = [c.u64()?, c.u64()?];
    let count = c.u64()?;
    // Each point takes at least 22 bytes: a count beyond that is a lie, not an allocation to attempt.
    if count > (c.0.len() / 22) as u64 {
        return Err(format!("{count} points cannot fit in {} bytes", c.0.len()));
    }
    let mut points = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let alive = match c.u8()? {
            0 => false,
            1 => true,
            b => return Err(format!("alive flag {b}")),
        };
        let seq = c.u64()?;
        let id = c.string()?;
        let tenant_id = c.string()?;
        let ty = c.string()?;
        let doc_type = DocType::parse(&ty).ok_or_else(|| format!("unknown document type {ty:?}"))?;
        let owner_id = match c.u8()? {
            0 => None,
            1 => Some(c.string()?),
            b => return Err(format!("owner flag {b}")),
        };
        points.push(Point { id, tenant_id, doc_type, owner_id, seq, alive });
    }
    if !c.0.is_empty() {
        return Err(format!("{} bytes after the last point", c.0.len()));
    }
    Ok(Decoded { header: Header { seq, dim, sizes }, points })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::document::SearchDoc;
    use crate::visibility::Visibility;

    fn point() -> impl Strategy<Value = Point> {
        (
            "[a-z0-9-]{0,40}",
            "\\PC{0,12}",
            proptest::sample::select(DocType::ALL.to_vec()),
            proptest::option::of("\\PC{0,20}"),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(|(id, tenant_id, doc_type, owner_id, seq, alive)| Point {
                id,
                tenant_id,
                doc_type,
                owner_id,
                seq,
                alive,
            })
    }

    proptest! {
        #[test]
        fn points_round_trip(points in proptest::collection::vec(point(), 0..40), seq in any::<u64>(),
            dim in 1usize..2048, sizes in any::<[u64; 2]>()) {
            let header = Header { seq, dim, sizes };
            let bytes = encode(&points, header);
            prop_assert_eq!(decode(&bytes), Ok(Decoded { header, points }));
        }

        /// A damaged file is refused with a reason, never a panic or a wrong set of points.
        #[test]
        fn damage_is_detected(points in proptest::collection::vec(point(), 1..20), at in any::<prop::sample::Index>(),
            flip in 1u8..=255, cut in any::<bool>()) {
            let mut bytes = encode(&points, Header { seq: 7, dim: 384, sizes: [1, 2] });
            let i = at.index(bytes.len());
            if cut { bytes.truncate(i) } else { bytes[i] ^= flip }
            prop_assert!(decode(&bytes).is_err());
        }
    }

    fn doc(id: &str, tenant: &str) -> SearchDoc {
        SearchDoc { owner_id: Some(format!("owner-{id}")), ..SearchDoc::new(id, DocType::Ticket, tenant) }
    }

    fn unit(i: usize, n: usize) -> Vec<f32> {
        let a = i as f32 / n as f32 * std::f32::consts::PI;
        let mut v = vec![a.cos(), a.sin()];
        v.extend([0.0; 6]);
        v
    }

    fn nearest(v: &VectorIndex, i: usize, n: usize) -> Vec<String> {
        v.search(&unit(i, n), 3, &Visibility::tenant("a")).into_iter().map(|h| h.id).collect()
    }

    #[test]
    fn a_saved_graph_loads_with_its_points_tombstones_and_batch_and_takes_new_points() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        let n = 300;
        let mut v = VectorIndex::build((0..n).map(|i| (doc(&format!("d{i}"), "a"), 1 + i as u64 / 100, unit(i, n))));
        v.remove("d10");
        v.advance_to(3);
        assert_eq!(v.unsaved(), n + 1, "insertions and the tombstone");
        let saved = v.save(root.path(), 8)?.expect("a save");
        v.mark_saved(n + 1);
        assert_eq!(saved, root.path().join("00000000000000000003"));
        assert_eq!(v.unsaved(), 0);

        let (mut loaded, from) = VectorIndex::load(root.path(), 8).expect("the save loads");
        assert_eq!(from, saved);
        assert_eq!((loaded.len(), loaded.tombstones(), loaded.seq(), loaded.unsaved()), (n - 1, 1, 3, 0));
        assert_eq!(loaded.points, v.points);
        for i in [0, 11, 150, 299] {
            assert_eq!(nearest(&loaded, i, n), nearest(&v, i, n), "the same neighbours as before the save");
        }
        assert!(!nearest(&loaded, 10, n).contains(&"d10".to_owned()), "a tombstone stays one");
        assert_eq!(loaded.seq_of("d250"), Some(3));

        // The loaded graph goes on: new and replaced points, a compaction, another save.
        let apart = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        loaded.upsert(&doc("new", "a"), 4, apart.to_vec());
        let hits = loaded.search(&apart, 1, &Visibility::tenant("a"));
        assert_eq!(hits.first().map(|h| h.id.as_str()), Some("new"));
        loaded.retain_docs(|id, _| id.trim_start_matches('d').parse::<usize>().is_ok_and(|i| i >= 100));
        loaded.compact_if_needed();
        assert_eq!(loaded.tombstones(), 0);
        assert_eq!(loaded.len(), 200);
        assert_eq!(nearest(&loaded, 150, n).first().map(String::as_str), Some("d150"));
        loaded.advance_to(4);
        loaded.save(root.path(), 8)?;
        let (again, _) = VectorIndex::load(root.path(), 8).expect("the second save loads");
        assert_eq!(again.len(), 200);
        assert_eq!(nearest(&again, 150, n).first().map(String::as_str), Some("d150"));

        // An empty graph leaves no save behind.
        VectorIndex::default().save(root.path(), 8)?;
        assert!(VectorIndex::load(root.path(), 8).is_none());
        Ok(())
    }

    #[test]
    fn a_damaged_or_foreign_save_is_skipped_for_an_older_whole_one() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        let n = 50;
        let mut v = VectorIndex::build((0..n).map(|i| (doc(&format!("d{i}"), "a"), 1, unit(i, n))));
        v.advance_to(1);
        v.save(root.path(), 8)?;
        v.upsert(&doc("x", "a"), 2, unit(3, n));
        v.advance_to(2);
        let newest = v.save(root.path(), 8)?.expect("a save");
        assert!(VectorIndex::load(root.path(), 16).is_none(), "vectors of another model are not loaded");

        // A damaged data file of the right size (hnsw_rs panics on its magic): the older save is used.
        let data = newest.join("graph.hnsw.data");
        let mut bytes = fs::read(&data)?;
        bytes[0] ^= 0xff;
        fs::write(&data, bytes)?;
        let (loaded, from) = VectorIndex::load(root.path(), 8).expect("the older save");
        assert_eq!((loaded.seq(), loaded.len()), (1, n));
        assert_ne!(from, newest);
        // A torn graph file is refused by its size, before hnsw_rs reads it.
        let graph = from.join("graph.hnsw.graph");
        let len = fs::metadata(&graph)?.len();
        fs::OpenOptions::new().write(true).open(&graph)?.set_len(len / 3)?;
        assert!(VectorIndex::load(root.path(), 8).is_none(), "no whole save left");
        assert!(VectorIndex::load(&root.path().join("absent"), 8).is_none());
        Ok(())
    }
}
