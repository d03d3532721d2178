//! Forecasting (issue #6, part 4): per tenant, territory and owner.
//!
//! - [`rollup`]: the weighted pipeline of the current and next fiscal quarter — open amounts by forecast category,
//!   weighted by stage probability, closed-won, quota attainment — from the lake ([`lake`]).
//! - [`series`] → [`backtest`] → [`model`]: monthly bookings (closed-won amount by close month) and
//!   MRR per tenant, bookings per owner with enough history; each series gets the method that won a
//!   rolling-origin backtest on its own past (MSTL + ETS, ETS, seasonal naive) and a forecast with an
//!   80 % prediction interval.
//! - [`run`] writes both as `forecast_snapshots` through `orbas-oltp` (source `rollup` per quarter,
//!   source `model` per month ahead), replacing the rows it wrote earlier the same day.
//! - [`accuracy`]: past snapshots against what happened, per source, period and rep ([`accuracy`]
//!   metrics: sMAPE, MAPE, bias).
//!
//! Everything is dated by the data's present ([`crate::dataset::data_horizon`]), not the wall clock:
//! the current quarter is the one that day falls in, series end with the last month complete by it.

pub mod accuracy;
pub mod backtest;
pub mod lake;
pub mod model;
pub mod period;
pub mod rollup;
pub mod series;
mod track;

use std::collections::BTreeMap;

use chrono::{Duration, Months, NaiveDate, Utc};
use datafusion::prelude::SessionContext;
use orbas_oltp::db::Db;
use orbas_oltp::model::{TenantId, TerritoryId, UserId};
use orbas_oltp::repo::forecasts::{self, Calendar, NewSnapshot, Replaced, Source};
use orbas_warehouse::sql::{Lake, Limits};
use rust_decimal::Decimal;
use tracing::{info, instrument, warn};

use self::backtest::Selection;
use self::model::Prediction;
pub use self::period::Quarter;
pub use self::rollup::{Level, Totals};
use self::series::Monthly;
pub use self::track::{Accuracy, accuracy};
use crate::dataset;
use crate::error::{Error, Result};

/// How far and how forecasts are made.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Months forecast ahead (and written as `model` snapshots).
    pub horizon: usize,
    pub backtest: backtest::Settings,
    /// An owner's bookings are forecast when their series is at least this long …
    pub min_owner_months: usize,
    /// … and books something in at least this share of its months.
    pub min_owner_active: f64,
    /// Fiscal quarters rolled up: the current one and the ones after it.
    pub quarters: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            horizon: 6,
            backtest: backtest::Settings::default(),
            min_owner_months: 18,
            min_owner_active: 0.4,
            quarters: 2,
        }
    }
}

/// What a series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Closed-won amount by close month.
    Bookings,
    /// Monthly recurring revenue at the month's end.
    Mrr,
}

impl Metric {
    pub fn as_str(&self) -> &'static str {
        match self {
            Metric::Bookings => "bookings",
            Metric::Mrr => "mrr",
        }
    }
}

/// A series: its metric and whose it is (`None`: the tenant's).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub metric: Metric,
    pub owner: Option<String>,
}

impl SeriesKey {
    /// `bookings`, `mrr`, `bookings/<owner id>`.
    pub fn id(&self) -> String {
        match &self.owner {
            None => self.metric.as_str().to_owned(),
            Some(o) => format!("{}/{o}", self.metric.as_str()),
        }
    }
}

/// The first month not yet complete on `day`: series end before it, forecasts start at it.
pub fn origin_of(day: NaiveDate) -> NaiveDate {
    series::month_of(day + Duration::days(1))
}

/// The day a tenant's data has reached: its latest activity, else today.
pub async fn data_day(ctx: &SessionContext) -> Result<NaiveDate> {
    Ok(dataset::data_horizon(ctx).await?.unwrap_or_else(Utc::now).date_naive())
}

