//! Subscription state, usage and billing. Every period is invoiced in advance (items per subscription
//! line, one-off services on the first invoice, VAT for EMEA customers). Unhealthy customers use fewer
//! of their seats, pay later, fall past due, and their last invoices before leaving may end up
//! uncollectible.

use chrono::Days;
use rand::Rng;

use super::{Invoice, Shard, Sub, SubStatus};
use crate::model::Segment;
use crate::seed::catalog::PRODUCT_SPECS;
use crate::seed::ctx::{TenantCtx, div_round};
use crate::seed::rng::{self, SeedRng, between, chance, normal, uniform};
use crate::seed::time::{DAY, HOUR, Ms, add_months, date_of, ms_of};
use crate::seed::words::vat_bp;

pub(super) fn build(c: &mut TenantCtx, s: &mut Shard) {
    let mut rng = c.t.shard_rng(s.ix, "billing");
    let mut ids = c.t.shard_ids(s.ix, "invoices");
    for i in 0..s.subs.len() {
        let (health, segment, country) = {
            let a = &s.accounts[s.subs[i].account];
            (a.health, a.segment, a.country)
        };
        let sub = &mut s.subs[i];
        lifecycle(c, &mut rng, sub, health, segment);
        invoices(c, &mut rng, &mut ids, sub, health, segment, country);
        if sub.status == SubStatus::Active
            && sub.invoices.iter().any(|inv| inv.status == "open" && ms_of(inv.due) < c.t.now)
        {
            sub.status = SubStatus::PastDue;
        }
    }
}

/// Cancellation, status, current period and usage.
fn lifecycle(c: &TenantCtx, rng: &mut SeedRng, sub: &mut Sub, health: f64, segment: Segment) {
    let now = c.t.now;
    if let Some(churn) = sub.churn_at {
        let requested = (churn - between(rng, 3 * DAY, 40 * DAY)).max(sub.start + DAY);
        if requested <= now {
            sub.cancel_requested = Some(requested);
            sub.cancel_reason = Some(if health < 0.3 && chance(rng, 0.5) {
                "Low adoption — the team stopped using it"
            } else if health < 0.45 && chance(rng, 0.4) {
                "Too many reliability issues"
            } else {
                rng::pick(
                    rng,
                    &["Budget cuts", "Switched to a competitor", "Company was acquired", "Consolidating tools"],
                )
            });
        }
    }
    let day0 = date_of(sub.start);
    let tod = sub.start - ms_of(day0);
    let boundary = |k: i32| ms_of(add_months(day0, k * sub.period_months)) + tod;
    let mut k = 1;
    while boundary(k) <= now {
        k += 1;
    }
    sub.current_period_end = boundary(k);
    sub.status = SubStatus::Active;
    if let Some(end) = sub.fixed_term_end.filter(|e| *e <= now) {
        sub.status = SubStatus::Expired;
        sub.current_period_end = end;
    }
    if sub.cancel_requested.is_some() {
        sub.status = SubStatus::Cancelled;
        sub.current_period_end = sub.churn_at.unwrap_or(sub.current_period_end);
    }
    if sub.status == SubStatus::Active && segment == Segment::Smb && now - sub.start < 14 * DAY && chance(rng, 0.4) {
        sub.status = SubStatus::Trialing;
    }
    let leaving = sub.churn_at.is_some_and(|ch| ch - now < 120 * DAY);
    let mut usage = (0.1 + 0.85 * health + 0.07 * normal(rng)).clamp(0.02, 1.0);
    if leaving {
        usage *= uniform(rng, 0.45, 0.8);
    }
    if sub.status == SubStatus::Trialing {
        usage *= 0.6;
    }
    let seats = sub.seats_at(sub.end().unwrap_or(now).min(now));
    sub.active_seats = Some((seats as f64 * usage).round() as i64);
}

