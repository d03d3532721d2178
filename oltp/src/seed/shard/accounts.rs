//! Accounts (segment consistent with size, region and currency from the owner's territory, a few
//! subsidiaries of enterprise accounts) and their contacts.

use rand::Rng;

use super::{Account, Contact, Seniority, Shard};
use crate::model::{AccountLifecycle, CompanySize, Industry, Segment};
use crate::seed::ctx::{Cur, TenantCtx};
use crate::seed::rng::{self, SeedRng, between, chance, growth_fraction, lognormal, normal, pick, poisson, uniform};
use crate::seed::time::{DAY, HOUR, Ms, Region};
use crate::seed::words::{self, COMPANY_STEMS, FIRST_NAMES, INDUSTRY_WEIGHTS, LAST_NAMES, PLACES};

pub(super) fn build(c: &mut TenantCtx, s: &mut Shard, n: usize) {
    let mut rng = c.t.shard_rng(s.ix, "accounts");
    let mut created: Vec<Ms> = (0..n).map(|_| creation_time(c, &mut rng)).collect();
    created.sort_unstable();
    let mut ids = c.t.shard_ids(s.ix, "accounts");
    for at in created {
        let mut a = account(c, &mut rng, at);
        a.id = ids.at_millis(at as u64);
        maybe_subsidiary(c, &mut rng, s, &mut a);
        s.accounts.push(a);
    }
    contacts(c, s);
}

/// 30 % of the accounts predate the two years of history (the installed base); the rest arrive at a
/// rate that grows over the history.
fn creation_time(c: &TenantCtx, rng: &mut SeedRng) -> Ms {
    let t = &c.t;
    let history = (t.now - DAY - t.history_start) as f64;
    if chance(rng, 0.3) {
        return t.created + 30 * DAY + rng.random_range(0..(t.history_start - t.created - 30 * DAY));
    }
    t.history_start + (growth_fraction(rng, 1.0) * history) as Ms
}

const SEGMENTS: &[(Segment, f64)] = &[(Segment::Smb, 0.55), (Segment::MidMarket, 0.32), (Segment::Enterprise, 0.13)];

fn size_for(rng: &mut SeedRng, segment: Segment) -> (CompanySize, i64) {
    let (size, lo, hi) = match segment {
        Segment::Smb => pick(
            rng,
            &[
                (CompanySize::S1to10, 2, 10),
                (CompanySize::S11to50, 11, 50),
                (CompanySize::S11to50, 11, 50),
                (CompanySize::S51to200, 51, 200),
            ],
        ),
        Segment::MidMarket => pick(
            rng,
            &[
                (CompanySize::S51to200, 51, 200),
                (CompanySize::S201to1000, 201, 1000),
                (CompanySize::S201to1000, 201, 1000),
            ],
        ),
        Segment::Enterprise => pick(
            rng,
            &[
                (CompanySize::S1001to5000, 1001, 5000),
                (CompanySize::S1001to5000, 1001, 5000),
                (CompanySize::S5000Plus, 5001, 80_000),
            ],
        ),
    };
    let employees = ((lo as f64).ln() + uniform(rng, 0.0, 1.0) * ((hi as f64).ln() - (lo as f64).ln())).exp();
    (size, (employees.round() as i64).clamp(lo, hi))
}

fn currency_for(rng: &mut SeedRng, country: &str, region: Region) -> Cur {
    match country {
        "GB" => Cur::Gbp,
        "IE" | "DE" | "AT" | "FR" | "NL" | "BE" | "FI" | "ES" | "IT" | "PT" if !chance(rng, 0.12) => Cur::Eur,
        _ if region == Region::Emea && chance(rng, 0.5) => Cur::Eur,
        _ => Cur::Usd,
    }
}

pub(super) fn company_name(rng: &mut SeedRng, industry: Industry) -> String {
    let suffix = pick(rng, words::company_suffixes(industry));
    match rng.random_range(0..10) {
        0..5 => format!("{} {suffix}", pick(rng, COMPANY_STEMS)),
        5..8 => format!(
            "{} {} {suffix}",
            pick(rng, COMPANY_STEMS),
            pick(
                rng,
                &[
                    "Bay", "Ridge", "Valley", "River", "Point", "Harbor", "Peak", "Field", "Creek", "Park", "Lake",
                    "Hill"
                ]
            )
        ),
        8 => format!("{} & {} {suffix}", pick(rng, LAST_NAMES), pick(rng, LAST_NAMES)),
        _ => format!("{} {suffix}", pick(rng, LAST_NAMES)),
    }
}

pub(super) fn domain_of(name: &str, country: &str) -> String {
    let slug = words::slugify(name);
    let compact = if slug.len() <= 22 { slug.replace('-', "") } else { slug };
    format!("{compact}.{}", words::tld(country))
}

pub(super) fn phone(rng: &mut SeedRng, country: &str) -> String {
    match country {
        "US" | "CA" => format!("+1 {} 555 01{:02}", between(rng, 201, 990), between(rng, 0, 100)),
        "GB" => format!("+44 20 7946 0{:03}", between(rng, 0, 1000)),
        _ => format!(
            "+{} {} {} {:04}",
            words::calling_code(country),
            between(rng, 10, 99),
            between(rng, 100, 999),
            between(rng, 0, 10_000)
        ),
    }
}

