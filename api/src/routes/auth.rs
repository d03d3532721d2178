//! `/v1/auth/*` and `/v1/me`: password login, refresh-token rotation, logout.
//!
//! Failures say as little as possible: an unknown tenant, an unknown email and a wrong password all
//! answer the same 401, and an unknown email still costs one argon2 verification so timing does not
//! tell them apart. Every attempt lands in `login_history`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{Duration, Utc};
use orbas_oltp::auth::jwt::Claims;
use orbas_oltp::auth::password::{check_password_policy, hash_password, verify_password};
use orbas_oltp::auth::scram::scram_sha256_verifier;
use orbas_oltp::auth::tokens::{RefreshToken, TokenPurpose};
use orbas_oltp::model::{RoleKey, TenantId, UserId};
use orbas_oltp::repo::access;
use orbas_oltp::repo::identity::{self, LoginAttempt, LoginMethod, LoginUser, Lookup};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body, unauthorized};
use crate::problem::Problem;
use crate::state::AppState;

const REFRESH_LIFETIME_DAYS: i64 = 30;
const ACCESS_LIFETIME_SECS: i64 = 15 * 60;
/// Verified against when the email is unknown, so both paths cost one argon2 run.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("orbas-timing-equaliser").unwrap_or_default()).clone()
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(accept_invite))
        .routes(routes!(request_reset))
        .routes(routes!(confirm_reset))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The tenant's slug.
    pub tenant: String,
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub role: RoleKey,
    /// The session, when the caller used an access token.
    pub session_id: Option<uuid::Uuid>,
    /// The API key, when the caller used one.
    pub api_key_id: Option<uuid::Uuid>,
    pub team_size: usize,
}

fn bad_credentials() -> Problem {
    unauthorized("invalid tenant, email or password")
}

/// Log in with a password: a 15-minute access token and a rotating refresh token.
#[utoipa::path(post, path = "/v1/auth/login", request_body = LoginRequest, tag = "auth",
    responses((status = 200, body = TokenResponse), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(req): Body<LoginRequest>,
) -> Result<Json<TokenResponse>, Problem> {
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    Ok(Json(password_login(&state, peer, agent, req).await?))
}

/// The password login both `POST /v1/auth/login` and the web UI's login form use: the same answers
/// for unknown tenants, e-mails and wrong passwords, the lockout throttle, `login_history`, and a new
/// session's tokens on success.
pub(crate) async fn password_login(
    state: &AppState,
    peer: SocketAddr,
    agent: Option<&str>,
    req: LoginRequest,
) -> Result<TokenResponse, Problem> {
    let Some(tenant) = identity::tenant_of(state.db.pool(), Lookup::Slug(req.tenant.trim())).await? else {
        check_password(dummy_hash(), req.password).await;
        return Err(bad_credentials());
    };
    let now = Utc::now();
    let mut tx = state.db.begin(tenant).await?;
    let user = identity::login_user_by_email(tx.conn(), &req.email).await?;
    let attempt = |user: Option<UserId>, failure| LoginAttempt {
        user,
        method: LoginMethod::Password,
        failure,
        ip: Some(peer.ip()),
        user_agent: agent,
    };
    let Some(user) = user else {
        check_password(dummy_hash(), req.password).await;
        identity::record_login(tx.conn(), tenant, &attempt(None, Some("bad_credentials"))).await?;
        tx.commit().await?;
        return Err(bad_credentials());
    };
    if let Some(refusal) = refuse(&user, now) {
        identity::record_login(tx.conn(), tenant, &attempt(Some(user.id), Some(refusal.0))).await?;
        tx.commit().await?;
        return Err(refusal.1);
    }
    let hash = user.password_hash.clone().unwrap_or_else(dummy_hash);
    if !check_password(hash, req.password).await || user.password_hash.is_none() {
        let (count, until) = state.throttle.on_failure(user.failed_attempts, now);
        identity::set_login_failures(tx.conn(), user.id, u32::try_from(count).unwrap_or(0), until).await?;
        identity::record_login(tx.conn(), tenant, &attempt(Some(user.id), Some("bad_credentials"))).await?;
        tx.commit().await?;
        return Err(bad_credentials());
    }
    identity::set_login_failures(tx.conn(), user.id, 0, None).await?;
    identity::record_login(tx.conn(), tenant, &attempt(Some(user.id), None)).await?;
    identity::touch_last_login(tx.conn(), user.id, now).await?;
    let tokens = start_session(state, &mut tx, tenant, user.id, user.role).await?;
    tx.commit().await?;
    Ok(tokens)
}

