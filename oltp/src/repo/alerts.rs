//! `kpi_alerts` and `alert_events`: threshold alerts as stored, the claiming of due checks, the breaches
//! they record and the digests the sender works through.
//!
//! Invariants: a check is claimed once — [`claim_due`] locks due alerts (`SKIP LOCKED`, so concurrent
//! servers share the work) and the caller moves `next_check_at` in the same transaction; a breach is one
//! row per (alert, recipient, group, period) (`UNIQUE`, inserted `ON CONFLICT DO NOTHING`), so a breach
//! that persists over many checks is recorded — and mailed — once; an event is `sent` exactly when
//! `sent_at` is set.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::found;
use crate::Result;
use crate::model::{AlertEventId, AlertId, KpiId, TenantId, UserId};

const ENTITY: &str = "alert";

/// An alert as stored, with the keys of the KPIs it names.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AlertRow {
    pub id: AlertId,
    pub tenant_id: TenantId,
    pub owner_id: UserId,
    pub name: String,
    pub kpi_id: KpiId,
    pub kpi_key: String,
    pub group_by: Option<String>,
    /// `fiscal_quarter`, `quarter`, `month`, `week`, `day` or `trailing_days`.
    pub period: String,
    pub trailing_days: Option<i32>,
    /// `below` or `above`.
    pub comparison: String,
    pub goal_value: Option<f64>,
    pub goal_kpi_id: Option<KpiId>,
    pub goal_kpi_key: Option<String>,
    pub goal_sql: Option<String>,
    pub goal_factor: f64,
    pub missing_as_zero: bool,
    pub recipients: Vec<String>,
    pub cron: String,
    pub timezone: String,
    pub is_active: bool,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub next_check_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an alert write sets.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertWrite {
    pub name: String,
    pub kpi_id: KpiId,
    pub group_by: Option<String>,
    pub period: String,
    pub trailing_days: Option<i32>,
    pub comparison: String,
    pub goal_value: Option<f64>,
    pub goal_kpi_id: Option<KpiId>,
    pub goal_sql: Option<String>,
    pub goal_factor: f64,
    pub missing_as_zero: bool,
    pub recipients: Vec<String>,
    pub cron: String,
    pub timezone: String,
    pub is_active: bool,
    pub next_check_at: Option<DateTime<Utc>>,
}

/// One recorded breach for one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EventRow {
    pub id: AlertEventId,
    pub tenant_id: TenantId,
    pub alert_id: AlertId,
    pub recipient_id: Option<UserId>,
    pub email: String,
    /// The group's dimension value ('' for an alert on the KPI's total).
    pub group_key: String,
    /// The window, `from..until` (`until` exclusive).
    pub period: String,
    pub value: f64,
    /// The goal the value was compared with (factor applied).
    pub goal: f64,
    /// `pending`, `sent` or `failed` (given up).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A breach to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub group_key: String,
    pub period: String,
    pub value: f64,
    pub goal: f64,
}

/// A pending breach with what its digest line shows.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PendingEvent {
    pub id: AlertEventId,
    pub alert_id: AlertId,
    pub email: String,
    pub group_key: String,
    pub period: String,
    pub value: f64,
    pub goal: f64,
    pub attempts: i32,
    pub alert_name: String,
    pub group_by: Option<String>,
    pub comparison: String,
    pub kpi_name: String,
    pub kpi_unit: String,
}

const SELECT: &str = "SELECT a.id, a.tenant_id, a.owner_id, a.name, a.kpi_id, k.key AS kpi_key, a.group_by, a.period, \
       a.trailing_days, a.comparison, a.goal_value, a.goal_kpi_id, g.key AS goal_kpi_key, a.goal_sql, a.goal_factor, \
       a.missing_as_zero, a.recipients, a.cron, a.timezone, a.is_active, a.last_checked_at, a.next_check_at, \
       a.created_at, a.updated_at \
     FROM kpi_alerts a JOIN kpi_definitions k ON k.id = a.kpi_id \
     LEFT JOIN kpi_definitions g ON g.id = a.goal_kpi_id";