/// The tenant's monthly series ending before `origin`: bookings and MRR of the tenant, and the
/// bookings of every owner whose series is long and active enough (see [`Settings`]).
pub async fn series(
    ctx: &SessionContext,
    currency: &str,
    origin: NaiveDate,
    settings: &Settings,
) -> Result<Vec<(SeriesKey, Monthly)>> {
    let won = lake::won_deals(ctx, currency, origin).await?;
    let unconverted = won.iter().filter(|w| w.amount.is_none()).count();
    if unconverted > 0 {
        warn!(unconverted, "won deals without an exchange rate left out of the bookings series");
    }
    let points: Vec<(NaiveDate, f64)> = won.iter().filter_map(|w| w.amount.map(|a| (w.day, a))).collect();
    let mut out = Vec::new();
    let tenant = series::resample(&points, None, origin)?;
    let start = tenant.start;
    if !tenant.is_empty() {
        out.push((SeriesKey { metric: Metric::Bookings, owner: None }, tenant));
    }
    let (mrr, _) = lake::mrr_by_month(ctx, currency, origin).await?;
    let mrr = series::resample(&mrr, None, origin)?;
    if !mrr.is_empty() {
        out.push((SeriesKey { metric: Metric::Mrr, owner: None }, mrr));
    }
    let mut by_owner: BTreeMap<&str, Vec<(NaiveDate, f64)>> = BTreeMap::new();
    for w in &won {
        if let (Some(o), Some(a)) = (&w.owner, w.amount) {
            by_owner.entry(o).or_default().push((w.day, a));
        }
    }
    for (owner, points) in by_owner {
        // From the owner's first booking (a rep hired later has no zeros before they started).
        let s = series::resample(&points, None, origin)?;
        let active = s.values.iter().filter(|v| **v > 0.0).count() as f64;
        if s.len() >= settings.min_owner_months
            && active >= settings.min_owner_active * s.len() as f64
            && s.start >= start
        {
            out.push((SeriesKey { metric: Metric::Bookings, owner: Some(owner.to_owned()) }, s));
        }
    }
    Ok(out)
}

/// A series and its forecast.
#[derive(Debug, Clone)]
pub struct Forecasted {
    pub key: SeriesKey,
    pub series: Monthly,
    pub selection: Selection,
    pub prediction: Prediction,
}

/// Forecasts every series `h` months ahead (CPU work: call off the async executor). Series that
/// cannot be forecast are logged and left out.
pub fn forecast_all(series: Vec<(SeriesKey, Monthly)>, h: usize, settings: &backtest::Settings) -> Vec<Forecasted> {
    let mut out = Vec::new();
    for (key, s) in series {
        match backtest::forecast(&s.values, h, settings) {
            Ok((selection, prediction)) => out.push(Forecasted { key, series: s, selection, prediction }),
            Err(e) => warn!(series = %key.id(), months = s.len(), error = %e, "series not forecast"),
        }
    }
    out
}

/// What one [`run`] computed and wrote.
#[derive(Debug, Clone)]
pub struct Report {
    pub tenant: TenantId,
    /// The data's day: the snapshot date.
    pub day: NaiveDate,
    pub currency: String,
    /// The roll-up of the current fiscal quarter and the next ones.
    pub rollups: Vec<(Quarter, BTreeMap<Level, Totals>)>,
    pub forecasts: Vec<Forecasted>,
    pub written: Replaced,
}

/// Computes the roll-ups of the current and next fiscal quarters and the forecasts of a tenant and writes them
/// as today's `forecast_snapshots` (replacing the ones computed earlier that day).
#[instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn run(db: &Db, lake: &Lake, tenant: TenantId, settings: &Settings) -> Result<Report> {
    let ctx = lake.session(&tenant.to_string(), Limits::BATCH).await?;
    let day = data_day(&ctx).await?;
    let cal = {
        let mut tx = db.begin(tenant).await?;
        let cal = forecasts::calendar(tx.conn(), tenant).await?;
        tx.commit().await?;
        cal
    };
    let mut rollups = Vec::new();
    let mut quarter = Quarter::of(day, &cal);
    for _ in 0..settings.quarters.max(1) {
        rollups.push((quarter, quarter_rollup(&ctx, &cal.currency, day, &quarter).await?));
        quarter = Quarter::of(quarter.end, &cal);
    }
    let origin = origin_of(day);
    let all = series(&ctx, &cal.currency, origin, settings).await?;
    let (h, bt) = (settings.horizon, settings.backtest);
    let forecasts = tokio::task::spawn_blocking(move || forecast_all(all, h, &bt))
        .await
        .map_err(|e| Error::Forecast(format!("the forecasting task failed: {e}")))?;
    let rows = snapshot_rows(&rollups, &forecasts, &cal)?;
    let mut tx = db.begin(tenant).await?;
    let written = forecasts::replace_day(tx.conn(), tenant, day, &rows).await?;
    tx.commit().await?;
    info!(%day, quarters = rollups.len(), levels = rollups.iter().map(|r| r.1.len()).sum::<usize>(),
          series = forecasts.len(), inserted = written.inserted, replaced = written.deleted, "forecast snapshots written");
    Ok(Report { tenant, day, currency: cal.currency, rollups, forecasts, written })
}