/// A refusal before the password is even checked: locked or not an active user.
fn refuse(user: &LoginUser, now: chrono::DateTime<Utc>) -> Option<(&'static str, Problem)> {
    let why = user.refusal(now)?;
    if why != "locked" {
        return Some((why, bad_credentials()));
    }
    let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "too many failed logins; try again later");
    p.retry_after_secs = user.locked_until.map(|t| (t - now).num_seconds().max(1).unsigned_abs());
    Some((why, p))
}

async fn check_password(hash: String, candidate: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&hash, &candidate)).await.unwrap_or(false)
}

async fn start_session(
    state: &AppState,
    tx: &mut orbas_oltp::db::TenantTx,
    tenant: TenantId,
    user: UserId,
    role: RoleKey,
) -> Result<TokenResponse, Problem> {
    let now = Utc::now();
    let refresh = RefreshToken::generate();
    let session =
        identity::create_session(tx.conn(), tenant, user, &refresh.hash(), now + Duration::days(REFRESH_LIFETIME_DAYS))
            .await?;
    issue(state, Claims::new(user, tenant, role, session.id, now), &refresh)
}

fn issue(state: &AppState, claims: Claims, refresh: &RefreshToken) -> Result<TokenResponse, Problem> {
    let access_token = state.tokens.issue(&claims).map_err(|e| {
        tracing::error!(error = %e, "signing an access token failed");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the server could not complete the request")
    })?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ACCESS_LIFETIME_SECS,
        refresh_token: refresh.secret().expose_secret().to_owned(),
    })
}

/// Trade a refresh token for new tokens; the old refresh token stops working (replaying it ends the session).
#[utoipa::path(post, path = "/v1/auth/refresh", request_body = RefreshRequest, tag = "auth",
    responses((status = 200, body = TokenResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn refresh(
    State(state): State<AppState>,
    Body(req): Body<RefreshRequest>,
) -> Result<Json<TokenResponse>, Problem> {
    Ok(Json(rotate_refresh(&state, &req.refresh_token).await?))
}

/// Rotates a refresh token into new tokens (the API's refresh and the web UI's transparent renewal of
/// an expired access token). A replayed, already-rotated token revokes its whole session family.
pub(crate) async fn rotate_refresh(state: &AppState, presented: &str) -> Result<TokenResponse, Problem> {
    let presented = RefreshToken::parse(presented.trim()).map_err(|_| unauthorized("invalid refresh token"))?;
    let hash = presented.hash();
    let Some(tenant) = identity::tenant_of(state.db.pool(), Lookup::RefreshTokenHash(&hash)).await? else {
        return Err(unauthorized("invalid refresh token"));
    };
    let now = Utc::now();
    let next = RefreshToken::generate();
    let mut tx = state.db.begin(tenant).await?;
    let rotated = identity::rotate_session(
        tx.conn(),
        tenant,
        &hash,
        &next.hash(),
        now + Duration::days(REFRESH_LIFETIME_DAYS),
        now,
    )
    .await?;
    let session = match rotated {
        Ok(s) => s,
        Err(refusal) => {
            tx.commit().await?; // keeps the family revocation that reuse detection made
            tracing::warn!(?refusal, "refresh token refused");
            return Err(unauthorized("invalid refresh token"));
        }
    };
    let Some((role, status)) = identity::user_role(tx.conn(), session.user_id).await? else {
        return Err(unauthorized("invalid refresh token"));
    };
    if status != "active" {
        return Err(unauthorized("the account is not active"));
    }
    let tokens = issue(state, Claims::new(session.user_id, tenant, role, session.id, now), &next)?;
    tx.commit().await?;
    Ok(tokens)
}

/// End the current session: its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn logout(State(state): State<AppState>, auth: Authenticated) -> Result<impl IntoResponse, Problem> {
    let Some(claims) = &auth.claims else {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "an API key is revoked, not logged out"));
    };
    end_session(&state, claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the session an access token belongs to: its access and refresh tokens stop working.
pub(crate) async fn end_session(state: &AppState, claims: &Claims) -> Result<(), Problem> {
    let mut tx = state.db.begin(claims.tid).await?;
    identity::revoke_session(tx.conn(), claims.sid, Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

/// Who the access token belongs to.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
async fn me(State(state): State<AppState>, auth: Authenticated) -> Result<Json<Me>, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let team = identity::reports_of(tx.conn(), p.user).await?;
    tx.commit().await?;
    Ok(Json(Me {
        user_id: p.user,
        tenant_id: p.tenant,
        role: p.role,
        session_id: auth.claims.as_ref().map(|c| c.sid),
        api_key_id: p.api_key,
        team_size: team.len(),
    }))
}

/// Accepting an invite: the mailed token and the new password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub token: String,
    pub password: String,
}

/// Asking for a password reset.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub tenant: String,
    pub email: String,
}

