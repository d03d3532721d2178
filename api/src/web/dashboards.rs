//! Dashboard pages: the list of dashboards the caller may open, the role's default, one dashboard with
//! its global filters (a plain GET form, so the filters live in the URL), and the records behind one
//! value of a widget (drill-down). The data come from the same functions as `GET /v1/dashboards/{id}/data`
//! and `POST /v1/kpis/{key}/drill`, computed under the caller's permissions, and are rendered into the
//! page — tiles and tables as HTML, chart data as JSON in a `<script type="application/json">` block
//! that `app.js` draws — so the page needs no token and no second request.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, Utc};
use orbas_dashboards::board::{self, DashboardFilters, ViewFilters};
use orbas_dashboards::catalog;
use orbas_dashboards::web::{
    BoardLink, DashboardPage, DrillBase, DrillPage, FilterForm, Labels, Nav, TableView, USER_COLUMNS, WidgetView,
    script_json,
};
use orbas_oltp::auth::Principal;
use orbas_oltp::model::{Action, DashboardId};
use orbas_oltp::repo::identity;
use serde_json::Value;

use super::session::UiUser;
use super::{HtmlError, PathId, page};
use crate::problem::Problem;
use crate::routes::{dashboards, kpis};
use crate::state::AppState;

/// How many records a drill-down page lists.
const DRILL_ROWS: usize = 200;

/// `GET /ui/dashboards`: the dashboards the caller may open.
pub(super) async fn list(State(state): State<AppState>, user: UiUser) -> Result<Response, HtmlError> {
    let boards = dashboards::list_visible(&state, &user.auth.principal).await?;
    let boards = boards
        .into_iter()
        .map(|b| {
            let badge = match (&b.default_for_role, b.is_shared, b.owner_id) {
                (Some(role), _, _) => format!("Default for {}", role.replace('_', " ")),
                (None, true, _) => "Shared".to_owned(),
                (None, false, Some(o)) if o == user.auth.principal.user => "Yours".to_owned(),
                _ => "Private".to_owned(),
            };
            BoardLink {
                href: format!("/ui/dashboards/{}", b.id.0),
                name: b.name,
                description: b.description.unwrap_or_default(),
                badge,
            }
        })
        .collect();
    page(&orbas_dashboards::web::DashboardsPage { layout: user.layout("Dashboards", Nav::Dashboards), boards })
}

/// `GET /ui/dashboards/mine`: the role's default dashboard, else the list.
pub(super) async fn mine(State(state): State<AppState>, user: UiUser) -> Result<Response, HtmlError> {
    match dashboards::role_default(&state, &user.auth.principal).await {
        Ok(d) => Ok(Redirect::to(&format!("/ui/dashboards/{}", d.id.0)).into_response()),
        Err(p) if p.status == 404 => Ok(Redirect::to("/ui/dashboards").into_response()),
        Err(p) => Err(p.into()),
    }
}

/// The query of a dashboard or drill-down page: the global filters (empty fields mean "the dashboard's
/// default") and, on a drill-down, the widget, the period and the breakdown values.
type Params = BTreeMap<String, String>;

fn non_empty<'a>(q: &'a Params, name: &str) -> Option<&'a str> {
    q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn date(q: &Params, name: &str) -> Result<Option<NaiveDate>, Problem> {
    non_empty(q, name)
        .map(|s| {
            s.parse().map_err(|_| {
                Problem::new(StatusCode::BAD_REQUEST, format!("{name} must be a date (YYYY-MM-DD)"))
                    .with_field(name, "a date")
            })
        })
        .transpose()
}

fn list_of(q: &Params, name: &str) -> Option<Vec<String>> {
    non_empty(q, name).map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
}

/// The viewer's filters from a page's query; `skip` names filters that are a drilled row's breakdown.
fn view_filters(q: &Params, skip: &[String]) -> Result<ViewFilters, Problem> {
    let list = |name: &str| if skip.iter().any(|s| s == name) { None } else { list_of(q, name) };
    let view = ViewFilters {
        from: date(q, "from")?,
        until: date(q, "until")?,
        territory: list("territory"),
        owner: list("owner"),
        segment: list("segment"),
    };
    board::check_view(&view)?;
    Ok(view)
}

