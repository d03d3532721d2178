//! Next-best actions for the signed-in rep, and their feedback (accept, dismiss, snooze with reason).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use orbas_oltp::model::{Action, RecommendationId};
use orbas_oltp::repo::audit;
use orbas_oltp::repo::recommendations::{self, Feedback, Recommendation};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::WriteContext;
use crate::state::AppState;

const RESOURCE: &str = "recommendations";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mine)).routes(routes!(feedback))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MineQuery {
    /// How many, best first (1..=200, default 20).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

fn forbidden() -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "your role has no recommendations")
}

/// The caller's actionable recommendations (open, or snoozed and due again), best first.
#[utoipa::path(get, path = "/v1/me/recommendations", tag = "recommendations", params(MineQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<Recommendation>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
async fn mine(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<MineQuery>, QueryRejection>,
) -> Result<Json<Vec<Recommendation>>, Problem> {
    let Query(q) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(actionable(&state, &auth, q.limit.unwrap_or(20)).await?))
}

/// The caller's actionable recommendations, best first (the API's list and the web UI's inbox).
pub(crate) async fn actionable(
    state: &AppState,
    auth: &Authenticated,
    limit: u32,
) -> Result<Vec<Recommendation>, Problem> {
    let p = &auth.principal;
    if p.scope_for(RESOURCE, Action::Read).is_none() {
        return Err(forbidden());
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let recs = recommendations::for_user(tx.conn(), p.user, Utc::now(), limit).await?;
    tx.commit().await?;
    Ok(recs)
}

/// Accept, dismiss or snooze one of your recommendations.
#[utoipa::path(post, path = "/v1/recommendations/{id}/feedback", tag = "recommendations", request_body = Feedback,
    params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Recommendation), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn feedback(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<RecommendationId>,
    Body(fb): Body<Feedback>,
) -> Result<Json<Recommendation>, Problem> {
    Ok(Json(give_feedback(&state, &auth, &ctx, id, &fb).await?))
}

/// Records the caller's feedback on one of their recommendations, audited in the same transaction
/// (the API's route and the web UI's inbox forms).
pub(crate) async fn give_feedback(
    state: &AppState,
    auth: &Authenticated,
    ctx: &WriteContext,
    id: RecommendationId,
    fb: &Feedback,
) -> Result<Recommendation, Problem> {
    let p = &auth.principal;
    if !p.may(RESOURCE, Action::Update, Some(p.user)) {
        return Err(forbidden());
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let rec = recommendations::give_feedback(tx.conn(), p.tenant, id, p.user, fb).await?;
    let changes = serde_json::json!({ "status": { "after": rec.status }, "reason": { "after": fb.reason } });
    audit::record(tx.conn(), p.tenant, &ctx.actor(auth), "feedback", RESOURCE, id.0, &changes).await?;
    tx.commit().await?;
    Ok(rec)
}
