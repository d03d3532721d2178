//! The weighted pipeline roll-up of a fiscal quarter per tenant, territory and owner: open amounts
//! by forecast category (commit, best case, pipeline), the probability-weighted open pipeline, the
//! won amount (closed) and quota attainment (closed / quota).
//!
//! Levels: an owner's row sums the deals they own; a territory's row sums the deals booked to it (the
//! deal's `territory_id`, whoever owns it); the tenant's row sums everything. Quotas: a rep's own;
//! a territory's quota row (no user); for the tenant, the sum of its reps' quotas. A rep or territory
//! with a quota but no deal in the quarter still gets a row (attainment 0).

use std::collections::BTreeMap;

use super::lake::{Cell, QuotaRow};

/// Who a roll-up row is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Tenant,
    Territory(String),
    Owner(String),
}

impl Level {
    pub fn kind(&self) -> &'static str {
        match self {
            Level::Tenant => "tenant",
            Level::Territory(_) => "territory",
            Level::Owner(_) => "owner",
        }
    }
}

/// One roll-up row, amounts in the corporate currency.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Totals {
    pub commit: f64,
    pub best_case: f64,
    pub pipeline: f64,
    pub closed: f64,
    pub weighted: f64,
    pub open_deals: u64,
    /// Deals left out for want of an exchange rate.
    pub unconverted: u64,
    pub quota: Option<f64>,
}

impl Totals {
    fn add(&mut self, c: &Cell) {
        self.commit += c.commit;
        self.best_case += c.best_case;
        self.pipeline += c.pipeline;
        self.closed += c.closed;
        self.weighted += c.weighted;
        self.open_deals += c.open_deals;
        self.unconverted += c.unconverted;
    }

    /// Closed-won over quota (`None` without a positive quota).
    pub fn attainment(&self) -> Option<f64> {
        self.quota.filter(|q| *q > 0.0).map(|q| self.closed / q)
    }

    /// Closed plus the weighted open pipeline: what the stage probabilities expect the quarter to book.
    pub fn expected(&self) -> f64 {
        self.closed + self.weighted
    }
}

/// The roll-up of every level from the quarter's cells and quotas.
pub fn roll_up(cells: &[Cell], quotas: &[QuotaRow]) -> BTreeMap<Level, Totals> {
    let mut out: BTreeMap<Level, Totals> = BTreeMap::new();
    out.insert(Level::Tenant, Totals::default());
    for c in cells {
        let mut levels = vec![Level::Tenant];
        levels.extend(c.owner.clone().map(Level::Owner));
        levels.extend(c.territory.clone().map(Level::Territory));
        for l in levels {
            out.entry(l).or_default().add(c);
        }
    }
    for q in quotas {
        let Some(amount) = q.amount else { continue };
        let level = match (&q.user, &q.territory) {
            (Some(u), _) => Level::Owner(u.clone()),
            (None, Some(t)) => Level::Territory(t.clone()),
            (None, None) => continue,
        };
        if q.user.is_some() {
            let tenant = out.entry(Level::Tenant).or_default();
            tenant.quota = Some(tenant.quota.unwrap_or(0.0) + amount);
        }
        let row = out.entry(level).or_default();
        row.quota = Some(row.quota.unwrap_or(0.0) + amount);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(owner: Option<&str>, territory: Option<&str>, commit: f64, closed: f64, weighted: f64) -> Cell {
        Cell {
            owner: owner.map(str::to_owned),
            territory: territory.map(str::to_owned),
            commit,
            closed,
            weighted,
            open_deals: 1,
            ..Cell::default()
        }
    }

    #[test]
    fn levels_sum_their_cells_and_quotas_give_attainment() {
        let cells = [
            cell(Some("a"), Some("east"), 100.0, 50.0, 60.0),
            cell(Some("a"), None, 10.0, 0.0, 5.0),
            cell(Some("b"), Some("east"), 0.0, 30.0, 0.0),
            cell(None, Some("west"), 7.0, 0.0, 1.0),
        ];
        let quotas = [
            QuotaRow { user: Some("a".into()), territory: Some("east".into()), amount: Some(100.0) },
            QuotaRow { user: Some("c".into()), territory: None, amount: Some(40.0) },
            QuotaRow { user: None, territory: Some("east".into()), amount: Some(200.0) },
            QuotaRow { user: Some("b".into()), territory: None, amount: None },
        ];
        let r = roll_up(&cells, &quotas);
        let t = &r[&Level::Tenant];
        assert_eq!((t.commit, t.closed, t.weighted, t.open_deals), (117.0, 80.0, 66.0, 4));
        assert_eq!(t.quota, Some(140.0), "the reps' quotas");
        let a = &r[&Level::Owner("a".into())];
        assert_eq!((a.commit, a.closed, a.attainment()), (110.0, 50.0, Some(0.5)));
        let east = &r[&Level::Territory("east".into())];
        assert_eq!((east.closed, east.attainment()), (80.0, Some(0.4)));
        let c = &r[&Level::Owner("c".into())];
        assert_eq!((c.closed, c.attainment()), (0.0, Some(0.0)), "a quota without deals");
        assert_eq!(r[&Level::Owner("b".into())].attainment(), None);
        assert_eq!(r[&Level::Territory("west".into())].expected(), 1.0);
        assert_eq!(r.len(), 6);
    }
}
