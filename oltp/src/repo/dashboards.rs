//! `dashboards` and `dashboard_widgets`: a dashboard's name, sharing, role default and global filters,
//! and its widgets (a KPI or an SQL query, a chart kind, a title, chart options and a grid place).
//!
//! A dashboard is written whole ([`create`], [`replace`]: its widgets are replaced in the same
//! transaction, so a reader never sees half an edit) or one widget at a time ([`add_widget`],
//! [`delete_widget`]). What a widget's query means is `orbas_dashboards`' business, not this module's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::found;
use crate::Result;
use crate::model::{DashboardId, KpiId, TenantId, UserId, WidgetId};

const ENTITY: &str = "dashboard";

/// A dashboard as stored (without its widgets).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DashboardRow {
    pub id: DashboardId,
    pub tenant_id: TenantId,
    pub key: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub owner_id: Option<UserId>,
    pub is_shared: bool,
    /// The role whose users open this dashboard first.
    pub default_for_role: Option<String>,
    pub filters: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A widget as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct WidgetRow {
    pub id: WidgetId,
    pub dashboard_id: DashboardId,
    pub kpi_id: Option<KpiId>,
    pub sql: Option<String>,
    pub kind: String,
    pub title: String,
    pub config: serde_json::Value,
    pub x: i16,
    pub y: i16,
    pub w: i16,
    pub h: i16,
}

/// What a dashboard write sets.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardWrite {
    pub key: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub is_shared: bool,
    pub default_for_role: Option<String>,
    pub filters: serde_json::Value,
}

/// What a widget write sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WidgetWrite {
    pub kpi_id: Option<KpiId>,
    pub sql: Option<String>,
    pub kind: String,
    pub title: String,
    pub config: serde_json::Value,
    pub x: i16,
    pub y: i16,
    pub w: i16,
    pub h: i16,
}

const COLUMNS: &str =
    "id, tenant_id, key, name, description, owner_id, is_shared, default_for_role, filters, created_at, updated_at";
const WIDGET_COLUMNS: &str = "id, dashboard_id, kpi_id, sql, kind, title, config, x, y, w, h";

/// The dashboards `user` (of `role`) may open: shared ones, their own, and their role's default — or
/// every one when `all` (an admin). Ordered by name.
pub async fn visible(conn: &mut PgConnection, user: UserId, role: &str, all: bool) -> Result<Vec<DashboardRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM dashboards \
         WHERE $3 OR is_shared OR owner_id = $1 OR default_for_role = $2 ORDER BY name, id"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user).bind(role).bind(all).fetch_all(conn).await?)
}

/// One dashboard (locked for update when `lock`).
pub async fn get(conn: &mut PgConnection, id: DashboardId, lock: bool) -> Result<DashboardRow> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM dashboards WHERE id = $1{lock}");
    found(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?, ENTITY)
}

