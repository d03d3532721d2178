//! Access records the API manages: the user directory (invited, active, disabled users and their
//! roles), API keys (stored hashed, with a SCRAM verifier so the SQL port accepts them as passwords),
//! one-time tokens for invites and password resets, and the mails that deliver them (`email_outbox`,
//! drained by the report scheduler's SMTP sender).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::found;
use super::table::{Filter, Op, Table, col, eq};
use crate::auth::tokens::{ApiKey, OneTimeToken, TokenPurpose};
use crate::model::{DepartmentId, RoleId, RoleKey, TenantId, TerritoryId, UserId, UserStatus};
use crate::{Error, Result};

// ---------------------------------------------------------------------------------------------------
// Users

/// A user of the tenant, as the directory shows it (credentials never leave the database).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: String,
    pub full_name: String,
    pub role_id: RoleId,
    pub manager_id: Option<UserId>,
    pub territory_id: Option<TerritoryId>,
    pub department_id: Option<DepartmentId>,
    pub status: UserStatus,
    pub timezone: String,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An invitation: the user is created `invited` and mailed a single-use link to set a password.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(pattern = "^[^@\\s]+@[^@\\s]+$")]
    pub email: String,
    pub full_name: String,
    pub role: RoleKey,
    pub manager_id: Option<UserId>,
    pub territory_id: Option<TerritoryId>,
    pub department_id: Option<DepartmentId>,
    /// IANA zone, default `UTC`.
    pub timezone: Option<String>,
}

/// Changes to a user. Disabling ends their sessions and revokes their API keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub full_name: Option<String>,
    pub role: Option<RoleKey>,
    pub manager_id: Option<UserId>,
    pub territory_id: Option<TerritoryId>,
    pub department_id: Option<DepartmentId>,
    /// `active` or `disabled` (`invited` users become active by accepting their invite).
    pub status: Option<UserStatus>,
    pub timezone: Option<String>,
}

pub const USERS: Table = Table {
    name: "users",
    entity: "user",
    columns: &[
        "id",
        "tenant_id",
        "email",
        "full_name",
        "role_id",
        "manager_id",
        "territory_id",
        "department_id",
        "status",
        "timezone",
        "last_login_at",
        "created_at",
        "updated_at",
    ],
    owner: None,
    filters: &[
        eq("role_id", "uuid"),
        eq("manager_id", "uuid"),
        eq("territory_id", "uuid"),
        eq("department_id", "uuid"),
        eq("status", "text"),
        Filter { param: "email", column: col("email", "text"), op: Op::IEq },
    ],
    sorts: &[col("full_name", "text"), col("email", "text"), col("created_at", "timestamptz")],
};

async fn role_id(conn: &mut PgConnection, role: RoleKey) -> Result<RoleId> {
    sqlx::query_scalar("SELECT id FROM roles WHERE key = $1")
        .bind(role)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::invalid(format!("role: the tenant has no role {role}")))
}

/// The row a user record is written from: the request with the role resolved to its id.
#[derive(Serialize)]
struct UserRow<'a, B> {
    #[serde(flatten)]
    body: &'a B,
    role_id: Option<RoleId>,
}

/// Creates an invited user, a 7-day invite token and the mail carrying it. Returns the user and the
/// token (the caller mails it; it is never stored in clear).
pub async fn invite(
    conn: &mut PgConnection,
    tenant: TenantId,
    new: &NewUser,
    by: UserId,
    accept_url: &str,
) -> Result<(User, OneTimeToken)> {
    #[derive(Serialize)]
    struct Invited<'a> {
        email: &'a str,
        full_name: &'a str,
        manager_id: Option<UserId>,
        territory_id: Option<TerritoryId>,
        department_id: Option<DepartmentId>,
        timezone: Option<&'a str>,
        status: UserStatus,
    }
    let role = role_id(conn, new.role).await?;
    let body = Invited {
        email: new.email.trim(),
        full_name: new.full_name.trim(),
        manager_id: new.manager_id,
        territory_id: new.territory_id,
        department_id: new.department_id,
        timezone: new.timezone.as_deref(),
        status: UserStatus::Invited,
    };
    let user: User =
        super::table::insert(conn, &USERS, tenant, UserId::new().0, &UserRow { body: &body, role_id: Some(role) })
            .await
            .map_err(|e| match e {
                Error::Conflict { .. } => {
                    Error::Conflict { constraint: "a user with this email already exists".into() }
                }
                other => other,
            })?;
    let token = OneTimeToken::generate(TokenPurpose::Invite, Utc::now());
    store_token(conn, tenant, user.id, &token, Some(by)).await?;
    let link = format!("{accept_url}?token={}", secrecy::ExposeSecret::expose_secret(token.secret()));
    let text =
        format!("Hi {},\n\nYou have been invited to Orbas. Set your password within 7 days: {link}\n", user.full_name);
    queue_mail(conn, tenant, &user.email, "invite", "You're invited to Orbas", &text).await?;
    Ok((user, token))
}

