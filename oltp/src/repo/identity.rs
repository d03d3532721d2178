//! Identity records behind the API's auth flows: the pre-authentication tenant lookups, users with
//! their credentials and lockout state, refresh-token sessions with rotation and reuse detection, and
//! the login history. Hashing and token formats live in [`crate::auth`]; this module only stores.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::found;
use crate::model::{RoleKey, TenantId, UserId};
use crate::{Error, Result};

/// Which tenant an identifier belongs to, before any tenant is in scope. `None`: no such tenant/key/token.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    Slug(&'a str),
    ApiKeyPrefix(&'a str),
    RefreshTokenHash(&'a str),
    AuthTokenHash(&'a str),
}

pub async fn tenant_of(pool: &PgPool, what: Lookup<'_>) -> Result<Option<TenantId>> {
    let (sql, arg) = match what {
        Lookup::Slug(s) => ("SELECT orbas.tenant_by_slug($1)", s),
        Lookup::ApiKeyPrefix(p) => ("SELECT orbas.tenant_by_api_key_prefix($1)", p),
        Lookup::RefreshTokenHash(h) => ("SELECT orbas.tenant_by_refresh_token($1)", h),
        Lookup::AuthTokenHash(h) => ("SELECT orbas.tenant_by_auth_token($1)", h),
    };
    let id: Option<Uuid> = sqlx::query_scalar(sql).bind(arg).fetch_one(pool).await?;
    Ok(id.map(TenantId))
}

/// The ids of every active tenant, in id order (for jobs that run per tenant).
pub async fn active_tenants(pool: &PgPool) -> Result<Vec<TenantId>> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM tenants WHERE status = 'active' ORDER BY id").fetch_all(pool).await?;
    Ok(ids.into_iter().map(TenantId).collect())
}

/// What a password login needs to know of a user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginUser {
    pub id: UserId,
    pub email: String,
    pub role: RoleKey,
    pub status: String,
    pub password_hash: Option<String>,
    /// SCRAM-SHA-256 verifier of the same password, for the SQL port.
    pub scram_verifier: Option<String>,
    pub failed_attempts: i32,
    pub locked_until: Option<DateTime<Utc>>,
}

impl LoginUser {
    /// Why the user cannot log in at `now` whatever the password — `"locked"` (too many failures) or
    /// `"disabled"` (not an active user); `None` otherwise.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<&'static str> {
        if crate::auth::lockout::LoginThrottle::is_locked(self.locked_until, now) {
            Some("locked")
        } else if self.status != "active" {
            Some("disabled")
        } else {
            None
        }
    }
}

pub async fn login_user_by_email(conn: &mut PgConnection, email: &str) -> Result<Option<LoginUser>> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.email, r.key AS role, u.status, c.password_hash, c.scram_verifier, \
                coalesce(c.failed_attempts, 0) AS failed_attempts, \
                c.locked_until \
         FROM users u JOIN roles r ON r.tenant_id = u.tenant_id AND r.id = u.role_id \
         LEFT JOIN user_credentials c ON c.tenant_id = u.tenant_id AND c.id = u.id \
         WHERE lower(u.email) = lower($1)",
    )
    .bind(email.trim())
    .fetch_optional(conn)
    .await?)
}

/// Stores the lockout counters after a login attempt (no-op for users without credentials).
pub async fn set_login_failures(
    conn: &mut PgConnection,
    user: UserId,
    failed_attempts: u32,
    locked_until: Option<DateTime<Utc>>,
) -> Result<()> {
    sqlx::query("UPDATE user_credentials SET failed_attempts = $2, locked_until = $3 WHERE id = $1")
        .bind(user)
        .bind(i32::try_from(failed_attempts).unwrap_or(i32::MAX))
        .bind(locked_until)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets (or replaces) a user's password hash and SCRAM verifier; clears the lockout.
pub async fn set_password(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    password_hash: &str,
    scram_verifier: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO user_credentials (tenant_id, id, password_hash, scram_verifier) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, scram_verifier = excluded.scram_verifier, \
             failed_attempts = 0, locked_until = NULL, password_set_at = now()",
    )
    .bind(tenant)
    .bind(user)
    .bind(password_hash)
    .bind(scram_verifier)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    Password,
    Refresh,
    ApiKey,
    /// A password login on the SQL port (SCRAM).
    SqlPassword,
    /// An API key used as the password on the SQL port (SCRAM).
    SqlApiKey,
}

/// One login attempt for `login_history`. `failure` is `None` for a success.
#[derive(Debug, Clone)]
pub struct LoginAttempt<'a> {
    pub user: Option<UserId>,
    pub method: LoginMethod,
    pub failure: Option<&'static str>,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<&'a str>,
}

pub async fn record_login(conn: &mut PgConnection, tenant: TenantId, a: &LoginAttempt<'_>) -> Result<()> {
    let method = match a.method {
        LoginMethod::Password => "password",
        LoginMethod::Refresh => "refresh",
        LoginMethod::ApiKey => "api_key",
        LoginMethod::SqlPassword => "sql_password",
        LoginMethod::SqlApiKey => "sql_api_key",
    };
    sqlx::query(
        "INSERT INTO login_history (tenant_id, id, user_id, method, succeeded, failure_reason, ip, user_agent, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::inet, $8, now())",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(a.user)
    .bind(method)
    .bind(a.failure.is_none())
    .bind(a.failure)
    .bind(a.ip.map(|ip| ip.to_string()))
    .bind(a.user_agent)
    .execute(conn)
    .await?;
    Ok(())
}

/// A refresh-token session.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub replaced_by: Option<Uuid>,
}

