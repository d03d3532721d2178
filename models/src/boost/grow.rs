//! Growing one tree on gradient/hessian histograms, best leaf first: the leaf whose best split
//! gains most is split next, until the tree has `max_leaves` leaves or no split gains. A child's
//! histogram is built from its rows only for the smaller child; the larger one's is the parent's
//! minus it (the subtraction trick), so each level costs about half the rows.

use super::bins::{Binned, MISSING, SLOTS};
use super::{Config, Tree};

/// Gradient, hessian and row count of a set of rows.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    g: f64,
    h: f64,
    n: u32,
}

impl Sums {
    fn add(self, o: Sums) -> Sums {
        Sums { g: self.g + o.g, h: self.h + o.h, n: self.n + o.n }
    }

    fn sub(self, o: Sums) -> Sums {
        Sums { g: self.g - o.g, h: self.h - o.h, n: self.n - o.n }
    }

    /// The loss reduction of giving these rows their own optimal value, `G² / (H + λ)`.
    fn score(self, l2: f64) -> f64 {
        self.g * self.g / (self.h + l2)
    }
}

/// The best split of a leaf.
#[derive(Debug, Clone, Copy)]
struct Split {
    gain: f64,
    feature: usize,
    bin: u8,
    missing_left: bool,
    left: Sums,
    right: Sums,
}

/// A node while the tree grows.
#[derive(Debug, Clone, Copy)]
enum Node {
    /// Rows `idx[start..end]`.
    Leaf {
        sums: Sums,
        start: usize,
        end: usize,
    },
    Inner {
        split: Split,
        sums: Sums,
        left: usize,
        right: usize,
    },
}

/// A leaf that may still be split: its node, depth, histogram and best split.
#[derive(Debug)]
struct Open {
    node: usize,
    depth: usize,
    hist: Vec<Sums>,
    split: Split,
}

/// Reusable state for growing trees on one binned data set.
#[derive(Debug)]
pub(super) struct Grower<'a> {
    data: &'a Binned,
    config: &'a Config,
    /// Row indices, each leaf owning a contiguous range.
    idx: Vec<u32>,
    scratch: Vec<u32>,
    /// Histogram buffers to reuse.
    pool: Vec<Vec<Sums>>,
    nodes: Vec<Node>,
}

