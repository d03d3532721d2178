//! `POST /v1/interactions`: a rep logs a call, meeting, e-mail or note with a lead, contact, account
//! or deal. The engagement features and next-best actions read these (through CDC and the lake), so
//! a logged call is what turns a "call this hot lead" action into done.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use orbas_oltp::model::Action;
use orbas_oltp::repo::audit;
use orbas_oltp::repo::interactions::{self, Interaction, NewInteraction};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body};
use crate::problem::Problem;
use crate::resource::{self, WriteContext};
use crate::routes::{accounts::Accounts, contacts::Contacts, leads::Leads, opportunities::Opportunities};
use crate::state::AppState;

const RESOURCE: &str = "interaction_logs";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(log))
}

/// Logs an interaction as the caller; every record it names must be readable by them.
#[utoipa::path(post, path = "/v1/interactions", tag = "interactions", request_body = NewInteraction,
    security(("bearer" = [])),
    responses((status = 201, body = Interaction), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn log(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Body(new): Body<NewInteraction>,
) -> Result<(StatusCode, Json<Interaction>), Problem> {
    let p = &auth.principal;
    if !p.may(RESOURCE, Action::Create, Some(p.user)) {
        return Err(Problem::new(StatusCode::FORBIDDEN, "your role may not log interactions"));
    }
    let now = Utc::now();
    let problems = new.problems(now);
    if !problems.is_empty() {
        let mut problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "the interaction is not valid");
        for (field, message) in problems {
            problem = problem.with_field(field, message);
        }
        return Err(problem);
    }
    if let Some(id) = new.lead_id {
        resource::readable::<Leads>(&state, &auth, id.0).await?;
    }
    if let Some(id) = new.opportunity_id {
        resource::readable::<Opportunities>(&state, &auth, id.0).await?;
    }
    if let Some(id) = new.account_id {
        resource::readable::<Accounts>(&state, &auth, id.0).await?;
    }
    if let Some(id) = new.contact_id {
        resource::readable::<Contacts>(&state, &auth, id.0).await?;
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let row = interactions::create(tx.conn(), p.tenant, p.user, &new, now).await?;
    let changes = serde_json::json!({ "kind": { "after": row.kind }, "occurred_at": { "after": row.occurred_at } });
    audit::record(tx.conn(), p.tenant, &ctx.actor(&auth), "create", RESOURCE, row.id.0, &changes).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)))
}
