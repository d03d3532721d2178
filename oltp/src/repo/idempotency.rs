//! Idempotency keys: the first POST with a key claims it, its response is stored, and a retry with the
//! same key and the same request gets that response again instead of a second write. Keys are scoped to
//! the calling principal and kept for [`TTL_HOURS`].

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::model::TenantId;

/// How long a key is remembered.
pub const TTL_HOURS: i64 = 24;
/// A claim whose request has not finished after this long is presumed abandoned (the process died
/// between claiming and recording) and may be taken over by a retry.
pub const ABANDONED_AFTER_SECS: i64 = 300;

/// What a request with a key may do.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key is ours: run the request, then [`record`] its response.
    Fresh(Uuid),
    /// The same request already completed: replay `(status, response)`.
    Replay { status: i16, response: Value },
    /// The same request is still running.
    InProgress,
    /// The key was used for a different request (method, path or body).
    Mismatch,
}

/// An earlier request under a key: method, path, body hash, and its response once finished.
type Stored = (String, String, String, Option<i16>, Option<Value>);

/// Claims `key` for a request, or says what happened to the earlier one.
pub async fn claim(
    conn: &mut PgConnection,
    tenant: TenantId,
    principal: Uuid,
    key: &str,
    (method, path, request_hash): (&str, &str, &str),
    now: DateTime<Utc>,
) -> Result<Claim> {
    // An expired key, or a claim abandoned mid-request, is forgotten first.
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE principal_id = $1 AND key = $2 \
         AND (expires_at <= $3 OR (status IS NULL AND created_at < $3 - make_interval(secs => $4)))",
    )
    .bind(principal)
    .bind(key)
    .bind(now)
    .bind(ABANDONED_AFTER_SECS as f64)
    .execute(&mut *conn)
    .await?;
    let id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (tenant_id, id, principal_id, key, method, path, request_hash, expires_at, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8 + make_interval(hours => $9), $8) \
         ON CONFLICT (tenant_id, principal_id, key) DO NOTHING RETURNING id",
    )
    .bind(tenant)
    .bind(id)
    .bind(principal)
    .bind(key)
    .bind(method)
    .bind(path)
    .bind(request_hash)
    .bind(now)
    .bind(TTL_HOURS as i32)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(Claim::Fresh(id));
    }
    let row: Option<Stored> = sqlx::query_as(
        "SELECT method, path, request_hash, status, response FROM idempotency_keys \
         WHERE principal_id = $1 AND key = $2",
    )
    .bind(principal)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        // Deleted between our insert and select (another retry took over): treat as running.
        None => Claim::InProgress,
        Some((m, p, h, ..)) if (m.as_str(), p.as_str(), h.as_str()) != (method, path, request_hash) => Claim::Mismatch,
        Some((.., Some(status), Some(response))) => Claim::Replay { status, response },
        Some(_) => Claim::InProgress,
    })
}

/// Records the response of a claimed key.
pub async fn record(conn: &mut PgConnection, id: Uuid, status: i16, response: &Value) -> Result<()> {
    sqlx::query("UPDATE idempotency_keys SET status = $2, response = $3 WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(response)
        .execute(conn)
        .await?;
    Ok(())
}

/// Releases a claim without a response (the request failed in a way a retry may fix).
pub async fn release(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}
