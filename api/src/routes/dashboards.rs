//! `/v1/dashboards`: dashboards (global filters and widgets from KPIs or SQL), their data for the
//! viewer's filters, and the live preview of a widget being edited.
//!
//! Who sees a dashboard: everyone in the tenant when it is shared or is their role's default, else its
//! owner and admins (others get 404, as for any record out of reach). Who changes one: its owner, or an
//! admin (the defaults of the roles are owned by nobody: admins edit them). Widgets from SQL are written
//! and previewed only by roles that may query the lake; their results are shown to every viewer.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use orbas_dashboards::Status;
use orbas_dashboards::board::{self, DashboardFilters, DashboardSpec, ViewFilters, WidgetData, WidgetKind, WidgetSpec};
use orbas_dashboards::catalog;
use orbas_dashboards::catalog::StoredKpi;
use orbas_dashboards::store::{self, StoredDashboard, StoredWidget};
use orbas_dashboards::viewer::Viewer;
use orbas_oltp::auth::Principal;
use orbas_oltp::model::{Action, DashboardId, RoleKey, UserId, WidgetId};
use orbas_oltp::repo::dashboards as repo;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::{WriteContext, audit_write, changes, check_if_match, with_etag};
use crate::state::AppState;

const RESOURCE: &str = "dashboards";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, replace, remove))
        .routes(routes!(add_widget))
        .routes(routes!(remove_widget))
        .routes(routes!(data))
        .routes(routes!(pdf))
        .routes(routes!(mine))
        .routes(routes!(preview))
}

fn forbidden(what: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, format!("your role may not {what}"))
}

fn not_found() -> Problem {
    orbas_oltp::Error::NotFound { entity: "dashboard" }.into()
}

fn visible(p: &Principal, d: &StoredDashboard) -> bool {
    p.role == RoleKey::Admin
        || d.is_shared
        || d.owner_id == Some(p.user)
        || d.default_for_role.as_deref() == Some(p.role.as_str())
}

pub(crate) fn may_query_lake(p: &Principal) -> bool {
    p.scope_for("lake_sql", Action::Read).is_some()
}

/// What only some may write: SQL widgets (lake readers) and role defaults (admins).
fn check_rights(p: &Principal, spec: &DashboardSpec) -> Result<(), Problem> {
    if spec.widgets.iter().any(|w| w.sql.is_some()) && !may_query_lake(p) {
        return Err(forbidden("write SQL widgets (they query the lake)"));
    }
    if spec.default_for_role.is_some() && p.role != RoleKey::Admin {
        return Err(forbidden("set a role's default dashboard"));
    }
    Ok(())
}

/// A dashboard in a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DashboardSummary {
    pub id: DashboardId,
    pub key: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub is_shared: bool,
    pub default_for_role: Option<String>,
    pub owner_id: Option<UserId>,
    pub updated_at: DateTime<Utc>,
}

/// The dashboards the caller may open, by name.
#[utoipa::path(get, path = "/v1/dashboards", tag = "dashboards", security(("bearer" = [])),
    responses((status = 200, body = Vec<DashboardSummary>), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list(State(state): State<AppState>, auth: Authenticated) -> Result<Json<Vec<DashboardSummary>>, Problem> {
    Ok(Json(list_visible(&state, &auth.principal).await?))
}

/// The dashboards `p` may open, by name (shared by the JSON route and the web UI).
pub(crate) async fn list_visible(state: &AppState, p: &Principal) -> Result<Vec<DashboardSummary>, Problem> {
    if p.scope_for(RESOURCE, Action::Read).is_none() {
        return Err(forbidden("read dashboards"));
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let rows = repo::visible(tx.conn(), p.user, p.role.as_str(), p.role == RoleKey::Admin).await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| DashboardSummary {
            id: r.id,
            key: r.key,
            name: r.name,
            description: r.description,
            is_shared: r.is_shared,
            default_for_role: r.default_for_role,
            owner_id: r.owner_id,
            updated_at: r.updated_at,
        })
        .collect())
}