/// Applies a patch; a role key is resolved to the tenant's role, and disabling revokes access.
pub async fn update_user(conn: &mut PgConnection, id: UserId, patch: &UserPatch, now: DateTime<Utc>) -> Result<User> {
    #[derive(Serialize)]
    struct Fields<'a> {
        full_name: Option<&'a str>,
        manager_id: Option<UserId>,
        territory_id: Option<TerritoryId>,
        department_id: Option<DepartmentId>,
        status: Option<UserStatus>,
        timezone: Option<&'a str>,
    }
    if patch.status == Some(UserStatus::Invited) {
        return Err(Error::invalid("status: a user becomes invited only by an invitation"));
    }
    if patch.manager_id == Some(id) {
        return Err(Error::invalid("manager_id: a user cannot manage themselves"));
    }
    let role = match patch.role {
        Some(r) => Some(role_id(conn, r).await?),
        None => None,
    };
    let fields = Fields {
        full_name: patch.full_name.as_deref(),
        manager_id: patch.manager_id,
        territory_id: patch.territory_id,
        department_id: patch.department_id,
        status: patch.status,
        timezone: patch.timezone.as_deref(),
    };
    let user: User = super::table::update(conn, &USERS, id.0, &UserRow { body: &fields, role_id: role }).await?;
    if user.status == UserStatus::Disabled {
        super::identity::revoke_all_for_user(conn, id, now).await?;
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(user)
}

// ---------------------------------------------------------------------------------------------------
// One-time tokens and mail

async fn store_token(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    token: &OneTimeToken,
    by: Option<UserId>,
) -> Result<()> {
    // A new token of the same purpose replaces any earlier unused one.
    sqlx::query("DELETE FROM auth_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
        .bind(user)
        .bind(token.purpose().column_value())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO auth_tokens (tenant_id, id, user_id, purpose, token_hash, expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(token.purpose().column_value())
    .bind(token.hash())
    .bind(token.expires_at())
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

async fn queue_mail(
    conn: &mut PgConnection,
    tenant: TenantId,
    to: &str,
    template: &str,
    subject: &str,
    text: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO email_outbox (tenant_id, id, to_address, template, subject, body_text) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(to)
    .bind(template)
    .bind(subject)
    .bind(text)
    .execute(conn)
    .await?;
    Ok(())
}

/// Starts a password reset for an active user with this email: a 30-minute token, mailed. Returns
/// whether a mail was queued (callers must not tell the client, to not reveal who has an account).
pub async fn request_password_reset(
    conn: &mut PgConnection,
    tenant: TenantId,
    email: &str,
    reset_url: &str,
) -> Result<bool> {
    let user: Option<(UserId, String, String)> =
        sqlx::query_as("SELECT id, email, full_name FROM users WHERE lower(email) = lower($1) AND status = 'active'")
            .bind(email.trim())
            .fetch_optional(&mut *conn)
            .await?;
    let Some((id, address, name)) = user else { return Ok(false) };
    let token = OneTimeToken::generate(TokenPurpose::PasswordReset, Utc::now());
    store_token(conn, tenant, id, &token, None).await?;
    let link = format!("{reset_url}?token={}", secrecy::ExposeSecret::expose_secret(token.secret()));
    let text = format!(
        "Hi {name},\n\nSomeone asked to reset your Orbas password. This link works once, for 30 minutes: {link}\n\
         If it wasn't you, ignore this mail.\n"
    );
    queue_mail(conn, tenant, &address, "password_reset", "Reset your Orbas password", &text).await?;
    Ok(true)
}

/// Consumes a one-time token of `purpose`: the user it was for, once. Unknown, used, expired and
/// wrong-purpose tokens are all the same error.
pub async fn consume_token(
    conn: &mut PgConnection,
    presented: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<UserId> {
    let bad = || Error::invalid("token: invalid or expired; ask for a new one");
    if OneTimeToken::purpose_of(presented) != Some(purpose) {
        return Err(bad());
    }
    let hash = crate::auth::tokens::sha256_hex(presented);
    let row: Option<(Uuid, UserId, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, user_id, token_hash, expires_at FROM auth_tokens \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL FOR UPDATE",
    )
    .bind(&hash)
    .bind(purpose.column_value())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, user, stored, expires)) = row else { return Err(bad()) };
    if OneTimeToken::verify(presented, &stored, expires, now) != crate::auth::tokens::TokenCheck::Valid {
        return Err(bad());
    }
    sqlx::query("UPDATE auth_tokens SET used_at = $2 WHERE id = $1").bind(id).bind(now).execute(conn).await?;
    Ok(user)
}

/// Activates an invited user (after their password is set).
pub async fn activate(conn: &mut PgConnection, user: UserId) -> Result<()> {
    let done = sqlx::query("UPDATE users SET status = 'active' WHERE id = $1 AND status = 'invited'")
        .bind(user)
        .execute(conn)
        .await?;
    found((done.rows_affected() == 1).then_some(()), "invited user")
}

// ---------------------------------------------------------------------------------------------------
// API keys

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub user_id: UserId,
    pub name: String,
    /// The visible start of the key, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub rate_limit_per_minute: i32,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A new key for the caller. Scopes narrow the caller's role, never widen it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    /// `"<resource>:<action>"`, `"<resource>:*"` or `"*"`, e.g. `["accounts:read", "tasks:*"]`.
    pub scopes: Vec<String>,
    /// Requests per minute (default 600).
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit_per_minute: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
}

const KEY_COLUMNS: &str =
    "id, user_id, name, prefix, scopes, rate_limit_per_minute, expires_at, revoked_at, last_used_at, created_at";

fn check_scope(scope: &str) -> Result<()> {
    let ok = scope == "*"
        || scope.split_once(':').is_some_and(|(r, a)| {
            crate::model::RESOURCES.contains(&r)
                && (a == "*" || crate::model::Action::ALL.iter().any(|x| x.as_str() == a))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("scopes: {scope:?} is not <resource>:<action>, <resource>:* or *")))
    }
}

