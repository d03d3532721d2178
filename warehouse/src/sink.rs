//! `orbas pipeline sink`: the CDC topics → bronze and silver Delta tables, exactly once.
//!
//! The lake, not Kafka, owns the read positions: every bronze and silver commit records, per Kafka
//! partition, the last offset it covers (a Delta `txn` action). On start the sink reads those positions
//! and assigns each partition at the older of the two plus one; the consumer group's committed offsets
//! are written after each batch for lag monitoring only. A replayed batch is filtered per table by
//! offset, so a crash between the bronze and the silver commit (or anywhere else) neither loses nor
//! repeats a change.
//!
//! The consumer runs with `auto.offset.reset=error`: if the broker's log no longer holds the offset the
//! lake continues from (offsets went backwards after a broker lost its log or a topic was re-created,
//! or retention deleted what was never read), the sink halts with [`Error::OffsetsWentBack`].
//!
//! Micro-batches close after `batch_interval` or `batch_rows` messages, whichever comes first; each
//! table's part of a batch is one bronze commit and one silver commit (plus one for a truncate).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use deltalake::DeltaTable;
use orbas_pipeline::event::{Op, TOPIC_PREFIX, TRANSACTION_TOPIC};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::watch;
use tracing::{info, warn};
use url::Url;

use crate::convert::{self, Change};
use crate::error::{Error, Result};
use crate::gold;
use crate::lake;
use crate::schema::{self, LakeColumn, LakeType, TableLayout, meta};

/// Gauge: messages the broker holds that the lake has not applied yet (all assigned partitions).
pub const METRIC_LAG_MESSAGES: &str = "orbas_lake_consumer_lag_messages";
/// How often the lag gauge is measured (a watermark request per partition).
const LAG_INTERVAL: Duration = Duration::from_secs(10);
/// Gauge: when the sink last committed a batch (Unix seconds); `time() - it` is the sink's idle time.
pub const METRIC_LAST_BATCH: &str = "orbas_lake_last_batch_timestamp_seconds";
/// Gauge: Postgres commit time of the newest change in the lake (Unix seconds).
pub const METRIC_APPLIED_COMMIT: &str = "orbas_lake_applied_commit_timestamp_seconds";
/// Histogram: seconds from a Postgres commit to the lake commit holding it (each batch's oldest change).
pub const METRIC_END_TO_END: &str = "orbas_lake_end_to_end_seconds";

/// The sink's settings.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Consumer group (also part of every `txn` app id).
    pub group: String,
    /// Root of the lake: a local directory URL (`file:///…`) or an object-store URL.
    pub lake: Url,
    /// The CRM database, for the tables' column types.
    pub database_url: String,
    /// A batch closes after this long…
    pub batch_interval: Duration,
    /// …or after this many messages.
    pub batch_rows: usize,
    /// How often new CDC topics and partitions are looked for.
    pub discovery_interval: Duration,
    /// Extra librdkafka consumer properties.
    pub kafka_extra: Vec<(String, String)>,
    /// Columns whose values never enter Delta file statistics (`delta.dataSkippingStatsColumns` lists
    /// every other column), as `table.column` or `column` for every table.
    pub pii_columns: Vec<String>,
    /// Keeps the gold KPI tables current (recomputing the tenants each batch touched); `None` leaves
    /// them alone.
    pub gold: Option<gold::RefreshConfig>,
}

impl SinkConfig {
    /// The service's defaults for a database, a broker and a lake root.
    pub fn new(database_url: &str, brokers: &str, lake: Url) -> Self {
        SinkConfig {
            brokers: brokers.to_owned(),
            group: "orbas-lake".to_owned(),
            lake,
            database_url: database_url.to_owned(),
            batch_interval: Duration::from_secs(1),
            batch_rows: 50_000,
            discovery_interval: Duration::from_secs(5),
            kafka_extra: Vec::new(),
            pii_columns: default_pii_columns(),
            gold: Some(gold::RefreshConfig::default()),
        }
    }
}

