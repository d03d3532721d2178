//! `orbas search index`: the CDC topics of the indexed tables → the search index, incrementally.
//!
//! The indexer is its own Kafka consumer (group `orbas-search`). The index, not Kafka, owns the read
//! positions: every batch is one index commit carrying the last offset per partition (see
//! [`crate::index`]); on start each partition is assigned at the stored offset + 1 (0 for partitions
//! never read), and the group's committed offsets are written afterwards for lag monitoring only.
//! Creates and updates (and snapshot reads) upsert the row's document; `op=d` removes it; tombstones
//! only advance the position; a truncate removes every document of the table.
//!
//! Like the lake sink it guards against two broker behaviours seen with tansu 0.6: a fetch from the
//! middle of a record batch that starts at the *next* batch (the partition is re-read from further
//! back until the wanted offset shows up), and a record delivered twice within one process (admitted
//! once). `auto.offset.reset=error`: a log that lost offsets the index needs stops the indexer with
//! [`Error::OffsetsWentBack`] (run `orbas search rebuild`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbas_pipeline::event::{ChangeEvent, Op, topic_for};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tracing::{error, info, instrument, warn};

use crate::document::{self, DocType};
use crate::error::{Error, Result};
use crate::index::{Batch, Change, SearchIndex};

/// Messages read from the CDC topics (label `outcome`: upsert, delete, skipped, malformed).
pub const METRIC_MESSAGES: &str = "orbas_search_messages_total";
/// Index commits.
pub const METRIC_BATCHES: &str = "orbas_search_batches_total";
/// The highest source LSN the index holds.
pub const METRIC_APPLIED_LSN: &str = "orbas_search_applied_lsn";
/// When the index last committed a batch (Unix seconds): `time() - it` is the index's age.
pub const METRIC_LAST_BATCH: &str = "orbas_search_last_batch_timestamp_seconds";
/// Documents in the index.
pub const METRIC_DOCS: &str = "orbas_search_documents";

/// The indexer's settings.
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Consumer group (offsets committed for monitoring only).
    pub group: String,
    /// Schema of the indexed tables (their topics are `orbas.cdc.<schema>.<table>`).
    pub schema: String,
    /// A batch closes after this long…
    pub batch_interval: Duration,
    /// …or after this many messages.
    pub batch_rows: usize,
    /// How often new topics and partitions are looked for.
    pub discovery_interval: Duration,
    /// Stop once every assigned partition is read to its end (a rebuild); else run until stopped.
    pub until_caught_up: bool,
    /// Extra librdkafka consumer properties.
    pub kafka_extra: Vec<(String, String)>,
}

impl IndexerConfig {
    pub fn new(brokers: &str) -> Self {
        IndexerConfig {
            brokers: brokers.to_owned(),
            group: "orbas-search".to_owned(),
            schema: "public".to_owned(),
            batch_interval: Duration::from_millis(500),
            batch_rows: 2_000,
            discovery_interval: Duration::from_secs(5),
            until_caught_up: false,
            kafka_extra: Vec::new(),
        }
    }

