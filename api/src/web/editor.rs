//! The dashboard editor: a form that adds a widget from a KPI (approved or draft) or from SQL (roles
//! that may query the lake), with a live preview. The preview (`POST /ui/widgets/preview`, the form
//! posted by `app.js`) and the save (`POST /ui/dashboards/{id}/widgets`, a plain form) run the same
//! functions — and checks, and audit row — as `POST /v1/widgets/preview` and
//! `POST /v1/dashboards/{id}/widgets`. Both are same-origin checked like every UI write.

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use orbas_dashboards::board::{WidgetKind, WidgetSpec};
use orbas_dashboards::web::{Choice, EditorPage, Nav, WidgetForm, WidgetView};
use orbas_dashboards::{Status, catalog};
use orbas_oltp::auth::Principal;
use orbas_oltp::model::{Action, DashboardId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::UiUser;
use super::{HtmlError, PathId, page};
use crate::problem::Problem;
use crate::resource::WriteContext;
use crate::routes::dashboards::{self, PreviewRequest};
use crate::state::AppState;

const KINDS: [(&str, &str); 8] = [
    ("tile", "Tile (one number)"),
    ("line", "Line"),
    ("bar", "Bar"),
    ("stacked_bar", "Stacked bar"),
    ("funnel", "Funnel"),
    ("pie", "Pie"),
    ("heatmap", "Heat map"),
    ("table", "Table"),
];

const GRAINS: [(&str, &str); 8] = [
    ("", "The KPI's own"),
    ("day", "Day"),
    ("week", "Week"),
    ("month", "Month"),
    ("quarter", "Quarter"),
    ("fiscal_quarter", "Fiscal quarter"),
    ("year", "Year"),
    ("total", "Total"),
];

/// The add-a-widget form as posted.
#[derive(Debug, Default, Deserialize)]
pub(super) struct WidgetIn {
    /// The dashboard (the preview uses its filters).
    dashboard: Option<String>,
    /// `kpi` or `sql`.
    #[serde(default)]
    source: String,
    kpi: Option<String>,
    sql: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    group_by: String,
    grain: Option<String>,
    w: Option<i16>,
    h: Option<i16>,
}

impl WidgetIn {
    /// The widget this form describes, placed at row `y`; a field the form got wrong is a 422 naming it.
    fn spec(&self, y: i16) -> Result<WidgetSpec, Problem> {
        let bad = |field: &str, why: &str| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{field}: {why}")).with_field(field, why)
        };
        let kind = WidgetKind::parse(&self.kind).ok_or_else(|| bad("kind", "choose a chart kind"))?;
        let text = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let (kpi, sql) = if self.source == "sql" { (None, text(&self.sql)) } else { (text(&self.kpi), None) };
        if kpi.is_none() && sql.is_none() {
            return Err(bad(if self.source == "sql" { "sql" } else { "kpi" }, "choose a KPI or write a query"));
        }
        let group_by: Vec<&str> = self.group_by.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let mut config = json!({ "group_by": group_by });
        if let Some(g) = text(&self.grain) {
            config["grain"] = Value::String(g);
        }
        let title = if self.title.trim().is_empty() { "Untitled".to_owned() } else { self.title.trim().to_owned() };
        let spec = json!({
            "kpi": kpi, "sql": sql, "kind": kind, "title": title, "config": config,
            "x": 0, "y": y, "w": self.w.unwrap_or(4), "h": self.h.unwrap_or(3),
        });
        serde_json::from_value(spec).map_err(|e| bad("grain", &e.to_string()))
    }

    fn form(&self) -> WidgetForm {
        WidgetForm {
            source: self.source.clone(),
            title: self.title.clone(),
            sql: self.sql.clone().unwrap_or_default(),
            group_by: self.group_by.clone(),
            w: self.w.unwrap_or(4),
            h: self.h.unwrap_or(3),
        }
    }
}

fn form_error(e: FormRejection) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, e.body_text())
}

/// The row below the dashboard's last widget.
fn next_row(d: &orbas_dashboards::store::StoredDashboard) -> i16 {
    d.widgets.iter().map(|w| w.spec.y.saturating_add(w.spec.h)).max().unwrap_or(0)
}

/// The dashboard, if `p` may change it (the editor's checks; the save repeats them).
async fn changeable(
    state: &AppState,
    p: &Principal,
    id: DashboardId,
) -> Result<orbas_dashboards::store::StoredDashboard, Problem> {
    let mut tx = state.db.begin(p.tenant).await?;
    let d = dashboards::load_visible(tx.conn(), p, id).await?;
    tx.commit().await?;
    if !p.may("dashboards", Action::Update, d.owner_id) {
        return Err(Problem::new(StatusCode::FORBIDDEN, "your role may not change this dashboard"));
    }
    Ok(d)
}

