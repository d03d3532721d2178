//! Request observability: request ids (accepted from `x-request-id` or generated, echoed back), a
//! tracing span per request carrying that id, and Prometheus metrics served at `/metrics`.
//!
//! Metric names follow `orbas_<crate>_<noun>_<unit>`; labels are low-cardinality (the matched route
//! template, never the raw path).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use orbas_warehouse::sql::{Lake, TableCommit};
use tracing::Instrument;
use uuid::Uuid;

use crate::state::AppState;

pub const HTTP_REQUESTS_TOTAL: &str = "orbas_api_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "orbas_api_http_request_duration_seconds";
pub const DB_POOL_CONNECTIONS: &str = "orbas_api_db_pool_connections";
pub const REQUEST_ID: &str = "x-request-id";

/// The process-wide Prometheus recorder (installed once; every server in the process shares it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        handle
    })
}

/// Middleware: request id, span, metrics.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = req.method().clone();
    let mut req = req;
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID, v);
    }
    let span = tracing::info_span!("http", request_id = %id, %method, route = %route);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method.to_string()), ("route", route), ("status", status)];
    metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels[..2]).record(started.elapsed().as_secs_f64());
    span.in_scope(|| {
        tracing::debug!(status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request")
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// Gauge (label `slot`): WAL bytes between the database's write position and what the slot's consumer
/// (the CDC service) confirmed — how far the change stream trails the database.
pub const CDC_SLOT_LAG_BYTES: &str = "orbas_cdc_slot_lag_bytes";
/// Gauge (label `slot`): 1 while a consumer is connected to the slot.
pub const CDC_SLOT_ACTIVE: &str = "orbas_cdc_slot_active";
/// Gauge (label `layer`: silver, gold): when the lake's newest commit in the layer was made (Unix
/// seconds) — `time() - it` is the lake's age as the server's queries see it.
pub const LAKE_NEWEST_COMMIT: &str = "orbas_lake_newest_commit_timestamp_seconds";
/// Counter (label `result`: hit, miss): dashboard widget queries answered from the result cache or run.
pub const DASHBOARD_CACHE: &str = "orbas_dashboards_cache_requests_total";

/// `GET /metrics`: Prometheus text format. Sampled at scrape time: the DB pool, the replication
/// slots, the lake's newest commits, the search index's size and the dashboard cache.
pub async fn metrics_endpoint(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.db.pool();
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "open").set(f64::from(pool.size()));
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(pool.num_idle() as f64);
    let budget = std::time::Duration::from_secs(2);
    match tokio::time::timeout(budget, orbas_oltp::repo::status::replication_slots(pool)).await {
        Ok(Ok(slots)) => {
            for s in slots {
                if let Some(lag) = s.lag_bytes {
                    metrics::gauge!(CDC_SLOT_LAG_BYTES, "slot" => s.name.clone()).set(lag as f64);
                }
                metrics::gauge!(CDC_SLOT_ACTIVE, "slot" => s.name).set(f64::from(u8::from(s.active)));
            }
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "reading the replication slots for /metrics"),
        Err(_) => tracing::debug!("the replication slots did not answer in time for /metrics"),
    }
    if let Some(lake) = &state.lake
        && tokio::time::timeout(budget, lake_commits(lake)).await.is_err()
    {
        tracing::debug!("the lake did not answer in time for /metrics; its gauges keep their last values");
    }
    if let Ok(ix) = state.search.get() {
        metrics::gauge!(orbas_search::indexer::METRIC_DOCS).set(ix.num_docs() as f64);
    }
    if let Some(engine) = &state.dashboards {
        let stats = engine.cache_stats();
        metrics::counter!(DASHBOARD_CACHE, "result" => "hit").absolute(stats.hits);
        metrics::counter!(DASHBOARD_CACHE, "result" => "miss").absolute(stats.misses);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render())
}

/// Every lake table's newest commit (the status page's and `/metrics`' view of the lake). Read in a
/// task of its own, so a caller that stops waiting (a scrape's or the status page's budget, on a busy
/// machine) cancels no Delta log read half-way, and the read still sets the freshness gauges when it
/// ends: the next scrape has them.
pub(crate) async fn lake_commits(lake: &Arc<Lake>) -> Result<Vec<TableCommit>, String> {
    let lake = lake.clone();
    let read = tokio::spawn(async move {
        let commits = lake.commits().await?;
        for (layer, gold) in [("silver", false), ("gold", true)] {
            if let Some(at) = TableCommit::newest(&commits, gold) {
                metrics::gauge!(LAKE_NEWEST_COMMIT, "layer" => layer).set(at.timestamp_millis() as f64 / 1000.0);
            }
        }
        Ok::<_, orbas_warehouse::Error>(commits)
    });
    match read.await {
        Ok(Ok(commits)) => Ok(commits),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the lake read failed: {e}")),
    }
}

/// Serves the process's Prometheus `/metrics` at `addr` until the returned listener is dropped
/// (`orbas pipeline cdc|sink`, `orbas models run`, `orbas search index`, `orbas sql`: each process its own).
pub async fn serve_metrics(addr: std::net::SocketAddr, service: &str) -> anyhow::Result<MetricsListener> {
    let handle = prometheus();
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("bind the metrics address {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "{service} metrics at /metrics");
    let app = Router::new().route("/metrics", get(move || std::future::ready(handle.render())));
    Ok(MetricsListener(tokio::spawn(async move { axum::serve(listener, app).await })))
}

/// A running `/metrics` listener; dropping it stops it.
#[derive(Debug)]
pub struct MetricsListener(tokio::task::JoinHandle<std::io::Result<()>>);

impl Drop for MetricsListener {
    fn drop(&mut self) {
        self.0.abort();
    }
}
