//! `Idempotency-Key` on POST: a client that retries a create after a timeout gets the first response
//! again (with `Idempotent-Replayed: true`) instead of a second record. The key belongs to the caller
//! (the access token's user); reusing it for another request is 422, retrying while the first is still
//! running 409. Responses other than 5xx and 429 are stored, so a retry of a refused request is refused
//! the same way; after a 5xx the key is released and a retry runs again.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use orbas_oltp::repo::idempotency::{self, Claim};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::problem::Problem;
use crate::server::MAX_BODY_BYTES;
use crate::state::AppState;

pub const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";
/// Response headers worth replaying.
const KEPT: [HeaderName; 3] = [header::LOCATION, header::ETAG, header::CONTENT_TYPE];

fn applies(req: &Request) -> bool {
    req.method() == Method::POST && req.uri().path().starts_with("/v1/") && !req.uri().path().starts_with("/v1/auth/")
}

pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(key) = req.headers().get(HEADER).cloned() else { return next.run(req).await };
    if !applies(&req) {
        return next.run(req).await;
    }
    let key = match key.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 255) {
        Some(k) => k.to_owned(),
        None => {
            return Problem::new(StatusCode::BAD_REQUEST, "Idempotency-Key must be 1 to 255 visible ASCII characters")
                .into_response();
        }
    };
    // Who is asking: an invalid token passes through untouched and the handler answers 401.
    let bearer = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(claims) =
        bearer.and_then(|h| h.strip_prefix("Bearer ")).and_then(|t| state.tokens.verify(t.trim(), Utc::now()).ok())
    else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large").into_response();
    };
    let hash = hex::encode(Sha256::digest(&bytes));
    let path = parts.uri.path().to_owned();
    let claimed = async {
        let mut tx = state.db.begin(claims.tid).await?;
        let c =
            idempotency::claim(tx.conn(), claims.tid, claims.sub.0, &key, ("POST", &path, &hash), Utc::now()).await?;
        tx.commit().await?;
        Ok::<_, orbas_oltp::Error>(c)
    }
    .await;
    let id = match claimed {
        Err(e) => return Problem::from(e).into_response(),
        Ok(Claim::Fresh(id)) => id,
        Ok(Claim::Replay { status, response }) => return replay(status, &response),
        Ok(Claim::InProgress) => {
            let mut p = Problem::new(StatusCode::CONFLICT, "a request with this Idempotency-Key is still in progress");
            p.retry_after_secs = Some(1);
            return p.into_response();
        }
        Ok(Claim::Mismatch) => {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was used for a different request; use a new key for a new request",
            )
            .with_field(HEADER, "reused with another method, path or body")
            .into_response();
        }
    };
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    finish(&state, claims.tid, id, resp).await
}

/// Stores the response (or releases the key after a failure a retry may fix) and returns it.
async fn finish(state: &AppState, tenant: orbas_oltp::model::TenantId, id: uuid::Uuid, resp: Response) -> Response {
    let status = resp.status();
    let keep = keeps(status);
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the server could not complete the request")
            .into_response();
    };
    let stored = async {
        let mut tx = state.db.begin(tenant).await?;
        if keep {
            let saved = stored_form(&parts.headers, &bytes);
            idempotency::record(tx.conn(), id, status.as_u16() as i16, &saved).await?;
        } else {
            idempotency::release(tx.conn(), id).await?;
        }
        tx.commit().await
    }
    .await;
    if let Err(e) = stored {
        // The write itself happened; the client gets its response, a retry would see "in progress"
        // until the claim is presumed abandoned.
        tracing::error!(error = %e, "could not record an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Whether a response is kept under its key and replayed to retries. Responses that say the request
/// did not run to an outcome release the key, so a retry runs it: a server error, a rate limit, and a
/// 401 (an access token that expired between the authentication layer and the handler — the retry
/// comes with a fresh one; found by `orbas bench chaos`, where every retry replayed the 401).
fn keeps(status: StatusCode) -> bool {
    !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::UNAUTHORIZED)
}

fn stored_form(headers: &HeaderMap, body: &[u8]) -> Value {
    let kept: serde_json::Map<String, Value> =
        KEPT.iter().filter_map(|h| Some((h.as_str().to_owned(), json!(headers.get(h)?.to_str().ok()?)))).collect();
    let body = serde_json::from_slice::<Value>(body).unwrap_or_else(|_| json!(String::from_utf8_lossy(body)));
    json!({ "headers": kept, "body": body })
}

fn replay(status: i16, saved: &Value) -> Response {
    let status = u16::try_from(status).ok().and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
    let body = match &saved["body"] {
        Value::String(s) => s.clone().into_bytes(),
        Value::Null => Vec::new(),
        other => other.to_string().into_bytes(),
    };
    let mut resp = (status, body).into_response();
    if let Some(headers) = saved["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(n), Some(Ok(v))) =
                (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str))
            {
                resp.headers_mut().insert(n, v);
            }
        }
    }
    resp.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_kept_refusals_to_run_are_released() {
        for kept in [StatusCode::OK, StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY, StatusCode::CONFLICT] {
            assert!(keeps(kept), "{kept}");
        }
        for released in [
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(!keeps(released), "{released}");
        }
    }
}
