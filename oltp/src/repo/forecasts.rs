//! Forecast snapshots (`forecast_snapshots`): the roll-ups and model forecasts the intelligence stage
//! takes of a tenant's sales, and the calendar they are taken in. Written inside a tenant transaction
//! (row-level security applies) and from there carried by CDC into the lake like any CRM write.
//!
//! A recomputation on the same day replaces that day's computed rows ([`replace_day`]): rows with a
//! `method` and source `rollup` or `model`. Rows made elsewhere — the seeded history, managers'
//! calls — are never touched.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::{TenantId, TerritoryId, UserId};
use crate::{Error, Result};

/// What a tenant reports money and periods in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// ISO 4217 code of the corporate currency.
    pub currency: String,
    /// Month (1–12) the fiscal year starts in.
    pub fiscal_start_month: u32,
    /// Whether a fiscal year is named by the calendar year it ends in (else the one it starts in).
    pub named_by_end: bool,
}

/// The tenant's currency and fiscal calendar.
pub async fn calendar(conn: &mut PgConnection, tenant: TenantId) -> Result<Calendar> {
    let (currency, start, named_by): (String, i16, String) = sqlx::query_as(
        "SELECT corporate_currency, fiscal_year_start_month, fiscal_year_named_by FROM tenants WHERE id = $1",
    )
    .bind(tenant)
    .fetch_one(conn)
    .await?;
    let fiscal_start_month = u32::try_from(start)
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| Error::invalid(format!("tenant {tenant}: fiscal year start month {start} is not a month")))?;
    Ok(Calendar { currency, fiscal_start_month, named_by_end: named_by == "end" })
}

/// Where a snapshot row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The pipeline by forecast category (commit, best case, pipeline, closed) and its weighted amount.
    Rollup,
    /// A model's prediction (`predicted_amount` with its interval).
    Model,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Rollup => "rollup",
            Source::Model => "model",
        }
    }
}

/// A snapshot row to write. Amounts are in `currency`; rows of a tenant as a whole have neither
/// `user_id` nor `territory_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSnapshot {
    pub user_id: Option<UserId>,
    pub territory_id: Option<TerritoryId>,
    pub fiscal_year: i16,
    pub fiscal_quarter: i16,
    pub source: Source,
    /// `bookings` or `mrr`.
    pub metric: &'static str,
    /// The days covered when not the whole fiscal quarter (inclusive).
    pub period: Option<(NaiveDate, NaiveDate)>,
    pub commit_amount: Decimal,
    pub best_case_amount: Decimal,
    pub pipeline_amount: Decimal,
    pub closed_amount: Decimal,
    pub weighted_amount: Option<Decimal>,
    /// Point, low, high, interval level.
    pub predicted: Option<(Decimal, Decimal, Decimal, Decimal)>,
    pub currency: String,
    pub method: String,
}

/// What [`replace_day`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replaced {
    pub deleted: u64,
    pub inserted: u64,
}

/// Replaces the computed snapshots of `day` (rows with a method, sources rollup and model) by `rows`.
pub async fn replace_day(
    conn: &mut PgConnection,
    tenant: TenantId,
    day: NaiveDate,
    rows: &[NewSnapshot],
) -> Result<Replaced> {
    let deleted = sqlx::query(
        "DELETE FROM forecast_snapshots
          WHERE snapshot_date = $1 AND method IS NOT NULL AND source IN ('rollup', 'model')",
    )
    .bind(day)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let mut inserted = 0;
    for r in rows {
        inserted += insert(conn, tenant, day, r).await?;
    }
    Ok(Replaced { deleted, inserted })
}

async fn insert(conn: &mut PgConnection, tenant: TenantId, day: NaiveDate, r: &NewSnapshot) -> Result<u64> {
    let (point, low, high, level) = match r.predicted {
        Some((p, l, h, v)) => (Some(p), Some(l), Some(h), Some(v)),
        None => (None, None, None, None),
    };
    let done = sqlx::query(
        "INSERT INTO forecast_snapshots (tenant_id, id, user_id, territory_id, fiscal_year, fiscal_quarter,
             snapshot_date, source, commit_amount, best_case_amount, pipeline_amount, closed_amount,
             predicted_amount, currency, metric, period_start, period_end, weighted_amount, predicted_low,
             predicted_high, interval_level, method)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(r.user_id)
    .bind(r.territory_id)
    .bind(r.fiscal_year)
    .bind(r.fiscal_quarter)
    .bind(day)
    .bind(r.source.as_str())
    .bind(r.commit_amount)
    .bind(r.best_case_amount)
    .bind(r.pipeline_amount)
    .bind(r.closed_amount)
    .bind(point)
    .bind(&r.currency)
    .bind(r.metric)
    .bind(r.period.map(|p| p.0))
    .bind(r.period.map(|p| p.1))
    .bind(r.weighted_amount)
    .bind(low)
    .bind(high)
    .bind(level)
    .bind(&r.method)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A stored snapshot, as accuracy tracking reads it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Snapshot {
    pub id: Uuid,
    pub user_id: Option<UserId>,
    pub territory_id: Option<TerritoryId>,
    pub fiscal_year: i16,
    pub fiscal_quarter: i16,
    pub snapshot_date: NaiveDate,
    pub source: String,
    pub metric: String,
    pub period_start: Option<NaiveDate>,
    pub period_end: Option<NaiveDate>,
    pub commit_amount: Decimal,
    pub best_case_amount: Decimal,
    pub pipeline_amount: Decimal,
    pub closed_amount: Decimal,
    pub weighted_amount: Option<Decimal>,
    pub predicted_amount: Option<Decimal>,
    pub predicted_low: Option<Decimal>,
    pub predicted_high: Option<Decimal>,
    pub currency: String,
    pub method: Option<String>,
}

/// Snapshots taken on or after `from` and before `until`, oldest first.
pub async fn taken_between(conn: &mut PgConnection, from: NaiveDate, until: NaiveDate) -> Result<Vec<Snapshot>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, territory_id, fiscal_year, fiscal_quarter, snapshot_date, source, metric, period_start,
                period_end, commit_amount, best_case_amount, pipeline_amount, closed_amount, weighted_amount,
                predicted_amount, predicted_low, predicted_high, currency, method
           FROM forecast_snapshots WHERE snapshot_date >= $1 AND snapshot_date < $2
          ORDER BY snapshot_date, id",
    )
    .bind(from)
    .bind(until)
    .fetch_all(conn)
    .await?)
}
