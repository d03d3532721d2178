//! Model selection by a rolling-origin backtest on the series' own past.
//!
//! A seasonal method is a candidate only for the cycles the series shows: a quarterly or yearly
//! period `m` is offered when the autocorrelation at lag `m` passes the 90 % test of the M4 Theta
//! benchmark ([`seasonal`]). A series without a detectable cycle (a rep's lumpy monthly bookings,
//! mostly) is forecast by AutoETS alone: there, letting a backtest over six origins choose among five
//! methods picks noise, and it cost 2–3 sMAPE points on the held-out months (docs/BENCHMARKS.md).
//!
//! For a training series `y` (everything the forecaster may know) and a horizon `h`, every candidate
//! [`Method`] that can be fitted on the shortest backtest history is refitted at each of the last
//! `origins` months of `y` on the months before it, forecasts up to `h` months, and is scored by its
//! mean symmetric relative error (the sMAPE term) against the months of `y` that follow the origin. The lowest error wins and is
//! refitted on all of `y`. Nothing outside `y` is read: [`holdout`] cuts the evaluation months off
//! before anything is fitted, so a value planted there cannot change the forecast.

use tracing::debug;

use super::model::{self, Method, Prediction, QUARTER, QUARTER_AND_YEAR, YEAR};
use super::series::Monthly;
use crate::error::{Error, Result};

/// How the backtest runs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Forecast origins tried (the last months of the training series).
    pub origins: usize,
    /// Coverage of the prediction intervals.
    pub level: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { origins: 6, level: 0.8 }
    }
}

/// |f − a| / ((|f| + |a|) / 2), 0 when both are 0: the per-month sMAPE term, so that the selection
/// optimises what the forecasts are judged by and a lumpy month does not dominate.
fn relative_error(f: f64, a: f64) -> f64 {
    let d = f.abs() + a.abs();
    if d == 0.0 { 0.0 } else { 2.0 * (f - a).abs() / d }
}

/// The z-value of the one-sided 90 % seasonality test.
const SEASONALITY_Z: f64 = 1.645;

/// Sample autocorrelation of `y` at lag `k` (0 for a constant series).
fn acf(y: &[f64], k: usize) -> f64 {
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let var: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if var == 0.0 || k >= y.len() {
        return 0.0;
    }
    (k..y.len()).map(|t| (y[t] - mean) * (y[t - k] - mean)).sum::<f64>() / var
}

/// `y` less its least-squares line: a trend correlates a series with itself at every lag, which the
/// seasonality test must not take for a cycle.
fn detrended(y: &[f64]) -> Vec<f64> {
    let n = y.len() as f64;
    let (tm, ym) = ((n - 1.0) / 2.0, y.iter().sum::<f64>() / n);
    let sxx: f64 = (0..y.len()).map(|t| (t as f64 - tm).powi(2)).sum();
    let slope =
        if sxx == 0.0 { 0.0 } else { y.iter().enumerate().map(|(t, v)| (t as f64 - tm) * (v - ym)).sum::<f64>() / sxx };
    y.iter().enumerate().map(|(t, v)| v - ym - slope * (t as f64 - tm)).collect()
}

/// Whether `y` shows a cycle of `m` months: three full cycles at least, and an autocorrelation of
/// the detrended series at lag `m` above `1.645 √((1 + 2 Σ_{k<m} r_k²) / n)` — the 90 % test
/// (Bartlett's variance of an autocorrelation) that the M4 competition's Theta benchmark
/// deseasonalises by. Only a positive correlation counts: a month that moves against the same month
/// a cycle earlier is no season to carry forward.
pub fn seasonal(y: &[f64], m: usize) -> bool {
    if m < 2 || y.len() < 3 * m {
        return false;
    }
    let r = detrended(y);
    let spread: f64 = (1..m).map(|k| acf(&r, k).powi(2)).sum();
    acf(&r, m) > SEASONALITY_Z * ((1.0 + 2.0 * spread) / y.len() as f64).sqrt()
}