async fn editor_page(
    state: &AppState,
    user: &UiUser,
    id: DashboardId,
    form: &WidgetIn,
    error: Option<String>,
) -> Result<Response, HtmlError> {
    let p = &user.auth.principal;
    let d = changeable(state, p, id).await?;
    let mut tx = state.db.begin(p.tenant).await?;
    let all = catalog::list(tx.conn()).await.map_err(Problem::from)?;
    tx.commit().await?;
    let current_kpi = form.kpi.clone().unwrap_or_default();
    let kpis = all
        .iter()
        .map(|k| {
            let d = &k.definition;
            let label = if d.status == Status::Approved { d.name.clone() } else { format!("{} (draft)", d.name) };
            Choice::new(d.key.clone(), label, &current_kpi)
        })
        .collect();
    let kind = if form.kind.is_empty() { "bar" } else { form.kind.as_str() };
    let grain = form.grain.clone().unwrap_or_default();
    let mut layout = user.layout(format!("Add a widget to {}", d.name), Nav::Dashboards);
    layout.charts = true;
    page(&EditorPage {
        layout,
        id: id.0.to_string(),
        board_name: d.name,
        kpis,
        kinds: KINDS.iter().map(|(v, l)| Choice::new(*v, *l, kind)).collect(),
        grains: GRAINS.iter().map(|(v, l)| Choice::new(*v, *l, &grain)).collect(),
        may_sql: dashboards::may_query_lake(p),
        form: form.form(),
        error,
    })
}

/// `GET /ui/dashboards/{id}/edit`.
pub(super) async fn edit(
    State(state): State<AppState>,
    user: UiUser,
    PathId(id): PathId,
) -> Result<Response, HtmlError> {
    editor_page(&state, &user, DashboardId(id), &WidgetIn::default(), None).await
}

/// `POST /ui/dashboards/{id}/widgets`: adds the widget, then shows the dashboard; a widget the user can
/// fix (an unknown dimension, SQL that does not plan) shows the form again with why (422).
pub(super) async fn save(
    State(state): State<AppState>,
    user: UiUser,
    ctx: WriteContext,
    PathId(id): PathId,
    form: Result<Form<WidgetIn>, FormRejection>,
) -> Result<Response, HtmlError> {
    let Form(form) = form.map_err(form_error)?;
    let id = DashboardId(id);
    let d = changeable(&state, &user.auth.principal, id).await?;
    let added = match form.spec(next_row(&d)) {
        Ok(spec) => dashboards::add_widget_to(&state, &user.auth, &ctx, id, spec).await,
        Err(p) => Err(p),
    };
    match added {
        Ok(w) => {
            tracing::info!(dashboard = %id.0, widget = %w.id.0, "widget added from the web editor");
            Ok(Redirect::to(&format!("/ui/dashboards/{}?added={}#widget-{}", id.0, w.id.0, w.id.0)).into_response())
        }
        Err(p) if p.status == 422 => {
            let why = p.errors.first().map_or_else(|| p.detail.clone().unwrap_or_default(), |e| e.message.clone());
            let mut resp =
                editor_page(&state, &user, id, &form, Some(format!("The widget was not saved: {why}"))).await?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
        Err(p) => Err(p.into()),
    }
}

/// `POST /ui/widgets/preview` (the editor's form): the unsaved widget's data under its dashboard's
/// filters, as JSON the editor's script draws — `{error}` or `{tile}` / `{table, chart}`.
pub(super) async fn preview(
    State(state): State<AppState>,
    user: UiUser,
    form: Result<Form<WidgetIn>, FormRejection>,
) -> Response {
    let answer = async {
        let Form(form) = form.map_err(form_error)?;
        let p = &user.auth.principal;
        let board = form.dashboard.as_deref().and_then(|d| uuid::Uuid::parse_str(d).ok());
        let filters = match board {
            Some(b) => {
                let mut tx = state.db.begin(p.tenant).await?;
                let d = dashboards::load_visible(tx.conn(), p, DashboardId(b)).await?;
                tx.commit().await?;
                d.filters
            }
            None => Default::default(),
        };
        let spec = form.spec(0)?;
        let req = PreviewRequest { widget: spec, filters };
        let data = dashboards::preview_widget(&state, p, &req).await?;
        let mut tx = state.db.begin(p.tenant).await?;
        let kpi = match &req.widget.kpi {
            Some(k) => Some(catalog::get(tx.conn(), k).await.map_err(Problem::from)?),
            None => None,
        };
        let currency = orbas_oltp::repo::identity::corporate_currency(tx.conn(), p.tenant).await?;
        tx.commit().await?;
        let labels = super::dashboards::user_labels(&state, p, data.table.iter()).await?;
        let kpi = kpi.as_ref().map(|k| &k.definition);
        let (view, chart) = WidgetView::new("preview", &req.widget, kpi, &data, &currency, None, &labels);
        Ok::<_, Problem>(preview_json(&view, chart))
    };
    match answer.await {
        Ok(v) => Json(v).into_response(),
        Err(p) => {
            let why = p.errors.first().map_or_else(|| p.detail.clone().unwrap_or_default(), |e| e.message.clone());
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let why =
                if status.is_server_error() { "the preview cannot be computed right now".to_owned() } else { why };
            (status, Json(json!({ "error": why }))).into_response()
        }
    }
}

fn preview_json(v: &WidgetView, chart: Option<Value>) -> Value {
    let tile = v.tile.as_ref().map(|t| json!({"value": t.value, "delta": t.delta, "tone": t.tone}));
    let table = v.table.as_ref().map(|t| {
        let rows: Vec<Vec<&str>> = t.rows.iter().map(|r| r.cells.iter().map(|c| c.text.as_str()).collect()).collect();
        json!({"columns": t.columns, "rows": rows})
    });
    json!({"title": v.title, "kind": v.kind, "error": v.error, "note": v.note, "tile": tile, "table": table, "chart": chart})
}