fn form_of(f: &DashboardFilters) -> FilterForm {
    let day = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    FilterForm {
        from: day(f.from),
        until: day(f.until),
        territory: f.territory.join(","),
        owner: f.owner.join(","),
        segment: f.segment.join(","),
    }
}

/// The filters in force as drill-down link parameters.
fn drill_filters(f: &FilterForm) -> Vec<(String, String)> {
    [("from", &f.from), ("until", &f.until), ("territory", &f.territory), ("owner", &f.owner), ("segment", &f.segment)]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
}

/// The names of the users that key columns of `tables` name (owners), when the caller may read users.
pub(super) async fn user_labels<'a>(
    state: &AppState,
    p: &Principal,
    tables: impl Iterator<Item = &'a orbas_dashboards::engine::Table>,
) -> Result<Labels, Problem> {
    if p.scope_for("users", Action::Read).is_none() {
        return Ok(Labels::new());
    }
    let mut ids = Vec::new();
    for t in tables {
        for (c, name) in t.columns.iter().enumerate() {
            if USER_COLUMNS.contains(&name.as_str()) {
                let parsed =
                    t.rows.iter().filter_map(|r| r.get(c)?.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()));
                ids.extend(parsed);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Labels::new());
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let names = identity::names_of(tx.conn(), &ids).await?;
    tx.commit().await?;
    Ok(names.into_iter().map(|(id, name)| (id.to_string(), name)).collect())
}

async fn currency(state: &AppState, p: &Principal) -> Result<String, Problem> {
    let mut tx = state.db.begin(p.tenant).await?;
    let c = identity::corporate_currency(tx.conn(), p.tenant).await?;
    tx.commit().await?;
    Ok(c)
}

/// `GET /ui/dashboards/{id}?from=&until=&territory=&owner=&segment=`: the dashboard under the filters.
pub(super) async fn view(
    State(state): State<AppState>,
    user: UiUser,
    PathId(id): PathId,
    Query(q): Query<Params>,
) -> Result<Response, HtmlError> {
    let p = &user.auth.principal;
    let id = DashboardId(id);
    let view = view_filters(&q, &[])?;
    let (data, d, kpis) = dashboards::board_data(&state, p, id, &view).await?;
    let currency = currency(&state, p).await?;
    let labels = user_labels(&state, p, data.widgets.iter().filter_map(|w| w.data.table.as_ref())).await?;
    let filters = form_of(&data.filters);
    let base_filters = drill_filters(&filters);
    let mut widgets = Vec::with_capacity(data.widgets.len());
    let mut charts = Vec::new();
    for (w, result) in d.widgets.iter().zip(&data.widgets) {
        let kpi = w.spec.kpi.as_ref().and_then(|k| kpis.get(k)).map(|k| &k.definition);
        let drill = kpi.filter(|k| k.drill.is_some()).map(|_| DrillBase {
            prefix: format!("/ui/dashboards/{}/drill?widget={}", id.0, w.id.0),
            filters: base_filters.clone(),
        });
        let (v, chart) =
            WidgetView::new(&w.id.0.to_string(), &w.spec, kpi, &result.data, &currency, drill.as_ref(), &labels);
        widgets.push(v);
        charts.extend(chart);
    }
    let mut layout = user.layout(d.name.clone(), Nav::Dashboards);
    layout.charts = !charts.is_empty();
    let notice = q.contains_key("added").then(|| "The widget was added.".to_owned());
    let pdf_href = state.renderer.as_ref().map(|_| {
        let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&base_filters).finish();
        let sep = if query.is_empty() { "" } else { "?" };
        format!("/ui/dashboards/{}/pdf{sep}{query}", id.0)
    });
    page(&DashboardPage {
        layout,
        id: id.0.to_string(),
        name: d.name.clone(),
        description: d.description.clone(),
        filters,
        widgets,
        data_json: script_json(&Value::Array(charts)),
        can_edit: p.may("dashboards", Action::Update, d.owner_id),
        notice,
        pdf_href,
    })
}

