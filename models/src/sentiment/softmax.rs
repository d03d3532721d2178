//! Multinomial logistic (softmax) regression with an L2 penalty, in plain Rust: standardised inputs,
//! full-batch Nesterov-accelerated gradient descent with the step set from the data's own curvature
//! bound (power iteration on XᵀX), a fixed number of iterations and zero initial weights — so the
//! same rows always give the same model, to the bit.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::logistic::Standardizer;

/// Gradient steps; the loss is convex, and this is well past convergence for the data sizes here.
const ITERATIONS: usize = 600;

/// A fitted classifier over `classes` outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Softmax {
    pub standardizer: Standardizer,
    /// Row-major `classes × p` weights on the standardised inputs.
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
    pub classes: usize,
    /// The L2 penalty it was fitted with (on the mean log-loss).
    pub l2: f64,
}

fn softmax_in_place(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    z.iter_mut().for_each(|v| *v /= sum);
}

/// The largest eigenvalue of XᵀX / n (standardised rows), by power iteration from a fixed start.
fn curvature(x: &[f64], n: usize, p: usize) -> f64 {
    let mut v = vec![1.0 / (p as f64).sqrt(); p];
    let mut lambda = 1.0;
    for _ in 0..50 {
        let mut w = vec![0.0; p];
        for row in x.chunks_exact(p) {
            let d: f64 = row.iter().zip(&v).map(|(a, b)| a * b).sum();
            w.iter_mut().zip(row).for_each(|(wi, r)| *wi += d * r);
        }
        let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm == 0.0 {
            break;
        }
        lambda = norm / n as f64;
        v = w.into_iter().map(|a| a / norm).collect();
    }
    lambda
}

impl Softmax {
    /// Fits `classes` outputs to rows `x` (row-major, `p` per row) with labels `y` in `0..classes`.
    pub fn fit(x: &[f64], p: usize, y: &[usize], classes: usize, l2: f64) -> Result<Softmax> {
        let n = y.len();
        if n == 0 || p == 0 || x.len() != n * p {
            return Err(Error::Invalid(format!("softmax: {} values for {n} rows of {p}", x.len())));
        }
        if let Some(bad) = y.iter().find(|&&c| c >= classes) {
            return Err(Error::Invalid(format!("softmax: label {bad} outside 0..{classes}")));
        }
        let standardizer = Standardizer::fit(x, p);
        let z: Vec<f64> = x
            .chunks_exact(p)
            .flat_map(|row| (0..p).map(|j| (row[j] - standardizer.mean[j]) / standardizer.scale[j]))
            .collect();
        // The softmax log-loss has a Hessian bounded by ½·XᵀX/n (plus the penalty; +1 for the bias).
        let step = 1.0 / (0.5 * (curvature(&z, n, p) + 1.0) + l2);
        let k = classes * (p + 1); // weights then biases
        let (mut theta, mut prev) = (vec![0.0; k], vec![0.0; k]);
        for t in 1..=ITERATIONS {
            let momentum = (t as f64 - 1.0) / (t as f64 + 2.0);
            let look: Vec<f64> = theta.iter().zip(&prev).map(|(a, b)| a + momentum * (a - b)).collect();
            let grad = gradient(&z, p, y, classes, l2, &look);
            prev = theta;
            theta = look.iter().zip(&grad).map(|(a, g)| a - step * g).collect();
        }
        let (weights, bias) = theta.split_at(classes * p);
        Ok(Softmax { standardizer, weights: weights.to_vec(), bias: bias.to_vec(), classes, l2 })
    }

    /// Class probabilities of one row.
    pub fn probabilities(&self, row: &[f64]) -> Vec<f64> {
        let p = self.standardizer.mean.len();
        let z: Vec<f64> = (0..p)
            .map(|j| (row.get(j).copied().unwrap_or(0.0) - self.standardizer.mean[j]) / self.standardizer.scale[j])
            .collect();
        let mut out: Vec<f64> = (0..self.classes)
            .map(|c| self.bias[c] + self.weights[c * p..(c + 1) * p].iter().zip(&z).map(|(w, v)| w * v).sum::<f64>())
            .collect();
        softmax_in_place(&mut out);
        out
    }

    /// The most probable class of one row.
    pub fn predict(&self, row: &[f64]) -> usize {
        argmax(&self.probabilities(row))
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

/// Gradient of mean cross-entropy + ½·l2·‖W‖² (biases unpenalised) at `theta`.
fn gradient(z: &[f64], p: usize, y: &[usize], classes: usize, l2: f64, theta: &[f64]) -> Vec<f64> {
    let n = y.len() as f64;
    let (w, b) = theta.split_at(classes * p);
    let mut grad = vec![0.0; theta.len()];
    let mut scores = vec![0.0; classes];
    for (row, &label) in z.chunks_exact(p).zip(y) {
        for (c, score) in scores.iter_mut().enumerate() {
            *score = b[c] + w[c * p..(c + 1) * p].iter().zip(row).map(|(a, v)| a * v).sum::<f64>();
        }
        softmax_in_place(&mut scores);
        for (c, &score) in scores.iter().enumerate() {
            let err = (score - if c == label { 1.0 } else { 0.0 }) / n;
            grad[c * p..(c + 1) * p].iter_mut().zip(row).for_each(|(g, v)| *g += err * v);
            grad[classes * p + c] += err;
        }
    }
    grad[..classes * p].iter_mut().zip(w).for_each(|(g, wi)| *g += l2 * wi);
    grad
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated blobs in 2-D plus a noise column.
    fn toy() -> (Vec<f64>, Vec<usize>) {
        let centres = [(-2.0, 0.0), (0.0, 2.0), (2.0, 0.0)];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..90 {
            let c = i % 3;
            let jitter = ((i * 37 % 11) as f64 - 5.0) / 10.0;
            x.extend([centres[c].0 + jitter, centres[c].1 - jitter, (i % 7) as f64]);
            y.push(c);
        }
        (x, y)
    }

    #[test]
    fn separates_a_toy_set_deterministically() {
        let (x, y) = toy();
        let m = Softmax::fit(&x, 3, &y, 3, 1e-3).expect("fit");
        let right = x.chunks_exact(3).zip(&y).filter(|(row, c)| m.predict(row) == **c).count();
        assert_eq!(right, 90, "all training points");
        assert_eq!(m.predict(&[-3.0, 0.0, 3.0]), 0);
        assert_eq!(m.predict(&[0.0, 3.0, 3.0]), 1);
        let probs = m.probabilities(&[3.0, 0.0, 3.0]);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-12 && probs[2] > 0.9, "{probs:?}");
        assert_eq!(Softmax::fit(&x, 3, &y, 3, 1e-3).expect("fit"), m, "the same rows give the same model");
    }

    #[test]
    fn a_stronger_penalty_shrinks_the_weights() {
        let (x, y) = toy();
        let norm = |m: &Softmax| m.weights.iter().map(|w| w * w).sum::<f64>();
        let (loose, tight) =
            (Softmax::fit(&x, 3, &y, 3, 1e-3).expect("fit"), Softmax::fit(&x, 3, &y, 3, 1.0).expect("fit"));
        assert!(norm(&tight) < norm(&loose));
    }

    #[test]
    fn refuses_bad_input() {
        assert!(Softmax::fit(&[1.0, 2.0], 2, &[0, 1], 2, 0.1).is_err(), "rows vs values");
        assert!(Softmax::fit(&[1.0, 2.0], 1, &[0, 3], 2, 0.1).is_err(), "label out of range");
    }
}