/// Creates a key: the row holds its hash and SCRAM verifier; the key itself is returned once.
pub async fn create_api_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    new: &NewApiKey,
) -> Result<(ApiKeyInfo, ApiKey)> {
    new.scopes.iter().try_for_each(|s| check_scope(s))?;
    if new.name.trim().is_empty() {
        return Err(Error::invalid("name: required"));
    }
    let key = ApiKey::generate("orbas").map_err(|e| Error::invalid(e.to_string()))?;
    let sql = format!(
        "INSERT INTO api_keys (tenant_id, id, user_id, name, prefix, key_hash, scram_verifier, scopes, \
         rate_limit_per_minute, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, 600), $10) \
         RETURNING {KEY_COLUMNS}"
    );
    let info = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(user)
        .bind(new.name.trim())
        .bind(key.prefix())
        .bind(key.hash())
        .bind(key.scram_verifier())
        .bind(&new.scopes)
        .bind(new.rate_limit_per_minute)
        .bind(new.expires_at)
        .fetch_one(conn)
        .await?;
    Ok((info, key))
}

/// Keys of one user, newest first.
pub async fn api_keys_of(conn: &mut PgConnection, user: UserId) -> Result<Vec<ApiKeyInfo>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY id DESC");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user).fetch_all(conn).await?)
}

/// Revokes a key of `user` (idempotent).
pub async fn revoke_api_key(conn: &mut PgConnection, user: UserId, id: Uuid, now: DateTime<Utc>) -> Result<ApiKeyInfo> {
    let sql = format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE id = $1 AND user_id = $2 RETURNING {KEY_COLUMNS}"
    );
    found(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(user).bind(now).fetch_optional(conn).await?, "API key")
}

/// What authenticating with a key needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyLogin {
    pub id: Uuid,
    pub user_id: UserId,
    pub key_hash: String,
    /// SCRAM-SHA-256 verifier of the whole key, for the SQL port (keys created before it have none).
    pub scram_verifier: Option<String>,
    pub scopes: Vec<String>,
    pub rate_limit_per_minute: i32,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub role: RoleKey,
    pub user_status: String,
}

impl KeyLogin {
    /// Why the key cannot be used at `now` — `"revoked"`, `"expired"`, or `"disabled"` (its user is not
    /// active); `None` when it is live.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("revoked")
        } else if self.expires_at.is_some_and(|e| e <= now) {
            Some("expired")
        } else if self.user_status != "active" {
            Some("disabled")
        } else {
            None
        }
    }
}

pub async fn key_login(conn: &mut PgConnection, prefix: &str) -> Result<Option<KeyLogin>> {
    Ok(sqlx::query_as(
        "SELECT k.id, k.user_id, k.key_hash, k.scram_verifier, k.scopes, k.rate_limit_per_minute, k.expires_at, k.revoked_at, \
                r.key AS role, u.status AS user_status \
         FROM api_keys k JOIN users u ON u.id = k.user_id JOIN roles r ON r.id = u.role_id WHERE k.prefix = $1",
    )
    .bind(prefix)
    .fetch_optional(conn)
    .await?)
}

/// Records use, at most once a minute per key (keeps the hot path free of a write per request).
pub async fn touch_api_key(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 \
         AND (last_used_at IS NULL OR last_used_at < $2 - interval '1 minute')",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
