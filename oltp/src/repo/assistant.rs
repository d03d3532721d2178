//! The assistant's tables: each tenant's language-model settings (`ai_settings`, the API key sealed by
//! [`crate::secrets`]) and the log of questions with their answers, cost and the asker's rating
//! (`ai_queries`).
//!
//! Invariant: the API key is sealed before it reaches this module's writes and comes back only sealed;
//! [`LlmSettings`] carries the sealed bytes and a four-character hint, never the key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::found;
use crate::model::{AiQueryId, TenantId, UserId};
use crate::secrets::SecretsKey;
use crate::{Error, Result};

/// The associated data a tenant's language-model key is sealed under.
pub fn llm_key_context(tenant: TenantId) -> String {
    format!("ai_settings.llm_api_key:{tenant}")
}

/// A tenant's language-model settings as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LlmSettings {
    pub tenant_id: TenantId,
    pub llm_base_url: String,
    pub llm_model: String,
    /// The key sealed under the server's secrets key ([`llm_key_context`]); `None`: no key.
    pub llm_api_key_sealed: Option<Vec<u8>>,
    /// The key's last four characters.
    pub llm_api_key_hint: Option<String>,
    pub llm_timeout_seconds: i32,
    pub updated_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an admin sets.
#[derive(Debug, Clone)]
pub struct LlmSettingsUpdate {
    pub base_url: String,
    pub model: String,
    pub timeout_seconds: i32,
    pub api_key: KeyChange,
}

/// What happens to the stored key.
#[derive(Debug, Clone)]
pub enum KeyChange {
    /// Keep the key that is set (if any).
    Keep,
    /// Remove it (an endpoint without authentication).
    Clear,
    /// Replace it with this one (sealed under the server's key) and its hint.
    Set { sealed: Vec<u8>, hint: String },
}

impl KeyChange {
    /// Seals `key` for `tenant`; its hint is the last four characters (fewer for a short key).
    pub fn seal(secrets: &SecretsKey, tenant: TenantId, key: &secrecy::SecretString) -> Result<Self> {
        use secrecy::ExposeSecret as _;
        let chars: Vec<char> = key.expose_secret().chars().collect();
        let shown = if chars.len() >= 12 { 4 } else { 0 };
        let hint: String = chars[chars.len() - shown..].iter().collect();
        Ok(KeyChange::Set { sealed: secrets.seal(&llm_key_context(tenant), key)?, hint })
    }
}

const SETTINGS_COLUMNS: &str = "tenant_id, llm_base_url, llm_model, llm_api_key_sealed, llm_api_key_hint, \
                                llm_timeout_seconds, updated_by, created_at, updated_at";

/// The tenant's settings, `None` when none are set.
pub async fn llm_settings(conn: &mut PgConnection) -> Result<Option<LlmSettings>> {
    let sql = format!("SELECT {SETTINGS_COLUMNS} FROM ai_settings");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_optional(conn).await?)
}

/// The settings' last change, for caches: `None` when none are set.
pub async fn llm_settings_version(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar("SELECT updated_at FROM ai_settings").fetch_optional(conn).await?)
}

/// Creates or replaces the tenant's settings. Setting [`KeyChange::Keep`] on a tenant without settings
/// stores no key.
pub async fn put_llm_settings(
    conn: &mut PgConnection,
    tenant: TenantId,
    by: UserId,
    update: &LlmSettingsUpdate,
) -> Result<LlmSettings> {
    let (keep, sealed, hint) = match &update.api_key {
        KeyChange::Keep => (true, None, None),
        KeyChange::Clear => (false, None, None),
        KeyChange::Set { sealed, hint } => (false, Some(sealed.as_slice()), Some(hint.as_str())),
    };
    let sql = format!(
        "INSERT INTO ai_settings AS s (tenant_id, llm_base_url, llm_model, llm_timeout_seconds, llm_api_key_sealed, \
                                       llm_api_key_hint, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id) DO UPDATE SET llm_base_url = EXCLUDED.llm_base_url, llm_model = EXCLUDED.llm_model, \
             llm_timeout_seconds = EXCLUDED.llm_timeout_seconds, updated_by = EXCLUDED.updated_by, \
             llm_api_key_sealed = CASE WHEN $8 THEN s.llm_api_key_sealed ELSE EXCLUDED.llm_api_key_sealed END, \
             llm_api_key_hint = CASE WHEN $8 THEN s.llm_api_key_hint ELSE EXCLUDED.llm_api_key_hint END, \
             updated_at = clock_timestamp() \
         RETURNING {SETTINGS_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(&update.base_url)
        .bind(&update.model)
        .bind(update.timeout_seconds)
        .bind(sealed)
        .bind(hint)
        .bind(by)
        .bind(keep)
        .fetch_one(conn)
        .await?)
}

