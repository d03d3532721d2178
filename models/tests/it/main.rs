//! Features over a real lake: the seed generator's CRM data goes through real CDC, a real broker and
//! the real sink into Delta tables; the features read through a tenant's lake session must agree with
//! the same quantities computed by Postgres itself on the source rows, see only that tenant, and carry
//! enough signal that a scorer trained on earlier months ranks later outcomes well.

use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use orbas_models::dataset;
use orbas_models::features::{self, Entity, FeatureSet};
use orbas_models::ops;
use orbas_models::scoring::{self, Kind, Scorer};
use orbas_oltp::seed;
use orbas_pipeline::broker::{Broker, BrokerOptions};
use orbas_pipeline::cdc::CdcConfig;
use orbas_testkit::TestDb;
use orbas_warehouse::sink::{Sink, SinkConfig};
use orbas_warehouse::sql::{Lake, Limits};
use tokio::sync::{oneshot, watch};

mod acceptance;
mod forecast;
mod sentiment;
mod service;

struct Pipeline {
    _broker: Broker,
    _lake_dir: tempfile::TempDir,
    lake: Lake,
    root: url::Url,
    cdc_stop: oneshot::Sender<()>,
    sink_stop: watch::Sender<bool>,
    cdc: tokio::task::JoinHandle<()>,
    sink: tokio::task::JoinHandle<()>,
}

impl Pipeline {
    /// Stops the sink and CDC while the broker is still up (each flushes and commits what it has),
    /// then the broker. Dropped without it, the broker goes first and CDC's last flush waits for it
    /// in vain.
    async fn stop(self) {
        let _ = self.sink_stop.send(true);
        let _ = self.cdc_stop.send(());
        for (what, task) in [("the sink", self.sink), ("CDC", self.cdc)] {
            match tokio::time::timeout(Duration::from_secs(60), task).await {
                Ok(r) => r.unwrap_or_else(|e| panic!("{what} panicked: {e}")),
                Err(_) => panic!("{what} did not stop within 60 s of being asked"),
            }
        }
    }
}

/// Warnings go to the test's output (shown when it fails); `RUST_LOG` asks for more.
fn logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,deltalake_core::operations::merge=error"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

async fn pipeline(db: &TestDb) -> Pipeline {
    logs();
    let broker = Broker::start(BrokerOptions::default()).expect("start tansu (./scripts/setup.sh installs it)");
    let mut cfg = CdcConfig::new(&db.admin_url, &broker.bootstrap()).expect("cdc config");
    // From the random end of the database's name: two tests of this binary start their databases in
    // the same millisecond, and a UUIDv7's leading characters are its timestamp.
    cfg.slot = format!("s_{}", &db.name[db.name.len() - 16..]);
    cfg.status_interval = Duration::from_millis(100);
    cfg.heartbeat_interval = Duration::ZERO;
    let slot = cfg.slot.clone();
    let (cdc_stop, rx) = oneshot::channel::<()>();
    let cdc = tokio::spawn(async move {
        if let Err(e) = orbas_pipeline::cdc::run(cfg, async move {
            let _ = rx.await;
        })
        .await
        {
            eprintln!("CDC stopped: {e}");
        }
    });
    orbas_testkit::cdc_snapshot_done(&db.admin, &slot).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = url::Url::from_directory_path(dir.path()).expect("lake URL");
    let mut sink = SinkConfig::new(&db.admin_url, &broker.bootstrap(), root.clone());
    sink.batch_interval = Duration::from_millis(200);
    sink.discovery_interval = Duration::from_millis(500);
    let (sink_stop, rx) = watch::channel(false);
    let sink = tokio::spawn(async move {
        if let Err(e) = async { Sink::connect(sink).await?.run(rx).await }.await {
            eprintln!("the sink stopped: {e}");
        }
    });
    Pipeline { _broker: broker, _lake_dir: dir, lake: Lake::new(root.clone()), root, cdc_stop, sink_stop, cdc, sink }
}

/// Waits until the tenant's silver tables hold as many rows as Postgres for every table features read.
async fn caught_up(db: &TestDb, lake: &Lake, tenant: &str) {
    let tables = [
        "opportunities",
        "stage_histories",
        "interaction_logs",
        "pipeline_stages",
        "tickets",
        "leads",
        "accounts",
        "subscriptions",
        "analytics_events",
        "invoices",
        "payments",
    ];
    // Table names are the constants above.
    for table in tables {
        landed(db, lake, tenant, table).await;
    }
}