/// Hashes a new password (argon2id) and its SCRAM-SHA-256 verifier (for the SQL port) off the async
/// threads, after the policy check.
async fn password_hashes(password: String, email: String) -> Result<(String, String), Problem> {
    if let Err(problems) = check_password_policy(&password, &email) {
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "the password does not meet the policy");
        for pr in problems {
            p = p.with_field(pr.field(), pr.message());
        }
        return Err(p);
    }
    tokio::task::spawn_blocking(move || {
        let hash = hash_password(&password)?;
        Ok::<_, orbas_oltp::auth::Error>((hash, scram_sha256_verifier(&password)))
    })
    .await
    .map_err(|_| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the server could not complete the request"))?
    .map_err(|e| {
        tracing::error!(error = %e, "hashing a password failed");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the server could not complete the request")
    })
}

/// Sets the password of the user a one-time token names, consuming the token.
async fn set_password_with(state: &AppState, req: SetPassword, purpose: TokenPurpose) -> Result<UserId, Problem> {
    let invalid = || {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "the token is invalid or expired; ask for a new one")
            .with_field("token", "invalid or expired")
    };
    let hash = orbas_oltp::auth::tokens::sha256_hex(req.token.trim());
    let tenant = identity::tenant_of(state.db.pool(), Lookup::AuthTokenHash(&hash)).await?.ok_or_else(invalid)?;
    let mut tx = state.db.begin(tenant).await?;
    let now = Utc::now();
    let user = access::consume_token(tx.conn(), req.token.trim(), purpose, now).await.map_err(|_| invalid())?;
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(tx.conn())
        .await
        .map_err(orbas_oltp::Error::from)?;
    let (password_hash, scram) = password_hashes(req.password, email).await?;
    identity::set_password(tx.conn(), tenant, user, &password_hash, &scram).await?;
    match purpose {
        TokenPurpose::Invite => access::activate(tx.conn(), user).await?,
        // A reset ends every session: whoever had the old password is out.
        TokenPurpose::PasswordReset => drop(identity::revoke_all_for_user(tx.conn(), user, now).await?),
    }
    tx.commit().await?;
    Ok(user)
}

/// Accept an invitation: set a password with the mailed token; then log in.
#[utoipa::path(post, path = "/v1/auth/accept-invite", request_body = SetPassword, tag = "auth",
    responses((status = 204), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn accept_invite(State(state): State<AppState>, Body(req): Body<SetPassword>) -> Result<StatusCode, Problem> {
    set_password_with(&state, req, TokenPurpose::Invite).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password-reset mail. Always 202: the answer never tells whether the account exists.
#[utoipa::path(post, path = "/v1/auth/password-reset", request_body = ResetRequest, tag = "auth",
    responses((status = 202), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn request_reset(State(state): State<AppState>, Body(req): Body<ResetRequest>) -> Result<StatusCode, Problem> {
    if let Some(tenant) = identity::tenant_of(state.db.pool(), Lookup::Slug(req.tenant.trim())).await? {
        let mut tx = state.db.begin(tenant).await?;
        access::request_password_reset(tx.conn(), tenant, &req.email, "/reset-password").await?;
        tx.commit().await?;
    }
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the mailed reset token; every session of the user ends.
#[utoipa::path(post, path = "/v1/auth/password-reset/confirm", request_body = SetPassword, tag = "auth",
    responses((status = 204), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn confirm_reset(State(state): State<AppState>, Body(req): Body<SetPassword>) -> Result<StatusCode, Problem> {
    set_password_with(&state, req, TokenPurpose::PasswordReset).await?;
    Ok(StatusCode::NO_CONTENT)
}