const EVENT_COLUMNS: &str = "id, tenant_id, alert_id, recipient_id, email, group_key, period, value, goal, status, \
                             attempts, next_attempt_at, last_error, sent_at, created_at";

/// The tenant's alerts, oldest first.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<AlertRow>> {
    let sql = format!("{SELECT} ORDER BY a.id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?)
}

/// One alert (locked for update when `lock`).
pub async fn get(conn: &mut PgConnection, id: AlertId, lock: bool) -> Result<AlertRow> {
    let lock = if lock { " FOR UPDATE OF a" } else { "" };
    let sql = format!("{SELECT} WHERE a.id = $1{lock}");
    found(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?, ENTITY)
}

/// Creates an alert owned by `owner`.
pub async fn create(conn: &mut PgConnection, tenant: TenantId, owner: UserId, w: &AlertWrite) -> Result<AlertRow> {
    let id = AlertId::new();
    sqlx::query(
        "INSERT INTO kpi_alerts (tenant_id, id, owner_id, name, kpi_id, group_by, period, trailing_days, comparison, \
           goal_value, goal_kpi_id, goal_sql, goal_factor, missing_as_zero, recipients, cron, timezone, is_active, \
           next_check_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(tenant)
    .bind(id)
    .bind(owner)
    .bind(&w.name)
    .bind(w.kpi_id)
    .bind(&w.group_by)
    .bind(&w.period)
    .bind(w.trailing_days)
    .bind(&w.comparison)
    .bind(w.goal_value)
    .bind(w.goal_kpi_id)
    .bind(&w.goal_sql)
    .bind(w.goal_factor)
    .bind(w.missing_as_zero)
    .bind(&w.recipients)
    .bind(&w.cron)
    .bind(&w.timezone)
    .bind(w.is_active)
    .bind(w.next_check_at)
    .execute(&mut *conn)
    .await?;
    get(conn, id, false).await
}

/// Replaces an alert's fields.
pub async fn update(conn: &mut PgConnection, id: AlertId, w: &AlertWrite) -> Result<AlertRow> {
    let done = sqlx::query(
        "UPDATE kpi_alerts SET name = $2, kpi_id = $3, group_by = $4, period = $5, trailing_days = $6, \
           comparison = $7, goal_value = $8, goal_kpi_id = $9, goal_sql = $10, goal_factor = $11, \
           missing_as_zero = $12, recipients = $13, cron = $14, timezone = $15, is_active = $16, \
           next_check_at = $17, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&w.name)
    .bind(w.kpi_id)
    .bind(&w.group_by)
    .bind(&w.period)
    .bind(w.trailing_days)
    .bind(&w.comparison)
    .bind(w.goal_value)
    .bind(w.goal_kpi_id)
    .bind(&w.goal_sql)
    .bind(w.goal_factor)
    .bind(w.missing_as_zero)
    .bind(&w.recipients)
    .bind(&w.cron)
    .bind(&w.timezone)
    .bind(w.is_active)
    .bind(w.next_check_at)
    .execute(&mut *conn)
    .await?;
    found((done.rows_affected() > 0).then_some(()), ENTITY)?;
    get(conn, id, false).await
}

/// Deletes an alert and its events.
pub async fn delete(conn: &mut PgConnection, id: AlertId) -> Result<()> {
    let done = sqlx::query("DELETE FROM kpi_alerts WHERE id = $1").bind(id).execute(conn).await?;
    found((done.rows_affected() > 0).then_some(()), ENTITY)
}

/// Locks the alerts whose check is due at `now` (skipping those another server holds).
pub async fn claim_due(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<AlertRow>> {
    let sql = format!(
        "{SELECT} WHERE a.is_active AND a.next_check_at <= $1 ORDER BY a.next_check_at LIMIT $2 \
         FOR UPDATE OF a SKIP LOCKED"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(conn).await?)
}

/// Records a check at `checked` and the next one.
pub async fn set_schedule(
    conn: &mut PgConnection,
    id: AlertId,
    checked: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
) -> Result<()> {
    sqlx::query(
        "UPDATE kpi_alerts SET last_checked_at = COALESCE($2, last_checked_at), next_check_at = $3, \
           updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(checked)
    .bind(next)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records `breaches` of `alert` for one recipient; a breach already recorded for that recipient, group
/// and period is left alone. Returns, per breach, whether it is new.
pub async fn add_events(
    conn: &mut PgConnection,
    tenant: TenantId,
    alert: AlertId,
    recipient: (Option<UserId>, &str),
    breaches: &[NewEvent],
    now: DateTime<Utc>,
) -> Result<Vec<bool>> {
    let mut added = Vec::with_capacity(breaches.len());
    for b in breaches {
        let done = sqlx::query(
            "INSERT INTO alert_events (tenant_id, id, alert_id, recipient_id, email, group_key, period, value, goal, \
               next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (tenant_id, alert_id, email, group_key, period) DO NOTHING",
        )
        .bind(tenant)
        .bind(AlertEventId::new())
        .bind(alert)
        .bind(recipient.0)
        .bind(recipient.1)
        .bind(&b.group_key)
        .bind(&b.period)
        .bind(b.value)
        .bind(b.goal)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        added.push(done.rows_affected() > 0);
    }
    Ok(added)
}

/// Locks pending events due at `now` with what their digest shows, by recipient then alert.
pub async fn claim_pending(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<PendingEvent>> {
    Ok(sqlx::query_as(
        "SELECT e.id, e.alert_id, e.email, e.group_key, e.period, e.value, e.goal, e.attempts, a.name AS alert_name, \
           a.group_by, a.comparison, k.name AS kpi_name, k.unit AS kpi_unit \
         FROM alert_events e JOIN kpi_alerts a ON a.id = e.alert_id JOIN kpi_definitions k ON k.id = a.kpi_id \
         WHERE e.status = 'pending' AND e.next_attempt_at <= $1 \
         ORDER BY e.email, a.name, e.alert_id, e.period, e.group_key LIMIT $2 FOR UPDATE OF e SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Marks events sent.
pub async fn mark_sent(conn: &mut PgConnection, ids: &[AlertEventId], at: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "UPDATE alert_events SET status = 'sent', sent_at = $2, attempts = attempts + 1, last_error = NULL, \
           updated_at = now() WHERE id = ANY($1)",
    )
    .bind(ids.iter().map(|i| i.0).collect::<Vec<_>>())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried at `retry_at`, or given up (`failed`) when `None`.
pub async fn mark_failed(
    conn: &mut PgConnection,
    ids: &[AlertEventId],
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<()> {
    let error: String = error.chars().take(2000).collect();
    sqlx::query(
        "UPDATE alert_events SET attempts = attempts + 1, last_error = $2, \
           status = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'pending' END, \
           next_attempt_at = COALESCE($3, next_attempt_at), updated_at = now() WHERE id = ANY($1)",
    )
    .bind(ids.iter().map(|i| i.0).collect::<Vec<_>>())
    .bind(error)
    .bind(retry_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// An alert's events, newest first.
pub async fn events(conn: &mut PgConnection, alert: AlertId, limit: i64) -> Result<Vec<EventRow>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM alert_events WHERE alert_id = $1 ORDER BY created_at DESC, email, group_key LIMIT $2"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(alert).bind(limit).fetch_all(conn).await?)
}

/// The month the tenant's fiscal year starts in (1–12).
pub async fn fiscal_year_start_month(conn: &mut PgConnection, tenant: TenantId) -> Result<i16> {
    Ok(sqlx::query_scalar("SELECT fiscal_year_start_month FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_one(conn)
        .await?)
}
