//! High-entropy bearer secrets: API keys, refresh tokens and one-time tokens (invites, password resets).
//!
//! All three are generated from the OS generator with ≥ 190 bits of entropy and stored only as a
//! SHA-256 hex digest. A fast hash is the right tool here (unlike passwords): a brute-force search over
//! 2^190 candidates is hopeless however fast the hash is, and lookups happen on every request. The
//! plaintext is shown once, at creation, and never stored or logged (`Debug` redacts it).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{Error, Result, random};

/// Compares two byte strings in time that depends only on their lengths, not on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

pub fn sha256_hex(data: &str) -> String {
    hex::encode(Sha256::digest(data.as_bytes()))
}

/// Whether `presented` hashes to `stored_hash` (constant-time comparison of the hex digests).
fn hash_matches(presented: &str, stored_hash: &str) -> bool {
    constant_time_eq(sha256_hex(presented).as_bytes(), stored_hash.as_bytes())
}

/// Length of the public lookup prefix of an API key.
pub const API_KEY_PREFIX_LEN: usize = 8;
/// Length of the random secret part of an API key (base62: ≈ 190 bits).
pub const API_KEY_SECRET_LEN: usize = 32;
const API_KEY_MAX_LEN: usize = 128;
const API_KEY_MAX_SECRET_LEN: usize = 64;

/// An API key, `<env>_<prefix>_<secret>` such as `orbas_Ab3dE9xZ_…32 base62 chars…`.
///
/// * `env` (`[a-z][a-z0-9]{0,15}`) tells humans and secret scanners what the string is.
/// * `prefix` (8 base62 chars) is not secret: it is stored in `api_keys.prefix` (unique) to find the
///   row, and may be shown in the UI. On the rare unique-constraint conflict, generate a new key.
/// * the whole string is the secret; `api_keys.key_hash` stores [`ApiKey::hash`].
pub struct ApiKey {
    env_len: usize,
    prefix: String,
    key: SecretString,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey").field("prefix", &self.prefix).field("key", &"[REDACTED]").finish()
    }
}

impl ApiKey {
    /// A new random key for environment `env` (e.g. `"orbas"`). Errors if `env` is not
    /// `[a-z][a-z0-9]{0,15}`.
    pub fn generate(env: &str) -> Result<Self> {
        if !is_valid_env(env) {
            return Err(Error::malformed("API key environment prefix"));
        }
        let prefix = random::base62(API_KEY_PREFIX_LEN);
        let secret = random::base62(API_KEY_SECRET_LEN);
        Ok(Self { env_len: env.len(), key: format!("{env}_{prefix}_{secret}").into(), prefix })
    }