pub async fn create_session(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    refresh_hash: &str,
    expires_at: DateTime<Utc>,
) -> Result<Session> {
    Ok(sqlx::query_as(
        "INSERT INTO sessions (tenant_id, id, user_id, refresh_token_hash, expires_at) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, user_id, expires_at, revoked_at, replaced_by",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(refresh_hash)
    .bind(expires_at)
    .fetch_one(conn)
    .await?)
}

/// Why a refresh token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefusal {
    Unknown,
    Expired,
    Revoked,
    /// A rotated-away token was presented again: it was stolen or replayed, so every session of the
    /// user has been revoked.
    Reused,
}

/// Rotates a refresh token: the presented session is revoked and replaced by a new one. Presenting an
/// already-rotated token revokes all the user's sessions (reuse detection). Run in one transaction.
pub async fn rotate_session(
    conn: &mut PgConnection,
    tenant: TenantId,
    presented_hash: &str,
    new_hash: &str,
    new_expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<std::result::Result<Session, RefreshRefusal>> {
    let old: Option<Session> = sqlx::query_as(
        "SELECT id, user_id, expires_at, revoked_at, replaced_by FROM sessions WHERE refresh_token_hash = $1 FOR UPDATE",
    )
    .bind(presented_hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(old) = old else { return Ok(Err(RefreshRefusal::Unknown)) };
    if old.replaced_by.is_some() {
        revoke_all_for_user(conn, old.user_id, now).await?;
        return Ok(Err(RefreshRefusal::Reused));
    }
    if old.revoked_at.is_some() {
        return Ok(Err(RefreshRefusal::Revoked));
    }
    if old.expires_at <= now {
        return Ok(Err(RefreshRefusal::Expired));
    }
    let new = create_session(conn, tenant, old.user_id, new_hash, new_expires_at).await?;
    sqlx::query("UPDATE sessions SET revoked_at = $2, replaced_by = $3 WHERE id = $1")
        .bind(old.id)
        .bind(now)
        .bind(new.id)
        .execute(conn)
        .await?;
    Ok(Ok(new))
}

pub async fn revoke_session(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<()> {
    let done = sqlx::query("UPDATE sessions SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    found((done.rows_affected() == 1).then_some(()), "session")
}

pub async fn revoke_all_for_user(conn: &mut PgConnection, user: UserId, now: DateTime<Utc>) -> Result<u64> {
    let done = sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Whether a session is live (for access tokens that name their session).
pub async fn session_is_live(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
    let live: Option<bool> =
        sqlx::query_scalar("SELECT revoked_at IS NULL AND expires_at > $2 FROM sessions WHERE id = $1")
            .bind(id)
            .bind(now)
            .fetch_optional(conn)
            .await?;
    Ok(live.unwrap_or(false))
}

/// In one round trip: whether session `id` is live, and if so — when `with_team` — everyone who
/// reports to `user` (what the bearer check of every request needs). `None` when the session is gone.
pub async fn live_session_team(
    conn: &mut PgConnection,
    id: Uuid,
    user: UserId,
    now: DateTime<Utc>,
    with_team: bool,
) -> Result<Option<Vec<UserId>>> {
    let (live, team): (Option<bool>, Vec<UserId>) = sqlx::query_as(
        "SELECT (SELECT revoked_at IS NULL AND expires_at > $2 FROM sessions WHERE id = $1), \
                CASE WHEN $4 THEN ARRAY(WITH RECURSIVE team AS (SELECT id FROM users WHERE manager_id = $3 \
                      UNION SELECT u.id FROM users u JOIN team t ON u.manager_id = t.id) SELECT id FROM team ORDER BY id) \
                ELSE '{}'::uuid[] END",
    )
    .bind(id)
    .bind(now)
    .bind(user)
    .bind(with_team)
    .fetch_one(conn)
    .await?;
    if team.contains(&user) {
        return Err(Error::invalid("the management chain has a cycle"));
    }
    Ok(live.unwrap_or(false).then_some(team))
}

/// The full names of the tenant's users among `ids` (unknown ids are left out), for labels.
pub async fn names_of(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, full_name FROM users WHERE id = ANY($1) ORDER BY id")
        .bind(ids)
        .fetch_all(conn)
        .await?;
    Ok(rows)
}

/// Everyone who reports to `user`, directly or through managers below them (for `team` scope).
pub async fn reports_of(conn: &mut PgConnection, user: UserId) -> Result<Vec<UserId>> {
    let ids: Vec<UserId> = sqlx::query_scalar(
        "WITH RECURSIVE team AS (SELECT id FROM users WHERE manager_id = $1 \
             UNION SELECT u.id FROM users u JOIN team t ON u.manager_id = t.id) SELECT id FROM team ORDER BY id",
    )
    .bind(user)
    .fetch_all(conn)
    .await?;
    if ids.contains(&user) {
        return Err(Error::invalid("the management chain has a cycle"));
    }
    Ok(ids)
}

/// Role and status of a user, for refreshing an access token.
pub async fn user_role(conn: &mut PgConnection, user: UserId) -> Result<Option<(RoleKey, String)>> {
    Ok(sqlx::query_as(
        "SELECT r.key, u.status FROM users u JOIN roles r ON r.tenant_id = u.tenant_id AND r.id = u.role_id WHERE u.id = $1",
    )
    .bind(user)
    .fetch_optional(conn)
    .await?)
}

pub async fn touch_last_login(conn: &mut PgConnection, user: UserId, now: DateTime<Utc>) -> Result<()> {
    sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1").bind(user).bind(now).execute(conn).await?;
    Ok(())
}

/// The tenant's corporate currency (what money figures are reported in).
pub async fn corporate_currency(conn: &mut PgConnection, tenant: TenantId) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT corporate_currency FROM tenants WHERE id = $1").bind(tenant).fetch_one(conn).await?)
}
