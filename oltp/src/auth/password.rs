//! Password hashing (argon2id, OWASP parameters) and the password policy.
//!
//! The hash is a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), which is what
//! `user_credentials.password_hash` stores (its CHECK requires the `$argon2id$` prefix). Parameters
//! travel inside the string, so raising them later only needs [`needs_rehash`] at the next login.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use super::{Error, Result, random};

/// Memory cost in KiB (OWASP Password Storage Cheat Sheet: 19 MiB).
pub const M_COST_KIB: u32 = 19_456;
/// Iterations.
pub const T_COST: u32 = 2;
/// Parallelism.
pub const P_COST: u32 = 1;
/// Shortest accepted password, in characters.
pub const MIN_CHARS: usize = 12;
/// Longest accepted password, in characters.
pub const MAX_CHARS: usize = 256;
/// Candidates longer than this (bytes) are refused by [`verify_password`] without hashing: no valid
/// password is that long (256 chars × 4 bytes), and it bounds the work an attacker can ask for.
const MAX_CANDIDATE_BYTES: usize = MAX_CHARS * 4;
const SALT_LEN: usize = 16;

fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|e| Error::Hashing(e.into()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with argon2id (m = 19456 KiB, t = 2, p = 1) and a fresh 16-byte salt from the
/// OS generator. Returns the PHC string. Guarantees: the result starts with `$argon2id$` and
/// [`verify_password`] accepts `password` against it. Does not check the policy (see
/// [`check_password_policy`]). CPU- and memory-heavy (~20 MiB, tens of ms): call it off the async
/// executor.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = random::bytes::<SALT_LEN>();
    let hash = hasher()?.hash_password_with_salt(password.as_bytes(), &salt).map_err(Error::Hashing)?;
    Ok(hash.to_string())
}

/// Whether `candidate` is the password `hash` was made from. The comparison of the computed and the
/// stored output is constant-time (argon2's `Output` equality). Returns `false` — never panics —
/// for a malformed hash, a hash of another algorithm than argon2id, or an over-long candidate.
/// Uses the parameters stored in the hash, so old hashes keep verifying after a parameter change.
pub fn verify_password(hash: &str, candidate: &str) -> bool {
    if candidate.len() > MAX_CANDIDATE_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        tracing::warn!("stored password hash is not a PHC string");
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        tracing::warn!("stored password hash is not argon2id");
        return false;
    }
    hasher().is_ok_and(|h| h.verify_password(candidate.as_bytes(), &parsed).is_ok())
}

/// Whether `hash` was made with other parameters than the current ones (or is unreadable), so the
/// password should be re-hashed after the next successful login.
pub fn needs_rehash(hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return true };
    let Ok(params) = Params::try_from(&parsed) else { return true };
    parsed.algorithm.as_str() != "argon2id"
        || parsed.version != Some(Version::V0x13.into())
        || (params.m_cost(), params.t_cost(), params.p_cost()) != (M_COST_KIB, T_COST, P_COST)
}

/// One reason a password was refused. All concern the form field `password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordProblem {
    /// Fewer than [`MIN_CHARS`] characters.
    TooShort { min: usize },
    /// More than [`MAX_CHARS`] characters.
    TooLong { max: usize },
    /// The same character repeated.
    SingleCharacter,
    /// On the embedded list of commonly used passwords.
    Common,
    /// Contains the local part of the user's email address.
    ContainsEmail,
}

impl PasswordProblem {
    /// The form field the problem belongs to.
    pub fn field(&self) -> &'static str {
        "password"
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PasswordProblem::TooShort { .. } => "too_short",
            PasswordProblem::TooLong { .. } => "too_long",
            PasswordProblem::SingleCharacter => "single_character",
            PasswordProblem::Common => "common",
            PasswordProblem::ContainsEmail => "contains_email",
        }
    }

    /// A human-readable explanation (never echoes the password).
    pub fn message(&self) -> String {
        match self {
            PasswordProblem::TooShort { min } => format!("must be at least {min} characters long"),
            PasswordProblem::TooLong { max } => format!("must be at most {max} characters long"),
            PasswordProblem::SingleCharacter => "must not be a single repeated character".into(),
            PasswordProblem::Common => "is too common; choose a less predictable password".into(),
            PasswordProblem::ContainsEmail => "must not contain your email address".into(),
        }
    }
}