    /// The topics the indexer reads, one per indexed table.
    pub fn topics(&self) -> Vec<String> {
        DocType::ALL.iter().map(|t| topic_for(&self.schema, t.table())).collect()
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct IndexerStats {
    pub batches: u64,
    pub messages: u64,
    pub upserts: u64,
    pub deletes: u64,
    /// Messages that were not change events of the contract (logged, skipped).
    pub malformed: u64,
}

/// A partition being resumed at `want`, read from `from` (≤ `want`).
#[derive(Debug, Clone, Copy)]
struct Resume {
    want: i64,
    from: i64,
}

struct Received {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
}

struct Indexer {
    cfg: IndexerConfig,
    index: Arc<SearchIndex>,
    consumer: StreamConsumer,
    meta: Arc<BaseConsumer>,
    /// Next offset to read per (topic, partition).
    assigned: BTreeMap<(String, i32), i64>,
    resuming: HashMap<(String, i32), Resume>,
    admitted: HashMap<(String, i32), i64>,
    stats: IndexerStats,
}

/// Runs the indexer until `stop` turns true (the open batch is committed first), an error, or — with
/// `until_caught_up` — the end of every partition.
#[instrument(skip_all, fields(group = %cfg.group))]
pub async fn run(cfg: IndexerConfig, index: Arc<SearchIndex>, mut stop: watch::Receiver<bool>) -> Result<IndexerStats> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in &cfg.kafka_extra {
        client.set(k, v);
    }
    let consumer: StreamConsumer = client.create()?;
    let meta: BaseConsumer = client.create()?;
    let mut ix = Indexer {
        cfg,
        index,
        consumer,
        meta: Arc::new(meta),
        assigned: BTreeMap::new(),
        resuming: HashMap::new(),
        admitted: HashMap::new(),
        stats: IndexerStats::default(),
    };
    info!(topics = ix.cfg.topics().len(), "search indexer starting");
    let mut last_discovery: Option<Instant> = None;
    loop {
        if last_discovery.is_none_or(|t| t.elapsed() >= ix.cfg.discovery_interval) {
            ix.discover().await?;
            last_discovery = Some(Instant::now());
        }
        let batch = ix.collect(&mut stop).await?;
        let idle = batch.is_empty();
        if !idle {
            ix.flush(batch).await?;
        }
        let done = idle && ix.cfg.until_caught_up && !ix.assigned.is_empty() && ix.caught_up().await?;
        if stopping(&stop) || done {
            // The vector graph as of the last batch, so the next open loads instead of inserting.
            let index = ix.index.clone();
            tokio::task::spawn_blocking(move || index.save_vectors()).await.map_err(Error::Task)?;
            info!(batches = ix.stats.batches, messages = ix.stats.messages, "search indexer stopped");
            return Ok(ix.stats);
        }
    }
}

impl Indexer {
    /// Assigns partitions of the indexed topics not yet assigned, at the index's positions.
    async fn discover(&mut self) -> Result<()> {
        let wanted = self.cfg.topics();
        let consumer = self.meta.clone();
        let found: Vec<(String, Vec<i32>)> = tokio::task::spawn_blocking(move || {
            let md = consumer.fetch_metadata(None, Duration::from_secs(10))?;
            Ok::<_, KafkaError>(
                md.topics()
                    .iter()
                    .filter(|t| wanted.iter().any(|w| w == t.name()))
                    .map(|t| (t.name().to_owned(), t.partitions().iter().map(|p| p.id()).collect()))
                    .collect(),
            )
        })
        .await
        .map_err(Error::Task)??;
        let checkpoint = self.index.checkpoint();
        let mut changed = false;
        for (topic, partitions) in found {
            for p in partitions {
                let key = (topic.clone(), p);
                if self.assigned.contains_key(&key) {
                    continue;
                }
                let next = checkpoint.position(&topic, p).map_or(0, |o| o + 1);
                info!(topic = %topic, partition = p, from = next, "assigning");
                if next > 0 {
                    self.resuming.insert(key.clone(), Resume { want: next, from: next });
                }
                self.assigned.insert(key, next);
                changed = true;
            }
        }
        if changed {
            let mut tpl = TopicPartitionList::new();
            for ((topic, p), next) in &self.assigned {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*next))?;
            }
            self.consumer.assign(&tpl)?;
        }
        Ok(())
    }

    /// Whether every assigned partition is read to its high watermark.
    async fn caught_up(&self) -> Result<bool> {
        for ((topic, p), next) in &self.assigned {
            let (consumer, t, part) = (self.meta.clone(), topic.clone(), *p);
            let (_, high) =
                tokio::task::spawn_blocking(move || consumer.fetch_watermarks(&t, part, Duration::from_secs(10)))
                    .await
                    .map_err(Error::Task)??;
            if *next < high {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads messages until the batch is full, its time is up, or `stop`.
    async fn collect(&mut self, stop: &mut watch::Receiver<bool>) -> Result<Vec<Received>> {
        let deadline = tokio::time::Instant::now() + self.cfg.batch_interval;
        let mut batch = Vec::new();
        if self.assigned.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = stop.changed() => {}
            }
            return Ok(batch);
        }
        while batch.len() < self.cfg.batch_rows {
            let next = tokio::select! {
                m = self.consumer.recv() => m,
                _ = tokio::time::sleep_until(deadline) => break,
                _ = stop.changed() => break,
            };
            match next {
                Ok(m) => {
                    let r = Received {
                        topic: m.topic().to_owned(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                    };
                    drop(m);
                    if self.admit(&r.topic, r.partition, r.offset)? {
                        batch.push(r);
                    }
                }
                Err(KafkaError::MessageConsumption(
                    code @ (RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange),
                )) => {
                    return Err(self.out_of_range(code).await);
                }
                Err(KafkaError::MessageConsumption(
                    code @ (RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::BrokerNotAvailable
                    | RDKafkaErrorCode::NotLeaderForPartition
                    | RDKafkaErrorCode::LeaderNotAvailable
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::OperationTimedOut),
                )) => {
                    warn!(error = %code, "Kafka unavailable; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(batch)
    }

    /// Names the partition whose log no longer holds the offset the index continues from.
    async fn out_of_range(&self, code: RDKafkaErrorCode) -> Error {
        for ((topic, p), next) in &self.assigned {
            let (consumer, t, part) = (self.meta.clone(), topic.clone(), *p);
            let marks =
                tokio::task::spawn_blocking(move || consumer.fetch_watermarks(&t, part, Duration::from_secs(10))).await;
            let Ok(Ok((low, high))) = marks else { continue };
            let why = if *next > high {
                format!("the broker's log ends at offset {high}")
            } else if *next < low {
                format!("the broker deleted offsets {next}..{low} before the index read them")
            } else {
                continue;
            };
            return Error::OffsetsWentBack { topic: topic.clone(), partition: *p, next: *next, why };
        }
        Error::OffsetsWentBack {
            topic: "(an assigned topic)".into(),
            partition: -1,
            next: -1,
            why: format!("the broker refused the offset ({code})"),
        }
    }

    /// Whether a message belongs in the batch: a resumed partition must start exactly at the wanted
    /// offset (re-reading from further back when the broker skipped ahead), and a record already
    /// admitted in this process is not admitted again.
    fn admit(&mut self, topic: &str, partition: i32, offset: i64) -> Result<bool> {
        let key = (topic.to_owned(), partition);
        if let Some(r) = self.resuming.get(&key).copied() {
            if offset < r.from {
                return Ok(false);
            }
            if offset < r.want {
                return Ok(false);
            }
            if offset > r.want && r.from > 0 {
                let from = (r.want - 2 * (r.want - r.from).max(512)).max(0);
                warn!(
                    topic,
                    partition,
                    want = r.want,
                    got = offset,
                    seek = from,
                    "the broker skipped ahead; re-reading"
                );
                self.resuming.insert(key, Resume { want: r.want, from });
                self.consumer.seek(topic, partition, Offset::Offset(from), Duration::from_secs(10))?;
                return Ok(false);
            }
            if offset > r.want {
                warn!(topic, partition, want = r.want, got = offset, "offsets missing from the log; continuing");
            }
            self.resuming.remove(&key);
        }
        if self.admitted.get(&key).is_some_and(|last| offset <= *last) {
            return Ok(false);
        }
        self.admitted.insert(key, offset);
        Ok(true)
    }

    /// Turns a batch of messages into index changes and applies them in one commit.
    async fn flush(&mut self, messages: Vec<Received>) -> Result<()> {
        let mut batch = Batch::default();
        let mut last: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for m in &messages {
            let at = last.entry((m.topic.clone(), m.partition)).or_insert(m.offset);
            *at = (*at).max(m.offset);
            match self.change_of(m) {
                Ok(Some((change, lsn))) => {
                    let outcome = match &change {
                        Change::Delete { .. } | Change::Truncate { .. } => {
                            self.stats.deletes += 1;
                            "delete"
                        }
                        Change::Upsert(_) => {
                            self.stats.upserts += 1;
                            "upsert"
                        }
                    };
                    metrics::counter!(METRIC_MESSAGES, "outcome" => outcome).increment(1);
                    batch.changes.push(change);
                    batch.max_lsn = batch.max_lsn.max(lsn);
                }
                Ok(None) => metrics::counter!(METRIC_MESSAGES, "outcome" => "skipped").increment(1),
                Err(e) => {
                    metrics::counter!(METRIC_MESSAGES, "outcome" => "malformed").increment(1);
                    self.stats.malformed += 1;
                    error!(error = %e, "skipping a message that is not a change event");
                }
            }
        }
        batch.positions = last.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect();
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.apply(batch)).await.map_err(Error::Task)??;
        let mut commit = TopicPartitionList::new();
        for ((topic, p), o) in &last {
            self.assigned.insert((topic.clone(), *p), o + 1);
            commit.add_partition_offset(topic, *p, Offset::Offset(o + 1))?;
        }
        if let Err(e) = self.consumer.commit(&commit, CommitMode::Async) {
            warn!(error = %e, "committing the group's offsets failed (monitoring only; the index holds the positions)");
        }
        self.stats.batches += 1;
        self.stats.messages += messages.len() as u64;
        metrics::counter!(METRIC_BATCHES).increment(1);
        metrics::gauge!(METRIC_APPLIED_LSN).set(self.index.applied_lsn() as f64);
        metrics::gauge!(METRIC_DOCS).set(self.index.num_docs() as f64);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        metrics::gauge!(METRIC_LAST_BATCH).set(now.as_secs_f64());
        Ok(())
    }

    /// The index change a message asks for, with its commit LSN; `None` for tombstones and rows that
    /// map to no document.
    fn change_of(&self, m: &Received) -> Result<Option<(Change, Option<i64>)>> {
        let Some(payload) = &m.payload else { return Ok(None) };
        let bad = |source| Error::Event { topic: m.topic.clone(), partition: m.partition, offset: m.offset, source };
        let event: ChangeEvent = serde_json::from_slice(payload).map_err(bad)?;
        let lsn = event.source.commit_lsn.or(event.source.lsn);
        let Some(doc_type) = DocType::of_table(&event.source.table) else { return Ok(None) };
        let change = match event.op {
            Op::Create | Op::Update | Op::Read => {
                let Some(after) = &event.after else { return Ok(None) };
                document::from_row(doc_type.table(), after).map(|d| Change::Upsert(Box::new(d)))
            }
            Op::Delete => {
                let key: Option<Map<String, Value>> = m.key.as_deref().and_then(|k| serde_json::from_slice(k).ok());
                document::row_id(None, event.before.as_ref(), key.as_ref()).map(|id| Change::Delete { id })
            }
            Op::Truncate => Some(Change::Truncate { doc_type }),
        };
        Ok(change.map(|c| (c, lsn)))
    }
}

/// Whether to stop: `stop` turned true, or its sender is gone (whoever could have said stop has
/// stopped; running on would spin, as every wait on the channel returns at once).
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}
