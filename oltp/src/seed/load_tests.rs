//! Loads into a real Postgres (ignored by default): `ORBAS_SEED_DATABASE_URL=postgres://…/db` pointing
//! at a migrated database, as a superuser; `ORBAS_SEED_SCALE` and `ORBAS_SEED_TENANTS` choose the size.
//! Run with `cargo test --release -p orbas-oltp --lib seed::load_tests -- --ignored --nocapture`.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::schema::TABLES;
use super::{SeedConfig, load};

fn env_f64(key: &str, default: f64) -> f64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn pool() -> Option<PgPool> {
    let url = std::env::var("ORBAS_SEED_DATABASE_URL").ok()?;
    PgPool::connect(&url).await.ok()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs ORBAS_SEED_DATABASE_URL"]
async fn loads_every_table_and_the_database_agrees() {
    let Some(pool) = pool().await else { panic!("set ORBAS_SEED_DATABASE_URL to a migrated database") };
    let cfg = SeedConfig::new(env_f64("ORBAS_SEED_TENANTS", 2.0) as u32, env_f64("ORBAS_SEED_SCALE", 0.01), 42);
    let cfg = cfg.unwrap_or_else(|e| panic!("{e}"));
    let report = load(&pool, &cfg).await.unwrap_or_else(|e| panic!("load failed: {e:?}"));
    for t in &report.tables {
        eprintln!("{:<26} {:>9}", t.table, t.rows);
    }
    eprintln!(
        "loaded {} rows in {:.2}s: {:.0} rows/s",
        report.total_rows,
        report.elapsed.as_secs_f64(),
        report.rows_per_sec()
    );
    for (t, stats) in TABLES.iter().zip(&report.tables) {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {}", t.name)))
            .fetch_one(&pool)
            .await
            .unwrap_or(-1);
        assert!(n >= stats.rows as i64, "{}: {n} rows in the database, {} loaded", t.name, stats.rows);
        let per_tenant: i64 = if t.name == "tenants" {
            n
        } else {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(DISTINCT tenant_id) FROM {}", t.name)))
                .fetch_one(&pool)
                .await
                .unwrap_or(-1)
        };
        assert!(per_tenant >= i64::from(cfg.tenants), "{} has rows for {per_tenant} tenants", t.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs ORBAS_SEED_DATABASE_URL"]
async fn refuses_a_role_subject_to_row_level_security() {
    let Ok(url) = std::env::var("ORBAS_SEED_DATABASE_URL") else { panic!("set ORBAS_SEED_DATABASE_URL") };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET ROLE orbas_app").execute(conn).await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = SeedConfig::new(1, 0.001, 1).unwrap_or_else(|e| panic!("{e}"));
    let err = load(&pool, &cfg).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("BYPASSRLS"), "{err}");
}