#[allow(clippy::too_many_arguments)]
fn invoices(
    c: &mut TenantCtx,
    rng: &mut SeedRng,
    ids: &mut crate::model::IdGen<SeedRng>,
    sub: &mut Sub,
    health: f64,
    segment: Segment,
    country: &str,
) {
    let now = c.t.now;
    let end = sub.end().unwrap_or(Ms::MAX);
    let day0 = date_of(sub.start);
    let card = segment == Segment::Smb;
    let mut periods = Vec::new();
    for k in 0..400 {
        let issued = add_months(day0, k * sub.period_months);
        let at = ms_of(issued) + 6 * HOUR;
        if at >= end || at > now + 7 * DAY {
            break;
        }
        periods.push((issued, at));
    }
    let n = periods.len();
    for (k, (issued, at)) in periods.into_iter().enumerate() {
        let draft = at > now;
        let last_before_churn = sub.churn_at.is_some() && k + 2 >= n;
        let items = items(sub, k == 0, at);
        let subtotal: i64 = items.iter().map(|i| i.4).sum();
        let tax = div_round(i128::from(subtotal) * i128::from(vat_bp(country)), 10_000);
        let due = issued + Days::new(if card { 14 } else { 30 });
        let created = if draft { now - between(rng, HOUR, DAY) } else { at };
        c.counters.invoice += 1;
        let mut inv = Invoice {
            id: ids.at_millis(created as u64),
            number: format!("INV-{}-{:07}", issued.format("%Y"), c.counters.invoice),
            issued,
            due,
            status: "draft",
            items,
            subtotal,
            tax,
            paid: 0,
            payments: Vec::new(),
            created,
        };
        if !draft {
            settle(rng, &mut inv, now, health, card, last_before_churn);
        }
        sub.invoices.push(inv);
    }
}

/// Invoice items of the period starting at `at`: one per subscription line, one-offs on the first.
fn items(sub: &Sub, first: bool, at: Ms) -> Vec<(Option<usize>, String, i64, i64, i64)> {
    let months = i64::from(sub.period_months);
    let mut out: Vec<_> = sub
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let qty = if i == 0 { sub.seats_at(at) } else { l.qty };
            let unit = l.unit_month * months;
            let what = PRODUCT_SPECS[l.product].1;
            (Some(l.product), format!("{what} — {months} month(s)"), qty * 100, unit, qty * unit)
        })
        .collect();
    if first {
        for (p, amount) in &sub.one_off {
            out.push((Some(*p), PRODUCT_SPECS[*p].1.to_owned(), 100, *amount, *amount));
        }
    }
    out
}

/// Payment outcome of an issued invoice: paid (on time or late), still open (possibly past due),
/// uncollectible for leaving customers, or void.
fn settle(rng: &mut SeedRng, inv: &mut Invoice, now: Ms, health: f64, card: bool, last_before_churn: bool) {
    let total = inv.subtotal + inv.tax;
    let (issued, due) = (ms_of(inv.issued) + 6 * HOUR, ms_of(inv.due) + 12 * HOUR);
    let method = if card {
        rng::weighted(rng, &[("card", 0.75), ("direct_debit", 0.25)])
    } else {
        rng::weighted(rng, &[("bank_transfer", 0.7), ("check", 0.1), ("card", 0.15), ("other", 0.05)])
    };
    let late_p = 0.05 + 0.5 * (1.0 - health).powi(2) + if last_before_churn { 0.3 } else { 0.0 };
    if chance(rng, 0.01) || total == 0 {
        inv.status = "void";
        return;
    }
    let failed = |rng: &mut SeedRng, from: Ms, to: Ms, n: i64| -> Vec<(i64, &'static str, Ms, &'static str)> {
        (0..n).map(|_| (total, "failed", from + rng.random_range(0..(to - from).max(1)), method)).collect()
    };
    if !chance(rng, late_p) {
        let paid_at =
            if card { issued + between(rng, HOUR, DAY) } else { issued + rng.random_range(0..(due - issued).max(1)) };
        if paid_at > now {
            inv.status = "open";
            return;
        }
        if card && chance(rng, 0.08) {
            inv.payments.extend(failed(rng, issued, paid_at, 1));
        }
        inv.payments.push((total, "succeeded", paid_at, method));
        (inv.status, inv.paid) = ("paid", total);
        return;
    }
    let paid_at = due + between(rng, 5 * DAY, 40 * DAY);
    if last_before_churn && due < now && chance(rng, 0.45) {
        let n = between(rng, 1, 4);
        inv.payments.extend(failed(rng, issued, due.min(now), n));
        inv.status = "uncollectible";
        return;
    }
    if paid_at > now {
        let n = between(rng, 0, 3);
        inv.payments.extend(failed(rng, issued, now.min(due.max(issued + HOUR)), n));
        inv.status = "open";
        return;
    }
    inv.payments.push((total, "succeeded", paid_at, method));
    (inv.status, inv.paid) = ("paid", total);
}