/// Lower-cased common passwords of at least [`MIN_CHARS`] characters (shorter ones fail the length
/// rule anyway), one per line.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Checks `password` against the policy (NIST SP 800-63B style: length over composition rules):
/// 12..=256 characters, not one repeated character, not on the common-password list
/// (case-insensitive), and not containing the local part of `email` (case-insensitive, when that
/// part has at least 3 characters). Returns every problem found, so a form can show them together.
pub fn check_password_policy(password: &str, email: &str) -> std::result::Result<(), Vec<PasswordProblem>> {
    let mut problems = Vec::new();
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        problems.push(PasswordProblem::TooShort { min: MIN_CHARS });
    }
    if chars > MAX_CHARS {
        problems.push(PasswordProblem::TooLong { max: MAX_CHARS });
    }
    let mut it = password.chars();
    if let Some(first) = it.next()
        && it.all(|c| c == first)
    {
        problems.push(PasswordProblem::SingleCharacter);
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.lines().map(str::trim).any(|common| common == lower) {
        problems.push(PasswordProblem::Common);
    }
    if contains_email_local_part(&lower, email) {
        problems.push(PasswordProblem::ContainsEmail);
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn contains_email_local_part(lower_password: &str, email: &str) -> bool {
    let local = email.split('@').next().unwrap_or_default().trim().to_lowercase();
    local.chars().count() >= 3 && lower_password.contains(&local)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "plum tractor orbit 41";

    #[test]
    fn hash_then_verify() {
        let hash = hash_password(GOOD).expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password(&hash, GOOD));
        assert!(!verify_password(&hash, "plum tractor orbit 42"));
        assert!(!verify_password(&hash, ""));
        assert!(!needs_rehash(&hash));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash_password(GOOD).expect("hash"), hash_password(GOOD).expect("hash"));
    }

    #[test]
    fn malformed_or_foreign_hashes_never_verify() {
        for bad in ["", "$argon2id$", "plaintext", "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", "$$$$"] {
            assert!(!verify_password(bad, GOOD), "{bad:?}");
            assert!(needs_rehash(bad), "{bad:?}");
        }
    }

    #[test]
    fn weaker_parameters_need_a_rehash() {
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8, 1, 1, None).expect("params"))
            .hash_password_with_salt(GOOD.as_bytes(), &[7u8; 16])
            .expect("hash")
            .to_string();
        assert!(verify_password(&weak, GOOD), "old parameters still verify");
        assert!(needs_rehash(&weak));
    }

    #[test]
    fn over_long_candidates_are_refused_without_hashing() {
        let hash = hash_password(GOOD).expect("hash");
        assert!(!verify_password(&hash, &"x".repeat(MAX_CANDIDATE_BYTES + 1)));
    }

    fn codes(password: &str, email: &str) -> Vec<&'static str> {
        match check_password_policy(password, email) {
            Ok(()) => vec![],
            Err(p) => p.iter().map(PasswordProblem::code).collect(),
        }
    }

    #[test]
    fn policy() {
        assert_eq!(codes(GOOD, "ada@example.com"), Vec::<&str>::new());
        assert_eq!(codes("short", "ada@example.com"), ["too_short"]);
        assert_eq!(codes("ünïcödé-pässwörd", "x@y.z"), Vec::<&str>::new(), "length counts characters");
        assert_eq!(codes("ab", "x@y.z"), ["too_short"]);
        assert_eq!(codes(&"ab".repeat(129), "x@y.z"), ["too_long"]);
        assert_eq!(codes("aaaaaaaaaaaaaa", "x@y.z"), ["single_character"]);
        assert_eq!(codes("Password1234", "x@y.z"), ["common"]);
        assert_eq!(codes("QWERTYUIOP123", "x@y.z"), ["common"]);
        assert_eq!(codes("my-Ada.Lovelace-secret", "ada.lovelace@example.com"), ["contains_email"]);
        assert_eq!(codes("aaa", "aaa@example.com"), ["too_short", "single_character", "contains_email"]);
        assert_eq!(codes("abracadabra-42", "ab@example.com"), Vec::<&str>::new(), "2-char local parts ignored");
        assert_eq!(codes("", "x@y.z"), ["too_short"]);
    }

    #[test]
    fn problems_name_the_field_and_never_echo_the_password() {
        let Err(problems) = check_password_policy("hunter2", "x@y.z") else { panic!("expected problems") };
        for p in problems {
            assert_eq!(p.field(), "password");
            assert!(!p.message().contains("hunter2"));
        }
    }

    #[test]
    fn common_list_is_lower_case_and_long_enough_to_matter() {
        for line in COMMON_PASSWORDS.lines().filter(|l| !l.trim().is_empty()) {
            assert_eq!(line, line.to_lowercase(), "{line}");
            assert!(line.chars().count() >= MIN_CHARS, "{line} is caught by the length rule already");
        }
    }
}
