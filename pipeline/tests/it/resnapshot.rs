//! Re-snapshotting a table while it changes: the topic, read in order and folded by key, must end in
//! exactly the table's state, and every row nobody touched arrives once as an incremental read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use orbas_pipeline::catalog::Selection;
use orbas_pipeline::resnapshot;
use rand::Rng as _;
use serde_json::Value;
use sqlx::PgPool;

use crate::{Msg, broker, config, consume, eventually, start};

const WAIT: Duration = Duration::from_secs(90);
const TOPIC: &str = "orbas.cdc.public.resnap_rows";
const ROWS: i32 = 3000;

async fn table_state(pool: &PgPool) -> BTreeMap<i64, (i64, Option<String>)> {
    let rows: Vec<(i32, i32, Option<String>)> =
        sqlx::query_as("SELECT id, v, note FROM public.resnap_rows").fetch_all(pool).await.expect("state");
    rows.into_iter().map(|(id, v, note)| (i64::from(id), (i64::from(v), note))).collect()
}

/// The topic folded by key in offset order: the state a compacting reader ends with.
fn fold(msgs: &[Msg]) -> BTreeMap<i64, (i64, Option<String>)> {
    let mut state = BTreeMap::new();
    for m in msgs {
        let Some(v) = &m.value else { continue };
        let row = |side: &str| {
            let r = &v[side];
            (r["id"].as_i64().unwrap_or(-1), r["v"].as_i64().unwrap_or(-1), r["note"].as_str().map(str::to_owned))
        };
        match v["op"].as_str() {
            Some("c" | "u" | "r") => {
                let (id, val, note) = row("after");
                state.insert(id, (val, note));
            }
            Some("d") => {
                state.remove(&row("before").0);
            }
            _ => {}
        }
    }
    state
}

