//! `scheduled_reports` and `report_deliveries`: reports as stored, the claiming of due runs and the
//! per-recipient deliveries the sender works through.
//!
//! Invariants: a run is claimed once — [`claim_due`] locks due reports (`SKIP LOCKED`, so concurrent
//! servers share the work) and the caller moves `next_run_at` in the same transaction; a recipient's
//! copy of a run is one row (`UNIQUE (report, email, scheduled_for)`), so claiming twice cannot send
//! twice; a delivery is `sent` exactly when `sent_at` is set.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::found;
use crate::Result;
use crate::model::{DashboardId, RoleKey, TenantId, UserId};

const ENTITY: &str = "report";

/// A scheduled report as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ReportRow {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub dashboard_id: DashboardId,
    pub owner_id: UserId,
    pub name: String,
    /// Five fields (minute hour day month weekday), or six with seconds first.
    pub cron: String,
    /// IANA time zone the schedule is read in.
    pub timezone: String,
    pub recipients: Vec<String>,
    /// `html`, `pdf`, `csv` or `xlsx`.
    pub format: String,
    #[schema(value_type = Object)]
    pub filters: serde_json::Value,
    pub is_active: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a report write sets.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportWrite {
    pub dashboard_id: DashboardId,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub recipients: Vec<String>,
    pub format: String,
    pub filters: serde_json::Value,
    pub is_active: bool,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// One recipient's copy of one run.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub report_id: Uuid,
    pub recipient_id: Option<UserId>,
    pub email: String,
    pub scheduled_for: DateTime<Utc>,
    /// `pending`, `sent` or `failed` (given up).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A user a report may be sent to.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Recipient {
    pub id: UserId,
    pub email: String,
    pub role: RoleKey,
    pub active: bool,
}

const COLUMNS: &str = "id, tenant_id, dashboard_id, owner_id, name, cron, timezone, recipients, format, filters, \
                       is_active, last_run_at, next_run_at, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, tenant_id, report_id, recipient_id, email, scheduled_for, status, attempts, \
                                next_attempt_at, last_error, sent_at";

/// The tenant's reports, oldest first.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<ReportRow>> {
    let sql = format!("SELECT {COLUMNS} FROM scheduled_reports ORDER BY id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?)
}

/// One report (locked for update when `lock`).
pub async fn get(conn: &mut PgConnection, id: Uuid, lock: bool) -> Result<ReportRow> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM scheduled_reports WHERE id = $1{lock}");
    found(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?, ENTITY)
}

/// Creates a report owned by `owner`.
pub async fn create(conn: &mut PgConnection, tenant: TenantId, owner: UserId, w: &ReportWrite) -> Result<ReportRow> {
    let sql = format!(
        "INSERT INTO scheduled_reports (tenant_id, id, dashboard_id, owner_id, name, cron, timezone, recipients, \
           format, filters, is_active, next_run_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(w.dashboard_id)
        .bind(owner)
        .bind(&w.name)
        .bind(&w.cron)
        .bind(&w.timezone)
        .bind(&w.recipients)
        .bind(&w.format)
        .bind(&w.filters)
        .bind(w.is_active)
        .bind(w.next_run_at)
        .fetch_one(conn)
        .await?)
}

/// Replaces a report's fields.
pub async fn update(conn: &mut PgConnection, id: Uuid, w: &ReportWrite) -> Result<ReportRow> {
    let sql = format!(
        "UPDATE scheduled_reports SET dashboard_id = $2, name = $3, cron = $4, timezone = $5, recipients = $6, \
           format = $7, filters = $8, is_active = $9, next_run_at = $10, updated_at = now() \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(w.dashboard_id)
        .bind(&w.name)
        .bind(&w.cron)
        .bind(&w.timezone)
        .bind(&w.recipients)
        .bind(&w.format)
        .bind(&w.filters)
        .bind(w.is_active)
        .bind(w.next_run_at)
        .fetch_optional(conn)
        .await?;
    found(row, ENTITY)
}

/// Deletes a report and its delivery history.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    let done = sqlx::query("DELETE FROM scheduled_reports WHERE id = $1").bind(id).execute(conn).await?;
    found((done.rows_affected() > 0).then_some(()), ENTITY)
}

/// The tenant's users with these e-mail addresses (case-insensitive), with their role.
pub async fn recipients(conn: &mut PgConnection, emails: &[String]) -> Result<Vec<Recipient>> {
    let lower: Vec<String> = emails.iter().map(|e| e.to_lowercase()).collect();
    Ok(sqlx::query_as(
        "SELECT u.id, u.email, r.key AS role, u.status = 'active' AS active FROM users u JOIN roles r ON r.id = u.role_id \
         WHERE lower(u.email) = ANY($1) ORDER BY u.email",
    )
    .bind(lower)
    .fetch_all(conn)
    .await?)
}

/// Locks the reports whose run is due at `now` (skipping those another server holds).
pub async fn claim_due(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<ReportRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM scheduled_reports WHERE is_active AND next_run_at <= $1 \
         ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(conn).await?)
}

/// Records a run at `ran` and the next one.
pub async fn set_schedule(
    conn: &mut PgConnection,
    id: Uuid,
    ran: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
) -> Result<()> {
    sqlx::query(
        "UPDATE scheduled_reports SET last_run_at = COALESCE($2, last_run_at), next_run_at = $3, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(ran)
    .bind(next)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds the run `scheduled_for` of `report` for each recipient (an existing copy is left alone);
/// returns how many were added.
pub async fn add_deliveries(
    conn: &mut PgConnection,
    tenant: TenantId,
    report: Uuid,
    recipients: &[(Option<UserId>, String)],
    scheduled_for: DateTime<Utc>,
) -> Result<u64> {
    let mut added = 0;
    for (user, email) in recipients {
        let done = sqlx::query(
            "INSERT INTO report_deliveries (tenant_id, id, report_id, recipient_id, email, scheduled_for, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (tenant_id, report_id, email, scheduled_for) DO NOTHING",
        )
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(report)
        .bind(user)
        .bind(email)
        .bind(scheduled_for)
        .execute(&mut *conn)
        .await?;
        added += done.rows_affected();
    }
    Ok(added)
}

/// Locks pending deliveries due at `now`, oldest first.
pub async fn claim_deliveries(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM report_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(conn).await?)
}

/// Marks a delivery sent.
pub async fn mark_sent(conn: &mut PgConnection, id: Uuid, at: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "UPDATE report_deliveries SET status = 'sent', sent_at = $2, attempts = attempts + 1, last_error = NULL, \
           updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried at `retry_at`, or given up (`failed`) when `None`.
pub async fn mark_failed(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<()> {
    let error: String = error.chars().take(2000).collect();
    sqlx::query(
        "UPDATE report_deliveries SET attempts = attempts + 1, last_error = $2, \
           status = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'pending' END, \
           next_attempt_at = COALESCE($3, next_attempt_at), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(retry_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A report's deliveries, newest run first.
pub async fn deliveries(conn: &mut PgConnection, report: Uuid, limit: i64) -> Result<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM report_deliveries WHERE report_id = $1 \
         ORDER BY scheduled_for DESC, email LIMIT $2"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(report).bind(limit).fetch_all(conn).await?)
}
