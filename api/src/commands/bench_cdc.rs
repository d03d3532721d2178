//! `orbas bench cdc`: change-data-capture throughput and latency, side by side with the rate at which
//! Postgres itself decodes the same WAL.
//!
//! One private cluster, one broker (tansu, in memory), one database with the Orbas schema plus a
//! CRM-shaped table `bench_changes`. After the service's (empty) initial snapshot, a second slot —
//! the peer — is created, then `--rows` inserts are committed in `--tx-rows` transactions.
//!
//! - **Peer**: `pg_logical_slot_get_binary_changes` with pgoutput on the second slot: the server's
//!   decoding of the same WAL inside the backend, no network, no consumer — the ceiling of any
//!   logical-replication CDC.
//! - **Ours**: the CDC service (in this process, same code as `orbas pipeline cdc`) resumes its slot;
//!   the clock stops when the slot's confirmed flush LSN reaches the end of the burst, i.e. when
//!   every event is Debezium JSON in Kafka, acknowledged, and confirmed to Postgres.
//! - **Latency**: with the service running, `--rate` changes/s are committed for `--seconds` (100
//!   transactions a second); a consumer subscribed to the topic records, per event, the time from the
//!   commit (`source.ts_ms`) until a Kafka consumer holds it.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use orbas_oltp::db;
use orbas_pipeline::broker::{Broker, BrokerOptions};
use orbas_pipeline::catalog::Selection;
use orbas_pipeline::cdc::{self, CdcConfig};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::bench_seed::{bench_server, fresh_database};
use crate::cli::BenchCdcArgs;
use crate::settings::Settings;

const DATABASE: &str = "orbas_bench_cdc";
const TABLE: &str = "public.bench_changes";
const TOPIC: &str = "orbas.cdc.public.bench_changes";
const OUR_SLOT: &str = "orbas_bench_cdc";
const PEER_SLOT: &str = "orbas_bench_peer";
const RECV_SLOT: &str = "orbas_bench_recv";
const DRAIN_SLOT: &str = "orbas_bench_drain";

pub async fn run(settings: &Settings, args: &BenchCdcArgs) -> anyhow::Result<()> {
    if args.rows == 0 || args.tx_rows == 0 || args.rate < 100 {
        bail!("--rows and --tx-rows must be positive and --rate at least 100");
    }
    let (cluster, base_url) = bench_server(settings, args.socket).await?;
    let url = fresh_database(&base_url, DATABASE).await?;
    let pool = db::connect(&url, 4).await?;
    create_table(&pool).await?;
    let broker = Broker::start(BrokerOptions::default()).context("starting the tansu broker (./scripts/setup.sh)")?;
    let mut cfg = config(&url, &broker.bootstrap())?;
    cfg.kafka.extra = super::pipeline::kafka_properties(&args.kafka_property)?;

    // The service's first start: slot, (empty) snapshot, then stop.
    let first = Service::start(cfg.clone());
    wait_sql(&pool, "SELECT completed_at IS NOT NULL FROM orbas.cdc_snapshots", Duration::from_secs(120)).await?;
    first.stop().await?;
    let mut rounds = Vec::new();
    let mut rss_kib = None;
    for round in 0..args.rounds.max(1) {
        let r = measure_round(&pool, &url, &cfg, args, round * args.rows).await?;
        rss_kib = rss_kib.max(peak_rss_kib());
        eprintln!(
            "round {}: peer {:.2}s, pg_recvlogical {:.2}s, drain {:.2}s, orbas {:.2}s",
            round + 1,
            r.peer.as_secs_f64(),
            r.recv.as_secs_f64(),
            r.drain.as_secs_f64(),
            r.ours.as_secs_f64()
        );
        rounds.push(r);
    }

    // Steady load with the service running.
    let service = Service::start(cfg.clone());
    let latency = steady_latency(&pool, &broker.bootstrap(), args).await?;
    service.stop().await?;
    let topic_messages = topic_high_watermark(&broker.bootstrap())?;

    pool.close().await;
    drop(broker);
    if let Some(c) = cluster {
        c.stop().await?;
    }
    print_markdown(&Report { args, rounds, rss_kib, latency, topic_messages });
    Ok(())
}

