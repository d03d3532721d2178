//! Request extractors: the authenticated principal and JSON bodies whose rejections are problem+json.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use chrono::Utc;
use orbas_oltp::auth::Principal;
use orbas_oltp::auth::jwt::Claims;
use orbas_oltp::auth::tokens::ApiKey;
use orbas_oltp::repo::{access, identity};
use serde::de::DeserializeOwned;
use std::time::Instant;

use crate::problem::Problem;
use crate::state::AppState;

/// A request authenticated with a live session's bearer access token, or with an API key
/// (`Authorization: Bearer orbas_…`).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    /// The access token's claims; `None` for an API key. `principal.reports` is filled only for roles
    /// with `team`-scoped permissions (the only decisions that read it).
    pub claims: Option<Claims>,
}

pub fn unauthorized(detail: &str) -> Problem {
    let mut p = Problem::new(StatusCode::UNAUTHORIZED, detail);
    p.www_authenticate = true;
    p
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Err(unauthorized("send an access token: Authorization: Bearer <token>"));
        };
        let now = Utc::now();
        if let Ok(key) = ApiKey::parse(token.trim()) {
            return with_api_key(state, &key, now).await;
        }
        with_access_token(state, token.trim(), now).await
    }
}

/// Authenticates an access token (from the `Authorization` header, or the web UI's session cookie):
/// valid, unexpired, and its session still live — logout and refresh-token reuse take effect at once.
pub(crate) async fn with_access_token(
    state: &AppState,
    token: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Authenticated, Problem> {
    let claims = state.tokens.verify(token, now).map_err(|_| unauthorized("invalid or expired access token"))?;
    let mut tx = state.db.begin(claims.tid).await?;
    // Only roles with `team`-scoped permissions need their reports (a recursive query) looked up.
    let with_team = orbas_oltp::model::uses_team_scope(claims.role);
    let team = identity::live_session_team(tx.conn(), claims.sid, claims.sub, now, with_team).await?;
    tx.commit().await?;
    let Some(reports) = team else {
        return Err(unauthorized("the session has ended; log in again"));
    };
    let mut principal = Principal::interactive(claims.tid, claims.sub, claims.role);
    principal.reports = reports;
    Ok(Authenticated { principal, claims: Some(claims) })
}

/// Authenticates an API key: live (not revoked or expired), its user active, within its rate limit.
async fn with_api_key(state: &AppState, key: &ApiKey, now: chrono::DateTime<Utc>) -> Result<Authenticated, Problem> {
    let refused = || unauthorized("invalid, revoked or expired API key");
    let tenant = identity::tenant_of(state.db.pool(), identity::Lookup::ApiKeyPrefix(key.prefix()))
        .await?
        .ok_or_else(refused)?;
    let mut tx = state.db.begin(tenant).await?;
    let row = access::key_login(tx.conn(), key.prefix()).await?.ok_or_else(refused)?;
    let live = row.refusal(now).is_none();
    if !(key.verify(&row.key_hash) && live) {
        return Err(refused());
    }
    if let Err(wait) =
        state.limiter.check(row.id, u32::try_from(row.rate_limit_per_minute).unwrap_or(1), Instant::now())
    {
        let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "this API key's rate limit is reached; retry later");
        p.retry_after_secs = Some(wait.as_secs().max(1));
        return Err(p);
    }
    let reports = if orbas_oltp::model::uses_team_scope(row.role) {
        identity::reports_of(tx.conn(), row.user_id).await?
    } else {
        Vec::new()
    };
    access::touch_api_key(tx.conn(), row.id, now).await?;
    tx.commit().await?;
    let principal =
        Principal { tenant, user: row.user_id, role: row.role, api_key: Some(row.id), scopes: row.scopes, reports };
    Ok(Authenticated { principal, claims: None })
}

/// `Json<T>` whose rejections are problem+json (400 malformed, 415 wrong type, 422 wrong shape).
#[derive(Debug, Clone, Copy, Default)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await.map_err(Problem::from)?;
        Ok(Body(v))
    }
}

/// A path id; a malformed one is a 404 problem (no resource can live at that URL).
#[derive(Debug, Clone, Copy)]
pub struct Id<T>(pub T);

impl<T, S> FromRequestParts<S> for Id<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Id(v)),
            Err(_) => Err(Problem::new(StatusCode::NOT_FOUND, format!("no resource at {}", parts.uri.path()))),
        }
    }
}