    /// Splits a presented key into its parts. Never panics; anything that is not
    /// `<env>_<8 base62>_<32..=64 base62>` (at most 128 bytes) is [`Error::Malformed`]. Does not
    /// check the key exists: look the row up by [`ApiKey::prefix`], then compare [`ApiKey::verify`].
    pub fn parse(presented: &str) -> Result<Self> {
        let bad = || Error::malformed("API key");
        if presented.len() > API_KEY_MAX_LEN {
            return Err(bad());
        }
        let mut parts = presented.split('_');
        let (Some(env), Some(prefix), Some(secret), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let secret_ok = (API_KEY_SECRET_LEN..=API_KEY_MAX_SECRET_LEN).contains(&secret.len()) && is_base62(secret);
        if !is_valid_env(env) || prefix.len() != API_KEY_PREFIX_LEN || !is_base62(prefix) || !secret_ok {
            return Err(bad());
        }
        Ok(Self { env_len: env.len(), prefix: prefix.to_owned(), key: presented.into() })
    }

    /// The environment part (`orbas`).
    pub fn env(&self) -> &str {
        self.key.expose_secret().get(..self.env_len).unwrap_or_default()
    }

    /// The public lookup prefix (8 base62 characters), stored in `api_keys.prefix`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The whole key, to show once to its creator.
    pub fn secret(&self) -> &SecretString {
        &self.key
    }

    /// SHA-256 (lower-case hex) of the whole key, stored in `api_keys.key_hash`.
    pub fn hash(&self) -> String {
        sha256_hex(self.key.expose_secret())
    }

    /// Whether this (presented) key hashes to `stored_hash`, in constant time.
    pub fn verify(&self, stored_hash: &str) -> bool {
        hash_matches(self.key.expose_secret(), stored_hash)
    }

    /// A SCRAM-SHA-256 verifier of the whole key, for `api_keys.scram_verifier`, so the key can be
    /// used as a password on the SQL port.
    pub fn scram_verifier(&self) -> String {
        super::scram::scram_sha256_verifier(self.key.expose_secret())
    }
}

fn is_valid_env(env: &str) -> bool {
    let mut bytes = env.bytes();
    env.len() <= 16
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

const TOKEN_BYTES: usize = 32;
const TOKEN_B64_LEN: usize = 43;

/// 256 random bits, base64url without padding (43 characters).
fn random_token() -> String {
    B64URL.encode(random::bytes::<TOKEN_BYTES>())
}

fn is_token_text(s: &str) -> bool {
    s.len() == TOKEN_B64_LEN && B64URL.decode(s).is_ok_and(|b| b.len() == TOKEN_BYTES)
}

/// A refresh token: 256 random bits, base64url. `sessions.refresh_token_hash` stores [`RefreshToken::hash`];
/// the token is rotated on every use.
pub struct RefreshToken(SecretString);

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([REDACTED])")
    }
}

impl RefreshToken {
    pub fn generate() -> Self {
        Self(random_token().into())
    }

    /// Accepts a presented token if it has the shape of one (43 base64url characters). Never panics.
    pub fn parse(presented: &str) -> Result<Self> {
        if !is_token_text(presented) {
            return Err(Error::malformed("refresh token"));
        }
        Ok(Self(presented.into()))
    }

    /// The token, to hand to the client.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    /// SHA-256 (lower-case hex) of the token: the lookup key in `sessions.refresh_token_hash`.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.expose_secret())
    }
}

/// What a one-time token may be used for. The purpose is part of the token text (`inv_…`, `pwr_…`), so a
/// token minted for one purpose never verifies for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Accepting an invitation (sets the first password).
    Invite,
    /// Resetting a forgotten password.
    PasswordReset,
}

impl TokenPurpose {
    /// The value of `auth_tokens.purpose`.
    pub fn column_value(&self) -> &'static str {
        match self {
            TokenPurpose::Invite => "invite",
            TokenPurpose::PasswordReset => "password_reset",
        }
    }

    /// The tag the token text starts with.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenPurpose::Invite => "inv",
            TokenPurpose::PasswordReset => "pwr",
        }
    }

    /// How long a token of this purpose stays valid: invites 7 days, password resets 30 minutes.
    pub fn lifetime(&self) -> Duration {
        match self {
            TokenPurpose::Invite => Duration::days(7),
            TokenPurpose::PasswordReset => Duration::minutes(30),
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        [TokenPurpose::Invite, TokenPurpose::PasswordReset].into_iter().find(|p| p.as_str() == tag)
    }
}

/// The outcome of checking a presented one-time token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    /// The token matches but its time is up.
    Expired,
    /// The token does not match the stored hash (or is malformed). Checked before expiry, so a wrong
    /// token never learns whether a right one would have expired.
    Mismatch,
}

/// A one-time token `<purpose>_<256 random bits, base64url>` for invites and password resets: mailed to
/// the user, stored as [`OneTimeToken::hash`] with [`OneTimeToken::expires_at`]; consumed (deleted) on use.
pub struct OneTimeToken {
    purpose: TokenPurpose,
    token: SecretString,
    expires_at: DateTime<Utc>,
}

impl fmt::Debug for OneTimeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeToken")
            .field("purpose", &self.purpose)
            .field("expires_at", &self.expires_at)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

