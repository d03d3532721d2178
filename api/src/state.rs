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
    /// Runs KPI and dashboard queries over `lake` with a result cache (present with the lake).
    pub dashboards: Option<Arc<orbas_dashboards::engine::Engine>>,
    /// The search index for `GET /v1/search` and the assistant (503 while it is absent).
    pub search: SearchSlot,
    /// The assistant's language model per tenant (its admin's settings, else the server's default).
    pub llms: Arc<crate::tenant_llm::TenantLlms>,
    /// Headless Chromium for PDF reports and exports; `None` refuses them.
    pub renderer: Option<Arc<orbas_dashboards::render::Renderer>>,
}

/// The search index a server answers from: none configured, or configured and open — possibly only
/// some time after the server started (`orbas serve` keeps retrying a follower it could not open yet,
/// e.g. while the indexer replaces an index of an older layout).
#[derive(Debug, Clone, Default)]
pub struct SearchSlot {
    configured: bool,
    index: Arc<std::sync::OnceLock<Arc<orbas_search::SearchIndex>>>,
}

impl SearchSlot {
    /// A configured index that is not open yet; [`SearchSlot::fill`] it when it is.
    pub fn pending() -> Self {
        Self { configured: true, index: Arc::default() }
    }

    /// Puts the opened index in (a second fill is ignored).
    pub fn fill(&self, index: Arc<orbas_search::SearchIndex>) {
        let _ = self.index.set(index);
    }

    /// Whether the server was given an index (open or not yet).
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    /// The index, or why there is none (for the 503's detail).
    pub fn get(&self) -> Result<Arc<orbas_search::SearchIndex>, &'static str> {
        match self.index.get() {
            Some(ix) => Ok(ix.clone()),
            None if self.configured => {
                Err("the search index is not open yet (the indexer has not written a readable one)")
            }
            None => Err("search index not configured"),
        }
    }
}

impl From<Option<Arc<orbas_search::SearchIndex>>> for SearchSlot {
    fn from(index: Option<Arc<orbas_search::SearchIndex>>) -> Self {
        match index {
            Some(ix) => {
                let slot = Self::pending();
                slot.fill(ix);
                slot
            }
            None => Self::default(),
        }
    }
}
