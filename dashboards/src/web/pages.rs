//! The pages: one askama template each, all extending `base.html`.

use askama::Template;

use super::boards::{TableView, WidgetView};
use super::views::{Field, HitView, RecView, ScoreView, TimelineRow};

/// Which navigation entry is the current page (`aria-current="page"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nav {
    #[default]
    None,
    Inbox,
    Search,
    Dashboards,
    Sql,
    Status,
}

/// What every page's frame needs.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub title: String,
    /// The signed-in user's e-mail; `None` on the login and error pages of anonymous visitors.
    pub user: Option<String>,
    pub nav: Nav,
    /// The global search box's current text.
    pub query: String,
    /// Load the chart library (pages with charts only).
    pub charts: bool,
    /// The user may query the lake (the SQL page is in the menu).
    pub sql: bool,
}

impl Layout {
    pub fn new(title: impl Into<String>, user: Option<String>, nav: Nav) -> Self {
        Layout { title: title.into(), user, nav, ..Layout::default() }
    }

    pub fn assets(&self) -> &'static str {
        super::asset_prefix()
    }

    pub fn is_inbox(&self) -> bool {
        self.nav == Nav::Inbox
    }

    pub fn is_search(&self) -> bool {
        self.nav == Nav::Search
    }

    pub fn is_sql(&self) -> bool {
        self.nav == Nav::Sql
    }

    pub fn is_status(&self) -> bool {
        self.nav == Nav::Status
    }

    pub fn is_dashboards(&self) -> bool {
        self.nav == Nav::Dashboards
    }
}

#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub tenant: String,
    pub email: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Where to go after logging in (already checked to be a local UI path).
    pub next: String,
}

#[derive(Debug, Template)]
#[template(path = "inbox.html")]
pub struct InboxPage {
    pub layout: Layout,
    pub items: Vec<RecView>,
    /// What the last action did (`role="status"`).
    pub notice: Option<String>,
    /// Why the last action failed (`role="alert"`).
    pub error: Option<String>,
}

/// An account's or an opportunity's page.
#[derive(Debug, Template)]
#[template(path = "record.html")]
pub struct RecordPage {
    pub layout: Layout,
    /// "Account" or "Opportunity".
    pub kind: &'static str,
    pub name: String,
    pub fields: Vec<Field>,
    pub timeline_title: &'static str,
    pub timeline: Vec<TimelineRow>,
    /// `None`: the caller's role may not read model scores.
    pub scores: Option<Vec<ScoreView>>,
    /// `None`: the caller's role has no recommendations.
    pub recommendations: Option<Vec<RecView>>,
}

/// The SQL page: a query over the lake as the analyst's tools send it (`POST /v1/sql`), and its result.
#[derive(Debug, Template)]
#[template(path = "sql.html")]
pub struct SqlPage {
    pub layout: Layout,
    /// The query as typed.
    pub sql: String,
    /// The result, when a query ran.
    pub table: Option<super::boards::TableView>,
    /// Rows the query returned (more than the table shows when truncated).
    pub row_count: usize,
    pub elapsed_ms: u64,
    /// Why the query did not run.
    pub error: Option<String>,
}

impl SqlPage {
    /// The result's caption (the table is labelled by it).
    pub fn caption(&self) -> String {
        let rows = if self.row_count == 1 { "1 row".to_owned() } else { format!("{} rows", self.row_count) };
        format!("{rows} in {} ms", self.elapsed_ms)
    }

    /// The most rows a result shows.
    pub fn max_rows(&self) -> usize {
        crate::engine::MAX_ROWS
    }
}

/// The status page: each part of the loop with its health, what needs attention and its figures.
#[derive(Debug, Template)]
#[template(path = "status.html")]
pub struct StatusPage {
    pub layout: Layout,
    /// `ok`, `degraded` or `down`: the worst part's.
    pub health: &'static str,
    /// When the figures were read, as shown.
    pub checked_at: String,
    pub parts: Vec<StatusPart>,
}

