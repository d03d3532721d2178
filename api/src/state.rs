//! What every handler shares: the application database handle, the access-token signer, the login
//! throttle, the API-key rate limiter, the lake, the search index
//! and the assistant's language models.

use std::sync::Arc;

use orbas_oltp::auth::jwt::AccessTokens;
use orbas_oltp::auth::lockout::LoginThrottle;
use orbas_oltp::db::Db;

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    pub tokens: Arc<AccessTokens>,
    pub throttle: LoginThrottle,
    pub limiter: crate::ratelimit::RateLimiter,
    /// The lake's silver tables for `POST /v1/sql`; `None` when the server has no lake configured.
    pub lake: Option<Arc<orbas_warehouse::sql::Lake>>,
    /// The search index for `GET /v1/search`; `None` when the server has none (the route answers 503).
    pub search: Option<Arc<orbas_search::SearchIndex>>,
    /// The assistant's language model per tenant (its admin's settings, else the server's default).
    pub llms: Arc<crate::tenant_llm::TenantLlms>,
}
