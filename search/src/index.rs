//! The search index of one data directory: the tantivy index (all tenants in one index; tenant, type
//! and owner are raw fields every query filters on) plus the in-memory HNSW graph derived from the
//! embeddings stored in it.
//!
//! Writes come in [`Batch`]es. A batch is one tantivy commit whose payload is the [`Checkpoint`] —
//! the Kafka position (per topic and partition) up to which changes are in the index and the highest
//! source LSN applied — so documents and positions are durable together: after a crash the indexer
//! resumes exactly after the last committed batch, neither losing nor repeating a change.
//! An upsert is `delete_term(id)` + add; a delete is `delete_term(id)`.
//!
//! One process writes (tantivy's directory lock); others open the directory read-only and follow the
//! writer's commits (a follower checks meta.json before each search and reloads when the writer has
//! committed since; the vector graph is rebuilt from the stored embeddings when the commit changed, at
//! most every 30 s and never without an embedder — fine at demo scale, a cost to revisit for large
//! indexes: the graph is not persisted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use orbas_models::embed::Embedder;
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};
use tracing::{debug, info, instrument, warn};

use crate::document::SearchDoc;
use crate::error::{Error, Result};
use crate::schema::Fields;
use crate::vector::VectorIndex;

/// A follower rebuilds its vector graph from the stored embeddings at most this often (the graph may
/// lag the text index by that much: semantic hits are re-checked against the index, so a deleted
/// document never comes back, but a new one is found by keyword search first).
const FOLLOWER_VECTOR_REFRESH: Duration = Duration::from_secs(30);

/// Memory the writer may buffer before it flushes a segment.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;

/// Where the index is in the change stream: stored as the payload of every commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last offset applied, per `"<topic>/<partition>"`.
    pub positions: BTreeMap<String, i64>,
    /// The highest commit LSN of a change applied (0 before any).
    pub applied_lsn: i64,
}

impl Checkpoint {
    pub fn key(topic: &str, partition: i32) -> String {
        format!("{topic}/{partition}")
    }

    /// The last offset applied from a partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&Self::key(topic, partition)).copied()
    }
}

/// One change to apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Upsert(Box<SearchDoc>),
    Delete {
        id: String,
    },
    /// The table was truncated: every document of the type goes (all tenants, as the truncate did).
    Truncate {
        doc_type: crate::document::DocType,
    },
}

/// Changes applied in one commit, with the positions they bring the index to.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub changes: Vec<Change>,
    /// `(topic, partition, last offset)` of every message in the batch (tombstones and skipped
    /// messages included).
    pub positions: Vec<(String, i32, i64)>,
    /// The highest commit LSN among the batch's changes.
    pub max_lsn: Option<i64>,
}

/// Whether this process writes the index or follows another's commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Writer,
    ReadOnly,
}

/// A search index (see the module docs). Share it behind an `Arc`; all methods take `&self`.
pub struct SearchIndex {
    pub(crate) dir: PathBuf,
    pub(crate) index: Index,
    pub(crate) fields: Fields,
    pub(crate) reader: IndexReader,
    writer: Option<Mutex<IndexWriter<TantivyDocument>>>,
    /// The HNSW graph and the searcher generation it reflects.
    pub(crate) vectors: RwLock<(VectorIndex, u64)>,
    /// When the graph was last rebuilt from the stored embeddings; held while rebuilding, so
    /// concurrent searches use the current graph instead of rebuilding it again.
    rebuilt: Mutex<Option<Instant>>,
    pub(crate) embedder: Option<Arc<Embedder>>,
    checkpoint: RwLock<Checkpoint>,
    /// A follower's view of the writer's last commit: meta.json's stamp when last reloaded.
    meta_seen: Mutex<Option<MetaStamp>>,
}

/// Removes every file of an index directory (the directory itself stays).
fn clear_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(dir_err(dir))? {
        let path = entry.map_err(dir_err(dir))?.path();
        if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) }
            .map_err(dir_err(dir))?;
    }
    Ok(())
}

/// A failure on the index directory itself, as [`Error::Dir`].
fn dir_err<E: std::error::Error + Send + Sync + 'static>(dir: &Path) -> impl FnOnce(E) -> Error {
    let dir = dir.to_owned();
    move |e| Error::Dir { dir, source: Box::new(e) }
}

/// meta.json's identity (tantivy replaces the file atomically on every commit).
type MetaStamp = (std::time::SystemTime, u64, u64);

