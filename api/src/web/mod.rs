//! The web UI, served under `/ui` by `orbas serve`: server-rendered pages (templates and assets are
//! `orbas_dashboards::web`'s) whose handlers call the same repository functions and permission checks
//! as the JSON routes — never the API over HTTP.
//!
//! Pages: the login form ([`session`]), the rep's recommendations inbox, account and opportunity
//! pages, and search results ([`pages`], [`records`]); dashboards with their filters and drill-downs
//! ([`dashboards`]) and the dashboard editor with its live preview ([`editor`]). Errors are HTML pages with the status the JSON
//! API would give (404 for another tenant's or an unreadable record, 403, 503 without a search index);
//! server errors show a generic text, their cause is logged. The SQL page runs `POST /v1/sql`'s code
//! ([`pages`]); the status page shows `GET /v1/status`'s figures ([`status`]).

mod dashboards;
mod editor;
mod pages;
mod records;
mod session;
mod status;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use orbas_dashboards::web::{self as templates, ErrorPage, Layout, Nav};

use crate::problem::Problem;
use crate::state::AppState;

/// The `/ui` routes (nest them at `/ui`).
pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/inbox", get(pages::inbox))
        .route("/recommendations/{id}/feedback", post(pages::feedback))
        .route("/accounts/{id}", get(records::account))
        .route("/opportunities/{id}", get(records::opportunity))
        .route("/search", get(pages::search))
        .route("/sql", get(pages::sql))
        .route("/status", get(status::status))
        .route("/dashboards", get(dashboards::list))
        .route("/dashboards/mine", get(dashboards::mine))
        .route("/dashboards/{id}", get(dashboards::view))
        .route("/dashboards/{id}/drill", get(dashboards::drill))
        .route("/dashboards/{id}/pdf", get(dashboards::pdf))
        .route("/dashboards/{id}/edit", get(editor::edit))
        .route("/dashboards/{id}/widgets", post(editor::save))
        .route("/widgets/preview", post(editor::preview))
        .route("/logout", post(session::logout))
        .route_layer(axum::middleware::from_fn_with_state(state, session::require_session));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/dashboards/mine") }))
        .route("/login", get(session::login_form).post(session::login))
        .route("/assets/{version}/{*path}", get(asset))
        .merge(signed_in)
        .fallback(|| async { HtmlError::from(Problem::new(StatusCode::NOT_FOUND, "there is no page here")) })
        .layer(axum::middleware::from_fn(security_headers))
}

/// An error answered as an HTML page (the problem's status; 5xx details stay in the log).
#[derive(Debug)]
pub struct HtmlError(Problem);

impl From<Problem> for HtmlError {
    fn from(p: Problem) -> Self {
        HtmlError(p)
    }
}

impl From<orbas_oltp::Error> for HtmlError {
    fn from(e: orbas_oltp::Error) -> Self {
        HtmlError(e.into())
    }
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        let p = self.0;
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::UNAUTHORIZED => "Please log in",
            StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let detail = if status.is_server_error() {
            "The server could not complete the request. Try again in a moment.".to_owned()
        } else {
            p.detail.unwrap_or_default()
        };
        let page = ErrorPage { layout: Layout::new(title, None, Nav::None), status: status.as_u16(), detail };
        let mut resp = match templates::render(&page) {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "rendering the error page failed");
                "error".into_response()
            }
        };
        *resp.status_mut() = status;
        if let Some(secs) = p.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// A record id from the path; a malformed one is the 404 page (no record can live at that URL).
#[derive(Debug, Clone, Copy)]
struct PathId(uuid::Uuid);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathId {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, HtmlError> {
        match Path::<uuid::Uuid>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(PathId(id)),
            Err(_) => Err(Problem::new(StatusCode::NOT_FOUND, "there is no record here").into()),
        }
    }
}

/// A rendered page (200).
fn page(p: &impl templates::Template) -> Result<Response, HtmlError> {
    let html = templates::render(p).map_err(|e| {
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "rendering a page failed");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered")
    })?;
    Ok(Html(html).into_response())
}

/// `GET /ui/assets/<version>/<path>`: an embedded asset, cacheable for a year (its URL changes with
/// its content).
async fn asset(Path((version, path)): Path<(String, String)>) -> Result<Response, HtmlError> {
    let Some(a) = templates::asset(&version, &path) else {
        return Err(Problem::new(StatusCode::NOT_FOUND, "no such asset").into());
    };
    let mut resp = a.bytes.into_owned().into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&a.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    Ok(resp)
}

/// Headers every UI response carries: a strict content policy (own scripts only, no framing, forms
/// post only here), no MIME sniffing, no referrer to other sites, and no caching of pages.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
               frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
