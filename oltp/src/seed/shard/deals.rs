//! The deal engine. Each account may get a new-business opportunity (and a second try after a loss);
//! a won deal starts a subscription, which later sees expansion deals and yearly renewals until the
//! customer churns.
//!
//! An opportunity walks the pipeline from its first stage: at each stage it advances with a
//! probability that depends on the stage, the segment and the deal's latent momentum (higher for
//! referral and partner deals and senior contacts), or is lost there after stalling. Time per stage is
//! log-normal and longer for enterprise deals. Won deals tend to slip to the end of the fiscal quarter,
//! and more so in the fiscal fourth quarter, where deals also close more often. The walk runs to the
//! end; an opportunity whose last step lies after `now` is open in the stage it has reached.

use rand::Rng;

use super::{Opp, Shard, Sub, SubLine};
use crate::model::{ForecastCategory, OpportunityKind, OpportunityStatus, Segment};
use crate::seed::catalog::{P_ENTERPRISE, P_PRO, P_STARTER, PRODUCT_SPECS, STAGE_LOST, STAGE_PROPOSAL, STAGE_WON};
use crate::seed::ctx::{SNAPSHOT_DAYS, TenantCtx};
use crate::seed::rng::{self, SeedRng, between, chance, lognormal, normal, sigmoid, uniform};
use crate::seed::time::{DAY, FiscalCalendar, HOUR, Ms, YEAR, add_months, date_of, ms_of};

mod quotes;

/// Forced outcome of a walk (renewals, and the first accounts of a tenant so that every table gets rows).
#[derive(Debug, Clone, Copy)]
pub(super) enum Force {
    Won,
    LostAt(u8),
}

const ADVANCE: [f64; 5] = [0.8, 0.9, 0.8, 1.0, 1.4];
const STAGE_DAYS: [f64; 5] = [9.0, 12.0, 16.0, 14.0, 12.0];
const CONVERTED_SOURCES: &[(&str, f64)] = &[
    ("referral", 0.18),
    ("partner", 0.12),
    ("event", 0.18),
    ("web", 0.22),
    ("content", 0.1),
    ("paid_ads", 0.1),
    ("outbound", 0.08),
    ("other", 0.02),
];
const DIRECT_SOURCES: &[(&str, f64)] =
    &[("outbound", 0.45), ("referral", 0.2), ("partner", 0.15), ("event", 0.1), ("other", 0.1)];
const LOST_REASONS: &[&str] = &[
    "Price too high",
    "Lost to competitor",
    "No decision / stalled",
    "Budget frozen",
    "Missing feature",
    "Champion left the company",
    "Chose to build in-house",
];
const NEXT_STEPS: &[&str] = &[
    "Send revised proposal",
    "Schedule security review",
    "Demo for the wider team",
    "Confirm budget with the CFO",
    "Legal review of the MSA",
    "Agree on the rollout plan",
];

pub(super) fn build(c: &mut TenantCtx, s: &mut Shard) {
    let mut g = DealGen {
        rng: c.t.shard_rng(s.ix, "deals"),
        opp_ids: c.t.shard_ids(s.ix, "opportunities"),
        quote_ids: c.t.shard_ids(s.ix, "quotes"),
        sub_ids: c.t.shard_ids(s.ix, "subscriptions"),
    };
    for a in 0..s.accounts.len() {
        let force = match (s.ix, a) {
            (0, 0 | 1) => Some(Force::Won),
            (0, 2) => Some(Force::LostAt(STAGE_PROPOSAL + 1)),
            _ => None,
        };
        g.account(c, s, a, force);
    }
    accumulate(c, s);
}

struct DealGen {
    rng: SeedRng,
    opp_ids: crate::model::IdGen<SeedRng>,
    quote_ids: crate::model::IdGen<SeedRng>,
    sub_ids: crate::model::IdGen<SeedRng>,
}