fn meta_stamp(dir: &Path) -> Option<MetaStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(dir.join("meta.json")).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.dir)
            .field("writer", &self.writer.is_some())
            .field("semantic", &self.embedder.is_some())
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index in `dir` (creating it when absent). `embedder: None` leaves semantic search
    /// unavailable and documents without embeddings.
    #[instrument(skip_all, fields(dir = %dir.display(), ?access))]
    pub fn open(dir: &Path, access: Access, embedder: Option<Arc<Embedder>>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(dir_err(dir))?;
        let mmap = MmapDirectory::open(dir).map_err(dir_err(dir))?;
        let (schema, fields) = Fields::schema();
        let ix = |what: &'static str| {
            let dir = dir.to_owned();
            move |source| Error::Index { dir, what, source }
        };
        let mut mmap = mmap;
        if Index::exists(&mmap).map_err(dir_err(dir))? {
            let existing = Index::open(mmap.clone()).map_err(ix("opening"))?;
            if existing.schema() != schema {
                // Derived data: the writer starts the index afresh (its checkpoint goes with it, so the
                // indexer re-reads the change stream from the start); a follower waits for the writer.
                if access == Access::ReadOnly {
                    return Err(Error::Outdated { dir: dir.to_owned() });
                }
                drop(existing);
                warn!("the search index has an older layout: removing it, to be rebuilt from the change stream");
                clear_dir(dir)?;
                mmap = MmapDirectory::open(dir).map_err(dir_err(dir))?;
            }
        }
        let index = Index::open_or_create(mmap, schema).map_err(ix("opening"))?;
        Fields::register_tokenizer(&index);
        // Reloaded explicitly: by the writer after each commit, by a follower before each search.
        let reader =
            index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(ix("opening a reader"))?;
        let writer = match access {
            Access::Writer => Some(Mutex::new(index.writer(WRITER_MEMORY).map_err(ix("opening the writer"))?)),
            Access::ReadOnly => None,
        };
        let this = SearchIndex {
            dir: dir.to_owned(),
            index,
            fields,
            reader,
            writer,
            vectors: RwLock::new((VectorIndex::default(), u64::MAX)),
            rebuilt: Mutex::new(None),
            embedder,
            checkpoint: RwLock::new(Checkpoint::default()),
            meta_seen: Mutex::new(None),
        };
        this.refresh()?;
        info!(docs = this.reader.searcher().num_docs(), applied_lsn = this.applied_lsn(), "search index open");
        Ok(this)
    }

    /// Whether semantic and hybrid queries can be answered.
    pub fn semantic_available(&self) -> bool {
        self.embedder.is_some()
    }

    /// The index's position in the change stream as of its last commit.
    pub fn checkpoint(&self) -> Checkpoint {
        let _ = self.refresh_if_follower();
        self.checkpoint.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// The highest source LSN whose change the index holds (0 before any).
    pub fn applied_lsn(&self) -> i64 {
        self.checkpoint().applied_lsn
    }

    /// Documents in the index (all tenants).
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub(crate) fn err(&self, what: &'static str) -> impl FnOnce(tantivy::TantivyError) -> Error {
        let dir = self.dir.clone();
        move |source| Error::Index { dir, what, source }
    }

    /// A follower reloads the checkpoint and the vector graph when the writer committed.
    fn refresh_if_follower(&self) -> Result<()> {
        if self.writer.is_some() { Ok(()) } else { self.refresh() }
    }

    /// Re-reads the checkpoint from the last commit and rebuilds the vector graph if the searcher moved.
    /// A follower reads the checkpoint *before* reloading its reader, so the checkpoint it reports is
    /// never ahead of what its searches see.
    pub(crate) fn refresh(&self) -> Result<()> {
        let current = |generation: u64| self.vectors.read().is_ok_and(|v| v.1 == generation);
        let up_to_date = current(self.reader.searcher().generation().generation_id());
        if self.writer.is_some() && up_to_date {
            return Ok(());
        }
        // A follower skips the reload while the writer has not committed since the last one (one
        // stat instead of parsing meta.json and reloading the reader on every search). The stamp is
        // taken before the commit is read, so it is never newer than what was loaded.
        let stamp = if self.writer.is_none() { meta_stamp(&self.dir) } else { None };
        if stamp.is_some() && up_to_date && self.meta_seen.lock().is_ok_and(|seen| *seen == stamp) {
            return Ok(());
        }
        let metas = self.index.load_metas().map_err(self.err("reading the commit"))?;
        let cp = match metas.payload.as_deref() {
            Some(p) if !p.is_empty() => {
                serde_json::from_str(p).map_err(|source| Error::Checkpoint { dir: self.dir.clone(), source })?
            }
            _ => Checkpoint::default(),
        };
        if self.writer.is_none() {
            self.reader.reload().map_err(self.err("reloading the reader"))?;
            if let Ok(mut seen) = self.meta_seen.lock() {
                *seen = stamp;
            }
        }
        let searcher = self.reader.searcher();
        let generation = searcher.generation().generation_id();
        let set_checkpoint = |cp| {
            if let Ok(mut c) = self.checkpoint.write() {
                *c = cp;
            }
        };
        if current(generation) {
            set_checkpoint(cp);
            return Ok(());
        }
        if self.embedder.is_none() {
            // No semantic search here: the graph would never be asked, so it is not read at all.
            if let Ok(mut v) = self.vectors.write() {
                *v = (VectorIndex::default(), generation);
            }
            set_checkpoint(cp);
            return Ok(());
        }
        // One rebuild at a time; a follower's at most every FOLLOWER_VECTOR_REFRESH (a writer's graph
        // is rebuilt only on open: afterwards `apply` keeps it current).
        let Ok(mut rebuilt) = self.rebuilt.try_lock() else {
            set_checkpoint(cp);
            return Ok(());
        };
        let recent = rebuilt.is_some_and(|at| at.elapsed() < FOLLOWER_VECTOR_REFRESH);
        if self.writer.is_none() && recent {
            set_checkpoint(cp);
            return Ok(());
        }
        *rebuilt = Some(Instant::now());
        let mut docs = Vec::new();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(64).map_err(|e| self.err("reading stored documents")(e.into()))?;
            for doc in segment.doc_ids_alive() {
                let t: TantivyDocument = store.get(doc).map_err(self.err("reading a stored document"))?;
                if let (Some(d), Some(e)) = (self.fields.doc_of(&t), self.fields.embedding_of(&t)) {
                    docs.push((d, e));
                }
            }
        }
        debug!(vectors = docs.len(), generation, "vector graph rebuilt from the index");
        let graph = VectorIndex::build(docs);
        if let Ok(mut v) = self.vectors.write() {
            *v = (graph, generation);
        }
        set_checkpoint(cp);
        Ok(())
    }

    /// Applies a batch in one commit (blocking: embedding and the commit are CPU and disk work; call
    /// from `spawn_blocking`). Changes apply in order, so the last change of a document wins.
    #[instrument(skip_all, fields(changes = batch.changes.len(), lsn = batch.max_lsn))]
    pub fn apply(&self, batch: Batch) -> Result<()> {
        let Some(writer) = &self.writer else {
            return Err(Error::ReadOnly);
        };
        let embeddings = self.embed_upserts(&batch.changes)?;
        let mut cp = self.checkpoint.read().map(|c| c.clone()).unwrap_or_default();
        for (topic, partition, offset) in &batch.positions {
            let at = cp.positions.entry(Checkpoint::key(topic, *partition)).or_insert(*offset);
            *at = (*at).max(*offset);
        }
        if let Some(lsn) = batch.max_lsn {
            cp.applied_lsn = cp.applied_lsn.max(lsn);
        }
        let payload =
            serde_json::to_string(&cp).map_err(|source| Error::Checkpoint { dir: self.dir.clone(), source })?;
        {
            let mut w = writer.lock().map_err(|_| Error::Poisoned("index writer"))?;
            for (change, embedding) in batch.changes.iter().zip(&embeddings) {
                match change {
                    Change::Upsert(d) => {
                        w.delete_term(self.fields.id_term(&d.id));
                        w.add_document(self.fields.stored(d, embedding.as_deref()))
                            .map_err(self.err("adding a document"))?;
                    }
                    Change::Delete { id } => {
                        w.delete_term(self.fields.id_term(id));
                    }
                    Change::Truncate { doc_type } => {
                        w.delete_term(tantivy::Term::from_field_text(self.fields.doc_type, doc_type.as_str()));
                    }
                }
            }
            let mut commit = w.prepare_commit().map_err(self.err("preparing a commit"))?;
            commit.set_payload(&payload);
            commit.commit().map_err(self.err("committing"))?;
        }
        self.reader.reload().map_err(self.err("reloading the reader"))?;
        let deleted = batch.changes.iter().any(|c| !matches!(c, Change::Upsert(_)));
        if deleted {
            self.purge_deleted(writer)?;
        }
        let generation = self.reader.searcher().generation().generation_id();
        if let Ok(mut v) = self.vectors.write() {
            // Runs of upserts enter the graph together (in parallel); order is kept around the rest.
            let mut run: Vec<(Box<SearchDoc>, Vec<f32>)> = Vec::new();
            for (change, embedding) in batch.changes.into_iter().zip(embeddings) {
                let other = match (change, embedding) {
                    (Change::Upsert(d), Some(e)) => {
                        run.push((d, e));
                        continue;
                    }
                    (other, _) => other,
                };
                v.0.upsert_many(run.drain(..));
                match other {
                    Change::Upsert(d) => v.0.remove(&d.id),
                    Change::Delete { id } => v.0.remove(&id),
                    Change::Truncate { doc_type } => v.0.remove_type(doc_type),
                }
            }
            v.0.upsert_many(run);
            v.0.compact_if_needed();
            v.1 = generation;
        }
        if let Ok(mut c) = self.checkpoint.write() {
            *c = cp;
        }
        Ok(())
    }

    /// Starts merging the segments that hold deleted documents (in the background), so a deleted or
    /// erased record's text leaves the index's files, not only its results.
    fn purge_deleted(&self, writer: &Mutex<IndexWriter<TantivyDocument>>) -> Result<()> {
        let ids: Vec<_> = self
            .reader
            .searcher()
            .segment_readers()
            .iter()
            .filter(|s| s.has_deletes())
            .map(|s| s.segment_id())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let mut w = writer.lock().map_err(|_| Error::Poisoned("index writer"))?;
        // The merge runs on tantivy's merge threads; a segment already being merged refuses and is
        // purged by that merge.
        drop(w.merge(&ids));
        debug!(segments = ids.len(), "merging segments with deleted documents");
        Ok(())
    }

    /// Deleted documents still in the index's segments (after reloading the reader).
    #[cfg(test)]
    fn deleted_in_segments(&self) -> u32 {
        let _ = self.reader.reload();
        self.reader.searcher().segment_readers().iter().map(|s| s.num_deleted_docs()).sum()
    }

    /// The embedding of every upsert (`None` for deletes, and for all without an embedder).
    fn embed_upserts(&self, changes: &[Change]) -> Result<Vec<Option<Vec<f32>>>> {
        let Some(embedder) = &self.embedder else { return Ok(vec![None; changes.len()]) };
        let texts: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Upsert(d) => Some(d.embedding_text()),
                Change::Delete { .. } | Change::Truncate { .. } => None,
            })
            .collect();
        let mut vectors = embedder.embed(&texts).map_err(Error::Embed)?.into_iter();
        Ok(changes
            .iter()
            .map(|c| match c {
                Change::Upsert(_) => vectors.next(),
                Change::Delete { .. } | Change::Truncate { .. } => None,
            })
            .collect())
    }

    /// Removes every document and the positions (the start of a rebuild), in one commit.
    #[instrument(skip_all)]
    pub fn clear(&self) -> Result<()> {
        let Some(writer) = &self.writer else {
            return Err(Error::ReadOnly);
        };
        {
            let mut w = writer.lock().map_err(|_| Error::Poisoned("index writer"))?;
            w.delete_all_documents().map_err(self.err("clearing"))?;
            let mut commit = w.prepare_commit().map_err(self.err("preparing a commit"))?;
            let payload = serde_json::to_string(&Checkpoint::default())
                .map_err(|source| Error::Checkpoint { dir: self.dir.clone(), source })?;
            commit.set_payload(&payload);
            commit.commit().map_err(self.err("committing"))?;
        }
        self.reader.reload().map_err(self.err("reloading the reader"))?;
        let generation = self.reader.searcher().generation().generation_id();
        if let Ok(mut v) = self.vectors.write() {
            *v = (VectorIndex::default(), generation);
        }
        if let Ok(mut c) = self.checkpoint.write() {
            *c = Checkpoint::default();
        }
        info!("search index cleared");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::document::DocType;
    use crate::hybrid::Mode;
    use crate::query::SearchRequest;
    use crate::visibility::Visibility;

    fn doc(id: &str, title: &str) -> SearchDoc {
        SearchDoc {
            id: id.into(),
            doc_type: DocType::KnowledgeArticle,
            tenant_id: "t".into(),
            title: title.into(),
            names: String::new(),
            body: String::new(),
            owner_id: None,
            stage: None,
            status: None,
            parent_id: None,
            updated_at: None,
        }
    }

    fn titles(ix: &SearchIndex, q: &str) -> Vec<String> {
        let req = SearchRequest { text: q.into(), mode: Mode::Keyword, limit: 10, types: Vec::new(), facets: true };
        ix.search(&req, &Visibility::tenant("t"))
            .map(|r| r.hits.into_iter().map(|h| h.title).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_follower_sees_the_writers_commits_and_checkpoint() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Dir { dir: PathBuf::new(), source: Box::new(e) })?;
        let writer = SearchIndex::open(dir.path(), Access::Writer, None)?;
        let follower = SearchIndex::open(dir.path(), Access::ReadOnly, None)?;
        assert!(follower.apply(Batch::default()).is_err(), "a follower cannot write");
        let batch = Batch {
            changes: vec![
                Change::Upsert(Box::new(doc("1", "Quantum billing"))),
                Change::Upsert(Box::new(doc("2", "Refunds"))),
            ],
            positions: vec![("orbas.cdc.public.knowledge_articles".into(), 0, 7)],
            max_lsn: Some(42),
        };
        writer.apply(batch)?;
        writer.apply(Batch {
            changes: vec![Change::Delete { id: "2".into() }],
            positions: Vec::new(),
            max_lsn: Some(40),
        })?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while follower.applied_lsn() < 42 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(follower.applied_lsn(), 42, "the applied LSN never goes back");
        assert_eq!(follower.checkpoint().position("orbas.cdc.public.knowledge_articles", 0), Some(7));
        assert_eq!(titles(&follower, "quantum"), ["Quantum billing"]);
        assert!(titles(&follower, "refunds").is_empty());
        let deadline = Instant::now() + Duration::from_secs(30);
        while writer.deleted_in_segments() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(writer.deleted_in_segments(), 0, "the deleted document's text left the segments");

        writer.apply(Batch {
            changes: vec![Change::Truncate { doc_type: DocType::KnowledgeArticle }],
            ..Batch::default()
        })?;
        assert_eq!(writer.num_docs(), 0);
        writer.clear()?;
        assert_eq!(writer.checkpoint(), Checkpoint::default());
        Ok(())
    }

    #[test]
    fn an_index_of_an_older_layout_is_replaced_by_the_writer_and_refused_to_a_follower() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Dir { dir: PathBuf::new(), source: Box::new(e) })?;
        let old = {
            let mut b = tantivy::schema::Schema::builder();
            let title = b.add_text_field("title", tantivy::schema::TEXT | tantivy::schema::STORED);
            (b.build(), title)
        };
        {
            let index = Index::create_in_dir(dir.path(), old.0).map_err(|source| Error::Index {
                dir: dir.path().to_owned(),
                what: "creating",
                source,
            })?;
            let mut w: IndexWriter = index.writer(15_000_000).map_err(|source| Error::Index {
                dir: dir.path().to_owned(),
                what: "writer",
                source,
            })?;
            let mut d = TantivyDocument::default();
            d.add_text(old.1, "quantum");
            w.add_document(d).and_then(|_| w.commit()).map_err(|source| Error::Index {
                dir: dir.path().to_owned(),
                what: "commit",
                source,
            })?;
        }
        let follower = SearchIndex::open(dir.path(), Access::ReadOnly, None);
        assert!(matches!(follower, Err(Error::Outdated { .. })), "{follower:?}");

        let writer = SearchIndex::open(dir.path(), Access::Writer, None)?;
        assert_eq!(writer.num_docs(), 0);
        assert_eq!(writer.checkpoint(), Checkpoint::default(), "the change stream is read again from the start");
        writer.apply(Batch {
            changes: vec![Change::Upsert(Box::new(doc("1", "Quantum billing")))],
            ..Batch::default()
        })?;
        assert_eq!(titles(&writer, "quantum"), ["Quantum billing"]);
        drop(writer);
        let follower = SearchIndex::open(dir.path(), Access::ReadOnly, None)?;
        assert_eq!(titles(&follower, "quant"), ["Quantum billing"], "completions of the last word");
        Ok(())
    }
}