/// Transactions back to back until `stop` (at least 20): each updates 20 random rows, deletes 2 and
/// inserts 3.
async fn churn(pool: PgPool, stop: Arc<AtomicBool>) -> BTreeSet<i64> {
    let mut touched = BTreeSet::new();
    let mut next_id = 100_000;
    for n in 0.. {
        if n >= 20 && stop.load(Ordering::Relaxed) {
            break;
        }
        let (updates, deletes): (Vec<i32>, Vec<i32>) = {
            let mut rng = rand::rng();
            ((0..20).map(|_| rng.random_range(0..ROWS)).collect(), (0..2).map(|_| rng.random_range(0..ROWS)).collect())
        };
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("UPDATE public.resnap_rows SET v = v + 1, note = 'changed' WHERE id = ANY($1)")
            .bind(&updates)
            .execute(&mut *tx)
            .await
            .expect("update");
        sqlx::query("DELETE FROM public.resnap_rows WHERE id = ANY($1)")
            .bind(&deletes)
            .execute(&mut *tx)
            .await
            .expect("delete");
        sqlx::query(
            "INSERT INTO public.resnap_rows (id, v, note) SELECT g, 0, 'new' FROM generate_series($1, $1 + 2) g",
        )
        .bind(next_id)
        .execute(&mut *tx)
        .await
        .expect("insert");
        tx.commit().await.expect("commit");
        touched.extend(updates.iter().chain(&deletes).map(|&i| i64::from(i)));
        touched.extend((next_id..next_id + 3).map(i64::from));
        next_id += 3;
    }
    touched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_resnapshotted_while_it_changes_ends_in_its_exact_state() {
    let db = orbas_testkit::fresh_db().await;
    let kafka = broker();
    sqlx::raw_sql(
        "CREATE TABLE public.resnap_rows (id int PRIMARY KEY, v int NOT NULL, note text);
         ALTER TABLE public.resnap_rows REPLICA IDENTITY FULL;
         ALTER PUBLICATION orbas_cdc ADD TABLE public.resnap_rows;
         INSERT INTO public.resnap_rows SELECT g, 0, 'seed ' || g FROM generate_series(0, 2999) g;",
    )
    .execute(&db.admin)
    .await
    .expect("table");
    let mut cfg = config(&db, &kafka);
    cfg.selection = Selection { include: vec!["public.resnap_rows".into()], ..Selection::default() };
    let cdc = start(cfg.clone());
    let topic = vec![TOPIC.to_owned()];
    let initial = consume(&kafka.bootstrap(), &topic, WAIT, |m| m.len() >= 3000).await;
    assert_eq!(initial.len(), 3000, "the initial snapshot");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(churn(db.admin.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id =
        resnapshot::request(&db.admin, "orbas_cdc", &cfg.slot, "public", "resnap_rows", 250).await.expect("request");
    eventually("the re-snapshot completes", WAIT, || async {
        resnapshot::status(&db.admin, id).await.ok().flatten().is_some_and(|s| s.completed)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let touched = writer.await.expect("writer");
    let status = resnapshot::status(&db.admin, id).await.expect("status").expect("row");
    assert_eq!(status.error, None);
    assert!(status.chunks >= 2 && i64::from(status.chunks) * 250 >= status.rows, "chunks of 250: {status:?}");

    // A last row after everything: once it is read, so is every event before it.
    sqlx::query("INSERT INTO public.resnap_rows VALUES (-1, 0, 'marker')").execute(&db.admin).await.expect("marker");
    let expected = table_state(&db.admin).await;
    let reread = usize::try_from(status.rows).expect("rows");
    let (scanned, found) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let msgs = consume(&kafka.bootstrap(), &topic, WAIT, move |m| {
        for m in &m[scanned.swap(m.len(), Ordering::Relaxed)..] {
            let marker = m.after("id").and_then(Value::as_i64) == Some(-1);
            let reread = m.source("snapshot").and_then(Value::as_str) == Some("incremental");
            found.fetch_add(usize::from(marker) << 32 | usize::from(reread), Ordering::Relaxed);
        }
        let f = found.load(Ordering::Relaxed);
        f >> 32 == 1 && f & 0xffff_ffff >= reread
    })
    .await;
    let folded = fold(&msgs);
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(id, row)| folded.get(id) != Some(row))
        .map(|(id, row)| (id, row, folded.get(id)))
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "the topic does not fold to the table's state: (id, table, topic) {wrong:?}");
    assert_eq!(folded.len(), expected.len(), "rows in the topic's state vs the table");

    let incremental: Vec<&Msg> =
        msgs.iter().filter(|m| m.source("snapshot").and_then(Value::as_str) == Some("incremental")).collect();
    let mut per_id: BTreeMap<i64, usize> = BTreeMap::new();
    for m in &incremental {
        assert_eq!(m.op(), Some("r"));
        *per_id.entry(m.after("id").and_then(Value::as_i64).expect("id")).or_default() += 1;
    }
    for id in expected.keys().filter(|id| **id >= 0 && !touched.contains(id)) {
        assert_eq!(per_id.get(id), Some(&1), "untouched row {id} is re-read exactly once");
    }
    assert_eq!(i64::try_from(incremental.len()).expect("len"), status.rows, "recorded rows = rows sent");
    cdc.stop().await.expect("graceful stop");
}

#[tokio::test]
async fn requests_for_unpublished_or_keyless_tables_are_refused() {
    let db = orbas_testkit::fresh_db().await;
    sqlx::raw_sql(
        "CREATE TABLE public.no_key (v int); ALTER TABLE public.no_key REPLICA IDENTITY FULL;
         ALTER PUBLICATION orbas_cdc ADD TABLE public.no_key; CREATE TABLE public.unpublished (id int PRIMARY KEY);",
    )
    .execute(&db.admin)
    .await
    .expect("tables");
    let err = resnapshot::request(&db.admin, "orbas_cdc", "s", "public", "unpublished", 10).await.expect_err("refused");
    assert!(err.to_string().contains("is not a table of publication"), "{err}");
    let err = resnapshot::request(&db.admin, "orbas_cdc", "s", "public", "no_key", 10).await.expect_err("refused");
    assert!(err.to_string().contains("has no primary key"), "{err}");
    let err = resnapshot::request(&db.admin, "orbas_cdc", "s", "public", "accounts", 0).await.expect_err("refused");
    assert!(err.to_string().contains("chunk size"), "{err}");
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orbas.cdc_resnapshots").fetch_one(&db.admin).await.expect("count");
    assert_eq!(open, 0, "nothing recorded for refused requests");
}
