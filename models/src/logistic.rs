//! L2-regularised logistic regression on standardised features, fitted by Newton's method (IRLS),
//! with a Gaussian prior on the weights: centred on zero it is ridge regression; centred on expert
//! weights it is the Bayesian "prior model" that a tenant with few outcomes starts from and that its
//! own data pulls away from as outcomes accumulate.
//!
//! Explanations are exact: the log-odds of a record is `intercept + Σ contribution_j` with
//! `contribution_j = w_j · (x_j − mean_j) / scale_j`, i.e. each feature's push relative to the
//! average training record. The module owns fitting, scoring and these contributions; calibration
//! and metrics live in [`crate::metrics`]. A fitted model's numbers are snapped to values that
//! come back exactly from the JSON a model version is stored as ([`crate::stored`]).

use crate::error::{Error, Result};
use crate::stored;

/// Per-feature centring and scaling learnt from the training rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Standardizer {
    /// Means and standard deviations of the columns of `x` (row-major, `p` per row); a constant
    /// column gets scale 1 so it contributes nothing.
    pub fn fit(x: &[f64], p: usize) -> Standardizer {
        let n = x.len().checked_div(p).unwrap_or(0);
        let mut mean = vec![0.0; p];
        let mut scale = vec![1.0; p];
        if n == 0 {
            return Standardizer { mean, scale };
        }
        for row in x.chunks_exact(p) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0; p];
        for row in x.chunks_exact(p) {
            for j in 0..p {
                var[j] += (row[j] - mean[j]).powi(2);
            }
        }
        for j in 0..p {
            let sd = (var[j] / n as f64).sqrt();
            scale[j] = if sd > 1e-12 { sd } else { 1.0 };
        }
        Standardizer { mean, scale }
    }

    /// The same, with every number snapped to one that JSON reads back exactly.
    fn snapped(self) -> Standardizer {
        let snap = |v: Vec<f64>| v.into_iter().map(stored::snap).collect();
        Standardizer { mean: snap(self.mean), scale: snap(self.scale) }
    }

    fn z(&self, row: &[f64], j: usize) -> f64 {
        (row[j] - self.mean[j]) / self.scale[j]
    }
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Logistic {
    pub standardizer: Standardizer,
    /// Weights on the standardised features.
    pub weights: Vec<f64>,
    pub intercept: f64,
    /// Newton iterations used.
    pub iterations: usize,
}

/// The prior on the weights (standardised scale): `N(mean, 1/strength)` per weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    pub mean: Vec<f64>,
    pub strength: f64,
}

impl Prior {
    /// Ridge: weights pulled towards zero.
    pub fn ridge(p: usize, strength: f64) -> Prior {
        Prior { mean: vec![0.0; p], strength }
    }
}

const MAX_ITERATIONS: usize = 100;

impl Logistic {
    /// Whether a stored model is whole and fits rows of `p` features: a weight, mean and positive
    /// scale per feature, all finite (safe to score and explain; the twin of `Boosted::check`).
    pub fn check(&self, p: usize) -> bool {
        let s = &self.standardizer;
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        self.weights.len() == p
            && s.mean.len() == p
            && s.scale.len() == p
            && finite(&self.weights)
            && finite(&s.mean)
            && s.scale.iter().all(|x| x.is_finite() && *x > 0.0)
            && self.intercept.is_finite()
    }

