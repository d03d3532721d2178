//! Quantile binning: each feature's finite training values cut into at most [`MAX_BINS`] bins at
//! midpoints between distinct values, so a split "bin ≤ b" is the same as "value ≤ edge b" on raw
//! values. Missing values (NaN, ±∞) get their own bin, [`MISSING`].

/// The most value bins per feature (their codes are `0..MAX_BINS`).
pub(super) const MAX_BINS: usize = 255;
/// The bin code of a missing value.
pub(super) const MISSING: u8 = 255;
/// Histogram slots per feature: the value bins and the missing bin.
pub(super) const SLOTS: usize = 256;

/// The training rows as bin codes, row-major, with each feature's bin edges.
#[derive(Debug)]
pub(super) struct Binned {
    pub p: usize,
    pub codes: Vec<u8>,
    /// Per feature, the ascending upper edges of all bins but the last: bin `b` holds the values in
    /// `(edges[b − 1], edges[b]]`.
    pub edges: Vec<Vec<f64>>,
}

impl Binned {
    /// Bins `x` (row-major, `p` values per row) into at most `max_bins` (≤ [`MAX_BINS`]) per feature.
    pub fn new(x: &[f64], p: usize, max_bins: usize) -> Binned {
        let n = x.len().checked_div(p).unwrap_or(0);
        let max_bins = max_bins.clamp(2, MAX_BINS);
        let mut column = Vec::with_capacity(n);
        let edges: Vec<Vec<f64>> = (0..p)
            .map(|j| {
                column.clear();
                column.extend(x.chunks_exact(p).map(|r| r[j]).filter(|v| v.is_finite()));
                column.sort_unstable_by(f64::total_cmp);
                edges_of(&column, max_bins)
            })
            .collect();
        let mut codes = vec![0u8; n * p];
        for (row, out) in x.chunks_exact(p).zip(codes.chunks_exact_mut(p)) {
            for j in 0..p {
                out[j] = code(&edges[j], row[j]);
            }
        }
        Binned { p, codes, edges }
    }

    /// How many value bins feature `j` has.
    pub fn bins(&self, j: usize) -> usize {
        self.edges[j].len() + 1
    }

    /// The raw threshold of "bin ≤ b" on feature `j`: its upper edge, or `f64::MAX` for the last
    /// bin (every finite value).
    pub fn threshold(&self, j: usize, b: usize) -> f64 {
        self.edges[j].get(b).copied().unwrap_or(f64::MAX)
    }
}

/// The bin of `v` given a feature's `edges`.
fn code(edges: &[f64], v: f64) -> u8 {
    if v.is_finite() {
        // At most MAX_BINS − 1 edges, so the index fits below MISSING.
        u8::try_from(edges.partition_point(|e| *e < v)).unwrap_or(MISSING - 1)
    } else {
        MISSING
    }
}

/// Edges cutting the sorted finite values `sorted` into at most `max_bins` bins of about equal
/// counts; every distinct value gets its own bin when there are few enough of them.
fn edges_of(sorted: &[f64], max_bins: usize) -> Vec<f64> {
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for &v in sorted {
        match distinct.last_mut() {
            Some((last, count)) if *last == v => *count += 1,
            _ => distinct.push((v, 1)),
        }
    }
    let midpoint = |k: usize| between(distinct[k].0, distinct[k + 1].0);
    if distinct.len() <= max_bins {
        return (0..distinct.len().saturating_sub(1)).map(midpoint).collect();
    }
    let n = sorted.len() as f64;
    let mut edges = Vec::with_capacity(max_bins - 1);
    let mut seen = 0usize;
    for (k, &(_, count)) in distinct[..distinct.len() - 1].iter().enumerate() {
        seen += count;
        // Cut after this value once the running count passes the next quantile.
        let next = (edges.len() + 1) as f64 * n / max_bins as f64;
        if seen as f64 >= next && edges.len() < max_bins - 1 {
            edges.push(midpoint(k));
        }
    }
    edges
}

/// A threshold separating `a < b`: the decimal with the fewest digits near their midpoint and
/// strictly between them that reads back from JSON exactly (see [`crate::stored`]); `a` itself
/// when they are too close for one.
fn between(a: f64, b: f64) -> f64 {
    let mid = a + (b - a) / 2.0;
    (1..=17)
        .map(|digits| crate::stored::short(mid, digits))
        .find(|&t| a < t && t < b && crate::stored::survives_json(t))
        .unwrap_or(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_a_bin_each_and_missing_its_own() {
        let x = [1.0, 3.0, 3.0, f64::NAN, 2.0, f64::INFINITY];
        let b = Binned::new(&x, 1, 255);
        assert_eq!(b.edges[0], [1.5, 2.5]);
        assert_eq!(b.codes, [0, 2, 2, MISSING, 1, MISSING]);
        // "bin ≤ b" is "value ≤ threshold" on the raw values.
        for (v, c) in x.iter().zip(&b.codes) {
            if v.is_finite() {
                for t in 0..b.bins(0) {
                    assert_eq!(*c as usize <= t, *v <= b.threshold(0, t));
                }
            }
        }
    }

    #[test]
    fn many_values_are_cut_at_quantiles() {
        let x: Vec<f64> = (0..10_000).map(|i| (i % 1000) as f64 * 0.5).collect();
        let b = Binned::new(&x, 1, 10);
        assert_eq!(b.bins(0), 10);
        let mut counts = [0usize; 10];
        for c in &b.codes {
            counts[*c as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c == 1000), "{counts:?}");
        let heavy: Vec<f64> = (0..1000).map(|i| if i < 900 { 0.0 } else { i as f64 }).collect();
        let b = Binned::new(&heavy, 1, 255);
        assert!(b.bins(0) <= 255 && b.codes.iter().filter(|c| **c == 0).count() == 900);
    }

    #[test]
    fn thresholds_are_short_decimals_between_the_values() {
        assert_eq!(between(3.0, 4.0), 3.5);
        assert_eq!(between(1.0, 100.0), 50.0);
        assert_eq!(between(0.1234567, 0.1234999), 0.12348);
        let (a, b) = (0.4970189618720672, 0.49702500001);
        let t = between(a, b);
        assert!(a < t && t < b && t.to_string().len() <= 8, "{t}");
        assert_eq!(between(1.0, f64::from_bits(1.0f64.to_bits() + 1)), 1.0, "adjacent values");
    }
}
