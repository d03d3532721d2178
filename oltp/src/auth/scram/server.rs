//! The server side of a SCRAM-SHA-256 exchange (RFC 5802 §3 and §7, RFC 7677), as a typestate
//! machine: [`ScramServer`] --client-first--> [`ScramServerFirst`] --client-final--> [`ScramSuccess`].
//! Each step consumes the previous state, so a step cannot be repeated or skipped.
//!
//! Supported as Postgres does it: no channel binding (`n` or `y` GS2 flag; `p=` is refused), no
//! authorization identity, no mandatory extensions. The `n=` user name is parsed but, as in Postgres,
//! the verifier is chosen by the caller (from the connection's startup user). Parsing never panics.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{KEY_LEN, ScramVerifier, hmac_sha256, sha256};
use crate::auth::tokens::constant_time_eq;
use crate::auth::{Error, Result, random};

/// Longest client message accepted, in bytes.
const MAX_MESSAGE_LEN: usize = 4096;
const SERVER_NONCE_BYTES: usize = 18;

/// A SCRAM exchange before the client's first message: the verifier of the user and the server nonce.
#[derive(Debug)]
pub struct ScramServer {
    verifier: ScramVerifier,
    server_nonce: String,
}

/// After the client's first message: holds what the final step needs and the server-first message to send.
#[derive(Debug)]
pub struct ScramServerFirst {
    verifier: ScramVerifier,
    gs2_header: String,
    client_first_bare: String,
    username: String,
    nonce: String,
    server_first: String,
}

/// A completed exchange: the client proved it knows the password. Send [`ScramSuccess::message`]
/// (`v=<ServerSignature>`) so the client can authenticate the server in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramSuccess {
    server_final: String,
}

impl ScramServer {
    /// Starts an exchange for the user whose verifier is `verifier`, with a random 18-byte server nonce.
    /// For an unknown user pass [`ScramVerifier::mock`] so the exchange fails only at the proof.
    pub fn new(verifier: ScramVerifier) -> Self {
        Self { verifier, server_nonce: B64.encode(random::bytes::<SERVER_NONCE_BYTES>()) }
    }

    /// Starts an exchange with a fixed server nonce (printable ASCII without `,`). For test vectors only:
    /// a predictable nonce allows replay.
    pub fn with_nonce(verifier: ScramVerifier, server_nonce: &str) -> Result<Self> {
        if !is_valid_nonce(server_nonce) {
            return Err(Error::malformed("SCRAM server nonce"));
        }
        Ok(Self { verifier, server_nonce: server_nonce.to_owned() })
    }

    /// Reads `n,,n=<user>,r=<client nonce>` (GS2 header + client-first-message-bare) and prepares the
    /// server-first message `r=<client nonce><server nonce>,s=<salt>,i=<iterations>`.
    pub fn client_first(self, message: &str) -> Result<ScramServerFirst> {
        let parsed = parse_client_first(message)?;
        let nonce = format!("{}{}", parsed.client_nonce, self.server_nonce);
        let server_first = format!("r={nonce},s={},i={}", B64.encode(self.verifier.salt()), self.verifier.iterations());
        Ok(ScramServerFirst {
            verifier: self.verifier,
            gs2_header: parsed.gs2_header.to_owned(),
            client_first_bare: parsed.bare.to_owned(),
            username: parsed.username,
            nonce,
            server_first,
        })
    }
}

impl ScramServerFirst {
    /// The server-first message to send to the client.
    pub fn message(&self) -> &str {
        &self.server_first
    }

