//! Per-tenant context shared by every table generator: identity, sizing, fiscal calendar, currency
//! rates, the organisation and catalog built first, and the accumulators that the trailing tables
//! (quotas, forecast snapshots) read after all shards.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use uuid::Uuid;

use super::SeedConfig;
use super::catalog::Catalog;
use super::org::Org;
use super::rng::{self, SeedRng};
use super::time::{DAY, FiscalCalendar, Ms, YEAR, date_of, ms_of};
use super::words;
use crate::model::IdGen;

/// Rows generated per account at scale 1, all tables included; calibrated so that scale 1.0 gives
/// about 1,000,000 rows in total.
pub(crate) const ROWS_PER_ACCOUNT: f64 = 73.0;
/// Rows at scale 1.
pub(crate) const ROWS_AT_SCALE_1: f64 = 1_000_000.0;
/// Smallest tenant, so that every table gets rows at tiny scales.
pub(crate) const MIN_ACCOUNTS: usize = 24;
/// Accounts per shard: a shard is generated and emitted as a unit, bounding memory.
pub(crate) const SHARD_ACCOUNTS: usize = 1_500;

/// Currencies amounts are kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Cur {
    Usd,
    Eur,
    Gbp,
}

impl Cur {
    pub const ALL: [Cur; 3] = [Cur::Usd, Cur::Eur, Cur::Gbp];

    pub fn code(self) -> &'static str {
        match self {
            Cur::Usd => "USD",
            Cur::Eur => "EUR",
            Cur::Gbp => "GBP",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Rough value in USD, for price lists and deal sizes.
    pub fn usd_value(self) -> f64 {
        match self {
            Cur::Usd => 1.0,
            Cur::Eur => 1.08,
            Cur::Gbp => 1.27,
        }
    }
}

/// Monthly exchange rates: the USD value of each currency per month since `first_month`.
#[derive(Debug)]
pub(crate) struct Rates {
    pub first_month: NaiveDate,
    /// `usd[month][currency]`
    pub usd: Vec<[f64; 3]>,
}

impl Rates {
    pub fn generate(rng: &mut SeedRng, first_month: NaiveDate, months: usize) -> Rates {
        let (mut eur, mut gbp) = (1.08 + rng::uniform(rng, -0.04, 0.04), 1.27 + rng::uniform(rng, -0.05, 0.05));
        let usd = (0..months)
            .map(|_| {
                eur = (eur * (1.0 + 0.012 * rng::normal(rng))).clamp(0.95, 1.25);
                gbp = (gbp * (1.0 + 0.012 * rng::normal(rng))).clamp(1.12, 1.42);
                [1.0, eur, gbp]
            })
            .collect();
        Rates { first_month, usd }
    }

    fn month_ix(&self, t: Ms) -> usize {
        let months = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
        let ix = months(date_of(t)) - months(self.first_month);
        ix.clamp(0, self.usd.len() as i64 - 1) as usize
    }

    /// 1 unit of `from` in units of `to`, at `t`.
    pub fn rate(&self, from: Cur, to: Cur, t: Ms) -> f64 {
        let m = &self.usd[self.month_ix(t)];
        m[from.index()] / m[to.index()]
    }

    pub fn convert(&self, cents: i64, from: Cur, to: Cur, t: Ms) -> i64 {
        if from == to {
            return cents;
        }
        (cents as f64 * self.rate(from, to, t)).round() as i64
    }
}

/// Identity and sizing of one tenant.
#[derive(Debug)]
pub(crate) struct Tenant {
    pub ix: u32,
    pub seed: u64,
    pub id: Uuid,
    pub name: String,
    /// Short brand used in product names ("Bluepeak").
    pub brand: String,
    pub slug: String,
    pub domain: String,
    pub currency: Cur,
    pub cal: FiscalCalendar,
    pub timezone: &'static str,
    pub created: Ms,
    pub history_start: Ms,
    pub now: Ms,
    pub weight: f64,
    pub scale: f64,
    pub tenants: u32,
    pub as_of: NaiveDate,
    pub accounts: usize,
    pub shards: usize,
}

impl Tenant {
    /// Stream for tenant-wide tables.
    pub fn rng(&self, label: &str) -> SeedRng {
        rng::stream(self.seed, &[u64::from(self.ix), u64::MAX], label)
    }

    /// Stream for one shard's table.
    pub fn shard_rng(&self, shard: usize, label: &str) -> SeedRng {
        rng::stream(self.seed, &[u64::from(self.ix), shard as u64], label)
    }

    pub fn ids(&self, label: &str) -> IdGen<SeedRng> {
        IdGen::new(self.rng(&format!("id:{label}")))
    }

