//! `orbas pipeline cdc`: the change-data-capture service. Start-up decides between three paths —
//! a new slot (create it with an exported snapshot, copy every table, record the snapshot, stream
//! from the consistent point), an existing slot whose snapshot finished (stream from its confirmed
//! position), and an existing slot whose snapshot never finished (drop it and start over). A finished
//! snapshot whose slot is gone or invalidated halts with [`Error::SlotLost`]: a silent re-snapshot
//! would hide the gap from every consumer.
//!
//! While streaming, each source transaction's events go to Kafka in commit order, framed by
//! BEGIN/END events on the transaction topic; the slot's confirmed flush LSN follows the
//! acknowledgement tracker (see [`crate::kafka`]); heartbeats keep an idle database from pinning WAL.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tracing::{info, warn};

use crate::catalog::{self, PublishedTable, Selection};
use crate::encode::{Encoder, EncoderSettings, Position, Relation};
use crate::error::{Error, Result};
use crate::event::{
    CollectionCount, EVENTS_TOPIC, Op, SnapshotMark, TRANSACTION_TOPIC, TransactionEvent, transaction_id,
};
use crate::kafka::{KafkaSettings, Output};
use crate::lsn::Lsn;
use crate::pgoutput::{self, Datum, Message};
use crate::replication::{
    ConnectParams, Frame, PG_EPOCH_OFFSET_MICROS, ReplicationClient, ReplicationStream, slot_state,
};
use crate::resnapshot::{Chunk, Resnapshots, SIGNAL_PREFIX, WATERMARK_PREFIX};
use crate::snapshot::{Snapshot, send_read};
use crate::value::write_str;

/// Heartbeats go here (Debezium's `__debezium-heartbeat.<prefix>`).
pub const HEARTBEAT_TOPIC: &str = "orbas.cdc.heartbeat";
/// Logical-message prefix of domain events.
pub const EVENTS_PREFIX: &str = "orbas";
/// Logical-message prefix of heartbeats.
pub const HEARTBEAT_PREFIX: &str = "orbas.heartbeat";

/// Everything the service needs.
#[derive(Debug, Clone)]
pub struct CdcConfig {
    /// The source database (a role with REPLICATION and read access to every published table).
    pub database_url: String,
    pub publication: String,
    pub slot: String,
    pub kafka: KafkaSettings,
    pub encoder: EncoderSettings,
    pub selection: Selection,
    /// Publish a tombstone (same key, null value) after every delete, for log compaction.
    pub tombstones: bool,
    pub snapshot_parallelism: usize,
    /// How often the slot's position is reported to the server.
    pub status_interval: Duration,
    /// How often a heartbeat message is written (zero: never).
    pub heartbeat_interval: Duration,
}

impl CdcConfig {
    /// The service's defaults (those of `orbas pipeline cdc` without flags): publication and slot
    /// `orbas_cdc`, every table, one partition per topic, tombstones, `source.name` `orbas`, status every
    /// second, a heartbeat every ten seconds.
    pub fn new(database_url: &str, brokers: &str) -> Result<Self> {
        Ok(CdcConfig {
            database_url: database_url.to_owned(),
            publication: "orbas_cdc".into(),
            slot: "orbas_cdc".into(),
            kafka: KafkaSettings {
                brokers: brokers.to_owned(),
                partitions: 1,
                replication_factor: 1,
                extra: vec![],
                topic_config: vec![],
            },
            encoder: EncoderSettings {
                server_name: "orbas".into(),
                database: ConnectParams::from_url(database_url)?.database,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                with_schemas: false,
                mask_key: None,
            },
            selection: Selection::default(),
            tombstones: true,
            snapshot_parallelism: 2,
            status_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(10),
        })
    }
}

