//! # orbas-dashboards — KPIs, dashboards, reports
//!
//! Owns (issue #8) the KPI semantic layer over the lake, dashboards and their data, the vendored chart
//! asset, and the scheduler that mails reports and alerts. So far:
//! - [`kpi`]: KPI definitions (measure, source, time, grain, dimensions), their compilation into one
//!   SQL query per dashboard request, and their YAML form;
//! - [`standard`]: the standard CRM KPI set every tenant starts with;
//! - [`catalog`]: the tenant's KPIs as stored (`kpi_definitions`) and the review state;
//! - [`board`]: dashboards — global filters, widgets (KPI or SQL, chart kind, grid place), their checks
//!   and their data for a viewer's filters;
//! - [`store`]: dashboards as stored, and the default dashboard of each role;
//! - [`engine`]: runs the queries on one lake snapshot, with a cache dropped whenever the lake commits;
//! - [`viewer`]: what of the lake a person sees (the permission matrix applied to lake tables);
//! - [`report`]: scheduled reports — schedules, one recipient's copy in HTML (charts inline), PDF, CSV or
//!   XLSX, the mailer;
//! - [`render`]: headless Chromium printing a dashboard to PDF and its charts to PNG images;
//! - [`alerts`]: threshold alerts on KPIs — goals from data, checked per recipient, de-duplicated,
//!   mailed as digests;
//! - [`scheduler`]: the sender that claims due runs and mails every recipient's copy, and checks alerts.
//! - [`web`]: the web UI's templates, view models and static assets (the HTTP side is `orbas-api`).

pub mod alerts;
pub mod board;
pub mod catalog;
pub mod engine;
mod error;
pub mod kpi;
pub mod render;
pub mod report;
pub mod scheduler;
pub mod standard;
pub mod store;
pub mod viewer;
pub mod web;

pub use error::{Error, FieldError, Result};
pub use kpi::{Aggregation, Compiled, Dimension, Direction, Grain, KpiDefinition, KpiQuery, Status, Unit};