    /// Fits on rows `x` (row-major, `p` per row) with labels `y`. The intercept is not penalised.
    pub fn fit(x: &[f64], p: usize, y: &[bool], prior: &Prior) -> Result<Logistic> {
        if p == 0 || x.len() != y.len() * p {
            return Err(Error::Invalid(format!("{} values for {} rows of {p} features", x.len(), y.len())));
        }
        if prior.mean.len() != p || prior.strength.is_nan() || prior.strength < 0.0 {
            return Err(Error::Invalid("the prior does not match the features".into()));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("feature value {} of row {} is not finite", i % p, i / p)));
        }
        let standardizer = Standardizer::fit(x, p);
        let n = y.len();
        let k = p + 1; // weights, then the intercept
        // Start from the prior and the base rate.
        let positives = y.iter().filter(|l| **l).count() as f64;
        let rate = ((positives + 0.5) / (n as f64 + 1.0)).clamp(1e-6, 1.0 - 1e-6);
        let mut beta: Vec<f64> = prior.mean.clone();
        beta.push((rate / (1.0 - rate)).ln());
        let mut z = vec![0.0; p];
        let mut iterations = 0;
        for _ in 0..MAX_ITERATIONS {
            iterations += 1;
            let mut grad = vec![0.0; k];
            let mut hess = vec![0.0; k * k];
            for (row, &label) in x.chunks_exact(p).zip(y) {
                for (j, zj) in z.iter_mut().enumerate() {
                    *zj = standardizer.z(row, j);
                }
                let eta = beta[p] + (0..p).map(|j| beta[j] * z[j]).sum::<f64>();
                let mu = sigmoid(eta);
                let r = mu - f64::from(u8::from(label));
                let w = (mu * (1.0 - mu)).max(1e-12);
                for a in 0..k {
                    let za = if a == p { 1.0 } else { z[a] };
                    grad[a] += r * za;
                    for b in a..k {
                        let zb = if b == p { 1.0 } else { z[b] };
                        hess[a * k + b] += w * za * zb;
                    }
                }
            }
            for j in 0..p {
                grad[j] += prior.strength * (beta[j] - prior.mean[j]);
                hess[j * k + j] += prior.strength;
            }
            for a in 0..k {
                for b in 0..a {
                    hess[a * k + b] = hess[b * k + a];
                }
            }
            // A tiny ridge keeps separable or collinear data solvable.
            for a in 0..k {
                hess[a * k + a] += 1e-9;
            }
            let step = solve_spd(&mut hess, &grad, k)
                .ok_or_else(|| Error::Invalid("the training data gave a singular system".into()))?;
            // Newton's step, halved until the penalised loss does not grow (it can overshoot on
            // nearly separable data).
            let before = objective(x, p, y, &standardizer, &beta, prior);
            let mut t = 1.0;
            let mut next: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b - s).collect();
            while t > 1e-6 && objective(x, p, y, &standardizer, &next, prior) > before {
                t /= 2.0;
                next = beta.iter().zip(&step).map(|(b, s)| b - t * s).collect();
            }
            let largest = step.iter().fold(0.0f64, |m, s| m.max((t * s).abs()));
            beta = next;
            if largest < 1e-9 {
                break;
            }
        }
        let intercept = stored::snap(beta.pop().unwrap_or_default());
        let weights = beta.into_iter().map(stored::snap).collect();
        Ok(Logistic { standardizer: standardizer.snapped(), weights, intercept, iterations })
    }

    /// A model with given weights (on standardised features) — the expert prior as a model.
    pub fn from_parts(standardizer: Standardizer, weights: Vec<f64>, intercept: f64) -> Logistic {
        let weights = weights.into_iter().map(stored::snap).collect();
        Logistic { standardizer: standardizer.snapped(), weights, intercept: stored::snap(intercept), iterations: 0 }
    }

    /// Each feature's contribution to the log-odds of `row`.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        (0..self.weights.len()).map(|j| self.weights[j] * self.standardizer.z(row, j)).collect()
    }

    /// The log-odds of `row`.
    pub fn logit(&self, row: &[f64]) -> f64 {
        self.intercept + self.contributions(row).iter().sum::<f64>()
    }

    /// The probability of the positive class.
    pub fn predict(&self, row: &[f64]) -> f64 {
        sigmoid(self.logit(row))
    }
}

/// Negative log-likelihood plus the prior's penalty, for coefficients `beta` (weights, intercept).
fn objective(x: &[f64], p: usize, y: &[bool], s: &Standardizer, beta: &[f64], prior: &Prior) -> f64 {
    let mut total = 0.0;
    for (row, &label) in x.chunks_exact(p).zip(y) {
        let eta = beta[p] + (0..p).map(|j| beta[j] * s.z(row, j)).sum::<f64>();
        // log(1 + e^η) − y·η, computed without overflow.
        let softplus = if eta > 0.0 { eta + (-eta).exp().ln_1p() } else { eta.exp().ln_1p() };
        total += softplus - if label { eta } else { 0.0 };
    }
    let penalty: f64 = (0..p).map(|j| (beta[j] - prior.mean[j]).powi(2)).sum();
    total + 0.5 * prior.strength * penalty
}

