//! Black-box tests of the `orbas` binary: the real executable, real Postgres clusters.

mod accounts;
mod auth;
mod cli;
mod helpers;
mod openapi;
mod opportunities;
mod ops;
mod recommendations;
mod resources;
