//! Tables written after all shards of a tenant, because they summarise them: quotas per rep and fiscal
//! quarter (set so that attainment varies around 90 %, with territory quotas as the sum of their reps')
//! and forecast snapshots (the reps' roll-ups at three dates per quarter, the managers' calls and the
//! baseline model's prediction).

use std::collections::BTreeMap;

use super::csv::Emitter;
use super::ctx::{Rollup, SNAPSHOT_DAYS, TenantCtx};
use super::org::UserStatus;
use super::rng::{normal, uniform};
use super::schema::{FORECAST_SNAPSHOTS, QUOTAS};
use super::time::{DAY, date_of, ms_of};
use crate::Result;
use crate::model::RoleKey;

pub(crate) fn emit(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    quotas(em, c)?;
    snapshots(em, c)
}

/// Rounds cents to whole thousands of the currency.
fn round_thousands(cents: f64) -> i64 {
    ((cents / 100_000.0).round() as i64).max(1) * 100_000
}

fn quotas(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("quotas");
    let mut ids = c.t.ids("quotas");
    let cal = &c.t.cal;
    let current = cal.quarter_of(date_of(c.t.now)).index;
    let first = cal.quarter_of(date_of(c.t.history_start)).index;
    let bookings: Vec<i64> = c.acc.bookings.values().copied().filter(|b| *b > 0).collect();
    let typical =
        if bookings.is_empty() { 5_000_000.0 } else { bookings.iter().sum::<i64>() as f64 / bookings.len() as f64 };
    // (territory root index, quarter index) → sum of rep quotas
    let mut by_region: BTreeMap<(usize, i32), i64> = BTreeMap::new();
    em.begin(QUOTAS);
    for (u, user) in c.org.users.iter().enumerate() {
        if user.role != RoleKey::SalesRep || user.status == UserStatus::Invited {
            continue;
        }
        let hired = cal.quarter_of(date_of(user.created)).index.max(first);
        let last = user.left.map_or(current + 1, |l| cal.quarter_of(date_of(l)).index);
        let mut recent: Vec<i64> = Vec::new();
        for qi in hired..=last {
            let q = cal.quarter_by_index(qi);
            let booked = c.acc.bookings.get(&(u, qi)).copied().unwrap_or(0) as f64;
            let amount = if qi < current && booked > 0.0 {
                round_thousands(booked / (0.9 + 0.25 * normal(&mut rng)).clamp(0.35, 1.6))
            } else if let Some(avg) =
                (!recent.is_empty()).then(|| recent.iter().rev().take(4).sum::<i64>() / recent.len().min(4) as i64)
            {
                round_thousands(avg as f64 * if qi >= current { 1.05 } else { uniform(&mut rng, 0.9, 1.1) })
            } else {
                round_thousands(typical * uniform(&mut rng, 0.9, 1.3))
            };
            recent.push(amount);
            let at = (ms_of(q.start) - 20 * DAY).max(user.created);
            let root = user.territory.and_then(|t| c.org.territories[t].parent).unwrap_or(0);
            *by_region.entry((root, qi)).or_default() += amount;
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(at as u64))
                .uuid(user.id)
                .opt_uuid(user.territory.map(|t| c.org.territories[t].id))
                .int(i64::from(q.fiscal_year))
                .int(i64::from(q.quarter))
                .date(q.start)
                .date(q.end)
                .money(amount)
                .text(c.t.currency.code())
                .ts(at)
                .ts(at)
                .end()?;
        }
    }
    for ((root, qi), amount) in by_region {
        let q = cal.quarter_by_index(qi);
        let at = (ms_of(q.start) - 25 * DAY).max(c.t.created);
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(at as u64))
            .null()
            .uuid(c.org.territories[root].id)
            .int(i64::from(q.fiscal_year))
            .int(i64::from(q.quarter))
            .date(q.start)
            .date(q.end)
            .money(round_thousands(amount as f64 * 1.1))
            .text(c.t.currency.code())
            .ts(at)
            .ts(at)
            .end()?;
    }
    em.finish()
}

fn snapshots(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("forecast_snapshots");
    let mut ids = c.t.ids("forecast_snapshots");
    let cal = &c.t.cal;
    let sorted: BTreeMap<(usize, i32, usize), Rollup> = c.acc.snapshots.iter().map(|(k, v)| (*k, *v)).collect();
    let mut by_manager: BTreeMap<(usize, i32, usize), Rollup> = BTreeMap::new();
    em.begin(FORECAST_SNAPSHOTS);
    for (&(u, qi, j), r) in &sorted {
        let q = cal.quarter_by_index(qi);
        let day = q.start + chrono::Days::new(SNAPSHOT_DAYS[j] as u64);
        let at = ms_of(day) + 6 * 3_600_000;
        let user = &c.org.users[u];
        let territory = user.territory.map(|t| c.org.territories[t].id);
        let row = |em: &mut Emitter<'_>, id, source: &str, r: &Rollup, predicted: Option<i64>| {
            em.row()
                .uuid(c.t.id)
                .uuid(id)
                .uuid(user.id)
                .opt_uuid(territory)
                .int(i64::from(q.fiscal_year))
                .int(i64::from(q.quarter))
                .date(day)
                .text(source)
                .money(r[0])
                .money(r[1])
                .money(r[2])
                .money(r[3])
                .opt_money(predicted)
                .text(c.t.currency.code())
                .ts(at)
                .ts(at)
                .end()
        };
        row(em, ids.at_millis(at as u64), "rollup", r, None)?;
        let predicted = r[3] as f64 + 0.8 * r[0] as f64 + 0.45 * r[1] as f64 + 0.1 * r[2] as f64;
        row(em, ids.at_millis(at as u64), "model", r, Some(predicted.round() as i64))?;
        if let Some(m) = user.manager {
            let e = by_manager.entry((m, qi, j)).or_default();
            for k in 0..4 {
                e[k] += r[k];
            }
        }
    }
    for ((m, qi, j), r) in by_manager {
        let q = cal.quarter_by_index(qi);
        let day = q.start + chrono::Days::new(SNAPSHOT_DAYS[j] as u64 + 1);
        let at = ms_of(day) + 9 * 3_600_000;
        if at > c.t.now {
            continue;
        }
        let judgement = |v: i64, rng: &mut super::rng::SeedRng| (v as f64 * uniform(rng, 0.85, 1.1)).round() as i64;
        let call = [judgement(r[0], &mut rng), judgement(r[1], &mut rng), r[2], r[3]];
        let user = &c.org.users[m];
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(at as u64))
            .uuid(user.id)
            .opt_uuid(user.territory.map(|t| c.org.territories[t].id))
            .int(i64::from(q.fiscal_year))
            .int(i64::from(q.quarter))
            .date(day)
            .text("manager_call")
            .money(call[0])
            .money(call[1])
            .money(call[2])
            .money(call[3])
            .null()
            .text(c.t.currency.code())
            .ts(at)
            .ts(at)
            .end()?;
    }
    em.finish()
}
