//! # orbas-api — the composition root
//!
//! The CRM's HTTP API and the `orbas` binary's subcommands. This crate only wires the stages together:
//! settings in, services built, run until stopped. Domain rules live upstream (`orbas-oltp` first).

pub mod cli;
pub mod commands;
pub mod extract;
pub mod idempotency;
pub mod observe;
pub mod openapi;
pub mod problem;
pub mod ratelimit;
pub mod resource;
pub mod routes;
pub mod server;
pub mod settings;
pub mod sql_port;
pub mod state;
pub mod telemetry;
pub mod tenant_llm;
pub mod web;