/// Create a dashboard (owned by the caller) with its widgets.
#[utoipa::path(post, path = "/v1/dashboards", tag = "dashboards", request_body = DashboardSpec, security(("bearer" = [])),
    responses((status = 201, body = StoredDashboard, headers(("ETag" = String), ("Location" = String))),
              (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
              (status = 422, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Body(spec): Body<DashboardSpec>,
) -> Result<Response, Problem> {
    let p = &auth.principal;
    if !p.may(RESOURCE, Action::Create, Some(p.user)) {
        return Err(forbidden("create dashboards"));
    }
    check_rights(p, &spec)?;
    let mut tx = state.db.begin(p.tenant).await?;
    let d = store::create(tx.conn(), p.tenant, Some(p.user), &spec).await?;
    audit_write(tx.conn(), &auth, &ctx, ("create", RESOURCE), d.id.0, &changes(None::<&()>, Some(&d))).await?;
    tx.commit().await?;
    let mut resp = with_etag(StatusCode::CREATED, &d);
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/dashboards/{}", d.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Loads a dashboard the caller may see (404 otherwise).
pub(crate) async fn load_visible(
    c: &mut sqlx::PgConnection,
    p: &Principal,
    id: DashboardId,
) -> Result<StoredDashboard, Problem> {
    if p.scope_for(RESOURCE, Action::Read).is_none() {
        return Err(forbidden("read dashboards"));
    }
    let d = store::load(c, id).await?;
    if visible(p, &d) { Ok(d) } else { Err(not_found()) }
}

/// Loads a dashboard for a change (locked) and checks the caller may change it and has its current version.
async fn load_for_change(
    c: &mut sqlx::PgConnection,
    p: &Principal,
    ctx: &WriteContext,
    id: DashboardId,
    action: Action,
) -> Result<StoredDashboard, Problem> {
    repo::get(c, id, true).await?;
    let d = load_visible(c, p, id).await?;
    if !p.may(RESOURCE, action, d.owner_id) {
        return Err(forbidden(&format!("{} this dashboard", action.as_str())));
    }
    check_if_match(ctx, &d, "dashboard")?;
    Ok(d)
}

/// One dashboard with its widgets, and its `ETag`.
#[utoipa::path(get, path = "/v1/dashboards/{id}", tag = "dashboards", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = StoredDashboard, headers(("ETag" = String))), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn read(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<DashboardId>,
) -> Result<Response, Problem> {
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let d = load_visible(tx.conn(), &auth.principal, id).await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, &d))
}

/// Replace a dashboard and all its widgets (its owner or an admin). Send `If-Match` with the `ETag` you read.
#[utoipa::path(put, path = "/v1/dashboards/{id}", tag = "dashboards", request_body = DashboardSpec,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)), security(("bearer" = [])),
    responses((status = 200, body = StoredDashboard, headers(("ETag" = String))), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 412, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn replace(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<DashboardId>,
    Body(spec): Body<DashboardSpec>,
) -> Result<Response, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let before = load_for_change(tx.conn(), p, &ctx, id, Action::Update).await?;
    // Keeping a role default or SQL widget someone else set is not setting one.
    let unchanged_role = spec.default_for_role == before.default_for_role;
    let new_sql = spec.widgets.iter().any(|w| w.sql.is_some() && !before.widgets.iter().any(|b| b.spec.sql == w.sql));
    let probe = DashboardSpec {
        default_for_role: if unchanged_role { None } else { spec.default_for_role.clone() },
        widgets: if new_sql { spec.widgets.clone() } else { Vec::new() },
        ..spec.clone()
    };
    check_rights(p, &probe)?;
    let after = store::replace(tx.conn(), id, &spec).await?;
    audit_write(tx.conn(), &auth, &ctx, ("update", RESOURCE), id.0, &changes(Some(&before), Some(&after))).await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, &after))
}

