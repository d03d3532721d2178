//! Operational figures Postgres holds, for the status page and `/metrics`: the server and its write
//! position, the logical replication slots and how far each trails it, the active model versions and
//! the report and alert delivery backlog.
//!
//! Server-wide figures ([`database`], [`replication_slots`]) are read through any pool — the catalog
//! views they use are readable by every role, including the app role row-level security binds. The
//! tenant's figures ([`active_models`], [`deliveries`]) take a tenant transaction's connection like
//! every other repository function.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::Result;

/// The database server.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DatabaseStatus {
    /// `server_version`, e.g. `15.14 (Debian 15.14-0+deb12u1)`.
    pub version: String,
    /// The current WAL write position (`pg_current_wal_lsn()`), e.g. `0/1A2B3C4`.
    pub wal_lsn: String,
}

/// A logical replication slot.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SlotStatus {
    pub name: String,
    /// Whether a consumer (the CDC service) is connected to it.
    pub active: bool,
    /// WAL bytes between the server's write position and what the consumer confirmed: what the slot
    /// keeps on disk, and how far the change stream trails the database.
    pub lag_bytes: Option<i64>,
    /// `reserved`, `extended`, `unreserved` (about to lose WAL) or `lost`.
    pub wal_status: Option<String>,
}

/// A model version in service.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ActiveModel {
    /// `lead_score`, `deal_score`, `churn_score`, `sentiment`, …
    pub task: String,
    pub key: String,
    pub version: i32,
    pub trained_at: Option<DateTime<Utc>>,
    pub training_rows: Option<i64>,
}

/// Deliveries waiting or given up, reports and alerts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeliveryBacklog {
    /// Report copies not sent yet (first attempt or retry pending).
    pub reports_pending: i64,
    /// Report copies given up on in the last 24 hours.
    pub reports_failed_24h: i64,
    pub alerts_pending: i64,
    pub alerts_failed_24h: i64,
    /// When the oldest pending delivery (either kind) was due.
    pub oldest_pending_due: Option<DateTime<Utc>>,
}

pub async fn database(pool: &PgPool) -> Result<DatabaseStatus> {
    Ok(sqlx::query_as("SELECT current_setting('server_version') AS version, pg_current_wal_lsn()::text AS wal_lsn")
        .fetch_one(pool)
        .await?)
}

/// The logical slots of the server's current database, by name.
pub async fn replication_slots(pool: &PgPool) -> Result<Vec<SlotStatus>> {
    Ok(sqlx::query_as(
        "SELECT slot_name::text AS name, active, \
                pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag_bytes, wal_status \
         FROM pg_replication_slots WHERE slot_type = 'logical' AND database = current_database() ORDER BY 1",
    )
    .fetch_all(pool)
    .await?)
}

/// The tenant's active model versions, by task and key.
pub async fn active_models(conn: &mut PgConnection) -> Result<Vec<ActiveModel>> {
    Ok(sqlx::query_as(
        "SELECT m.task, m.key, v.version, v.trained_at, v.training_rows \
         FROM model_versions v JOIN ai_models m ON m.tenant_id = v.tenant_id AND m.id = v.model_id \
         WHERE v.status = 'active' ORDER BY m.task, m.key",
    )
    .fetch_all(conn)
    .await?)
}

/// The tenant's delivery backlog.
pub async fn deliveries(conn: &mut PgConnection) -> Result<DeliveryBacklog> {
    Ok(sqlx::query_as(
        "WITH d AS (SELECT 'report' AS kind, status, next_attempt_at, updated_at FROM report_deliveries \
                      WHERE status = 'pending' OR (status = 'failed' AND updated_at > now() - interval '24 hours') \
                    UNION ALL \
                    SELECT 'alert', status, next_attempt_at, updated_at FROM alert_events \
                      WHERE status = 'pending' OR (status = 'failed' AND updated_at > now() - interval '24 hours')) \
         SELECT count(*) FILTER (WHERE kind = 'report' AND status = 'pending') AS reports_pending, \
                count(*) FILTER (WHERE kind = 'report' AND status = 'failed') AS reports_failed_24h, \
                count(*) FILTER (WHERE kind = 'alert' AND status = 'pending') AS alerts_pending, \
                count(*) FILTER (WHERE kind = 'alert' AND status = 'failed') AS alerts_failed_24h, \
                min(next_attempt_at) FILTER (WHERE status = 'pending') AS oldest_pending_due \
         FROM d",
    )
    .fetch_one(conn)
    .await?)
}