/// What kind of deal to open, for whom and when.
struct Spec {
    account: usize,
    kind: OpportunityKind,
    created: Ms,
    lead_sourced: bool,
    force: Option<Force>,
    base_amount: Option<i64>,
    sub: Option<usize>,
}

impl DealGen {
    fn account(&mut self, c: &mut TenantCtx, s: &mut Shard, a: usize, mut force: Option<Force>) {
        if force.is_none() && !chance(&mut self.rng, 0.8) {
            return;
        }
        let mut created = s.accounts[a].created
            + 3 * HOUR
            + (lognormal(&mut self.rng, 8.0, 0.8) * DAY as f64).min(120.0 * DAY as f64) as Ms;
        let mut first = true;
        for _ in 0..2 {
            if created >= c.t.now - DAY {
                return;
            }
            let lead_sourced = first && chance(&mut self.rng, 0.5);
            let spec = Spec {
                account: a,
                kind: OpportunityKind::NewBusiness,
                created,
                lead_sourced,
                force,
                base_amount: None,
                sub: None,
            };
            let o = self.opp(c, s, spec);
            match s.opps[o].status {
                OpportunityStatus::Won => return self.customer(c, s, a, o),
                OpportunityStatus::Open => return,
                OpportunityStatus::Lost if chance(&mut self.rng, 0.35) => {
                    created = s.opps[o].end() + between(&mut self.rng, 90 * DAY, 270 * DAY);
                    (first, force) = (false, None);
                }
                OpportunityStatus::Lost => return,
            }
        }
    }

    fn opp(&mut self, c: &mut TenantCtx, s: &mut Shard, spec: Spec) -> usize {
        let rng = &mut self.rng;
        let acc = &s.accounts[spec.account];
        let (segment, health, currency) = (acc.segment, acc.health, acc.currency);
        let source = match spec.kind {
            OpportunityKind::NewBusiness if spec.lead_sourced => rng::weighted(rng, CONVERTED_SOURCES),
            OpportunityKind::NewBusiness => rng::weighted(rng, DIRECT_SOURCES),
            _ => "existing_customer",
        };
        let eligible: Vec<usize> =
            acc.contacts.iter().copied().filter(|&ci| s.contacts[ci].created <= spec.created).collect();
        let contact = (!eligible.is_empty()).then(|| eligible[rng.random_range(0..eligible.len())]);
        let seniority = contact.map_or(0.0, |ci| (s.contacts[ci].seniority as i32 as f64 - 1.5) * 0.12);
        let momentum = match spec.kind {
            OpportunityKind::NewBusiness => normal(rng) + source_quality(source) + seniority,
            OpportunityKind::Expansion => 0.8 * normal(rng) + 2.2 * (health - 0.6),
            OpportunityKind::Renewal => 2.0 * (health - 0.5) + 0.5 * normal(rng),
        };
        let start = match spec.kind {
            OpportunityKind::NewBusiness => 0,
            OpportunityKind::Expansion => 1,
            OpportunityKind::Renewal => STAGE_PROPOSAL,
        };
        let path = walk(rng, &c.t.cal, start, spec.created, momentum, segment, spec.kind, spec.force);
        let seen = path.iter().filter(|p| p.1 <= c.t.now).count().max(1);
        let amount0 = spec.base_amount.unwrap_or_else(|| {
            let median = match segment {
                Segment::Smb => 8_000.0,
                Segment::MidMarket => 40_000.0,
                Segment::Enterprise => 180_000.0,
            };
            (lognormal(rng, median / currency.usd_value(), 0.7) / 100.0).round().max(5.0) as i64 * 10_000
        });
        let estimate = ((amount0 as f64 * uniform(rng, 0.6, 1.5) / 50_000.0).round().max(1.0) as i64) * 50_000;
        let status = match (seen < path.len(), path.last().map(|p| p.0)) {
            (true, _) => OpportunityStatus::Open,
            (false, Some(STAGE_WON)) => OpportunityStatus::Won,
            _ => OpportunityStatus::Lost,
        };
        let needs_contact = spec.lead_sourced || path[..seen].iter().any(|p| p.0 >= STAGE_PROPOSAL);
        let contact = if needs_contact || chance(rng, 0.85) { contact } else { None };
        let campaign = match spec.lead_sourced {
            true => c.cat.campaign_for(rng, source, spec.created - 10 * DAY),
            false if chance(rng, 0.1) => c.cat.campaign_for(rng, "web", spec.created),
            false => None,
        };
        let acc_name = s.accounts[spec.account].name.clone();
        let mut o = Opp {
            id: self.opp_ids.at_millis(spec.created as u64),
            account: spec.account,
            contact,
            owner: s.accounts[spec.account].owner,
            kind: spec.kind,
            created: spec.created,
            currency,
            estimate,
            amount: estimate,
            path,
            seen,
            status,
            forecast: ForecastCategory::Pipeline,
            campaign,
            lead: None,
            lead_sourced: spec.lead_sourced,
            lead_source: source,
            lost_reason: None,
            next_step: None,
            momentum,
            name: String::new(),
            quotes: Vec::new(),
            last_activity: None,
        };
        self.finish_opp(c, s, &mut o, amount0, spec.sub, &acc_name);
        s.opps.push(o);
        s.opps.len() - 1
    }

