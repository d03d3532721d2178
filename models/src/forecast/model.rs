//! The forecasting methods a series can be given, each producing point forecasts and a prediction
//! interval per month ahead:
//!
//! | method | what |
//! |---|---|
//! | `mstl_ets_3`, `mstl_ets_12`, `mstl_ets_3_12` | MSTL decomposition (quarterly and/or yearly seasonality) with AutoETS on the seasonally adjusted series — augurs' ETS is non-seasonal, the seasonal components are carried forward by MSTL |
//! | `ets` | AutoETS (error A/M, trend none/additive/damped, by AICc), no seasonality |
//! | `seasonal_naive` | the value of the same month a year (or a quarter) earlier, interval from the seasonal differences |
//! | `combo_ets_mstl_ets_3` | the average of `ets` and `mstl_ets_3` (points and bounds) — a combination is steadier than either on lumpy series |
//! | `mean` | the mean of the last six months — the fallback when nothing else fits |
//!
//! Amounts forecast here (bookings, MRR) cannot be negative: points and bounds are clipped at zero,
//! and the interval always satisfies `low ≤ point ≤ high`.

use augurs::ets::AutoETS;
use augurs::ets::trend::AutoETSTrendModel;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Forecast, Predict};

use crate::error::{Error, Result};

/// A forecasting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// MSTL with these seasonal periods + AutoETS on the trend.
    MstlEts(&'static [usize]),
    Ets,
    /// The value `period` months earlier.
    SeasonalNaive(usize),
    /// Mean of the last six months.
    Mean,
    /// The average of ETS and MSTL(3) + ETS: points and bounds averaged month by month.
    Combo,
}

/// The seasonal periods MSTL is offered (fiscal quarters show in bookings: deals slip to quarter ends).
pub const QUARTER: &[usize] = &[3];
pub const YEAR: &[usize] = &[12];
pub const QUARTER_AND_YEAR: &[usize] = &[3, 12];

impl Method {
    /// Stable name, as stored in `forecast_snapshots.method`.
    pub fn name(&self) -> String {
        match self {
            Method::MstlEts(p) => {
                format!("mstl_ets_{}", p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("_"))
            }
            Method::Ets => "ets".to_owned(),
            Method::SeasonalNaive(m) => format!("seasonal_naive_{m}"),
            Method::Mean => "mean".to_owned(),
            Method::Combo => "combo_ets_mstl_ets_3".to_owned(),
        }
    }

    /// The shortest history the method is fitted on: two full cycles of its longest period for MSTL
    /// (and enough for ETS's parameters), one cycle for the seasonal naive.
    pub fn min_len(&self) -> usize {
        match self {
            Method::MstlEts(p) => (2 * p.iter().copied().max().unwrap_or(1)).max(ETS_MIN_LEN),
            Method::Ets => ETS_MIN_LEN,
            Method::SeasonalNaive(m) => *m,
            Method::Mean => 1,
            Method::Combo => Method::MstlEts(QUARTER).min_len(),
        }
    }
}

/// AutoETS with a trend needs more than 2 + 2 + 4 points.
const ETS_MIN_LEN: usize = 9;
/// Months the `mean` method averages.
const MEAN_WINDOW: usize = 6;

/// Forecasts of the next months with their interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub method: Method,
    pub point: Vec<f64>,
    pub low: Vec<f64>,
    pub high: Vec<f64>,
    /// Coverage of `[low, high]`, e.g. 0.8.
    pub level: f64,
}

