//! # orbas-warehouse — the lakehouse
//!
//! Turns the change stream into Delta Lake tables any engine reads, and serves SQL over them:
//!
//! - [`schema`]: a CRM table's lake layout — Postgres types (with modifiers) → Arrow/Delta types, the
//!   primary key, the bookkeeping columns of bronze and silver.
//! - [`convert`]: Debezium change events → Arrow record batches.
//! - [`lake`]: the Delta tables of one CRM table — bronze appends, silver merges, truncates, each
//!   commit carrying the Kafka positions it covers (`txn` actions) so replays are no-ops.
//! - [`gold`]: the KPI tables (bookings, pipeline, win rate, sales cycle, MRR, ticket SLA), computed
//!   from silver in each tenant's currency and fiscal calendar, refreshed per tenant after each batch.
//! - [`maintain`]: `orbas lake …` — optimize (sorted by tenant), vacuum, checkpoints, GDPR erasure.
//! - [`sink`]: `orbas pipeline sink`, the Kafka consumer that drives them, exactly once.
//! - [`tenant`]: tenant isolation inside the engine — a table wrapper that filters every scan.
//! - [`sql`]: a tenant's read-only DataFusion session over the silver and gold tables, with time and memory
//!   limits (served over HTTP by the API).
//! - [`wire`]: the SQL port — the same sessions over the Postgres wire protocol, SCRAM-authenticated
//!   against an [`wire::AuthSource`] the API implements.
//!
//! Depends on the change-event contract of `orbas-pipeline` (topics, envelope), the SCRAM exchange of
//! `orbas-oltp`, and nothing downstream.

pub mod convert;
pub mod error;
pub mod gold;
pub mod lake;
pub mod maintain;
pub mod schema;
pub mod sink;
pub mod sql;
pub mod tenant;
pub mod wire;

pub use error::{Error, Result};
