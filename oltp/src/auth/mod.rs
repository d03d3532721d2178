//! Identity primitives: password hashing and policy, SCRAM-SHA-256 verifiers and the server side of
//! the SCRAM exchange, API keys, refresh and one-time tokens, access tokens (JWT), login throttling,
//! and the [`Principal`] every permission check is asked of. Pure logic: no I/O, no HTTP, no tables
//! of its own (the rows live in `user_credentials`, `api_keys` and `sessions`).
//!
//! # Threat model
//!
//! * A leaked database must not yield usable credentials. Passwords are stored only as argon2id
//!   hashes (memory-hard, OWASP parameters, per-password salt) and as Postgres SCRAM-SHA-256
//!   verifiers (`StoredKey`/`ServerKey`, which do not let a thief log in without a sniffed exchange).
//! * API keys, refresh tokens and one-time tokens are ≥ 190 bits of OS randomness, so a plain SHA-256
//!   of the whole secret is enough: there is nothing to brute-force, and a fast hash keeps the
//!   per-request lookup cheap. Only the hash and a non-secret lookup prefix are stored.
//! * Never stored, never logged: plaintext passwords, whole API keys, refresh/one-time token values,
//!   the JWT signing key. Types that hold them wrap them in [`secrecy::SecretString`] and redact
//!   `Debug`; secrets are compared in constant time.
//! * Access tokens are short-lived (15 min) HS256 JWTs; only HS256 is accepted (`none` and
//!   asymmetric algorithms are refused, which closes algorithm-confusion attacks).
//! * Online guessing is slowed by [`lockout::LoginThrottle`]; unknown users in a SCRAM exchange get a
//!   deterministic mock verifier so the exchange does not reveal whether the user exists.
//!
//! # Errors
//!
//! Fallible functions return this module's [`Error`] rather than [`crate::Error`]: an authentication
//! failure is neither a domain rule violation nor a database error, and callers (the API answers 401,
//! the SQL port sends a SCRAM failure) must tell it apart from those. There is deliberately no
//! `From<auth::Error> for crate::Error`.

mod error;
pub mod jwt;
pub mod lockout;
pub mod password;
pub mod principal;
mod random;
pub mod scram;
pub mod tokens;

pub use error::{Error, Result};
pub use principal::Principal;
