//! Randomness for secrets: always the operating system's CSPRNG (`getrandom(2)`), never a seeded or
//! thread-local generator. If the OS generator fails the process panics: that is not input-dependent,
//! and carrying on without randomness would mint guessable secrets.

use rand::TryRngCore;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::OsRng;

/// `N` bytes from the OS generator.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::RngCore::fill_bytes(&mut OsRng.unwrap_err(), &mut out);
    out
}

/// `len` characters of `[A-Za-z0-9]` (base62, ≈ 5.95 bits each) from the OS generator.
pub(crate) fn base62(len: usize) -> String {
    Alphanumeric.sample_string(&mut OsRng.unwrap_err(), len)
}