/// Person-identifying columns of the CRM schema kept out of file statistics.
pub fn default_pii_columns() -> Vec<String> {
    ["email", "phone", "mobile", "first_name", "last_name", "full_name", "name", "address", "ip_address"]
        .map(str::to_owned)
        .to_vec()
}

/// Where a CRM table's lake tables live: `<lake>/bronze/<schema>/<table>` and `<lake>/silver/…`.
pub fn table_url(lake: &Url, layer: &str, schema: &str, table: &str) -> Result<Url> {
    schema_url(lake, layer, schema)?.join(&format!("{table}/")).map_err(|e| Error::Config(format!("lake URL: {e}")))
}

/// The directory of one layer's tables of one schema: `<lake>/<layer>/<schema>/`.
pub fn schema_url(lake: &Url, layer: &str, schema: &str) -> Result<Url> {
    let mut base = lake.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join(&format!("{layer}/{schema}/")).map_err(|e| Error::Config(format!("lake URL: {e}")))
}

/// The `(schema, table)` of a per-table CDC topic; `None` for the transaction and heartbeat topics and
/// anything else.
pub fn table_of_topic(topic: &str) -> Option<(&str, &str)> {
    if topic == TRANSACTION_TOPIC {
        return None;
    }
    let rest = topic.strip_prefix(TOPIC_PREFIX)?.strip_prefix('.')?;
    let (schema, table) = rest.split_once('.')?;
    (!schema.is_empty() && !table.is_empty() && !table.contains('.')).then_some((schema, table))
}

/// One CRM table's lake state.
struct TableState {
    topic: String,
    layout: TableLayout,
    bronze: Option<DeltaTable>,
    silver: Option<DeltaTable>,
    /// Last offset per partition each table holds.
    bronze_at: HashMap<i32, i64>,
    silver_at: HashMap<i32, i64>,
    truncated_at: Option<(i64, i64)>,
}

/// What a running sink has done (for logs, metrics and tests).
#[derive(Debug, Clone, Default)]
pub struct SinkStats {
    pub batches: u64,
    pub messages: u64,
    pub bronze_rows: u64,
}

/// The sink service.
pub struct Sink {
    cfg: SinkConfig,
    consumer: StreamConsumer,
    /// A second client for metadata and watermark calls (blocking; run off the async threads).
    meta: std::sync::Arc<BaseConsumer>,
    pool: PgPool,
    tables: HashMap<String, TableState>,
    /// Next offset to read per (topic, partition): the current assignment.
    assigned: BTreeMap<(String, i32), i64>,
    /// Partitions just assigned whose first message has not arrived: the offset wanted and where the
    /// current read started (see [`Sink::admit`]).
    resuming: HashMap<(String, i32), Resume>,
    /// The last offset admitted per partition in this process: a broker that delivers a record twice
    /// (seen with tansu 0.6 after a fetch that started mid-batch) must not put it in a batch twice.
    admitted: HashMap<(String, i32), i64>,
    stats: SinkStats,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("group", &self.cfg.group)
            .field("tables", &self.tables.len())
            .finish_non_exhaustive()
    }
}

/// A partition being resumed at `want`, read from `from` (≤ `want`).
#[derive(Debug, Clone, Copy)]
struct Resume {
    want: i64,
    from: i64,
}

/// A message as the batch keeps it.
struct Received {
    topic: String,
    partition: i32,
    offset: i64,
    payload: Option<Vec<u8>>,
}

