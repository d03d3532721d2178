//! # orbas-testkit — dev-only test harness
//!
//! Wraps the production launcher ([`orbas_oltp::cluster::PgCluster`]) for tests: one private Postgres
//! cluster per test process (random port, temporary directory, `wal_level=logical`), a migrated
//! template database cloned into a fresh database for every test, and an unprivileged application
//! login so tests see exactly what the server sees (row-level security included).
//!
//! Teardown: the cluster's watchdog stops the server and deletes its directory when the test process
//! exits, however it exits. Used from `tests/` only.
//!
//! [`browser`]: headless Chromium for browser tests (navigate, fill, click, wait, read, screenshot).

pub mod browser;

pub mod smtp;

use orbas_oltp::cluster::{ClusterOptions, PgCluster};
use orbas_oltp::db::{self, Db};
use sqlx::PgPool;
use tokio::sync::OnceCell;
use uuid::Uuid;

/// The application login every test database grants (member of `orbas_app`).
pub const APP_ROLE: &str = "orbas_test_app";
const APP_PASSWORD: &str = "orbas-test-app-password";
const TEMPLATE_DB: &str = "orbas_template";

static CLUSTER: OnceCell<PgCluster> = OnceCell::const_new();
static TEMPLATE: OnceCell<()> = OnceCell::const_new();

/// The process-wide test cluster, started on first use.
pub async fn cluster() -> &'static PgCluster {
    CLUSTER
        .get_or_init(|| async {
            let opts = ClusterOptions { ephemeral_durability: true, ..ClusterOptions::default() };
            match PgCluster::start(opts).await {
                Ok(c) => c,
                Err(e) => panic!("testkit: cannot start Postgres: {e} ({:?})", std::error::Error::source(&e)),
            }
        })
        .await
}

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    /// Superuser pool on this database (bypasses RLS: for setup and for checking what really is stored).
    pub admin: PgPool,
    /// Application handle: the unprivileged role, row-level security applies.
    pub app: Db,
    pub admin_url: String,
    pub app_url: String,
}

/// A fresh, migrated database (cloned from a template migrated once per process).
pub async fn fresh_db() -> TestDb {
    let c = cluster().await;
    TEMPLATE.get_or_init(|| async { prepare_template(c).await }).await;
    let name = unique_name("t");
    exec_on_postgres(c, &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")).await;
    open(c, name).await
}

/// An empty database (no migrations applied), for migration tests. Its `app` handle works once the
/// database is migrated and the app login provisioned.
pub async fn empty_db() -> TestDb {
    let c = cluster().await;
    let name = unique_name("e");
    exec_on_postgres(c, &format!("CREATE DATABASE {name}")).await;
    open(c, name).await
}

async fn open(c: &PgCluster, name: String) -> TestDb {
    let admin_url = c.url(&name);
    let app_url = c.url_as(APP_ROLE, APP_PASSWORD, &name);
    let admin = expect(db::connect(&admin_url, 4).await, "connect admin");
    // Lazy: an empty database's app login may not exist until its migrations ran.
    let app = Db::new(expect(db::connect_lazy(&app_url, 8), "connect app"));
    TestDb { name, admin, app, admin_url, app_url }
}

async fn prepare_template(c: &PgCluster) {
    exec_on_postgres(c, &format!("CREATE DATABASE {TEMPLATE_DB}")).await;
    let pool = expect(db::connect(&c.url(TEMPLATE_DB), 2).await, "connect template");
    expect(db::migrate(&pool).await, "migrate template");
    pool.close().await;
    provision_app(c).await;
}

async fn provision_app(c: &PgCluster) {
    let pool = expect(db::connect(&c.url("postgres"), 1).await, "connect postgres db");
    expect(db::provision_app_role(&pool, APP_ROLE, APP_PASSWORD).await, "provision app role");
    pool.close().await;
}

async fn exec_on_postgres(c: &PgCluster, sql: &str) {
    let pool = expect(db::connect(&c.url("postgres"), 1).await, "connect postgres db");
    expect(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await, sql);
    pool.close().await;
}

/// Waits until `cond` holds, polling every 100 ms, or panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: std::time::Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

fn expect<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("testkit: {what}: {e}"),
    }
}

/// Waits until the CDC service of `slot` has finished its initial snapshot, so every later write is
/// streamed as a change (not folded into the snapshot).
pub async fn cdc_snapshot_done(pool: &PgPool, slot: &str) {
    eventually("the CDC snapshot is done", std::time::Duration::from_secs(60), || {
        let (pool, slot) = (pool.clone(), slot.to_owned());
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT completed_at IS NOT NULL FROM orbas.cdc_snapshots WHERE slot_name = $1",
            )
            .bind(slot)
            .fetch_optional(&pool)
            .await
            .ok()
            .flatten()
                == Some(true)
        }
    })
    .await;
}

/// Every `txn` version the commits of the Delta table at `table_dir` recorded, per app id, in commit
/// order — to check that no commit covers Kafka offsets another already covered.
pub fn delta_txn_versions(table_dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<i64>> {
    let log = table_dir.join("_delta_log");
    let mut files: Vec<_> = expect(std::fs::read_dir(&log), "read the Delta log")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out: std::collections::BTreeMap<String, Vec<i64>> = std::collections::BTreeMap::new();
    for f in files {
        for line in expect(std::fs::read_to_string(&f), "read a Delta commit").lines() {
            let v: serde_json::Value = expect(serde_json::from_str(line), "parse a Delta action");
            if let Some(txn) = v.get("txn") {
                let app = txn["appId"].as_str().unwrap_or_default().to_owned();
                out.entry(app).or_default().push(txn["version"].as_i64().unwrap_or(-1));
            }
        }
    }
    out
}
