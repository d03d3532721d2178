//! `kpi_definitions`: the tenant's KPIs as stored — the semantics as a JSON object (read and checked by
//! `orbas_dashboards::kpi`, which this crate does not know), the descriptive columns beside it, and the
//! review state (draft → approved by an admin).
//!
//! Invariant: a change to an approved KPI's semantics (`definition`, `unit`, `good_direction`) sends it
//! back to draft in the same statement, so nothing unreviewed is ever served as approved.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::found;
use crate::Result;
use crate::model::{KpiId, TenantId, UserId};

const ENTITY: &str = "KPI";

/// A KPI as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct KpiRow {
    pub id: KpiId,
    pub tenant_id: TenantId,
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    /// The semantics (`source`, `measure`, `time`, `aggregation`, `grain`, `dimensions`, `filter`).
    pub definition: serde_json::Value,
    pub unit: String,
    pub good_direction: String,
    /// `draft` or `approved`.
    pub status: String,
    pub owner_id: Option<UserId>,
    pub approved_by: Option<UserId>,
    pub approved_at: Option<DateTime<Utc>>,
    /// Installed by the system for every tenant (the standard CRM set).
    pub is_standard: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a write sets (everything but the review state, which [`approve`] and the draft rule own).
#[derive(Debug, Clone, PartialEq)]
pub struct KpiWrite {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub definition: serde_json::Value,
    pub unit: String,
    pub good_direction: String,
}

const COLUMNS: &str = "id, tenant_id, key, name, description, definition, unit, good_direction, status, owner_id, \
                       approved_by, approved_at, is_standard, created_at, updated_at";

/// Every KPI of the tenant, by key.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<KpiRow>> {
    let sql = format!("SELECT {COLUMNS} FROM kpi_definitions ORDER BY key");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?)
}

/// One KPI by key (locked for update when `lock`).
pub async fn by_key(conn: &mut PgConnection, key: &str, lock: bool) -> Result<KpiRow> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM kpi_definitions WHERE key = $1{lock}");
    found(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(key).fetch_optional(conn).await?, ENTITY)
}

/// KPIs by id (for dashboards' widgets), in no particular order; ids not found are left out.
pub async fn by_ids(conn: &mut PgConnection, ids: &[KpiId]) -> Result<Vec<KpiRow>> {
    let sql = format!("SELECT {COLUMNS} FROM kpi_definitions WHERE id = ANY($1)");
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.0).collect();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(ids).fetch_all(conn).await?)
}

/// Creates a draft KPI owned by `owner` (409 when the key is taken).
pub async fn create(conn: &mut PgConnection, tenant: TenantId, owner: Option<UserId>, w: &KpiWrite) -> Result<KpiRow> {
    let sql = format!(
        "INSERT INTO kpi_definitions (tenant_id, id, key, name, description, definition, unit, good_direction, owner_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(KpiId::new())
        .bind(&w.key)
        .bind(&w.name)
        .bind(&w.description)
        .bind(&w.definition)
        .bind(&w.unit)
        .bind(&w.good_direction)
        .bind(owner)
        .fetch_one(conn)
        .await?)
}

/// Replaces the KPI `key`'s fields with `w` (its key may change too). A semantic change to an
/// approved KPI returns it to draft; a change of name or description alone keeps it approved.
pub async fn update(conn: &mut PgConnection, key: &str, w: &KpiWrite) -> Result<KpiRow> {
    let sql = format!(
        "UPDATE kpi_definitions SET key = $2, name = $3, description = $4, definition = $5, unit = $6, \
           good_direction = $7, updated_at = now(), \
           status = CASE WHEN definition IS DISTINCT FROM $5 OR unit <> $6 OR good_direction <> $7 \
                         THEN 'draft' ELSE status END, \
           approved_by = CASE WHEN definition IS DISTINCT FROM $5 OR unit <> $6 OR good_direction <> $7 \
                              THEN NULL ELSE approved_by END, \
           approved_at = CASE WHEN definition IS DISTINCT FROM $5 OR unit <> $6 OR good_direction <> $7 \
                              THEN NULL ELSE approved_at END \
         WHERE key = $1 RETURNING {COLUMNS}"
    );
    let row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .bind(&w.key)
        .bind(&w.name)
        .bind(&w.description)
        .bind(&w.definition)
        .bind(&w.unit)
        .bind(&w.good_direction)
        .fetch_optional(conn)
        .await?;
    found(row, ENTITY)
}