fn account(c: &mut TenantCtx, rng: &mut SeedRng, created: Ms) -> Account {
    let region = c.org.pick_region(rng);
    let owner = c.org.rep_for(rng, region, created);
    let territory = c.org.users[owner].territory.unwrap_or(0);
    let place = &PLACES[c.org.territories[territory].place.unwrap_or(0)];
    let (country, cities) = pick(rng, place.countries);
    let city = pick(rng, cities);
    let segment = rng::weighted(rng, SEGMENTS);
    let (size, employees) = size_for(rng, segment);
    let industry = rng::weighted(rng, INDUSTRY_WEIGHTS);
    let name = unique_name(c, rng, industry, city);
    let currency = currency_for(rng, country, place.region);
    let revenue_usd = employees as f64 * lognormal(rng, 160_000.0, 0.4);
    let health_shift = if segment == Segment::Smb { -0.05 } else { 0.0 };
    Account {
        id: uuid::Uuid::nil(),
        created,
        domain: domain_of(&name, country),
        description: chance(rng, 0.5).then(|| {
            format!(
                "{} company headquartered in {city}.",
                crate::seed::text::capitalize(&industry.as_str().replace('_', " "))
            )
        }),
        name,
        parent: None,
        owner,
        territory,
        region: place.region,
        country,
        city,
        industry,
        size,
        segment,
        employees: chance(rng, 0.9).then_some(employees),
        revenue: chance(rng, 0.85).then(|| ((revenue_usd / currency.usd_value()) as i64 / 1000) * 100_000),
        currency,
        phone: chance(rng, 0.8).then(|| phone(rng, country)),
        health: (0.62 + health_shift + 0.2 * normal(rng)).clamp(0.02, 0.98),
        lifecycle: AccountLifecycle::Prospect,
        contacts: Vec::new(),
        last_activity: None,
        updated: created,
    }
}

fn unique_name(c: &mut TenantCtx, rng: &mut SeedRng, industry: Industry, city: &str) -> String {
    for attempt in 0..12 {
        let mut name = company_name(rng, industry);
        if attempt >= 8 {
            name = format!("{name} {city}");
        }
        if attempt == 11 {
            name = format!("{name} {}", c.counters.names.len());
        }
        if c.counters.names.insert(name.clone()) {
            return name;
        }
    }
    format!("Account {}", c.counters.names.len())
}

/// Some mid-market and enterprise accounts are subsidiaries of an earlier enterprise account.
fn maybe_subsidiary(c: &mut TenantCtx, rng: &mut SeedRng, s: &Shard, a: &mut Account) {
    if a.segment == Segment::Smb || !chance(rng, 0.06) {
        return;
    }
    let parents: Vec<usize> = (0..s.accounts.len())
        .filter(|&i| s.accounts[i].segment == Segment::Enterprise && s.accounts[i].parent.is_none())
        .collect();
    if parents.is_empty() {
        return;
    }
    let p = parents[rng.random_range(0..parents.len())];
    let name = format!("{} ({})", s.accounts[p].name, a.city);
    if !c.counters.names.insert(name.clone()) {
        return;
    }
    a.parent = Some(p);
    a.domain = format!("{}.{}", a.country.to_ascii_lowercase(), s.accounts[p].domain);
    a.name = name;
    a.industry = s.accounts[p].industry;
}

fn seniority(rng: &mut SeedRng, segment: Segment) -> Seniority {
    use Seniority::*;
    let w: [f64; 5] = match segment {
        Segment::Smb => [0.25, 0.25, 0.15, 0.1, 0.25],
        Segment::MidMarket => [0.3, 0.3, 0.2, 0.12, 0.08],
        Segment::Enterprise => [0.35, 0.3, 0.2, 0.11, 0.04],
    };
    [Individual, Manager, Director, Vp, CLevel][rng::weighted_index(rng, &w)]
}

pub(super) fn title(rng: &mut SeedRng, s: Seniority) -> &'static str {
    let list = match s {
        Seniority::Individual => words::TITLES_INDIVIDUAL,
        Seniority::Manager => words::TITLES_MANAGER,
        Seniority::Director => words::TITLES_DIRECTOR,
        Seniority::Vp => words::TITLES_VP,
        Seniority::CLevel => words::TITLES_C_LEVEL,
    };
    pick(rng, list)
}

fn contacts(c: &TenantCtx, s: &mut Shard) {
    let mut rng = c.t.shard_rng(s.ix, "contacts");
    let mut ids = c.t.shard_ids(s.ix, "contacts");
    for a in 0..s.accounts.len() {
        let (segment, created, domain) = (s.accounts[a].segment, s.accounts[a].created, s.accounts[a].domain.clone());
        let n = match segment {
            Segment::Smb => 1 + poisson(&mut rng, 0.8).min(3),
            Segment::MidMarket => 2 + poisson(&mut rng, 1.2).min(4),
            Segment::Enterprise => 3 + poisson(&mut rng, 2.5).min(7),
        };
        let mut emails = std::collections::HashSet::new();
        for i in 0..n {
            let at = if i == 0 {
                created + between(&mut rng, 0, 2 * HOUR)
            } else {
                created + rng.random_range(0..(c.t.now - created).max(1))
            };
            let (first, last) = (pick(&mut rng, FIRST_NAMES), pick(&mut rng, LAST_NAMES));
            let sen = seniority(&mut rng, segment);
            let mut email = format!("{}@{domain}", words::email_local(first, last));
            if !emails.insert(email.clone()) {
                email = format!("{}{i}@{domain}", words::email_local(first, last));
            }
            s.accounts[a].contacts.push(s.contacts.len());
            s.contacts.push(Contact {
                id: ids.at_millis(at as u64),
                account: a,
                created: at,
                first,
                last,
                email: chance(&mut rng, 0.92).then_some(email),
                phone: chance(&mut rng, 0.6).then(|| phone(&mut rng, s.accounts[a].country)),
                title: title(&mut rng, sen),
                seniority: sen,
                lifecycle: "lead",
                dnc: chance(&mut rng, 0.03),
                lead: None,
                last_activity: None,
            });
        }
    }
}
