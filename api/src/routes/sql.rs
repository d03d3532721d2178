//! `POST /v1/sql`: read-only SQL over the tenant's lake tables (silver), answered as JSON, CSV or an
//! Arrow IPC stream (by `Accept`). The engine restricts every table to the caller's tenant
//! (`orbas_warehouse::tenant`); statements other than queries are refused before planning.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use orbas_oltp::auth::Principal;
use orbas_oltp::model::Action;
use orbas_warehouse::sql::{self, Format, Limits, QueryError};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body};
use crate::problem::Problem;
use crate::state::AppState;

const RESOURCE: &str = "lake_sql";
/// The longest a statement may run when the request does not ask for less.
const MAX_TIMEOUT_MS: u64 = 60_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(run))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One query: SELECT, EXPLAIN or SHOW (tables are the CRM's, current state, e.g. `opportunities`).
    pub sql: String,
    /// Cancel the statement after this many milliseconds (1..=60000, default 30000).
    #[schema(minimum = 1, maximum = 60000)]
    pub timeout_ms: Option<u64>,
    /// Time travel: query the tables as they were at this instant (RFC 3339). Each table is read at
    /// its last version committed at or before it; tables created later do not exist for the query.
    /// Reaches back as far as vacuum and log retention keep versions.
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

fn format_of(headers: &HeaderMap) -> Result<Format, Problem> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    for item in accept.split(',') {
        let media = item.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json" | "application/*" | "*/*" | "" => return Ok(Format::Json),
            "text/csv" | "text/*" => return Ok(Format::Csv),
            "application/vnd.apache.arrow.stream" => return Ok(Format::Arrow),
            _ => {}
        }
    }
    Err(Problem::new(
        StatusCode::NOT_ACCEPTABLE,
        "results come as application/json, text/csv or application/vnd.apache.arrow.stream",
    ))
}

/// Runs one read-only query over the lake for the caller's tenant.
#[utoipa::path(post, path = "/v1/sql", tag = "lake", request_body = SqlRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "the result: JSON `{columns, rows, row_count}`, CSV with a header, or an Arrow IPC stream, by Accept",
         content(("application/json"), ("text/csv"), ("application/vnd.apache.arrow.stream"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 406, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn run(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    Body(req): Body<SqlRequest>,
) -> Result<Response, Problem> {
    may_query(&auth.principal)?;
    let format = format_of(&headers)?;
    let timeout_ms = req.timeout_ms.unwrap_or(30_000);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "timeout_ms is out of range")
            .with_field("timeout_ms", format!("must be between 1 and {MAX_TIMEOUT_MS}")));
    }
    let limits = Limits { timeout: std::time::Duration::from_millis(timeout_ms), ..Limits::default() };
    let (schema, batches) = query(&state, &auth.principal, &req.sql, limits, req.as_of).await?;
    let body = sql::encode(format, &schema, &batches).map_err(|e| {
        tracing::error!(error = %e, "encoding a lake result");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the result could not be encoded")
    })?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// Runs `sql` over the lake for `p`'s tenant as `POST /v1/sql` does (the web UI's SQL page too): the
/// caller's role must be allowed to query the lake; only queries plan; errors are problems.
pub(crate) async fn query(
    state: &AppState,
    p: &Principal,
    sql_text: &str,
    limits: Limits,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(SchemaRef, Vec<RecordBatch>), Problem> {
    may_query(p)?;
    if sql_text.trim().is_empty() {
        return Err(
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "sql is empty").with_field("sql", "must hold a query")
        );
    }
    let Some(lake) = state.lake.clone() else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "this server has no lake configured (ORBAS_LAKE)"));
    };
    if as_of.is_some_and(|t| t > chrono::Utc::now() + chrono::Duration::minutes(5)) {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "as_of is in the future")
            .with_field("as_of", "must not be later than now"));
    }
    let tenant = p.tenant.to_string();
    let session = match as_of {
        Some(at) => lake.session_at(&tenant, limits, at).await,
        None => lake.session(&tenant, limits).await,
    };
    let ctx = session.map_err(|e| {
        tracing::error!(error = %e, "opening a lake session");
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the lake cannot be read right now")
    })?;
    sql::query(&ctx, sql_text, limits).await.map_err(|e| match e {
        QueryError::NotAllowed(m) => Problem::new(StatusCode::FORBIDDEN, format!("only queries are allowed: {m}")),
        QueryError::Invalid(m) => Problem::new(StatusCode::BAD_REQUEST, m).with_field("sql", "does not plan"),
        QueryError::Timeout(_) | QueryError::Memory(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        QueryError::Internal(e) => {
            tracing::error!(error = %e, "lake query");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the lake cannot be read right now")
        }
    })
}

/// Whether `p`'s role may query the lake (403 when not).
pub(crate) fn may_query(p: &Principal) -> Result<(), Problem> {
    match p.scope_for(RESOURCE, Action::Read) {
        Some(_) => Ok(()),
        None => Err(Problem::new(StatusCode::FORBIDDEN, "your role may not query the lake")),
    }
}
