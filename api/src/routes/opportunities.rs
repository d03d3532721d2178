//! `/v1/opportunities`: deals. Stage, status and probability change only through
//! `POST /v1/opportunities/{id}/stage`, which enforces the stage policy and records `stage_histories`;
//! a patched close date is recorded in `close_date_changes` (`GET …/close-date-history`).

use axum::Json;
use chrono::NaiveDate;
use orbas_oltp::model::{
    AccountId, Action, ForecastCategory, OpportunityId, OpportunityKind, OpportunityStatus, StageId, UserId,
};
use orbas_oltp::repo::audit;
use orbas_oltp::repo::opportunities::{
    self, CloseDateChange, NewOpportunity, Opportunity, OpportunityPatch, StageChange,
};
use orbas_oltp::repo::table;
use serde::Deserialize;

crate::list_query!(
    /// Filters of `GET /v1/opportunities`.
    OpportunityQuery {
        owner_id: UserId,
        account_id: AccountId,
        stage_id: StageId,
        status: OpportunityStatus,
        kind: OpportunityKind,
        forecast_category: ForecastCategory,
        /// Only deals closing before this date.
        close_before: NaiveDate,
        /// Only deals closing on or after this date.
        close_from: NaiveDate,
    }
);

crate::resource!(Opportunities {
    name: "opportunities",
    table: opportunities::TABLE,
    record: Opportunity,
    new: NewOpportunity,
    patch: OpportunityPatch,
    query: OpportunityQuery,
    owner: owner_id,
    create: |c, p, n| opportunities::create(c, p.tenant, n, Some(p.user)),
    update: |c, p, id, patch| opportunities::update(c, OpportunityId(id), patch, Some(p.user)),
});

crate::crud_handlers!(
    resource = Opportunities,
    tag = "opportunities",
    collection = "/v1/opportunities",
    item = "/v1/opportunities/{id}",
    record = Opportunity,
    new = NewOpportunity,
    patch = OpportunityPatch,
    filter = OpportunityQuery
);

/// The CRUD routes plus the stage workflow.
pub fn all_routes() -> OpenApiRouter<AppState> {
    router().routes(routes!(change_stage)).routes(routes!(stage_history)).routes(routes!(close_date_history))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageMove {
    pub stage_id: StageId,
}

/// Move a deal to another stage of its pipeline. Skipping stages is allowed, skipping their required
/// fields is not; closed deals do not move (422 with the reason).
#[utoipa::path(post, path = "/v1/opportunities/{id}/stage", tag = "opportunities", request_body = StageMove,
    params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Opportunity), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn change_stage(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<OpportunityId>,
    Body(req): Body<StageMove>,
) -> Result<Json<Opportunity>, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let current: Opportunity = table::get(tx.conn(), &opportunities::TABLE, id.0, true).await?;
    if !p.may("opportunities", Action::Update, current.owner_id) {
        return Err(Problem::new(axum::http::StatusCode::FORBIDDEN, "your role may not update this opportunity"));
    }
    let moved = opportunities::change_stage(tx.conn(), id, req.stage_id, Some(p.user)).await?;
    let changes = audit::diff(
        Some(
            &serde_json::json!({"stage_id": current.stage_id, "status": current.status, "probability": current.probability}),
        ),
        Some(
            &serde_json::json!({"stage_id": moved.stage_id, "status": moved.status, "probability": moved.probability}),
        ),
    );
    audit::record(tx.conn(), p.tenant, &ctx.actor(&auth), "stage_change", "opportunities", id.0, &changes).await?;
    tx.commit().await?;
    Ok(Json(moved))
}

/// The deal's stage changes, oldest first.
#[utoipa::path(get, path = "/v1/opportunities/{id}/stage-history", tag = "opportunities",
    params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Vec<StageChange>), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn stage_history(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<OpportunityId>,
) -> Result<Json<Vec<StageChange>>, Problem> {
    let mut tx = readable(&state, &auth.principal, id).await?;
    let history = opportunities::stage_history(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(Json(history))
}

/// A transaction of the caller's tenant in which `id` is an opportunity the caller may read; 404
/// when it is not (another tenant's, or outside the caller's scope).
async fn readable(
    state: &AppState,
    p: &orbas_oltp::auth::Principal,
    id: OpportunityId,
) -> Result<orbas_oltp::db::TenantTx, Problem> {
    let mut tx = state.db.begin(p.tenant).await?;
    let opp = opportunities::get(tx.conn(), id).await?;
    if !p.may("opportunities", Action::Read, opp.owner_id) {
        return Err(orbas_oltp::Error::NotFound { entity: "opportunity" }.into());
    }
    Ok(tx)
}

/// The deal's close-date changes (who moved the expected close date, from and to), oldest first.
#[utoipa::path(get, path = "/v1/opportunities/{id}/close-date-history", tag = "opportunities",
    params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Vec<CloseDateChange>), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn close_date_history(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<OpportunityId>,
) -> Result<Json<Vec<CloseDateChange>>, Problem> {
    let mut tx = readable(&state, &auth.principal, id).await?;
    let history = opportunities::close_date_history(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(Json(history))
}