pub fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// Solves `A x = b` for a symmetric positive-definite `A` (k×k, row-major; overwritten by its
/// Cholesky factor). `None` if `A` is not positive definite.
fn solve_spd(a: &mut [f64], b: &[f64], k: usize) -> Option<Vec<f64>> {
    for j in 0..k {
        let mut d = a[j * k + j];
        for m in 0..j {
            d -= a[j * k + m] * a[j * k + m];
        }
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for m in 0..j {
                s -= a[i * k + m] * a[j * k + m];
            }
            a[i * k + j] = s / d;
        }
    }
    let mut y = vec![0.0; k];
    for i in 0..k {
        let mut s = b[i];
        for m in 0..i {
            s -= a[i * k + m] * y[m];
        }
        y[i] = s / a[i * k + i];
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let mut s = y[i];
        for m in i + 1..k {
            s -= a[m * k + i] * x[m];
        }
        x[i] = s / a[i * k + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of uniforms in (0, 1).
    fn uniforms(seed: u64) -> impl Iterator<Item = f64> {
        let mut s = seed;
        std::iter::repeat_with(move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        })
    }

    /// Rows from a known logistic model: logit = -1 + 2·x0 − 1·x1 + 0·x2, x ~ U(-1, 1)·3.
    fn sample(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
        let mut u = uniforms(seed);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let row: Vec<f64> = (0..3).map(|_| (u.next().unwrap_or(0.5) - 0.5) * 6.0).collect();
            let p = sigmoid(-1.0 + 2.0 * row[0] - row[1]);
            y.push(u.next().unwrap_or(0.5) < p);
            x.extend(row);
        }
        (x, y)
    }

    #[test]
    fn recovers_the_generating_weights() {
        let (x, y) = sample(20_000, 7);
        let m = Logistic::fit(&x, 3, &y, &Prior::ridge(3, 1e-6)).expect("fit");
        // Back to the raw scale: w_raw = w / scale, b_raw = b − Σ w_raw·mean.
        let raw: Vec<f64> = (0..3).map(|j| m.weights[j] / m.standardizer.scale[j]).collect();
        let b = m.intercept - (0..3).map(|j| raw[j] * m.standardizer.mean[j]).sum::<f64>();
        assert!((raw[0] - 2.0).abs() < 0.1, "{raw:?}");
        assert!((raw[1] + 1.0).abs() < 0.08, "{raw:?}");
        assert!(raw[2].abs() < 0.06, "{raw:?}");
        assert!((b + 1.0).abs() < 0.1, "{b}");
        assert!(m.iterations < 20);
    }

    #[test]
    fn contributions_sum_to_the_log_odds() {
        let (x, y) = sample(2_000, 11);
        let m = Logistic::fit(&x, 3, &y, &Prior::ridge(3, 1.0)).expect("fit");
        for row in x.chunks_exact(3).take(50) {
            let c = m.contributions(row);
            assert!((m.intercept + c.iter().sum::<f64>() - m.logit(row)).abs() < 1e-12);
            // x0 pushes up where it is above its mean, x1 down.
            assert_eq!(c[0] > 0.0, row[0] > m.standardizer.mean[0]);
            assert_eq!(c[1] > 0.0, row[1] < m.standardizer.mean[1]);
        }
    }

    #[test]
    fn a_strong_prior_holds_the_weights_and_data_pulls_them_away() {
        let prior = Prior { mean: vec![0.0, 0.0, 1.5], strength: 1e6 };
        let (x, y) = sample(500, 3);
        let held = Logistic::fit(&x, 3, &y, &prior).expect("fit");
        assert!((held.weights[2] - 1.5).abs() < 1e-2, "{:?}", held.weights);
        let weak = Prior { strength: 1e-3, ..prior };
        let learnt = Logistic::fit(&x, 3, &y, &weak).expect("fit");
        assert!(learnt.weights[2].abs() < 0.4, "{:?}", learnt.weights);
        assert!(learnt.weights[0] > 2.0, "{:?}", learnt.weights);
    }

    #[test]
    fn separable_and_constant_data_still_fit() {
        let x = vec![0.0, 5.0, 1.0, 5.0, 2.0, 5.0, 3.0, 5.0];
        let y = vec![false, false, true, true];
        let m = Logistic::fit(&x, 2, &y, &Prior::ridge(2, 1e-2)).expect("fit");
        assert!(m.predict(&[3.0, 5.0]) > 0.9 && m.predict(&[0.0, 5.0]) < 0.1);
        assert_eq!(m.weights[1], 0.0);
        assert!(Logistic::fit(&[f64::NAN, 1.0], 2, &[true], &Prior::ridge(2, 1.0)).is_err());
        assert!(Logistic::fit(&[1.0], 2, &[true], &Prior::ridge(2, 1.0)).is_err());
    }
}
