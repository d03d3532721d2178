//! How good a probabilistic classifier is — ranking (ROC AUC), probability quality (log-loss, Brier,
//! expected calibration error) — and Platt calibration of its scores.

use crate::logistic::sigmoid;
use crate::stored;

/// ROC AUC: the probability that a random positive scores above a random negative (ties count
/// half). `None` without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut positives) = (0.0, 0usize);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Mean negative log-likelihood (natural log), probabilities clipped to [1e-15, 1 − 1e-15].
pub fn log_loss(probs: &[f64], labels: &[bool]) -> f64 {
    let n = probs.len().max(1) as f64;
    probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / n
}

/// Mean squared error of the probabilities.
pub fn brier(probs: &[f64], labels: &[bool]) -> f64 {
    let n = probs.len().max(1) as f64;
    probs.iter().zip(labels).map(|(&p, &y)| (p - f64::from(u8::from(y))).powi(2)).sum::<f64>() / n
}

/// Expected calibration error over `bins` equal-width probability bins: the row-weighted mean of
/// |mean predicted − observed rate| per bin.
pub fn calibration_error(probs: &[f64], labels: &[bool], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for (&p, &y) in probs.iter().zip(labels) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += f64::from(u8::from(y));
        count[b] += 1;
    }
    let n = probs.len().max(1) as f64;
    (0..bins).filter(|&b| count[b] > 0).map(|b| (sum_p[b] - sum_y[b]).abs()).sum::<f64>() / n
}

/// Platt scaling: `p = σ(a · logit + b)`, fitted by Newton's method on held-out rows.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    pub const IDENTITY: Platt = Platt { a: 1.0, b: 0.0 };

    /// Fits on held-out `(logit, label)` pairs, with Platt's smoothed targets so that a perfectly
    /// separated hold-out does not drive the slope to infinity.
    pub fn fit(logits: &[f64], labels: &[bool]) -> Platt {
        let positives = labels.iter().filter(|l| **l).count() as f64;
        let negatives = labels.len() as f64 - positives;
        if positives == 0.0 || negatives == 0.0 {
            return Platt::IDENTITY;
        }
        let hi = (positives + 1.0) / (positives + 2.0);
        let lo = 1.0 / (negatives + 2.0);
        let loss = |a: f64, b: f64| -> f64 {
            logits
                .iter()
                .zip(labels)
                .map(|(&f, &y)| {
                    let t = if y { hi } else { lo };
                    let p = sigmoid(a * f + b).clamp(1e-300, 1.0 - 1e-16);
                    -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
                })
                .sum()
        };
        let (mut a, mut b) = (1.0, 0.0);
        for _ in 0..100 {
            let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for (&f, &y) in logits.iter().zip(labels) {
                let t = if y { hi } else { lo };
                let p = sigmoid(a * f + b);
                let w = (p * (1.0 - p)).max(1e-12);
                g0 += (p - t) * f;
                g1 += p - t;
                h00 += w * f * f;
                h01 += w * f;
                h11 += w;
            }
            let det = h00 * h11 - h01 * h01;
            if det.abs() < 1e-18 {
                break;
            }
            let da = (h11 * g0 - h01 * g1) / det;
            let db = (h00 * g1 - h01 * g0) / det;
            // Newton's step, halved until the loss does not grow (plain Newton can overshoot).
            let before = loss(a, b);
            let mut t = 1.0;
            while t > 1e-6 && loss(a - t * da, b - t * db) > before {
                t /= 2.0;
            }
            a -= t * da;
            b -= t * db;
            if (t * da).abs().max((t * db).abs()) < 1e-10 {
                break;
            }
        }
        // Snapped so that a stored calibration reads back exactly (see `crate::stored`).
        if a.is_finite() && b.is_finite() { Platt { a: stored::snap(a), b: stored::snap(b) } } else { Platt::IDENTITY }
    }

    pub fn apply(&self, logit: f64) -> f64 {
        sigmoid(self.a * logit + self.b)
    }

    /// Whether a stored calibration is safe to apply: both numbers finite (the twin of
    /// `Logistic::check` and `Boosted::check`).
    pub fn check(&self) -> bool {
        self.a.is_finite() && self.b.is_finite()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calibration_with_a_non_finite_number_is_refused() {
        assert!(Platt::IDENTITY.check() && Platt { a: -3.5, b: 1e300 }.check());
        assert!(!Platt { a: f64::NAN, b: 0.0 }.check() && !Platt { a: 1.0, b: f64::INFINITY }.check());
    }

    #[test]
    fn auc_counts_pairs_and_ties() {
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Some(0.75));
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auc(&[0.9, 0.1], &[false, true]), Some(0.0));
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn probability_scores_match_hand_computation() {
        let (p, y) = ([0.9, 0.2], [true, false]);
        assert!((log_loss(&p, &y) - (-(0.9f64.ln()) - 0.8f64.ln()) / 2.0).abs() < 1e-12);
        assert!((brier(&p, &y) - (0.01 + 0.04) / 2.0).abs() < 1e-12);
        // Bins of 0.5: {0.2 → 0}, {0.9 → 1}: |0.2 − 0| + |0.9 − 1| over 2 rows.
        assert!((calibration_error(&p, &y, 2) - 0.15).abs() < 1e-12);
    }

    #[test]
    fn platt_undoes_a_miscalibration() {
        // True probability σ(t); the model reports logits 3t + 1 (over-confident, shifted).
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..4000 {
            let t = (i as f64 / 4000.0 - 0.5) * 8.0;
            let p = sigmoid(t);
            // Deterministic labels at the right rate: positive when a low-discrepancy draw is below p.
            let u = (i as f64 * 0.618_033_988_75).fract();
            logits.push(3.0 * t + 1.0);
            labels.push(u < p);
        }
        let platt = Platt::fit(&logits, &labels);
        assert!((platt.a - 1.0 / 3.0).abs() < 0.03, "{platt:?}");
        assert!((platt.b + 1.0 / 3.0).abs() < 0.05, "{platt:?}");
        let before: Vec<f64> = logits.iter().map(|&f| sigmoid(f)).collect();
        let after: Vec<f64> = logits.iter().map(|&f| platt.apply(f)).collect();
        assert!(calibration_error(&after, &labels, 10) < calibration_error(&before, &labels, 10) / 3.0);
    }
}
