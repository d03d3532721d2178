//! # orbas-models — intelligence
//!
//! Owns (issue #6) everything learned from the lake: point-in-time [`features`] of leads,
//! opportunities and accounts; scoring models (ridge logistic regression and gradient-[`boost`]ed
//! trees) with per-record explanations; forecasting; and the next-best-actions written back through
//! `orbas-oltp`, ranked by how likely each rep is to [`acceptance`]-accept them; local sentence [`embed`]dings (shared with search) and the [`sentiment`] of tickets
//! and interactions; the [`service`] that keeps them all current. Reads the lake through
//! `orbas-warehouse`'s tenant-scoped sessions only, so a model of one tenant never sees another
//! tenant's rows. Also (issue #7) the OpenAI-compatible chat client [`llm`] the assistant in
//! `orbas-search` answers with.

pub mod acceptance;
pub mod boost;
pub mod dataset;
pub mod embed;
pub mod error;
pub mod features;
pub mod forecast;
pub mod llm;
pub mod logistic;
pub mod metrics;
pub mod nba;
pub mod ops;
pub mod scoring;
pub mod sentiment;
pub mod service;
mod stored;

pub use error::{Error, Result};
pub use llm::{Answer, Delta, LlmClient, LlmConfig, Message, Role, Usage};
