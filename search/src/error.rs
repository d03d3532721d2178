//! The search stage's errors: one enum, each variant with its context; [`Error::is_client_error`]
//! tells the API which ones the caller can fix (4xx) from those that are ours (5xx).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The full-text index could not be opened, written or searched.
    #[error("search index in {dir}: {what}")]
    Index {
        dir: PathBuf,
        what: &'static str,
        #[source]
        source: tantivy::TantivyError,
    },
    /// The index directory could not be created or opened.
    #[error("search index directory {dir}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The checkpoint stored in the index's commit payload is not one this version wrote.
    #[error("search index in {dir}: unreadable checkpoint in the commit payload")]
    Checkpoint {
        dir: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The directory holds an index of an older layout, which a read-only follower cannot replace.
    #[error(
        "search index in {dir} has an older layout; the indexer (`orbas search index`, `orbas demo`) replaces it \
         on start, or run `orbas search rebuild`"
    )]
    Outdated { dir: PathBuf },
    /// Semantic or hybrid search was asked for but no embedding model is loaded.
    #[error(
        "semantic search is unavailable: no sentence-embedding model is loaded (run scripts/setup.sh or \
         point ORBAS_MODELS / --model-dir at all-MiniLM-L6-v2); mode=keyword still works"
    )]
    SemanticUnavailable,
    /// The embedder failed on a text.
    #[error("embedding")]
    Embed(#[source] orbas_models::Error),
    /// The assistant's language model failed (timeout, rate limit, auth, malformed answer, …).
    #[error("assistant language model")]
    Llm(#[source] orbas_models::Error),
    /// A query the caller can fix (empty text, a limit out of range, …).
    #[error("{0}")]
    Invalid(String),
    /// The Kafka client failed.
    #[error("Kafka")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A message on a CDC topic is not a change event of the contract.
    #[error("change event at {topic}/{partition}@{offset}")]
    Event {
        topic: String,
        partition: i32,
        offset: i64,
        #[source]
        source: serde_json::Error,
    },
    /// The broker no longer holds the offset the index continues from.
    #[error("{topic}/{partition}: the index continues from offset {next} but {why}; run `orbas search rebuild`")]
    OffsetsWentBack { topic: String, partition: i32, next: i64, why: String },
    /// A write on an index opened read-only (a follower).
    #[error("the search index is open read-only")]
    ReadOnly,
    /// A lock was poisoned by a panic in another thread; the index must be reopened.
    #[error("the {0} lock is poisoned (a thread panicked while holding it); reopen the index")]
    Poisoned(&'static str),
    /// A blocking task (index commit, embedding) panicked or was cancelled.
    #[error("background task")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// Whether the caller can fix it (the API answers 4xx), as opposed to a failure on our side.
    pub fn is_client_error(&self) -> bool {
        matches!(self, Error::Invalid(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
