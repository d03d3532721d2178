//! # orbas-search — search over the CRM
//!
//! Owns (issue #7) the full-text and vector search of every tenant's records:
//! - [`document`]: what a CRM row (accounts, contacts, leads, opportunities, tickets and their
//!   messages, knowledge articles, documents and the extracted text of their versions, employees)
//!   becomes in the index;
//! - `schema`: the tantivy fields, their analysis and weights (title > names/e-mail > body);
//! - [`index`]: the tantivy index of a data directory, written in batches whose commits carry the
//!   Kafka positions and applied LSN (resume without loss or duplicates);
//! - `terms`: expansion of a word into the tenant's terms (completions, typo corrections);
//! - `query`: BM25 with typo tolerance, prefix search-as-you-type, facets and highlighted snippets;
//! - [`vector`]: the HNSW graph over the documents' sentence embeddings (from `orbas_models`), saved
//!   beside the index and caught up from it on open;
//! - [`hybrid`]: reciprocal rank fusion and the query modes;
//! - [`visibility`]: tenant and read-scope filters from `orbas_oltp`'s permission matrix, applied
//!   inside both searches, before ranking;
//! - [`indexer`]: the consumer of the CDC topics that keeps the index current.
//!
//! - [`assistant`]: the RAG assistant — retrieval through the same filtered index, a prompt that
//!   keeps record text as delimited untrusted data, citations, and an extractive fallback without a
//!   language model (the client is `orbas_models::llm`).

pub mod assistant;
pub mod document;
mod error;
pub mod hybrid;
pub mod index;
pub mod indexer;
mod query;
mod schema;
mod terms;
pub mod vector;
pub mod visibility;

pub use assistant::{AnswerMode, AnswerStream, Assistant, AssistantAnswer, AssistantEvent, Citation, Tokens};
pub use document::{DocType, SearchDoc};
pub use error::{Error, Result};
pub use hybrid::Mode;
pub use index::{Access, Checkpoint, SearchIndex, VectorStats};
pub use indexer::{IndexerConfig, IndexerStats};
pub use query::{Hit, MAX_LIMIT, SearchRequest, SearchResults};
pub use schema::FACETS;
pub use visibility::{Reach, Visibility};
