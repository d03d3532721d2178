//! Request observability: request ids (accepted from `x-request-id` or generated, echoed back), a
//! tracing span per request carrying that id, and Prometheus metrics served at `/metrics`.
//!
//! Metric names follow `orbas_<crate>_<noun>_<unit>`; labels are low-cardinality (the matched route
//! template, never the raw path).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
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

/// `GET /metrics`: Prometheus text format, with the DB pool sampled at scrape time.
pub async fn metrics_endpoint(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.db.pool();
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "open").set(f64::from(pool.size()));
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(pool.num_idle() as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render())
}
