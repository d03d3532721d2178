//! Opportunities and their stage changes. A stage change goes through the policy in
//! [`crate::model::check_transition`] and is recorded in `stage_histories` in the same transaction; a
//! change of the expected close date is recorded in `close_date_changes` the same way.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::found;
use super::table::{Filter, Op, Table, col, eq};
use crate::model::{
    AccountId, ContactId, ForecastCategory, OpportunityId, OpportunityKind, OpportunityStatus, StageId, StageRule,
    TenantId, TransitionRefusal, UserId, check_transition,
};
use crate::{Error, Result};

/// A deal in the pipeline.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Opportunity {
    pub id: OpportunityId,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub primary_contact_id: Option<ContactId>,
    pub owner_id: Option<UserId>,
    pub stage_id: StageId,
    pub name: String,
    pub kind: OpportunityKind,
    pub amount: Decimal,
    pub currency: String,
    pub probability: Decimal,
    pub forecast_category: ForecastCategory,
    pub status: OpportunityStatus,
    pub close_date: NaiveDate,
    pub closed_at: Option<DateTime<Utc>>,
    pub lost_reason: Option<String>,
    pub next_step: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new deal; it starts in the first open stage of the default pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOpportunity {
    pub account_id: AccountId,
    pub primary_contact_id: Option<ContactId>,
    pub owner_id: Option<UserId>,
    pub name: String,
    pub kind: OpportunityKind,
    pub amount: Decimal,
    pub currency: String,
    pub close_date: NaiveDate,
}

/// A recorded stage change.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StageChange {
    pub id: Uuid,
    pub opportunity_id: OpportunityId,
    pub from_stage_id: Option<StageId>,
    pub to_stage_id: StageId,
    pub changed_by: Option<UserId>,
    pub changed_at: DateTime<Utc>,
    pub amount: Decimal,
    pub probability: Decimal,
}

#[derive(Debug, sqlx::FromRow)]
struct StageRow {
    id: StageId,
    pipeline: String,
    position: i16,
    probability: Decimal,
    is_won: bool,
    is_lost: bool,
    required_fields: Vec<String>,
}

impl StageRow {
    fn rule(&self) -> StageRule {
        StageRule {
            position: self.position,
            probability: self.probability.to_f64().unwrap_or(0.0),
            is_won: self.is_won,
            is_lost: self.is_lost,
            required_fields: self.required_fields.clone(),
        }
    }
}

macro_rules! columns {
    () => {
        "id, tenant_id, account_id, primary_contact_id, owner_id, stage_id, name, kind, amount, \
    currency, probability, forecast_category, status, close_date, closed_at, lost_reason, next_step, created_at, updated_at"
    };
}

/// The `opportunities` table, for the generic list/get/delete statements.
pub const TABLE: Table = Table {
    name: "opportunities",
    entity: "opportunity",
    columns: &[
        "id",
        "tenant_id",
        "account_id",
        "primary_contact_id",
        "owner_id",
        "stage_id",
        "name",
        "kind",
        "amount",
        "currency",
        "probability",
        "forecast_category",
        "status",
        "close_date",
        "closed_at",
        "lost_reason",
        "next_step",
        "created_at",
        "updated_at",
    ],
    owner: Some("owner_id"),
    filters: &[
        eq("owner_id", "uuid"),
        eq("account_id", "uuid"),
        eq("stage_id", "uuid"),
        eq("status", "text"),
        eq("kind", "text"),
        eq("forecast_category", "text"),
        Filter { param: "close_before", column: col("close_date", "date"), op: Op::Before },
        Filter { param: "close_from", column: col("close_date", "date"), op: Op::From },
    ],
    sorts: &[
        col("close_date", "date"),
        col("amount", "numeric"),
        col("name", "text"),
        col("created_at", "timestamptz"),
        col("updated_at", "timestamptz"),
    ],
};

