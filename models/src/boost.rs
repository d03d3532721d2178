//! Histogram gradient-boosted decision trees for a binary outcome, written here (no heavy
//! dependency): the second model family of [`crate::scoring`], for outcomes that hang on
//! interactions a linear model cannot express.
//!
//! The module owns fitting, scoring, the stored form of a model and its exact explanations:
//! - each feature's finite training values are cut into at most 255 quantile bins (`bins`); missing
//!   values (NaN, ±∞) get a bin of their own and each split learns which side they go;
//! - each round fits one tree to the gradient and hessian of the logistic loss (`grow`), best leaf
//!   first, limited by leaves and depth, with an L2 penalty on leaf values, a minimum of rows and of
//!   hessian per leaf, and shrinkage;
//! - with a validation slice (the latest cut-offs, never a random sample) boosting stops once
//!   `patience` rounds did not improve its log-loss, and keeps the best round count;
//! - [`Boosted::contributions`] are path-dependent TreeSHAP values (`shap`): with
//!   [`Boosted::expected_logit`] they add up to [`Boosted::logit`] for every row.
//!
//! Invariants: fitting is deterministic (no randomness; ties go to the earliest feature, bin and
//! node); a stored tree's child references point forward (inner node `i` has children `> i`), so a
//! checked model ([`Boosted::check`]) cannot loop.

mod bins;
mod grow;
mod shap;
#[cfg(test)]
mod tests;

use std::time::Instant;

use tracing::debug;

use crate::error::{Error, Result};
use crate::logistic::sigmoid;
use crate::stored;

/// How trees are grown and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The most boosting rounds (one tree each).
    pub rounds: usize,
    /// Shrinkage: each tree's leaf values are multiplied by it.
    pub learning_rate: f64,
    pub max_leaves: usize,
    /// Splits from the root to the deepest leaf.
    pub max_depth: usize,
    pub min_leaf_rows: usize,
    /// The least hessian (∑ p(1 − p)) a leaf may have.
    pub min_hessian: f64,
    /// L2 penalty on leaf values.
    pub l2: f64,
    /// Value bins per feature (at most 255).
    pub max_bins: usize,
    /// Rounds without a better validation log-loss before boosting stops.
    pub patience: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            rounds: 300,
            learning_rate: 0.1,
            max_leaves: 31,
            max_depth: 8,
            min_leaf_rows: 20,
            min_hessian: 1e-3,
            l2: 1.0,
            max_bins: 255,
            patience: 20,
        }
    }
}

/// The deepest tree a stored model may hold (explaining recurses once per level); fitting stays
/// far below it ([`Config::max_depth`]).
const MAX_STORED_DEPTH: usize = 64;

/// One tree, stored compactly (the layout of LightGBM's model files): inner nodes and leaves in
/// separate arrays. A child reference `≥ 0` is an inner node, `−(k + 1)` is leaf `k`; inner node 0 is
/// the root (a tree without inner nodes is the single leaf 0). A row goes left when its value is
/// `≤ threshold`, or when it is missing (not finite) and `missing_left`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tree {
    pub feature: Vec<u32>,
    pub threshold: Vec<f64>,
    pub missing_left: Vec<bool>,
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    /// Training rows through each inner node.
    pub cover: Vec<u32>,
    /// Leaf values (log-odds, shrinkage applied).
    pub value: Vec<f64>,
    /// Training rows in each leaf.
    pub leaf_cover: Vec<u32>,
}

impl Tree {
    fn goes_left(&self, i: usize, x: f64) -> bool {
        if x.is_finite() { x <= self.threshold[i] } else { self.missing_left[i] }
    }

    /// The leaf value of `row`.
    fn predict(&self, row: &[f64]) -> f64 {
        let mut at = if self.feature.is_empty() { -1 } else { 0 };
        while at >= 0 {
            let i = at as usize;
            at = if self.goes_left(i, row[self.feature[i] as usize]) { self.left[i] } else { self.right[i] };
        }
        self.value[!at as usize]
    }

    /// The cover-weighted mean leaf value: the tree's expected output over the training rows.
    fn expected(&self) -> f64 {
        let total: f64 = self.leaf_cover.iter().map(|&c| f64::from(c)).sum();
        self.value.iter().zip(&self.leaf_cover).map(|(v, &c)| v * f64::from(c)).sum::<f64>() / total
    }

    /// Whether the arrays fit together and describe a finite tree over `p` features.
    fn check(&self, p: usize) -> bool {
        let inner = self.feature.len();
        let leaves = self.value.len();
        let lens = [self.threshold.len(), self.missing_left.len(), self.left.len(), self.right.len(), self.cover.len()];
        let forward = |i: usize, r: i32| {
            if r >= 0 { (r as usize) > i && (r as usize) < inner } else { (!r as usize) < leaves }
        };
        lens.iter().all(|&l| l == inner)
            && leaves == inner + 1
            && self.leaf_cover.len() == leaves
            && self.feature.iter().all(|&f| (f as usize) < p)
            && self.threshold.iter().chain(&self.value).all(|v| v.is_finite())
            && self.cover.iter().chain(&self.leaf_cover).all(|&c| c > 0)
            && (0..inner).all(|i| forward(i, self.left[i]) && forward(i, self.right[i]))
            && self.depth() <= MAX_STORED_DEPTH
    }

    /// Splits on the longest path from the root (children pointing forward, as `check` ensures).
    fn depth(&self) -> usize {
        let mut depth = vec![0usize; self.feature.len()];
        for i in 0..depth.len() {
            for r in [self.left[i], self.right[i]] {
                if let Ok(child) = usize::try_from(r) {
                    depth[child] = depth[i] + 1;
                }
            }
        }
        depth.iter().max().map_or(0, |d| d + 1)
    }
}

