//! # orbas-dashboards — KPIs, dashboards, reports
//!
//! Will own (issue #8): the KPI semantic layer over the lake, dashboard specs and their rendering,
//! the vendored chart asset, and the scheduler that mails reports and alerts.