    /// Quotes, amount, forecast category, reasons and name once the walk is known.
    fn finish_opp(
        &mut self,
        c: &mut TenantCtx,
        s: &Shard,
        o: &mut Opp,
        amount0: i64,
        sub: Option<usize>,
        acc_name: &str,
    ) {
        let rng = &mut self.rng;
        if o.entered(STAGE_PROPOSAL).is_some() {
            quotes::build(c, s, rng, &mut self.quote_ids, o, amount0, sub.map(|i| &s.subs[i]));
            if let Some(q) = o.quotes.last() {
                o.amount = q.subtotal - q.discount;
            }
        }
        o.forecast = match (o.status, o.stage()) {
            (OpportunityStatus::Won, _) => ForecastCategory::Closed,
            (OpportunityStatus::Lost, _) => ForecastCategory::Omitted,
            (_, 4) if chance(rng, 0.75) => ForecastCategory::Commit,
            (_, 4) => ForecastCategory::BestCase,
            (_, 3) if chance(rng, 0.8) => ForecastCategory::BestCase,
            (_, 2) if chance(rng, 0.25) => ForecastCategory::BestCase,
            _ => ForecastCategory::Pipeline,
        };
        o.lost_reason = match (o.status, o.kind) {
            (OpportunityStatus::Lost, OpportunityKind::Renewal) => Some("Customer churned"),
            (OpportunityStatus::Lost, _) => Some(rng::pick(rng, LOST_REASONS)),
            _ => None,
        };
        if o.status == OpportunityStatus::Open && (o.eventually_won() || chance(rng, 0.5)) {
            o.next_step = Some(rng::pick(rng, NEXT_STEPS));
        }
        let year = date_of(o.end()).format("%Y");
        o.name = match o.kind {
            OpportunityKind::NewBusiness => {
                let tier =
                    ["Starter", "Professional", "Enterprise"][tier_for(s.accounts[o.account].segment) - P_STARTER];
                format!("{acc_name} — {tier} rollout")
            }
            OpportunityKind::Expansion => format!("{acc_name} — expansion {year}"),
            OpportunityKind::Renewal => format!("{acc_name} — renewal {year}"),
        };
    }

