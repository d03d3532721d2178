//! Integration tests of the operational core against a real Postgres (one private cluster per test
//! process, a fresh database per test — see `orbas-testkit`). One test binary keeps link time down.

mod auth;
mod identity;
mod migrations;
mod repos;
mod rls;
mod seed;
