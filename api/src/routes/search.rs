//! `GET /v1/search`: full-text, semantic or hybrid search over the records the caller may read. The
//! caller's tenant and per-type read scope (own/team/all) become filters inside the query, so nothing
//! foreign is ranked, counted in a facet, or returned.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use orbas_search::{DocType, MAX_LIMIT, Mode, SearchIndex, SearchRequest, SearchResults, Visibility};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Authenticated;
use crate::problem::Problem;
use crate::state::AppState;

/// Longest query text accepted, in characters.
const MAX_QUERY_CHARS: usize = 500;
const DEFAULT_LIMIT: usize = 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The query text (typos and a trailing prefix are tolerated in keyword mode).
    pub q: Option<String>,
    /// Only these types, comma-separated: account, contact, lead, opportunity, ticket, ticket_message,
    /// knowledge_article, document, document_version, employee.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub types: Option<String>,
    /// keyword, semantic or hybrid (default hybrid when the server has an embedding model, else keyword;
    /// semantic and hybrid are a 422 on a server without one).
    pub mode: Option<String>,
    /// How many results (1..=100, default 20).
    pub limit: Option<String>,
    /// Count facets over every match (`true`, the default) or skip them (`false`: faster for broad
    /// queries, e.g. search-as-you-type; `facets` comes back empty).
    pub facets: Option<String>,
}

/// A validated request, or the 422 problem listing every bad parameter.
fn validate(p: SearchParams, semantic: bool) -> Result<SearchRequest, Problem> {
    let mut problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid search parameters");
    let text = p.q.unwrap_or_default().trim().to_owned();
    if text.is_empty() {
        problem = problem.with_field("q", "must not be empty");
    } else if text.chars().count() > MAX_QUERY_CHARS {
        problem = problem.with_field("q", format!("at most {MAX_QUERY_CHARS} characters"));
    }
    let mut types = Vec::new();
    for t in p.types.iter().flat_map(|t| t.split(',')).map(str::trim).filter(|t| !t.is_empty()) {
        match DocType::parse(t) {
            Some(d) => types.push(d),
            None => problem = problem.with_field("type", format!("unknown type {t:?}")),
        }
    }
    let default_mode = if semantic { Mode::Hybrid } else { Mode::Keyword };
    let mode = match p.mode.as_deref() {
        None => default_mode,
        Some(m) => match Mode::parse(m) {
            Some(m) => m,
            None => {
                problem = problem.with_field("mode", "one of keyword, semantic, hybrid");
                default_mode
            }
        },
    };
    if mode != Mode::Keyword && !semantic {
        problem = problem.with_field(
            "mode",
            "semantic and hybrid search are unavailable: the server has no sentence-embedding model; use keyword",
        );
    }
    let limit = match p.limit.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            problem = problem.with_field("limit", format!("an integer from 1 to {MAX_LIMIT}"));
            DEFAULT_LIMIT
        }
    };
    let facets = match p.facets.as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => {
            problem = problem.with_field("facets", "true or false");
            true
        }
    };
    if problem.errors.is_empty() { Ok(SearchRequest { text, mode, limit, types, facets }) } else { Err(problem) }
}

fn unavailable(detail: &str) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail)
}

/// Search the records you may read.
#[utoipa::path(get, path = "/v1/search", tag = "search", params(SearchParams), security(("bearer" = [])),
    responses((status = 200, body = SearchResults), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem, description = "no search index configured, or not open yet")))]
async fn search(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchResults>, Problem> {
    let Query(params) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(run(&state, &auth, params).await?))
}

/// Validates and answers a search for the caller (the API's route and the web UI's results page):
/// 503 without an index, 422 for invalid parameters.
pub(crate) async fn run(
    state: &AppState,
    auth: &Authenticated,
    params: SearchParams,
) -> Result<SearchResults, Problem> {
    let index: Arc<SearchIndex> = state.search.get().map_err(unavailable)?;
    let req = validate(params, index.semantic_available())?;
    let vis = Visibility::for_principal(&auth.principal);
    let result = tokio::task::spawn_blocking(move || index.search(&req, &vis)).await.map_err(|e| {
        tracing::error!(error = %e, "search task failed");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the search failed")
    })?;
    match result {
        Ok(r) => Ok(r),
        Err(e @ orbas_search::Error::SemanticUnavailable) => {
            Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid search parameters")
                .with_field("mode", e.to_string()))
        }
        Err(e) if e.is_client_error() => Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
        Err(e) => {
            tracing::error!(error = ?e, "search failed");
            Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the search failed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: Option<&str>, t: Option<&str>, mode: Option<&str>, limit: Option<&str>) -> SearchParams {
        SearchParams {
            q: q.map(str::to_owned),
            types: t.map(str::to_owned),
            mode: mode.map(str::to_owned),
            limit: limit.map(str::to_owned),
            facets: None,
        }
    }

    fn fields(p: Problem) -> Vec<String> {
        assert_eq!(p.status, 422);
        p.errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn good_parameters_validate() {
        let r =
            validate(params(Some(" acme "), Some("account,ticket"), Some("keyword"), Some("5")), true).expect("valid");
        assert_eq!((r.text.as_str(), r.mode, r.limit), ("acme", Mode::Keyword, 5));
        assert_eq!(r.types, [DocType::Account, DocType::Ticket]);
        let d = validate(params(Some("x"), None, None, None), false).expect("valid");
        assert_eq!((d.mode, d.limit, d.facets), (Mode::Keyword, DEFAULT_LIMIT, true));
        let lean =
            validate(SearchParams { facets: Some("false".into()), ..params(Some("x"), None, None, None) }, false);
        assert_eq!(lean.map(|r| r.facets).ok(), Some(false));
        assert_eq!(validate(params(Some("x"), None, None, None), true).map(|r| r.mode).ok(), Some(Mode::Hybrid));
        let e = validate(params(Some("x"), None, Some("semantic"), None), false).expect_err("no model");
        assert_eq!(fields(e), ["mode"]);
    }

    #[test]
    fn bad_parameters_are_422_with_every_field() {
        let e = validate(params(Some("  "), Some("account,planet"), Some("fuzzy"), Some("0")), true).err();
        assert_eq!(fields(e.expect("invalid")), ["q", "type", "mode", "limit"]);
        for limit in ["101", "-1", "ten"] {
            let e = validate(params(Some("a"), None, None, Some(limit)), true).err();
            assert_eq!(fields(e.expect("invalid")), ["limit"]);
        }
        let long = "a".repeat(MAX_QUERY_CHARS + 1);
        assert_eq!(fields(validate(params(Some(&long), None, None, None), true).expect_err("invalid")), ["q"]);
    }
}
