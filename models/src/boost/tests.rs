use proptest::prelude::*;

use super::*;
use crate::metrics::auc;

/// A deterministic stream of uniforms in (0, 1).
fn uniforms(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// `n` rows of `p` uniform features; the label is an XOR of the signs of x0 − ½ and x1 − ½ (90 %
/// of the time), which no single feature and no linear model predicts.
fn xor(n: usize, p: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
    let mut u = uniforms(seed);
    let (mut x, mut y) = (Vec::with_capacity(n * p), Vec::with_capacity(n));
    for _ in 0..n {
        let row: Vec<f64> = (0..p).map(|_| u()).collect();
        let truth = (row[0] > 0.5) != (row[1] > 0.5);
        y.push(if u() < 0.9 { truth } else { !truth });
        x.extend(row);
    }
    (x, y)
}

fn rows<'a>(x: &'a [f64], y: &'a [bool]) -> Rows<'a> {
    Rows { x, y }
}

fn scores(m: &Boosted, x: &[f64], p: usize) -> Vec<f64> {
    x.chunks_exact(p).map(|r| m.logit(r)).collect()
}

#[test]
fn learns_an_interaction_and_stops_early_on_the_validation_slice() {
    let (x, y) = xor(4000, 4, 1);
    let (vx, vy) = xor(1000, 4, 2);
    let config = Config::default();
    let m = Boosted::fit(rows(&x, &y), 4, Some(rows(&vx, &vy)), &config).expect("fit");
    let (tx, ty) = xor(2000, 4, 3);
    let a = auc(&scores(&m, &tx, 4), &ty).unwrap_or(0.0);
    assert!(a > 0.85, "AUC {a}");
    assert!(m.rounds() > 5 && m.rounds() < config.rounds, "{} rounds", m.rounds());
    // Without validation it runs every round; the same inputs give the same model.
    let short = Config { rounds: 7, ..Config::default() };
    let a = Boosted::fit(rows(&x, &y), 4, None, &short).expect("fit");
    assert_eq!(a.rounds(), 7);
    assert_eq!(a, Boosted::fit(rows(&x, &y), 4, None, &short).expect("fit"));
    assert!(a.trees.iter().all(|t| t.value.len() <= short.max_leaves && t.check(4)));
}

#[test]
fn trees_respect_their_limits() {
    let (x, y) = xor(3000, 3, 4);
    let config = Config { rounds: 5, max_leaves: 8, max_depth: 2, min_leaf_rows: 100, ..Config::default() };
    let m = Boosted::fit(rows(&x, &y), 3, None, &config).expect("fit");
    for t in &m.trees {
        assert!(t.value.len() <= 4, "depth 2 means at most 4 leaves: {}", t.value.len());
        assert!(t.leaf_cover.iter().all(|&c| c >= 100));
        assert_eq!(t.leaf_cover.iter().sum::<u32>(), 3000);
    }
    let deep = Config { rounds: 1, max_leaves: 6, max_depth: 20, min_leaf_rows: 5, ..Config::default() };
    let m = Boosted::fit(rows(&x, &y), 3, None, &deep).expect("fit");
    assert_eq!(m.trees[0].value.len(), 6);
}

#[test]
fn missing_values_learn_their_side() {
    // x0 missing ⇒ mostly positive; otherwise the label follows x0 > 0.5.
    let mut u = uniforms(9);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..3000 {
        let v = if i % 4 == 0 { f64::NAN } else { u() };
        y.push(if v.is_nan() { u() < 0.9 } else { v > 0.5 });
        x.extend([v, u()]);
    }
    let m = Boosted::fit(rows(&x, &y), 2, None, &Config { rounds: 50, ..Config::default() }).expect("fit");
    assert!(sigmoid(m.logit(&[f64::NAN, 0.5])) > 0.8);
    assert_eq!(m.logit(&[f64::NAN, 0.5]), m.logit(&[f64::INFINITY, 0.5]), "every non-finite value is missing");
    assert!(sigmoid(m.logit(&[0.2, 0.5])) < 0.2 && sigmoid(m.logit(&[0.8, 0.5])) > 0.8);
}

#[test]
fn bad_input_is_an_error() {
    let c = Config::default();
    assert!(Boosted::fit(rows(&[1.0, 2.0, 3.0], &[true]), 2, None, &c).is_err());
    assert!(Boosted::fit(rows(&[], &[]), 2, None, &c).is_err());
    assert!(Boosted::fit(rows(&[1.0, 2.0], &[true]), 2, Some(rows(&[1.0], &[true])), &c).is_err());
    // One class only, or constant features: a model that predicts the base rate.
    let m = Boosted::fit(rows(&[1.0; 100], &[true; 50]), 2, None, &c).expect("fit");
    assert!(m.trees.iter().all(|t| t.feature.is_empty()) && sigmoid(m.logit(&[1.0, 1.0])) > 0.95);
}

#[test]
fn a_stored_model_round_trips_and_a_corrupt_one_is_refused() {
    let (x, y) = xor(2000, 3, 5);
    let m = Boosted::fit(rows(&x, &y), 3, None, &Config { rounds: 20, ..Config::default() }).expect("fit");
    let json = serde_json::to_string(&m).expect("serialise");
    let back: Boosted = serde_json::from_str(&json).expect("deserialise");
    assert!(back == m, "the model read back differs");
    assert!(back.check(3) && !back.check(4));
    for r in x.chunks_exact(3).take(100) {
        assert_eq!(back.logit(r), m.logit(r));
    }
    let inner = m.trees[0].feature.len();
    let mut cycle = m.clone();
    cycle.trees[0].left[inner - 1] = 0; // points back at the root
    assert!(!cycle.check(3));
    let mut feature = m.clone();
    feature.trees[1].feature[0] = 3;
    assert!(!feature.check(3));
    let mut cover = m.clone();
    cover.trees[2].leaf_cover[0] = 0;
    assert!(!cover.check(3));
    let mut leaf = m;
    leaf.trees[3].right[0] = i32::MIN;
    assert!(!leaf.check(3), "a leaf reference far out of range");
    // A chain of 100 splits is deeper than a stored tree may be.
    let chain = Tree {
        feature: vec![0; 100],
        threshold: vec![0.5; 100],
        missing_left: vec![false; 100],
        left: (0..100).map(|i| -(i + 1)).collect(),
        right: (1..=100).map(|i| if i < 100 { i } else { -101 }).collect(),
        cover: vec![1; 100],
        value: vec![0.0; 101],
        leaf_cover: vec![1; 101],
    };
    assert!(!Boosted { features: 3, init: 0.0, trees: vec![chain] }.check(3));
}

/// `v(S)`: the tree's expected value when the features in `known` are the row's and the others
/// follow the training cover (Lundberg et al.'s algorithm 1, the definition TreeSHAP is exact for).
fn conditional(t: &Tree, row: &[f64], known: u32, at: i32) -> f64 {
    if at < 0 {
        return t.value[(-at - 1) as usize];
    }
    let i = at as usize;
    let f = t.feature[i];
    if known & (1 << f) != 0 {
        let next = if t.goes_left(i, row[f as usize]) { t.left[i] } else { t.right[i] };
        return conditional(t, row, known, next);
    }
    let cover =
        |r: i32| if r >= 0 { f64::from(t.cover[r as usize]) } else { f64::from(t.leaf_cover[(-r - 1) as usize]) };
    (cover(t.left[i]) * conditional(t, row, known, t.left[i])
        + cover(t.right[i]) * conditional(t, row, known, t.right[i]))
        / f64::from(t.cover[i])
}

/// Whether a path below `at` splits on a feature already in `seen` (a bit mask) or twice itself.
fn repeats(t: &Tree, at: i32, seen: u32) -> bool {
    if at < 0 || t.feature.is_empty() {
        return false;
    }
    let i = at as usize;
    let bit = 1 << t.feature[i];
    seen & bit != 0 || repeats(t, t.left[i], seen | bit) || repeats(t, t.right[i], seen | bit)
}

/// Shapley values by enumerating every subset of the `p` features.
fn brute_force(m: &Boosted, row: &[f64]) -> Vec<f64> {
    let p = m.features;
    let v = |s: u32| -> f64 {
        m.trees.iter().map(|t| if t.feature.is_empty() { t.value[0] } else { conditional(t, row, s, 0) }).sum()
    };
    let fact = |k: usize| (1..=k).product::<usize>() as f64;
    (0..p)
        .map(|i| {
            (0u32..1 << p)
                .filter(|s| s & (1 << i) == 0)
                .map(|s| {
                    let size = s.count_ones() as usize;
                    fact(size) * fact(p - size - 1) / fact(p) * (v(s | 1 << i) - v(s))
                })
                .sum()
        })
        .collect()
}

#[test]
fn tree_shap_equals_brute_force_shapley_values() {
    // Deep trees on 4 features, so features repeat along paths; some values missing.
    let (mut x, y) = xor(1500, 4, 6);
    x.iter_mut().step_by(7).for_each(|v| *v = f64::NAN);
    let config = Config { rounds: 8, max_leaves: 12, max_depth: 6, min_leaf_rows: 10, ..Config::default() };
    let m = Boosted::fit(rows(&x, &y), 4, None, &config).expect("fit");
    assert!(m.trees.iter().any(|t| repeats(t, 0, 0)), "some path splits twice on a feature");
    for row in x.chunks_exact(4).take(60) {
        let fast = m.contributions(row);
        let slow = brute_force(&m, row);
        for (a, b) in fast.iter().zip(&slow) {
            assert!((a - b).abs() < 1e-9, "{fast:?} vs {slow:?}");
        }
    }
}

#[test]
fn tree_shap_of_a_hand_made_tree() {
    // x0 ≤ 0.5 ? (x1 ≤ 0.5 ? 1 : 3) : (x0 ≤ 0.8 ? 5 : 7), covers 40/20/20 and 60/30/30.
    let tree = Tree {
        feature: vec![0, 1, 0],
        threshold: vec![0.5, 0.5, 0.8],
        missing_left: vec![true, false, false],
        left: vec![1, -1, -3],
        right: vec![2, -2, -4],
        cover: vec![100, 40, 60],
        value: vec![1.0, 3.0, 5.0, 7.0],
        leaf_cover: vec![20, 20, 30, 30],
    };
    let m = Boosted { features: 2, init: 0.0, trees: vec![tree] };
    assert!(m.check(2));
    assert!((m.expected_logit() - (20.0 + 60.0 + 150.0 + 210.0) / 100.0).abs() < 1e-12);
    for row in [[0.9, 0.1], [0.2, 0.7], [f64::NAN, 0.2], [0.6, f64::NAN]] {
        let phi = m.contributions(&row);
        assert_eq!(phi.len(), 2);
        for (a, b) in phi.iter().zip(&brute_force(&m, &row)) {
            assert!((a - b).abs() < 1e-12, "{row:?}: {phi:?}");
        }
        assert!((m.expected_logit() + phi[0] + phi[1] - m.logit(&row)).abs() < 1e-12);
    }
    // By hand for (0.9, 0.1): v(∅) = 4.4, v({x0}) = 7, v({x1}) = 0.4·1 + 0.6·6 = 4, v({x0, x1}) = 7, so
    // φ0 = ½(2.6 + 3) and φ1 = ½(−0.4 + 0): x1 matters even though this row never reaches its split.
    let phi = m.contributions(&[0.9, 0.1]);
    assert!((phi[0] - 2.8).abs() < 1e-12 && (phi[1] + 0.2).abs() < 1e-12, "{phi:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn contributions_add_up_to_the_logit(
        row in proptest::collection::vec(prop_oneof![9 => -0.5f64..1.5, 1 => Just(f64::NAN)], 6),
    ) {
        let m = model_for_proptest();
        let phi = m.contributions(&row);
        let sum = m.expected_logit() + phi.iter().sum::<f64>();
        prop_assert!((sum - m.logit(&row)).abs() < 1e-9, "{} vs {}", sum, m.logit(&row));
    }
}

/// One model shared by the property test's cases.
fn model_for_proptest() -> &'static Boosted {
    static MODEL: std::sync::OnceLock<Boosted> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        let (mut x, y) = xor(3000, 6, 8);
        x.iter_mut().step_by(11).for_each(|v| *v = f64::NAN);
        let config = Config { rounds: 40, ..Config::default() };
        Boosted::fit(rows(&x, &y), 6, None, &config).expect("fit")
    })
}

