//! Leads. Half of the new-business deals come from a lead that converted into the deal's contact (and
//! its account and opportunity); those leads were worked intensely before converting, and activities
//! with the contact they became keep referring to them. The other leads never convert: most were
//! touched a few times after they came in and then disqualified or parked in nurturing; recent ones
//! are still being worked. Sources differ: referrals, partners and events convert far more often than
//! paid ads, content downloads and cold outbound.

use rand::Rng;

use super::activity::TouchGen;
use super::{Lead, Shard, Via};
use crate::model::{CompanySize, LeadSource, LeadStatus};
use crate::seed::ctx::TenantCtx;
use crate::seed::rng::{self, SeedRng, between, chance, growth_fraction, lognormal, pick, poisson};
use crate::seed::time::{DAY, HOUR, MINUTE, Ms, business_time};
use crate::seed::words::{self, FIRST_NAMES, INDUSTRY_WEIGHTS, LAST_NAMES, PLACES};

/// Unconverted leads per account.
const UNCONVERTED_PER_ACCOUNT: f64 = 2.2;

const SOURCES: &[(LeadSource, f64)] = &[
    (LeadSource::Web, 0.28),
    (LeadSource::PaidAds, 0.2),
    (LeadSource::Content, 0.16),
    (LeadSource::Outbound, 0.16),
    (LeadSource::Event, 0.1),
    (LeadSource::Referral, 0.04),
    (LeadSource::Partner, 0.03),
    (LeadSource::Other, 0.03),
];

const SIZES: &[(CompanySize, f64)] = &[
    (CompanySize::S1to10, 0.3),
    (CompanySize::S11to50, 0.3),
    (CompanySize::S51to200, 0.2),
    (CompanySize::S201to1000, 0.12),
    (CompanySize::S1001to5000, 0.05),
    (CompanySize::S5000Plus, 0.03),
];

pub(super) fn build(c: &mut TenantCtx, s: &mut Shard) {
    let mut rng = c.t.shard_rng(s.ix, "leads");
    let mut ids = c.t.shard_ids(s.ix, "leads");
    let mut touches = TouchGen::new(c, s.ix, "lead");
    for o in 0..s.opps.len() {
        if s.opps[o].lead_sourced {
            converted(c, s, &mut rng, &mut ids, &mut touches, o);
        }
    }
    let n = ((s.accounts.len() as f64 * UNCONVERTED_PER_ACCOUNT).round() as usize).max(3);
    for _ in 0..n {
        unconverted(c, s, &mut rng, &mut ids, &mut touches);
    }
}

fn converted(
    c: &TenantCtx,
    s: &mut Shard,
    rng: &mut SeedRng,
    ids: &mut crate::model::IdGen<SeedRng>,
    touches: &mut TouchGen,
    o: usize,
) {
    let opp = &s.opps[o];
    let Some(contact) = opp.contact else { return };
    let (a, at) = (opp.account, opp.created);
    let lag = (lognormal(rng, 18.0, 0.6).clamp(2.0, 120.0) * DAY as f64) as Ms;
    let created = (at - lag).max(c.t.created);
    let ct = &s.contacts[contact];
    let acc = &s.accounts[a];
    let lead = Lead {
        id: ids.at_millis(created as u64),
        created,
        owner: opp.owner,
        campaign: opp.campaign,
        first: ct.first,
        last: ct.last,
        email: ct.email.clone(),
        phone: ct.phone.clone(),
        company: acc.name.clone(),
        title: ct.title,
        industry: acc.industry,
        size: acc.size,
        country: acc.country,
        region: acc.region,
        source: opp.lead_source.parse().unwrap_or(LeadSource::Other),
        status: LeadStatus::Converted,
        converted: Some((at, a, contact, o)),
        last_activity: None,
        updated: at,
    };
    let ix = s.leads.len();
    let (owner, region) = (lead.owner, lead.region);
    s.leads.push(lead);
    s.opps[o].lead = Some(ix);
    s.contacts[contact].lead = Some(ix);
    let n = 2 + poisson(rng, 2.5);
    let mut times: Vec<Ms> = (0..n).map(|_| created + rng.random_range(0..(at - created).max(1))).collect();
    times.push(at - between(rng, HOUR, 2 * DAY));
    for t in times {
        let t = business_time(rng, t, region).clamp(created, at);
        let via = rng::weighted(rng, &[(Via::Email, 0.4), (Via::Call, 0.35), (Via::WebVisit, 0.15), (Via::Chat, 0.1)]);
        touches.lead(s, t, via, owner, ix, true);
    }
}

