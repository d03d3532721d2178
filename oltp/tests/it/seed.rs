//! The generator loads into a real schema, deterministically, with signal the models can learn.

use orbas_oltp::seed::{self, SeedConfig};
use sqlx::PgPool;

/// One md5 per table over every row in text order (not every table has an `id`): equal for equal data.
async fn table_checksums(admin: &PgPool) -> Vec<(String, Option<String>)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(admin)
    .await
    .expect("tables");
    let mut out = Vec::new();
    for t in tables {
        let sum: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT md5(string_agg(t_row::text, '|' ORDER BY t_row::text)) FROM {t} t_row"
        )))
        .fetch_one(admin)
        .await
        .expect("checksum");
        out.push((t, sum));
    }
    out
}

#[tokio::test]
async fn same_seed_gives_identical_databases() {
    let cfg = SeedConfig::new(2, 0.01, 1234).expect("cfg");
    let (x, y) = (orbas_testkit::fresh_db().await, orbas_testkit::fresh_db().await);
    let rx = seed::load(&x.admin, &cfg).await.expect("load x");
    let ry = seed::load(&y.admin, &cfg).await.expect("load y");
    assert_eq!(rx.total_rows, ry.total_rows);
    let (cx, cy) = (table_checksums(&x.admin).await, table_checksums(&y.admin).await);
    // Every table but the ones only models write (sentiment is computed from the seeded text), the
    // assistant's (an admin's settings, the questions users ask) and the configuration installed after
    // seeding or written by users (KPIs, dashboards, reports and their deliveries, alerts and their events).
    let derived = [
        "sentiment_scores",
        "ai_settings",
        "ai_queries",
        "kpi_definitions",
        "dashboards",
        "dashboard_widgets",
        "scheduled_reports",
        "report_deliveries",
        "kpi_alerts",
        "alert_events",
    ];
    assert!(cx.iter().all(|(t, s)| s.is_some() || derived.contains(&t.as_str())), "every table has rows: {cx:?}");
    assert_eq!(cx, cy);

    let other = orbas_testkit::fresh_db().await;
    seed::load(&other.admin, &SeedConfig::new(2, 0.01, 1235).expect("cfg")).await.expect("load other");
    let co = table_checksums(&other.admin).await;
    assert_ne!(co.iter().find(|(t, _)| t == "opportunities"), cx.iter().find(|(t, _)| t == "opportunities"));
}

#[tokio::test]
async fn recent_activity_goes_with_higher_lead_conversion() {
    let t = orbas_testkit::fresh_db().await;
    let cfg = SeedConfig::new(1, 0.05, 99).expect("cfg");
    seed::load(&t.admin, &cfg).await.expect("load");
    // Observable data only: a lead's last activity date relative to the dataset's end, and its status.
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "WITH last AS (SELECT l.id, l.status, \
                (SELECT max(i.occurred_at) FROM interaction_logs i WHERE i.lead_id = l.id) AS last_at FROM leads l), \
              edge AS (SELECT max(occurred_at) AS end_at FROM interaction_logs) \
         SELECT CASE WHEN last_at >= end_at - interval '30 days' THEN 'recent' ELSE 'stale' END AS bucket, \
                count(*) FILTER (WHERE status = 'converted'), count(*) \
         FROM last, edge WHERE status IN ('converted', 'unqualified', 'nurturing', 'working', 'qualified') GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&t.admin)
    .await
    .expect("conversion by recency");
    let rate = |b: &str| rows.iter().find(|r| r.0 == b).map(|r| r.1 as f64 / r.2.max(1) as f64).unwrap_or(f64::NAN);
    let (recent, stale) = (rate("recent"), rate("stale"));
    assert!(recent > stale * 1.5, "conversion recent {recent:.3} vs stale {stale:.3} ({rows:?})");
}