/// Training throughput on a churn-sized problem (60k rows × 20 features, 100 rounds). Run it
/// optimised: `cargo test -p orbas-models --release --lib boost::tests::throughput -- --ignored
/// --nocapture`.
#[test]
#[ignore = "a measurement; run in release"]
fn throughput() {
    let (x, y) = xor(60_000, 20, 10);
    let config = Config { rounds: 100, patience: usize::MAX, ..Config::default() };
    let started = Instant::now();
    let m = Boosted::fit(rows(&x, &y), 20, None, &config).expect("fit");
    let fit = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let sum: f64 = x.chunks_exact(20).map(|r| m.logit(r)).sum();
    let score = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let explained: usize = x.chunks_exact(20).take(2000).map(|r| m.contributions(r).len()).sum();
    let explain = started.elapsed().as_secs_f64();
    eprintln!(
        "boosting 60000 rows × 20 features, {} rounds: fit {fit:.2} s ({:.0} rows/s, {:.0} row-rounds/s); \
         scoring {:.0} rows/s; TreeSHAP {:.0} rows/s ({sum:.1}, {explained})",
        m.rounds(),
        60_000.0 / fit,
        60_000.0 * m.rounds() as f64 / fit,
        60_000.0 / score,
        2000.0 / explain,
    );
}
