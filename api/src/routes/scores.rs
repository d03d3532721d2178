//! `GET /v1/{leads,opportunities,accounts}/{id}/scores`: the latest score each model gave a record
//! (lead conversion, deal win, churn risk), with the factors behind it — readable by whoever may
//! read the record.

use axum::Json;
use axum::extract::State;
use orbas_oltp::model::EntityType;
use orbas_oltp::repo::intelligence::{self, EntityScore};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::extract::{Authenticated, Id};
use crate::problem::Problem;
use crate::resource::{self, Resource};
use crate::routes::{accounts::Accounts, leads::Leads, opportunities::Opportunities};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(lead_scores)).routes(routes!(opportunity_scores)).routes(routes!(account_scores))
}

async fn scores<R: Resource>(
    state: &AppState,
    auth: &Authenticated,
    entity_type: EntityType,
    id: Uuid,
) -> Result<Json<Vec<EntityScore>>, Problem> {
    if auth.principal.scope_for("predictions", orbas_oltp::model::Action::Read).is_none() {
        return Err(Problem::new(axum::http::StatusCode::FORBIDDEN, "your role may not read model scores"));
    }
    resource::readable::<R>(state, auth, id).await?;
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let scores = intelligence::latest_for(tx.conn(), entity_type, id).await?;
    tx.commit().await?;
    Ok(Json(scores))
}

/// The lead's latest conversion score (probability of converting within 90 days) and its factors.
#[utoipa::path(get, path = "/v1/leads/{id}/scores", tag = "leads", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<EntityScore>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn lead_scores(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<Uuid>,
) -> Result<Json<Vec<EntityScore>>, Problem> {
    scores::<Leads>(&state, &auth, EntityType::Lead, id).await
}

/// The opportunity's latest win probability and its factors.
#[utoipa::path(get, path = "/v1/opportunities/{id}/scores", tag = "opportunities", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<EntityScore>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn opportunity_scores(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<Uuid>,
) -> Result<Json<Vec<EntityScore>>, Problem> {
    scores::<Opportunities>(&state, &auth, EntityType::Opportunity, id).await
}

/// The account's latest churn risk (probability of a cancellation within 90 days) and its factors.
#[utoipa::path(get, path = "/v1/accounts/{id}/scores", tag = "accounts", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<EntityScore>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn account_scores(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<Uuid>,
) -> Result<Json<Vec<EntityScore>>, Problem> {
    scores::<Accounts>(&state, &auth, EntityType::Account, id).await
}
