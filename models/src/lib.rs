//! # orbas-models — intelligence
//!
//! Will own (issue #6): feature extraction over the lake, lead/deal/churn scoring with explanations,
//! sales forecasting per fiscal period, next-best-action generation written back through `orbas-oltp`,
//! local embeddings and the LLM client used by search.
