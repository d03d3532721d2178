//! Quotes of a deal that reached Proposal: line items from the default price book of the deal's
//! currency, sized to the deal, with discounts (larger for enterprise and near quarter end) and VAT.
//! Totals are exact in cents: `line_total = round(qty * unit_price * (1 - discount))`,
//! `total = subtotal - discount_total + tax_total`.

use rand::Rng;

use super::super::{Opp, Quote, QuoteLine, Shard, Sub};
use crate::model::{OpportunityKind, OpportunityStatus, Segment};
use crate::seed::catalog::{P_AI, P_ANALYTICS, P_ONBOARDING, P_PREMIUM_SUPPORT, STAGE_PROPOSAL};
use crate::seed::ctx::{TenantCtx, div_round};
use crate::seed::rng::{self, SeedRng, between, chance};
use crate::seed::time::{DAY, Ms, date_of, ms_of};
use crate::seed::words::vat_bp;

const DISCOUNTS: &[(i64, f64)] = &[(0, 0.35), (500, 0.2), (1000, 0.2), (1500, 0.12), (2000, 0.08), (2500, 0.05)];

/// (product, quantity in whole units, discountable)
type Spec = (usize, i64, bool);

pub(super) fn build(
    c: &mut TenantCtx,
    s: &Shard,
    rng: &mut SeedRng,
    ids: &mut crate::model::IdGen<SeedRng>,
    o: &mut Opp,
    amount0: i64,
    sub: Option<&Sub>,
) {
    let Some(proposal) = o.entered(STAGE_PROPOSAL) else { return };
    let segment = s.accounts[o.account].segment;
    let book = c.cat.book_for(o.currency);
    let prices = &c.cat.books[book].price;
    let specs = match (o.kind, sub) {
        (OpportunityKind::Renewal, Some(sub)) => sub
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (l.product, if i == 0 { sub.seats_at(o.created) } else { l.qty }, true))
            .collect(),
        (OpportunityKind::Expansion, Some(sub)) => expansion(rng, prices, sub, amount0, o.created),
        _ => new_business(rng, prices, segment, amount0),
    };
    let country = s.accounts[o.account].country;
    let near_quarter_end = {
        let q = c.t.cal.quarter_of(date_of(proposal));
        ms_of(q.end) - proposal < 20 * DAY
    };
    let mut discount = rng::weighted(rng, DISCOUNTS);
    if segment == Segment::Enterprise || near_quarter_end {
        discount += 500;
    }
    if o.kind == OpportunityKind::Renewal {
        discount = discount.min(1000);
    }
    let deadline = o.path.get(o.seen).map_or(c.t.now, |p| p.1).min(c.t.now);
    let first_at = (proposal - between(rng, 0, 2 * DAY)).max(o.created);
    let revise_at = proposal + between(rng, 2 * DAY, 12 * DAY);
    let revised = chance(rng, 0.3) && revise_at < deadline && revise_at < o.end();
    if revised {
        let q = quote(c, rng, ids, o, book, &specs, (discount - 500).max(0), country, first_at, Some("expired"));
        o.quotes.push(q);
    }
    let at = if revised { revise_at } else { first_at };
    let q = quote(c, rng, ids, o, book, &specs, discount.min(4000), country, at, None);
    o.quotes.push(q);
}