/// Delete a dashboard with its widgets and scheduled reports.
#[utoipa::path(delete, path = "/v1/dashboards/{id}", tag = "dashboards", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn remove(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<DashboardId>,
) -> Result<StatusCode, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let before = load_for_change(tx.conn(), p, &ctx, id, Action::Delete).await?;
    repo::delete(tx.conn(), id).await?;
    audit_write(tx.conn(), &auth, &ctx, ("delete", RESOURCE), id.0, &changes(Some(&before), None::<&()>)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add one widget to a dashboard (the editor's "add a widget").
#[utoipa::path(post, path = "/v1/dashboards/{id}/widgets", tag = "dashboards", request_body = WidgetSpec,
    params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 201, body = StoredWidget), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn add_widget(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<DashboardId>,
    Body(spec): Body<WidgetSpec>,
) -> Result<(StatusCode, Json<StoredWidget>), Problem> {
    let widget = add_widget_to(&state, &auth, &ctx, id, spec).await?;
    Ok((StatusCode::CREATED, Json(widget)))
}

/// Adds `spec` to dashboard `id` with the same checks and audit row as `POST /v1/dashboards/{id}/widgets`
/// (shared with the web UI's editor).
pub(crate) async fn add_widget_to(
    state: &AppState,
    auth: &Authenticated,
    ctx: &WriteContext,
    id: DashboardId,
    spec: WidgetSpec,
) -> Result<StoredWidget, Problem> {
    let p = &auth.principal;
    if spec.sql.is_some() && !may_query_lake(p) {
        return Err(forbidden("write SQL widgets (they query the lake)"));
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let d = load_for_change(tx.conn(), p, ctx, id, Action::Update).await?;
    if d.widgets.len() >= 40 {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "a dashboard holds at most 40 widgets")
            .with_field("widgets", "at most 40"));
    }
    let write = store::checked_widget(tx.conn(), &spec).await?;
    let row = repo::add_widget(tx.conn(), p.tenant, id, &write).await?;
    let widget = StoredWidget { id: row.id, spec };
    audit_write(tx.conn(), auth, ctx, ("add_widget", RESOURCE), id.0, &changes(None::<&()>, Some(&widget))).await?;
    tx.commit().await?;
    Ok(widget)
}

/// Remove one widget from a dashboard.
#[utoipa::path(delete, path = "/v1/dashboards/{id}/widgets/{widget_id}", tag = "dashboards",
    params(("id" = uuid::Uuid, Path), ("widget_id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn remove_widget(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id((id, widget)): Id<(DashboardId, WidgetId)>,
) -> Result<StatusCode, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let d = load_for_change(tx.conn(), p, &ctx, id, Action::Update).await?;
    let before = d.widgets.iter().find(|w| w.id == widget).cloned();
    repo::delete_widget(tx.conn(), id, widget).await?;
    audit_write(tx.conn(), &auth, &ctx, ("remove_widget", RESOURCE), id.0, &changes(before.as_ref(), None::<&()>))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The viewer's filters (each overrides the dashboard's default; lists are comma-separated).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DataQuery {
    /// First day (inclusive), with `until`.
    pub from: Option<NaiveDate>,
    /// Day after the last (exclusive).
    pub until: Option<NaiveDate>,
    /// Territory ids, comma-separated.
    pub territory: Option<String>,
    /// Owner (user) ids, comma-separated.
    pub owner: Option<String>,
    /// Segments, comma-separated.
    pub segment: Option<String>,
}

fn list_param(v: Option<&String>) -> Option<Vec<String>> {
    v.map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
}

impl DataQuery {
    pub(crate) fn view(&self) -> ViewFilters {
        ViewFilters {
            from: self.from,
            until: self.until,
            territory: list_param(self.territory.as_ref()),
            owner: list_param(self.owner.as_ref()),
            segment: list_param(self.segment.as_ref()),
        }
    }
}

/// One widget and its data.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WidgetResult {
    pub id: WidgetId,
    pub title: String,
    pub kind: WidgetKind,
    pub kpi: Option<String>,
    pub data: WidgetData,
}

/// A dashboard's data under the filters in force.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DashboardData {
    pub id: DashboardId,
    /// The filters applied (the viewer's over the dashboard's defaults, the range resolved to dates).
    pub filters: DashboardFilters,
    pub widgets: Vec<WidgetResult>,
}

