//! The error type of the identity primitives. Messages never contain secrets or presented values.

/// Result alias for [`crate::auth`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Presented input (a key, token, verifier or SCRAM message) is not well-formed. `what` names
    /// the kind of input, never its value.
    #[error("malformed {what}")]
    Malformed { what: &'static str },

    /// The presented credential does not match (wrong password, bad SCRAM proof, bad signature).
    #[error("authentication failed")]
    BadCredentials,

    /// The access token was valid once but has expired (the client should refresh it).
    #[error("access token expired")]
    TokenExpired,

    /// The access token was rejected: bad signature, disallowed algorithm, malformed, or not yet valid.
    #[error("invalid access token")]
    InvalidToken(#[source] Option<jsonwebtoken::errors::Error>),

    /// A SCRAM client asked for something this server does not support (channel binding,
    /// an authorization identity, a mandatory extension).
    #[error("unsupported SCRAM option: {what}")]
    ScramUnsupported { what: &'static str },

    /// A configured key is unusable (for example a JWT signing key that is too short).
    #[error("invalid key configuration: {message}")]
    Config { message: &'static str },

    /// Hashing a password failed (an internal error: parameters or the RNG).
    #[error("password hashing failed")]
    Hashing(#[source] argon2::password_hash::Error),

    /// Signing an access token failed (an internal error).
    #[error("signing the access token failed")]
    Signing(#[source] jsonwebtoken::errors::Error),
}

impl Error {
    pub(crate) fn malformed(what: &'static str) -> Self {
        Error::Malformed { what }
    }

    /// Whether the failure is the caller's (bad or expired credentials, malformed input) rather
    /// than the server's. Client errors answer 401 / a SCRAM failure; the rest are internal.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Error::Config { .. } | Error::Hashing(_) | Error::Signing(_))
    }
}
