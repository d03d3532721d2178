//! Secrets sealed at rest: values the server must read back (a tenant's language-model API key), so
//! they cannot be hashed like passwords, are stored encrypted under the server's secrets key.
//!
//! Sealing is AES-256-GCM (aws-lc-rs) with a random 96-bit nonce per value. The sealed form is
//! `version (1) ‖ key id (8) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`; the key id (a hash of the key, not the
//! key) tells "sealed under another secrets key" apart from "damaged". Every value is bound to its
//! *context* — the tenant and purpose, e.g. `ai_settings.llm_api_key:<tenant id>` — as associated data,
//! so a sealed value copied into another tenant's row, or another column, does not open.
//!
//! Invariant: plaintext leaves this module only as a [`SecretString`]; the key's `Debug` shows its id.

use std::borrow::Cow;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// The length of a sealed empty value: header and tag.
pub const SEALED_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// The server's key for secrets at rest: 32 bytes.
pub struct SecretsKey {
    key: LessSafeKey,
    id: [u8; KEY_ID_LEN],
}

impl SecretsKey {
    /// From 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 32 {
            return Err(Error::invalid(format!("a secrets key is 32 bytes, not {}", bytes.len())));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| Error::invalid("not an AES-256 key"))?;
        let digest = Sha256::new().chain_update(b"orbas secrets key id\0").chain_update(bytes).finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Ok(Self { key: LessSafeKey::new(unbound), id })
    }

    /// From its text form: 64 hex digits, or 32 bytes in base64 (standard alphabet, padded or not).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| Error::invalid("the secrets key is not valid hex"))?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .map_err(|_| Error::invalid("the secrets key must be 64 hex digits or 32 bytes in base64"))?
        };
        Self::from_bytes(&bytes)
    }

    /// A new random key and its text form (hex), e.g. for a demo that keeps it in its data directory.
    pub fn generate() -> Result<(Self, SecretString)> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| Error::invalid("the system random source failed"))?;
        let text = SecretString::from(hex::encode(bytes));
        Ok((Self::from_bytes(&bytes)?, text))
    }

    /// The key's id (hex), safe to log: which key sealed a value, not the key.
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }

    /// Seals `plain` for `context` (tenant and purpose).
    pub fn seal(&self, context: &str, plain: &SecretString) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| Error::invalid("the system random source failed"))?;
        let mut out = Vec::with_capacity(SEALED_OVERHEAD + plain.expose_secret().len());
        out.push(VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        let mut body = plain.expose_secret().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| Error::invalid("the value could not be sealed"))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a value [`SecretsKey::seal`] sealed for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<SecretString> {
        let unseal = |m: &'static str| Error::Unseal { message: Cow::Borrowed(m) };
        if sealed.len() < SEALED_OVERHEAD || sealed[0] != VERSION {
            return Err(unseal("the sealed secret is damaged or of an unknown version"));
        }
        if sealed[1..1 + KEY_ID_LEN] != self.id {
            return Err(unseal("the secret was sealed under another secrets key"));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1 + KEY_ID_LEN..HEADER_LEN]);
        let mut body = sealed[HEADER_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| unseal("the sealed secret is damaged or belongs elsewhere"))?;
        let text = std::str::from_utf8(plain).map_err(|_| unseal("the sealed secret is not text"))?;
        Ok(SecretString::from(text.to_owned()))
    }
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey").field("id", &self.id()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(byte: u8) -> SecretsKey {
        SecretsKey::from_bytes(&[byte; 32]).expect("key")
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let (k, other) = (key(7), key(8));
        let sealed = k.seal("ai_settings.llm_api_key:t1", &SecretString::from("sk-live-123")).expect("seal");
        assert_eq!(sealed.len(), SEALED_OVERHEAD + "sk-live-123".len());
        assert!(!sealed.windows(11).any(|w| w == b"sk-live-123"), "plaintext in the sealed form");
        let opened = k.open("ai_settings.llm_api_key:t1", &sealed).expect("open");
        assert_eq!(opened.expose_secret(), "sk-live-123");

        let err = |r: Result<SecretString>| r.expect_err("must not open").to_string();
        assert!(err(k.open("ai_settings.llm_api_key:t2", &sealed)).contains("belongs elsewhere"));
        assert!(err(other.open("ai_settings.llm_api_key:t1", &sealed)).contains("another secrets key"));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(err(k.open("ai_settings.llm_api_key:t1", &flipped)).contains("damaged"));
        assert!(err(k.open("ai_settings.llm_api_key:t1", &sealed[..10])).contains("damaged"));
        // Two seals of the same value differ (fresh nonces).
        let again = k.seal("ai_settings.llm_api_key:t1", &SecretString::from("sk-live-123")).expect("seal");
        assert_ne!(sealed, again);
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_never_print() {
        let hex_form = "00".repeat(31) + "ff";
        let a = SecretsKey::parse(&hex_form).expect("hex");
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(&hex_form).expect("hex"));
        let b = SecretsKey::parse(&b64).expect("base64");
        assert_eq!(a.id(), b.id());
        for bad in ["", "abc", &"00".repeat(16), &"zz".repeat(32)] {
            assert!(SecretsKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        let (generated, text) = SecretsKey::generate().expect("generate");
        assert_eq!(SecretsKey::parse(text.expose_secret()).expect("round trip").id(), generated.id());
        assert!(!format!("{generated:?}").contains(text.expose_secret()));
    }

    proptest! {
        #[test]
        fn any_text_round_trips(plain in ".{0,200}", context in "[a-z:0-9-]{1,40}") {
            let k = key(1);
            let sealed = k.seal(&context, &SecretString::from(plain.clone())).expect("seal");
            let opened = k.open(&context, &sealed).expect("open");
            prop_assert_eq!(opened.expose_secret(), plain.as_str());
        }
    }
}
