//! The rep's recommendations inbox (with accept / dismiss / snooze as plain forms) and the search page.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use chrono::{Duration, Utc};
use orbas_dashboards::web::{HitView, InboxPage, Nav, RecView, SearchPage, SqlPage, TableView};
use orbas_oltp::model::{DismissReason, FeedbackVerdict, RecommendationId};
use orbas_oltp::repo::recommendations::Feedback;
use serde::Deserialize;

use super::session::UiUser;
use super::{HtmlError, PathId, page};
use crate::problem::Problem;
use crate::resource::WriteContext;
use crate::routes::{recommendations, search as search_route};
use crate::state::AppState;

/// How many recommendations the inbox shows.
const INBOX_SIZE: u32 = 50;

#[derive(Debug, Deserialize)]
pub(super) struct InboxQuery {
    /// What the last feedback did (`accepted`, `dismissed`, `snoozed`), for the status line.
    done: Option<String>,
}

/// `GET /ui/inbox`: the caller's actionable recommendations, best first.
pub(super) async fn inbox(
    State(state): State<AppState>,
    user: UiUser,
    Query(q): Query<InboxQuery>,
) -> Result<Response, HtmlError> {
    let notice = match q.done.as_deref() {
        Some("accepted") => Some("Accepted. It is off your list."),
        Some("dismissed") => Some("Dismissed. It is off your list."),
        Some("snoozed") => Some("Snoozed. It comes back when the snooze ends."),
        _ => None,
    };
    inbox_page(&state, &user, notice.map(str::to_owned), None).await
}

async fn inbox_page(
    state: &AppState,
    user: &UiUser,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, HtmlError> {
    let recs = recommendations::actionable(state, &user.auth, INBOX_SIZE).await?;
    let items = recs.iter().map(RecView::from).collect();
    page(&InboxPage { layout: user.layout("Inbox", Nav::Inbox), items, notice, error })
}

#[derive(Debug, Deserialize)]
pub(super) struct FeedbackForm {
    verdict: String,
    /// Why dismiss: empty (not relevant), `already_handled` or `not_mine`; ignored with other verdicts.
    reason_code: Option<String>,
    reason: Option<String>,
    /// Snooze length in days (1..=90), with verdict `snooze`.
    snooze_days: Option<i64>,
}

impl FeedbackForm {
    fn into_feedback(self) -> Result<(Feedback, &'static str), Problem> {
        let bad = |detail: &str| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail);
        let reason = self.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        let (verdict, done) = match self.verdict.as_str() {
            "accept" => (FeedbackVerdict::Accept, "accepted"),
            "dismiss" => (FeedbackVerdict::Dismiss, "dismissed"),
            "snooze" => (FeedbackVerdict::Snooze, "snoozed"),
            _ => return Err(bad("choose accept, dismiss or snooze")),
        };
        // The form sends its select with every button; only a dismissal carries the reason.
        let reason_code = match (verdict, self.reason_code.as_deref().map(str::trim)) {
            (FeedbackVerdict::Dismiss, Some(code)) if !code.is_empty() => {
                Some(code.parse::<DismissReason>().map_err(|_| bad("choose why you dismiss it from the list"))?)
            }
            _ => None,
        };
        let snooze_until = match verdict {
            FeedbackVerdict::Snooze => {
                let days = self.snooze_days.unwrap_or(7);
                if !(1..=90).contains(&days) {
                    return Err(bad("snooze for 1 to 90 days"));
                }
                Some(Utc::now() + Duration::days(days))
            }
            _ => None,
        };
        Ok((Feedback { verdict, reason_code, reason, snooze_until }, done))
    }
}

