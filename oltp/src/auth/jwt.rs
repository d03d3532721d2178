//! Access tokens: short-lived HS256 JWTs carrying who is calling (`sub`), for which tenant (`tid`),
//! with which role (`role`) and session (`sid`).
//!
//! Only HS256 is ever accepted: tokens with `alg: none`, another HMAC size or an asymmetric algorithm
//! are refused before their signature is looked at (no algorithm confusion). Expiry is checked against
//! the caller's clock (`now`) with [`LEEWAY`] for skew between servers. Revocation is by session: the
//! caller checks `sid` is still live when it matters (tokens are too short-lived for a deny list).

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Error, Result, random};
use crate::model::{RoleKey, TenantId, UserId};

/// Default lifetime of an access token.
pub const ACCESS_TOKEN_TTL: Duration = Duration::minutes(15);
/// Tolerated clock skew when checking `exp` and `iat`, in seconds.
pub const LEEWAY: i64 = 30;
/// Shortest accepted signing key, in bytes (HS256 wants at least the hash size).
pub const MIN_KEY_BYTES: usize = 32;
/// Longer presented tokens are refused without parsing.
const MAX_TOKEN_LEN: usize = 8192;

/// The claims of an access token. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: UserId,
    /// The user's tenant.
    pub tid: TenantId,
    /// The user's role, as its text key (`sales_rep`).
    pub role: RoleKey,
    /// The session (refresh-token family) the token was minted for.
    pub sid: Uuid,
    /// Issued at.
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
    /// Unique token id (random).
    pub jti: Uuid,
}

impl Claims {
    /// Claims issued at `now`, expiring after [`ACCESS_TOKEN_TTL`], with a random `jti`.
    pub fn new(user: UserId, tenant: TenantId, role: RoleKey, session: Uuid, now: DateTime<Utc>) -> Self {
        Self {
            sub: user,
            tid: tenant,
            role,
            sid: session,
            iat: now.timestamp(),
            exp: (now + ACCESS_TOKEN_TTL).timestamp(),
            jti: uuid::Builder::from_random_bytes(random::bytes()).into_uuid(),
        }
    }
}

/// Issues and verifies access tokens with one HMAC key (from configuration).
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessTokens { key: [REDACTED], alg: HS256 }")
    }
}

impl AccessTokens {
    /// Keys from `secret` (its UTF-8 bytes). Refuses a secret shorter than [`MIN_KEY_BYTES`].
    pub fn new(secret: &SecretString) -> Result<Self> {
        let key = secret.expose_secret().as_bytes();
        if key.len() < MIN_KEY_BYTES {
            return Err(Error::Config { message: "the access-token signing key must be at least 32 bytes" });
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked in `verify` against the caller's clock, not the library's.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.required_spec_claims = ["exp", "sub"].into_iter().map(String::from).collect();
        Ok(Self { encoding: EncodingKey::from_secret(key), decoding: DecodingKey::from_secret(key), validation })
    }

    /// Signs `claims` as an HS256 JWT.
    pub fn issue(&self, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(Error::Signing)
    }

    /// Verifies `token` at time `now` and returns its claims. Errors: [`Error::TokenExpired`] when
    /// `now > exp + LEEWAY`; [`Error::InvalidToken`] for a bad signature, any algorithm but HS256
    /// (`none` included), a malformed or over-long token, missing or ill-typed claims, or an `iat`
    /// more than [`LEEWAY`] in the future. Never panics.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::InvalidToken(None));
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| Error::InvalidToken(Some(e)))?
            .claims;
        let now = now.timestamp();
        if now.saturating_sub(LEEWAY) > claims.exp {
            return Err(Error::TokenExpired);
        }
        if claims.iat > now.saturating_add(LEEWAY) {
            return Err(Error::InvalidToken(None));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use jsonwebtoken::errors::ErrorKind;

    use super::*;
    use crate::auth::scram::hmac_sha256;

    const SECRET: &str = "an-access-token-signing-key-of-40-bytes!";

    fn keys() -> AccessTokens {
        AccessTokens::new(&SecretString::from(SECRET)).expect("keys")
    }

    fn claims(now: DateTime<Utc>) -> Claims {
        Claims::new(UserId::new(), TenantId::new(), RoleKey::SalesRep, Uuid::now_v7(), now)
    }

    fn jwt_kind(r: Result<Claims>) -> Option<ErrorKind> {
        match r {
            Err(Error::InvalidToken(Some(e))) => Some(e.into_kind()),
            _ => None,
        }
    }

    /// A token with an arbitrary header, signed with HMAC-SHA256 of `SECRET` whatever the header says.
    fn forge(header: &str, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("json");
        let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(payload));
        let sig = hmac_sha256(SECRET.as_bytes(), input.as_bytes());
        format!("{input}.{}", B64URL.encode(sig))
    }

