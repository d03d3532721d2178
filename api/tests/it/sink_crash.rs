//! Exactly once under `kill -9`: the real `orbas pipeline sink` binary is killed (SIGKILL) at random
//! moments a dozen times while a burst of inserts, updates and deletes streams through CDC; then
//! silver reconciles with Postgres (row count and a checksum over every column, independent of row
//! order), bronze holds every change once, and no Delta commit covers offsets another commit covered.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use deltalake::arrow::array::Array as _;
use orbas_pipeline::broker::{Broker, BrokerOptions};
use orbas_pipeline::cdc::CdcConfig;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

const KILLS: usize = 12;

fn sink(db_url: &str, brokers: &str, lake: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_orbas"))
        .args(["pipeline", "sink", "--brokers", brokers, "--group", "crash", "--batch-ms", "50", "--batch-rows", "37"])
        .arg("--lake")
        .arg(lake)
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn orbas pipeline sink")
}

/// Inserts, updates and deletes over ids `[0, 300)` in `txs` transactions; returns the changes.
async fn burst(pool: sqlx::PgPool, txs: usize) -> u64 {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut changes = 0;
    for _ in 0..txs {
        let mut tx = pool.begin().await.expect("begin");
        for _ in 0..rng.random_range(1..30) {
            let id: i64 = rng.random_range(0..300);
            let v: i64 = rng.random_range(0..1_000_000);
            let sql = match rng.random_range(0..10) {
                0..6 => {
                    "INSERT INTO public.crash_items VALUES ($1, md5($1::text)::uuid, $2, 'note ' || $2, ($2 % 9973) / 100.0) \
                     ON CONFLICT (id) DO UPDATE SET v = excluded.v, note = excluded.note, amount = excluded.amount"
                }
                6..9 => "UPDATE public.crash_items SET v = $2, note = NULL, amount = amount + 0.01 WHERE id = $1",
                _ => "DELETE FROM public.crash_items WHERE id = $1 AND $2 = $2",
            };
            changes += sqlx::query(sql).bind(id).bind(v).execute(&mut *tx).await.expect("write").rows_affected();
        }
        tx.commit().await.expect("commit");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    changes
}

/// (row count, SHA-256 of the sorted canonical rows) — equal sets of rows give equal results.
fn reconcile(mut rows: Vec<String>) -> (usize, String) {
    rows.sort();
    let mut h = Sha256::new();
    for r in &rows {
        h.update(r.as_bytes());
        h.update(b"\n");
    }
    (rows.len(), hex::encode(h.finalize()))
}

async fn lake_strings(lake: &std::path::Path, layer: &str, sql: &str) -> Option<Vec<String>> {
    let url = url::Url::from_directory_path(lake.join(layer).join("public/crash_items")).ok()?;
    let t = deltalake::open_table(url).await.ok()?;
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    ctx.register_table("t", t.table_provider().await.ok()?).ok()?;
    let mut out = Vec::new();
    for b in ctx.sql(sql).await.ok()?.collect().await.ok()? {
        let col = deltalake::arrow::compute::cast(b.column(0), &deltalake::arrow::datatypes::DataType::Utf8).ok()?;
        let s = deltalake::arrow::array::AsArray::as_string::<i32>(&col);
        out.extend((0..s.len()).map(|i| if s.is_null(i) { "NULL".to_owned() } else { s.value(i).to_owned() }));
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_sink_loses_and_repeats_nothing() {
    let db = orbas_testkit::fresh_db().await;
    sqlx::raw_sql(
        "CREATE TABLE public.crash_items (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, v bigint, note text,
                                          amount numeric(12,2));
         ALTER TABLE public.crash_items REPLICA IDENTITY FULL;
         ALTER PUBLICATION orbas_cdc ADD TABLE public.crash_items;",
    )
    .execute(&db.admin)
    .await
    .expect("table");
    let broker = Broker::start(BrokerOptions::default()).expect("tansu");
    let mut cfg = CdcConfig::new(&db.admin_url, &broker.bootstrap()).expect("cdc config");
    cfg.slot = format!("k_{}", &db.name[2..18]);
    cfg.status_interval = Duration::from_millis(50);
    cfg.heartbeat_interval = Duration::ZERO;
    let (stop_cdc, stopped) = tokio::sync::oneshot::channel::<()>();
    let slot = cfg.slot.clone();
    let cdc = tokio::spawn(orbas_pipeline::cdc::run(cfg, async move {
        let _ = stopped.await;
    }));
    // Every change of the burst must be streamed (not folded into the initial snapshot).
    orbas_testkit::cdc_snapshot_done(&db.admin, &slot).await;
    let lake = tempfile::tempdir().expect("lake");

    let writer = tokio::spawn(burst(db.admin.clone(), 150));
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let mut kills = 0;
    while kills < KILLS || !writer.is_finished() {
        let mut child = sink(&db.admin_url, &broker.bootstrap(), lake.path());
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        child.start_kill().expect("SIGKILL"); // tokio's kill is SIGKILL
        let _ = child.wait().await;
        kills += 1;
    }
    let changes = writer.await.expect("writer");
    let mut last = sink(&db.admin_url, &broker.bootstrap(), lake.path());

    let want: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws('~', id, tenant_id, coalesce(v::text, '∅'), coalesce(note, '∅'), coalesce(amount::text, '∅'))
           FROM public.crash_items",
    )
    .fetch_all(&db.admin)
    .await
    .expect("postgres rows");
    let want = reconcile(want);
    let silver_sql = "SELECT concat_ws('~', id, tenant_id, coalesce(CAST(v AS VARCHAR), '∅'), coalesce(note, '∅'), \
                      coalesce(CAST(amount AS VARCHAR), '∅')) FROM t";
    let mut got = (0, String::new());
    for _ in 0..600 {
        if let Some(rows) = lake_strings(lake.path(), "silver", silver_sql).await {
            got = reconcile(rows);
            if got == want {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(got, want, "silver reconciles with Postgres (rows, checksum) after {kills} kill -9s");
    let bronze = format!("{changes}/{changes}");
    let mut seen = Vec::new();
    for _ in 0..300 {
        seen = lake_strings(lake.path(), "bronze", "SELECT count(DISTINCT _kafka_offset) || '/' || count(*) FROM t")
            .await
            .unwrap_or_default();
        if seen == [bronze.clone()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if seen != [bronze.clone()] {
        let offsets: Vec<i64> = lake_strings(lake.path(), "bronze", "SELECT _kafka_offset FROM t ORDER BY 1")
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect();
        let gaps: Vec<(i64, i64)> =
            offsets.windows(2).filter(|w| w[1] != w[0] + 1).map(|w| (w[0] + 1, w[1] - 1)).collect();
        panic!(
            "bronze holds {seen:?} of {changes} changes; offsets {:?}..{:?}, missing {gaps:?}",
            offsets.first(),
            offsets.last()
        );
    }
    last.start_kill().expect("kill");
    let _ = last.wait().await;
    for layer in ["bronze", "silver"] {
        for (app, versions) in orbas_testkit::delta_txn_versions(&lake.path().join(layer).join("public/crash_items")) {
            if app.starts_with("orbas.truncate") {
                continue;
            }
            let unique: HashSet<i64> = versions.iter().copied().collect();
            assert_eq!(unique.len(), versions.len(), "{layer} {app}: offsets committed twice: {versions:?}");
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "{layer} {app}: versions go back: {versions:?}");
        }
    }
    let _ = stop_cdc.send(());
    cdc.await.expect("cdc task").expect("cdc stopped cleanly");
}
