//! Forecast-accuracy tracking: every snapshot of a period that has ended, against what happened.
//!
//! The forecast a snapshot made: a model's `predicted_amount`; for a roll-up or a manager's call, the
//! commit call — closed so far plus the open `commit` amount. The actual: the closed-won amount of
//! the snapshot's owner (or the tenant) in its period (the month it names, else its fiscal quarter),
//! or the tenant's MRR at the end of the month; a manager's call is judged by their direct reports'
//! bookings. Territory rows are not tracked (a territory's
//! bookings depend on how deals were booked to it, not on who forecast them).

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use orbas_oltp::db::Db;
use orbas_oltp::model::TenantId;
use orbas_oltp::repo::forecasts::{self, Snapshot};
use orbas_warehouse::sql::{Lake, Limits};
use rust_decimal::prelude::ToPrimitive;
use tracing::instrument;

use super::accuracy::{self, Summary};
use super::period::Quarter;
use super::{data_day, lake, origin_of, series};
use crate::error::Result;

/// Earlier than any snapshot (Postgres' `date` does not reach `NaiveDate::MIN`).
const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a valid date");

/// One tracked snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// `rollup`, `manager_call`, `model` (bookings) or `model/mrr`.
    pub source: String,
    pub user: Option<String>,
    pub fiscal_year: i16,
    pub fiscal_quarter: i16,
    pub period_start: NaiveDate,
    pub snapshot_date: NaiveDate,
    pub forecast: f64,
    pub actual: f64,
}

/// Accuracy of a tenant's past snapshots.
#[derive(Debug, Clone)]
pub struct Accuracy {
    /// Snapshots of periods complete by this day's month are tracked.
    pub until: NaiveDate,
    pub pairs: Vec<Pair>,
    pub by_source: BTreeMap<String, Summary>,
    /// Per (source, fiscal year, fiscal quarter).
    pub by_period: BTreeMap<(String, i16, i16), Summary>,
    /// Per (source, rep).
    pub by_rep: BTreeMap<(String, String), Summary>,
    /// Snapshots not tracked: territory rows, periods not over, models without a prediction.
    pub skipped: usize,
}

/// Tracks every snapshot of a tenant whose period ended before the current month.
#[instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn accuracy(db: &Db, lake: &Lake, tenant: TenantId) -> Result<Accuracy> {
    let ctx = lake.session(&tenant.to_string(), Limits::BATCH).await?;
    let origin = origin_of(data_day(&ctx).await?);
    let (cal, snapshots) = {
        let mut tx = db.begin(tenant).await?;
        let cal = forecasts::calendar(tx.conn(), tenant).await?;
        let snaps = forecasts::taken_between(tx.conn(), EPOCH, origin).await?;
        tx.commit().await?;
        (cal, snaps)
    };
    let won = lake::won_deals(&ctx, &cal.currency, origin).await?;
    let managers = lake::managers(&ctx).await?;
    let (mrr, _) = lake::mrr_by_month(&ctx, &cal.currency, origin).await?;
    let mrr: BTreeMap<NaiveDate, f64> = mrr.into_iter().collect();
    let mut pairs = Vec::new();
    let mut skipped = 0;
    for s in &snapshots {
        match pair(s, &cal, origin, &won, &managers, &mrr)? {
            Some(p) => pairs.push(p),
            None => skipped += 1,
        }
    }
    Ok(summarise(origin, pairs, skipped))
}

fn summarise(until: NaiveDate, pairs: Vec<Pair>, skipped: usize) -> Accuracy {
    let by_source = accuracy::by_key(&triples(&pairs, |p| Some(p.source.clone())));
    let by_period = accuracy::by_key(&triples(&pairs, |p| Some((p.source.clone(), p.fiscal_year, p.fiscal_quarter))));
    let by_rep = accuracy::by_key(&triples(&pairs, |p| p.user.clone().map(|u| (p.source.clone(), u))));
    Accuracy { until, pairs, by_source, by_period, by_rep, skipped }
}

fn triples<K>(pairs: &[Pair], key: impl Fn(&Pair) -> Option<K>) -> Vec<(K, f64, f64)> {
    pairs.iter().filter_map(|p| key(p).map(|k| (k, p.forecast, p.actual))).collect()
}

/// The (forecast, actual) of one snapshot, `None` when it is not tracked.
fn pair(
    s: &Snapshot,
    cal: &forecasts::Calendar,
    origin: NaiveDate,
    won: &[lake::Won],
    managers: &HashMap<String, String>,
    mrr: &BTreeMap<NaiveDate, f64>,
) -> Result<Option<Pair>> {
    if s.territory_id.is_some() && s.user_id.is_none() {
        return Ok(None);
    }
    let (start, end) = match (s.period_start, s.period_end) {
        (Some(a), Some(b)) => (a, b.succ_opt().unwrap_or(b)),
        _ => {
            let q = Quarter::named(i32::from(s.fiscal_year), s.fiscal_quarter.max(0) as u32, cal)?;
            (q.start, q.end)
        }
    };
    if end > origin {
        return Ok(None);
    }
    let f = |d: rust_decimal::Decimal| d.to_f64().unwrap_or(0.0);
    let forecast = match s.source.as_str() {
        "model" => match s.predicted_amount {
            Some(p) => f(p),
            None => return Ok(None),
        },
        _ => f(s.closed_amount) + f(s.commit_amount),
    };
    let user = s.user_id.map(|u| u.to_string());
    let (source, actual) = match s.metric.as_str() {
        "mrr" => {
            let Some(v) = mrr.get(&series::month_of(start)).copied() else { return Ok(None) };
            (format!("{}/mrr", s.source), v)
        }
        _ => {
            let actual = won
                .iter()
                .filter(|w| w.day >= start && w.day < end && covers(s, user.as_deref(), w, managers))
                .filter_map(|w| w.amount)
                .sum();
            (s.source.clone(), actual)
        }
    };
    Ok(Some(Pair {
        source,
        user,
        fiscal_year: s.fiscal_year,
        fiscal_quarter: s.fiscal_quarter,
        period_start: start,
        snapshot_date: s.snapshot_date,
        forecast,
        actual,
    }))
}

/// Whether won deal `w` counts towards snapshot `s` of `user` (`None`: the tenant).
fn covers(s: &Snapshot, user: Option<&str>, w: &lake::Won, managers: &HashMap<String, String>) -> bool {
    let Some(user) = user else { return true };
    let Some(owner) = w.owner.as_deref() else { return false };
    if s.source == "manager_call" { managers.get(owner).is_some_and(|m| m == user) } else { owner == user }
}
