//! The intelligence service over a real pipeline: started once on a seeded tenant, it trains the
//! scoring models, scores ticket tone, writes next-best actions and forecast snapshots by itself — no
//! job called by hand — and keeps up with the CRM: a ticket written afterwards is scored once the
//! lake has it, and the tone reaches the churn features through CDC. A round the database refuses
//! is run again soon.

use std::sync::Arc;
use std::time::Duration;

use orbas_models::embed;
use orbas_models::features::{self, Entity};
use orbas_models::service::{Schedule, Service};
use orbas_oltp::model::SentimentSubject;
use orbas_oltp::seed;
use orbas_warehouse::sql::Limits;
use tokio::sync::watch;
use uuid::Uuid;

async fn count(db: &orbas_testkit::TestDb, sql: &'static str, tenant: Uuid) -> i64 {
    sqlx::query_scalar(sql).bind(tenant).fetch_one(&db.admin).await.expect("count")
}

/// Rows of `sql` (with `$1` the tenant, `$2` a time) made since `t0`.
async fn since(db: &orbas_testkit::TestDb, sql: &'static str, tenant: Uuid, t0: chrono::DateTime<chrono::Utc>) -> i64 {
    sqlx::query_scalar(sql).bind(tenant).bind(t0).fetch_one(&db.admin).await.expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_keeps_scores_tone_actions_and_forecasts_current() {
    let started = std::time::Instant::now();
    let lap = |what: &str| eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
    let model_dir = embed::model_dir(None).filter(|d| d.join("model.safetensors").is_file());
    let db = orbas_testkit::fresh_db().await;
    let p = super::pipeline(&db).await;
    let cfg = seed::SeedConfig::new(1, 0.02, 31).expect("seed config");
    let report = seed::load(&db.admin, &cfg).await.expect("seed");
    let tenant = report.tenants[0].0.0;
    let t = tenant.to_string();
    super::caught_up(&db, &p.lake, &t).await;
    lap("seeded and in the lake");

    // The seed writes history of every kind (predictions, actions, snapshots): count only what the
    // service writes from here on.
    let t0: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT now()").fetch_one(&db.admin).await.expect("the database's clock");
    let lake = Arc::new(orbas_warehouse::sql::Lake::new(p.root.clone()));
    let schedule = Schedule {
        poll: Duration::from_millis(300),
        sentiment_poll: Duration::from_millis(500),
        model_dir: model_dir.clone(),
        // Tickets only, and a small stored evaluation: the test is about the schedule, not throughput.
        sentiment_subjects: vec![SentimentSubject::Ticket],
        sentiment_eval_rows: 30,
        // A turn that hangs is abandoned and retried within the test's time.
        tenant_deadline: Duration::from_secs(120),
        ..Schedule::default()
    };
    // The database refuses the first round's forecast snapshots, as a busy one would (a pool timeout,
    // a restart): the round must come again soon, not a day (or a tenth of one) later. A sequence
    // counts the attempts; it is not rolled back with the refused transaction.
    sqlx::raw_sql(
        "CREATE SEQUENCE test_forecast_attempts;
         GRANT USAGE ON SEQUENCE test_forecast_attempts TO orbas_app;
         CREATE FUNCTION test_refuse_the_first_forecast() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF nextval('test_forecast_attempts') = 1 THEN RAISE EXCEPTION 'the database is busy'; END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER test_refuse_the_first_forecast BEFORE INSERT ON forecast_snapshots
           FOR EACH STATEMENT EXECUTE FUNCTION test_refuse_the_first_forecast();",
    )
    .execute(&db.admin)
    .await
    .expect("a trigger that refuses the first forecast");
    let (stop_tx, stop_rx) = watch::channel(false);
    let jobs = Service { admin: db.admin.clone(), db: db.app.clone(), lake }.spawn(schedule, stop_rx);

    // Each wait ends before nextest's limit (300 s), so a stuck stage is named, with the service's
    // warnings, rather than killed unnamed.
    let wait = || Duration::from_secs(280).saturating_sub(started.elapsed());
    orbas_testkit::eventually("predictions of all three scoring models", wait(), || async {
        since(
            &db,
            "SELECT count(DISTINCT entity_type) FROM predictions WHERE tenant_id = $1 AND created_at > $2",
            tenant,
            t0,
        )
        .await
            == 3
    })
    .await;
    lap("predictions of all three scoring models");
    orbas_testkit::eventually("forecast snapshots", wait(), || async {
        since(&db, "SELECT count(*) FROM forecast_snapshots WHERE tenant_id = $1 AND created_at > $2", tenant, t0).await
            > 0
    })
    .await;
    lap("forecast snapshots");
    let attempts: i64 = sqlx::query_scalar("SELECT last_value FROM test_forecast_attempts")
        .fetch_one(&db.admin)
        .await
        .expect("attempts");
    assert!(attempts >= 2, "the refused round was retried, not skipped: {attempts} attempts");
    orbas_testkit::eventually("open next-best actions", wait(), || async {
        since(
            &db,
            "SELECT count(*) FROM recommendations WHERE tenant_id = $1 AND status = 'open' AND updated_at > $2",
            tenant,
            t0,
        )
        .await
            > 0
    })
    .await;
    lap("open next-best actions");
    // Retraining runs on its schedule (once here), not on every lake change.
    const VERSIONS: &str = "SELECT count(*) FROM model_versions v JOIN ai_models m ON m.id = v.model_id
          WHERE m.tenant_id = $1 AND m.task IN ('lead_score', 'deal_score', 'churn_score') AND v.created_at > $2";
    let versions = since(&db, VERSIONS, tenant, t0).await;
    assert_eq!(versions, 3, "one new version of each scoring model");

    let Some(_) = model_dir else {
        eprintln!("SKIPPED (tone): no all-MiniLM-L6-v2 under $ORBAS_MODELS — run scripts/setup.sh");
        let _ = stop_tx.send(true);
        jobs.join().await;
        return;
    };
    let tickets = count(&db, "SELECT count(*) FROM tickets WHERE tenant_id = $1", tenant).await;
    orbas_testkit::eventually("every ticket's tone scored", wait(), || async {
        count(&db, "SELECT count(*) FROM sentiment_scores WHERE tenant_id = $1 AND subject_type = 'ticket'", tenant)
            .await
            == tickets
    })
    .await;
    lap("every ticket's tone scored");

    // A ticket written now, angry, on an account with a subscription: scored once the lake has it …
    let account: Uuid = sqlx::query_scalar(
        "SELECT account_id FROM subscriptions WHERE tenant_id = $1 AND cancelled_at IS NULL ORDER BY id LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(&db.admin)
    .await
    .expect("a live subscription");
    let ticket = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO tickets (tenant_id, id, number, account_id, subject, description, status, priority)
         VALUES ($1, $2, 'T-SERVICE-1', $3, 'This is unacceptable, the export is broken again',
                 'Third outage this month. We are furious and considering cancelling.', 'open', 'normal')",
    )
    .bind(tenant)
    .bind(ticket)
    .bind(account)
    .execute(&db.admin)
    .await
    .expect("insert a ticket");
    orbas_testkit::eventually("the new ticket's tone", wait(), || async {
        sqlx::query_scalar::<_, String>(
            "SELECT label FROM sentiment_scores WHERE tenant_id = $1 AND ticket_id = $2 AND subject_type = 'ticket'",
        )
        .bind(tenant)
        .bind(ticket)
        .fetch_optional(&db.admin)
        .await
        .expect("score")
        .as_deref()
            == Some("negative")
    })
    .await;
    lap("the new ticket's tone");

    // … and, through CDC, the account's churn features count it as a negative open ticket.
    let negative_open = features::ACCOUNT_FEATURES.iter().position(|f| *f == "negative_open_tickets").expect("feature");
    orbas_testkit::eventually("the tone in the account's features", wait(), || async {
        let Ok(ctx) = p.lake.session(&t, Limits::default()).await else { return false };
        let now = chrono::Utc::now();
        let Ok(set) = features::compute(&ctx, Entity::Account, &[now], now).await else { return false };
        let id = account.to_string();
        set.rows.iter().position(|r| r.id == id).is_some_and(|i| set.row(i)[negative_open] >= 1.0)
    })
    .await;
    lap("the tone in the account's features");

    assert_eq!(
        since(&db, VERSIONS, tenant, t0).await,
        versions,
        "the lake moved on many times; no retraining came of it"
    );
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(300), jobs.join()).await.expect("the jobs stop when asked");
    p.stop().await;
}