    /// A won new-business deal: the subscription, its churn date, expansions and renewals.
    fn customer(&mut self, c: &mut TenantCtx, s: &mut Shard, a: usize, o: usize) {
        let health = s.accounts[a].health;
        let period = match s.accounts[a].segment {
            Segment::Smb => {
                if chance(&mut self.rng, 0.7) {
                    1
                } else {
                    12
                }
            }
            Segment::MidMarket => rng::pick(&mut self.rng, &[12, 12, 12, 12, 12, 12, 3, 3, 3, 1]),
            Segment::Enterprise => {
                if chance(&mut self.rng, 0.9) {
                    12
                } else {
                    3
                }
            }
        };
        let Some(main) = self.subscription(c, s, o, period, false) else { return };
        s.subs[main].churn_at = sample_churn(&mut self.rng, health, s.subs[main].start, period, c.t.now);
        self.expansions(c, s, a, main);
        if period == 12 {
            self.renewals(c, s, a, main);
        }
    }

    fn subscription(&mut self, c: &TenantCtx, s: &mut Shard, o: usize, period: i32, addon: bool) -> Option<usize> {
        let opp = &s.opps[o];
        let quote = opp.quotes.last()?;
        let start = opp.end();
        let mut lines = Vec::new();
        let mut one_off = Vec::new();
        for l in &quote.lines {
            let qty = (l.qty / 100).max(1);
            if PRODUCT_SPECS[l.product].3 {
                lines.push(SubLine {
                    product: l.product,
                    qty,
                    unit_month: crate::seed::ctx::div_round(l.line_total.into(), (qty * 12).into()),
                });
            } else {
                one_off.push((l.product, l.line_total));
            }
        }
        let product = lines.first()?.product;
        let period_name = match period {
            1 => "monthly",
            3 => "quarterly",
            _ => "annual",
        };
        let fixed_term = addon && chance(&mut self.rng, 0.15);
        s.subs.push(Sub {
            id: self.sub_ids.at_millis(start as u64),
            account: opp.account,
            product,
            opp: o,
            plan_name: format!("{} {} ({period_name})", c.t.brand, PRODUCT_SPECS[product].1),
            period_months: period,
            lines,
            seat_changes: Vec::new(),
            one_off,
            start,
            churn_at: None,
            cancel_requested: None,
            cancel_reason: None,
            fixed_term_end: fixed_term.then(|| start + YEAR),
            status: super::SubStatus::Active,
            active_seats: None,
            addon,
            currency: opp.currency,
            invoices: Vec::new(),
            current_period_end: start,
        });
        Some(s.subs.len() - 1)
    }

    fn expansions(&mut self, c: &mut TenantCtx, s: &mut Shard, a: usize, main: usize) {
        let seg_factor = match s.accounts[a].segment {
            Segment::Smb => 0.5,
            Segment::MidMarket => 1.0,
            Segment::Enterprise => 1.5,
        };
        let per_year = (0.25 + 0.8 * s.accounts[a].health) * seg_factor;
        let until = s.subs[main].churn_at.unwrap_or(Ms::MAX).min(c.t.now - DAY);
        let mut t = s.subs[main].start + 60 * DAY;
        loop {
            t += (rng::uniform(&mut self.rng, 0.0, 1.0).max(1e-9).ln().abs() / per_year * YEAR as f64) as Ms;
            if t >= until {
                return;
            }
            let arr = arr_at(&s.subs[main], t);
            let base =
                ((arr as f64 * 0.25 * lognormal(&mut self.rng, 1.0, 0.4)) / 10_000.0).round().max(10.0) as i64 * 10_000;
            let spec = Spec {
                account: a,
                kind: OpportunityKind::Expansion,
                created: t,
                lead_sourced: false,
                force: None,
                base_amount: Some(base),
                sub: Some(main),
            };
            let o = self.opp(c, s, spec);
            if !s.opps[o].won() {
                continue;
            }
            let Some(line) = s.opps[o].quotes.last().and_then(|q| q.lines.first()) else { continue };
            if line.product == s.subs[main].product {
                let closed = s.opps[o].end();
                s.subs[main].seat_changes.push((closed, (line.qty / 100).max(1)));
            } else if let Some(addon) = self.subscription(c, s, o, s.subs[main].period_months, true) {
                s.subs[addon].churn_at = s.subs[main].churn_at;
            }
        }
    }