/// Waits until silver `table` holds as many of the tenant's rows as Postgres.
pub(crate) async fn landed(db: &orbas_testkit::TestDb, lake: &Lake, tenant: &str, table: &str) {
    let want: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table} WHERE tenant_id = $1::uuid")))
            .bind(tenant)
            .fetch_one(&db.admin)
            .await
            .expect("count");
    orbas_testkit::eventually(&format!("silver {table} holds {want} rows"), Duration::from_secs(240), || async {
        let Ok(ctx) = lake.session(tenant, Limits::default()).await else { return false };
        let Ok(df) = ctx.sql(&format!("SELECT count(*) FROM {table}")).await else { return false };
        let Ok(batches) = df.collect().await else { return false };
        batches.first().is_some_and(|b| {
            datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(b.column(0))
                .value(0)
                == want
        })
    })
    .await;
}

/// An opportunity at a cut-off: id, cut-off, touches before it, stage probability at it, label.
type OppRow = (String, DateTime<Utc>, i64, f64, Option<bool>);

fn column(set: &FeatureSet, name: &str) -> usize {
    set.names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no feature {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_from_the_lake_agree_with_postgres_and_predict_outcomes() {
    let db = orbas_testkit::fresh_db().await;
    let p = pipeline(&db).await;
    let cfg = seed::SeedConfig::new(2, 0.05, 11).expect("seed config");
    let report = seed::load(&db.admin, &cfg).await.expect("seed");
    let (a, b) = (report.tenants[0].0.to_string(), report.tenants[1].0.to_string());
    caught_up(&db, &p.lake, &a).await;

    let ctx = p.lake.session(&a, Limits::default()).await.expect("session");
    let now = dataset::data_horizon(&ctx).await.expect("horizon").expect("the seed has activities");
    let as_of: DateTime<Utc> = cfg.as_of.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    assert!(now <= as_of && now > as_of - chrono::Duration::days(7), "the data ends at the seed's as_of: {now}");
    let cutoffs = dataset::month_starts(as_of - Months::new(12), as_of);
    let opps = features::compute(&ctx, Entity::Opportunity, &cutoffs, now).await.expect("features");
    assert!(opps.len() > 200, "{} opportunity rows", opps.len());

    // The oracle: Postgres on the source rows, same cut-offs, same definitions.
    let oracle: Vec<OppRow> = sqlx::query_as(
        "SELECT o.id::text, c.cutoff,
                (SELECT count(*) FROM interaction_logs i
                  WHERE i.tenant_id = o.tenant_id AND i.opportunity_id = o.id AND i.occurred_at < c.cutoff),
                coalesce((SELECT h.probability::float8 / 100 FROM stage_histories h
                  WHERE h.tenant_id = o.tenant_id AND h.opportunity_id = o.id AND h.changed_at < c.cutoff
                  ORDER BY h.changed_at DESC, h.id DESC LIMIT 1), 0),
                CASE WHEN o.closed_at < $3 THEN o.status = 'won' END
           FROM opportunities o CROSS JOIN unnest($2::timestamptz[]) AS c(cutoff)
          WHERE o.tenant_id = $1::uuid AND o.created_at < c.cutoff AND (o.closed_at IS NULL OR o.closed_at >= c.cutoff)
          ORDER BY c.cutoff, o.id::text",
    )
    .bind(&a)
    .bind(&cutoffs)
    .bind(now)
    .fetch_all(&db.admin)
    .await
    .expect("oracle");
    let (touches, probability) = (column(&opps, "touches"), column(&opps, "stage_probability"));
    let ours: Vec<OppRow> = (0..opps.len())
        .map(|i| {
            let r = &opps.rows[i];
            (r.id.clone(), r.cutoff, opps.row(i)[touches] as i64, opps.row(i)[probability], r.label)
        })
        .collect();
    assert_eq!(ours.len(), oracle.len(), "rows: the lake's features vs Postgres");
    for (o, w) in ours.iter().zip(&oracle) {
        assert_eq!((&o.0, o.1, o.2, o.4), (&w.0, w.1, w.2, w.4), "row, touches and label");
        assert!((o.3 - w.3).abs() < 1e-12, "{}: stage probability {} vs {}", o.0, o.3, w.3);
    }
    assert!(ours.iter().any(|o| o.2 > 0) && ours.iter().any(|o| o.4 == Some(true)));
    // Only tenant a's rows: none of b's ids.
    let theirs: Vec<String> = sqlx::query_scalar("SELECT id::text FROM opportunities WHERE tenant_id = $1::uuid")
        .bind(&b)
        .fetch_all(&db.admin)
        .await
        .expect("b's ids");
    assert!(!theirs.is_empty() && ours.iter().all(|o| !theirs.contains(&o.0)));

    // Signal end to end: trained on the earlier cut-offs, the scorer ranks the later outcomes.
    let split_at = as_of - Months::new(6);
    let split = dataset::Split::monthly(&ctx, Entity::Opportunity, as_of - Months::new(24), split_at, now)
        .await
        .expect("split");
    let scorer = Scorer::train(&split.train).expect("scorer");
    let evaluation = scoring::evaluate(&scorer, &split.test).expect("evaluation");
    eprintln!("{:?} on {} outcomes: {evaluation:?}", scorer.kind, scorer.outcomes);
    assert_eq!(scorer.kind, Kind::Trained, "{} outcomes", scorer.outcomes);
    assert!(evaluation.auc.unwrap_or(0.0) > 0.7, "{evaluation:?}");
    for entity in [Entity::Lead, Entity::Account] {
        let set = features::compute(&ctx, entity, &cutoffs, now).await.expect("features");
        assert!(!set.is_empty() && set.values.iter().all(|v| v.is_finite()), "{entity:?}");
        assert!(set.labelled().any(|(_, _, l)| l), "{entity:?}: some positive outcome");
    }

    // Model ops: train, register, promote, score every open deal, write back through oltp.
    let tenant_a = orbas_oltp::model::TenantId(a.parse().expect("tenant id"));
    let first = ops::retrain(&db.app, &p.lake, tenant_a, Entity::Opportunity).await.expect("retrain");
    assert_eq!((first.version, first.promoted, first.incumbent.is_none()), (1, true, true), "{first:?}");
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opportunities WHERE tenant_id = $1::uuid AND status = 'open'")
            .bind(&a)
            .fetch_one(&db.admin)
            .await
            .expect("open deals");
    assert_eq!(first.predictions as i64, open, "one prediction per open deal");
    let stored: Vec<(f64, serde_json::Value, String)> = sqlx::query_as(
        "SELECT p.score, p.explanation, v.status FROM predictions p JOIN model_versions v ON v.id = p.model_version_id
           JOIN ai_models m ON m.id = v.model_id
          WHERE p.tenant_id = $1::uuid AND p.entity_type = 'opportunity' AND m.key = 'deal_win'",
    )
    .bind(&a)
    .fetch_all(&db.admin)
    .await
    .expect("predictions");
    assert_eq!(stored.len() as i64, open);
    for (score, explanation, status) in &stored {
        assert!((0.0..=1.0).contains(score) && status == "active");
        let factors = explanation.as_array().expect("a list of factors");
        assert!(!factors.is_empty() && factors.len() <= 6, "{explanation}");
        assert!(
            factors.iter().all(|f| f["feature"].is_string() && f["contribution"].as_f64().is_some_and(|c| c != 0.0))
        );
    }
    let metrics: serde_json::Value = sqlx::query_scalar(
        "SELECT v.metrics FROM model_versions v JOIN ai_models m ON m.id = v.model_id
          WHERE m.tenant_id = $1::uuid AND m.key = 'deal_win' AND v.version = 1",
    )
    .bind(&a)
    .fetch_one(&db.admin)
    .await
    .expect("version 1's metrics");
    let segments = metrics["held_out_by_segment"].as_object().expect("a bias report");
    let rows: u64 = segments.values().filter_map(|e| e["rows"].as_u64()).sum();
    assert!(segments.contains_key("new_business") && rows == metrics["held_out"]["rows"].as_u64().unwrap_or(0));
    // Again on the same data: version 2 is compared with version 1 on the same held-out months and
    // promoted only if better; either way exactly one version serves and the new scores come from it.
    let second = ops::retrain(&db.app, &p.lake, tenant_a, Entity::Opportunity).await.expect("retrain");
    let incumbent = second.incumbent.clone().expect("version 1 was compared");
    assert_eq!(second.version, 2);
    assert_eq!(second.promoted, ops::better(&second.candidate, Some(&incumbent)));
    let versions: Vec<(i32, String)> = sqlx::query_as(
        "SELECT v.version, v.status FROM model_versions v JOIN ai_models m ON m.id = v.model_id
          WHERE m.tenant_id = $1::uuid AND m.key = 'deal_win' ORDER BY v.version",
    )
    .bind(&a)
    .fetch_all(&db.admin)
    .await
    .expect("versions");
    let want = if second.promoted { [(1, "retired"), (2, "active")] } else { [(1, "active"), (2, "retired")] };
    assert_eq!(versions, want.map(|(v, s)| (v, s.to_owned())));
    let serving: Vec<i32> = sqlx::query_scalar(
        "SELECT DISTINCT v.version FROM predictions p JOIN model_versions v ON v.id = p.model_version_id
           JOIN ai_models m ON m.id = v.model_id AND m.key = 'deal_win'
          WHERE p.tenant_id = $1::uuid AND p.predicted_at = (
                SELECT max(q.predicted_at) FROM predictions q JOIN model_versions w ON w.id = q.model_version_id
                  JOIN ai_models n ON n.id = w.model_id AND n.key = 'deal_win' WHERE q.tenant_id = $1::uuid)",
    )
    .bind(&a)
    .fetch_all(&db.admin)
    .await
    .expect("latest predictions");
    assert_eq!(serving, [if second.promoted { 2 } else { 1 }]);

    p.stop().await;
}