    pub fn shard_ids(&self, shard: usize, label: &str) -> IdGen<SeedRng> {
        IdGen::new(self.shard_rng(shard, &format!("id:{label}")))
    }
}

/// Relative sizes of the tenants: 1, 0.59, 0.42, 0.32, …
pub(crate) fn tenant_weight(ix: u32) -> f64 {
    1.0 / (1.0 + 0.7 * f64::from(ix))
}

/// Builds the identities of all tenants of a run (names are unique within the run).
pub(crate) fn tenants(cfg: &SeedConfig) -> Vec<Tenant> {
    let total_weight: f64 = (0..cfg.tenants).map(tenant_weight).sum();
    let now = ms_of(cfg.as_of);
    let mut rng = rng::stream(cfg.seed, &[], "tenants");
    let mut used = std::collections::HashSet::new();
    (0..cfg.tenants)
        .map(|ix| {
            let weight = tenant_weight(ix);
            let rows = ROWS_AT_SCALE_1 * cfg.scale * weight / total_weight;
            let accounts = ((rows / ROWS_PER_ACCOUNT).round() as usize).max(MIN_ACCOUNTS);
            tenant(cfg, ix, &mut rng, &mut used, now, weight, accounts)
        })
        .collect()
}

fn tenant(
    cfg: &SeedConfig,
    ix: u32,
    rng: &mut SeedRng,
    used: &mut std::collections::HashSet<String>,
    now: Ms,
    weight: f64,
    accounts: usize,
) -> Tenant {
    let brand = loop {
        let b = rng::pick(rng, words::COMPANY_STEMS).to_owned();
        if used.insert(b.clone()) || used.len() >= words::COMPANY_STEMS.len() {
            break b;
        }
    };
    let suffix = rng::pick(rng, &["Analytics", "Software", "Cloud", "Systems", "Labs", "Technologies"]);
    let name = format!("{brand} {suffix}");
    let slug = format!("{}-{}", words::slugify(&name), ix + 1);
    let currency = match ix {
        0 => Cur::Usd,
        _ => rng::weighted(rng, &[(Cur::Usd, 0.65), (Cur::Eur, 0.22), (Cur::Gbp, 0.13)]),
    };
    let start_month = match ix {
        0 => 2,
        _ => rng::pick(rng, &[1u32, 1, 1, 2, 4, 7, 10]),
    };
    let timezone = match currency {
        Cur::Usd => "America/New_York",
        Cur::Eur => "Europe/Berlin",
        Cur::Gbp => "Europe/London",
    };
    let history_start = now - 2 * YEAR;
    Tenant {
        ix,
        seed: cfg.seed,
        id: IdGen::new(rng::stream(cfg.seed, &[u64::from(ix)], "tenant-id"))
            .at_millis((now - 3 * YEAR - 45 * DAY) as u64),
        domain: format!("{}.com", words::slugify(&name).replace('-', "")),
        name,
        brand,
        slug,
        currency,
        cal: FiscalCalendar { start_month, named_by_end: start_month != 1 && rng.random_bool(0.6) },
        timezone,
        created: now - 3 * YEAR - 45 * DAY,
        history_start,
        now,
        weight,
        scale: cfg.scale,
        tenants: cfg.tenants,
        as_of: cfg.as_of,
        accounts,
        shards: accounts.div_ceil(SHARD_ACCOUNTS),
    }
}

/// Running numbers that must be unique per tenant across shards.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub ticket: u32,
    pub quote: u32,
    pub invoice: u32,
    /// Account names in use (unique per tenant).
    pub names: std::collections::HashSet<String>,
}

/// Category amounts of a forecast roll-up: commit, best case, pipeline, closed (corporate cents).
pub(crate) type Rollup = [i64; 4];

/// What the trailing tables need from all shards.
#[derive(Debug, Default)]
pub(crate) struct Accumulators {
    /// (rep user index, fiscal quarter index) → won amount in corporate currency cents.
    pub bookings: HashMap<(usize, i32), i64>,
    /// (rep user index, fiscal quarter index, snapshot number) → roll-up.
    pub snapshots: HashMap<(usize, i32, usize), Rollup>,
}

/// Everything a shard generator reads, and the counters and accumulators it updates.
#[derive(Debug)]
pub(crate) struct TenantCtx {
    pub t: Tenant,
    pub org: Org,
    pub cat: Catalog,
    pub counters: Counters,
    pub acc: Accumulators,
    /// The demo password's argon2id hash (computed once per run).
    pub password_hash: String,
}

/// Days after a fiscal quarter's start at which roll-up snapshots are taken.
pub(crate) const SNAPSHOT_DAYS: [i64; 3] = [14, 42, 70];

/// Rounds half up for non-negative values.
pub(crate) fn div_round(num: i128, den: i128) -> i64 {
    if den == 0 {
        return 0;
    }
    ((num + den / 2) / den) as i64
}
