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
//! committed since).
//!
//! The vector graph follows the stored embeddings, each stamped with its batch number
//! ([`Checkpoint::seq`]): on open the newest graph saved beside the index (`vectors/`, see
//! [`crate::vector`]) is loaded and only the vectors of later batches are read from the index and
//! inserted; when the graph's live count differs from the index's (documents were deleted since), the
//! two are reconciled by document id and batch from the fast fields. The writer saves the graph when a
//! tenth of it (at least [`SAVE_AFTER`] points) is new since the last save, and when the indexer stops;
//! a follower inserts the new vectors on every reload and reconciles at most every
//! [`FOLLOWER_RECONCILE`]. Without an embedder the graph is never read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use orbas_models::embed::Embedder;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use tantivy::directory::MmapDirectory;
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument};
use tracing::{debug, info, instrument, warn};

use crate::document::SearchDoc;
use crate::error::{Error, Result};
use crate::schema::Fields;
use crate::vector::{SAVED_DIR, VectorIndex};

/// A follower compares its whole vector graph with the index (to drop the points of deleted documents)
/// at most this often; meanwhile such points may take a semantic slot, never a result (hits are
/// re-checked against the index).
pub const FOLLOWER_RECONCILE: Duration = Duration::from_secs(30);

/// The writer saves the vector graph once this many points (or a tenth of the graph, if more) were
/// inserted since its last save: a restart then reads and inserts at most that many from the index.
pub const SAVE_AFTER: usize = 2_000;

/// Memory the writer may buffer before it flushes a segment.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;

/// Where the index is in the change stream: stored as the payload of every commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last offset applied, per `"<topic>/<partition>"`.
    pub positions: BTreeMap<String, i64>,
    /// The highest commit LSN of a change applied (0 before any).
    pub applied_lsn: i64,
    /// The number of the last batch committed (it only grows, across clears too): the embeddings a
    /// batch writes carry it, so the vector graph knows what it is missing.
    #[serde(default)]
    pub seq: u64,
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
    /// When the graph was last reconciled with the index; held while the graph catches up, so
    /// concurrent searches use the current graph instead of catching up again.
    reconciled: Mutex<Option<Instant>>,
    /// Where the graph came from and how much it read from the index.
    vector_stats: Mutex<VectorStats>,
    pub(crate) embedder: Option<Arc<Embedder>>,
    checkpoint: RwLock<Checkpoint>,
    /// A follower's view of the writer's last commit: meta.json's stamp when last reloaded.
    meta_seen: Mutex<Option<MetaStamp>>,
}