/// One part of the status page.
#[derive(Debug, Clone)]
pub struct StatusPart {
    /// The section's id (`database`, `lake`, …) and heading.
    pub id: &'static str,
    pub name: &'static str,
    /// `ok`, `off`, `degraded` or `down`.
    pub health: &'static str,
    pub notes: Vec<String>,
    /// Label and value, in order.
    pub figures: Vec<(String, String)>,
    /// A table below the figures (slots, models): header and rows.
    pub table: Option<(Vec<String>, Vec<Vec<String>>)>,
}

impl StatusPart {
    /// The health as read aloud and shown next to the heading.
    pub fn health_label(&self) -> &'static str {
        health_label(self.health)
    }
}

impl StatusPage {
    pub fn health_label(&self) -> &'static str {
        health_label(self.health)
    }
}

fn health_label(health: &str) -> &'static str {
    match health {
        "ok" => "Working",
        "off" => "Not configured",
        "degraded" => "Needs attention",
        _ => "Down",
    }
}

#[derive(Debug, Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub layout: Layout,
    pub hits: Vec<HitView>,
    /// Why there are no results to show (no index, an invalid query).
    pub message: Option<String>,
}

/// A dashboard in the list.
#[derive(Debug, Clone)]
pub struct BoardLink {
    pub href: String,
    pub name: String,
    pub description: String,
    /// "Default for sales managers", "Shared", "Yours".
    pub badge: String,
}

#[derive(Debug, Template)]
#[template(path = "dashboards.html")]
pub struct DashboardsPage {
    pub layout: Layout,
    pub boards: Vec<BoardLink>,
}

/// The global filters as the form shows them (dates `YYYY-MM-DD`, lists comma-separated).
#[derive(Debug, Clone, Default)]
pub struct FilterForm {
    pub from: String,
    pub until: String,
    pub territory: String,
    pub owner: String,
    pub segment: String,
}

/// One dashboard with its widgets' data.
#[derive(Debug, Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub layout: Layout,
    pub id: String,
    pub name: String,
    pub description: String,
    pub filters: FilterForm,
    pub widgets: Vec<WidgetView>,
    /// The charts' data (`script_json`), read by `app.js`.
    pub data_json: String,
    /// The caller may add widgets (link to the editor).
    pub can_edit: bool,
    pub notice: Option<String>,
    /// The PDF of the dashboard under the same filters (`None`: the server cannot print).
    pub pdf_href: Option<String>,
}

/// The records behind one value of a widget.
#[derive(Debug, Template)]
#[template(path = "drill.html")]
pub struct DrillPage {
    pub layout: Layout,
    pub board_href: String,
    pub board_name: String,
    pub widget_title: String,
    /// What was drilled into, in words ("period 2026-03, owner …").
    pub selection: Vec<String>,
    pub table: Option<TableView>,
    /// Why there are no records to show.
    pub message: Option<String>,
}

/// An option of a select.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>, current: &str) -> Self {
        let value = value.into();
        let selected = value == current;
        Choice { value, label: label.into(), selected }
    }
}

/// The add-a-widget form's values.
#[derive(Debug, Clone, Default)]
pub struct WidgetForm {
    pub source: String,
    pub title: String,
    pub sql: String,
    pub group_by: String,
    pub w: i16,
    pub h: i16,
}

/// The dashboard editor: add a widget from a KPI or from SQL, with a live preview.
#[derive(Debug, Template)]
#[template(path = "editor.html")]
pub struct EditorPage {
    pub layout: Layout,
    pub id: String,
    pub board_name: String,
    pub kpis: Vec<Choice>,
    pub kinds: Vec<Choice>,
    pub grains: Vec<Choice>,
    /// The caller may write SQL widgets (queries the lake).
    pub may_sql: bool,
    pub form: WidgetForm,
    /// Why the last save failed (`role="alert"`).
    pub error: Option<String>,
}

#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub detail: String,
}

/// Renders a page.
pub fn render(page: &impl Template) -> crate::Result<String> {
    page.render().map_err(crate::Error::Render)
}