/// `POST /ui/recommendations/{id}/feedback`: accept, dismiss or snooze — the JSON route's checks
/// and audit row — then back to the inbox.
pub(super) async fn feedback(
    State(state): State<AppState>,
    user: UiUser,
    ctx: WriteContext,
    PathId(id): PathId,
    form: Result<Form<FeedbackForm>, FormRejection>,
) -> Result<Response, HtmlError> {
    let Form(form) = form.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let answered = match form.into_feedback() {
        Ok((fb, done)) => {
            recommendations::give_feedback(&state, &user.auth, &ctx, RecommendationId(id), &fb).await.map(|_| done)
        }
        Err(p) => Err(p),
    };
    match answered {
        Ok(done) => Ok(axum::response::IntoResponse::into_response(Redirect::to(&format!("/ui/inbox?done={done}")))),
        // Input the rep can fix (a reason over 1000 characters, a bad snooze): the inbox again, with why.
        Err(p) if p.status == 422 => {
            let why = format!("Your answer was not saved ({}).", p.detail.unwrap_or_default());
            let mut resp = inbox_page(&state, &user, None, Some(why)).await?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
        Err(p) => Err(p.into()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct SearchQuery {
    q: Option<String>,
}

/// `GET /ui/search?q=`: keyword search over the records the caller may read. No index, or an invalid
/// query, is a message on the page (with the API's status), not an error page.
pub(super) async fn search(
    State(state): State<AppState>,
    user: UiUser,
    Query(sq): Query<SearchQuery>,
) -> Result<Response, HtmlError> {
    let text = sq.q.unwrap_or_default();
    let mut layout = user.layout("Search", Nav::Search);
    layout.query = text.clone();
    if text.trim().is_empty() {
        let message = Some("Type what you are looking for in the search box.".to_owned());
        return page(&SearchPage { layout, hits: Vec::new(), message });
    }
    let params = search_route::SearchParams {
        q: Some(text),
        types: None,
        mode: Some("keyword".to_owned()),
        limit: None,
        facets: Some("false".to_owned()),
    };
    let (hits, message, status) = match search_route::run(&state, &user.auth, params).await {
        Ok(r) => {
            let hits = r.hits.iter().map(|h| HitView::new(h.doc_type.as_str(), &h.id, &h.title, &h.snippet)).collect();
            (hits, None, StatusCode::OK)
        }
        Err(p) if p.status == 503 => (
            Vec::new(),
            Some("Search is not available right now. Try again later.".to_owned()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        Err(p) if p.status == 422 => {
            let why = p.errors.first().map_or_else(|| p.detail.clone().unwrap_or_default(), |e| e.message.clone());
            (Vec::new(), Some(format!("That search cannot be run: {why}")), StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(p) => return Err(p.into()),
    };
    let mut resp = page(&SearchPage { layout, hits, message })?;
    *resp.status_mut() = status;
    Ok(resp)
}

#[derive(Debug, Deserialize)]
pub(super) struct SqlQuery {
    q: Option<String>,
}

/// The longest query text the page accepts (a URL carries it).
const MAX_SQL: usize = 20_000;

/// `GET /ui/sql?q=…`: the SQL page — with `q`, the query run as `POST /v1/sql` runs it (the caller's
/// tenant, read-only, the role must be allowed to query the lake) and its first rows as a table; a
/// query that does not plan, is not a query or runs too long shows why, with the text kept to fix it.
pub(super) async fn sql(
    State(state): State<AppState>,
    user: UiUser,
    Query(q): Query<SqlQuery>,
) -> Result<Response, HtmlError> {
    crate::routes::sql::may_query(&user.auth.principal)?;
    let text = q.q.unwrap_or_default();
    let layout = user.layout("SQL", Nav::Sql);
    let mut view = SqlPage { layout, sql: text.clone(), table: None, row_count: 0, elapsed_ms: 0, error: None };
    if text.trim().is_empty() {
        return page(&view);
    }
    if text.len() > MAX_SQL {
        view.error = Some(format!("The query is longer than {MAX_SQL} characters."));
        let mut resp = page(&view)?;
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(resp);
    }
    let started = std::time::Instant::now();
    let limits = orbas_warehouse::sql::Limits::default();
    match crate::routes::sql::query(&state, &user.auth.principal, &text, limits, None).await {
        Ok((schema, batches)) => {
            view.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            view.row_count = batches.iter().map(|b| b.num_rows()).sum();
            let (rows, truncated) = orbas_dashboards::engine::json_rows(&batches, orbas_dashboards::engine::MAX_ROWS);
            let table = orbas_dashboards::engine::Table {
                columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
                rows,
                truncated,
                generation: 0,
            };
            // Raw values (an analyst's query shows ids as ids); record ids still link to their pages.
            view.table = Some(TableView::new(&table, None, "", &[], &Default::default()));
            page(&view)
        }
        Err(p) if p.status < 500 => {
            let why = match (p.detail.as_deref(), p.errors.first()) {
                (Some(d), _) if !d.is_empty() => d.to_owned(),
                (_, Some(e)) => e.message.clone(),
                _ => p.title.clone(),
            };
            view.error = Some(format!("The query did not run: {why}"));
            let mut resp = page(&view)?;
            *resp.status_mut() = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            Ok(resp)
        }
        Err(p) => Err(p.into()),
    }
}