/// Marks the KPI approved by `by` (at `at`); approving an approved KPI changes nothing.
pub async fn approve(conn: &mut PgConnection, key: &str, by: Option<UserId>, at: DateTime<Utc>) -> Result<KpiRow> {
    let sql = format!(
        "UPDATE kpi_definitions SET status = 'approved', approved_by = $2, approved_at = $3, updated_at = now() \
         WHERE key = $1 AND status = 'draft' RETURNING {COLUMNS}"
    );
    match sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(key).bind(by).bind(at).fetch_optional(&mut *conn).await? {
        Some(row) => Ok(row),
        None => by_key(conn, key, false).await,
    }
}

/// Deletes the KPI `key` (409 while a dashboard widget uses it).
pub async fn delete(conn: &mut PgConnection, key: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM kpi_definitions WHERE key = $1").bind(key).execute(conn).await?;
    found((done.rows_affected() > 0).then_some(()), ENTITY)
}

/// What [`install_standard`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Installed {
    /// Keys the tenant did not have.
    pub added: u64,
    /// Standard KPIs nobody had changed, moved to this release's content.
    pub upgraded: u64,
}

/// The digest of a KPI's content, over the SQL expressions of its name, description, definition,
/// unit and direction (jsonb's text form is canonical, so equal definitions digest alike). A standard
/// KPI keeps the digest of what the system last wrote (`standard_digest`); while its content still
/// has it, nobody has changed it.
fn digest([name, description, definition, unit, direction]: [&str; 5]) -> String {
    format!(
        "md5({name} || chr(31) || coalesce({description}, '') || chr(31) || ({definition})::text || chr(31) || \
         {unit} || chr(31) || {direction})"
    )
}

/// Installs `kpis` as the tenant's approved standard set: a key the tenant does not have yet is
/// added; a standard KPI nobody has changed since the system wrote it takes the content of `kpis`
/// (a release's improved formula reaches every tenant); a standard KPI an admin changed, and the
/// tenant's own KPI under a standard key, are left as they are.
pub async fn install_standard(
    conn: &mut PgConnection,
    tenant: TenantId,
    kpis: &[KpiWrite],
    at: DateTime<Utc>,
) -> Result<Installed> {
    let new = |first: usize| -> String {
        let p = |i: usize| format!("${}", first + i);
        digest([
            &format!("{}::text", p(0)),
            &format!("{}::text", p(1)),
            &format!("{}::jsonb", p(2)),
            &format!("{}::text", p(3)),
            &format!("{}::text", p(4)),
        ])
    };
    let insert = format!(
        "INSERT INTO kpi_definitions (tenant_id, id, key, name, description, definition, unit, good_direction, \
           status, approved_at, is_standard, standard_digest) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'approved', $9, true, {}) ON CONFLICT (tenant_id, key) DO NOTHING",
        new(4)
    );
    let upgrade = format!(
        "UPDATE kpi_definitions SET name = $2, description = $3, definition = $4, unit = $5, good_direction = $6, \
           updated_at = now(), standard_digest = {new} \
         WHERE key = $1 AND is_standard AND standard_digest = {now} AND standard_digest <> {new}",
        new = new(2),
        now = digest(["name", "description", "definition", "unit", "good_direction"]),
    );
    let mut done = Installed::default();
    for w in kpis {
        let added = sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
            .bind(tenant)
            .bind(KpiId::new())
            .bind(&w.key)
            .bind(&w.name)
            .bind(&w.description)
            .bind(&w.definition)
            .bind(&w.unit)
            .bind(&w.good_direction)
            .bind(at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        done.added += added;
        if added > 0 {
            continue;
        }
        done.upgraded += sqlx::query(sqlx::AssertSqlSafe(upgrade.as_str()))
            .bind(&w.key)
            .bind(&w.name)
            .bind(&w.description)
            .bind(&w.definition)
            .bind(&w.unit)
            .bind(&w.good_direction)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(done)
}
