//! `orbas bench freshness`: how long after a Postgres commit its rows answer a SQL query over the lake,
//! at a steady write rate — side by side, in the same run, with how long the same commits take to
//! reach a Kafka consumer of the CDC topic (the part of the latency that is not the lake's).
//!
//! One private cluster, one durable broker (tansu on SQLite, as in the demo), the CDC service and the
//! lake sink with their default settings (1 s micro-batches), and the SQL engine of `POST /v1/sql` and
//! the SQL port ([`orbas_warehouse::sql::Lake`], 200 ms freshness window). After a warm-up, `--rate`
//! changes a second are committed for `--seconds` (100 transactions a second, ids ascending); per
//! transaction the commit time is the moment the commit returned to the writer.
//!
//! - **Ours (commit → visible in SQL):** a reader opens a tenant session every `--poll-ms` and runs
//!   `SELECT max(id)` over the silver table as a user would; a transaction is visible the first time
//!   the answer covers its last id. The polling period bounds the measurement error.
//! - **Peer (commit → Kafka consumer):** a consumer assigned to the CDC topic records when it holds
//!   each transaction's last row.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use orbas_oltp::db;
use orbas_pipeline::catalog::Selection;
use orbas_pipeline::cdc::CdcConfig;
use orbas_warehouse::sink::{Sink, SinkConfig};
use orbas_warehouse::sql::{Lake, Limits};
use rdkafka::Offset;
use rdkafka::message::Message as _;
use sqlx::PgPool;

use super::bench_cdc::{Service, create_published, durable_broker, reader, temp_lake, wait_sql};
use super::bench_seed::{bench_server, fresh_database};
use crate::cli::BenchFreshnessArgs;
use crate::settings::Settings;

const DATABASE: &str = "orbas_bench_freshness";
const TABLE: &str = "bench_fresh";
const TOPIC: &str = "orbas.cdc.public.bench_fresh";
const TENANT: &str = "0193a8f0-0000-7000-8000-000000000001";
const TX_PER_SECOND: u64 = 100;

/// Commit instants of the transactions, keyed by their last id, shared with the observers.
type Commits = Arc<Mutex<BTreeMap<i64, Instant>>>;

