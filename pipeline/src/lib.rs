//! # orbas-pipeline — the change stream
//!
//! Postgres logical replication → Kafka, Debezium-compatible. Modules, in the order data flows:
//!
//! - [`replication`]: a client for the streaming replication protocol (slot creation with an exported
//!   snapshot, `START_REPLICATION`, keepalives, standby status updates);
//! - [`pgoutput`]: the decoder of the `pgoutput` messages the slot streams;
//! - [`value`] and [`copy_text`]: Postgres text output (from pgoutput and from `COPY`) → JSON, the way
//!   Debezium maps each type;
//! - [`catalog`]: the publication's tables, their columns and keys; the snapshot bookkeeping row;
//! - [`encode`]: the change-event envelope, keys and the optional Kafka Connect schema wrapping, written
//!   straight from decoded tuples;
//! - [`event`]: the contract itself as types (what consumers deserialize);
//! - [`kafka`]: the idempotent producer and the acknowledgement tracker that alone moves the slot;
//! - [`snapshot`]: the parallel initial copy inside the exported snapshot;
//! - [`resnapshot`]: re-snapshots of single tables while streaming, chunk by chunk between watermarks;
//! - [`cdc`]: the service that ties them together (`orbas pipeline cdc`);
//! - [`broker`]: a local Kafka-protocol broker (tansu) for the demo and the tests.
//!
//! Invariant: the stream never knows its consumers — this crate depends on no downstream crate.

pub mod broker;
pub mod catalog;
pub mod cdc;
pub mod copy_text;
pub mod encode;
pub mod error;
pub mod event;
pub mod kafka;
pub mod lsn;
pub mod pgoutput;
pub mod replication;
pub mod resnapshot;
pub mod snapshot;
pub mod value;

pub use error::{Error, Result};
pub use lsn::Lsn;
