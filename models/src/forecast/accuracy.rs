//! How far forecasts were from what happened: sMAPE, MAPE, MASE and bias, and their summary over
//! many (forecast, actual) pairs — per horizon in the benchmark, per period and rep in the tracking
//! of past snapshots.

use std::collections::BTreeMap;

/// Symmetric MAPE in percent (0–200): mean of `200 |a − f| / (|a| + |f|)`, a pair with both zero
/// counting as exact. `None` for no pairs.
pub fn smape(actual: &[f64], forecast: &[f64]) -> Option<f64> {
    mean(actual.iter().zip(forecast).map(|(&a, &f)| {
        let d = a.abs() + f.abs();
        if d == 0.0 { 0.0 } else { 200.0 * (a - f).abs() / d }
    }))
}

/// MAPE in percent over the pairs whose actual is not zero (`None` when every actual is zero).
pub fn mape(actual: &[f64], forecast: &[f64]) -> Option<f64> {
    mean(actual.iter().zip(forecast).filter(|(a, _)| **a != 0.0).map(|(&a, &f)| 100.0 * (a - f).abs() / a.abs()))
}

/// Bias in percent: `100 Σ(f − a) / Σ|a|` — positive when forecasts ran high. `None` when every
/// actual is zero.
pub fn bias(actual: &[f64], forecast: &[f64]) -> Option<f64> {
    let total: f64 = actual.iter().map(|a| a.abs()).sum();
    (total > 0.0).then(|| 100.0 * actual.iter().zip(forecast).map(|(a, f)| f - a).sum::<f64>() / total)
}

/// Mean absolute scaled error: the forecast's MAE over the in-sample MAE of the seasonal naive
/// forecast with period `m` on `train` (M4's definition; `m = 1` is the naive forecast). `None` when
/// the scale is zero or the training series is not longer than `m`.
pub fn mase(train: &[f64], actual: &[f64], forecast: &[f64], m: usize) -> Option<f64> {
    let m = m.max(1);
    if train.len() <= m {
        return None;
    }
    let scale = mean(train.windows(m + 1).map(|w| (w[m] - w[0]).abs()))?;
    let mae = mean(actual.iter().zip(forecast).map(|(a, f)| (a - f).abs()))?;
    (scale > 0.0).then(|| mae / scale)
}

/// The seasonal period MASE is scaled with for a monthly training series of `n` points: yearly when
/// there is more than a year of history, else the naive forecast.
pub fn mase_period(n: usize) -> usize {
    if n > 12 { 12 } else { 1 }
}

fn mean(it: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = it.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Errors of one group of (forecast, actual) pairs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub pairs: usize,
    pub smape: Option<f64>,
    pub mape: Option<f64>,
    pub bias: Option<f64>,
}

impl Summary {
    pub fn of(actual: &[f64], forecast: &[f64]) -> Summary {
        Summary {
            pairs: actual.len().min(forecast.len()),
            smape: smape(actual, forecast),
            mape: mape(actual, forecast),
            bias: bias(actual, forecast),
        }
    }
}

/// Summaries per key (e.g. per source, per rep) of `(key, forecast, actual)` triples.
pub fn by_key<K: Ord + Clone>(triples: &[(K, f64, f64)]) -> BTreeMap<K, Summary> {
    let mut groups: BTreeMap<K, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for (k, f, a) in triples {
        let g = groups.entry(k.clone()).or_default();
        g.0.push(*a);
        g.1.push(*f);
    }
    groups.into_iter().map(|(k, (a, f))| (k, Summary::of(&a, &f))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn smape_is_symmetric_bounded_and_treats_two_zeros_as_exact() {
        assert!(close(smape(&[100.0], &[100.0]), 0.0));
        assert!(close(smape(&[100.0], &[50.0]), 200.0 * 50.0 / 150.0));
        assert_eq!(smape(&[100.0], &[50.0]), smape(&[50.0], &[100.0]));
        assert!(close(smape(&[0.0, 10.0], &[0.0, 0.0]), 100.0), "0/0 exact, x vs 0 is the maximum 200");
        assert_eq!(smape(&[], &[]), None);
    }

    #[test]
    fn mape_skips_zero_actuals_and_bias_has_a_sign() {
        assert!(close(mape(&[0.0, 100.0, 200.0], &[5.0, 110.0, 150.0]), (10.0 + 25.0) / 2.0));
        assert_eq!(mape(&[0.0], &[1.0]), None);
        assert!(close(bias(&[100.0, 100.0], &[120.0, 100.0]), 10.0));
        assert!(close(bias(&[100.0], &[80.0]), -20.0));
        assert_eq!(bias(&[0.0], &[3.0]), None);
    }

    #[test]
    fn mase_scales_by_the_in_sample_seasonal_naive_error() {
        // Naive in-sample steps: |2−1|, |4−2|, |7−4| → scale 2; forecast MAE (1 + 3) / 2 = 2 → 1.0.
        let train = [1.0, 2.0, 4.0, 7.0];
        assert!(close(mase(&train, &[10.0, 10.0], &[9.0, 13.0], 1), 1.0));
        // Seasonal period 2: |4−1|, |7−2| → scale 4.
        assert!(close(mase(&train, &[10.0], &[12.0], 2), 0.5));
        assert_eq!(mase(&[5.0, 5.0, 5.0], &[5.0], &[6.0], 1), None, "a flat history has no scale");
        assert_eq!(mase(&[1.0, 2.0], &[1.0], &[1.0], 2), None, "too short for the period");
        assert_eq!((mase_period(12), mase_period(13)), (1, 12));
    }

    #[test]
    fn summaries_group_by_key() {
        let s = by_key(&[("a", 110.0, 100.0), ("b", 50.0, 100.0), ("a", 90.0, 100.0)]);
        assert_eq!(s["a"].pairs, 2);
        assert!(close(s["a"].bias, 0.0) && close(s["a"].mape, 10.0));
        assert!(close(s["b"].bias, -50.0));
    }
}