/// Runs until `shutdown` resolves (graceful: everything read is acknowledged and confirmed before
/// returning) or an error stops the stream.
pub async fn run(cfg: CdcConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let params = ConnectParams::from_url(&cfg.database_url)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(cfg.snapshot_parallelism).unwrap_or(4).max(1) + 2)
        .connect(&cfg.database_url)
        .await?;
    let output = Output::new(cfg.kafka.clone())?;
    let encoder = Encoder::new(cfg.encoder.clone());
    let tables: Vec<PublishedTable> = catalog::published_tables(&pool, &cfg.publication)
        .await?
        .into_iter()
        .filter(|t| cfg.selection.carries(&t.schema, &t.table))
        .collect();
    let mut topics: Vec<String> = tables.iter().map(|t| crate::event::topic_for(&t.schema, &t.table)).collect();
    topics.extend([TRANSACTION_TOPIC, EVENTS_TOPIC, HEARTBEAT_TOPIC].map(String::from));
    output.ensure_topics(&topics).await?;

    let stream = open_stream(&cfg, &params, &pool, &output, &encoder, &tables).await?;
    let resnapshots = Resnapshots::load(&pool, &cfg.publication, &cfg.slot).await?;
    let heartbeat =
        (!cfg.heartbeat_interval.is_zero()).then(|| tokio::spawn(heartbeats(pool.clone(), cfg.heartbeat_interval)));
    let mut streamer = Streamer::new(&cfg, &pool, &output, &encoder, topics, resnapshots);
    let result = streamer.run(stream, shutdown).await;
    if let Some(h) = heartbeat {
        h.abort();
    }
    pool.close().await;
    result
}

/// Decides how to start (see the module docs) and returns a started stream.
async fn open_stream(
    cfg: &CdcConfig,
    params: &ConnectParams,
    pool: &PgPool,
    output: &Output,
    encoder: &Encoder,
    tables: &[PublishedTable],
) -> Result<ReplicationStream> {
    let record = catalog::snapshot_record(pool, &cfg.slot).await?;
    let slot = released_slot(pool, &cfg.slot).await?;
    let lost = |why: &str| Error::SlotLost { slot: cfg.slot.clone(), why: why.to_owned() };
    match (&slot, &record) {
        (Some(s), Some(r)) if r.completed => {
            if s.wal_status.as_deref() == Some("lost") {
                return Err(lost("its WAL was removed (wal_status = lost)"));
            }
            info!(slot = %cfg.slot, confirmed = ?s.confirmed_flush, "resuming from the slot");
            let client = ReplicationClient::connect(params, "orbas-cdc").await?;
            return client.start_logical(&cfg.slot, Lsn::ZERO, &pgoutput_options(&cfg.publication)).await;
        }
        (None, Some(r)) if r.completed => return Err(lost("the slot does not exist")),
        (Some(_), _) => {
            warn!(slot = %cfg.slot, "the slot's initial snapshot never finished: dropping the slot to start over");
            sqlx::query("SELECT pg_drop_replication_slot($1)").bind(&cfg.slot).execute(pool).await?;
        }
        (None, _) => {}
    }

    let mut client = ReplicationClient::connect(params, "orbas-cdc").await?;
    let created = client.create_slot_exporting_snapshot(&cfg.slot).await?;
    catalog::record_snapshot_started(pool, &cfg.slot, created.consistent_point).await?;
    let snapshot = Snapshot {
        pool,
        snapshot_name: Some(&created.snapshot_name),
        lsn: created.consistent_point,
        mark: SnapshotMark::True,
        encoder,
        selection: &cfg.selection,
        output,
        parallelism: cfg.snapshot_parallelism,
    };
    let stats = snapshot.run(tables).await?;
    output.drain().await?;
    catalog::record_snapshot_completed(
        pool,
        &cfg.slot,
        i32::try_from(stats.tables).unwrap_or(i32::MAX),
        i64::try_from(stats.rows).unwrap_or(i64::MAX),
    )
    .await?;
    info!(rows = stats.rows, at = %created.consistent_point, "initial snapshot acknowledged; streaming");
    client.start_logical(&cfg.slot, created.consistent_point, &pgoutput_options(&cfg.publication)).await
}

