//! `/v1/accounts`: list with keyset pagination and filters, read with `ETag`, create, update with
//! `If-Match`, delete. Every call is authorised by the principal's scope (own/team/all) and runs in
//! the tenant-scoped transaction, so row-level security backs the checks; every write appends an audit
//! row in the same transaction.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orbas_oltp::auth::Principal;
use orbas_oltp::model::{AccountId, Action, Industry, Scope, UserId};
use orbas_oltp::repo::accounts::{self, Account, AccountFilter, AccountPatch, NewAccount};
use orbas_oltp::repo::audit::{self, Actor};
use orbas_oltp::repo::{Page, PageRequest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::state::AppState;

const RESOURCE: &str = "accounts";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(read, update, remove))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub owner_id: Option<UserId>,
    pub parent_id: Option<AccountId>,
    pub industry: Option<Industry>,
    /// Page size, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<Uuid>,
}

impl<T> From<Page<T>> for ListResponse<T> {
    fn from(p: Page<T>) -> Self {
        ListResponse { items: p.items, next_cursor: p.next_after }
    }
}

fn forbidden(action: Action) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, format!("your role may not {} accounts", action.as_str()))
}

/// The owners whose records `scope` covers; `None` means every record.
fn owners_in_scope(p: &Principal, scope: Scope) -> Option<Vec<UserId>> {
    match scope {
        Scope::All => None,
        Scope::Own => Some(vec![p.user]),
        Scope::Team => Some(std::iter::once(p.user).chain(p.reports.iter().copied()).collect()),
    }
}

fn actor(auth: &Authenticated, peer: SocketAddr, headers: &HeaderMap) -> Actor {
    Actor {
        user: Some(auth.principal.user),
        api_key: auth.principal.api_key,
        request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(128).collect()),
        ip: Some(peer.ip()),
    }
}

/// Strong validator of a representation: any change to any field changes it.
fn etag(a: &Account) -> String {
    let bytes = serde_json::to_vec(a).unwrap_or_default();
    format!("\"{}\"", hex::encode(&Sha256::digest(bytes)[..12]))
}

fn with_etag(status: StatusCode, a: Account) -> Response {
    let tag = etag(&a);
    let mut resp = (status, Json(a)).into_response();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// List accounts visible to the caller, oldest first.
#[utoipa::path(get, path = "/v1/accounts", params(ListQuery),
    responses((status = 200, body = ListResponse<Account>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])),
    tag = "accounts",
)]
async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListResponse<Account>>, Problem> {
    let Query(q) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let scope = auth.principal.scope_for(RESOURCE, Action::Read).ok_or_else(|| forbidden(Action::Read))?;
    let filter = AccountFilter {
        owner_id: q.owner_id,
        owned_by_any: owners_in_scope(&auth.principal, scope),
        parent_id: q.parent_id,
        industry: q.industry,
    };
    let page = PageRequest { after: q.after, limit: q.limit.unwrap_or(50) };
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let rows = accounts::list(tx.conn(), &filter, page).await?;
    tx.commit().await?;
    Ok(Json(rows.into()))
}

/// One account, with its `ETag`.
#[utoipa::path(get, path = "/v1/accounts/{id}", params(("id" = Uuid, Path)),
    responses((status = 200, body = Account, headers(("ETag" = String))), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])),
    tag = "accounts",
)]
async fn read(State(state): State<AppState>, auth: Authenticated, Id(id): Id<AccountId>) -> Result<Response, Problem> {
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let account = accounts::get(tx.conn(), id).await?;
    tx.commit().await?;
    if !auth.principal.may(RESOURCE, Action::Read, account.owner_id) {
        return Err(orbas_oltp::Error::NotFound { entity: "account" }.into());
    }
    Ok(with_etag(StatusCode::OK, account))
}

/// Create an account.
#[utoipa::path(post, path = "/v1/accounts", request_body = NewAccount,
    responses((status = 201, body = Account, headers(("ETag" = String), ("Location" = String))), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])),
    tag = "accounts",
)]
async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    auth: Authenticated,
    Body(mut new): Body<NewAccount>,
) -> Result<Response, Problem> {
    let p = &auth.principal;
    let owner = *new.owner_id.get_or_insert(p.user);
    if !p.may(RESOURCE, Action::Create, Some(owner)) {
        return Err(forbidden(Action::Create));
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let account = accounts::create(tx.conn(), p.tenant, &new).await?;
    let after = serde_json::to_value(&account).unwrap_or_default();
    audit::record(
        tx.conn(),
        p.tenant,
        &actor(&auth, peer, &headers),
        "create",
        RESOURCE,
        account.id.0,
        &audit::diff(None, Some(&after)),
    )
    .await?;
    tx.commit().await?;
    let location = format!("/v1/accounts/{}", account.id);
    let mut resp = with_etag(StatusCode::CREATED, account);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Change an account; send `If-Match` with the `ETag` you read to avoid lost updates.
#[utoipa::path(patch, path = "/v1/accounts/{id}", request_body = AccountPatch,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Account, headers(("ETag" = String))), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])),
    tag = "accounts",
)]
async fn update(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    auth: Authenticated,
    Id(id): Id<AccountId>,
    Body(patch): Body<AccountPatch>,
) -> Result<Response, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let current = accounts::get_for_update(tx.conn(), id).await?;
    if !p.may(RESOURCE, Action::Update, current.owner_id)
        || patch.owner_id.is_some_and(|o| !p.may(RESOURCE, Action::Update, Some(o)))
    {
        return Err(forbidden(Action::Update));
    }
    if let Some(expected) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
        && expected.trim() != "*"
        && expected.trim() != etag(&current)
    {
        return Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "the account changed since you read it; fetch it again",
        ));
    }
    let updated = accounts::update(tx.conn(), id, &patch).await?;
    let (before, after) =
        (serde_json::to_value(&current).unwrap_or_default(), serde_json::to_value(&updated).unwrap_or_default());
    audit::record(
        tx.conn(),
        p.tenant,
        &actor(&auth, peer, &headers),
        "update",
        RESOURCE,
        id.0,
        &audit::diff(Some(&before), Some(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, updated))
}

/// Delete an account (refused with 409 while other records still point at it).
#[utoipa::path(delete, path = "/v1/accounts/{id}", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])),
    tag = "accounts",
)]
async fn remove(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    auth: Authenticated,
    Id(id): Id<AccountId>,
) -> Result<StatusCode, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let current = accounts::get_for_update(tx.conn(), id).await?;
    if !p.may(RESOURCE, Action::Delete, current.owner_id) {
        return Err(forbidden(Action::Delete));
    }
    accounts::delete(tx.conn(), id).await?;
    let before = serde_json::to_value(&current).unwrap_or_default();
    audit::record(
        tx.conn(),
        p.tenant,
        &actor(&auth, peer, &headers),
        "delete",
        RESOURCE,
        id.0,
        &audit::diff(Some(&before), None),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
