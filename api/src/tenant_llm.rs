//! Which language model answers a tenant's assistant questions: the tenant's own settings
//! (`ai_settings`, set by its admin, the API key sealed at rest) or else the server's default
//! (`ORBAS_LLM_*`), or none (extractive answers).
//!
//! Owns the per-tenant client cache: a client is built (and its key unsealed) once per settings
//! version, so a question costs one primary-key read of `ai_settings`, and a changed setting takes effect
//! on the next question in every server process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orbas_models::{LlmClient, LlmConfig};
use orbas_oltp::model::TenantId;
use orbas_oltp::repo::assistant::{self, LlmSettings};
use orbas_oltp::secrets::SecretsKey;
use sqlx::PgConnection;

use crate::problem::Problem;

/// The language models of every tenant a server answers for.
pub struct TenantLlms {
    default: Option<LlmClient>,
    secrets: Option<Arc<SecretsKey>>,
    cache: Mutex<HashMap<TenantId, (DateTime<Utc>, LlmClient)>>,
}

impl std::fmt::Debug for TenantLlms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLlms")
            .field("default", &self.default.as_ref().map(|c| c.config().model.clone()))
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

impl TenantLlms {
    /// `default` answers for tenants without settings; `secrets` seals and opens tenants' keys.
    pub fn new(default: Option<LlmConfig>, secrets: Option<Arc<SecretsKey>>) -> Self {
        let default = default.and_then(|config| match LlmClient::new(config) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = ?e, "the default language model client could not be built; answers are extractive");
                None
            }
        });
        Self { default, secrets, cache: Mutex::new(HashMap::new()) }
    }

    /// The default model's name, if the server has one.
    pub fn default_model(&self) -> Option<&str> {
        self.default.as_ref().map(|c| c.config().model.as_str())
    }

    /// The key that seals tenants' API keys, if the server has one.
    pub fn secrets(&self) -> Option<&SecretsKey> {
        self.secrets.as_deref()
    }

    /// The model for the tenant of `conn`'s transaction: its settings, else the default, else `None`.
    pub async fn for_tenant(&self, conn: &mut PgConnection, tenant: TenantId) -> Result<Option<LlmClient>, Problem> {
        let Some(settings) = assistant::llm_settings(conn).await? else {
            return Ok(self.default.clone());
        };
        if let Some((version, client)) = self.cache.lock().ok().and_then(|c| c.get(&tenant).cloned())
            && version == settings.updated_at
        {
            return Ok(Some(client));
        }
        let client = self.build(tenant, &settings)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(tenant, (settings.updated_at, client.clone()));
        }
        Ok(Some(client))
    }

    fn build(&self, tenant: TenantId, s: &LlmSettings) -> Result<LlmClient, Problem> {
        let unavailable = |detail: &str| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the assistant's language model is not usable: {detail}; an admin must set the API key again \
                     (PUT /v1/admin/assistant)"
                ),
            )
        };
        let key = match (&s.llm_api_key_sealed, self.secrets()) {
            (None, _) => None,
            (Some(_), None) => return Err(unavailable("this server has no secrets key (ORBAS_SECRETS_KEY)")),
            (Some(sealed), Some(secrets)) => match secrets.open(&assistant::llm_key_context(tenant), sealed) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!(%tenant, error = %e, key_id = %secrets.id(), "a tenant's language-model key does not open");
                    return Err(unavailable("the stored API key cannot be opened with this server's secrets key"));
                }
            },
        };
        let mut config = LlmConfig::new(&s.llm_base_url, &s.llm_model, key);
        config.timeout = Duration::from_secs(u64::try_from(s.llm_timeout_seconds).unwrap_or(60).max(1));
        LlmClient::new(config).map_err(|e| {
            tracing::error!(%tenant, error = ?e, "a tenant's language model client could not be built");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the assistant's language model is not usable")
        })
    }
}
