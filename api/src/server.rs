//! The HTTP server. `build` binds the listener (port 0 works: tests read `port()`), `run_until_stopped`
//! serves until the shutdown future resolves.

use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use orbas_oltp::db;
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tracing::info;

use std::sync::Arc;

use orbas_oltp::auth::jwt::AccessTokens;
use orbas_oltp::auth::lockout::LoginThrottle;
use secrecy::SecretString;

use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::observe;
use crate::openapi::ApiDoc;
use crate::problem::Problem;
use crate::routes;
use crate::state::AppState;
use crate::tenant_llm::TenantLlms;

/// Largest request body accepted (larger ones get a 413 problem).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The CRM API server.
pub struct Server {
    listener: TcpListener,
    router: Router,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.listener.local_addr().ok()).finish()
    }
}

/// What a server serves beyond the CRM tables; all optional.
#[derive(Debug, Default)]
pub struct Extras {
    /// The lake's root: `POST /v1/sql` over its silver tables.
    pub lake: Option<url::Url>,
    /// The search index: `GET /v1/search` and the assistant's retrieval.
    pub search: crate::state::SearchSlot,
    /// The key that seals tenants' language-model API keys at rest; without it admins cannot store one.
    pub secrets: Option<Arc<orbas_oltp::secrets::SecretsKey>>,
    /// The language model for tenants without settings of their own (`ORBAS_LLM_*`).
    pub default_llm: Option<orbas_models::LlmConfig>,
    /// Headless Chromium: PDF reports and exports (without it they are refused).
    pub renderer: Option<Arc<orbas_dashboards::render::Renderer>>,
}

impl Server {
    pub async fn build(addr: SocketAddr, app_pool: PgPool, jwt_secret: &SecretString) -> anyhow::Result<Self> {
        Self::build_with(addr, app_pool, jwt_secret, Extras::default()).await
    }

    /// As [`Server::build`], also serving what `extras` holds.
    pub async fn build_with(
        addr: SocketAddr,
        app_pool: PgPool,
        jwt_secret: &SecretString,
        extras: Extras,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        observe::prometheus();
        let tokens = AccessTokens::new(jwt_secret).map_err(|e| anyhow::anyhow!("access-token key: {e}"))?;
        let lake = extras.lake.map(|root| Arc::new(orbas_warehouse::sql::Lake::new(root)));
        let state = AppState {
            db: db::Db::new(app_pool),
            tokens: Arc::new(tokens),
            throttle: LoginThrottle::default(),
            limiter: crate::ratelimit::RateLimiter::default(),
            dashboards: lake.clone().map(|l| Arc::new(orbas_dashboards::engine::Engine::new(l))),
            lake,
            search: extras.search,
            llms: Arc::new(TenantLlms::new(extras.default_llm, extras.secrets)),
            renderer: extras.renderer,
        };
        let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
            .merge(routes::auth::router())
            .merge(routes::accounts::router())
            .merge(routes::contacts::router())
            .merge(routes::leads::router())
            .merge(routes::tasks::router())
            .merge(routes::tickets::router())
            .merge(routes::catalog::router())
            .merge(routes::commerce::router())
            .merge(routes::content::router())
            .merge(routes::employees::router())
            .merge(routes::workflows::router())
            .merge(routes::dedupe::router())
            .merge(routes::users::router())
            .merge(routes::opportunities::all_routes())
            .merge(routes::recommendations::router())
            .merge(routes::scores::router())
            .merge(routes::search::router())
            .merge(routes::assistant::router())
            .merge(routes::assistant::admin_router())
            .merge(routes::interactions::router())
            .merge(routes::sql::router())
            .merge(routes::kpis::router())
            .merge(routes::dashboards::router())
            .merge(routes::reports::router())
            .merge(routes::alerts::router())
            .merge(routes::status::router())
            .split_for_parts();
        let mut doc = doc;
        utoipa::Modify::modify(&crate::openapi::ProblemJson, &mut doc);
        let router = api
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(observe::metrics_endpoint))
            .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
            .nest("/ui", crate::web::router(state.clone()))
            .route("/", get(|| async { axum::response::Redirect::to("/ui/inbox") }))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(state.clone(), crate::idempotency::middleware))
            .layer(axum::middleware::from_fn(run_to_completion))
            .layer(axum::middleware::from_fn(observe::track))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(state);
        Ok(Server { listener, router })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        info!(addr = ?self.listener.local_addr().ok(), "http server listening");
        axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Runs every request to completion even when the client goes away. A handler future dropped at an
/// arbitrary await would abandon its transaction mid-statement — sqlx 0.9.0 can then hand the pool a
/// connection inside a half-begun transaction (launchbadge/sqlx#4385, observed here under wrk). Spawned,
/// the handler commits or rolls back exactly as written; only the response is thrown away.
async fn run_to_completion(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the server could not complete the request").into_response()
        }
    }
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("no resource at {}", uri.path()))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers and its schema has every migration this binary embeds.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match db::pending_migrations(state.db.pool()).await {
        Ok(pending) if pending.is_empty() => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(pending) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": "migrations pending", "pending": pending })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "reason": "database unreachable" })))
        }
    }
}