/// How long start-up waits for a previous holder of the slot to let go of it.
const SLOT_RELEASE_WAIT: Duration = Duration::from_secs(60);

/// The slot's state once no other process streams from it. A predecessor that died (crash,
/// `kill -9`, network loss) holds the slot until its walsender notices, usually within moments;
/// one still alive after [`SLOT_RELEASE_WAIT`] is another running instance: an error, since two
/// writers on one slot would interleave their output.
async fn released_slot(pool: &PgPool, slot: &str) -> Result<Option<crate::replication::SlotState>> {
    let deadline = Instant::now() + SLOT_RELEASE_WAIT;
    let mut warned = false;
    loop {
        let state = slot_state(pool, slot).await?;
        let Some(pid) = state.as_ref().and_then(|s| s.active_pid) else { return Ok(state) };
        if Instant::now() >= deadline {
            return Err(Error::Config(format!(
                "replication slot {slot:?} is in use by server process {pid}: is another `orbas pipeline cdc` running?"
            )));
        }
        if !warned {
            warn!(slot, pid, "the slot is still held by another connection; waiting for it to be released");
            warned = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `START_REPLICATION` options the service streams with.
pub fn pgoutput_options(publication: &str) -> Vec<(&'static str, &str)> {
    vec![("proto_version", "1"), ("publication_names", publication), ("messages", "true")]
}

async fn heartbeats(pool: PgPool, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("SELECT pg_logical_emit_message(false, $1, now()::text)")
            .bind(HEARTBEAT_PREFIX)
            .execute(&pool)
            .await
        {
            warn!(error = %e, "cannot write a heartbeat");
        }
    }
}

/// Postgres' commit time (µs since 2000-01-01) as Unix milliseconds.
fn unix_ms(pg_micros: i64) -> i64 {
    (pg_micros + PG_EPOCH_OFFSET_MICROS) / 1000
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The transaction being read.
#[derive(Debug)]
struct Txn {
    xid: u32,
    commit_ts_ms: i64,
    final_lsn: Lsn,
    id: String,
    seq: u64,
    began: bool,
    total: u64,
    per_table: Vec<(u32, u64)>,
}

/// The streaming loop's state.
struct Streamer<'a> {
    cfg: &'a CdcConfig,
    pool: &'a PgPool,
    output: &'a Output,
    encoder: &'a Encoder,
    relations: HashMap<u32, Option<Relation>>,
    /// Custom types (from Type messages): is the type an array?
    custom_array_types: HashMap<u32, bool>,
    known_topics: Vec<String>,
    txn: Option<Txn>,
    received: Lsn,
    server_end: Lsn,
    /// (end LSN, commit time) of transactions not yet known to be acknowledged, for the lag gauge.
    unacked: VecDeque<(Lsn, i64)>,
    resnapshots: Resnapshots,
    key: Vec<u8>,
    value: Vec<u8>,
    events: metrics::Counter,
    bytes: metrics::Counter,
}

impl<'a> Streamer<'a> {
    fn new(
        cfg: &'a CdcConfig,
        pool: &'a PgPool,
        output: &'a Output,
        encoder: &'a Encoder,
        known_topics: Vec<String>,
        resnapshots: Resnapshots,
    ) -> Self {
        Streamer {
            cfg,
            pool,
            output,
            encoder,
            relations: HashMap::new(),
            custom_array_types: HashMap::new(),
            known_topics,
            txn: None,
            received: Lsn::ZERO,
            server_end: Lsn::ZERO,
            unacked: VecDeque::new(),
            resnapshots,
            key: Vec::with_capacity(128),
            value: Vec::with_capacity(4096),
            events: metrics::counter!("orbas_cdc_events_total"),
            bytes: metrics::counter!("orbas_cdc_bytes_total"),
        }
    }

    async fn run(&mut self, mut stream: ReplicationStream, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let mut last_status = Instant::now();
        let mut rate = RateWindow::new();
        loop {
            let frame = tokio::select! {
                biased;
                () = &mut shutdown => break,
                f = stream.next(self.cfg.status_interval) => f?,
            };
            let mut reply = false;
            let mut next = frame.map(Ok);
            while let Some(f) = next {
                match f? {
                    Frame::XLogData { start, end, data } => {
                        self.server_end = self.server_end.max(end);
                        self.received = self.received.max(start);
                        self.handle(start, &data).await?;
                    }
                    Frame::Keepalive { end, reply: r } => {
                        self.server_end = self.server_end.max(end);
                        self.received = self.received.max(end);
                        if self.txn.is_none() {
                            self.output.tracker.confirm_if_idle(end);
                        }
                        reply |= r;
                    }
                }
                next = if last_status.elapsed() < self.cfg.status_interval { stream.try_next() } else { None };
            }
            if let Some(f) = self.output.tracker.failure() {
                return Err(Error::Delivery(f));
            }
            if self.resnapshots.wants_chunk() {
                self.resnapshots.take_chunk(self.pool, self.encoder, &self.cfg.selection).await?;
            }
            if reply || last_status.elapsed() >= self.cfg.status_interval {
                let acked = self.output.tracker.acked();
                stream.send_status(self.received, acked, false).await?;
                self.resnapshots.record(self.pool, acked).await?;
                self.report(acked, &mut rate);
                last_status = Instant::now();
            }
        }
        // Graceful stop: what was read goes out, is acknowledged, and the slot is told.
        info!("stopping: flushing Kafka and confirming the slot");
        self.output.flush(Duration::from_secs(30)).await?;
        self.output.drain().await?;
        let acked = self.output.tracker.acked();
        stream.send_status(self.received, acked, false).await?;
        self.resnapshots.record(self.pool, acked).await?;
        stream.close().await?;
        info!(confirmed = %acked, "stopped");
        Ok(())
    }

    fn report(&mut self, acked: Lsn, rate: &mut RateWindow) {
        while self.unacked.front().is_some_and(|(end, _)| *end <= acked) {
            self.unacked.pop_front();
        }
        let lag_s = self.unacked.front().map_or(0.0, |(_, ts)| (now_ms() - ts).max(0) as f64 / 1000.0);
        metrics::gauge!("orbas_cdc_acked_lsn").set(acked.0 as f64);
        metrics::gauge!("orbas_cdc_received_lsn").set(self.received.0 as f64);
        metrics::gauge!("orbas_cdc_lag_bytes").set(self.server_end.0.saturating_sub(acked.0) as f64);
        metrics::gauge!("orbas_cdc_lag_seconds").set(lag_s);
        let delivered = self.output.tracker.delivered();
        metrics::gauge!("orbas_cdc_events_per_second").set(rate.update(delivered));
    }

    fn relation_for(&self, id: u32) -> Result<Option<&Relation>> {
        match self.relations.get(&id) {
            Some(r) => Ok(r.as_ref()),
            None => Err(Error::UnknownRelation(id)),
        }
    }

    async fn on_relation(&mut self, id: u32, namespace: &str, name: &str, wire: Vec<(String, u32)>) -> Result<()> {
        if !self.cfg.selection.carries(namespace, name) {
            self.relations.insert(id, None);
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        let cols = catalog::columns(&mut conn, id).await?;
        drop(conn);
        let mut rel =
            catalog::relation(&self.encoder.settings, &self.cfg.selection, namespace, name, &cols, Some(&wire));
        // Arrays of custom types announced by Type messages.
        for (c, (_, oid)) in rel.columns.iter_mut().zip(&wire) {
            if self.custom_array_types.get(oid) == Some(&true) {
                c.kind = crate::value::Kind::Array(Box::new(crate::value::Kind::Text));
            }
        }
        if !self.known_topics.contains(&rel.topic) {
            self.output.ensure_topics(std::slice::from_ref(&rel.topic)).await?;
            self.known_topics.push(rel.topic.clone());
        }
        info!(table = %format!("{namespace}.{name}"), columns = rel.columns.len(), "relation");
        self.relations.insert(id, Some(rel));
        Ok(())
    }

    async fn begin_if_needed(&mut self) -> Result<()> {
        let Some(t) = self.txn.as_mut() else { return Ok(()) };
        if t.began {
            return Ok(());
        }
        t.began = true;
        let ev = TransactionEvent::Begin { id: t.id.clone(), ts_ms: t.commit_ts_ms };
        let (seq, key) = (t.seq, tx_key(&t.id));
        let value = serde_json::to_vec(&ev).unwrap_or_default();
        self.output.send(seq, TRANSACTION_TOPIC, None, Some(&key), Some(&value)).await
    }

    async fn handle(&mut self, lsn: Lsn, data: &[u8]) -> Result<()> {
        match pgoutput::decode(data)? {
            Message::Begin { final_lsn, commit_ts, xid } => {
                let seq = self.output.tracker.open();
                self.txn = Some(Txn {
                    xid,
                    commit_ts_ms: unix_ms(commit_ts),
                    final_lsn,
                    id: transaction_id(i64::from(xid), final_lsn.as_i64()),
                    seq,
                    began: false,
                    total: 0,
                    per_table: Vec::new(),
                });
            }
            Message::Commit { end_lsn, commit_ts, .. } => {
                let Some(t) = self.txn.take() else {
                    return Err(Error::Protocol("Commit without Begin".into()));
                };
                if t.began {
                    let data_collections = t
                        .per_table
                        .iter()
                        .filter_map(|(rel, n)| {
                            let r = self.relations.get(rel)?.as_ref()?;
                            Some(CollectionCount {
                                data_collection: format!("{}.{}", r.schema, r.table),
                                event_count: *n,
                            })
                        })
                        .collect();
                    let ev = TransactionEvent::End {
                        id: t.id.clone(),
                        ts_ms: t.commit_ts_ms,
                        event_count: t.total,
                        data_collections,
                    };
                    let value = serde_json::to_vec(&ev).unwrap_or_default();
                    self.output.send(t.seq, TRANSACTION_TOPIC, None, Some(&tx_key(&t.id)), Some(&value)).await?;
                    self.unacked.push_back((end_lsn, unix_ms(commit_ts)));
                }
                self.output.tracker.close(t.seq, end_lsn);
            }
            Message::Relation { id, namespace, name, columns, .. } => {
                let wire = columns.iter().map(|c| (c.name.to_owned(), c.type_oid)).collect();
                let (namespace, name) = (namespace.to_owned(), name.to_owned());
                self.on_relation(id, &namespace, &name, wire).await?;
            }
            Message::Type { id, name, .. } => {
                self.custom_array_types.insert(id, name.starts_with('_'));
            }
            Message::Origin { .. } => {}
            Message::Insert { relation, new } => self.row_event(relation, Op::Create, None, Some(new), lsn).await?,
            Message::Update { relation, old, new } => self.row_event(relation, Op::Update, old, Some(new), lsn).await?,
            Message::Delete { relation, old } => self.row_event(relation, Op::Delete, Some(old), None, lsn).await?,
            Message::Truncate { relations, .. } => {
                for rel in relations {
                    self.truncate_event(rel, lsn).await?;
                }
            }
            Message::Message { transactional, lsn: msg_lsn, prefix, content } => {
                self.message_event(transactional, msg_lsn, prefix, content).await?;
            }
        }
        Ok(())
    }

    fn position(&mut self, rel_id: u32, lsn: Lsn) -> (Position<'static>, Option<(String, u64, u64)>) {
        let t = self.txn.as_mut();
        let (tx_id, commit_lsn, ts, order) = match t {
            Some(t) => {
                t.total += 1;
                let per = match t.per_table.iter_mut().find(|(r, _)| *r == rel_id) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        t.per_table.push((rel_id, 1));
                        1
                    }
                };
                (Some(i64::from(t.xid)), t.final_lsn, t.commit_ts_ms, Some((t.id.clone(), t.total, per)))
            }
            None => (None, lsn, now_ms(), None),
        };
        (Position { snapshot: SnapshotMark::False, ts_ms: ts, tx_id, lsn, commit_lsn, transaction: None }, order)
    }

    /// Where a change of `rel_id` goes: its transaction's sequence number and position (writing the
    /// transaction's BEGIN first if this is its first event). `None` when the table is not carried.
    async fn place(
        &mut self,
        rel_id: u32,
        lsn: Lsn,
    ) -> Result<Option<(u64, Position<'static>, Option<(String, u64, u64)>)>> {
        if self.relation_for(rel_id)?.is_none() {
            return Ok(None);
        }
        self.begin_if_needed().await?;
        let (pos, order) = self.position(rel_id, lsn);
        Ok(Some((self.txn.as_ref().map_or(0, |t| t.seq), pos, order)))
    }

    async fn row_event(
        &mut self,
        rel_id: u32,
        op: Op,
        before: Option<Vec<Datum<'_>>>,
        after: Option<Vec<Datum<'_>>>,
        lsn: Lsn,
    ) -> Result<()> {
        let Some((seq, pos, order)) = self.place(rel_id, lsn).await? else { return Ok(()) };
        let Some(Some(rel)) = self.relations.get(&rel_id) else { return Ok(()) };
        let pos = Position { transaction: order.as_ref().map(|(id, a, b)| (id.as_str(), *a, *b)), ..pos };
        self.key.clear();
        self.value.clear();
        let key_row: &dyn crate::encode::Row = match (&after, &before) {
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => return Ok(()),
        };
        let has_key = self.encoder.write_key(rel, key_row, &mut self.key);
        if has_key {
            self.resnapshots.on_change(&rel.schema, &rel.table, self.txn.as_ref().map(|t| t.xid), &self.key);
        }
        self.encoder.write_event(
            rel,
            op,
            before.as_ref().map(|b| b as &dyn crate::encode::Row),
            after.as_ref().map(|a| a as &dyn crate::encode::Row),
            &pos,
            now_ms(),
            &mut self.value,
        );
        let key = has_key.then_some(self.key.as_slice());
        self.events.increment(1);
        self.bytes.increment((self.key.len() + self.value.len()) as u64);
        self.output.send(seq, &rel.topic, None, key, Some(&self.value)).await?;
        if op == Op::Delete && self.cfg.tombstones && has_key {
            self.output.send(seq, &rel.topic, None, key, None).await?;
        }
        Ok(())
    }

    /// A truncate goes to every partition of the table's topic, so it is ordered with every row.
    async fn truncate_event(&mut self, rel_id: u32, lsn: Lsn) -> Result<()> {
        let Some((seq, pos, order)) = self.place(rel_id, lsn).await? else { return Ok(()) };
        let Some(Some(rel)) = self.relations.get(&rel_id) else { return Ok(()) };
        let pos = Position { transaction: order.as_ref().map(|(id, a, b)| (id.as_str(), *a, *b)), ..pos };
        self.value.clear();
        self.resnapshots.on_truncate(&rel.schema, &rel.table, self.txn.as_ref().map(|t| t.xid));
        self.encoder.write_event(rel, Op::Truncate, None, None, &pos, now_ms(), &mut self.value);
        let partitions = self.output.partitions(&rel.topic).await?;
        for p in 0..partitions {
            self.output.send(seq, &rel.topic, Some(p), None, Some(&self.value)).await?;
        }
        self.events.increment(1);
        Ok(())
    }

    /// Domain events (`orbas` prefix) go to `orbas.events`, heartbeats to the heartbeat topic.
    async fn message_event(&mut self, transactional: bool, lsn: Lsn, prefix: &str, content: &[u8]) -> Result<()> {
        let topic = match prefix {
            EVENTS_PREFIX => EVENTS_TOPIC,
            HEARTBEAT_PREFIX => HEARTBEAT_TOPIC,
            SIGNAL_PREFIX => return self.resnapshots.on_signal(self.pool, content).await,
            WATERMARK_PREFIX => {
                return match self.resnapshots.on_watermark(content) {
                    Some(chunk) => self.publish_chunk(chunk, lsn).await,
                    None => Ok(()),
                };
            }
            _ => return Ok(()),
        };
        let own_txn = !(transactional && self.txn.is_some());
        if !own_txn && topic == EVENTS_TOPIC {
            self.begin_if_needed().await?;
        }
        let seq = match (&self.txn, own_txn) {
            (Some(t), false) => t.seq,
            _ => self.output.tracker.open(),
        };
        let mut value = Vec::with_capacity(content.len() + 200);
        value.extend_from_slice(b"{\"prefix\":");
        write_str(prefix, &mut value);
        value.extend_from_slice(b",\"content\":");
        let parsed = serde_json::from_slice::<serde_json::Value>(content).ok();
        match &parsed {
            Some(_) => value.extend_from_slice(content),
            None => write_str(&String::from_utf8_lossy(content), &mut value),
        }
        let (tx_id, commit_lsn, ts) = match &self.txn {
            Some(t) if !own_txn => (Some(i64::from(t.xid)), t.final_lsn, t.commit_ts_ms),
            _ => (None, lsn, now_ms()),
        };
        let tx = tx_id.map_or_else(|| "null".to_owned(), |x| x.to_string());
        value.extend_from_slice(
            format!(
                ",\"source\":{{\"db\":{},\"txId\":{tx},\"lsn\":{},\"commit_lsn\":{},\"ts_ms\":{ts}}},\"transactional\":{transactional}}}",
                serde_json::Value::String(self.encoder.settings.database.clone()),
                lsn.as_i64(),
                commit_lsn.as_i64()
            )
            .as_bytes(),
        );
        let key = parsed.as_ref().and_then(|v| v.get("key").map(serde_json::Value::to_string));
        self.output.send(seq, topic, None, key.as_deref().map(str::as_bytes), Some(&value)).await?;
        if let Some(t) = self.txn.as_mut().filter(|_| !own_txn) {
            t.total += 1;
        } else {
            self.output.tracker.close(seq, lsn);
        }
        Ok(())
    }
}

impl Streamer<'_> {
    /// A re-snapshot chunk's remaining rows as `op: r`, `snapshot: incremental` events at its
    /// watermark's LSN (see [`crate::resnapshot`]).
    async fn publish_chunk(&mut self, chunk: Chunk, lsn: Lsn) -> Result<()> {
        let seq = self.output.tracker.open();
        let now = now_ms();
        let pos = Position {
            snapshot: SnapshotMark::Incremental,
            ts_ms: now,
            tx_id: None,
            lsn,
            commit_lsn: lsn,
            transaction: None,
        };
        let rel = &chunk.rel;
        let mut rows = 0i64;
        for line in chunk.rows() {
            send_read(self.encoder, self.output, rel, seq, line, &pos, now, &mut self.key, &mut self.value).await?;
            self.bytes.increment((self.key.len() + self.value.len()) as u64);
            rows += 1;
        }
        self.events.increment(u64::try_from(rows).unwrap_or(0));
        metrics::counter!("orbas_cdc_resnapshot_rows_total").increment(u64::try_from(rows).unwrap_or(0));
        self.output.tracker.close(seq, lsn);
        self.resnapshots.published(&chunk, lsn, rows);
        Ok(())
    }
}

fn tx_key(id: &str) -> Vec<u8> {
    let mut k = b"{\"id\":".to_vec();
    write_str(id, &mut k);
    k.push(b'}');
    k
}

/// Events per second over the last ten seconds.
struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    fn new() -> Self {
        RateWindow { samples: VecDeque::new() }
    }

    fn update(&mut self, total: u64) -> f64 {
        let now = Instant::now();
        self.samples.push_back((now, total));
        while self.samples.len() > 2
            && self.samples.front().is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(10))
        {
            self.samples.pop_front();
        }
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => (n1 - n0) as f64 / t1.duration_since(*t0).as_secs_f64(),
            _ => 0.0,
        }
    }
}