impl Sink {
    pub async fn connect(cfg: SinkConfig) -> Result<Self> {
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
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&cfg.database_url).await?;
        Ok(Sink {
            cfg,
            consumer,
            meta: std::sync::Arc::new(meta),
            pool,
            tables: HashMap::new(),
            assigned: BTreeMap::new(),
            resuming: HashMap::new(),
            admitted: HashMap::new(),
            stats: SinkStats::default(),
        })
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// Runs until `stop` turns true (the current batch is committed first) or an error.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<SinkStats> {
        let mut last_discovery: Option<Instant> = None;
        let mut last_lag: Option<Instant> = None;
        info!(group = %self.cfg.group, lake = %self.cfg.lake, "lake sink starting");
        let gold = self.cfg.gold.clone().map(|g| gold::Refresher::spawn(self.cfg.lake.clone(), g, stop.clone()));
        loop {
            if last_discovery.is_none_or(|t| t.elapsed() >= self.cfg.discovery_interval) {
                self.discover().await?;
                last_discovery = Some(Instant::now());
            }
            let batch = self.collect(&mut stop).await?;
            if !batch.is_empty() {
                let touched = self.flush(batch).await?;
                if let (Some((refresher, _)), Some(scope)) = (&gold, touched) {
                    refresher.touch(scope);
                }
            }
            if last_lag.is_none_or(|t| t.elapsed() >= LAG_INTERVAL) {
                self.record_lag().await;
                last_lag = Some(Instant::now());
            }
            if stopping(&stop) {
                if let Some((refresher, task)) = gold {
                    drop(refresher);
                    let _ = task.await;
                }
                info!(batches = self.stats.batches, messages = self.stats.messages, "lake sink stopped");
                return Ok(self.stats);
            }
        }
    }

    /// Finds CDC topics and partitions not yet assigned, prepares their tables and assigns them at the
    /// lake's positions.
    async fn discover(&mut self) -> Result<()> {
        let metadata = self.topics().await?;
        let mut changed = false;
        for t in &metadata {
            let Some((schema, table)) = table_of_topic(&t.0) else { continue };
            if !self.tables.contains_key(&t.0) {
                match self.open_table(&t.0, schema, table, &t.1).await? {
                    Some(state) => {
                        self.tables.insert(t.0.clone(), state);
                    }
                    None => continue,
                }
            }
            let Some(state) = self.tables.get(&t.0) else { continue };
            for &p in &t.1 {
                let key = (t.0.clone(), p);
                if self.assigned.contains_key(&key) {
                    continue;
                }
                // Continue after the older of the two positions; a table holding nothing from this partition
                // needs it from offset 0 (not "the earliest the broker still has": a log that lost its head
                // must stop the sink, not be skipped).
                let held = |at: &HashMap<i32, i64>| at.get(&p).copied().unwrap_or(-1);
                let next = held(&state.bronze_at).min(held(&state.silver_at)) + 1;
                info!(topic = %t.0, partition = p, from = next, "assigning");
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

    /// A table's state; when its lake tables exist, with the positions they hold for `partitions`.
    async fn open_table(
        &mut self,
        topic: &str,
        schema: &str,
        table: &str,
        partitions: &[i32],
    ) -> Result<Option<TableState>> {
        let Some(layout) = schema::resolve(&self.pool, schema, table).await? else {
            warn!(topic, "the topic's table is not in the database; skipping it");
            return Ok(None);
        };
        let mut state = TableState {
            topic: topic.to_owned(),
            layout,
            bronze: None,
            silver: None,
            bronze_at: HashMap::new(),
            silver_at: HashMap::new(),
            truncated_at: None,
        };
        // Tables are created with the first change; existing ones hold the positions to resume from.
        let l = &state.layout;
        if lake::exists(&table_url(&self.cfg.lake, "bronze", &l.schema, &l.table)?).await
            || lake::exists(&table_url(&self.cfg.lake, "silver", &l.schema, &l.table)?).await
        {
            self.ensure_tables(&mut state).await?;
            self.load_positions(&mut state, partitions).await?;
        }
        Ok(Some(state))
    }

    /// Reads what the existing tables hold: the last truncate silver applied and, per partition, the
    /// last offset each table covers. Once per table at start; afterwards the commits keep them.
    async fn load_positions(&self, state: &mut TableState, partitions: &[i32]) -> Result<()> {
        let (Some(bronze), Some(silver)) = (&state.bronze, &state.silver) else { return Ok(()) };
        state.truncated_at = lake::truncated_at(silver).await?;
        for &p in partitions {
            let app = lake::app_id(&self.cfg.group, &state.topic, p);
            if let Some(v) = lake::position(bronze, &app).await? {
                state.bronze_at.insert(p, v);
            }
            if let Some(v) = lake::position(silver, &app).await? {
                state.silver_at.insert(p, v);
            }
        }
        Ok(())
    }

    /// Creates both tables, or evolves them to the layout.
    async fn ensure_tables(&self, state: &mut TableState) -> Result<()> {
        let l = &state.layout;
        let stats = stats_columns(l, &self.cfg.pii_columns);
        let bronze_url = table_url(&self.cfg.lake, "bronze", &l.schema, &l.table)?;
        let silver_url = table_url(&self.cfg.lake, "silver", &l.schema, &l.table)?;
        let mut bronze_stats =
            vec![meta::OP, meta::LSN, meta::COMMIT_LSN, meta::COMMIT_TS, meta::PARTITION, meta::OFFSET]
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>();
        bronze_stats.extend(stats.iter().cloned());
        let silver_stats = {
            let mut s = stats.clone();
            s.extend([meta::LSN, meta::COMMIT_LSN, meta::COMMIT_TS].map(str::to_owned));
            s
        };
        let bronze = lake::ensure(
            &bronze_url,
            &format!("bronze_{}", l.table),
            &l.bronze_schema(),
            &[meta::COMMIT_DATE],
            &[("delta.dataSkippingStatsColumns", bronze_stats.join(","))],
        )
        .await?;
        let silver = lake::ensure(
            &silver_url,
            &l.table,
            &l.silver_schema(),
            &[],
            &[("delta.dataSkippingStatsColumns", silver_stats.join(","))],
        )
        .await?;
        state.bronze = Some(bronze);
        state.silver = Some(silver);
        Ok(())
    }

    /// Every topic with its partition ids, from the broker's metadata.
    async fn topics(&self) -> Result<Vec<(String, Vec<i32>)>> {
        let consumer = self.meta.clone();
        tokio::task::spawn_blocking(move || {
            let md = consumer.fetch_metadata(None, Duration::from_secs(10))?;
            Ok(md
                .topics()
                .iter()
                .map(|t| (t.name().to_owned(), t.partitions().iter().map(|p| p.id()).collect()))
                .collect())
        })
        .await
        .map_err(|e| Error::Config(format!("metadata task: {e}")))?
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
                        payload: m.payload().map(<[u8]>::to_vec),
                    };
                    drop(m);
                    if self.admit(&r.topic, r.partition, r.offset)? {
                        batch.push(r);
                    }
                }
                Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))
                | Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange)) => {
                    return Err(self.diagnose_out_of_range().await);
                }
                // The broker being away is not the lake's problem: librdkafka reconnects, the positions
                // are safe in the lake, and consumption continues where it was.
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
                    metrics::counter!("orbas_lake_kafka_errors_total").increment(1);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(batch)
    }

    /// Whether a message belongs in the batch. A resumed partition must start exactly at the lake's next
    /// offset, yet some brokers answer a fetch from the middle of a record batch with the *next* batch
    /// (tansu 0.6 does: resuming at 495 delivers 588 first), which would silently skip the records in
    /// between. So the first message after an assignment is checked: one beyond the wanted offset makes
    /// the sink seek further back (doubling the distance) until the broker delivers from at or before it;
    /// records before the wanted offset — already in the lake — are dropped.
    fn admit(&mut self, topic: &str, partition: i32, offset: i64) -> Result<bool> {
        let key = (topic.to_owned(), partition);
        let admitted = self.admit_resumed(&key, offset)?;
        if !admitted {
            return Ok(false);
        }
        if self.admitted.get(&key).is_some_and(|last| offset <= *last) {
            metrics::counter!("orbas_lake_redelivered_total").increment(1);
            return Ok(false);
        }
        self.admitted.insert(key, offset);
        Ok(true)
    }

    /// [`Self::admit`]'s check of a partition that is resuming (every record passes once it has).
    fn admit_resumed(&mut self, key: &(String, i32), offset: i64) -> Result<bool> {
        let Some(r) = self.resuming.get(key).copied() else { return Ok(true) };
        let (key, topic, partition) = (key.clone(), key.0.as_str(), key.1);
        if offset < r.from {
            // Still in flight from before a seek.
            return Ok(false);
        }
        if offset <= r.want {
            if offset == r.want {
                self.resuming.remove(&key);
            }
            return Ok(offset == r.want);
        }
        // Beyond the wanted offset.
        if r.from == 0 {
            // Read from the very beginning and the wanted offset is not there: the log has a gap (e.g.
            // compaction removed it). Nothing was skipped by the broker.
            warn!(topic, partition, want = r.want, got = offset, "offsets missing from the log; continuing");
            self.resuming.remove(&key);
            return Ok(true);
        }
        let from = (r.want - 2 * (r.want - r.from).max(512)).max(0);
        warn!(
            topic,
            partition,
            want = r.want,
            got = offset,
            seek = from,
            "the broker skipped ahead; re-reading from further back"
        );
        metrics::counter!("orbas_lake_resume_seeks_total").increment(1);
        self.resuming.insert(key, Resume { want: r.want, from });
        // Only this partition moves; the others keep their fetch positions (their records in the open
        // batch are not in the lake yet).
        self.consumer.seek(topic, partition, Offset::Offset(from), Duration::from_secs(10))?;
        Ok(false)
    }

    /// Names the partition whose log no longer holds the lake's next offset.
    async fn diagnose_out_of_range(&self) -> Error {
        for ((topic, p), next) in &self.assigned {
            let consumer = self.meta.clone();
            let (t, part) = (topic.clone(), *p);
            let marks =
                tokio::task::spawn_blocking(move || consumer.fetch_watermarks(&t, part, Duration::from_secs(10))).await;
            let Ok(Ok((low, high))) = marks else { continue };
            let why = if *next > high {
                format!("the broker's log ends at offset {high} but the lake continues from {next}")
            } else if *next < low {
                format!("the broker deleted offsets {next}..{low} before the lake read them")
            } else {
                continue;
            };
            return Error::OffsetsWentBack { topic: topic.clone(), partition: *p, stored: next - 1, why };
        }
        Error::Config("the broker refused an offset the lake continues from (offset out of range)".into())
    }

    /// Messages the broker holds beyond what the lake has applied, summed over the assigned partitions
    /// (one watermark request per partition, on a blocking thread): the sink's lag gauge. A partition
    /// whose watermarks do not come within a second is left out of the sum.
    async fn record_lag(&self) {
        let meta = self.meta.clone();
        let assigned: Vec<((String, i32), i64)> = self.assigned.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let behind = tokio::task::spawn_blocking(move || {
            assigned
                .iter()
                .filter_map(|((topic, p), next)| {
                    meta.fetch_watermarks(topic, *p, Duration::from_secs(1)).ok().map(|(_, high)| (high - next).max(0))
                })
                .sum::<i64>()
        })
        .await;
        if let Ok(behind) = behind {
            metrics::gauge!(METRIC_LAG_MESSAGES).set(behind as f64);
        }
    }

    /// Applies one batch: per table, bronze then silver, then the group's offsets (monitoring only).
    /// Returns the tenants whose KPIs the batch may have changed.
    async fn flush(&mut self, batch: Vec<Received>) -> Result<Option<gold::Dirty>> {
        let mut touched: Option<gold::Dirty> = None;
        // Source commit times (µs) of the oldest and newest change the batch applies.
        let mut span: Option<(i64, i64)> = None;
        let mut by_topic: BTreeMap<String, Vec<Received>> = BTreeMap::new();
        for m in batch {
            by_topic.entry(m.topic.clone()).or_default().push(m);
        }
        let mut commit = TopicPartitionList::new();
        for (topic, messages) in by_topic {
            let mut last: BTreeMap<i32, i64> = BTreeMap::new();
            let mut changes = Vec::with_capacity(messages.len());
            for m in &messages {
                let e =
                    |why: String| Error::Event { topic: topic.clone(), partition: m.partition, offset: m.offset, why };
                if let Some(c) = convert::parse(m.payload.as_deref(), m.partition, m.offset).map_err(e)? {
                    changes.push(c);
                }
                let l = last.entry(m.partition).or_insert(m.offset);
                *l = (*l).max(m.offset);
            }
            self.apply(&topic, &changes, &last).await?;
            for c in &changes {
                span = Some(
                    span.map_or((c.commit_us, c.commit_us), |(lo, hi)| (lo.min(c.commit_us), hi.max(c.commit_us))),
                );
            }
            if let Some((_, table)) = table_of_topic(&topic)
                && let Some(scope) = gold::dirty(table, changes.iter().map(|c| c.row.as_ref()))
            {
                touched = Some(match touched.take() {
                    Some(t) => t.merge(scope),
                    None => scope,
                });
            }
            for (p, o) in &last {
                self.assigned.insert((topic.clone(), *p), o + 1);
                commit.add_partition_offset(&topic, *p, Offset::Offset(o + 1))?;
            }
            self.stats.messages += messages.len() as u64;
        }
        self.stats.batches += 1;
        let now_us = chrono::Utc::now().timestamp_micros();
        metrics::gauge!(METRIC_LAST_BATCH).set(now_us as f64 / 1e6);
        if let Some((oldest, newest)) = span {
            metrics::gauge!(METRIC_APPLIED_COMMIT).set(newest as f64 / 1e6);
            // The batch's worst case: its oldest change waited this long from its Postgres commit.
            metrics::histogram!(METRIC_END_TO_END).record((now_us - oldest).max(0) as f64 / 1e6);
        }
        if commit.count() > 0
            && let Err(e) = self.consumer.commit(&commit, CommitMode::Async)
        {
            warn!(error = %e, "committing the group's offsets failed (monitoring only; the lake holds the positions)");
        }
        Ok(touched)
    }

    /// One table's part of a batch. `last` is the last offset read per partition (tombstones included).
    async fn apply(&mut self, topic: &str, changes: &[Change], last: &BTreeMap<i32, i64>) -> Result<()> {
        self.evolve(topic, changes).await?;
        if let Some(mut state) = self.tables.remove(topic) {
            let result = if state.bronze.is_none() || state.silver.is_none() {
                self.ensure_tables(&mut state).await
            } else {
                Ok(())
            };
            self.tables.insert(topic.to_owned(), state);
            result?;
        }
        let group = self.cfg.group.clone();
        let Some(state) = self.tables.get_mut(topic) else { return Ok(()) };

        // Bronze: every change not yet in it.
        let fresh: Vec<&Change> =
            changes.iter().filter(|c| state.bronze_at.get(&c.partition).is_none_or(|at| c.offset > *at)).collect();
        let bronze_positions = newer_positions(&group, topic, last, &state.bronze_at);
        if !fresh.is_empty()
            && let Some(table) = state.bronze.take()
        {
            let table = lake::append_bronze(table, &state.layout, &fresh, &bronze_positions).await;
            state.bronze = Some(table.map_err(|e| layer_error("bronze", &state.layout, e))?);
            self.stats.bronze_rows += fresh.len() as u64;
            metrics::counter!("orbas_lake_rows_total", "layer" => "bronze").increment(fresh.len() as u64);
            advance(&mut state.bronze_at, last);
        }

        // Silver: changes not yet in it, minus those a truncate (in this batch or before) supersedes.
        let fresh: Vec<&Change> =
            changes.iter().filter(|c| state.silver_at.get(&c.partition).is_none_or(|at| c.offset > *at)).collect();
        let truncate = fresh.iter().filter(|c| c.op == Op::Truncate).map(|c| (c.commit_lsn, c.lsn)).max();
        if let Some(t) = truncate
            && state.truncated_at.is_none_or(|at| t > at)
            && let Some(table) = state.silver.take()
        {
            let table = lake::truncate_silver(table, &state.layout, t).await;
            state.silver = Some(table.map_err(|e| layer_error("silver", &state.layout, e))?);
            state.truncated_at = Some(t);
        }
        let rows: Vec<&Change> = fresh
            .into_iter()
            .filter(|c| c.op != Op::Truncate && state.truncated_at.is_none_or(|at| (c.commit_lsn, c.lsn) > at))
            .collect();
        // With no row to merge the positions are not recorded either (no empty commits): a replay of
        // such a batch finds nothing newer than silver's rows.
        if !rows.is_empty()
            && let Some(table) = state.silver.take()
        {
            let silver_positions = newer_positions(&group, topic, last, &state.silver_at);
            let table = lake::merge_silver(table, &state.layout, &rows, &silver_positions).await;
            state.silver = Some(table.map_err(|e| layer_error("silver", &state.layout, e))?);
            metrics::counter!("orbas_lake_rows_total", "layer" => "silver").increment(rows.len() as u64);
            advance(&mut state.silver_at, last);
        }
        Ok(())
    }

    /// Adds columns the events carry that the layout lacks (ADD COLUMN in Postgres): re-reads the
    /// catalog; a column the catalog no longer has (dropped since) is kept as text.
    async fn evolve(&mut self, topic: &str, changes: &[Change]) -> Result<()> {
        let Some(state) = self.tables.get(topic) else { return Ok(()) };
        let known: HashSet<&str> = state.layout.columns.iter().map(|c| c.name.as_str()).collect();
        let unknown: Vec<String> = changes
            .iter()
            .filter_map(|c| c.row.as_ref())
            .flat_map(|r| r.keys())
            .filter(|k| !known.contains(k.as_str()))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let (schema, table) = (state.layout.schema.clone(), state.layout.table.clone());
        let fresh = schema::resolve(&self.pool, &schema, &table).await?;
        let Some(mut state) = self.tables.remove(topic) else { return Ok(()) };
        for name in unknown {
            let ty = fresh.as_ref().and_then(|f| f.column(&name)).map_or(LakeType::Text, |c| c.ty.clone());
            info!(table = %state.layout.qualified(), column = %name, ?ty, "new column");
            state.layout.columns.push(LakeColumn { name, ty });
        }
        state.bronze = None;
        state.silver = None;
        let result = self.ensure_tables(&mut state).await;
        self.tables.insert(topic.to_owned(), state);
        result
    }
}

