//! SCRAM-SHA-256 (RFC 5802 / RFC 7677) in Postgres' flavour: the verifier stored in
//! `user_credentials.scram_verifier` / `api_keys.scram_verifier` and in `pg_authid.rolpassword`,
//!
//! ```text
//! SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>
//! ```
//!
//! and the server side of the exchange ([`ScramServer`]) for the SQL port. The verifier lets a server
//! check a client's proof without knowing the password; it is still secret (with a sniffed exchange
//! it allows impersonating the client), so it is redacted from `Debug` and has no `Display`.
//!
//! Passwords are normalised with SASLprep before key derivation, falling back to the raw bytes when
//! SASLprep rejects the string — exactly what Postgres and libpq do, so both sides derive the same keys.

mod server;

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::tokens::constant_time_eq;
use super::{Error, Result, random};

pub use server::{ScramServer, ScramServerFirst, ScramSuccess};

/// Iteration count of new verifiers (Postgres' default `scram_iterations`).
pub const ITERATIONS: u32 = 4096;
/// Salt length of new verifiers, in bytes (Postgres' `SCRAM_DEFAULT_SALT_LEN`).
pub const SALT_LEN: usize = 16;
const PREFIX: &str = "SCRAM-SHA-256$";
const KEY_LEN: usize = 32;
/// Refuse absurd iteration counts from stored verifiers: each costs one HMAC per login.
const MAX_ITERATIONS: u32 = 10_000_000;
const MAX_SALT_LEN: usize = 1024;

/// A parsed SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; KEY_LEN],
    server_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramVerifier").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

/// A fresh verifier for `password` in Postgres' text format: 4096 iterations and a 16-byte random salt.
/// Suitable for `CREATE ROLE … PASSWORD '<verifier>'` and for the `scram_verifier` columns.
pub fn scram_sha256_verifier(password: &str) -> String {
    ScramVerifier::generate(password).encode()
}

impl ScramVerifier {
    /// A verifier for `password` with a random salt and [`ITERATIONS`].
    pub fn generate(password: &str) -> Self {
        Self::derive(password, &random::bytes::<SALT_LEN>(), ITERATIONS)
    }

    /// The verifier for `password` with the given salt and iteration count (deterministic):
    /// SaltedPassword = PBKDF2-HMAC-SHA256(SASLprep(password), salt, iterations),
    /// StoredKey = SHA256(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key").
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// A verifier for a user that does not exist, so that a SCRAM exchange for an unknown name
    /// looks like one for a known name (same salt every time, plausible length) and always fails.
    /// `server_secret` is a per-installation secret; the salt is derived from it and the name.
    pub fn mock(username: &str, server_secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"orbas scram mock salt\0");
        h.update(server_secret);
        h.update(username.as_bytes());
        let digest = h.finalize();
        Self {
            iterations: ITERATIONS,
            salt: digest.get(..SALT_LEN).unwrap_or_default().to_vec(),
            stored_key: random::bytes(),
            server_key: random::bytes(),
        }
    }

    /// Parses Postgres' verifier text. Never panics: anything that is not exactly
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (positive iterations, non-empty
    /// standard-base64 salt, 32-byte keys) is [`Error::Malformed`].
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::malformed("SCRAM verifier");
        let rest = text.strip_prefix(PREFIX).ok_or_else(bad)?;
        let (iter_salt, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = iter_salt.split_once(':').ok_or_else(bad)?;
        let (stored_key, server_key) = keys.split_once(':').ok_or_else(bad)?;
        let iterations = parse_iterations(iterations).ok_or_else(bad)?;
        let salt = B64.decode(salt).map_err(|_| bad())?;
        if salt.is_empty() || salt.len() > MAX_SALT_LEN {
            return Err(bad());
        }
        Ok(Self {
            iterations,
            salt,
            stored_key: decode_key(stored_key).ok_or_else(bad)?,
            server_key: decode_key(server_key).ok_or_else(bad)?,
        })
    }

    /// The verifier in Postgres' text format; [`ScramVerifier::parse`] reads it back unchanged.
    pub fn encode(&self) -> String {
        format!(
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// Whether `password` is the one this verifier was made from (derives the keys again; as slow as
    /// a login). Constant-time comparison of the StoredKey.
    pub fn matches(&self, password: &str) -> bool {
        let other = Self::derive(password, &self.salt, self.iterations);
        constant_time_eq(&other.stored_key, &self.stored_key)
    }

    pub(crate) fn stored_key(&self) -> &[u8; KEY_LEN] {
        &self.stored_key
    }

    pub(crate) fn server_key(&self) -> &[u8; KEY_LEN] {
        &self.server_key
    }
}

fn parse_iterations(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|n| (1..=MAX_ITERATIONS).contains(n))
}

fn decode_key(text: &str) -> Option<[u8; KEY_LEN]> {
    B64.decode(text).ok()?.try_into().ok()
}

/// SASLprep(password), or the password unchanged when SASLprep refuses it (as Postgres does).
fn normalize(password: &str) -> Cow<'_, str> {
    stringprep::saslprep(password).unwrap_or(Cow::Borrowed(password))
}

fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(normalize(password).as_bytes(), salt, iterations, &mut out);
    out
}

pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; KEY_LEN] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { unreachable!("HMAC accepts keys of any length") };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

pub(crate) fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests;
