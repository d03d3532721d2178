//! `/v1/users` (the directory; creating a user invites them) and `/v1/api-keys` (the caller's keys for
//! integrations: shown once at creation, stored hashed, scoped, rate-limited, revocable).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use orbas_oltp::model::{DepartmentId, RoleId, TerritoryId, UserId, UserStatus};
use orbas_oltp::repo::access::{self, ApiKeyInfo, NewApiKey, NewUser, User, UserPatch};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::{WriteContext, audit_write, changes};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    directory::router().routes(routes!(list_keys, create_key)).routes(routes!(revoke_key))
}

mod directory {
    use super::*;

    crate::list_query!(
        /// Filters of `GET /v1/users`.
        UserQuery {
            role_id: RoleId,
            manager_id: UserId,
            territory_id: TerritoryId,
            department_id: DepartmentId,
            status: UserStatus,
            /// Exact email, case-insensitive.
            email: String,
        }
    );

    crate::resource!(Users {
        name: "users",
        table: access::USERS,
        record: User,
        new: NewUser,
        patch: UserPatch,
        query: UserQuery,
        owner: none,
        create: |c, p, n| async { access::invite(c, p.tenant, n, p.user, "/accept-invite").await.map(|(u, _)| u) },
        update: |c, _p, id, patch| access::update_user(c, UserId(id), patch, Utc::now()),
    });

    crate::crud_handlers!(
        resource = Users,
        tag = "users",
        collection = "/v1/users",
        item = "/v1/users/{id}",
        record = User,
        new = NewUser,
        patch = UserPatch,
        filter = UserQuery
    );
}

/// A new API key: the key itself appears here once and is never retrievable again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    pub key: String,
    #[serde(flatten)]
    pub info: ApiKeyInfo,
}

fn interactive_only(auth: &Authenticated) -> Result<(), Problem> {
    match auth.principal.api_key {
        // A leaked key must not be able to mint or manage keys.
        Some(_) => Err(Problem::new(StatusCode::FORBIDDEN, "API keys are managed by a logged-in user, not by a key")),
        None => Ok(()),
    }
}

/// The caller's API keys, newest first (revoked ones included).
#[utoipa::path(get, path = "/v1/api-keys", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Vec<ApiKeyInfo>), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_keys(State(state): State<AppState>, auth: Authenticated) -> Result<Json<Vec<ApiKeyInfo>>, Problem> {
    interactive_only(&auth)?;
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let keys = access::api_keys_of(tx.conn(), auth.principal.user).await?;
    tx.commit().await?;
    Ok(Json(keys))
}

/// Create an API key acting as the caller, narrowed to `scopes`. The response shows the key once.
#[utoipa::path(post, path = "/v1/api-keys", tag = "users", request_body = NewApiKey, security(("bearer" = [])),
    responses((status = 201, body = CreatedApiKey), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
async fn create_key(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Body(new): Body<NewApiKey>,
) -> Result<Response, Problem> {
    interactive_only(&auth)?;
    let p = &auth.principal;
    if !p.may("api_keys", orbas_oltp::model::Action::Create, Some(p.user)) {
        return Err(Problem::new(StatusCode::FORBIDDEN, "your role may not create API keys"));
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let (info, key) = access::create_api_key(tx.conn(), p.tenant, p.user, &new).await?;
    audit_write(tx.conn(), &auth, &ctx, ("create", "api_keys"), info.id, &changes(None::<&()>, Some(&info))).await?;
    tx.commit().await?;
    let location = format!("/v1/api-keys/{}", info.id);
    let mut resp = (StatusCode::CREATED, Json(CreatedApiKey { key: key.secret().expose_secret().to_owned(), info }))
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Revoke one of the caller's keys; requests with it fail from now on.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "users", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ApiKeyInfo), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn revoke_key(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<Uuid>,
) -> Result<Json<ApiKeyInfo>, Problem> {
    interactive_only(&auth)?;
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let info = access::revoke_api_key(tx.conn(), p.user, id, Utc::now()).await?;
    audit_write(tx.conn(), &auth, &ctx, ("revoke", "api_keys"), id, &changes(None::<&()>, Some(&info))).await?;
    tx.commit().await?;
    Ok(Json(info))
}
