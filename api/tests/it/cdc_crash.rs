//! The delivery guarantee under `kill -9`: `orbas pipeline cdc` (the real binary) is killed at random
//! points a dozen times while a 100k-row write burst runs; a checker then reads every topic the
//! service writes and finds every committed change (0 lost) and, after de-duplication on
//! (commit LSN, LSN), none twice — and every transaction's END count matches its events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use orbas_pipeline::broker::{Broker, BrokerOptions};
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use sqlx::PgPool;
use tokio::process::{Child, Command};

const TABLE_TOPIC: &str = "orbas.cdc.public.crash_rows";
const TX_TOPIC: &str = "orbas.cdc.transaction";
const TRANSACTIONS: i64 = 100;
const ROWS_PER_TX: i64 = 1000;
/// Random kills during the burst; one more follows at start-up (12 in all).
const KILLS: usize = 11;

/// One change as the writer made it: (op, id, v after the change or before a delete).
type Change = (char, i64, i64);

fn cdc(db_url: &str, brokers: &str, slot: &str, metrics: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_orbas"))
        .args(["pipeline", "cdc", "--brokers", brokers, "--slot", slot, "--include", "public.crash_rows"])
        .args(["--status-interval-ms", "50", "--heartbeat-interval-ms", "0", "--metrics-addr", metrics])
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn orbas pipeline cdc")
}

