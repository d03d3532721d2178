//! Postgres → CDC → Kafka → bronze/silver: values identical, nothing lost or repeated across restarts.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use super::*;

const TABLE: &str = "lake_items";

async fn create_table(db: &TestDb) {
    sqlx::raw_sql(
        "CREATE TABLE public.lake_items (
             id bigint PRIMARY KEY,
             tenant_id uuid NOT NULL,
             name text,
             amount numeric(18,2),
             tags text[],
             happened timestamptz,
             day date,
             payload jsonb,
             data bytea,
             ratio double precision,
             qty integer
         );
         ALTER TABLE public.lake_items REPLICA IDENTITY FULL;
         ALTER PUBLICATION orbas_cdc ADD TABLE public.lake_items;",
    )
    .execute(&db.admin)
    .await
    .expect("create table");
}

/// Every row of the table, one canonical text per row, in key order — from Postgres…
async fn pg_rows(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT concat_ws('~', id, tenant_id, coalesce(name, '∅'), coalesce(amount::text, '∅'),
                coalesce(array_to_string(tags, '|'), '∅'),
                coalesce(((extract(epoch FROM happened) * 1000000)::bigint)::text, '∅'),
                coalesce(day::text, '∅'), coalesce(payload::text, '∅'), coalesce(encode(data, 'hex'), '∅'),
                coalesce(((ratio * 4)::bigint)::text, '∅'), coalesce(qty::text, '∅'))
           FROM public.lake_items ORDER BY id",
    )
    .fetch_all(&db.admin)
    .await
    .expect("postgres rows")
}

/// …and from silver, through DataFusion.
async fn silver_rows(lake: &Url) -> Option<Vec<String>> {
    lake_rows(
        lake,
        "silver",
        TABLE,
        "SELECT concat_ws('~', id, tenant_id, coalesce(name, '∅'), coalesce(CAST(amount AS VARCHAR), '∅'),
                coalesce(array_to_string(tags, '|'), '∅'),
                coalesce(CAST(CAST(happened AS BIGINT) AS VARCHAR), '∅'),
                coalesce(CAST(day AS VARCHAR), '∅'), coalesce(payload, '∅'), coalesce(encode(data, 'hex'), '∅'),
                coalesce(CAST(CAST(ratio * 4 AS BIGINT) AS VARCHAR), '∅'), coalesce(CAST(qty AS VARCHAR), '∅'))
           FROM t ORDER BY id",
    )
    .await
}

/// A burst of `txs` transactions of inserts, updates and deletes over ids `[0, 400)`.
async fn burst(pool: &sqlx::PgPool, seed: u64, txs: usize) -> u64 {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut changes = 0u64;
    for _ in 0..txs {
        let mut tx = pool.begin().await.expect("begin");
        for _ in 0..rng.random_range(1..40) {
            let id: i64 = rng.random_range(0..400);
            let kind: u8 = rng.random_range(0..10);
            let sql = if kind < 6 {
                "INSERT INTO public.lake_items
                     SELECT $1, md5($1::text)::uuid, 'item ' || $1 || ' ' || $2, ($2 % 100000) / 100.0,
                            ARRAY['a' || $2 % 3, 'b'], timestamptz '2026-01-01' + ($2 || ' seconds')::interval,
                            date '2026-01-01' + ($2 % 300)::int, jsonb_build_object('n', $2, 'k', 'v'),
                            decode(md5($2::text), 'hex'), ($2 % 8) / 4.0, $2 % 1000
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, amount = excluded.amount, qty = excluded.qty"
            } else if kind < 9 {
                "UPDATE public.lake_items SET name = NULL, amount = amount + 1.25, tags = NULL,
                        payload = payload || jsonb_build_object('u', $2), qty = $2 % 7 WHERE id = $1"
            } else {
                "DELETE FROM public.lake_items WHERE id = $1 AND $2 = $2"
            };
            let n = sqlx::query(sql)
                .bind(id)
                .bind(rng.random_range(0i64..1_000_000))
                .execute(&mut *tx)
                .await
                .expect("write")
                .rows_affected();
            changes += n;
        }
        tx.commit().await.expect("commit");
    }
    changes
}

