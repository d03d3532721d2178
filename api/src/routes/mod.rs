//! HTTP routes under `/v1`, one module per area.

pub mod accounts;
pub mod alerts;
pub mod assistant;
pub mod auth;
pub mod catalog;
pub mod commerce;
pub mod contacts;
pub mod content;
pub mod dashboards;
pub mod dedupe;
pub mod employees;
pub mod interactions;
pub mod kpis;
pub mod leads;
pub mod opportunities;
pub mod recommendations;
pub mod reports;
pub mod scores;
pub mod search;
pub mod sql;
pub mod status;
pub mod tasks;
pub mod tickets;
pub mod users;
pub mod workflows;
