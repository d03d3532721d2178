//! Deterministic randomness: every stream is a `ChaCha8Rng` seeded from the run's seed and a path of
//! labels (tenant, shard, table), so each table draws from its own stream and a change to one table's
//! generation does not shift the values of another. Plus the few distributions the generator needs.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

pub(crate) type SeedRng = ChaCha8Rng;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// FNV-1a of a label: stable across platforms and releases (unlike `std`'s hasher).
fn label_hash(label: &str) -> u64 {
    label.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A stream identified by the run seed and a path of numbers and labels.
pub(crate) fn stream(seed: u64, path: &[u64], label: &str) -> SeedRng {
    let mut h = splitmix(seed);
    for p in path {
        h = splitmix(h ^ splitmix(*p));
    }
    h = splitmix(h ^ label_hash(label));
    SeedRng::seed_from_u64(h)
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Bernoulli trial that tolerates probabilities outside `[0, 1]` and NaN (treated as 0).
pub(crate) fn chance(rng: &mut impl Rng, p: f64) -> bool {
    if p.is_nan() || p <= 0.0 {
        return false;
    }
    rng.random_bool(p.min(1.0))
}

pub(crate) fn normal(rng: &mut impl Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// Log-normal with the given median and log-space standard deviation.
pub(crate) fn lognormal(rng: &mut impl Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

pub(crate) fn poisson(rng: &mut impl Rng, lambda: f64) -> u32 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    match Poisson::new(lambda) {
        Ok(p) => p.sample(rng).min(f64::from(u32::MAX)) as u32,
        Err(_) => lambda.round() as u32,
    }
}

/// Uniform in `[lo, hi)`; `lo` when the range is empty.
pub(crate) fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return lo;
    }
    rng.random_range(lo..hi)
}

/// Uniform integer in `[lo, hi)`; `lo` when the range is empty.
pub(crate) fn between(rng: &mut impl Rng, lo: i64, hi: i64) -> i64 {
    if hi <= lo {
        return lo;
    }
    rng.random_range(lo..hi)
}

/// One element of a non-empty static list.
pub(crate) fn pick<T: Copy>(rng: &mut impl Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len().max(1))]
}

/// Index of an element of `weights`, proportional to the weight.
pub(crate) fn weighted_index(rng: &mut impl Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = uniform(rng, 0.0, total);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len().saturating_sub(1)
}

/// One value of a static list of `(value, weight)` pairs.
pub(crate) fn weighted<T: Copy>(rng: &mut impl Rng, items: &[(T, f64)]) -> T {
    let weights: Vec<f64> = items.iter().map(|(_, w)| *w).collect();
    items[weighted_index(rng, &weights)].0
}

/// A value in `[0, 1)` whose density rises linearly by the factor `1 + growth` from 0 to 1:
/// a business that grows over the simulated history creates more records lately.
pub(crate) fn growth_fraction(rng: &mut impl Rng, growth: f64) -> f64 {
    let u: f64 = rng.random();
    if growth.abs() < 1e-9 {
        return u;
    }
    ((1.0 + growth * (2.0 + growth) * u).sqrt() - 1.0) / growth
}

/// 32 random bytes as lower-case hex (tokens, keys).
pub(crate) fn hex_token(rng: &mut impl Rng, bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rng.random()).collect();
    hex::encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_stable_and_distinct() {
        let a: u64 = stream(7, &[1, 2], "accounts").random();
        let b: u64 = stream(7, &[1, 2], "accounts").random();
        let c: u64 = stream(7, &[1, 2], "contacts").random();
        let d: u64 = stream(8, &[1, 2], "accounts").random();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn growth_fraction_leans_late() {
        let mut rng = stream(1, &[], "t");
        let late = (0..10_000).filter(|_| growth_fraction(&mut rng, 1.0) > 0.5).count();
        assert!((5_600..6_100).contains(&late), "{late}"); // (0.5 + 0.375) / 1.5 = 0.583
    }

    #[test]
    fn samplers_handle_edge_cases() {
        let mut rng = stream(1, &[], "t");
        assert_eq!(poisson(&mut rng, 0.0), 0);
        assert!(!chance(&mut rng, f64::NAN));
        assert!(chance(&mut rng, 2.0));
        assert_eq!(between(&mut rng, 5, 5), 5);
        assert_eq!(weighted_index(&mut rng, &[0.0, 0.0, 1.0]), 2);
    }
}