/// Every widget's data for the viewer's filters (a widget whose query fails carries its `error`; the
/// others still come). Results are cached until the lake commits.
#[utoipa::path(get, path = "/v1/dashboards/{id}/data", tag = "dashboards", params(("id" = uuid::Uuid, Path), DataQuery),
    security(("bearer" = [])),
    responses((status = 200, body = DashboardData), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
              (status = 503, body = Problem)))]
async fn data(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<DashboardId>,
    query: Result<Query<DataQuery>, QueryRejection>,
) -> Result<Json<DashboardData>, Problem> {
    let Query(q) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(dashboard_data(&state, &auth.principal, id, &q.view()).await?))
}

/// The dashboard printed to PDF under the viewer's filters and permissions (A4 landscape, the web UI's
/// charts and every widget's table) by headless Chromium; 503 on a server without it.
#[utoipa::path(get, path = "/v1/dashboards/{id}/pdf", tag = "dashboards", params(("id" = uuid::Uuid, Path), DataQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn pdf(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<DashboardId>,
    query: Result<Query<DataQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let Some(renderer) = state.renderer.clone() else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, orbas_dashboards::report::NO_RENDERER));
    };
    let (name, bytes) = print_pdf(&state, &renderer, &auth.principal, id, &q.view()).await?;
    Ok(pdf_response(&name, bytes))
}

/// A PDF download named after dashboard `name`.
pub(crate) fn pdf_response(name: &str, bytes: Vec<u8>) -> Response {
    let mut resp = Response::new(axum::body::Body::from(bytes));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    let disposition = format!("attachment; filename=\"{}.pdf\"", file_stem(name));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    resp
}

/// Dashboard `id` as `p` sees it under `view`, printed: its name and the PDF.
pub(crate) async fn print_pdf(
    state: &AppState,
    renderer: &orbas_dashboards::render::Renderer,
    p: &Principal,
    id: DashboardId,
    view: &ViewFilters,
) -> Result<(String, Vec<u8>), Problem> {
    let (data, d, kpis) = board_data(state, p, id, view).await?;
    let mut tx = state.db.begin(p.tenant).await?;
    let currency = orbas_oltp::repo::identity::corporate_currency(tx.conn(), p.tenant).await?;
    tx.commit().await?;
    let subtitle = format!(
        "{} · printed {}",
        orbas_dashboards::report::period_of(&data.filters),
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let page = orbas_dashboards::web::PrintPage::of_dashboard(
        orbas_dashboards::web::PrintMode::Pdf,
        &d,
        &kpis,
        data.widgets.iter().map(|w| &w.data),
        &currency,
        subtitle,
    );
    let html = orbas_dashboards::web::render(&page)?;
    let bytes = renderer.pdf(&html).await.map_err(orbas_dashboards::Error::Print)?;
    Ok((d.name, bytes))
}

/// A file name from a dashboard's name: ASCII letters, digits, `-` and `_` only.
fn file_stem(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let s = s.trim_matches('_');
    if s.is_empty() { "dashboard".to_owned() } else { s.chars().take(64).collect() }
}

/// Every widget's data of dashboard `id` for `p` under `view` (shared by the JSON route and the web UI),
/// with the dashboard itself and its KPIs.
pub(crate) async fn dashboard_data(
    state: &AppState,
    p: &Principal,
    id: DashboardId,
    view: &ViewFilters,
) -> Result<DashboardData, Problem> {
    Ok(board_data(state, p, id, view).await?.0)
}

/// A dashboard's data, the dashboard and the KPIs its widgets use.
pub(crate) async fn board_data(
    state: &AppState,
    p: &Principal,
    id: DashboardId,
    view: &ViewFilters,
) -> Result<(DashboardData, StoredDashboard, BTreeMap<String, StoredKpi>), Problem> {
    board::check_view(view)?;
    let mut tx = state.db.begin(p.tenant).await?;
    let d = load_visible(tx.conn(), p, id).await?;
    let kpis = store::kpis_of(tx.conn(), &d).await?;
    tx.commit().await?;
    let Some(engine) = &state.dashboards else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "this server has no lake configured (ORBAS_LAKE)"));
    };
    let filters = board::effective(&d.filters, view, Utc::now().date_naive());
    let viewer = Viewer::new(p.clone());
    let shared = d.is_shared || d.default_for_role.is_some();
    // The widgets' queries run together (each awaits the lake's files in turn).
    let widgets = futures::future::join_all(d.widgets.iter().map(|w| {
        let kpi = w.spec.kpi.as_ref().and_then(|k| kpis.get(k)).map(|k| &k.definition);
        let (viewer, filters) = (&viewer, &filters);
        async move {
            let data = match kpi {
                Some(k) if shared && k.status != Status::Approved => WidgetData::unavailable(format!(
                    "the KPI {} was changed and awaits an admin's approval before it shows on a shared dashboard",
                    k.key
                )),
                _ => {
                    let sql = w.spec.sql.as_deref();
                    board::widget_data(engine, viewer, w.spec.kind, kpi, sql, &w.spec.config, filters).await
                }
            };
            WidgetResult { id: w.id, title: w.spec.title.clone(), kind: w.spec.kind, kpi: w.spec.kpi.clone(), data }
        }
    }))
    .await;
    Ok((DashboardData { id, filters, widgets }, d, kpis))
}