pub async fn run(settings: &Settings, args: &BenchFreshnessArgs) -> anyhow::Result<()> {
    if args.rate < TX_PER_SECOND || args.seconds == 0 {
        bail!("--rate must be at least {TX_PER_SECOND} and --seconds positive");
    }
    let (cluster, base_url) = bench_server(settings, false).await?;
    let url = fresh_database(&base_url, DATABASE).await?;
    let pool = db::connect(&url, 4).await?;
    create_published(
        &pool,
        TABLE,
        "id bigint PRIMARY KEY, tenant_id uuid NOT NULL, stage text NOT NULL, amount numeric(14,2) NOT NULL,
         updated_at timestamptz NOT NULL DEFAULT now(), note text",
    )
    .await?;
    let (_broker_dir, broker) = durable_broker()?;
    let brokers = broker.bootstrap();
    let (_lake_dir, root) = temp_lake()?;

    let mut cdc_cfg = CdcConfig::new(&url, &brokers)?;
    cdc_cfg.slot = "orbas_bench_freshness".into();
    cdc_cfg.selection = Selection { include: vec![format!("public.{TABLE}")], ..Selection::default() };
    let cdc = Service::start(cdc_cfg);
    wait_sql(&pool, "SELECT completed_at IS NOT NULL FROM orbas.cdc_snapshots", Duration::from_secs(120)).await?;
    let sink_cfg = SinkConfig::new(&url, &brokers, root.clone());
    let batch_interval = sink_cfg.batch_interval;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sink = tokio::spawn(async move { Sink::connect(sink_cfg).await?.run(stopped).await });
    let lake = Arc::new(Lake::new(root));

    // Warm-up: the topic, the tables and the consumer exist and the first rows are visible.
    insert(&pool, 0, 10).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while visible_max(&lake).await.unwrap_or(-1) < 9 {
        if Instant::now() > deadline {
            bail!("the warm-up rows did not reach the lake in 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let per_tx = args.rate / TX_PER_SECOND;
    let transactions = args.seconds * TX_PER_SECOND;
    let first_id = 1_000i64;
    let last_id = first_id + i64::try_from(per_tx * transactions)? - 1;
    let commits: Commits = Arc::default();
    let kafka = {
        let (brokers, commits) = (brokers.clone(), commits.clone());
        tokio::task::spawn_blocking(move || kafka_arrivals(&brokers, &commits, last_id))
    };
    tokio::time::sleep(Duration::from_secs(2)).await; // the consumer's assignment settles
    let reader = {
        let (lake, commits) = (lake.clone(), commits.clone());
        let poll = Duration::from_millis(args.poll_ms.max(1));
        tokio::spawn(async move { sql_arrivals(&lake, &commits, last_id, poll).await })
    };

    let mut tick = tokio::time::interval(Duration::from_millis(1000 / TX_PER_SECOND));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let began = Instant::now();
    for i in 0..transactions {
        tick.tick().await;
        let first = first_id + i64::try_from(i * per_tx)?;
        insert(&pool, first, per_tx).await?;
        let done = Instant::now();
        commits
            .lock()
            .map_err(|_| anyhow::anyhow!("commit log poisoned"))?
            .insert(first + i64::try_from(per_tx)? - 1, done);
    }
    let achieved = (per_tx * transactions) as f64 / began.elapsed().as_secs_f64();
    let ours = reader.await??;
    let peer = kafka.await??;
    let _ = stop.send(true);
    sink.await??;
    cdc.stop().await?;
    drop(cluster);

    println!("## Commit → visible in SQL vs commit → Kafka consumer\n");
    println!(
        "{} changes/s offered, {achieved:.0}/s achieved, for {} s ({} transactions of {per_tx} rows); sink \
         micro-batches ≤ {} ms, SQL freshness window 200 ms, SQL polled every {} ms\n",
        args.rate,
        args.seconds,
        transactions,
        batch_interval.as_millis(),
        args.poll_ms
    );
    println!("| path | p50 ms | p95 ms | p99 ms | max ms | transactions |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, samples) in [("commit → visible in SQL (ours)", &ours), ("commit → Kafka consumer (CDC alone)", &peer)]
    {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            pct(samples, 0.50),
            pct(samples, 0.95),
            pct(samples, 0.99),
            samples.last().copied().unwrap_or_default(),
            samples.len()
        );
    }
    let p95 = pct(&ours, 0.95);
    println!("\ntarget p95 ≤ 2000 ms: {}", if p95 <= 2000 { "met" } else { "NOT met" });
    Ok(())
}

/// Inserts ids `[first, first + n)` in one transaction.
async fn insert(pool: &PgPool, first: i64, n: u64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO public.bench_fresh (id, tenant_id, stage, amount, note)
         SELECT g, $3::uuid, (ARRAY['prospect','qualify','proposal','won','lost'])[1 + g % 5],
                (g % 10000000) / 100.0, repeat('n', (g % 48)::int)
           FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) g",
    )
    .bind(first)
    .bind(i64::try_from(n)?)
    .bind(TENANT)
    .execute(pool)
    .await?;
    Ok(())
}

/// The largest id a tenant session sees, as `POST /v1/sql` and the SQL port would answer.
async fn visible_max(lake: &Lake) -> Option<i64> {
    let ctx = lake.session(TENANT, Limits::default()).await.ok()?;
    let batches = ctx.sql(&format!("SELECT max(id) FROM {TABLE}")).await.ok()?.collect().await.ok()?;
    let b = batches.first()?;
    match deltalake::datafusion::common::ScalarValue::try_from_array(b.column(0), 0).ok()? {
        deltalake::datafusion::common::ScalarValue::Int64(v) => v,
        _ => None,
    }
}

/// Takes the transactions whose last id is ≤ `upto` and not yet seen: their latencies in ms.
fn settle(commits: &Commits, seen: &mut i64, upto: i64, at: Instant) -> Vec<u64> {
    if upto <= *seen {
        return Vec::new();
    }
    let Ok(log) = commits.lock() else { return Vec::new() };
    let out = log
        .range(*seen + 1..=upto)
        .map(|(_, committed)| u64::try_from(at.saturating_duration_since(*committed).as_millis()).unwrap_or(u64::MAX))
        .collect();
    *seen = (*seen).max(upto.min(log.keys().next_back().copied().unwrap_or(*seen)));
    out
}

async fn sql_arrivals(lake: &Lake, commits: &Commits, last_id: i64, poll: Duration) -> anyhow::Result<Vec<u64>> {
    let mut samples = Vec::new();
    let mut seen = 0i64;
    let deadline = Instant::now() + Duration::from_secs(900);
    while seen < last_id {
        if Instant::now() > deadline {
            bail!("SQL saw ids up to {seen} of {last_id} in 15 minutes");
        }
        if let Some(max) = visible_max(lake).await {
            samples.extend(settle(commits, &mut seen, max, Instant::now()));
        }
        tokio::time::sleep(poll).await;
    }
    samples.sort_unstable();
    Ok(samples)
}

fn kafka_arrivals(brokers: &str, commits: &Commits, last_id: i64) -> anyhow::Result<Vec<u64>> {
    let consumer = reader(brokers, "orbas-bench-freshness", TOPIC, Offset::End, true)?;
    let mut samples = Vec::new();
    let mut seen = 0i64;
    let deadline = Instant::now() + Duration::from_secs(900);
    while seen < last_id {
        if Instant::now() > deadline {
            bail!("the Kafka consumer saw ids up to {seen} of {last_id} in 15 minutes");
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = m?;
        let at = Instant::now();
        let Some(payload) = m.payload() else { continue };
        let v: serde_json::Value = serde_json::from_slice(payload)?;
        if let Some(id) = v["after"]["id"].as_i64() {
            samples.extend(settle(commits, &mut seen, id, at));
        }
    }
    samples.sort_unstable();
    Ok(samples)
}

/// The `q` quantile of sorted samples.
fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_settle_once_when_their_last_id_is_seen() {
        let commits: Commits = Arc::default();
        let t0 = Instant::now();
        if let Ok(mut log) = commits.lock() {
            log.insert(9, t0);
            log.insert(19, t0);
            log.insert(29, t0);
        }
        let mut seen = 0;
        let later = t0 + Duration::from_millis(250);
        assert_eq!(settle(&commits, &mut seen, 15, later), vec![250], "only the transaction ending at 9");
        assert_eq!(settle(&commits, &mut seen, 15, later), Vec::<u64>::new(), "never twice");
        assert_eq!(settle(&commits, &mut seen, 3, later), Vec::<u64>::new(), "an older answer");
        assert_eq!(settle(&commits, &mut seen, 40, later).len(), 2);
        assert_eq!(seen, 29);
    }

    #[test]
    fn quantiles() {
        let s: Vec<u64> = (1..=100).collect();
        assert_eq!((pct(&s, 0.5), pct(&s, 0.95), pct(&s, 0.99)), (51, 95, 99));
        assert_eq!(pct(&[], 0.5), 0);
    }
}