/// Fits `method` on `y` and forecasts `h` months with intervals at `level` (0 < level < 1).
pub fn forecast(method: Method, y: &[f64], h: usize, level: f64) -> Result<Prediction> {
    if !(level > 0.0 && level < 1.0) {
        return Err(Error::Forecast(format!("interval level {level} is not between 0 and 1")));
    }
    if y.len() < method.min_len() || y.iter().any(|v| !v.is_finite()) {
        return Err(Error::Forecast(format!(
            "{} needs {} finite points, got {}",
            method.name(),
            method.min_len(),
            y.len()
        )));
    }
    let f = match method {
        Method::MstlEts(periods) => {
            let trend = AutoETSTrendModel::from(AutoETS::non_seasonal());
            let fitted = MSTLModel::new(periods.to_vec(), trend).fit(y).map_err(|e| fit_error(method, e))?;
            fitted.predict(h, level).map_err(|e| fit_error(method, e))?
        }
        Method::Ets => {
            let fitted = AutoETS::non_seasonal().fit(y).map_err(|e| fit_error(method, e))?;
            fitted.predict(h, level).map_err(|e| fit_error(method, e))?
        }
        Method::SeasonalNaive(m) => seasonal_naive(y, m, h, level),
        Method::Mean => mean_forecast(y, h, level),
        Method::Combo => {
            let a = forecast(Method::Ets, y, h, level)?;
            let b = forecast(Method::MstlEts(QUARTER), y, h, level)?;
            let avg = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(x, y)| (x + y) / 2.0).collect::<Vec<_>>();
            let mut f = Forecast::with_capacity_and_level(h, level);
            f.point = avg(&a.point, &b.point);
            if let Some(iv) = f.intervals.as_mut() {
                iv.lower = avg(&a.low, &b.low);
                iv.upper = avg(&a.high, &b.high);
            }
            f
        }
    };
    finish(method, f, h, level)
}

fn fit_error(method: Method, e: impl std::fmt::Display) -> Error {
    Error::Forecast(format!("{}: {e}", method.name()))
}

/// Checks the model's output and makes it a valid non-negative interval forecast.
fn finish(method: Method, f: Forecast, h: usize, level: f64) -> Result<Prediction> {
    let Some(iv) = f.intervals else {
        return Err(Error::Forecast(format!("{} gave no intervals", method.name())));
    };
    if f.point.len() != h || iv.lower.len() != h || iv.upper.len() != h {
        return Err(Error::Forecast(format!("{} gave {} points for {h} months", method.name(), f.point.len())));
    }
    if f.point.iter().chain(&iv.lower).chain(&iv.upper).any(|v| !v.is_finite()) {
        return Err(Error::Forecast(format!("{} gave non-finite forecasts", method.name())));
    }
    let mut p = Prediction { method, point: f.point, low: iv.lower, high: iv.upper, level };
    for i in 0..h {
        let point = p.point[i].max(0.0);
        p.low[i] = p.low[i].min(point).max(0.0);
        p.high[i] = p.high[i].max(point);
        p.point[i] = point;
    }
    Ok(p)
}

/// `y[t − m]` carried forward; the interval from the in-sample seasonal differences, widening with
/// each further cycle (`σ √(⌊(k − 1)/m⌋ + 1)` at step `k`).
fn seasonal_naive(y: &[f64], m: usize, h: usize, level: f64) -> Forecast {
    let n = y.len();
    let m = m.max(1);
    let diffs: Vec<f64> = y.windows(m + 1).map(|w| w[m] - w[0]).collect();
    let sigma = rms(&diffs);
    let z = normal_quantile(0.5 + level / 2.0);
    let mut out = Forecast::with_capacity_and_level(h, level);
    for k in 1..=h {
        let point = y[n - m + (k - 1) % m];
        let half = z * sigma * (((k - 1) / m + 1) as f64).sqrt();
        push(&mut out, point, half);
    }
    out
}

/// The mean of the last months; the interval from their spread.
fn mean_forecast(y: &[f64], h: usize, level: f64) -> Forecast {
    let tail = &y[y.len().saturating_sub(MEAN_WINDOW)..];
    let mean = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    let dev: Vec<f64> = tail.iter().map(|v| v - mean).collect();
    let half = normal_quantile(0.5 + level / 2.0) * rms(&dev) * (1.0 + 1.0 / tail.len().max(1) as f64).sqrt();
    let mut out = Forecast::with_capacity_and_level(h, level);
    for _ in 0..h {
        push(&mut out, mean, half);
    }
    out
}

fn push(f: &mut Forecast, point: f64, half: f64) {
    f.point.push(point);
    if let Some(iv) = f.intervals.as_mut() {
        iv.lower.push(point - half);
        iv.upper.push(point + half);
    }
}