/// Status and activity times of a lead that has not converted, by its age.
fn plan(rng: &mut SeedRng, created: Ms, now: Ms) -> (LeadStatus, Vec<Ms>) {
    let age = now - created;
    let spread = |rng: &mut SeedRng, n: u32, from: Ms, to: Ms| -> Vec<Ms> {
        (0..n).map(|_| from + rng.random_range(0..(to - from).max(1))).collect()
    };
    let early = |rng: &mut SeedRng, n: u32| spread(rng, n, created, (created + 21 * DAY).min(now));
    if age < 10 * DAY {
        if chance(rng, 0.65) {
            let n = u32::from(chance(rng, 0.2));
            return (LeadStatus::New, spread(rng, n, created, now));
        }
        let k = between(rng, 0, 3) as u32;
        let mut t = spread(rng, k, created, now);
        t.push(now - between(rng, 10 * MINUTE, 3 * DAY).min(age));
        return (LeadStatus::Working, t);
    }
    let status = if age < 60 * DAY {
        rng::weighted(
            rng,
            &[
                (LeadStatus::Working, 0.15),
                (LeadStatus::Qualified, 0.05),
                (LeadStatus::Nurturing, 0.25),
                (LeadStatus::Unqualified, 0.55),
            ],
        )
    } else {
        rng::weighted(rng, &[(LeadStatus::Unqualified, 0.55), (LeadStatus::Nurturing, 0.45)])
    };
    let times = match status {
        LeadStatus::Working => {
            let last = now - between(rng, HOUR, 20 * DAY);
            let k = between(rng, 1, 5) as u32;
            let mut t = spread(rng, k, created, last);
            t.push(last);
            t
        }
        LeadStatus::Qualified => {
            let k = between(rng, 2, 6) as u32;
            let mut t = spread(rng, k, created, now);
            t.push(now - between(rng, HOUR, 7 * DAY));
            t
        }
        LeadStatus::Nurturing => {
            let k = between(rng, 1, 4) as u32;
            let mut t = early(rng, k);
            let mut month = created + 30 * DAY;
            while month < now {
                if chance(rng, 0.03) {
                    let d = between(rng, 0, 28 * DAY).min(now - month);
                    t.push(month + d);
                }
                month += 30 * DAY;
            }
            t
        }
        _ if chance(rng, 0.04) => Vec::new(),
        _ => {
            let k = between(rng, 1, 4) as u32;
            early(rng, k)
        }
    };
    (status, times)
}

fn unconverted(
    c: &TenantCtx,
    s: &mut Shard,
    rng: &mut SeedRng,
    ids: &mut crate::model::IdGen<SeedRng>,
    touches: &mut TouchGen,
) {
    let t = &c.t;
    let created = t.history_start + (growth_fraction(rng, 1.0) * (t.now - HOUR - t.history_start) as f64) as Ms;
    let region = c.org.pick_region(rng);
    let owner = c.org.rep_for(rng, region, created);
    let place = &PLACES[c.org.users[owner].territory.and_then(|tr| c.org.territories[tr].place).unwrap_or(0)];
    let (country, _) = pick(rng, place.countries);
    let industry = rng::weighted(rng, INDUSTRY_WEIGHTS);
    let company = super::accounts::company_name(rng, industry);
    let (first, last) = (pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES));
    let seniority = [
        super::Seniority::Individual,
        super::Seniority::Manager,
        super::Seniority::Director,
        super::Seniority::Vp,
        super::Seniority::CLevel,
    ][rng::weighted_index(rng, &[0.45, 0.3, 0.13, 0.07, 0.05])];
    let source = rng::weighted(rng, SOURCES);
    let (status, times) = plan(rng, created, t.now);
    let email = chance(rng, 0.92)
        .then(|| format!("{}@{}", words::email_local(first, last), super::accounts::domain_of(&company, country)));
    let lead = Lead {
        id: ids.at_millis(created as u64),
        created,
        owner,
        campaign: c.cat.campaign_for(rng, source.as_str(), created),
        first,
        last,
        email,
        phone: chance(rng, 0.5).then(|| super::accounts::phone(rng, country)),
        company,
        title: super::accounts::title(rng, seniority),
        industry,
        size: rng::weighted(rng, SIZES),
        country,
        region: place.region,
        source,
        status,
        converted: None,
        last_activity: None,
        updated: created,
    };
    let ix = s.leads.len();
    s.leads.push(lead);
    for at in times {
        let at = business_time(rng, at, place.region).clamp(created, t.now - MINUTE);
        let via = rng::weighted(
            rng,
            &[(Via::Email, 0.45), (Via::Call, 0.35), (Via::WebVisit, 0.12), (Via::Chat, 0.03), (Via::Note, 0.05)],
        );
        touches.lead(s, at, via, owner, ix, status == LeadStatus::Qualified);
    }
    if matches!(status, LeadStatus::New | LeadStatus::Working | LeadStatus::Qualified) {
        let inbound = matches!(source, LeadSource::Web | LeadSource::Content | LeadSource::PaidAds | LeadSource::Event);
        touches.lead_follow_up(c, s, ix, inbound);
    }
}
