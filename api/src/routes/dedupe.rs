//! Duplicates of contacts, accounts and leads: `GET /v1/<kind>/{id}/duplicates` (scored candidates)
//! and `POST /v1/<kind>/{id}/merge` (the path's record survives; the duplicate's children move to it).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use orbas_oltp::model::Action;
use orbas_oltp::repo::dedupe::{self, Candidate, Kind, MergeRecord};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::{Resource, WriteContext, audit_write, changes, parent};
use crate::routes::{accounts::Accounts, contacts::Contacts, leads::Leads};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(contact_duplicates))
        .routes(routes!(account_duplicates))
        .routes(routes!(lead_duplicates))
        .routes(routes!(merge_contacts))
        .routes(routes!(merge_accounts))
        .routes(routes!(merge_leads))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DuplicatesQuery {
    /// At most this many candidates, 1..=100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Which record to merge into the one in the path.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    pub duplicate_id: Uuid,
}

/// The survivor after the merge, and the merge's trace.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Merged {
    /// The surviving record, as `GET` would return it.
    #[schema(value_type = Object)]
    pub survivor: serde_json::Value,
    pub merge: MergeRecord,
}

async fn duplicates<R: Resource>(
    state: &AppState,
    auth: &Authenticated,
    kind: Kind,
    id: Uuid,
    query: Result<Query<DuplicatesQuery>, QueryRejection>,
) -> Result<Json<Vec<Candidate>>, Problem> {
    let Query(q) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    parent::<R>(tx.conn(), p, id, Action::Read).await?;
    let found = dedupe::candidates(tx.conn(), kind, id, q.limit.unwrap_or(10).clamp(1, 100) as usize).await?;
    tx.commit().await?;
    Ok(Json(found))
}

async fn merge<R: Resource>(
    state: &AppState,
    auth: &Authenticated,
    ctx: &WriteContext,
    kind: Kind,
    survivor: Uuid,
    req: MergeRequest,
) -> Result<Json<Merged>, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let before = parent::<R>(tx.conn(), p, survivor, Action::Update).await?;
    let duplicate = parent::<R>(tx.conn(), p, req.duplicate_id, Action::Delete).await?;
    let merge = dedupe::merge(tx.conn(), p.tenant, kind, survivor, req.duplicate_id, p.user).await?;
    let after: R::Record = orbas_oltp::repo::table::get(tx.conn(), R::TABLE, survivor, false).await?;
    let table = kind.table();
    audit_write(tx.conn(), auth, ctx, ("merge", table), survivor, &changes(Some(&before), Some(&after))).await?;
    audit_write(tx.conn(), auth, ctx, ("delete", table), req.duplicate_id, &changes(Some(&duplicate), None::<&()>))
        .await?;
    tx.commit().await?;
    Ok(Json(Merged { survivor: serde_json::to_value(&after).unwrap_or_default(), merge }))
}

macro_rules! endpoints {
    ($dup:ident, $merge:ident, $R:ty, $kind:expr, $tag:literal, $dpath:literal, $mpath:literal) => {
        /// Likely duplicates of this record, best first, with the reasons they matched.
        #[utoipa::path(get, path = $dpath, tag = $tag, params(("id" = Uuid, Path), DuplicatesQuery),
            security(("bearer" = [])),
            responses((status = 200, body = Vec<Candidate>), (status = 400, body = Problem),
                      (status = 401, body = Problem), (status = 404, body = Problem)))]
        async fn $dup(
            State(state): State<AppState>,
            auth: Authenticated,
            Id(id): Id<Uuid>,
            query: Result<Query<DuplicatesQuery>, QueryRejection>,
        ) -> Result<Json<Vec<Candidate>>, Problem> {
            duplicates::<$R>(&state, &auth, $kind, id, query).await
        }

        /// Merge `duplicate_id` into this record: empty fields are filled from it, every record that
        /// referenced it is re-pointed here, it is deleted, and a merge record keeps its last state.
        #[utoipa::path(post, path = $mpath, tag = $tag, request_body = MergeRequest, params(("id" = Uuid, Path)),
            security(("bearer" = [])),
            responses((status = 200, body = Merged), (status = 401, body = Problem), (status = 403, body = Problem),
                      (status = 404, body = Problem), (status = 422, body = Problem)))]
        async fn $merge(
            State(state): State<AppState>,
            auth: Authenticated,
            ctx: WriteContext,
            Id(id): Id<Uuid>,
            Body(req): Body<MergeRequest>,
        ) -> Result<Json<Merged>, Problem> {
            merge::<$R>(&state, &auth, &ctx, $kind, id, req).await
        }
    };
}

endpoints!(
    contact_duplicates,
    merge_contacts,
    Contacts,
    Kind::Contact,
    "contacts",
    "/v1/contacts/{id}/duplicates",
    "/v1/contacts/{id}/merge"
);
endpoints!(
    account_duplicates,
    merge_accounts,
    Accounts,
    Kind::Account,
    "accounts",
    "/v1/accounts/{id}/duplicates",
    "/v1/accounts/{id}/merge"
);
endpoints!(
    lead_duplicates,
    merge_leads,
    Leads,
    Kind::Lead,
    "leads",
    "/v1/leads/{id}/duplicates",
    "/v1/leads/{id}/merge"
);
