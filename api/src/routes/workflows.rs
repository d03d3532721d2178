//! Workflows over several resources: `POST /v1/leads/{id}/convert` and the customer timelines
//! `GET /v1/accounts/{id}/timeline`, `GET /v1/contacts/{id}/timeline`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orbas_oltp::model::{AccountId, Action, ContactId, LeadId};
use orbas_oltp::repo::table::Cursor;
use orbas_oltp::repo::workflows::{self, Converted, LeadConversion, Subject, TimelineEvent};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::{ListResponse, Resource, WriteContext, audit_write, changes, parent};
use crate::routes::{accounts::Accounts, contacts::Contacts, leads::Leads, opportunities::Opportunities};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(convert_lead))
        .routes(routes!(account_timeline))
        .routes(routes!(contact_timeline))
}

fn forbidden(what: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, format!("your role may not {what}"))
}

/// Convert a qualified lead: account (new, or `account_id`), contact (new, or `contact_id`) and,
/// with `opportunity`, a deal — in one transaction; any failure leaves nothing behind.
#[utoipa::path(post, path = "/v1/leads/{id}/convert", tag = "leads", request_body = LeadConversion,
    params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Converted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn convert_lead(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<LeadId>,
    Body(req): Body<LeadConversion>,
) -> Result<Json<Converted>, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let lead = parent::<Leads>(tx.conn(), p, id.0, Action::Update).await?;
    let owner = lead.owner_id.or(Some(p.user));
    if req.account_id.is_none() && !p.may(Accounts::NAME, Action::Create, owner) {
        return Err(forbidden("create accounts"));
    }
    if req.contact_id.is_none() && !p.may(Contacts::NAME, Action::Create, owner) {
        return Err(forbidden("create contacts"));
    }
    if req.opportunity.is_some() && !p.may(Opportunities::NAME, Action::Create, owner) {
        return Err(forbidden("create opportunities"));
    }
    let done = workflows::convert_lead(tx.conn(), p.tenant, id, &req, p.user).await?;
    audit_write(tx.conn(), &auth, &ctx, ("convert", "leads"), id.0, &changes(Some(&lead), Some(&done.lead))).await?;
    if done.account_created {
        let id = done.account.id.0;
        audit_write(tx.conn(), &auth, &ctx, ("create", "accounts"), id, &changes(None::<&()>, Some(&done.account)))
            .await?;
    }
    if done.contact_created {
        let id = done.contact.id.0;
        audit_write(tx.conn(), &auth, &ctx, ("create", "contacts"), id, &changes(None::<&()>, Some(&done.contact)))
            .await?;
    }
    if let Some(o) = &done.opportunity {
        audit_write(tx.conn(), &auth, &ctx, ("create", "opportunities"), o.id.0, &changes(None::<&()>, Some(o)))
            .await?;
    }
    tx.commit().await?;
    Ok(Json(done))
}

/// Page of a timeline.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Page size, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub after: Option<String>,
}

const TIMELINE_SORT: &str = "-at";

async fn timeline(
    state: &AppState,
    auth: &Authenticated,
    subject: Subject,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<ListResponse<TimelineEvent>>, Problem> {
    let Query(q) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let bad =
        || Problem::new(StatusCode::BAD_REQUEST, "`after` is not a timeline cursor; pass `next_cursor` unchanged");
    let before = match q.after.as_deref().map(Cursor::decode).transpose().map_err(|_| bad())? {
        None => None,
        Some(c) if c.sort == TIMELINE_SORT => {
            let at = c.key.as_deref().and_then(|k| DateTime::parse_from_rfc3339(k).ok()).ok_or_else(bad)?;
            Some((at.with_timezone(&Utc), c.id))
        }
        Some(_) => return Err(bad()),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    match subject {
        Subject::Account(a) => drop(parent::<Accounts>(tx.conn(), p, a.0, Action::Read).await?),
        Subject::Contact(c) => drop(parent::<Contacts>(tx.conn(), p, c.0, Action::Read).await?),
    }
    let items = workflows::timeline(tx.conn(), subject, before, limit + 1).await?;
    tx.commit().await?;
    let mut items = items;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = items
        .last()
        .filter(|_| more)
        .map(|e| Cursor { sort: TIMELINE_SORT.into(), key: Some(e.at.to_rfc3339()), id: e.id }.encode());
    Ok(Json(ListResponse { items, next_cursor }))
}

/// Everything that happened with an account — activities, emails and calls, tickets, deal stage
/// changes, invoices — newest first.
#[utoipa::path(get, path = "/v1/accounts/{id}/timeline", tag = "accounts",
    params(("id" = uuid::Uuid, Path), TimelineQuery), security(("bearer" = [])),
    responses((status = 200, body = ListResponse<TimelineEvent>), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn account_timeline(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<AccountId>,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<ListResponse<TimelineEvent>>, Problem> {
    timeline(&state, &auth, Subject::Account(id), query).await
}

/// Everything that happened with a contact, newest first (invoices of the contact's account included).
#[utoipa::path(get, path = "/v1/contacts/{id}/timeline", tag = "contacts",
    params(("id" = uuid::Uuid, Path), TimelineQuery), security(("bearer" = [])),
    responses((status = 200, body = ListResponse<TimelineEvent>), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn contact_timeline(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<ContactId>,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<ListResponse<TimelineEvent>>, Problem> {
    timeline(&state, &auth, Subject::Contact(id), query).await
}
