//! # orbas-pipeline — the change stream
//!
//! Owns (issue #4, in progress): the logical-replication reader that decodes `pgoutput` from the `orbas_cdc`
//! publication, the change-event contract (module `event`, Debezium-compatible envelope, one topic per
//! table, keyed by the primary key), and the Kafka producer with at-least-once delivery whose
//! confirmed LSN only advances after the broker acknowledged every event up to it.
//!
//! Invariant: the stream never knows its consumers — this crate depends on no downstream crate.

pub mod event;