/// Removes the tenant's settings (the assistant falls back to the server's default model, if any).
/// Whether there were any.
pub async fn delete_llm_settings(conn: &mut PgConnection) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM ai_settings").execute(conn).await?.rows_affected() > 0)
}

/// How a question ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum QueryStatus {
    Answered,
    Failed,
}

/// The asker's verdict on an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Rating {
    Up,
    Down,
}

/// One question to the assistant, as logged.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AiQuery {
    pub id: AiQueryId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub query_text: String,
    pub answer_text: Option<String>,
    /// `llm` or `extractive`; none when the question failed.
    pub mode: Option<String>,
    /// The language model that answered.
    pub model: Option<String>,
    /// The records the answer cites: `[{"n", "type", "id", "title"}]`.
    #[schema(value_type = Vec<Object>)]
    pub citations: serde_json::Value,
    pub status: QueryStatus,
    pub error: Option<String>,
    pub streamed: bool,
    pub latency_ms: i32,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub rating: Option<Rating>,
    pub correction: Option<String>,
    pub rated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A question to log.
#[derive(Debug, Clone)]
pub struct NewAiQuery {
    pub id: AiQueryId,
    pub user_id: UserId,
    pub query_text: String,
    /// `Ok((answer, mode))` or `Err(error)`.
    pub outcome: std::result::Result<(String, String), String>,
    pub model: Option<String>,
    pub citations: serde_json::Value,
    pub streamed: bool,
    pub latency_ms: i32,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
}

const QUERY_COLUMNS: &str = "id, tenant_id, user_id, query_text, answer_text, mode, model, citations, status, error, \
                             streamed, latency_ms, prompt_tokens, completion_tokens, rating, correction, rated_at, \
                             created_at, updated_at";

/// Logs a question and how it ended.
pub async fn log_query(conn: &mut PgConnection, tenant: TenantId, q: &NewAiQuery) -> Result<()> {
    let (answer, mode, status, error) = match &q.outcome {
        Ok((answer, mode)) => (Some(answer.as_str()), Some(mode.as_str()), QueryStatus::Answered, None),
        Err(e) => (None, None, QueryStatus::Failed, Some(e.as_str())),
    };
    sqlx::query(
        "INSERT INTO ai_queries (tenant_id, id, user_id, query_text, answer_text, mode, model, citations, status, \
                                 error, streamed, latency_ms, prompt_tokens, completion_tokens) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(tenant)
    .bind(q.id)
    .bind(q.user_id)
    .bind(&q.query_text)
    .bind(answer)
    .bind(mode)
    .bind(&q.model)
    .bind(&q.citations)
    .bind(status)
    .bind(error)
    .bind(q.streamed)
    .bind(q.latency_ms.max(0))
    .bind(q.prompt_tokens)
    .bind(q.completion_tokens)
    .execute(conn)
    .await?;
    Ok(())
}

/// The asker's rating of an answer, and optionally what the answer should have been.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryFeedback {
    pub rating: Rating,
    /// The right answer, or what was wrong (at most 8000 characters).
    pub correction: Option<String>,
}

/// The longest correction, in characters.
pub const MAX_CORRECTION_CHARS: usize = 8_000;

/// Records `user`'s feedback on their own question `id` (a later rating replaces an earlier one). Another
/// user's question is not found.
pub async fn rate_query(
    conn: &mut PgConnection,
    id: AiQueryId,
    user: UserId,
    feedback: &QueryFeedback,
) -> Result<AiQuery> {
    let correction = feedback.correction.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if correction.is_some_and(|c| c.chars().count() > MAX_CORRECTION_CHARS) {
        return Err(Error::invalid(format!("correction: at most {MAX_CORRECTION_CHARS} characters")));
    }
    let sql = format!(
        "UPDATE ai_queries SET rating = $3, correction = $4, rated_at = clock_timestamp() \
         WHERE id = $1 AND user_id = $2 RETURNING {QUERY_COLUMNS}"
    );
    found(
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(user)
            .bind(feedback.rating)
            .bind(correction)
            .fetch_optional(conn)
            .await?,
        "assistant query",
    )
}

/// Questions newest first: all of the tenant's when `users` is `None`, else those of `users`.
pub async fn list_queries(
    conn: &mut PgConnection,
    users: Option<&[UserId]>,
    before: Option<AiQueryId>,
    limit: u32,
) -> Result<Vec<AiQuery>> {
    let sql = format!(
        "SELECT {QUERY_COLUMNS} FROM ai_queries \
         WHERE ($1::uuid[] IS NULL OR user_id = ANY($1)) AND ($2::uuid IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    );
    let users: Option<Vec<uuid::Uuid>> = users.map(|u| u.iter().map(|u| u.0).collect());
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(users)
        .bind(before)
        .bind(i64::from(limit.clamp(1, 200)))
        .fetch_all(conn)
        .await?)
}