/// The candidates for the training series `y`, in order of preference on ties: the seasonal methods
/// of the cycles [`seasonal`] finds in it, then AutoETS. The seasonal naive method is not among them:
/// on the generated reps' lumpy bookings the backtest picked it by chance and it lost on the held-out
/// months (see docs/BENCHMARKS.md); it stays a method and a peer.
pub fn candidates(y: &[f64]) -> Vec<Method> {
    let (quarter, year) = (seasonal(y, 3), seasonal(y, 12));
    let mut out = Vec::new();
    if quarter && year {
        out.push(Method::MstlEts(QUARTER_AND_YEAR));
    }
    if year {
        out.push(Method::MstlEts(YEAR));
    }
    if quarter {
        out.extend([Method::MstlEts(QUARTER), Method::Combo]);
    }
    out.push(Method::Ets);
    out
}

/// The winner of the backtest and every candidate's score.
#[derive(Debug, Clone)]
pub struct Selection {
    pub method: Method,
    /// Mean relative error per candidate that could be backtested (`None`: it failed to fit).
    pub scores: Vec<(Method, Option<f64>)>,
    pub origins: usize,
}

/// Picks a method for `y` by the rolling-origin backtest; [`Method::Mean`] when no candidate can be
/// backtested (a short or degenerate series).
pub fn select(y: &[f64], h: usize, settings: &Settings) -> Selection {
    // Fewer origins on a short series, so that ETS can still be fitted at the earliest one.
    let room = y.len().saturating_sub(Method::Ets.min_len());
    let origins = if room >= 2 { settings.origins.min(room) } else { settings.origins.min(y.len().saturating_sub(1)) };
    let shortest = y.len().saturating_sub(origins);
    let mut scores = Vec::new();
    for method in candidates(y).into_iter().filter(|m| m.min_len() <= shortest) {
        let mut errors = Vec::new();
        let mut failed = false;
        for origin in shortest..y.len() {
            let ahead = h.min(y.len() - origin);
            match model::forecast(method, &y[..origin], ahead, settings.level) {
                Ok(p) => {
                    errors.extend(p.point.iter().zip(&y[origin..origin + ahead]).map(|(f, a)| relative_error(*f, *a)))
                }
                Err(e) => {
                    debug!(method = %method.name(), origin, error = %e, "backtest fit failed");
                    failed = true;
                    break;
                }
            }
        }
        let score = (!failed && !errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64);
        scores.push((method, score));
    }
    let best =
        scores.iter().filter_map(|(m, s)| s.map(|s| (*m, s))).fold(None, |best: Option<(Method, f64)>, (m, s)| {
            match best {
                Some((_, b)) if b <= s => best,
                _ => Some((m, s)),
            }
        });
    Selection { method: best.map_or(Method::Mean, |(m, _)| m), scores, origins }
}