/// The vector graph's provenance and size (for tests, logs and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorStats {
    /// Live points.
    pub live: usize,
    pub tombstones: usize,
    /// The last batch the graph holds.
    pub seq: u64,
    /// The save the graph was loaded from on open (`None`: built from the index).
    pub loaded_from: Option<PathBuf>,
    /// Vectors read from the index and inserted by catch-ups and reconciliations since open.
    pub read_from_index: usize,
    /// The last save this process wrote.
    pub saved: Option<PathBuf>,
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
        // The saved graph, brought up to date from the index by the first refresh.
        let saved = embedder.as_ref().and_then(|e| VectorIndex::load(&dir.join(SAVED_DIR), e.dim()));
        let (graph, loaded_from) = saved.map_or((VectorIndex::default(), None), |(g, from)| (g, Some(from)));
        let this = SearchIndex {
            dir: dir.to_owned(),
            index,
            fields,
            reader,
            writer,
            vectors: RwLock::new((graph, u64::MAX)),
            reconciled: Mutex::new(None),
            vector_stats: Mutex::new(VectorStats { loaded_from, ..VectorStats::default() }),
            embedder,
            checkpoint: RwLock::new(Checkpoint::default()),
            meta_seen: Mutex::new(None),
        };
        this.refresh()?;
        let vectors = this.vector_stats();
        info!(
            docs = this.reader.searcher().num_docs(),
            applied_lsn = this.applied_lsn(),
            vectors = vectors.live,
            vectors_loaded_from = ?vectors.loaded_from,
            vectors_read = vectors.read_from_index,
            "search index open"
        );
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

    /// How many of the records `ids` the index holds as documents (an erasure waits for 0).
    pub fn holds(&self, ids: &[String]) -> Result<u64> {
        let _ = self.refresh_if_follower();
        let searcher = self.reader.searcher();
        let mut n = 0;
        for id in ids {
            let query =
                tantivy::query::TermQuery::new(self.fields.id_term(id), tantivy::schema::IndexRecordOption::Basic);
            n += searcher.search(&query, &tantivy::collector::Count).map_err(self.err("counting documents"))? as u64;
        }
        Ok(n)
    }

    /// Deleted documents whose text is still in the index's segment files: a delete hides a document
    /// at once, and the merge that follows it rewrites the segments without it (an erasure waits
    /// for 0).
    pub fn deleted_in_files(&self) -> u64 {
        let _ = self.refresh_if_follower();
        let _ = self.reader.reload();
        self.reader.searcher().segment_readers().iter().map(|s| u64::from(s.num_deleted_docs())).sum()
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
        // One catch-up at a time (a writer's graph catches up only on open: afterwards `apply` keeps
        // it current); a follower reconciles at most every FOLLOWER_RECONCILE.
        let Ok(mut reconciled) = self.reconciled.try_lock() else {
            set_checkpoint(cp);
            return Ok(());
        };
        let may_reconcile = self.writer.is_some() || reconciled.is_none_or(|at| at.elapsed() >= FOLLOWER_RECONCILE);
        if self.sync_vectors(&searcher, generation, may_reconcile)? {
            *reconciled = Some(Instant::now());
        }
        drop(reconciled);
        if self.writer.is_some() {
            self.save_vectors_if_due();
        }
        set_checkpoint(cp);
        Ok(())
    }

    /// Brings the vector graph up to `searcher`'s documents: inserts the vectors of batches after the
    /// graph's; then, if the graph's live count still differs from the index's (documents were deleted
    /// since, or the save was of another index) and `may_reconcile`, compares every document's id and
    /// batch with the graph's, dropping points the index no longer has and inserting what is missing.
    /// Returns whether it reconciled.
    fn sync_vectors(&self, searcher: &Searcher, generation: u64, may_reconcile: bool) -> Result<bool> {
        let since = self.vectors.read().map_err(|_| Error::Poisoned("vector graph"))?.0.seq();
        let mut newer = Vec::new();
        let mut with_vectors = 0;
        let mut latest = since;
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            let batches = segment.fast_fields().u64("vector_seq").map_err(self.err("reading vector batches"))?;
            for doc in segment.doc_ids_alive() {
                if let Some(seq) = batches.first(doc) {
                    with_vectors += 1;
                    if seq > since {
                        newer.push((DocAddress::new(ord as u32, doc), seq));
                        latest = latest.max(seq);
                    }
                }
            }
        }
        let new = self.read_vectors(searcher, newer)?;
        let mut read = new.len();
        let mut v = self.vectors.write().map_err(|_| Error::Poisoned("vector graph"))?;
        v.0.upsert_many(new);
        let reconcile = v.0.len() != with_vectors && may_reconcile;
        if reconcile {
            let in_index = self.vector_docs(searcher)?;
            v.0.retain_docs(|id, seq| in_index.get(id).is_some_and(|(s, _)| *s == seq));
            let missing: Vec<_> = in_index
                .iter()
                .filter(|(id, (seq, _))| v.0.seq_of(id) != Some(*seq))
                .map(|(_, (seq, at))| (*at, *seq))
                .collect();
            let missing = self.read_vectors(searcher, missing)?;
            read += missing.len();
            v.0.upsert_many(missing);
        }
        v.0.advance_to(latest);
        v.0.compact_if_needed();
        v.1 = generation;
        debug!(read, reconcile, live = v.0.len(), seq = v.0.seq(), generation, "vector graph caught up");
        if let Ok(mut stats) = self.vector_stats.lock() {
            stats.read_from_index += read;
        }
        Ok(reconcile)
    }

    /// Every live document with an embedding: its batch and address, by id (from the fast fields).
    fn vector_docs(&self, searcher: &Searcher) -> Result<HashMap<String, (u64, DocAddress)>> {
        let mut found = HashMap::new();
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            let fast = segment.fast_fields();
            let batches = fast.u64("vector_seq").map_err(self.err("reading vector batches"))?;
            let Some(ids) = fast.str("id").map_err(self.err("reading document ids"))? else { continue };
            // The segment's ids in term order, read once (a dictionary lookup per document costs more).
            let mut by_ord = Vec::with_capacity(ids.num_terms());
            let mut terms = ids.dictionary().stream().map_err(|e| self.err("reading document ids")(e.into()))?;
            while terms.advance() {
                by_ord.push(String::from_utf8_lossy(terms.key()).into_owned());
            }
            for doc in segment.doc_ids_alive() {
                let (Some(seq), Some(id)) = (batches.first(doc), ids.term_ords(doc).next()) else { continue };
                if let Some(id) = by_ord.get(id as usize) {
                    found.insert(id.clone(), (seq, DocAddress::new(ord as u32, doc)));
                }
            }
        }
        Ok(found)
    }

    /// The stored documents and embeddings at `at` (each with its batch), read in index order.
    fn read_vectors(
        &self,
        searcher: &Searcher,
        mut at: Vec<(DocAddress, u64)>,
    ) -> Result<Vec<(SearchDoc, u64, Vec<f32>)>> {
        at.sort_unstable_by_key(|(a, _)| (a.segment_ord, a.doc_id));
        let mut out = Vec::with_capacity(at.len());
        let mut store = None;
        for (a, seq) in at {
            let reader = match &store {
                Some((ord, reader)) if *ord == a.segment_ord => reader,
                _ => {
                    let segment = searcher.segment_reader(a.segment_ord);
                    let reader =
                        segment.get_store_reader(64).map_err(|e| self.err("reading stored documents")(e.into()))?;
                    &store.insert((a.segment_ord, reader)).1
                }
            };
            let t: TantivyDocument = reader.get(a.doc_id).map_err(self.err("reading a stored document"))?;
            if let (Some(d), Some(e)) = (self.fields.doc_of(&t), self.fields.embedding_of(&t)) {
                out.push((d, seq, e));
            }
        }
        Ok(out)
    }

    /// Saves the vector graph beside the index if enough is new since the last save (see
    /// [`SAVE_AFTER`]). A failed save is logged, not returned: the graph is a cache of the index.
    fn save_vectors_if_due(&self) {
        let due = self.vectors.read().is_ok_and(|v| v.0.unsaved() >= SAVE_AFTER.max(v.0.len() / 10));
        if due {
            self.save_vectors();
        }
    }

    /// Saves the vector graph beside the index if anything is new since the last save (the writer,
    /// with an embedder; the indexer calls it when it stops).
    pub fn save_vectors(&self) {
        let (Some(_), Some(embedder)) = (&self.writer, &self.embedder) else { return };
        // Searches go on during the save (a read lock); only this thread changes the writer's graph.
        let saved = {
            let Ok(v) = self.vectors.read() else { return };
            let unsaved = v.0.unsaved();
            if unsaved == 0 && self.vector_stats.lock().is_ok_and(|s| s.saved.is_some() || s.loaded_from.is_some()) {
                return;
            }
            v.0.save(&self.dir.join(SAVED_DIR), embedder.dim()).map(|dir| (dir, unsaved))
        };
        match saved {
            Ok((dir, unsaved)) => {
                if let Ok(mut v) = self.vectors.write() {
                    v.0.mark_saved(unsaved);
                }
                if let Ok(mut stats) = self.vector_stats.lock() {
                    stats.saved = dir;
                }
            }
            Err(e) => warn!(error = %e, "could not save the vector graph (it is rebuilt from the index on open)"),
        }
    }

    /// The vector graph's provenance and size.
    pub fn vector_stats(&self) -> VectorStats {
        let mut stats = self.vector_stats.lock().map(|s| s.clone()).unwrap_or_default();
        if let Ok(v) = self.vectors.read() {
            stats.live = v.0.len();
            stats.tombstones = v.0.tombstones();
            stats.seq = v.0.seq();
        }
        stats
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
        cp.seq += 1;
        let seq = cp.seq;
        let payload =
            serde_json::to_string(&cp).map_err(|source| Error::Checkpoint { dir: self.dir.clone(), source })?;
        {
            let mut w = writer.lock().map_err(|_| Error::Poisoned("index writer"))?;
            for (change, embedding) in batch.changes.iter().zip(&embeddings) {
                match change {
                    Change::Upsert(d) => {
                        w.delete_term(self.fields.id_term(&d.id));
                        w.add_document(self.fields.stored(d, embedding.as_deref().map(|e| (e, seq))))
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
            let mut run: Vec<(Box<SearchDoc>, u64, Vec<f32>)> = Vec::new();
            for (change, embedding) in batch.changes.into_iter().zip(embeddings) {
                let other = match (change, embedding) {
                    (Change::Upsert(d), Some(e)) => {
                        run.push((d, seq, e));
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
            v.0.advance_to(seq);
            v.0.compact_if_needed();
            v.1 = generation;
        }
        if let Ok(mut c) = self.checkpoint.write() {
            *c = cp;
        }
        self.save_vectors_if_due();
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
        // The batch numbers go on: a follower's graph must not take later batches for ones it holds.
        let cleared =
            Checkpoint { seq: self.checkpoint.read().map(|c| c.seq).unwrap_or_default() + 1, ..Checkpoint::default() };
        {
            let mut w = writer.lock().map_err(|_| Error::Poisoned("index writer"))?;
            w.delete_all_documents().map_err(self.err("clearing"))?;
            let mut commit = w.prepare_commit().map_err(self.err("preparing a commit"))?;
            let payload = serde_json::to_string(&cleared)
                .map_err(|source| Error::Checkpoint { dir: self.dir.clone(), source })?;
            commit.set_payload(&payload);
            commit.commit().map_err(self.err("committing"))?;
        }
        self.reader.reload().map_err(self.err("reloading the reader"))?;
        let generation = self.reader.searcher().generation().generation_id();
        if let Ok(mut v) = self.vectors.write() {
            let mut empty = VectorIndex::default();
            empty.advance_to(cleared.seq);
            *v = (empty, generation);
        }
        if let Ok(mut c) = self.checkpoint.write() {
            *c = cleared;
        }
        // The saves go too (saving an empty graph removes them).
        if let Ok(mut stats) = self.vector_stats.lock() {
            *stats = VectorStats::default();
        }
        self.save_vectors();
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
        SearchDoc { title: title.into(), ..SearchDoc::new(id, DocType::KnowledgeArticle, "t") }
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
        let before = writer.checkpoint().seq;
        writer.clear()?;
        let cleared = writer.checkpoint();
        assert_eq!((cleared.positions.len(), cleared.applied_lsn), (0, 0));
        assert!(cleared.seq > before, "batch numbers go on after a clear");
        Ok(())
    }

    fn semantic(ix: &SearchIndex, q: &str) -> Vec<String> {
        let req = SearchRequest { text: q.into(), mode: Mode::Semantic, limit: 3, types: Vec::new(), facets: false };
        ix.search(&req, &Visibility::tenant("t"))
            .map(|r| r.hits.into_iter().map(|h| h.id).collect())
            .unwrap_or_default()
    }

    fn embedder() -> Arc<Embedder> {
        let dir = orbas_models::embed::model_dir(None).expect("a models root ($ORBAS_MODELS or $HOME)");
        Arc::new(Embedder::load(&dir).expect("the all-MiniLM-L6-v2 model (scripts/setup.sh)"))
    }

    fn upserts(docs: &[(&str, &str)]) -> Batch {
        Batch {
            changes: docs.iter().map(|(id, title)| Change::Upsert(Box::new(doc(id, title)))).collect(),
            ..Batch::default()
        }
    }

    const FIRE: &str = "The printer caught fire in the office";
    const CAKE: &str = "Chocolate cake recipe with fresh berries";
    const SAILING: &str = "Sailing regatta results from the harbour";

    #[test]
    fn the_vector_graph_is_saved_loaded_and_caught_up_with_what_was_committed_after() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Dir { dir: PathBuf::new(), source: Box::new(e) })?;
        let embedder = embedder();
        let writer = SearchIndex::open(dir.path(), Access::Writer, Some(embedder.clone()))?;
        writer.apply(upserts(&[
            ("a", "Quarterly invoice payment is overdue"),
            ("b", FIRE),
            ("c", "Kubernetes cluster upgrade plan"),
        ]))?;
        writer.save_vectors();
        let saved = writer.vector_stats().saved.expect("a save");
        assert!(saved.starts_with(dir.path().join(SAVED_DIR)), "{saved:?}");

        // A follower loads the save and reads only what the writer commits after it.
        let follower = SearchIndex::open(dir.path(), Access::ReadOnly, Some(embedder.clone()))?;
        let stats = follower.vector_stats();
        assert_eq!((stats.loaded_from.as_ref(), stats.read_from_index, stats.live), (Some(&saved), 0, 3));
        writer.apply(upserts(&[("d", CAKE)]))?;
        assert_eq!(semantic(&follower, CAKE).first().map(String::as_str), Some("d"));
        assert_eq!(follower.vector_stats().read_from_index, 1, "only the new vector was read");

        // After the save: a delete, an insert and an update; then the writer goes without saving (a crash).
        writer.apply(Batch {
            changes: vec![
                Change::Delete { id: "b".into() },
                Change::Upsert(Box::new(doc("e", "Hiking boots for winter mountains"))),
                Change::Upsert(Box::new(doc("a", SAILING))),
            ],
            ..Batch::default()
        })?;
        assert_eq!(semantic(&writer, SAILING).first().map(String::as_str), Some("a"));
        drop(writer);

        let writer = SearchIndex::open(dir.path(), Access::Writer, Some(embedder.clone()))?;
        let stats = writer.vector_stats();
        assert_eq!(stats.loaded_from.as_ref(), Some(&saved));
        assert_eq!(stats.read_from_index, 3, "d, e and the new a: {stats:?}");
        assert_eq!(stats.live, 4, "a, c, d, e: the deleted b was reconciled away ({stats:?})");
        assert_eq!(semantic(&writer, SAILING).first().map(String::as_str), Some("a"), "a's new vector");
        assert!(!semantic(&writer, FIRE).contains(&"b".to_owned()));
        assert_eq!(semantic(&writer, CAKE).first().map(String::as_str), Some("d"));

        // The follower reconciles too (its first reconciliation is due at once).
        writer.apply(upserts(&[("f", "Gardening tips for tomatoes")]))?;
        assert!(!semantic(&follower, FIRE).contains(&"b".to_owned()));
        assert_eq!(follower.vector_stats().live, 5);

        // A clear removes the saves; the next open builds from the (empty) index.
        writer.clear()?;
        assert!(semantic(&writer, CAKE).is_empty());
        drop(writer);
        let writer = SearchIndex::open(dir.path(), Access::Writer, Some(embedder))?;
        let stats = writer.vector_stats();
        assert_eq!((stats.loaded_from, stats.live), (None, 0));
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
