//! The web UI's presentation layer: askama templates (compiled into the binary), their view models
//! built from the CRM's records, and the static assets (own CSS and JS, vendored Apache ECharts).
//!
//! The HTTP side — sessions, permissions, which repository to call — lives in `orbas-api`; this module
//! only turns data into HTML. Invariants: every page extends `base.html` (skip link, landmarks, the
//! global search box, labelled controls); values are escaped by askama, the only unescaped text is a
//! search snippet, which the search crate escapes itself; asset URLs carry a content version, so they
//! can be cached for a year.

mod assets;
mod boards;
mod pages;
mod print;
mod views;

pub use askama::Template;
pub use assets::{Asset, asset, asset_prefix, asset_version};
pub use boards::{
    CellView, DrillBase, Labels, RowView, TableView, TileView, USER_COLUMNS, WidgetView, format_value, script_json,
};
pub use pages::{
    BoardLink, Choice, DashboardPage, DashboardsPage, DrillPage, EditorPage, ErrorPage, FilterForm, InboxPage, Layout,
    LoginPage, Nav, RecordPage, SearchPage, SqlPage, StatusPage, StatusPart, WidgetForm, render,
};
pub use print::{PrintMode, PrintPage};
pub use views::{Factor, Field, HitView, RecView, ScoreView, TimelineRow, account_fields, opportunity_fields};