/// The dashboard a role opens first, if the tenant has one.
pub async fn default_for_role(conn: &mut PgConnection, role: &str) -> Result<Option<DashboardRow>> {
    let sql = format!("SELECT {COLUMNS} FROM dashboards WHERE default_for_role = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(role).fetch_optional(conn).await?)
}

/// A dashboard's widgets in reading order (top to bottom, left to right).
pub async fn widgets(conn: &mut PgConnection, id: DashboardId) -> Result<Vec<WidgetRow>> {
    let sql = format!("SELECT {WIDGET_COLUMNS} FROM dashboard_widgets WHERE dashboard_id = $1 ORDER BY y, x, id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_all(conn).await?)
}

/// The dashboard under `key`, with the digest of the standard content the system last wrote to it
/// (`None`: a dashboard of the tenant's own, or a standard one changed before digests were kept).
pub async fn standard_digest(conn: &mut PgConnection, key: &str) -> Result<Option<(DashboardId, Option<String>)>> {
    Ok(sqlx::query_as("SELECT id, standard_digest FROM dashboards WHERE key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await?)
}

/// Records the digest of the standard content the system just wrote to dashboard `id`.
pub async fn set_standard_digest(conn: &mut PgConnection, id: DashboardId, digest: &str) -> Result<()> {
    sqlx::query("UPDATE dashboards SET standard_digest = $2 WHERE id = $1").bind(id).bind(digest).execute(conn).await?;
    Ok(())
}

async fn insert_widgets(
    conn: &mut PgConnection,
    tenant: TenantId,
    dashboard: DashboardId,
    widgets: &[WidgetWrite],
) -> Result<Vec<WidgetRow>> {
    let mut out = Vec::with_capacity(widgets.len());
    for w in widgets {
        let sql = format!(
            "INSERT INTO dashboard_widgets (tenant_id, id, dashboard_id, kpi_id, sql, kind, title, config, x, y, w, h) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {WIDGET_COLUMNS}"
        );
        let row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(WidgetId::new())
            .bind(dashboard)
            .bind(w.kpi_id)
            .bind(&w.sql)
            .bind(&w.kind)
            .bind(&w.title)
            .bind(&w.config)
            .bind(w.x)
            .bind(w.y)
            .bind(w.w)
            .bind(w.h)
            .fetch_one(&mut *conn)
            .await?;
        out.push(row);
    }
    Ok(out)
}

/// Creates a dashboard owned by `owner` with its widgets.
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    owner: Option<UserId>,
    d: &DashboardWrite,
    widgets: &[WidgetWrite],
) -> Result<(DashboardRow, Vec<WidgetRow>)> {
    let sql = format!(
        "INSERT INTO dashboards (tenant_id, id, key, name, description, owner_id, is_shared, default_for_role, filters) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    );
    let row: DashboardRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(DashboardId::new())
        .bind(&d.key)
        .bind(&d.name)
        .bind(&d.description)
        .bind(owner)
        .bind(d.is_shared)
        .bind(&d.default_for_role)
        .bind(&d.filters)
        .fetch_one(&mut *conn)
        .await?;
    let widgets = insert_widgets(conn, tenant, row.id, widgets).await?;
    Ok((row, widgets))
}

/// Replaces a dashboard's fields and all of its widgets.
pub async fn replace(
    conn: &mut PgConnection,
    id: DashboardId,
    d: &DashboardWrite,
    widgets: &[WidgetWrite],
) -> Result<(DashboardRow, Vec<WidgetRow>)> {
    let sql = format!(
        "UPDATE dashboards SET key = $2, name = $3, description = $4, is_shared = $5, default_for_role = $6, \
           filters = $7, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row: Option<DashboardRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&d.key)
        .bind(&d.name)
        .bind(&d.description)
        .bind(d.is_shared)
        .bind(&d.default_for_role)
        .bind(&d.filters)
        .fetch_optional(&mut *conn)
        .await?;
    let row = found(row, ENTITY)?;
    sqlx::query("DELETE FROM dashboard_widgets WHERE dashboard_id = $1").bind(id).execute(&mut *conn).await?;
    let widgets = insert_widgets(conn, row.tenant_id, id, widgets).await?;
    Ok((row, widgets))
}

/// Deletes a dashboard and its widgets (and the reports scheduled on it).
pub async fn delete(conn: &mut PgConnection, id: DashboardId) -> Result<()> {
    let done = sqlx::query("DELETE FROM dashboards WHERE id = $1").bind(id).execute(conn).await?;
    found((done.rows_affected() > 0).then_some(()), ENTITY)
}

/// Adds one widget to a dashboard (and touches the dashboard, whose version it is part of).
pub async fn add_widget(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DashboardId,
    w: &WidgetWrite,
) -> Result<WidgetRow> {
    sqlx::query("UPDATE dashboards SET updated_at = now() WHERE id = $1").bind(id).execute(&mut *conn).await?;
    let mut rows = insert_widgets(conn, tenant, id, std::slice::from_ref(w)).await?;
    found(rows.pop(), "widget")
}

/// Removes one widget of a dashboard.
pub async fn delete_widget(conn: &mut PgConnection, id: DashboardId, widget: WidgetId) -> Result<()> {
    let done = sqlx::query("DELETE FROM dashboard_widgets WHERE dashboard_id = $1 AND id = $2")
        .bind(id)
        .bind(widget)
        .execute(&mut *conn)
        .await?;
    found((done.rows_affected() > 0).then_some(()), "widget")?;
    sqlx::query("UPDATE dashboards SET updated_at = now() WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}
