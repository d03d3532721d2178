//! The dashboards stage's errors; [`Error::Invalid`] carries per-field problems for RFC 9457 answers.

use serde::Serialize;

/// One problem with one field of a request or definition (`kpis[2].measure`, `group_by[0]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A definition or query the caller can fix.
    #[error("invalid: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// A YAML document that does not parse into definitions.
    #[error("YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// The CRM database (not found, conflicts and the like keep their kind).
    #[error(transparent)]
    Db(#[from] orbas_oltp::Error),
    /// A query the lake refused or could not answer (`orbas_warehouse::sql::QueryError` keeps the kind).
    #[error(transparent)]
    Query(#[from] orbas_warehouse::sql::QueryError),
    /// The lake could not be read.
    #[error("lake: {0}")]
    Lake(#[from] orbas_warehouse::Error),
    /// A stored row this version cannot read.
    #[error("{0}")]
    Corrupt(String),
    /// A page template failed to render (a bug, not the caller's).
    #[error("rendering a page")]
    Render(#[source] askama::Error),
    /// Headless Chromium could not print a dashboard (absent, crashed or timed out).
    #[error("printing the dashboard: {0}")]
    Print(#[source] crate::render::RenderError),
}

impl Error {
    /// Whether the caller can fix it (4xx).
    pub fn is_client_error(&self) -> bool {
        matches!(self, Error::Invalid(_) | Error::Yaml(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
