//! # orbas-warehouse — the lakehouse
//!
//! Will own (issue #5): the Kafka → Delta Lake sink (idempotent batches via Delta `txn` actions),
//! the Delta tables of Parquet files, the DataFusion session with a tenant-restricted catalog, and
//! SQL over HTTP and the Postgres wire protocol for data teams' own tools.
//!
//! Depends only on the change-event contract of `orbas-pipeline`.