impl OneTimeToken {
    /// A new token for `purpose`, valid for [`TokenPurpose::lifetime`] from `now`.
    pub fn generate(purpose: TokenPurpose, now: DateTime<Utc>) -> Self {
        let token = format!("{}_{}", purpose.as_str(), random_token()).into();
        Self { purpose, token, expires_at: now + purpose.lifetime() }
    }

    pub fn purpose(&self) -> TokenPurpose {
        self.purpose
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// The token, to put in the link that is mailed.
    pub fn secret(&self) -> &SecretString {
        &self.token
    }

    /// SHA-256 (lower-case hex) of the whole token, purpose tag included.
    pub fn hash(&self) -> String {
        sha256_hex(self.token.expose_secret())
    }

    /// The purpose a presented token claims (from its tag), for routing it; `None` if malformed.
    pub fn purpose_of(presented: &str) -> Option<TokenPurpose> {
        let (tag, body) = presented.split_once('_')?;
        TokenPurpose::from_tag(tag).filter(|_| is_token_text(body))
    }

    /// Checks `presented` against the stored hash and expiry: [`TokenCheck::Mismatch`] unless it is
    /// well-formed and hashes to `stored_hash` (constant-time), then [`TokenCheck::Expired`] when
    /// `now >= expires_at`, else [`TokenCheck::Valid`].
    pub fn verify(presented: &str, stored_hash: &str, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> TokenCheck {
        if Self::purpose_of(presented).is_none() || !hash_matches(presented, stored_hash) {
            return TokenCheck::Mismatch;
        }
        if now >= expires_at { TokenCheck::Expired } else { TokenCheck::Valid }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_shape_and_parse_round_trip() {
        let key = ApiKey::generate("orbas").expect("generate");
        let text = key.secret().expose_secret();
        let parts: Vec<&str> = text.split('_').collect();
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert_eq!(parts[0], "orbas");
        assert_eq!(parts[1], key.prefix());
        assert_eq!(key.prefix().len(), API_KEY_PREFIX_LEN);
        assert_eq!(parts[2].len(), API_KEY_SECRET_LEN);
        assert!(is_base62(parts[1]) && is_base62(parts[2]));
        assert_eq!(key.env(), "orbas");

        let presented = ApiKey::parse(text).expect("parse");
        assert_eq!(presented.prefix(), key.prefix());
        assert_eq!(presented.env(), "orbas");
        assert_eq!(presented.hash(), key.hash());
        assert!(presented.verify(&key.hash()));
    }

    #[test]
    fn api_key_hash_is_sha256_hex_of_the_whole_key() {
        let key = ApiKey::parse("orbas_Ab3dE9xZ_0123456789abcdefghijABCDEFGHIJ01").expect("parse");
        let expected = hex::encode(Sha256::digest(b"orbas_Ab3dE9xZ_0123456789abcdefghijABCDEFGHIJ01"));
        assert_eq!(key.hash(), expected);
        assert_eq!(key.hash().len(), 64);
        assert!(!key.verify(&ApiKey::generate("orbas").expect("generate").hash()));
        assert!(!key.verify(""));
    }

    #[test]
    fn api_keys_are_unique() {
        let a = ApiKey::generate("orbas").expect("generate");
        let b = ApiKey::generate("orbas").expect("generate");
        assert_ne!(a.prefix(), b.prefix());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn api_key_env_is_validated() {
        for bad in ["", "Orbas", "or_bas", "1orbas", "orbas-live", "abcdefghijklmnopq"] {
            assert!(ApiKey::generate(bad).is_err(), "{bad:?}");
        }
        assert!(ApiKey::generate("test2").is_ok());
    }

    #[test]
    fn malformed_api_keys() {
        let secret = "0123456789abcdefghijABCDEFGHIJ01";
        let cases = [
            String::new(),
            "orbas".into(),
            format!("orbas_Ab3dE9xZ{secret}"),
            format!("orbas_Ab3dE9x_{secret}"),
            format!("orbas_Ab3dE9xZ_{}", &secret[1..]),
            format!("orbas_Ab3dE9xZ_{secret}_x"),
            format!("orbas_Ab3dE9x!_{secret}"),
            format!("orbas_Ab3dE9xZ_{secret}é"),
            format!("ORBAS_Ab3dE9xZ_{secret}"),
            format!("orbas_Ab3dE9xZ_{}", "a".repeat(65)),
            format!("_Ab3dE9xZ_{secret}"),
        ];
        for case in cases {
            assert!(ApiKey::parse(&case).is_err(), "{case:?}");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let key = ApiKey::generate("orbas").expect("generate");
        let secret = key.secret().expose_secret().to_owned();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&secret) && shown.contains(key.prefix()), "{shown}");

        let refresh = RefreshToken::generate();
        assert!(!format!("{refresh:?}").contains(refresh.secret().expose_secret()));

        let one = OneTimeToken::generate(TokenPurpose::Invite, Utc::now());
        assert!(!format!("{one:?}").contains(one.secret().expose_secret()));
    }

    #[test]
    fn refresh_tokens() {
        let t = RefreshToken::generate();
        let text = t.secret().expose_secret();
        assert_eq!(text.len(), 43);
        assert_eq!(B64URL.decode(text).expect("base64url").len(), 32);
        let presented = RefreshToken::parse(text).expect("parse");
        assert_eq!(presented.hash(), t.hash());
        assert_ne!(RefreshToken::generate().hash(), t.hash());
        for bad in ["", "abc", &"A".repeat(44), &"+".repeat(43), &format!("{}=", &text[..42])] {
            assert!(RefreshToken::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn one_time_tokens() {
        let now = Utc::now();
        let t = OneTimeToken::generate(TokenPurpose::PasswordReset, now);
        let text = t.secret().expose_secret();
        assert!(text.starts_with("pwr_"));
        assert_eq!(t.expires_at(), now + Duration::minutes(30));
        assert_eq!(OneTimeToken::purpose_of(text), Some(TokenPurpose::PasswordReset));

        let hash = t.hash();
        let exp = t.expires_at();
        assert_eq!(OneTimeToken::verify(text, &hash, exp, now), TokenCheck::Valid);
        assert_eq!(OneTimeToken::verify(text, &hash, exp, exp - Duration::seconds(1)), TokenCheck::Valid);
        assert_eq!(OneTimeToken::verify(text, &hash, exp, exp), TokenCheck::Expired);
        let other = OneTimeToken::generate(TokenPurpose::PasswordReset, now);
        assert_eq!(OneTimeToken::verify(other.secret().expose_secret(), &hash, exp, now), TokenCheck::Mismatch);
        // mismatch wins over expiry
        let late = exp + Duration::days(1);
        assert_eq!(OneTimeToken::verify(other.secret().expose_secret(), &hash, exp, late), TokenCheck::Mismatch);
    }

    #[test]
    fn one_time_token_purpose_is_bound() {
        let now = Utc::now();
        let reset = OneTimeToken::generate(TokenPurpose::PasswordReset, now);
        let text = reset.secret().expose_secret();
        let as_invite = text.replacen("pwr_", "inv_", 1);
        assert_eq!(OneTimeToken::purpose_of(&as_invite), Some(TokenPurpose::Invite));
        assert_eq!(OneTimeToken::verify(&as_invite, &reset.hash(), reset.expires_at(), now), TokenCheck::Mismatch);
        let invite = OneTimeToken::generate(TokenPurpose::Invite, now);
        assert_eq!(invite.expires_at(), now + Duration::days(7));
    }

    #[test]
    fn malformed_one_time_tokens_never_match() {
        let now = Utc::now();
        for bad in ["", "pwr_", "xyz_abc", "pwr", "_", "pwr_é"] {
            assert_eq!(OneTimeToken::purpose_of(bad), None, "{bad:?}");
            assert_eq!(OneTimeToken::verify(bad, &sha256_hex(bad), now, now), TokenCheck::Mismatch, "{bad:?}");
        }
    }

    #[test]
    fn constant_time_eq_semantics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
