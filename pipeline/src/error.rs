//! The change stream's errors.

use crate::lsn::Lsn;
use crate::pgoutput::DecodeError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad connection URL: {0}")]
    Url(String),
    #[error("I/O on the replication connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("replication protocol: {0}")]
    Protocol(String),
    #[error("Postgres: {message} (SQLSTATE {code})")]
    Server { code: String, message: String },
    #[error("authentication: {0}")]
    Auth(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("SQL: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("a blocking Kafka call did not finish: {0}")]
    Blocking(#[from] tokio::task::JoinError),
    #[error("Kafka refused an event after all retries ({0}); stopping so nothing is skipped")]
    Delivery(String),
    #[error(
        "replication slot {slot:?} is gone or invalidated ({why}); the stream cannot resume without a gap. \
         Re-create it with `orbas pipeline resnapshot --all` once consumers are ready for a new snapshot"
    )]
    SlotLost { slot: String, why: String },
    #[error("relation {0} is unknown: the stream sent a change before its Relation message")]
    UnknownRelation(u32),
    #[error("configuration: {0}")]
    Config(String),
    #[error("snapshot of {table}: {why}")]
    Snapshot { table: String, why: String },
    #[error("the replication stream ended at {0}")]
    StreamEnded(Lsn),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