impl<'a> Grower<'a> {
    pub fn new(data: &'a Binned, config: &'a Config) -> Grower<'a> {
        let n = data.codes.len().checked_div(data.p).unwrap_or(0);
        Grower {
            data,
            config,
            idx: Vec::with_capacity(n),
            scratch: Vec::with_capacity(n),
            pool: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Grows a tree on per-row `(gradient, hessian)` pairs and adds its (shrunk) leaf values to the
    /// rows' raw scores `raw`.
    pub fn grow(&mut self, gh: &[(f64, f64)], raw: &mut [f64]) -> Tree {
        let n = gh.len();
        self.idx.clear();
        self.idx.extend(0..n as u32);
        self.nodes.clear();
        let mut hist = self.take();
        let sums = self.histogram(&mut hist, 0, n, gh);
        self.nodes.push(Node::Leaf { sums, start: 0, end: n });
        let mut open = Vec::new();
        self.consider(&mut open, 0, 0, hist, sums);
        let mut leaves = 1;
        while leaves < self.config.max_leaves {
            // The best gain; the earliest node on a tie, so growth is deterministic.
            let first = |a: &Open, b: &Open| b.split.gain.total_cmp(&a.split.gain).then(a.node.cmp(&b.node));
            let Some(best) = (0..open.len()).min_by(|&a, &b| first(&open[a], &open[b])) else {
                break;
            };
            let leaf = open.swap_remove(best);
            self.split(&mut open, leaf, gh);
            leaves += 1;
        }
        for o in open {
            self.pool.push(o.hist);
        }
        let tree = self.finish();
        self.apply(&tree, raw);
        tree
    }

    /// Keeps `hist` with its best split in `open` when the leaf may be split, else returns it.
    fn consider(&mut self, open: &mut Vec<Open>, node: usize, depth: usize, hist: Vec<Sums>, sums: Sums) {
        let c = self.config;
        let splittable = depth < c.max_depth && sums.n as usize >= 2 * c.min_leaf_rows;
        match splittable.then(|| self.best_split(&hist, sums)).flatten() {
            Some(split) => open.push(Open { node, depth, hist, split }),
            None => self.pool.push(hist),
        }
    }

    /// Splits an open leaf: partitions its rows and gives each child its histogram and best split.
    fn split(&mut self, open: &mut Vec<Open>, leaf: Open, gh: &[(f64, f64)]) {
        let Node::Leaf { sums, start, end } = self.nodes[leaf.node] else { return };
        let s = leaf.split;
        let mid = self.partition(start, end, s);
        let (left, right) = (self.nodes.len(), self.nodes.len() + 1);
        self.nodes.push(Node::Leaf { sums: s.left, start, end: mid });
        self.nodes.push(Node::Leaf { sums: s.right, start: mid, end });
        self.nodes[leaf.node] = Node::Inner { split: s, sums, left, right };
        // Build the smaller child's histogram; the larger one's is the parent's minus it.
        let mut small = self.take();
        let mut large = leaf.hist;
        let left_smaller = mid - start <= end - mid;
        let (a, b) = if left_smaller { (start, mid) } else { (mid, end) };
        self.histogram(&mut small, a, b, gh);
        for (l, s) in large.iter_mut().zip(&small) {
            *l = l.sub(*s);
        }
        let (left_hist, right_hist) = if left_smaller { (small, large) } else { (large, small) };
        self.consider(open, left, leaf.depth + 1, left_hist, s.left);
        self.consider(open, right, leaf.depth + 1, right_hist, s.right);
    }

    /// A zeroed histogram buffer.
    fn take(&mut self) -> Vec<Sums> {
        let size = self.data.p * SLOTS;
        match self.pool.pop() {
            Some(mut h) => {
                h.iter_mut().for_each(|s| *s = Sums::default());
                h
            }
            None => vec![Sums::default(); size],
        }
    }

    /// Accumulates the rows `idx[start..end]` into `hist` (zeroed) and returns their total.
    fn histogram(&self, hist: &mut [Sums], start: usize, end: usize, gh: &[(f64, f64)]) -> Sums {
        let p = self.data.p;
        let mut total = Sums::default();
        for &i in &self.idx[start..end] {
            let i = i as usize;
            let (g, h) = gh[i];
            total = total.add(Sums { g, h, n: 1 });
            let codes = &self.data.codes[i * p..(i + 1) * p];
            for (slots, &c) in hist.chunks_exact_mut(SLOTS).zip(codes) {
                let s = &mut slots[c as usize];
                s.g += g;
                s.h += h;
                s.n += 1;
            }
        }
        total
    }

    /// The best split over every feature and threshold, trying missing values on either side.
    fn best_split(&self, hist: &[Sums], total: Sums) -> Option<Split> {
        let c = self.config;
        let parent = total.score(c.l2);
        let mut best: Option<Split> = None;
        for (feature, slots) in hist.chunks_exact(SLOTS).enumerate() {
            let missing = slots[MISSING as usize];
            let bins = self.data.bins(feature);
            let mut cum = Sums::default();
            for (bin, s) in slots[..bins].iter().enumerate() {
                cum = cum.add(*s);
                let last = bin + 1 == bins;
                if last && missing.n == 0 {
                    break;
                }
                let mut tries = [(cum, false), (cum.add(missing), true)];
                let count = if missing.n > 0 && !last { 2 } else { 1 };
                if missing.n == 0 {
                    // No missing values here: at prediction time they follow the larger side.
                    tries[0].1 = 2 * cum.n >= total.n;
                }
                for &(left, missing_left) in &tries[..count] {
                    let right = total.sub(left);
                    if (left.n.min(right.n) as usize) < c.min_leaf_rows || left.h.min(right.h) < c.min_hessian {
                        continue;
                    }
                    let gain = left.score(c.l2) + right.score(c.l2) - parent;
                    if gain > MIN_GAIN && best.is_none_or(|b| gain > b.gain) {
                        let bin = u8::try_from(bin).unwrap_or(MISSING - 1);
                        best = Some(Split { gain, feature, bin, missing_left, left, right });
                    }
                }
            }
        }
        best
    }

    /// Stable in-place partition of `idx[start..end]` by `split`; returns where the right side starts.
    fn partition(&mut self, start: usize, end: usize, split: Split) -> usize {
        let p = self.data.p;
        self.scratch.clear();
        let mut write = start;
        for k in start..end {
            let i = self.idx[k];
            let c = self.data.codes[i as usize * p + split.feature];
            let left = if c == MISSING { split.missing_left } else { c <= split.bin };
            if left {
                self.idx[write] = i;
                write += 1;
            } else {
                self.scratch.push(i);
            }
        }
        self.idx[write..end].copy_from_slice(&self.scratch);
        write
    }

    /// The grown tree in its stored layout: inner nodes and leaves each numbered depth first.
    fn finish(&self) -> Tree {
        let mut tree = Tree::default();
        self.emit(&mut tree, 0);
        tree
    }

    /// Appends node `k` and its subtree; returns its reference (≥ 0 inner, −(leaf + 1) a leaf).
    fn emit(&self, tree: &mut Tree, k: usize) -> i32 {
        let c = self.config;
        match self.nodes[k] {
            Node::Leaf { sums, .. } => {
                tree.value.push(crate::stored::snap(-c.learning_rate * sums.g / (sums.h + c.l2)));
                tree.leaf_cover.push(sums.n);
                -(tree.value.len() as i32)
            }
            Node::Inner { split, sums, left, right } => {
                let at = tree.feature.len();
                tree.feature.push(split.feature as u32);
                tree.threshold.push(self.data.threshold(split.feature, split.bin as usize));
                tree.missing_left.push(split.missing_left);
                tree.cover.push(sums.n);
                tree.left.push(0);
                tree.right.push(0);
                tree.left[at] = self.emit(tree, left);
                tree.right[at] = self.emit(tree, right);
                at as i32
            }
        }
    }

    /// Adds each leaf's value to the raw scores of its rows.
    fn apply(&self, tree: &Tree, raw: &mut [f64]) {
        let mut leaf = 0;
        // `finish` numbers leaves depth first, left before right: the same order as this walk.
        let mut stack = vec![0usize];
        while let Some(k) = stack.pop() {
            match self.nodes[k] {
                Node::Leaf { start, end, .. } => {
                    let v = tree.value[leaf];
                    leaf += 1;
                    for &i in &self.idx[start..end] {
                        raw[i as usize] += v;
                    }
                }
                Node::Inner { left, right, .. } => {
                    stack.push(right);
                    stack.push(left);
                }
            }
        }
    }
}

/// A split must reduce the loss by more than this.
const MIN_GAIN: f64 = 1e-9;
