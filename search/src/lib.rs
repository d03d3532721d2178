//! # orbas-search — search and assistant
//!
//! Will own (issue #7): the tantivy full-text index and the vector index, both fed by the change
//! stream and filtered by tenant inside every query, the hybrid query, and the RAG assistant.