/// One round's timings.
struct Round {
    write: Duration,
    wal_bytes: i64,
    peer: Duration,
    peer_messages: i64,
    peer_bytes: i64,
    recv: Duration,
    drain: Duration,
    ours: Duration,
}

/// A burst of `args.rows` inserts from id `first`, then each reader over the same WAL.
async fn measure_round(
    pool: &PgPool,
    url: &str,
    cfg: &CdcConfig,
    args: &BenchCdcArgs,
    first: u64,
) -> anyhow::Result<Round> {
    for slot in [PEER_SLOT, RECV_SLOT, DRAIN_SLOT] {
        sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')").bind(slot).execute(pool).await?;
    }
    let written = Instant::now();
    write_burst(pool, first, args.rows, args.tx_rows).await?;
    let write = written.elapsed();
    let end_lsn: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text").fetch_one(pool).await?;
    let wal_bytes: i64 = sqlx::query_scalar(
        "SELECT pg_wal_lsn_diff($1::pg_lsn, restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $2",
    )
    .bind(&end_lsn)
    .bind(PEER_SLOT)
    .fetch_one(pool)
    .await?;

    let started = Instant::now();
    let (peer_messages, peer_bytes): (i64, i64) = sqlx::query_as(
        "SELECT count(*)::bigint, coalesce(sum(octet_length(data)), 0)::bigint \
         FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '1', \
              'publication_names', 'orbas_cdc', 'messages', 'true')",
    )
    .bind(PEER_SLOT)
    .fetch_one(pool)
    .await?;
    let peer = started.elapsed();
    drop_slot(pool, PEER_SLOT).await?;
    let recv = pg_recvlogical(url, &end_lsn).await?;
    drop_slot(pool, RECV_SLOT).await?;
    let drain = drain(url, end_lsn.parse()?).await?;
    drop_slot(pool, DRAIN_SLOT).await?;

    let started = Instant::now();
    let service = Service::start(cfg.clone());
    let confirmed = format!(
        "SELECT confirmed_flush_lsn >= '{end_lsn}'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{OUR_SLOT}'"
    );
    wait_sql(pool, &confirmed, Duration::from_secs(1800)).await?;
    let ours = started.elapsed();
    service.stop().await?;
    Ok(Round { write, wal_bytes, peer, peer_messages, peer_bytes, recv, drain, ours })
}

pub(super) fn config(url: &str, brokers: &str) -> anyhow::Result<CdcConfig> {
    let mut cfg = CdcConfig::new(url, brokers)?;
    cfg.slot = OUR_SLOT.into();
    cfg.selection = Selection { include: vec![TABLE.into()], ..Selection::default() };
    cfg.status_interval = Duration::from_millis(100);
    cfg.heartbeat_interval = Duration::ZERO;
    Ok(cfg)
}

pub(super) async fn create_table(pool: &PgPool) -> anyhow::Result<()> {
    create_published(
        pool,
        "bench_changes",
        "id bigint PRIMARY KEY, account_id uuid NOT NULL, stage text NOT NULL, amount numeric(14,2) NOT NULL,
         probability real, close_date date, updated_at timestamptz NOT NULL DEFAULT now(), tags text[], note text",
    )
    .await
}

/// Creates `public.<table>` with `columns`, full replica identity, in the CDC publication.
pub(super) async fn create_published(pool: &PgPool, table: &str, columns: &str) -> anyhow::Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE public.{table} ({columns});
         ALTER TABLE public.{table} REPLICA IDENTITY FULL;
         ALTER PUBLICATION orbas_cdc ADD TABLE public.{table};"
    )))
    .execute(pool)
    .await?;
    Ok(())
}

