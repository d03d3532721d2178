//! Black-box tests of the `orbas` binary: the real executable, real Postgres clusters.

mod accounts;
mod alerts;
mod assistant;
mod auth;
mod cdc_crash;
mod cli;
mod commerce;
mod dedupe;
mod helpers;
mod identity;
mod kpis;
mod lists;
mod next_best_actions;
mod openapi;
mod opportunities;
mod ops;
mod recommendations;
mod reports;
mod resources;
mod schemathesis;
mod search;
mod sink_crash;
mod sql;
mod sql_port;
mod ui;
mod workflows;