/// Creates an open opportunity in the first stage of the default pipeline and records that first stage.
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    new: &NewOpportunity,
    by: Option<UserId>,
) -> Result<Opportunity> {
    let first: StageRow = sqlx::query_as(
        "SELECT id, pipeline, position, probability, is_won, is_lost, required_fields FROM pipeline_stages \
         WHERE pipeline = 'default' AND NOT is_won AND NOT is_lost ORDER BY position LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::invalid("the tenant has no open pipeline stage"))?;
    let sql = concat!(
        "INSERT INTO opportunities (tenant_id, id, account_id, primary_contact_id, owner_id, stage_id, name, kind, \
         amount, currency, probability, close_date) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
        columns!()
    );
    let opp: Opportunity = sqlx::query_as(sql)
        .bind(tenant)
        .bind(OpportunityId::new())
        .bind(new.account_id)
        .bind(new.primary_contact_id)
        .bind(new.owner_id)
        .bind(first.id)
        .bind(&new.name)
        .bind(new.kind)
        .bind(new.amount)
        .bind(&new.currency)
        .bind(first.probability)
        .bind(new.close_date)
        .fetch_one(&mut *conn)
        .await?;
    record_change(conn, &opp, None, by).await?;
    Ok(opp)
}

pub async fn get(conn: &mut PgConnection, id: OpportunityId) -> Result<Opportunity> {
    let sql = concat!("SELECT ", columns!(), " FROM opportunities WHERE id = $1");
    found(sqlx::query_as(sql).bind(id).fetch_optional(conn).await?, "opportunity")
}

/// Moves an opportunity to `to`, enforcing the stage policy; records the change in `stage_histories`.
pub async fn change_stage(
    conn: &mut PgConnection,
    id: OpportunityId,
    to: StageId,
    by: Option<UserId>,
) -> Result<Opportunity> {
    let current: Opportunity = super::table::get(conn, &TABLE, id.0, true).await?;
    let stages: Vec<StageRow> = sqlx::query_as(
        "SELECT id, pipeline, position, probability, is_won, is_lost, required_fields FROM pipeline_stages \
         WHERE pipeline = (SELECT pipeline FROM pipeline_stages WHERE id = $1) ORDER BY position",
    )
    .bind(current.stage_id)
    .fetch_all(&mut *conn)
    .await?;
    let from = stages.iter().find(|s| s.id == current.stage_id).ok_or(Error::NotFound { entity: "stage" })?;
    let target = stages.iter().find(|s| s.id == to && s.pipeline == from.pipeline);
    let target = target.ok_or(Error::NotFound { entity: "stage" })?;
    let rules: Vec<StageRule> = stages.iter().map(StageRow::rule).collect();
    let outcome =
        check_transition(&from.rule(), &target.rule(), &rules, |f| is_set(&current, f)).map_err(refusal_error)?;
    let sql = concat!(
        "UPDATE opportunities SET stage_id = $2, status = $3, probability = $4, forecast_category = $5, \
         closed_at = CASE WHEN $3 = 'open' THEN NULL ELSE now() END WHERE id = $1 RETURNING ",
        columns!()
    );
    let updated: Opportunity = sqlx::query_as(sql)
        .bind(id)
        .bind(to)
        .bind(outcome.status)
        .bind(target.probability)
        .bind(outcome.forecast_category)
        .fetch_one(&mut *conn)
        .await?;
    record_change(conn, &updated, Some(current.stage_id), by).await?;
    Ok(updated)
}

/// The recorded stage changes of an opportunity, oldest first.
pub async fn stage_history(conn: &mut PgConnection, id: OpportunityId) -> Result<Vec<StageChange>> {
    Ok(sqlx::query_as(
        "SELECT id, opportunity_id, from_stage_id, to_stage_id, changed_by, changed_at, amount, probability \
         FROM stage_histories WHERE opportunity_id = $1 ORDER BY changed_at, id",
    )
    .bind(id)
    .fetch_all(conn)
    .await?)
}

async fn record_change(
    conn: &mut PgConnection,
    opp: &Opportunity,
    from: Option<StageId>,
    by: Option<UserId>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO stage_histories (tenant_id, id, opportunity_id, from_stage_id, to_stage_id, changed_by, \
         changed_at, amount, currency, probability) VALUES ($1, $2, $3, $4, $5, $6, now(), $7, $8, $9)",
    )
    .bind(opp.tenant_id)
    .bind(Uuid::now_v7())
    .bind(opp.id)
    .bind(from)
    .bind(opp.stage_id)
    .bind(by)
    .bind(opp.amount)
    .bind(&opp.currency)
    .bind(opp.probability)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the opportunity has a value for a field a stage may require.
fn is_set(o: &Opportunity, field: &str) -> bool {
    match field {
        "amount" => o.amount > Decimal::ZERO,
        "primary_contact_id" => o.primary_contact_id.is_some(),
        "owner_id" => o.owner_id.is_some(),
        "close_date" => true,
        "next_step" => o.next_step.as_deref().is_some_and(|s| !s.trim().is_empty()),
        "lost_reason" => o.lost_reason.as_deref().is_some_and(|s| !s.trim().is_empty()),
        _ => false,
    }
}

fn refusal_error(r: TransitionRefusal) -> Error {
    match r {
        TransitionRefusal::AlreadyClosed => Error::invalid("the opportunity is closed; it cannot change stage"),
        TransitionRefusal::SameStage => Error::invalid("the opportunity is already in that stage"),
        TransitionRefusal::MissingFields { fields } => {
            Error::invalid(format!("the target stage requires: {}", fields.join(", ")))
        }
    }
}

/// Fields a caller may change directly (stage, status and probability change only through [`change_stage`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpportunityPatch {
    pub name: Option<String>,
    pub amount: Option<Decimal>,
    pub primary_contact_id: Option<ContactId>,
    pub owner_id: Option<UserId>,
    pub close_date: Option<NaiveDate>,
    pub next_step: Option<String>,
    pub lost_reason: Option<String>,
}