fn rms(v: &[f64]) -> f64 {
    if v.is_empty() { 0.0 } else { (v.iter().map(|d| d * d).sum::<f64>() / v.len() as f64).sqrt() }
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Trend, a quarter-end spike and noise from a fixed sequence.
    pub(crate) fn seasonal_series(n: usize) -> Vec<f64> {
        (0..n)
            .map(|t| {
                let spike = if t % 3 == 2 { 60.0 } else { 0.0 };
                let noise = ((t * 7919) % 13) as f64 - 6.0;
                100.0 + 2.0 * t as f64 + spike + noise
            })
            .collect()
    }

    fn check_intervals(p: &Prediction, h: usize) {
        assert_eq!((p.point.len(), p.low.len(), p.high.len()), (h, h, h));
        for i in 0..h {
            assert!(p.low[i] <= p.point[i] && p.point[i] <= p.high[i], "{}: step {i}: {p:?}", p.method.name());
            assert!(p.low[i] >= 0.0);
        }
    }

    #[test]
    fn every_method_gives_ordered_non_negative_intervals() {
        let y = seasonal_series(30);
        for method in [
            Method::MstlEts(QUARTER),
            Method::MstlEts(QUARTER_AND_YEAR),
            Method::Ets,
            Method::SeasonalNaive(12),
            Method::SeasonalNaive(3),
            Method::Mean,
        ] {
            let p = forecast(method, &y, 6, 0.8).expect("forecast");
            check_intervals(&p, 6);
        }
        // A series that falls to zero: forecasts are clipped, the ordering holds.
        let falling: Vec<f64> = (0..20).map(|t| (200.0 - 15.0 * t as f64).max(0.0)).collect();
        for method in [Method::Ets, Method::SeasonalNaive(3), Method::Mean] {
            if let Ok(p) = forecast(method, &falling, 6, 0.8) {
                check_intervals(&p, 6);
            }
        }
    }

    #[test]
    fn wider_levels_give_wider_intervals() {
        let y = seasonal_series(24);
        let narrow = forecast(Method::SeasonalNaive(3), &y, 4, 0.5).expect("50 %");
        let wide = forecast(Method::SeasonalNaive(3), &y, 4, 0.95).expect("95 %");
        assert!((0..4).all(|i| wide.high[i] - wide.low[i] > narrow.high[i] - narrow.low[i]));
        assert!(forecast(Method::Mean, &y, 4, 1.0).is_err());
    }

    #[test]
    fn mstl_follows_the_quarter_end_spike() {
        let y = seasonal_series(27); // ends just after a spike month (t = 26)
        let p = forecast(Method::MstlEts(QUARTER), &y, 3, 0.8).expect("forecast");
        // Months 27, 28 are ordinary, 29 is a quarter end.
        assert!(p.point[2] > p.point[0] + 30.0 && p.point[2] > p.point[1] + 30.0, "{:?}", p.point);
    }

    #[test]
    fn seasonal_naive_repeats_the_last_cycle() {
        let y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let p = forecast(Method::SeasonalNaive(3), &y, 5, 0.8).expect("forecast");
        assert_eq!(p.point, vec![4.0, 5.0, 6.0, 4.0, 5.0]);
        assert!(forecast(Method::SeasonalNaive(12), &y, 1, 0.8).is_err(), "shorter than a cycle");
    }

    #[test]
    fn normal_quantiles() {
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!((normal_quantile(0.9) - 1.281552).abs() < 1e-5);
        assert!(normal_quantile(0.5).abs() < 1e-12);
        assert!((normal_quantile(0.001) + 3.090232).abs() < 1e-5);
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(Method::MstlEts(QUARTER_AND_YEAR).name(), "mstl_ets_3_12");
        assert_eq!(Method::SeasonalNaive(12).name(), "seasonal_naive_12");
        assert_eq!((Method::MstlEts(YEAR).min_len(), Method::MstlEts(QUARTER).min_len()), (24, 9));
    }
}