/// A tansu broker on its durable SQLite engine in a temporary directory, as the demo runs it.
pub(super) fn durable_broker() -> anyhow::Result<(tempfile::TempDir, Broker)> {
    let dir = tempfile::Builder::new().prefix("orbas-bench-broker-").tempdir()?;
    let broker =
        Broker::start(BrokerOptions::durable(dir.path())).context("starting the tansu broker (./scripts/setup.sh)")?;
    Ok((dir, broker))
}

/// An empty lake in a temporary directory, and its URL.
pub(super) fn temp_lake() -> anyhow::Result<(tempfile::TempDir, url::Url)> {
    let dir = tempfile::Builder::new().prefix("orbas-bench-lake-").tempdir()?;
    let url = url::Url::from_directory_path(dir.path()).map_err(|()| anyhow::anyhow!("lake path"))?;
    Ok((dir, url))
}

/// Inserts rows `[first, first + n)` in one statement (the caller owns the transaction).
const INSERT: &str = "INSERT INTO public.bench_changes \
     SELECT g, md5(g::text)::uuid, (ARRAY['prospect','qualify','proposal','won','lost'])[1 + g % 5], \
            (g % 10000000) / 100.0 + 0.01, (g % 100) / 100.0, date '2026-01-01' + (g % 365)::int, now(), \
            ARRAY['t' || (g % 7), 'r' || (g % 11)], repeat('n', (g % 64)::int) \
     FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) g";

pub(super) async fn write_burst(pool: &PgPool, first: u64, rows: u64, tx_rows: u64) -> anyhow::Result<()> {
    let mut done = 0u64;
    while done < rows {
        let n = tx_rows.min(rows - done);
        sqlx::query(INSERT).bind(i64::try_from(first + done)?).bind(i64::try_from(n)?).execute(pool).await?;
        done += n;
    }
    Ok(())
}

/// Commits `rate` changes a second (100 transactions a second) for `seconds` while a consumer
/// measures commit → consumed for each event.
async fn steady_latency(pool: &PgPool, brokers: &str, args: &BenchCdcArgs) -> anyhow::Result<Latency> {
    let per_tx = (args.rate / 100).max(1);
    let transactions = args.seconds * 100;
    let expected = per_tx * transactions;
    let start_ms = chrono::Utc::now().timestamp_millis();
    let consumer = {
        let brokers = brokers.to_owned();
        tokio::task::spawn_blocking(move || consume_latencies(&brokers, start_ms, expected))
    };
    tokio::time::sleep(Duration::from_secs(2)).await; // the consumer's assignment settles
    let first_id = 1_000_000_000i64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let began = Instant::now();
    for i in 0..transactions {
        tick.tick().await;
        let first = first_id + i64::try_from(i * per_tx)?;
        sqlx::query(INSERT).bind(first).bind(i64::try_from(per_tx)?).execute(pool).await?;
    }
    let write_time = began.elapsed();
    let mut samples = consumer.await??;
    samples.sort_unstable();
    Ok(Latency { samples, achieved_rate: expected as f64 / write_time.as_secs_f64() })
}

/// Reads the topic from its end; for each event committed after `start_ms`, receive time − commit time.
fn consume_latencies(brokers: &str, start_ms: i64, expected: u64) -> anyhow::Result<Vec<i64>> {
    let consumer = reader(brokers, "orbas-bench-latency", TOPIC, Offset::End, true)?;
    let mut samples = Vec::with_capacity(usize::try_from(expected)?);
    let deadline = Instant::now() + Duration::from_secs(600);
    while (samples.len() as u64) < expected {
        if Instant::now() > deadline {
            bail!("latency consumer saw {} of {expected} events", samples.len());
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = m?;
        let now = chrono::Utc::now().timestamp_millis();
        let Some(payload) = m.payload() else { continue };
        let v: serde_json::Value = serde_json::from_slice(payload)?;
        let committed = v["source"]["ts_ms"].as_i64().context("event without source.ts_ms")?;
        if committed >= start_ms {
            samples.push(now - committed);
        }
    }
    Ok(samples)
}

/// A read_committed consumer of partition 0 of `topic` from `from`, outside any group's offsets;
/// `low_latency` asks the broker to answer fetches at once.
pub(super) fn reader(
    brokers: &str,
    group: &str,
    topic: &str,
    from: Offset,
    low_latency: bool,
) -> anyhow::Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    if low_latency {
        config.set("fetch.wait.max.ms", "5").set("fetch.min.bytes", "1");
    }
    let consumer: BaseConsumer = config.create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, from)?;
    consumer.assign(&tpl)?;
    Ok(consumer)
}