/// Selects a method on `y` and forecasts `h` months from its end. Falls back to the next best
/// candidate (and finally to [`Method::Mean`]) if the winner cannot be fitted on all of `y`.
pub fn forecast(y: &[f64], h: usize, settings: &Settings) -> Result<(Selection, Prediction)> {
    if y.is_empty() {
        return Err(Error::Forecast("an empty series cannot be forecast".to_owned()));
    }
    let selection = select(y, h, settings);
    let mut ranked: Vec<(Method, f64)> = selection.scores.iter().filter_map(|(m, s)| s.map(|s| (*m, s))).collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let order = std::iter::once(selection.method).chain(ranked.into_iter().map(|(m, _)| m)).chain([Method::Mean]);
    let mut last = None;
    for method in order {
        match model::forecast(method, y, h, settings.level) {
            Ok(p) => return Ok((selection, p)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Forecast("no method could be fitted".to_owned())))
}

/// A holdout evaluation: the last `h` months of `series` are cut off, the forecast is made from the
/// rest alone, and returned beside the months it should have matched.
#[derive(Debug, Clone)]
pub struct Holdout {
    pub train: Vec<f64>,
    pub actual: Vec<f64>,
    pub selection: Selection,
    pub prediction: Prediction,
}

pub fn holdout(series: &Monthly, h: usize, settings: &Settings) -> Result<Holdout> {
    if h == 0 || series.len() <= h {
        return Err(Error::Forecast(format!("a holdout of {h} months needs a longer series than {}", series.len())));
    }
    let train = series.head(h).values;
    let actual = series.values[series.len() - h..].to_vec();
    let (selection, prediction) = forecast(&train, h, settings)?;
    Ok(Holdout { train, actual, selection, prediction })
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::forecast::model::tests::seasonal_series;

    fn monthly(values: Vec<f64>) -> Monthly {
        Monthly { start: NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"), values }
    }

    #[test]
    fn a_value_planted_in_the_holdout_changes_nothing() {
        let clean = monthly(seasonal_series(24));
        let mut planted = clean.clone();
        let n = planted.values.len();
        planted.values[n - 1] = 1e12;
        planted.values[n - 3] = -5e11;
        for h in [3, 6] {
            let a = holdout(&clean, h, &Settings::default()).expect("clean");
            let b = holdout(&planted, h, &Settings::default()).expect("planted");
            assert_eq!(a.selection.method, b.selection.method);
            assert_eq!(a.selection.scores, b.selection.scores);
            assert_eq!(a.prediction, b.prediction, "h = {h}");
            assert_ne!(a.actual, b.actual, "the planted values are in the holdout");
            assert!(b.prediction.high.iter().all(|v| *v < 1e6));
        }
    }

    #[test]
    fn the_backtest_prefers_a_seasonal_method_on_a_seasonal_series() {
        let y = seasonal_series(21);
        let s = select(&y, 3, &Settings::default());
        assert!(matches!(s.method, Method::MstlEts(_) | Method::Combo), "{s:?}");
        assert_eq!(s.origins, 6);
        assert!(s.scores.iter().any(|(m, sc)| *m == Method::Ets && sc.is_some()));
    }

    #[test]
    fn short_and_flat_series_still_get_a_forecast() {
        let (sel, p) = forecast(&[5.0, 7.0], 3, &Settings::default()).expect("short");
        assert_eq!((sel.method, p.method), (Method::Mean, Method::Mean));
        assert_eq!(p.point, vec![6.0; 3]);
        let (_, p) = forecast(&[0.0; 20], 3, &Settings::default()).expect("zeros");
        assert!(p.point.iter().all(|v| *v == 0.0) && p.low.iter().zip(&p.high).all(|(l, h)| l <= h));
        assert!(forecast(&[], 3, &Settings::default()).is_err());
        assert!(holdout(&monthly(vec![1.0, 2.0]), 3, &Settings::default()).is_err());
    }

    #[test]
    fn seasonal_methods_are_candidates_only_for_the_cycles_the_series_shows() {
        // A quarter-end spike: the quarterly methods, not the yearly ones (fewer than three years).
        let quarterly = seasonal_series(30);
        assert!(seasonal(&quarterly, 3) && !seasonal(&quarterly, 12));
        assert_eq!(candidates(&quarterly), vec![Method::MstlEts(QUARTER), Method::Combo, Method::Ets]);
        // Three years of a December peak on top of the spike: both cycles.
        let both: Vec<f64> =
            seasonal_series(36).iter().enumerate().map(|(t, v)| v + [0.0, 150.0][usize::from(t % 12 == 11)]).collect();
        assert!(seasonal(&both, 12));
        assert_eq!(candidates(&both).len(), 5);
        // Noise from a fixed sequence and a straight trend have no cycle: AutoETS alone.
        let noise: Vec<f64> = (0..30).map(|t| 100.0 + ((t * 7919) % 13) as f64).collect();
        assert!(!seasonal(&noise, 3) && !seasonal(&noise, 12));
        assert_eq!(candidates(&noise), vec![Method::Ets]);
        let trend: Vec<f64> = (0..30).map(|t| 10.0 * t as f64).collect();
        assert_eq!(candidates(&trend), vec![Method::Ets]);
        // A period needs three cycles of history; a constant series has no autocorrelation at all.
        assert!(!seasonal(&quarterly[..8], 3) && !seasonal(&[5.0; 40], 3));
        // A month that moves against the one a cycle before (an alternating series at lag 3) is no season.
        let against: Vec<f64> = (0..30).map(|t| if (t / 3) % 2 == 0 { 10.0 } else { 50.0 }).collect();
        assert!(acf(&against, 3) < 0.0 && !seasonal(&against, 3));
    }

    #[test]
    fn a_series_without_a_cycle_is_forecast_by_ets() {
        let noise: Vec<f64> = (0..24).map(|t| 100.0 + ((t * 7919) % 13) as f64).collect();
        let s = select(&noise, 3, &Settings::default());
        assert_eq!(s.method, Method::Ets);
        assert_eq!(s.scores.iter().map(|(m, _)| *m).collect::<Vec<_>>(), vec![Method::Ets]);
    }
}
