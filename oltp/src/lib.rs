//! # orbas-oltp — the operational CRM core
//!
//! Owns everything that reads or writes the CRM tables in Postgres:
//!
//! * [`model`] — domain types without I/O: id newtypes, money, enums mirroring the schema's CHECK
//!   constraints.
//! * [`db`] — connection pools, the embedded migrations, and [`db::TenantTx`], the tenant-scoped
//!   transaction every repository call runs in (row-level security backs it; no tenant → error).
//! * [`repo`] — repositories for the core entities.
//! * [`auth`] — identity primitives: argon2id passwords, SCRAM-SHA-256 verifiers and the server side
//!   of the exchange, API keys and tokens, JWT access tokens, login throttling, and the [`auth::Principal`]
//!   with its own/team/all permission check (asked by the API, the SQL port, search and reports).
//! * [`cluster`] — a launcher for a private Postgres cluster built from the system binaries, used by
//!   `orbas demo` when no `DATABASE_URL` is given and wrapped by the dev-only `testkit` for tests.
//! * [`secrets`] — secrets sealed at rest (AES-256-GCM under the server's secrets key, bound to
//!   their tenant and purpose), e.g. a tenant's language-model API key.
//! * [`seed`] — the deterministic synthetic CRM data generator behind `orbas seed`.
//!
//! Invariant: reads and writes of CRM tables go through this crate (the CDC reader in `pipeline` is the
//! one other Postgres client, and it only reads the replication stream).

pub mod auth;
pub mod cluster;
pub mod db;
mod error;
pub mod model;
pub mod repo;
pub mod secrets;
pub mod seed;

pub use error::{Chain, Error, ErrorKind, Result};
