//! Request extractors: the authenticated principal and JSON bodies whose rejections are problem+json.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use chrono::Utc;
use orbas_oltp::auth::Principal;
use orbas_oltp::auth::jwt::Claims;
use orbas_oltp::repo::identity;
use serde::de::DeserializeOwned;

use crate::problem::Problem;
use crate::state::AppState;

/// A request authenticated with a live session's bearer access token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    pub claims: Claims,
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
        let claims =
            state.tokens.verify(token.trim(), now).map_err(|_| unauthorized("invalid or expired access token"))?;
        // Access tokens die with their session: logout and refresh-token reuse take effect at once.
        let mut tx = state.db.begin(claims.tid).await?;
        let live = identity::session_is_live(tx.conn(), claims.sid, now).await?;
        let reports = if live { identity::reports_of(tx.conn(), claims.sub).await? } else { Vec::new() };
        tx.commit().await?;
        if !live {
            return Err(unauthorized("the session has ended; log in again"));
        }
        let mut principal = Principal::interactive(claims.tid, claims.sub, claims.role);
        principal.reports = reports;
        Ok(Authenticated { principal, claims })
    }
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