/// The roll-up of `quarter` as of `day`.
pub async fn quarter_rollup(
    ctx: &SessionContext,
    currency: &str,
    day: NaiveDate,
    quarter: &Quarter,
) -> Result<BTreeMap<Level, Totals>> {
    let cells = lake::quarter_cells(ctx, currency, day, quarter).await?;
    let quotas = lake::quotas(ctx, currency, quarter).await?;
    Ok(rollup::roll_up(&cells, &quotas))
}

fn money(v: f64) -> Decimal {
    Decimal::from_f64_retain(v.max(0.0)).unwrap_or_default().round_dp(2)
}

fn id<T: From<uuid::Uuid>>(s: &str) -> Result<T> {
    uuid::Uuid::parse_str(s).map(T::from).map_err(|e| Error::Invalid(format!("id {s:?} from the lake: {e}")))
}

fn fiscal(q: &Quarter) -> Result<(i16, i16)> {
    let y = i16::try_from(q.fiscal_year).map_err(|_| Error::Invalid(format!("fiscal year {}", q.fiscal_year)))?;
    Ok((y, q.fiscal_quarter as i16))
}

/// The snapshot rows: one `rollup` row per quarter and level, one `model` row per series and
/// month ahead (its fiscal quarter, the month as its period).
fn snapshot_rows(
    rollups: &[(Quarter, BTreeMap<Level, Totals>)],
    forecasts: &[Forecasted],
    cal: &Calendar,
) -> Result<Vec<NewSnapshot>> {
    let mut rows = Vec::new();
    for (level, t, quarter) in rollups.iter().flat_map(|(q, r)| r.iter().map(move |(l, t)| (l, t, q))) {
        let (fy, fq) = fiscal(quarter)?;
        let (user_id, territory_id): (Option<UserId>, Option<TerritoryId>) = match level {
            Level::Tenant => (None, None),
            Level::Owner(o) => (Some(id(o)?), None),
            Level::Territory(t) => (None, Some(id(t)?)),
        };
        rows.push(NewSnapshot {
            user_id,
            territory_id,
            fiscal_year: fy,
            fiscal_quarter: fq,
            source: Source::Rollup,
            metric: Metric::Bookings.as_str(),
            period: None,
            commit_amount: money(t.commit),
            best_case_amount: money(t.best_case),
            pipeline_amount: money(t.pipeline),
            closed_amount: money(t.closed),
            weighted_amount: Some(money(t.weighted)),
            predicted: None,
            currency: cal.currency.clone(),
            method: "stage_weighted".to_owned(),
        });
    }
    let level = Decimal::from_f64_retain(0.0).unwrap_or_default();
    for f in forecasts {
        let user_id = f.key.owner.as_deref().map(id::<UserId>).transpose()?;
        let p = &f.prediction;
        let interval_level = Decimal::from_f64_retain(p.level).map_or(level, |l| l.round_dp(3));
        for i in 0..p.point.len() {
            let month = f.series.end() + Months::new(i as u32);
            let last = (month + Months::new(1)).pred_opt().unwrap_or(month);
            let (fy, fq) = fiscal(&Quarter::of(month, cal))?;
            let (point, low, high) = (money(p.point[i]), money(p.low[i]), money(p.high[i]));
            rows.push(NewSnapshot {
                user_id,
                territory_id: None,
                fiscal_year: fy,
                fiscal_quarter: fq,
                source: Source::Model,
                metric: f.key.metric.as_str(),
                period: Some((month, last)),
                commit_amount: Decimal::ZERO,
                best_case_amount: Decimal::ZERO,
                pipeline_amount: Decimal::ZERO,
                closed_amount: Decimal::ZERO,
                weighted_amount: None,
                predicted: Some((point, low.min(point), high.max(point), interval_level)),
                currency: cal.currency.clone(),
                method: p.method.name(),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_the_first_incomplete_month() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        assert_eq!(origin_of(d(2026, 9, 30)), d(2026, 10, 1), "the last day completes its month");
        assert_eq!(origin_of(d(2026, 12, 4)), d(2026, 12, 1));
    }
}