/// `GET /ui/dashboards/{id}/pdf?from=&until=&territory=&owner=&segment=`: the dashboard under the
/// filters as a PDF file (503 page on a server without Chromium).
pub(super) async fn pdf(
    State(state): State<AppState>,
    user: UiUser,
    PathId(id): PathId,
    Query(q): Query<Params>,
) -> Result<Response, HtmlError> {
    let Some(renderer) = state.renderer.clone() else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, orbas_dashboards::report::NO_RENDERER).into());
    };
    let view = view_filters(&q, &[])?;
    let (name, bytes) = dashboards::print_pdf(&state, &renderer, &user.auth.principal, DashboardId(id), &view).await?;
    Ok(dashboards::pdf_response(&name, bytes))
}

/// `GET /ui/dashboards/{id}/drill?widget=&period=&<dimension>=&<filters>`: the records behind one value
/// of a KPI widget (a breakdown value that is empty means "the rows without one").
pub(super) async fn drill(
    State(state): State<AppState>,
    user: UiUser,
    PathId(id): PathId,
    Query(q): Query<Params>,
) -> Result<Response, HtmlError> {
    let p = &user.auth.principal;
    let no_widget = || Problem::new(StatusCode::NOT_FOUND, "this dashboard has no such widget");
    let widget = non_empty(&q, "widget").and_then(|w| uuid::Uuid::parse_str(w).ok()).ok_or_else(no_widget)?;
    let mut tx = state.db.begin(p.tenant).await?;
    let d = dashboards::load_visible(tx.conn(), p, DashboardId(id)).await?;
    let w = d.widgets.iter().find(|w| w.id.0 == widget).ok_or_else(no_widget)?.clone();
    let kpi = match &w.spec.kpi {
        Some(k) => Some(catalog::get(tx.conn(), k).await.map_err(Problem::from)?),
        None => None,
    };
    tx.commit().await?;
    let dims = &w.spec.config.group_by;
    let filters = board::effective(&d.filters, &view_filters(&q, dims)?, Utc::now().date_naive());
    let query = board::widget_query(&w.spec.config, &filters, w.spec.kind);
    let values: BTreeMap<String, Option<String>> = dims
        .iter()
        .filter_map(|dim| q.get(dim).map(|v| (dim.clone(), Some(v.clone()).filter(|v| !v.is_empty()))))
        .collect();
    let period = non_empty(&q, "period");
    let mut selection: Vec<String> = period.map(|p| format!("period {p}")).into_iter().collect();
    selection.extend(values.iter().map(|(k, v)| format!("{k} {}", v.as_deref().unwrap_or("(none)"))));
    let (table, message, status) = match &kpi {
        None => (None, Some("A widget from SQL has no drill-down.".to_owned()), StatusCode::UNPROCESSABLE_ENTITY),
        Some(k) => match kpis::drill_records(&state, p, &k.definition.key, &query, period, &values, DRILL_ROWS).await {
            Ok(t) => {
                let currency = currency(&state, p).await?;
                let labels = user_labels(&state, p, std::iter::once(&t)).await?;
                (Some(TableView::new(&t, None, &currency, &[], &labels)), None, StatusCode::OK)
            }
            Err(e) if e.status == 422 => {
                let why = e.errors.first().map_or_else(|| e.detail.clone().unwrap_or_default(), |f| f.message.clone());
                (None, Some(format!("These records cannot be listed: {why}")), StatusCode::UNPROCESSABLE_ENTITY)
            }
            Err(e) => return Err(e.into()),
        },
    };
    let mut resp = page(&DrillPage {
        layout: user.layout(format!("Records behind {}", w.spec.title), Nav::Dashboards),
        board_href: format!("/ui/dashboards/{id}"),
        board_name: d.name,
        widget_title: w.spec.title,
        selection,
        table,
        message,
    })?;
    *resp.status_mut() = status;
    Ok(resp)
}
