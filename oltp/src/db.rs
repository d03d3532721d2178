//! Connections, migrations and the tenant-scoped transaction.
//!
//! Two kinds of connection exist:
//! * the **admin** pool (`DATABASE_URL`): owns the schema; runs migrations, provisions the application
//!   role, bulk-loads synthetic data. It is never used to serve requests.
//! * the **application** pool ([`Db`]): logs in as a member of `orbas_app`, which owns nothing, is no
//!   superuser and cannot bypass row-level security. Every statement runs inside a [`TenantTx`], which
//!   sets `app.tenant_id` transaction-locally (`set_config(…, true)`), so pooled connections never
//!   carry a tenant over; a statement outside one fails (`orbas.current_tenant_id()` raises).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tracing::{info, instrument};

use crate::model::TenantId;
use crate::{Error, Result};

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The group role the application runs as (created by the first migration).
pub const APP_GROUP_ROLE: &str = "orbas_app";

/// Opens a pool. `max_connections` bounds concurrent statements.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    let (pool, options) = pool_options(url, max_connections)?;
    Ok(pool.connect_with(options).await?)
}

/// A pool that connects on first use (for handles that may never be used).
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<PgPool> {
    let (pool, options) = pool_options(url, max_connections)?;
    Ok(pool.connect_lazy_with(options))
}

fn pool_options(url: &str, max_connections: u32) -> Result<(PgPoolOptions, PgConnectOptions)> {
    let options: PgConnectOptions =
        url.parse().map_err(|e: sqlx::Error| Error::invalid(format!("invalid database URL: {e}")))?;
    let pool = PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(10));
    Ok((pool, options.application_name("orbas")))
}

/// Applies every pending migration. Idempotent: applied migrations are skipped (and checked unchanged).
#[instrument(skip_all)]
pub async fn migrate(admin: &PgPool) -> Result<()> {
    MIGRATOR.run(admin).await?;
    info!(latest = latest_version(), "migrations applied");
    Ok(())
}

/// Version of the newest embedded migration.
pub fn latest_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Migrations embedded in this binary that the database has not applied (empty = schema current).
pub async fn pending_migrations(pool: &PgPool) -> Result<Vec<i64>> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(pool).await?
    } else {
        Vec::new()
    };
    Ok(MIGRATOR.iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect())
}

/// Creates (or updates the password of) a login role that is a member of `orbas_app` and holds no
/// privilege of its own: no superuser, no BYPASSRLS, no CREATEDB/CREATEROLE. Run on the admin pool.
#[instrument(skip(admin, password))]
pub async fn provision_app_role(admin: &PgPool, login: &str, password: &str) -> Result<()> {
    if !login.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || login.is_empty() {
        return Err(Error::invalid("application role name must be [A-Za-z0-9_]+"));
    }
    let mut conn = admin.acquire().await?;
    let group: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(APP_GROUP_ROLE)
        .fetch_one(&mut *conn)
        .await?;
    if !group {
        return Err(Error::invalid("role orbas_app does not exist yet: apply the migrations first"));
    }
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(login)
        .fetch_one(&mut *conn)
        .await?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    // Identifiers and the password literal are quoted by Postgres itself (format %I / %L).
    let stmt: String = sqlx::query_scalar(
        "SELECT format('%s ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE INHERIT', $1::text, $2::text, $3::text)",
    )
    .bind(verb)
    .bind(login)
    .bind(password)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(stmt)).execute(&mut *conn).await?;
    let grant: String = sqlx::query_scalar("SELECT format('GRANT %I TO %I', $1::text, $2::text)")
        .bind(APP_GROUP_ROLE)
        .bind(login)
        .fetch_one(&mut *conn)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(grant)).execute(&mut *conn).await?;
    Ok(())
}

/// The application's database handle: a pool of connections as the unprivileged application role.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins a transaction scoped to `tenant`: row-level security admits only that tenant's rows.
    ///
    /// One round trip: `BEGIN` and the setting travel as one simple-protocol message. The tenant id is
    /// a formatted UUID (hex digits and dashes), so it is safe to inline.
    pub async fn begin(&self, tenant: TenantId) -> Result<TenantTx> {
        let sql = format!("BEGIN; SELECT set_config('app.tenant_id', '{}', true)", tenant.0.hyphenated());
        let tx = self.pool.begin_with(sqlx::AssertSqlSafe(sql)).await?;
        Ok(TenantTx { tx, tenant })
    }
}

/// A transaction in which `app.tenant_id` is set. Dropping it without [`TenantTx::commit`] rolls back.
#[derive(Debug)]
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
}

impl TenantTx {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The connection, for repository functions (`impl PgExecutor` via `&mut *tx.conn()`).
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await.map_err(Error::from)
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await.map_err(Error::from)
    }
}