    fn renewals(&mut self, c: &mut TenantCtx, s: &mut Shard, a: usize, main: usize) {
        let start = s.subs[main].start;
        for k in 1..=6 {
            let anniversary = start + k * YEAR;
            let created = anniversary - between(&mut self.rng, 60 * DAY, 100 * DAY);
            if created >= c.t.now {
                return;
            }
            let churns = s.subs[main].churn_at == Some(anniversary);
            if s.subs[main].churn_at.is_some_and(|ch| ch < anniversary) {
                return;
            }
            let force = if churns { Force::LostAt(4) } else { Force::Won };
            let spec = Spec {
                account: a,
                kind: OpportunityKind::Renewal,
                created,
                lead_sourced: false,
                force: Some(force),
                base_amount: Some(arr_at(&s.subs[main], created)),
                sub: Some(main),
            };
            self.opp(c, s, spec);
            if churns {
                return;
            }
        }
    }
}

/// Annual recurring revenue of a subscription at `t`, in cents.
pub(super) fn arr_at(sub: &Sub, t: Ms) -> i64 {
    let seats = sub.seats_at(t);
    sub.lines.iter().enumerate().map(|(i, l)| if i == 0 { seats } else { l.qty } * l.unit_month * 12).sum()
}

fn source_quality(source: &str) -> f64 {
    match source {
        "referral" => 0.45,
        "partner" => 0.35,
        "event" => 0.2,
        "content" => -0.05,
        "paid_ads" => -0.15,
        "outbound" => -0.25,
        _ => 0.0,
    }
}

pub(super) fn tier_for(segment: Segment) -> usize {
    match segment {
        Segment::Smb => P_STARTER,
        Segment::MidMarket => P_PRO,
        Segment::Enterprise => P_ENTERPRISE,
    }
}

/// Walks the pipeline from `start`; returns the stages entered with their times.
#[allow(clippy::too_many_arguments)]
fn walk(
    rng: &mut SeedRng,
    cal: &FiscalCalendar,
    start: u8,
    created: Ms,
    momentum: f64,
    segment: Segment,
    kind: OpportunityKind,
    force: Option<Force>,
) -> Vec<(u8, Ms)> {
    let (seg_adj, seg_days) = match segment {
        Segment::Smb => (0.25, 0.55),
        Segment::MidMarket => (0.0, 1.0),
        Segment::Enterprise => (-0.25, 1.9),
    };
    let kind_days = match kind {
        OpportunityKind::NewBusiness => 1.0,
        OpportunityKind::Expansion => 0.7,
        OpportunityKind::Renewal => 0.8,
    };
    let mut path = vec![(start, created)];
    let (mut stage, mut t) = (start, created);
    loop {
        let i = usize::from(stage.min(4));
        // Year-end budgets: late-stage deals are likelier to close in the fiscal fourth quarter.
        let q4 = stage >= 3 && cal.quarter_of(date_of(t)).quarter == 4;
        let p = sigmoid(ADVANCE[i] + 1.1 * momentum + seg_adj + if q4 { 0.8 } else { 0.0 });
        let advance = match force {
            Some(Force::Won) => true,
            Some(Force::LostAt(k)) => stage < k,
            None => chance(rng, p),
        };
        let days = lognormal(rng, STAGE_DAYS[i] * seg_days * kind_days, 0.55) * if advance { 1.0 } else { 1.6 };
        t += ((days * DAY as f64) as Ms).max(HOUR);
        if !advance {
            path.push((STAGE_LOST, t));
            return path;
        }
        stage = if stage == 4 { STAGE_WON } else { stage + 1 };
        if stage == STAGE_WON {
            path.push((STAGE_WON, quarter_end_push(rng, cal, t)));
            return path;
        }
        path.push((stage, t));
    }
}