/// 100 transactions of 1000 inserts, 100 updates of the previous batch and 50 deletes of the one
/// before; returns every change it committed.
async fn write_burst(pool: PgPool) -> Vec<Change> {
    let mut changes = Vec::new();
    for b in 0..TRANSACTIONS {
        let mut tx = pool.begin().await.expect("begin");
        let first = b * ROWS_PER_TX;
        sqlx::query(
            "INSERT INTO public.crash_rows (id, batch, v, note) \
             SELECT g, $1, 0, repeat('x', (g % 50)::int) FROM generate_series($2::bigint, $3::bigint) g",
        )
        .bind(i32::try_from(b).expect("batch"))
        .bind(first)
        .bind(first + ROWS_PER_TX - 1)
        .execute(&mut *tx)
        .await
        .expect("insert");
        changes.extend((first..first + ROWS_PER_TX).map(|id| ('c', id, 0)));
        if b >= 1 {
            let prev = first - ROWS_PER_TX;
            let updated: Vec<(i64, i32)> = sqlx::query_as(
                "UPDATE public.crash_rows SET v = v + 1 WHERE id >= $1 AND id < $1 + 100 RETURNING id, v",
            )
            .bind(prev)
            .fetch_all(&mut *tx)
            .await
            .expect("update");
            changes.extend(updated.into_iter().map(|(id, v)| ('u', id, i64::from(v))));
        }
        if b >= 2 {
            let older = first - 2 * ROWS_PER_TX;
            let deleted: Vec<(i64, i32)> =
                sqlx::query_as("DELETE FROM public.crash_rows WHERE id >= $1 + 500 AND id < $1 + 550 RETURNING id, v")
                    .bind(older)
                    .fetch_all(&mut *tx)
                    .await
                    .expect("delete");
            changes.extend(deleted.into_iter().map(|(id, v)| ('d', id, i64::from(v))));
        }
        tx.commit().await.expect("commit");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_write_burst_loses_nothing_and_duplicates_only_by_lsn() {
    let t = orbas_testkit::fresh_db().await;
    let broker = Broker::start(BrokerOptions::default()).expect("start tansu (./scripts/setup.sh installs it)");
    let brokers = broker.bootstrap();
    sqlx::raw_sql(
        "CREATE TABLE public.crash_rows (id bigint PRIMARY KEY, batch int NOT NULL, v int NOT NULL, note text);
         ALTER TABLE public.crash_rows REPLICA IDENTITY FULL;
         ALTER PUBLICATION orbas_cdc ADD TABLE public.crash_rows;",
    )
    .execute(&t.admin)
    .await
    .expect("create table");
    let slot = format!("crash_{}", &t.name[2..14]);

    let mut child = cdc(&t.admin_url, &brokers, &slot, "127.0.0.1:0");
    wait_for(&t.admin, "the initial snapshot completes", "SELECT completed_at IS NOT NULL FROM orbas.cdc_snapshots")
        .await;

    let seed: u64 = rand::rng().random();
    eprintln!("kill schedule seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let writer = tokio::spawn(write_burst(t.admin.clone()));
    let mut kills = 0;
    while kills < KILLS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..900))).await;
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the CDC service stopped by itself ({status}) before kill {kills}");
        }
        child.start_kill().expect("kill -9");
        child.wait().await.expect("reap");
        kills += 1;
        child = cdc(&t.admin_url, &brokers, &slot, "127.0.0.1:0");
    }
    // The last one serves its metrics on a known port.
    child.start_kill().expect("kill -9");
    child.wait().await.expect("reap");
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").to_string()
    };
    child = cdc(&t.admin_url, &brokers, &slot, &metrics_addr);
    let changes = writer.await.expect("writer");
    let end_lsn: String =
        sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text").fetch_one(&t.admin).await.expect("lsn");
    wait_for(
        &t.admin,
        "the slot confirms the end of the burst",
        &format!(
            "SELECT confirmed_flush_lsn >= '{end_lsn}'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ),
    )
    .await;
    let end: orbas_pipeline::Lsn = end_lsn.parse().expect("lsn");
    let mut acked = 0.0;
    for _ in 0..50 {
        let text = reqwest::get(format!("http://{metrics_addr}/metrics")).await.expect("GET /metrics");
        let text = text.text().await.expect("metrics body");
        acked = gauge(&text, "orbas_cdc_acked_lsn");
        if acked >= end.0 as f64 {
            assert!(text.contains("orbas_cdc_lag_bytes") && text.contains("orbas_cdc_lag_seconds"), "{text}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(acked >= end.0 as f64, "/metrics reports the acknowledged LSN ({acked} < {})", end.0);
    // Graceful stop of the last one: SIGTERM, exit 0.
    let pid = child.id().expect("pid").to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill -TERM");
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("stops").expect("wait");
    assert!(status.success(), "graceful stop exited with {status}");

    let consumed = consume_all(&brokers, &[TABLE_TOPIC, TX_TOPIC]).await;
    check(&changes, &consumed);
}

/// A gauge's value in the Prometheus text format (0 when absent).
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn wait_for(pool: &PgPool, what: &str, sql: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let ok: Option<bool> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_optional(pool).await.ok().flatten();
        if ok == Some(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Every message of `topics` (partition 0): up to the end offsets at the time of the call, then on
/// until three seconds pass without one.
async fn consume_all(brokers: &str, topics: &[&str]) -> Vec<(String, Option<Value>)> {
    let brokers = brokers.to_owned();
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "crash-checker")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        let mut ends = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for t in &topics {
            let (_, high) = consumer.fetch_watermarks(t, 0, Duration::from_secs(10)).expect("watermarks");
            ends.insert(t.clone(), high);
            tpl.add_partition_offset(t, 0, Offset::Beginning).expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let mut next: HashMap<String, i64> = topics.iter().map(|t| (t.clone(), 0)).collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        while next.iter().any(|(t, n)| *n < ends[t]) {
            assert!(Instant::now() < deadline, "consumer stalled at {next:?} of {ends:?}");
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                let m = m.expect("consume");
                next.insert(m.topic().to_owned(), m.offset() + 1);
                let value = m.payload().map(|b| serde_json::from_slice(b).expect("JSON value"));
                out.push((m.topic().to_owned(), value));
            }
        }
        // tansu's high watermark can trail the last batch it acknowledged: read on until quiet.
        let mut quiet = Instant::now();
        while quiet.elapsed() < Duration::from_secs(3) {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                let m = m.expect("consume");
                let value = m.payload().map(|b| serde_json::from_slice(b).expect("JSON value"));
                out.push((m.topic().to_owned(), value));
                quiet = Instant::now();
            }
        }
        out
    })
    .await
    .expect("consumer thread")
}

fn check(changes: &[Change], consumed: &[(String, Option<Value>)]) {
    // De-duplicate on (commit LSN, LSN); the same position must always carry the same change.
    let mut by_position: BTreeMap<(i64, i64), (Change, String)> = BTreeMap::new();
    let mut ends: BTreeMap<String, i64> = BTreeMap::new();
    let mut published = 0usize;
    for (topic, value) in consumed {
        let Some(v) = value else { continue };
        if topic == TX_TOPIC {
            if v["status"] == "END" {
                let id = v["id"].as_str().expect("tx id").to_owned();
                let n = v["event_count"].as_i64().expect("event_count");
                if let Some(prev) = ends.insert(id.clone(), n) {
                    assert_eq!(prev, n, "transaction {id} ended twice with different counts");
                }
            }
            continue;
        }
        published += 1;
        let op = v["op"].as_str().and_then(|s| s.chars().next()).expect("op");
        let row = if op == 'd' { &v["before"] } else { &v["after"] };
        let change = (op, row["id"].as_i64().expect("id"), row["v"].as_i64().expect("v"));
        let pos = (v["source"]["commit_lsn"].as_i64().expect("commit_lsn"), v["source"]["lsn"].as_i64().expect("lsn"));
        let tx = v["transaction"]["id"].as_str().expect("transaction.id").to_owned();
        if let Some((prev, _)) = by_position.insert(pos, (change, tx)) {
            assert_eq!(prev, change, "two different changes at one position {pos:?}");
        }
    }
    let expected: BTreeSet<Change> = changes.iter().copied().collect();
    assert_eq!(expected.len(), changes.len(), "the writer's changes are distinct");
    let mut seen: BTreeSet<Change> = BTreeSet::new();
    for (change, _) in by_position.values() {
        assert!(seen.insert(*change), "{change:?} published at two positions: a duplicate LSN de-duplication misses");
    }
    let lost: Vec<_> = expected.difference(&seen).take(5).collect();
    let extra: Vec<_> = seen.difference(&expected).take(5).collect();
    assert!(lost.is_empty(), "lost {} change(s), e.g. {lost:?}", expected.difference(&seen).count());
    assert!(extra.is_empty(), "changes nobody made: {extra:?}");
    assert!(published >= changes.len());

    // Every writer transaction has one END whose count equals its de-duplicated events.
    let mut per_tx: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, tx) in by_position.values() {
        *per_tx.entry(tx.as_str()).or_default() += 1;
    }
    assert_eq!(per_tx.len(), usize::try_from(TRANSACTIONS).expect("count"), "transactions with events");
    for (tx, n) in &per_tx {
        assert_eq!(ends.get(*tx), Some(n), "END of {tx} vs its events");
    }
    eprintln!(
        "checked {} changes in {} transactions; {} published ({} replayed after kills)",
        changes.len(),
        per_tx.len(),
        published,
        published - changes.len()
    );
}