pub(super) fn topic_high_watermark(brokers: &str) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let (_, high) = consumer.fetch_watermarks(TOPIC, 0, Duration::from_secs(10))?;
    Ok(high)
}

/// The walsender streaming the same WAL to a client that discards it: `pg_recvlogical` to /dev/null.
async fn pg_recvlogical(url: &str, end_lsn: &str) -> anyhow::Result<Duration> {
    let bin = std::env::var_os("ORBAS_PG_BIN")
        .map(|d| std::path::PathBuf::from(d).join("pg_recvlogical"))
        .unwrap_or_else(|| "pg_recvlogical".into());
    let started = Instant::now();
    let out = tokio::process::Command::new(&bin)
        .args(["-d", url, "--slot", RECV_SLOT, "--start", "--no-loop", "-f", "/dev/null"])
        .args(["-o", "proto_version=1", "-o", "publication_names=orbas_cdc", "--endpos", end_lsn])
        .output()
        .await
        .with_context(|| format!("running {} (install postgresql-client)", bin.display()))?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!("pg_recvlogical failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(elapsed)
}

/// The walsender streaming the same WAL to our replication client, which only reads the frames: the
/// ceiling of the streaming protocol itself, and what is left for decoding, encoding and Kafka.
async fn drain(url: &str, end: orbas_pipeline::Lsn) -> anyhow::Result<Duration> {
    use orbas_pipeline::replication::{ConnectParams, Frame, ReplicationClient};
    let params = ConnectParams::from_url(url)?;
    let started = Instant::now();
    let client = ReplicationClient::connect(&params, "orbas-bench-drain").await?;
    let options = cdc::pgoutput_options("orbas_cdc");
    let mut stream = client.start_logical(DRAIN_SLOT, orbas_pipeline::Lsn::ZERO, &options).await?;
    let mut last_status = Instant::now();
    let mut at = orbas_pipeline::Lsn::ZERO;
    while at < end {
        match stream.next(Duration::from_millis(100)).await? {
            Some(Frame::XLogData { start, .. }) => at = at.max(start),
            Some(Frame::Keepalive { end, .. }) => at = at.max(end),
            None => {}
        }
        if last_status.elapsed() > Duration::from_millis(100) {
            stream.send_status(at, at, false).await?;
            last_status = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    stream.close().await?;
    Ok(elapsed)
}

/// Drops `slot` once its last reader let go of it.
async fn drop_slot(pool: &PgPool, slot: &str) -> anyhow::Result<()> {
    let idle = format!("SELECT active_pid IS NULL FROM pg_replication_slots WHERE slot_name = '{slot}'");
    wait_sql(pool, &idle, Duration::from_secs(30)).await?;
    sqlx::query("SELECT pg_drop_replication_slot($1)").bind(slot).execute(pool).await?;
    Ok(())
}

pub(super) async fn wait_sql(pool: &PgPool, sql: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let ok: Option<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_optional(pool).await?;
        if ok == Some(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for: {sql}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The CDC service running in this process.
pub(super) struct Service {
    stop: oneshot::Sender<()>,
    task: JoinHandle<orbas_pipeline::Result<()>>,
}

impl Service {
    pub(super) fn start(cfg: CdcConfig) -> Self {
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(cdc::run(cfg, async move {
            let _ = rx.await;
        }));
        Service { stop, task }
    }

    pub(super) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?.context("the CDC service failed")
    }
}

/// This process's peak resident set (VmHWM) in KiB.
pub(super) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Latency {
    /// Sorted, milliseconds.
    samples: Vec<i64>,
    achieved_rate: f64,
}

impl Latency {
    fn percentile(&self, p: f64) -> i64 {
        if self.samples.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * (self.samples.len() - 1) as f64).round() as usize;
        self.samples[rank.min(self.samples.len() - 1)]
    }
}

struct Report<'a> {
    args: &'a BenchCdcArgs,
    rounds: Vec<Round>,
    rss_kib: Option<u64>,
    latency: Latency,
    topic_messages: i64,
}

/// Median, min and max seconds of `pick` over the rounds.
fn spread(rounds: &[Round], pick: impl Fn(&Round) -> Duration) -> (f64, f64, f64) {
    let mut v: Vec<f64> = rounds.iter().map(|r| pick(r).as_secs_f64()).collect();
    v.sort_by(f64::total_cmp);
    let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
    (median, v.first().copied().unwrap_or(0.0), v.last().copied().unwrap_or(0.0))
}

fn print_markdown(r: &Report<'_>) {
    let rows = r.args.rows as f64;
    let first = r.rounds.first();
    println!(
        "{} row changes (inserts) in {}-row transactions per round, {} round(s), clients connected over {}; \
         a round writes in {:.1} s, {:.0} MiB of WAL\n",
        r.args.rows,
        r.args.tx_rows,
        r.rounds.len(),
        if r.args.socket { "the Unix-domain socket" } else { "loopback TCP" },
        first.map_or(0.0, |f| f.write.as_secs_f64()),
        first.map_or(0.0, |f| f.wal_bytes as f64 / 1_048_576.0)
    );
    println!("| reader of the same WAL | median s (min–max) | changes/s (median) | output |");
    println!("|---|---:|---:|---|");
    let line = |name: &str, (m, lo, hi): (f64, f64, f64), out: String| {
        println!("| {name} | {m:.2} ({lo:.2}–{hi:.2}) | {:.0} | {out} |", rows / m.max(1e-9));
    };
    let peer = spread(&r.rounds, |x| x.peer);
    let ours = spread(&r.rounds, |x| x.ours);
    line(
        "`pg_logical_slot_get_binary_changes` (pgoutput, in the server)",
        peer,
        format!(
            "{} pgoutput messages, {:.0} MiB",
            first.map_or(0, |f| f.peer_messages),
            first.map_or(0, |f| f.peer_bytes) as f64 / 1_048_576.0
        ),
    );
    line(
        "`pg_recvlogical` (the walsender streaming it to a client that discards it)",
        spread(&r.rounds, |x| x.recv),
        "written to /dev/null".into(),
    );
    line(
        "Orbas' replication client reading the frames, nothing else",
        spread(&r.rounds, |x| x.drain),
        "frames read and dropped".into(),
    );
    line(
        "`orbas pipeline cdc` (stream → Debezium JSON → Kafka acked → slot confirmed)",
        ours,
        format!("{} Kafka messages in the topic at the end", r.topic_messages),
    );
    println!("\nratio orbas / Postgres decoding (medians): {:.0} %", 100.0 * peer.0 / ours.0.max(1e-9));
    if let Some(kib) = r.rss_kib {
        println!("peak RSS of this process (service + writer + consumer): {:.0} MiB", kib as f64 / 1024.0);
    }
    let l = &r.latency;
    println!(
        "\nsteady load: {} changes/s asked, {:.0} achieved, {} s, {} events measured",
        r.args.rate,
        l.achieved_rate,
        r.args.seconds,
        l.samples.len()
    );
    println!("\n| commit → consumed | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| `orbas pipeline cdc` at {} changes/s | {} | {} | {} | {} |",
        r.args.rate,
        l.percentile(50.0),
        l.percentile(90.0),
        l.percentile(99.0),
        l.samples.last().copied().unwrap_or(0)
    );
}