/// Deals slip to the last days of the fiscal quarter (more in Q4).
fn quarter_end_push(rng: &mut SeedRng, cal: &FiscalCalendar, t: Ms) -> Ms {
    let q = cal.quarter_of(date_of(t));
    let end = ms_of(q.end) + 14 * HOUR;
    let (p, window) = if q.quarter == 4 { (0.6, 60 * DAY) } else { (0.35, 40 * DAY) };
    if end - t > window || !chance(rng, p) {
        return t;
    }
    (end - between(rng, 0, 4 * DAY)).max(t)
}

/// End of the billing period at which a customer of the given health leaves, if within reach.
fn sample_churn(rng: &mut SeedRng, health: f64, start: Ms, period: i32, now: Ms) -> Option<Ms> {
    let monthly = 0.003 + 0.065 * (1.0 - health).powf(2.5);
    let per_period = 1.0 - (1.0 - monthly).powi(period);
    let day0 = date_of(start);
    let time_of_day = start - ms_of(day0);
    for k in 1..=240 {
        let boundary = ms_of(add_months(day0, k * period)) + time_of_day;
        if boundary > now + 400 * DAY {
            return None;
        }
        if chance(rng, per_period) {
            return Some(boundary);
        }
    }
    None
}

/// Bookings per rep and quarter, and forecast roll-ups at the snapshot dates.
fn accumulate(c: &mut TenantCtx, s: &Shard) {
    for o in &s.opps {
        let to_corp = |amount: i64, at: Ms| c.cat.rates.convert(amount, o.currency, c.t.currency, at);
        if let Some(closed) = o.closed_at().filter(|_| o.won()) {
            let q = c.t.cal.quarter_of(date_of(closed)).index;
            *c.acc.bookings.entry((o.owner, q)).or_default() += to_corp(o.amount, closed);
        }
        let quarter = c.t.cal.quarter_of(date_of(o.end()));
        for (j, days) in SNAPSHOT_DAYS.iter().enumerate() {
            let at = ms_of(quarter.start) + days * DAY;
            if at > c.t.now || at < o.created {
                continue;
            }
            let Some(&(stage, _)) = o.path.iter().rev().find(|p| p.1 <= at) else { continue };
            let (slot, amount) = match stage {
                STAGE_WON => (3, o.amount),
                STAGE_LOST => continue,
                4 => (0, o.amount),
                3 => (1, o.amount),
                _ => (2, o.estimate),
            };
            let entry = c.acc.snapshots.entry((o.owner, quarter.index, j)).or_default();
            entry[slot] += to_corp(amount, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng::stream;

    #[test]
    fn walks_are_ordered_and_end_closed() {
        let cal = FiscalCalendar { start_month: 2, named_by_end: true };
        let mut rng = stream(3, &[], "walk");
        let (mut won, n) = (0, 2_000);
        for _ in 0..n {
            let path =
                walk(&mut rng, &cal, 0, 1_700_000_000_000, 0.0, Segment::MidMarket, OpportunityKind::NewBusiness, None);
            assert!(path.windows(2).all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0));
            let last = path.last().map(|p| p.0);
            assert!(matches!(last, Some(STAGE_WON | STAGE_LOST)));
            won += usize::from(last == Some(STAGE_WON));
        }
        let rate = won as f64 / n as f64;
        assert!((0.15..0.4).contains(&rate), "new-business win rate {rate}");
    }

    #[test]
    fn momentum_raises_the_win_rate() {
        let cal = FiscalCalendar { start_month: 1, named_by_end: false };
        let mut rng = stream(4, &[], "walk");
        let mut rate = |m: f64| {
            (0..1_000)
                .filter(|_| {
                    let p =
                        walk(&mut rng, &cal, 0, 1_700_000_000_000, m, Segment::Smb, OpportunityKind::NewBusiness, None);
                    p.last().map(|x| x.0) == Some(STAGE_WON)
                })
                .count()
        };
        assert!(rate(1.0) > 2 * rate(-1.0));
    }
}