/// A fitted ensemble: `logit(x) = init + Σ tree(x)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Boosted {
    /// Features per row.
    pub features: usize,
    /// The starting log-odds: the training base rate.
    pub init: f64,
    pub trees: Vec<Tree>,
}

/// Labelled rows: row-major values, `p` per row, and their labels.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub x: &'a [f64],
    pub y: &'a [bool],
}

impl Boosted {
    /// Fits on `train` (`p` features per row). With `valid`, stops once `config.patience` rounds
    /// did not lower its log-loss and keeps the best number of rounds; without, fits
    /// `config.rounds` rounds.
    pub fn fit(train: Rows<'_>, p: usize, valid: Option<Rows<'_>>, config: &Config) -> Result<Boosted> {
        let started = Instant::now();
        for rows in std::iter::once(train).chain(valid) {
            if p == 0 || rows.x.len() != rows.y.len() * p {
                return Err(Error::Invalid(format!(
                    "{} values for {} rows of {p} features",
                    rows.x.len(),
                    rows.y.len()
                )));
            }
        }
        if train.y.is_empty() || train.y.len() > u32::MAX as usize {
            return Err(Error::Invalid(format!("{} training rows for boosting", train.y.len())));
        }
        let binned = bins::Binned::new(train.x, p, config.max_bins);
        let positives = train.y.iter().filter(|l| **l).count() as f64;
        let rate = ((positives + 0.5) / (train.y.len() as f64 + 1.0)).clamp(1e-6, 1.0 - 1e-6);
        let init = stored::snap((rate / (1.0 - rate)).ln());
        let mut model = Boosted { features: p, init, trees: Vec::new() };
        let mut raw = vec![init; train.y.len()];
        let mut gh = vec![(0.0, 0.0); train.y.len()];
        let mut stopper = valid.map(|v| Stopper::new(v, init));
        let mut grower = grow::Grower::new(&binned, config);
        for _ in 0..config.rounds {
            for ((gh, &f), &y) in gh.iter_mut().zip(&raw).zip(train.y) {
                let q = sigmoid(f);
                *gh = (q - f64::from(u8::from(y)), (q * (1.0 - q)).max(1e-16));
            }
            model.trees.push(grower.grow(&gh, &mut raw));
            if let Some(s) = stopper.as_mut()
                && s.stop(&model, p, config.patience)
            {
                break;
            }
        }
        if let Some(s) = stopper {
            model.trees.truncate(s.best_rounds);
        }
        debug!(
            rows = train.y.len(),
            p,
            rounds = model.trees.len(),
            seconds = started.elapsed().as_secs_f64(),
            "boosted"
        );
        Ok(model)
    }

    /// Boosting rounds (trees).
    pub fn rounds(&self) -> usize {
        self.trees.len()
    }

    /// The log-odds of `row`.
    pub fn logit(&self, row: &[f64]) -> f64 {
        self.init + self.trees.iter().map(|t| t.predict(row)).sum::<f64>()
    }

    /// The log-odds of the average training record: `init` plus each tree's cover-weighted mean.
    pub fn expected_logit(&self) -> f64 {
        self.init + self.trees.iter().map(Tree::expected).sum::<f64>()
    }

    /// Each feature's TreeSHAP value for `row`: `expected_logit() + Σ = logit(row)`.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        let mut phi = vec![0.0; self.features];
        let inner = self.trees.iter().map(|t| t.feature.len()).max().unwrap_or(0);
        let mut path = vec![shap::Element::default(); shap::path_len(inner)];
        for tree in &self.trees {
            tree.shap(row, &mut phi, &mut path);
        }
        phi
    }

    /// Whether a stored model is whole and fits rows of `p` features (safe to score and explain).
    pub fn check(&self, p: usize) -> bool {
        self.features == p && self.init.is_finite() && self.trees.iter().all(|t| t.check(p))
    }
}

/// Early stopping: the validation rows' raw scores, kept up to date round by round.
#[derive(Debug)]
struct Stopper<'a> {
    rows: Rows<'a>,
    raw: Vec<f64>,
    best: f64,
    best_rounds: usize,
}

impl<'a> Stopper<'a> {
    fn new(rows: Rows<'a>, init: f64) -> Stopper<'a> {
        let raw = vec![init; rows.y.len()];
        let best = log_loss(&raw, rows.y);
        Stopper { rows, raw, best, best_rounds: 0 }
    }

    /// Adds the newest tree; whether the last `patience` rounds brought no improvement.
    fn stop(&mut self, model: &Boosted, p: usize, patience: usize) -> bool {
        let Some(tree) = model.trees.last() else { return false };
        for (f, row) in self.raw.iter_mut().zip(self.rows.x.chunks_exact(p)) {
            *f += tree.predict(row);
        }
        let loss = log_loss(&self.raw, self.rows.y);
        if loss < self.best - 1e-9 {
            (self.best, self.best_rounds) = (loss, model.trees.len());
        }
        model.trees.len() - self.best_rounds >= patience
    }
}

/// Mean logistic loss of raw scores.
fn log_loss(raw: &[f64], y: &[bool]) -> f64 {
    let total: f64 = raw
        .iter()
        .zip(y)
        .map(|(&f, &y)| {
            // log(1 + e^f) − y·f without overflow.
            let softplus = if f > 0.0 { f + (-f).exp().ln_1p() } else { f.exp().ln_1p() };
            softplus - if y { f } else { 0.0 }
        })
        .sum();
    total / y.len().max(1) as f64
}
