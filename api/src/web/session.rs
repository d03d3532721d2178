//! Browser sessions: the login form, the session cookies, transparent renewal, CSRF defence, logout.
//!
//! * **Cookies.** A login sets `orbas_at` (the 15-minute access token) and `orbas_rt` (the rotating
//!   refresh token) — exactly what `POST /v1/auth/login` returns to API clients — both `HttpOnly`,
//!   `SameSite=Strict`, `Path=/`, and `Secure` when the request came over TLS (`X-Forwarded-Proto:
//!   https` from the terminating proxy). The JSON API never reads them: it stays bearer-only, so
//!   cookies cannot make `/v1` requests cross-site.
//! * **Renewal.** When the access token is expired (or otherwise refused) and the refresh token is
//!   live, the request is served after a refresh-token rotation and the response carries the new
//!   cookies; a refused refresh token (logged out, reused) sends the browser to the login page.
//! * **CSRF.** Every unsafe request under `/ui` (login included) must come from this origin: a
//!   `Sec-Fetch-Site` header must say `same-origin`, and an `Origin` header must name this host;
//!   a request with neither is refused too. Browsers send both on form posts, so no token is needed
//!   in forms; `SameSite=Strict` is a second line.
//! * **Return paths.** Unauthenticated page requests are redirected to `/ui/login?next=<path>`; `next`
//!   is honoured only when it is a path under `/ui/` (no scheme, no `//`, no backslash).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use orbas_dashboards::web::{Layout, LoginPage, Nav};
use orbas_oltp::repo::{access, table};
use serde::Deserialize;

use super::{HtmlError, page};
use crate::extract::{Authenticated, with_access_token};
use crate::problem::Problem;
use crate::routes::auth::{self, LoginRequest, TokenResponse};
use crate::state::AppState;

const ACCESS_COOKIE: &str = "orbas_at";
const REFRESH_COOKIE: &str = "orbas_rt";
/// Where a login goes when it was not sent from a page.
pub(super) const HOME: &str = "/ui/inbox";
const REFRESH_MAX_AGE_SECS: i64 = 30 * 24 * 3600;

/// The signed-in user of a UI request (put there by [`require_session`]).
#[derive(Debug, Clone)]
pub struct UiUser {
    pub auth: Authenticated,
    pub email: String,
}

impl UiUser {
    /// The page frame for this user.
    pub fn layout(&self, title: impl Into<String>, nav: Nav) -> Layout {
        let mut layout = Layout::new(title, Some(self.email.clone()), nav);
        layout.sql = crate::routes::sql::may_query(&self.auth.principal).is_ok();
        layout
    }
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<UiUser>()
            .cloned()
            .ok_or_else(|| HtmlError::from(Problem::new(StatusCode::UNAUTHORIZED, "log in to see this page")))
    }
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// Whether the request reached us over TLS (as the terminating proxy reports it).
fn over_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(resp: &mut Response, name: &str, value: &str, max_age: i64, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    if let Ok(v) = HeaderValue::from_str(&text) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn set_session_cookies(resp: &mut Response, tokens: &TokenResponse, secure: bool) {
    set_cookie(resp, ACCESS_COOKIE, &tokens.access_token, REFRESH_MAX_AGE_SECS, secure);
    set_cookie(resp, REFRESH_COOKIE, &tokens.refresh_token, REFRESH_MAX_AGE_SECS, secure);
}

fn clear_session_cookies(resp: &mut Response, secure: bool) {
    set_cookie(resp, ACCESS_COOKIE, "", 0, secure);
    set_cookie(resp, REFRESH_COOKIE, "", 0, secure);
}

/// Whether an unsafe request comes from this origin (see the module docs).
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if site.is_none() && origin.is_none() {
        return false;
    }
    let site_ok = site.is_none_or(|s| s == "same-origin");
    let origin_ok = origin.is_none_or(|o| {
        let authority = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
        authority.is_some_and(|a| Some(a) == host)
    });
    site_ok && origin_ok
}

fn cross_site() -> HtmlError {
    HtmlError::from(Problem::new(StatusCode::FORBIDDEN, "this form was sent from another site; reload the page"))
}

/// A local UI path to return to after logging in, or the inbox.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.contains("//") && !n.contains('\\') && !n.contains("/ui/login") => {
            n.to_owned()
        }
        _ => HOME.to_owned(),
    }
}

/// Authenticates the session cookies (renewing an expired access token with the refresh token),
/// refuses cross-site writes, and hands the handler a [`UiUser`]; anonymous visitors go to the login page.
pub(super) async fn require_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let secure = over_tls(req.headers());
    let (auth, renewed) = match authenticate(&state, req.headers()).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let Some(auth) = auth else {
        let target = if req.method() == Method::GET {
            let path = req.uri().path_and_query().map_or(HOME, |p| p.as_str());
            let next: String = url::form_urlencoded::byte_serialize(safe_next(Some(path)).as_bytes()).collect();
            format!("/ui/login?next={next}")
        } else {
            "/ui/login".to_owned()
        };
        let mut resp = Redirect::to(&target).into_response();
        clear_session_cookies(&mut resp, secure);
        return resp;
    };
    if !req.method().is_safe() && !same_origin(req.headers()) {
        return cross_site().into_response();
    }
    let email = match user_email(&state, &auth).await {
        Ok(e) => e,
        Err(e) => return HtmlError::from(e).into_response(),
    };
    req.extensions_mut().insert(UiUser { auth, email });
    let mut resp = next.run(req).await;
    if let Some(tokens) = renewed {
        set_session_cookies(&mut resp, &tokens, secure);
    }
    resp
}