/// Every `txn` version each commit of a layer's Delta table recorded, per app id, in commit order.
fn txn_versions(lake_dir: &std::path::Path, layer: &str) -> BTreeMap<String, Vec<i64>> {
    orbas_testkit::delta_txn_versions(&lake_dir.join(layer).join("public").join(TABLE))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silver_holds_what_postgres_holds_and_bronze_every_change_once() {
    let db = orbas_testkit::fresh_db().await;
    create_table(&db).await;
    let broker = broker();
    let cdc = start_cdc(&db, &broker).await;
    let (dir, lake) = temp_lake();

    // Half the burst before the sink first runs, half while it runs; then restarts that lose nothing.
    let mut changes = burst(&db.admin, 1, 30).await;
    let sink = start_sink(sink_config(&db, &broker, &lake));
    changes += burst(&db.admin, 2, 30).await;
    let want = pg_rows(&db).await;
    assert!(want.len() > 100, "the burst leaves rows: {}", want.len());
    eventually_equal("silver equals Postgres", Duration::from_secs(120), &want, || {
        let lake = lake.clone();
        async move { silver_rows(&lake).await }
    })
    .await;
    let bronze_count = |lake: Url| async move {
        lake_rows(&lake, "bronze", TABLE, "SELECT count(*) FROM t").await.and_then(|r| r.first()?.parse::<u64>().ok())
    };
    eventually("bronze holds every change", Duration::from_secs(60), || {
        let lake = lake.clone();
        async move { bronze_count(lake).await == Some(changes) }
    })
    .await;
    let stats = sink.stop().await;
    assert!(stats.batches > 0);

    // A restarted sink resumes at the lake's positions: no new commits, nothing re-appended.
    let before = txn_versions(dir.path(), "bronze");
    let sink = start_sink(sink_config(&db, &broker, &lake));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = sink.stop().await;
    assert_eq!(again.bronze_rows, 0, "nothing re-appended after a restart");
    assert_eq!(txn_versions(dir.path(), "bronze"), before);
    assert_eq!(bronze_count(lake.clone()).await, Some(changes));

    // Each bronze row is one (partition, offset); ops and positions match the change log.
    let dupes = lake_rows(
        &lake,
        "bronze",
        TABLE,
        "SELECT count(*) FROM (SELECT _kafka_partition, _kafka_offset FROM t GROUP BY 1, 2 HAVING count(*) > 1)",
    )
    .await;
    assert_eq!(dupes, Some(vec!["0".to_owned()]));
    let ops = lake_rows(&lake, "bronze", TABLE, "SELECT _op || ':' || count(*) FROM t GROUP BY _op ORDER BY _op").await;
    assert!(ops.as_ref().is_some_and(|o| o.iter().any(|x| x.starts_with("c:"))), "{ops:?}");

    // Engines that are not ours read the same silver table and agree with Postgres row by row.
    let silver_dir = dir.path().join("silver/public").join(TABLE);
    for engine in ["deltalake", "duckdb"] {
        assert_eq!(foreign_rows(engine, &silver_dir).await, want, "{engine} reads silver as Postgres holds it");
    }
    cdc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_any_point_lose_and_repeat_nothing() {
    let db = orbas_testkit::fresh_db().await;
    create_table(&db).await;
    let broker = broker();
    let cdc = start_cdc(&db, &broker).await;
    let (dir, lake) = temp_lake();
    let mut cfg = sink_config(&db, &broker, &lake);
    cfg.batch_rows = 37;
    cfg.batch_interval = Duration::from_millis(50);

    let writer = {
        let admin = db.admin.clone();
        tokio::spawn(async move { burst(&admin, 3, 120).await })
    };
    // Kill the sink (drop it at whatever await point it is in: mid-write, mid-commit, between bronze
    // and silver) at random moments while the burst runs.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut kills = 0;
    while !writer.is_finished() || kills < 10 {
        let sink = start_sink(cfg.clone());
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..900))).await;
        sink.task.abort();
        let _ = sink.task.await;
        kills += 1;
    }
    let changes = writer.await.expect("writer");
    let sink = start_sink(cfg.clone());
    let want = pg_rows(&db).await;
    eventually_equal("silver equals Postgres after the crashes", Duration::from_secs(120), &want, || {
        let lake = lake.clone();
        async move { silver_rows(&lake).await }
    })
    .await;
    eventually("bronze holds every change exactly once", Duration::from_secs(60), || {
        let lake = lake.clone();
        async move {
            lake_rows(&lake, "bronze", TABLE, "SELECT count(DISTINCT _kafka_offset) || '/' || count(*) FROM t")
                .await
                .is_some_and(|r| r == vec![format!("{changes}/{changes}")])
        }
    })
    .await;
    sink.stop().await;
    // No Delta commit covers offsets another commit already covered: per app id, versions only grow.
    for layer in ["bronze", "silver"] {
        for (app, versions) in txn_versions(dir.path(), layer) {
            if app.starts_with("orbas.truncate") {
                continue;
            }
            let unique: HashSet<i64> = versions.iter().copied().collect();
            assert_eq!(unique.len(), versions.len(), "{layer} {app}: a version committed twice: {versions:?}");
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "{layer} {app}: versions go back: {versions:?}");
        }
    }
    assert!(kills >= 10);
    cdc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncates_and_added_columns_reach_silver() {
    let db = orbas_testkit::fresh_db().await;
    create_table(&db).await;
    let broker = broker();
    let cdc = start_cdc(&db, &broker).await;
    let (_dir, lake) = temp_lake();
    let sink = start_sink(sink_config(&db, &broker, &lake));

    burst(&db.admin, 5, 10).await;
    sqlx::raw_sql(
        "BEGIN;
         INSERT INTO public.lake_items (id, tenant_id, name) VALUES (1000, gen_random_uuid(), 'before');
         TRUNCATE public.lake_items;
         INSERT INTO public.lake_items (id, tenant_id, name, amount) VALUES (1001, gen_random_uuid(), 'after', 1.5);
         COMMIT;
         ALTER TABLE public.lake_items ADD COLUMN stage text, ADD COLUMN score numeric(5,2);
         INSERT INTO public.lake_items (id, tenant_id, name, stage, score) VALUES (1002, gen_random_uuid(), 'new', 'won', 99.5);
         UPDATE public.lake_items SET stage = 'lost', score = 0.25 WHERE id = 1001;",
    )
    .execute(&db.admin)
    .await
    .expect("truncate and alter");
    let want = vec!["1001|lost|0.25|after".to_owned(), "1002|won|99.50|new".to_owned()];
    eventually("silver holds only the rows after the truncate, with the new columns", Duration::from_secs(60), || {
        let (lake, want) = (lake.clone(), want.clone());
        async move {
            lake_rows(
                &lake,
                "silver",
                TABLE,
                "SELECT concat_ws('|', id, stage, CAST(score AS VARCHAR), name) FROM t ORDER BY id",
            )
            .await
            .is_some_and(|r| r == want)
        }
    })
    .await;
    let truncates =
        lake_rows(&lake, "bronze", TABLE, "SELECT _op || ':' || count(*) FROM t GROUP BY _op ORDER BY _op").await;
    assert!(truncates.as_ref().is_some_and(|t| t.contains(&"t:1".to_owned())), "bronze ops: {truncates:?}");
    let stats = sink.abandon().await;
    assert!(stats.messages > 0, "{stats:?}");
    cdc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silver_commits_name_the_tenants_whose_rows_they_changed() {
    use orbas_warehouse::sql::{Lake, Moved, Versions};
    let db = orbas_testkit::fresh_db().await;
    create_table(&db).await;
    let broker = broker();
    let cdc = start_cdc(&db, &broker).await;
    let (_dir, root) = temp_lake();
    let sink = start_sink(sink_config(&db, &broker, &root));
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    sqlx::query("INSERT INTO public.lake_items (id, tenant_id, name) SELECT g, CASE WHEN g % 2 = 0 THEN $1 ELSE $2 END, 'x' FROM generate_series(1, 40) g")
        .bind(a)
        .bind(b)
        .execute(&db.admin)
        .await
        .expect("rows of two tenants");
    let rows = || async { lake_rows(&root, "silver", TABLE, "SELECT CAST(count(*) AS VARCHAR) FROM t").await };
    eventually("both tenants' rows in silver", Duration::from_secs(60), || async {
        rows().await.is_some_and(|r| r == ["40"])
    })
    .await;
    let lake = Lake::new(root.clone()).with_freshness(Duration::ZERO);
    let (seen, first) = lake.moved(&Versions::default(), &[]).await.expect("moved");
    assert_eq!(first, Moved::All, "the first look knows nothing");
    let (seen, still) = lake.moved(&seen, &[]).await.expect("moved");
    assert_eq!(still, Moved::Tenants(Default::default()), "nothing moved since");

    // A change to one tenant's rows moves that tenant only.
    sqlx::query("UPDATE public.lake_items SET name = 'y' WHERE id IN (2, 4)")
        .execute(&db.admin)
        .await
        .expect("update tenant a");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let (now, moved) = lake.moved(&seen, &[]).await.expect("moved");
        if moved != Moved::Tenants(Default::default()) {
            assert_eq!(moved, Moved::Tenants([a.to_string()].into()), "only tenant a moved");
            assert!(!moved.includes(&b.to_string()));
            let (_, ignored) = lake.moved(&seen, &[TABLE]).await.expect("moved");
            assert_eq!(ignored, Moved::Tenants(Default::default()), "a table the caller ignores moves nobody");
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "the update never reached silver");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Compaction rewrites files and changes no row: nobody moved.
    let table = table_url(&root, "silver", "public", TABLE).expect("table url");
    orbas_warehouse::maintain::optimize(&table, std::num::NonZeroU64::new(1 << 30).expect("size"))
        .await
        .expect("optimize");
    let (seen, after) = lake.moved(&seen, &[]).await.expect("moved");
    assert_eq!(after, Moved::Tenants(Default::default()), "compaction moves nobody");

    // A truncate names no tenant: everyone may have moved. (The sink's delete, planned on the version
    // before the compaction, conflicts with it and is run again on the latest version.)
    sqlx::query("TRUNCATE public.lake_items").execute(&db.admin).await.expect("truncate");
    eventually("the truncate in silver", Duration::from_secs(60), || async {
        rows().await.is_some_and(|r| r == ["0"])
    })
    .await;
    let (_, truncated) = lake.moved(&seen, &[]).await.expect("moved");
    assert_eq!(truncated, Moved::All);
    sink.stop().await;
    cdc.stop().await;
}
