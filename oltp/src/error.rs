//! The crate's one error type. Constraint violations are turned into domain errors here, at the data
//! layer, so callers (the API) only map an [`ErrorKind`] to a status code.

use std::borrow::Cow;

/// Result alias for the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The referenced record does not exist in this tenant (or is invisible to it).
    NotFound,
    /// A uniqueness rule was violated (duplicate email, slug, number…).
    Conflict,
    /// Input violates a rule of the domain (CHECK constraint, invalid transition).
    Invalid,
    /// The statement ran without a tenant in scope, or the role may not do this.
    Forbidden,
    /// A transient failure: retrying may succeed (serialization failure, deadlock, connection lost).
    Unavailable,
    /// Anything else: a bug or a broken environment.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{entity} not found")]
    NotFound { entity: &'static str },

    #[error("conflict on {constraint}")]
    Conflict { constraint: String },

    /// The record's state does not allow this now (a sent quote's items, a converted lead).
    #[error("{message}")]
    State { message: Cow<'static, str> },

    #[error("invalid input: {message}")]
    Invalid { message: Cow<'static, str> },

    #[error("reference to a missing {constraint}")]
    MissingReference { constraint: String },

    #[error("no tenant in scope for this statement")]
    NoTenant,

    #[error("permission denied")]
    PermissionDenied,

    #[error("database error")]
    Database(#[source] sqlx::Error),

    #[error("migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    #[error("postgres cluster: {message}")]
    Cluster {
        message: String,
        #[source]
        source: Option<std::io::Error>,
    },

    #[error("seed: {message}")]
    Seed { message: String },

    /// A secret sealed at rest could not be opened: sealed under another secrets key, or damaged.
    #[error("{message}")]
    Unseal { message: Cow<'static, str> },
}

impl Error {
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Error::Invalid { message: message.into() }
    }

    pub fn state(message: impl Into<Cow<'static, str>>) -> Self {
        Error::State { message: message.into() }
    }

    pub(crate) fn cluster(message: impl Into<String>, source: Option<std::io::Error>) -> Self {
        Error::Cluster { message: message.into(), source }
    }

    /// The kind of failure, for callers that map errors to responses or retries.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            // The request names a related record that does not exist (in this tenant): bad input.
            Error::MissingReference { .. } => ErrorKind::Invalid,
            Error::Conflict { .. } | Error::State { .. } => ErrorKind::Conflict,
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::NoTenant | Error::PermissionDenied => ErrorKind::Forbidden,
            Error::Database(e) if is_transient(e) => ErrorKind::Unavailable,
            Error::Database(_)
            | Error::Migrate(_)
            | Error::Cluster { .. }
            | Error::Seed { .. }
            | Error::Unseal { .. } => ErrorKind::Internal,
        }
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }
}

/// An error with its causes, `outer: cause: root`, for logs (`error = %Chain(&e)`): a background job's
/// log line is all an operator has, and [`Error::Database`] alone says "database error". A cause whose
/// text the line already ends with (a `"…: {0}"` or transparent wrapper) is not repeated. Not for
/// answers to clients: the causes may name tables and constraints.
#[derive(Debug)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(e) = cause {
            let text = e.to_string();
            if !line.ends_with(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            cause = e.source();
        }
        f.write_str(&line)
    }
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            // serialization_failure, deadlock_detected, admin/crash shutdown, cannot_connect_now
            Some("40001" | "40P01" | "57P01" | "57P02" | "57P03")
        ),
        _ => false,
    }
}

impl From<sqlx::Error> for Error {
    /// Maps SQLSTATE classes to domain errors: unique → Conflict, FK → MissingReference,
    /// CHECK/NOT NULL/invalid text → Invalid, insufficient privilege (incl. RLS) → NoTenant/PermissionDenied.
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = e {
            return Error::NotFound { entity: "record" };
        }
        let Some(db) = e.as_database_error() else {
            return Error::Database(e);
        };
        let constraint = db.constraint().unwrap_or_default().to_owned();
        match db.code().as_deref() {
            Some("23505") => Error::Conflict { constraint },
            // Deleting a row others still point at is a conflict, not a missing reference.
            Some("23503") if db.message().starts_with("update or delete") => Error::Conflict { constraint },
            Some("23503") => Error::MissingReference { constraint },
            Some("23514" | "23502" | "22P02" | "22001" | "22003" | "22007" | "22008" | "22023") => {
                Error::Invalid { message: Cow::Owned(db.message().to_owned()) }
            }
            Some("42501") if db.message().contains("no tenant in scope") => Error::NoTenant,
            Some("42501") => Error::PermissionDenied,
            _ => Error::Database(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(e)
    }
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    #[test]
    fn a_chain_shows_what_database_error_hides() {
        let e = Error::from(sqlx::Error::PoolTimedOut);
        assert_eq!(e.to_string(), "database error");
        assert_eq!(Chain(&e).to_string(), "database error: pool timed out while waiting for an open connection");
        let plain = Error::invalid("no such stage");
        assert_eq!(Chain(&plain).to_string(), "invalid input: no such stage", "no causes, nothing added");
    }
}
