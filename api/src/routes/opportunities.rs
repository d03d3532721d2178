//! `/v1/opportunities`: deals. Stage, status and probability change only through
//! `POST /v1/opportunities/{id}/stage`, which enforces the stage policy and records `stage_histories`.

use axum::Json;
use chrono::NaiveDate;
use orbas_oltp::model::{Action, OpportunityId, OpportunityStatus, StageId, TenantId, UserId};
use orbas_oltp::repo::opportunities::{
    self, NewOpportunity, Opportunity, OpportunityFilter, OpportunityPatch, StageChange,
};
use orbas_oltp::repo::{Page, PageRequest, audit};
use serde::Deserialize;
use sqlx::PgConnection;

use crate::resource::Resource;

/// Filters of `GET /v1/opportunities`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OpportunityQuery {
    pub owner_id: Option<UserId>,
    pub status: Option<OpportunityStatus>,
    pub stage_id: Option<StageId>,
    /// Only deals closing before this date.
    pub close_before: Option<NaiveDate>,
    /// Page size, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub after: Option<uuid::Uuid>,
}

#[derive(Debug)]
pub struct Opportunities;

impl Resource for Opportunities {
    const NAME: &'static str = "opportunities";
    const ENTITY: &'static str = "opportunity";
    type Record = Opportunity;
    type New = NewOpportunity;
    type Patch = OpportunityPatch;
    type Filter = OpportunityQuery;

    fn id(r: &Opportunity) -> uuid::Uuid {
        r.id.0
    }
    fn owner(r: &Opportunity) -> Option<UserId> {
        r.owner_id
    }
    fn new_owner(n: &mut NewOpportunity) -> &mut Option<UserId> {
        &mut n.owner_id
    }
    fn patch_owner(p: &OpportunityPatch) -> Option<UserId> {
        p.owner_id
    }
    fn page(f: &OpportunityQuery) -> PageRequest {
        PageRequest { after: f.after, limit: f.limit.unwrap_or(50) }
    }
    async fn list(
        c: &mut PgConnection,
        q: &OpportunityQuery,
        owners: Option<Vec<UserId>>,
        page: PageRequest,
    ) -> orbas_oltp::Result<Page<Opportunity>> {
        let filter = OpportunityFilter {
            owner_id: q.owner_id,
            owned_by_any: owners,
            status: q.status,
            stage_id: q.stage_id,
            close_before: q.close_before,
        };
        opportunities::list(c, &filter, page).await
    }
    async fn get(c: &mut PgConnection, id: uuid::Uuid, lock: bool) -> orbas_oltp::Result<Opportunity> {
        let id = OpportunityId(id);
        if lock { opportunities::get_for_update(c, id).await } else { opportunities::get(c, id).await }
    }
    async fn create(c: &mut PgConnection, t: TenantId, n: &NewOpportunity) -> orbas_oltp::Result<Opportunity> {
        // The first stage-history row names the owner as its author: the generic core does not pass the
        // acting user down (the audit row of the create names the actor).
        opportunities::create(c, t, n, n.owner_id).await
    }
    async fn update(c: &mut PgConnection, id: uuid::Uuid, p: &OpportunityPatch) -> orbas_oltp::Result<Opportunity> {
        opportunities::update(c, OpportunityId(id), p).await
    }
    async fn delete(c: &mut PgConnection, id: uuid::Uuid) -> orbas_oltp::Result<()> {
        opportunities::delete(c, OpportunityId(id)).await
    }
}

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
    router().routes(routes!(change_stage)).routes(routes!(stage_history))
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
    let current = opportunities::get_for_update(tx.conn(), id).await?;
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
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let opp = opportunities::get(tx.conn(), id).await?;
    if !p.may("opportunities", Action::Read, opp.owner_id) {
        return Err(orbas_oltp::Error::NotFound { entity: "opportunity" }.into());
    }
    let history = opportunities::stage_history(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(Json(history))
}