/// A failed commit names its table (the service stops; the batch is re-read on restart).
fn layer_error(layer: &str, layout: &TableLayout, e: Error) -> Error {
    Error::Table { table: format!("{layer} {}", layout.qualified()), why: e.to_string() }
}

/// `txn` versions for the partitions whose last offset is beyond what the table holds.
fn newer_positions(
    group: &str,
    topic: &str,
    last: &BTreeMap<i32, i64>,
    held: &HashMap<i32, i64>,
) -> BTreeMap<String, i64> {
    last.iter()
        .filter(|(p, o)| held.get(p).is_none_or(|at| **o > *at))
        .map(|(p, o)| (lake::app_id(group, topic, *p), *o))
        .collect()
}

fn advance(held: &mut HashMap<i32, i64>, last: &BTreeMap<i32, i64>) {
    for (p, o) in last {
        let at = held.entry(*p).or_insert(*o);
        *at = (*at).max(*o);
    }
}

/// The columns file statistics may hold: all but the PII ones.
fn stats_columns(layout: &TableLayout, pii: &[String]) -> Vec<String> {
    layout
        .columns
        .iter()
        .filter(|c| {
            !pii.iter()
                .any(|p| p == &c.name || p.split_once('.').is_some_and(|(t, col)| t == layout.table && col == c.name))
        })
        .map(|c| c.name.clone())
        .collect()
}

/// Whether to stop: `stop` turned true, or its sender is gone (whoever could have said stop has
/// stopped; running on would spin, as every wait on the channel returns at once).
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_their_tables() {
        assert_eq!(table_of_topic("orbas.cdc.public.accounts"), Some(("public", "accounts")));
        assert_eq!(table_of_topic("orbas.cdc.transaction"), None);
        assert_eq!(table_of_topic("orbas.events"), None);
        assert_eq!(table_of_topic("orbas.cdc.public"), None);
        assert_eq!(table_of_topic("orbas.cdc.heartbeat"), None);
    }

    #[test]
    fn table_urls_nest_under_the_lake() {
        let lake = Url::parse("file:///var/lake").ok();
        let url = lake.and_then(|l| table_url(&l, "silver", "public", "accounts").ok());
        assert_eq!(url.map(|u| u.to_string()), Some("file:///var/lake/silver/public/accounts/".into()));
    }
}