/// The dashboard the caller's role opens first (404 when the tenant has none for the role).
#[utoipa::path(get, path = "/v1/me/dashboard", tag = "dashboards", security(("bearer" = [])),
    responses((status = 200, body = StoredDashboard), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn mine(State(state): State<AppState>, auth: Authenticated) -> Result<Response, Problem> {
    let d = role_default(&state, &auth.principal).await?;
    Ok(with_etag(StatusCode::OK, &d))
}

/// The dashboard `p`'s role opens first (404 when the tenant has none for the role).
pub(crate) async fn role_default(state: &AppState, p: &Principal) -> Result<StoredDashboard, Problem> {
    let mut tx = state.db.begin(p.tenant).await?;
    let row = repo::default_for_role(tx.conn(), p.role.as_str()).await?.ok_or_else(not_found)?;
    let d = load_visible(tx.conn(), p, row.id).await?;
    tx.commit().await?;
    Ok(d)
}

/// An unsaved widget to preview.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub widget: WidgetSpec,
    /// The dashboard filters to preview under (default: none).
    #[serde(default)]
    pub filters: DashboardFilters,
}

/// Compute a widget that is not saved yet (the editor's live preview).
#[utoipa::path(post, path = "/v1/widgets/preview", tag = "dashboards", request_body = PreviewRequest,
    security(("bearer" = [])),
    responses((status = 200, body = WidgetData), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn preview(
    State(state): State<AppState>,
    auth: Authenticated,
    Body(req): Body<PreviewRequest>,
) -> Result<Json<WidgetData>, Problem> {
    Ok(Json(preview_widget(&state, &auth.principal, &req).await?))
}

/// Computes an unsaved widget for `p` (the JSON route's and the web editor's live preview).
pub(crate) async fn preview_widget(
    state: &AppState,
    p: &Principal,
    req: &PreviewRequest,
) -> Result<WidgetData, Problem> {
    if p.scope_for(RESOURCE, Action::Read).is_none() || p.scope_for("kpi_definitions", Action::Read).is_none() {
        return Err(forbidden("read dashboards"));
    }
    if req.widget.sql.is_some() && !may_query_lake(p) {
        return Err(forbidden("run SQL over the lake"));
    }
    let mut tx = state.db.begin(p.tenant).await?;
    store::checked_widget(tx.conn(), &req.widget).await?;
    let kpi = match &req.widget.kpi {
        Some(k) => Some(catalog::get(tx.conn(), k).await?),
        None => None,
    };
    tx.commit().await?;
    let Some(engine) = &state.dashboards else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "this server has no lake configured (ORBAS_LAKE)"));
    };
    let filters = board::effective(&req.filters, &ViewFilters::default(), Utc::now().date_naive());
    let w = &req.widget;
    let viewer = Viewer::new(p.clone());
    let kpi = kpi.as_ref().map(|k| &k.definition);
    Ok(board::widget_data(engine, &viewer, w.kind, kpi, w.sql.as_deref(), &w.config, &filters).await)
}