    #[test]
    fn issue_then_verify() {
        let now = Utc::now();
        let c = claims(now);
        assert_eq!(c.exp - c.iat, 15 * 60);
        let token = keys().issue(&c).expect("issue");
        assert_eq!(keys().verify(&token, now).expect("verify"), c);
        let payload: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(token.split('.').nth(1).expect("payload")).expect("b64"))
                .expect("json");
        assert_eq!(payload["role"], "sales_rep");
        assert_eq!(payload["sub"], c.sub.to_string());
        assert_eq!(payload["tid"], c.tid.to_string());
    }

    #[test]
    fn expiry_with_leeway() {
        let now = Utc::now();
        let token = keys().issue(&claims(now)).expect("issue");
        let exp = now + ACCESS_TOKEN_TTL;
        assert!(keys().verify(&token, exp).is_ok());
        assert!(keys().verify(&token, exp + Duration::seconds(LEEWAY)).is_ok(), "inside the leeway");
        let late = keys().verify(&token, exp + Duration::seconds(LEEWAY + 1));
        assert!(matches!(late, Err(Error::TokenExpired)), "{late:?}");
        assert!(matches!(keys().verify(&token, now + Duration::hours(1)), Err(Error::TokenExpired)));
    }

    #[test]
    fn issued_in_the_future_is_rejected() {
        let now = Utc::now();
        let token = keys().issue(&claims(now + Duration::minutes(5))).expect("issue");
        assert!(matches!(keys().verify(&token, now), Err(Error::InvalidToken(None))));
        let skewed = keys().issue(&claims(now + Duration::seconds(20))).expect("issue");
        assert!(keys().verify(&skewed, now).is_ok(), "small skew tolerated");
    }

    #[test]
    fn wrong_signature_is_rejected() {
        let now = Utc::now();
        let other = AccessTokens::new(&SecretString::from("another-signing-key-that-is-long-enough")).expect("keys");
        let token = other.issue(&claims(now)).expect("issue");
        assert_eq!(jwt_kind(keys().verify(&token, now)), Some(ErrorKind::InvalidSignature));
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let now = Utc::now();
        let token = keys().issue(&claims(now)).expect("issue");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut admin = claims(now);
        admin.role = RoleKey::Admin;
        parts[1] = B64URL.encode(serde_json::to_vec(&admin).expect("json"));
        assert_eq!(jwt_kind(keys().verify(&parts.join("."), now)), Some(ErrorKind::InvalidSignature));
    }

    #[test]
    fn alg_none_is_rejected() {
        let now = Utc::now();
        let c = claims(now);
        let payload = B64URL.encode(serde_json::to_vec(&c).expect("json"));
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#, r#"{"alg":"NONE"}"#] {
            let unsigned = format!("{}.{payload}.", B64URL.encode(header));
            assert!(matches!(keys().verify(&unsigned, now), Err(Error::InvalidToken(_))), "{header}");
            let signed = forge(header, &c);
            assert!(matches!(keys().verify(&signed, now), Err(Error::InvalidToken(_))), "{header}");
        }
    }

    #[test]
    fn other_algorithms_are_rejected() {
        let now = Utc::now();
        let c = claims(now);
        // RS256 header with an HMAC signature made with the shared secret (algorithm confusion).
        let confused = forge(r#"{"alg":"RS256","typ":"JWT"}"#, &c);
        assert_eq!(jwt_kind(keys().verify(&confused, now)), Some(ErrorKind::InvalidAlgorithm));
        // A correctly signed HS512 token with the same key: right key, wrong algorithm.
        let hs512 =
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &c, &EncodingKey::from_secret(SECRET.as_bytes()))
                .expect("encode");
        assert_eq!(jwt_kind(keys().verify(&hs512, now)), Some(ErrorKind::InvalidAlgorithm));
        // The forged HS256 control case is accepted, so the rejections above are about the algorithm.
        assert!(keys().verify(&forge(r#"{"alg":"HS256","typ":"JWT"}"#, &c), now).is_ok());
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let now = Utc::now();
        let good = keys().issue(&claims(now)).expect("issue");
        let missing_tid = serde_json::json!({"sub": UserId::new(), "role": "admin", "exp": now.timestamp() + 60});
        let unknown_role = serde_json::json!({"sub": UserId::new(), "tid": TenantId::new(), "role": "root",
            "sid": Uuid::now_v7(), "iat": now.timestamp(), "exp": now.timestamp() + 60, "jti": Uuid::now_v7()});
        let forge_json = |v: &serde_json::Value| {
            let input = format!("{}.{}", B64URL.encode(r#"{"alg":"HS256"}"#), B64URL.encode(v.to_string()));
            format!("{input}.{}", B64URL.encode(hmac_sha256(SECRET.as_bytes(), input.as_bytes())))
        };
        let cases = [
            String::new(),
            "abc".into(),
            "a.b.c".into(),
            "a.b".into(),
            format!("{good}.x"),
            good.replace('.', ""),
            format!("{}{}", &good[..good.len() - 1], if good.ends_with('A') { 'Q' } else { 'A' }),
            "é.é.é".into(),
            "x".repeat(MAX_TOKEN_LEN + 1),
            forge_json(&missing_tid),
            forge_json(&unknown_role),
            forge_json(&serde_json::json!("just a string")),
        ];
        for case in cases {
            assert!(matches!(keys().verify(&case, now), Err(Error::InvalidToken(_))), "{case:?}");
        }
    }

    #[test]
    fn short_keys_are_refused_and_debug_redacts() {
        assert!(matches!(AccessTokens::new(&SecretString::from("short")), Err(Error::Config { .. })));
        assert!(!format!("{:?}", keys()).contains(SECRET));
    }
}