/// Applies `patch`; a new expected close date is recorded in `close_date_changes` (who, when, from
/// and to) in the same statement as the change, against the date read under the row's lock, so the
/// history cannot miss a change or record one that did not happen.
pub async fn update(
    conn: &mut PgConnection,
    id: OpportunityId,
    patch: &OpportunityPatch,
    by: Option<UserId>,
) -> Result<Opportunity> {
    let before: Option<NaiveDate> = sqlx::query_scalar("SELECT close_date FROM opportunities WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let before = found(before, "opportunity")?;
    let sql = concat!(
        "WITH changed AS (UPDATE opportunities SET name = coalesce($2, name), amount = coalesce($3, amount), \
         primary_contact_id = coalesce($4, primary_contact_id), owner_id = coalesce($5, owner_id), \
         close_date = coalesce($6, close_date), next_step = coalesce($7, next_step), \
         lost_reason = coalesce($8, lost_reason) WHERE id = $1 RETURNING *), \
         history AS (INSERT INTO close_date_changes (tenant_id, id, opportunity_id, from_date, to_date, \
         changed_by, changed_at) SELECT c.tenant_id, $9, c.id, $11, c.close_date, $10, now() \
         FROM changed c WHERE c.close_date <> $11) \
         SELECT ",
        columns!(),
        " FROM changed"
    );
    found(
        sqlx::query_as(sql)
            .bind(id)
            .bind(&patch.name)
            .bind(patch.amount)
            .bind(patch.primary_contact_id)
            .bind(patch.owner_id)
            .bind(patch.close_date)
            .bind(&patch.next_step)
            .bind(&patch.lost_reason)
            .bind(Uuid::now_v7())
            .bind(by)
            .bind(before)
            .fetch_optional(conn)
            .await?,
        "opportunity",
    )
}

/// A recorded change of an opportunity's expected close date.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CloseDateChange {
    pub id: Uuid,
    pub opportunity_id: OpportunityId,
    pub from_date: NaiveDate,
    pub to_date: NaiveDate,
    pub changed_by: Option<UserId>,
    pub changed_at: DateTime<Utc>,
}

/// The recorded close-date changes of an opportunity, oldest first.
pub async fn close_date_history(conn: &mut PgConnection, id: OpportunityId) -> Result<Vec<CloseDateChange>> {
    Ok(sqlx::query_as(
        "SELECT id, opportunity_id, from_date, to_date, changed_by, changed_at \
         FROM close_date_changes WHERE opportunity_id = $1 ORDER BY changed_at, id",
    )
    .bind(id)
    .fetch_all(conn)
    .await?)
}