fn new_business(rng: &mut SeedRng, prices: &[i64], segment: Segment, amount0: i64) -> Vec<Spec> {
    let tier = super::tier_for(segment);
    let (analytics, ai, support, services) = match segment {
        Segment::Smb => (0.2, 0.1, 0.0, 0.3),
        Segment::MidMarket => (0.4, 0.3, 0.1, 0.6),
        Segment::Enterprise => (0.6, 0.5, 0.4, 0.7),
    };
    let mut per_seat = vec![tier];
    if chance(rng, analytics) {
        per_seat.push(P_ANALYTICS);
    }
    if chance(rng, ai) {
        per_seat.push(P_AI);
    }
    let support = chance(rng, support);
    let services = chance(rng, services);
    let mut budget = amount0 as f64 * if services { 0.85 } else { 1.0 };
    if support {
        budget -= prices[P_PREMIUM_SUPPORT] as f64;
    }
    let seat_price: i64 = per_seat.iter().map(|p| prices[*p]).sum();
    let seats = ((budget / seat_price.max(1) as f64).round() as i64).max(1);
    let mut specs: Vec<Spec> = per_seat.into_iter().map(|p| (p, seats, true)).collect();
    if support {
        specs.push((P_PREMIUM_SUPPORT, 1, true));
    }
    if services {
        specs.push((P_ONBOARDING, 1, false));
    }
    specs
}

fn expansion(rng: &mut SeedRng, prices: &[i64], sub: &Sub, amount0: i64, at: Ms) -> Vec<Spec> {
    let seats = sub.seats_at(at);
    let has = |p: usize| sub.lines.iter().any(|l| l.product == p);
    let addon = [P_AI, P_ANALYTICS].into_iter().find(|p| !has(*p));
    match addon {
        Some(p) if rng.random_bool(0.5) => vec![(p, seats, true)],
        _ => {
            let extra = ((amount0 as f64 / prices[sub.product].max(1) as f64).round() as i64).max(1);
            vec![(sub.product, extra, true)]
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn quote(
    c: &mut TenantCtx,
    rng: &mut SeedRng,
    ids: &mut crate::model::IdGen<SeedRng>,
    o: &Opp,
    book: usize,
    specs: &[Spec],
    discount_bp: i64,
    country: &str,
    at: Ms,
    fixed_status: Option<&'static str>,
) -> Quote {
    let prices = &c.cat.books[book].price;
    let lines: Vec<QuoteLine> = specs
        .iter()
        .map(|&(product, qty, discountable)| {
            let unit = prices[product];
            let disc = if discountable { discount_bp } else { 0 };
            let line_total = div_round(i128::from(qty) * i128::from(unit) * i128::from(10_000 - disc), 10_000);
            QuoteLine { product, qty: qty * 100, unit, discount_bp: disc, line_total }
        })
        .collect();
    let subtotal: i64 = specs.iter().map(|&(p, q, _)| q * prices[p]).sum();
    let net: i64 = lines.iter().map(|l| l.line_total).sum();
    let tax = div_round(i128::from(net) * i128::from(vat_bp(country)), 10_000);
    let status = fixed_status.unwrap_or_else(|| match o.status {
        OpportunityStatus::Won => "accepted",
        OpportunityStatus::Lost => {
            if rng.random_bool(0.6) {
                "rejected"
            } else {
                "expired"
            }
        }
        OpportunityStatus::Open => {
            rng::weighted(rng, &[("sent", 0.65), ("approved", 0.15), ("in_review", 0.12), ("draft", 0.08)])
        }
    });
    let approved_by = (discount_bp >= 1500 && !matches!(status, "draft" | "in_review"))
        .then(|| c.org.users[o.owner].manager.unwrap_or(c.org.admin));
    c.counters.quote += 1;
    Quote {
        id: ids.at_millis(at as u64),
        number: format!("Q-{}-{:06}", date_of(at).format("%Y"), c.counters.quote),
        created: at,
        status,
        book,
        approved_by,
        subtotal,
        discount: subtotal - net,
        tax,
        total: net + tax,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_totals_round_half_up_to_cents() {
        // 3 seats at 333.33 with 15 % off: 3 * 33333 * 0.85 = 84999.15 → 84999
        assert_eq!(div_round(3 * 33_333 * 8_500, 10_000), 84_999);
        // 1 unit at 0.50 with 50 % off: 0.25 → 25 cents exactly; 0.01 at 50 % → 0.005 → 1 cent
        assert_eq!(div_round(50 * 5_000, 10_000), 25);
        assert_eq!(div_round(5_000, 10_000), 1);
    }
}