/// The session's user, renewing the access token when needed; `None` when there is no live session.
/// Only a refusal (401) means "not logged in"; a database failure is an error page.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Option<Authenticated>, Option<TokenResponse>), HtmlError> {
    let now = Utc::now();
    if let Some(token) = cookie(headers, ACCESS_COOKIE).filter(|t| !t.is_empty()) {
        match with_access_token(state, token, now).await {
            Ok(a) => return Ok((Some(a), None)),
            Err(p) if p.status == 401 => {}
            Err(p) => return Err(p.into()),
        }
    }
    let Some(refresh) = cookie(headers, REFRESH_COOKIE).filter(|t| !t.is_empty()) else {
        return Ok((None, None));
    };
    let tokens = match auth::rotate_refresh(state, refresh).await {
        Ok(t) => t,
        Err(p) if p.status == 401 => return Ok((None, None)),
        Err(p) => return Err(p.into()),
    };
    match with_access_token(state, &tokens.access_token, now).await {
        Ok(a) => Ok((Some(a), Some(tokens))),
        Err(p) if p.status == 401 => Ok((None, None)),
        Err(p) => Err(p.into()),
    }
}

async fn user_email(state: &AppState, auth: &Authenticated) -> Result<String, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let me: access::User = table::get(tx.conn(), &access::USERS, p.user.0, false).await?;
    tx.commit().await?;
    Ok(me.email)
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

fn login_page(tenant: String, email: String, error: Option<String>, next: String) -> LoginPage {
    LoginPage { layout: Layout::new("Log in", None, Nav::None), tenant, email, error, next }
}

/// `GET /ui/login`: the form.
pub(super) async fn login_form(Query(q): Query<LoginQuery>) -> Result<Response, HtmlError> {
    page(&login_page(String::new(), String::new(), None, safe_next(q.next.as_deref())))
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    tenant: String,
    email: String,
    password: String,
    next: Option<String>,
}

/// `POST /ui/login`: the same checks as `POST /v1/auth/login`; success sets the session cookies and
/// goes on to `next`, failure shows the form again with the reason (and what was typed, minus the
/// password).
pub(super) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, HtmlError> {
    if !same_origin(&headers) {
        return Err(cross_site());
    }
    let Form(form) = form.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let next = safe_next(form.next.as_deref());
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let req = LoginRequest { tenant: form.tenant.clone(), email: form.email.clone(), password: form.password };
    match auth::password_login(&state, peer, agent, req).await {
        Ok(tokens) => {
            let mut resp = Redirect::to(&next).into_response();
            set_session_cookies(&mut resp, &tokens, over_tls(&headers));
            Ok(resp)
        }
        Err(p) if p.status == 401 || p.status == 429 => {
            let why = if p.status == 429 {
                "Too many failed attempts. Wait a few minutes and try again."
            } else {
                "The workspace, e-mail or password is not right."
            };
            let mut resp = page(&login_page(form.tenant, form.email, Some(why.to_owned()), next))?;
            *resp.status_mut() = StatusCode::from_u16(p.status).unwrap_or(StatusCode::UNAUTHORIZED);
            Ok(resp)
        }
        Err(p) => Err(p.into()),
    }
}

/// `POST /ui/logout`: ends the session (both tokens stop working) and clears the cookies.
pub(super) async fn logout(
    State(state): State<AppState>,
    user: UiUser,
    headers: HeaderMap,
) -> Result<Response, HtmlError> {
    if let Some(claims) = &user.auth.claims {
        auth::end_session(&state, claims).await?;
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    clear_session_cookies(&mut resp, over_tls(&headers));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_local_ui_paths_are_return_targets() {
        assert_eq!(safe_next(Some("/ui/accounts/1?x=2")), "/ui/accounts/1?x=2");
        for bad in ["//evil.example/ui/", "https://evil.example/ui/x", "/ui//evil", "/ui/\\evil", "/v1/me", "/ui/login"]
        {
            assert_eq!(safe_next(Some(bad)), HOME, "{bad}");
        }
        assert_eq!(safe_next(None), HOME);
    }

    #[test]
    fn writes_must_come_from_this_origin() {
        let host = ("host", "127.0.0.1:8080");
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "same-origin")])));
        assert!(same_origin(&headers(&[host, ("origin", "https://127.0.0.1:8080")])));
        assert!(!same_origin(&headers(&[host])), "neither header");
        assert!(!same_origin(&headers(&[host, ("origin", "http://evil.example")])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[host, ("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[host, ("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "same-site")])));
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let h = headers(&[("cookie", "x_orbas_at=no; orbas_at=abc.def; orbas_rt=r")]);
        assert_eq!(cookie(&h, ACCESS_COOKIE), Some("abc.def"));
        assert_eq!(cookie(&h, REFRESH_COOKIE), Some("r"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