    /// The user name the client sent in `n=` (decoded; possibly empty, as libpq sends it).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Reads `c=<b64 GS2 header>,r=<nonce>[,ext],p=<proof>`, checks the channel-binding echo and the
    /// nonce, and verifies the proof: SHA256(proof ⊕ HMAC(StoredKey, AuthMessage)) must equal StoredKey
    /// (constant-time). A wrong proof is [`Error::BadCredentials`]; anything ill-formed is
    /// [`Error::Malformed`].
    pub fn client_final(self, message: &str) -> Result<ScramSuccess> {
        let bad = || Error::malformed("SCRAM client-final message");
        check_len(message)?;
        let (without_proof, proof) = message.rsplit_once(",p=").ok_or_else(bad)?;
        let proof: [u8; KEY_LEN] = B64.decode(proof).ok().and_then(|p| p.try_into().ok()).ok_or_else(bad)?;
        let mut attrs = without_proof.split(',');
        let binding = attrs.next().and_then(|a| a.strip_prefix("c=")).ok_or_else(bad)?;
        if B64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(Error::malformed("SCRAM channel binding"));
        }
        let nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or_else(bad)?;
        if nonce != self.nonce {
            return Err(Error::malformed("SCRAM nonce"));
        }
        let auth_message = format!("{},{},{without_proof}", self.client_first_bare, self.server_first);
        self.verify_proof(&auth_message, &proof)
    }

    fn verify_proof(&self, auth_message: &str, proof: &[u8; KEY_LEN]) -> Result<ScramSuccess> {
        let client_signature = hmac_sha256(self.verifier.stored_key(), auth_message.as_bytes());
        let mut client_key = [0u8; KEY_LEN];
        for (k, (p, s)) in client_key.iter_mut().zip(proof.iter().zip(client_signature)) {
            *k = p ^ s;
        }
        if !constant_time_eq(&sha256(&client_key), self.verifier.stored_key()) {
            return Err(Error::BadCredentials);
        }
        let server_signature = hmac_sha256(self.verifier.server_key(), auth_message.as_bytes());
        Ok(ScramSuccess { server_final: format!("v={}", B64.encode(server_signature)) })
    }
}

impl ScramSuccess {
    /// The server-final message, `v=<base64 ServerSignature>`.
    pub fn message(&self) -> &str {
        &self.server_final
    }
}

struct ClientFirst<'a> {
    gs2_header: &'a str,
    bare: &'a str,
    username: String,
    client_nonce: &'a str,
}

fn parse_client_first(message: &str) -> Result<ClientFirst<'_>> {
    let bad = || Error::malformed("SCRAM client-first message");
    check_len(message)?;
    let (flag, rest) = message.split_once(',').ok_or_else(bad)?;
    let (authzid, bare) = rest.split_once(',').ok_or_else(bad)?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(Error::ScramUnsupported { what: "channel binding" }),
        _ => return Err(bad()),
    }
    if !authzid.is_empty() {
        return Err(Error::ScramUnsupported { what: "authorization identity" });
    }
    let gs2_header = message.get(..flag.len() + authzid.len() + 2).ok_or_else(bad)?;
    let mut attrs = bare.split(',');
    let user = attrs.next().ok_or_else(bad)?;
    if user.starts_with("m=") {
        return Err(Error::ScramUnsupported { what: "mandatory extension" });
    }
    let username = user.strip_prefix("n=").and_then(decode_saslname).ok_or_else(bad)?;
    let client_nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).filter(|n| is_valid_nonce(n)).ok_or_else(bad)?;
    Ok(ClientFirst { gs2_header, bare, username, client_nonce })
}

fn check_len(message: &str) -> Result<()> {
    if message.len() > MAX_MESSAGE_LEN {
        return Err(Error::malformed("SCRAM message (too long)"));
    }
    Ok(())
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E, at least one.
fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty() && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// RFC 5802 `saslname`: `=2C` is `,`, `=3D` is `=`, any other `=` is malformed.
fn decode_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(rest.get(..at)?);
        let escape = rest.get(at..at + 3)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = rest.get(at + 3..)?;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_escapes() {
        assert_eq!(decode_saslname("user").as_deref(), Some("user"));
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(decode_saslname("").as_deref(), Some(""));
        for bad in ["=", "a=", "a=2", "a=2X", "=ZZ", "é=2"] {
            assert_eq!(decode_saslname(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nonce_alphabet() {
        assert!(is_valid_nonce("rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
        assert!(!is_valid_nonce(""));
        assert!(!is_valid_nonce("a,b"));
        assert!(!is_valid_nonce("a b"));
        assert!(!is_valid_nonce("ü"));
    }
}
