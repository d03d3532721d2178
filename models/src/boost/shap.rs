//! Path-dependent TreeSHAP (Lundberg, Erion & Lee 2018, "Consistent individualized feature
//! attribution for tree ensembles", algorithm 2): the exact Shapley values of
//! `v(S) = E[f(x) | x_S]`, where the expectation over the features outside `S` follows each split
//! in proportion to the training rows (cover) that went either way. Polynomial: `O(L · D²)` per tree
//! for `L` leaves and depth `D`, instead of enumerating the `2^M` feature subsets.
//!
//! The values add up: `expected + Σ φ_j = f(x)` for every row, where `expected` is the average
//! raw score over the training cover.

use super::Tree;

/// One feature on the path from the root: the share of cover that reaches here when the feature
/// is unknown (`zero`), whether the row itself comes here when it is known (`one`, 0 or 1), and
/// the permutation weight of the subsets of path features of each size.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Element {
    feature: usize,
    zero: f64,
    one: f64,
    weight: f64,
}

/// The feature of the path's first element, which stands for no feature.
const NONE: usize = usize::MAX;

/// A node reference: inner node, or leaf.
#[derive(Debug, Clone, Copy)]
enum At {
    Inner(usize),
    Leaf(usize),
}

impl At {
    fn of(reference: i32) -> At {
        if reference >= 0 { At::Inner(reference as usize) } else { At::Leaf(!reference as usize) }
    }
}

/// Path elements a tree with `inner` inner nodes needs: one path per depth, each one longer.
pub(super) fn path_len(inner: usize) -> usize {
    (inner + 2) * (inner + 3) / 2 + 1
}

impl Tree {
    /// Adds this tree's Shapley values of `row` to `phi`, using `path` (at least
    /// [`path_len`]`(inner nodes)` long) as scratch.
    pub(super) fn shap(&self, row: &[f64], phi: &mut [f64], path: &mut [Element]) {
        if self.feature.is_empty() {
            return; // a single leaf: all of it is in the expected value
        }
        self.recurse(row, phi, At::Inner(0), path, 0, (1.0, 1.0, NONE));
    }

    fn cover_of(&self, at: At) -> f64 {
        match at {
            At::Inner(i) => f64::from(self.cover[i]),
            At::Leaf(k) => f64::from(self.leaf_cover[k]),
        }
    }

    /// `buf[..=depth]` holds the parent's path; this node's path is built right after it.
    fn recurse(
        &self,
        row: &[f64],
        phi: &mut [f64],
        at: At,
        buf: &mut [Element],
        depth: usize,
        (zero, one, feature): (f64, f64, usize),
    ) {
        let (parent, path) = buf.split_at_mut(depth + 1);
        path[..=depth].copy_from_slice(parent);
        extend(path, depth, zero, one, feature);
        let i = match at {
            At::Leaf(k) => {
                let v = self.value[k];
                for e in 1..=depth {
                    let w = unwound_sum(path, depth, e);
                    phi[path[e].feature] += w * (path[e].one - path[e].zero) * v;
                }
                return;
            }
            At::Inner(i) => i,
        };
        let f = self.feature[i] as usize;
        let (left, right) = (At::of(self.left[i]), At::of(self.right[i]));
        let (hot, cold) = if self.goes_left(i, row[f]) { (left, right) } else { (right, left) };
        let cover = self.cover_of(at);
        let (hot_zero, cold_zero) = (self.cover_of(hot) / cover, self.cover_of(cold) / cover);
        // A feature already on the path: undo its earlier split and redo it with both fractions.
        let (mut in_zero, mut in_one, mut depth) = (1.0, 1.0, depth);
        if let Some(k) = (1..=depth).find(|&k| path[k].feature == f) {
            (in_zero, in_one) = (path[k].zero, path[k].one);
            unwind(path, depth, k);
            depth -= 1;
        }
        self.recurse(row, phi, hot, path, depth + 1, (hot_zero * in_zero, in_one, f));
        self.recurse(row, phi, cold, path, depth + 1, (cold_zero * in_zero, 0.0, f));
    }
}

/// Adds a feature to the path, updating the subset weights.
fn extend(path: &mut [Element], depth: usize, zero: f64, one: f64, feature: usize) {
    path[depth] = Element { feature, zero, one, weight: if depth == 0 { 1.0 } else { 0.0 } };
    let d1 = (depth + 1) as f64;
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / d1;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / d1;
    }
}

/// Removes element `k` from the path, undoing its [`extend`].
fn unwind(path: &mut [Element], depth: usize, k: usize) {
    let (one, zero) = (path[k].one, path[k].zero);
    let d1 = (depth + 1) as f64;
    let mut next = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let kept = path[i].weight;
            path[i].weight = next * d1 / ((i + 1) as f64 * one);
            next = kept - path[i].weight * zero * (depth - i) as f64 / d1;
        } else {
            path[i].weight = path[i].weight * d1 / (zero * (depth - i) as f64);
        }
    }
    for i in k..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

/// The total weight the path would have with element `k` unwound, without unwinding it.
fn unwound_sum(path: &[Element], depth: usize, k: usize) -> f64 {
    let (one, zero) = (path[k].one, path[k].zero);
    let d1 = (depth + 1) as f64;
    let mut next = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let w = next * d1 / ((i + 1) as f64 * one);
            total += w;
            next = path[i].weight - w * zero * (depth - i) as f64 / d1;
        } else {
            total += path[i].weight / zero / ((depth - i) as f64 / d1);
        }
    }
    total
}
