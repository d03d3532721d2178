//! Rows of the CRM core: accounts, contacts and their relationships, opportunities, leads, campaign
//! members, stage histories, close-date changes and the four tag join tables.

use rand::Rng;
use uuid::Uuid;

use super::Shard;
use super::close_dates::{self, CloseDates};
use crate::Result;
use crate::model::{LeadStatus, OpportunityStatus, Segment};
use crate::seed::catalog::{STAGE_PROBABILITY, STAGE_PROPOSAL, TAG_AT_RISK, TAG_HOT, TAG_SPECS};
use crate::seed::csv::Emitter;
use crate::seed::ctx::TenantCtx;
use crate::seed::rng::{self, between, chance};
use crate::seed::schema::*;
use crate::seed::time::{DAY, HOUR, Ms};

pub(super) fn emit(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    accounts(em, c, s)?;
    merges(em, c, s)?;
    contacts(em, c, s)?;
    relationships(em, c, s)?;
    let mut rng = c.t.shard_rng(s.ix, "close_dates");
    let plans: Vec<CloseDates> = s.opps.iter().map(|o| close_dates::plan(&mut rng, c, o)).collect();
    opportunities(em, c, s, &plans)?;
    leads(em, c, s)?;
    campaign_members(em, c, s)?;
    stage_histories(em, c, s)?;
    close_date_changes(em, c, s, &plans)?;
    tags(em, c, s)
}

/// Duplicate accounts an admin merged away: the survivor exists, the merged record lives on only in
/// its snapshot. The first shard of every tenant has a few.
fn merges(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    em.begin(MERGE_RECORDS);
    if s.ix == 0 {
        let mut ids = c.t.shard_ids(s.ix, "merge_records");
        let admin = c.org.users[c.org.admin].id;
        for a in s.accounts.iter().take(3) {
            let at = a.updated.max(a.created);
            let snapshot = serde_json::json!({
                "name": format!("{} Inc", a.name),
                "domain": a.domain,
                "owner_id": c.org.users[a.owner].id,
            });
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(at as u64))
                .text("account")
                .uuid(a.id)
                .uuid(ids.at_millis(a.created as u64))
                .json(&snapshot)
                .json(&serde_json::json!({"contacts.account_id": 1}))
                .uuid(admin)
                .ts(at)
                .ts(at)
                .end()?;
        }
    }
    em.finish()
}

fn accounts(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    em.begin(ACCOUNTS);
    for a in &s.accounts {
        em.row()
            .uuid(c.t.id)
            .uuid(a.id)
            .text(&a.name)
            .text(&a.domain)
            .opt_uuid(a.parent.map(|p| s.accounts[p].id))
            .uuid(c.org.users[a.owner].id)
            .uuid(c.org.territories[a.territory].id)
            .text(a.industry.as_str())
            .text(a.size.as_str())
            .text(a.segment.as_str())
            .text(a.lifecycle.as_str())
            .opt_int(a.employees)
            .opt_money(a.revenue)
            .text(a.currency.code())
            .opt_text(a.phone.as_deref())
            .text(&format!("https://www.{}", a.domain))
            .text(a.country)
            .text(a.city)
            .opt_text(a.description.as_deref())
            .opt_ts(a.last_activity)
            .ts(a.created)
            .ts(a.updated)
            .end()?;
    }
    em.finish()
}

fn contacts(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    em.begin(CONTACTS);
    for ct in &s.contacts {
        let a = &s.accounts[ct.account];
        let updated = ct.last_activity.unwrap_or(ct.created).max(ct.created);
        em.row()
            .uuid(c.t.id)
            .uuid(ct.id)
            .uuid(a.id)
            .uuid(c.org.users[a.owner].id)
            .text(ct.first)
            .text(ct.last)
            .opt_text(ct.email.as_deref())
            .opt_text(ct.phone.as_deref())
            .text(ct.title)
            .text(ct.seniority.as_str())
            .text(ct.lifecycle)
            .boolean(ct.dnc)
            .opt_ts(ct.last_activity)
            .ts(ct.created)
            .ts(updated)
            .end()?;
    }
    em.finish()
}

/// Org charts and buying-committee roles within an account, plus occasional cross-account referrals.
fn relationships(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "contact_relationships");
    let mut ids = c.t.shard_ids(s.ix, "contact_relationships");
    em.begin(CONTACT_RELATIONSHIPS);
    for a in &s.accounts {
        let mut seen = std::collections::HashSet::new();
        let list = &a.contacts;
        for w in list.windows(2) {
            let (x, y) = (&s.contacts[w[0]], &s.contacts[w[1]]);
            let (junior, senior) = if x.seniority <= y.seniority { (w[0], w[1]) } else { (w[1], w[0]) };
            let kind = if s.contacts[junior].seniority < s.contacts[senior].seniority {
                "reports_to"
            } else {
                rng::weighted(&mut rng, &[("colleague", 0.6), ("influences", 0.4)])
            };
            let mut edges = vec![(junior, senior, kind)];
            if chance(&mut rng, 0.35) {
                let role = rng::weighted(
                    &mut rng,
                    &[("champion_of", 0.4), ("decision_maker_for", 0.35), ("blocker_of", 0.25)],
                );
                edges.push((senior, junior, role));
            }
            for (from, to, kind) in edges {
                if !seen.insert((from, to, kind)) {
                    continue;
                }
                let at = s.contacts[from].created.max(s.contacts[to].created) + between(&mut rng, HOUR, 20 * DAY);
                let at = at.min(c.t.now - HOUR);
                em.row()
                    .uuid(c.t.id)
                    .uuid(ids.at_millis(at as u64))
                    .uuid(s.contacts[from].id)
                    .uuid(s.contacts[to].id)
                    .text(kind)
                    .int(between(&mut rng, 1, 6))
                    .ts(at)
                    .ts(at)
                    .end()?;
            }
        }
        if let (Some(&from), true) = (list.first(), chance(&mut rng, 0.03)) {
            let other = &s.accounts[rng.random_range(0..s.accounts.len())];
            if let Some(&to) = other.contacts.first().filter(|&&to| to != from) {
                let at = s.contacts[from].created.max(s.contacts[to].created) + DAY;
                em.row()
                    .uuid(c.t.id)
                    .uuid(ids.at_millis(at.min(c.t.now - HOUR) as u64))
                    .uuid(s.contacts[from].id)
                    .uuid(s.contacts[to].id)
                    .text("referred")
                    .int(4)
                    .ts(at.min(c.t.now - HOUR))
                    .ts(at.min(c.t.now - HOUR))
                    .end()?;
            }
        }
    }
    em.finish()
}

fn opportunities(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard, plans: &[CloseDates]) -> Result<()> {
    em.begin(OPPORTUNITIES);
    for (o, plan) in s.opps.iter().zip(plans) {
        let a = &s.accounts[o.account];
        let stage = o.stage();
        let updated = o.path[o.seen - 1].1.max(o.last_activity.unwrap_or(o.created));
        em.row()
            .uuid(c.t.id)
            .uuid(o.id)
            .uuid(a.id)
            .opt_uuid(o.contact.map(|x| s.contacts[x].id))
            .uuid(c.org.users[o.owner].id)
            .uuid(c.org.territories[a.territory].id)
            .opt_uuid(o.campaign.map(|x| c.cat.campaigns[x].id))
            .uuid(c.cat.stages[usize::from(stage)].id)
            .text(&o.name)
            .text(o.kind.as_str())
            .money(o.amount)
            .text(o.currency.code())
            .dec(STAGE_PROBABILITY[usize::from(stage)] * 100, 2)
            .text(o.forecast.as_str())
            .text(o.status.as_str())
            .date(plan.current)
            .opt_ts(o.closed_at())
            .text(o.lead_source)
            .opt_text(o.lost_reason)
            .opt_text(o.next_step)
            .opt_ts(o.last_activity)
            .ts(o.created)
            .ts(updated)
            .end()?;
    }
    em.finish()
}

fn leads(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    em.begin(LEADS);
    for l in &s.leads {
        let conv = l.converted;
        em.row()
            .uuid(c.t.id)
            .uuid(l.id)
            .uuid(c.org.users[l.owner].id)
            .opt_uuid(l.campaign.map(|x| c.cat.campaigns[x].id))
            .text(l.first)
            .text(l.last)
            .opt_text(l.email.as_deref())
            .opt_text(l.phone.as_deref())
            .text(&l.company)
            .text(l.title)
            .text(l.industry.as_str())
            .text(l.size.as_str())
            .text(l.country)
            .text(l.source.as_str())
            .text(l.status.as_str())
            .opt_ts(conv.map(|x| x.0))
            .opt_uuid(conv.map(|x| s.accounts[x.1].id))
            .opt_uuid(conv.map(|x| s.contacts[x.2].id))
            .opt_uuid(conv.map(|x| s.opps[x.3].id))
            .opt_ts(l.last_activity)
            .ts(l.created)
            .ts(l.updated)
            .end()?;
    }
    em.finish()
}

/// Leads that came through a campaign, and contacts that received campaign e-mails.
fn campaign_members(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "campaign_members");
    let mut ids = c.t.shard_ids(s.ix, "campaign_members");
    const STATUSES: &[(&str, f64)] = &[
        ("sent", 0.3),
        ("opened", 0.3),
        ("clicked", 0.18),
        ("responded", 0.12),
        ("unsubscribed", 0.05),
        ("bounced", 0.05),
    ];
    em.begin(CAMPAIGN_MEMBERS);
    for l in &s.leads {
        let Some(k) = l.campaign else { continue };
        let converted = l.status == LeadStatus::Converted;
        let status = if converted && chance(&mut rng, 0.6) { "responded" } else { rng::weighted(&mut rng, STATUSES) };
        let responded =
            (status == "responded").then(|| l.created + between(&mut rng, 0, 3 * DAY)).map(|t| t.min(c.t.now));
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(l.created as u64))
            .uuid(c.cat.campaigns[k].id)
            .null()
            .uuid(l.id)
            .text(status)
            .opt_ts(responded)
            .ts(l.created)
            .ts(responded.unwrap_or(l.created))
            .end()?;
    }
    let email_campaigns: Vec<usize> =
        (0..c.cat.campaigns.len()).filter(|&i| c.cat.campaigns[i].kind == "email").collect();
    for ct in &s.contacts {
        if email_campaigns.is_empty() || !chance(&mut rng, 0.25) {
            continue;
        }
        let k = email_campaigns[rng.random_range(0..email_campaigns.len())];
        let sent = crate::seed::time::ms_of(c.cat.campaigns[k].starts) + 10 * HOUR;
        if sent < ct.created || sent > c.t.now {
            continue;
        }
        let status = rng::weighted(&mut rng, STATUSES);
        let responded =
            (status == "responded").then(|| sent + between(&mut rng, HOUR, 5 * DAY)).map(|t| t.min(c.t.now));
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(sent as u64))
            .uuid(c.cat.campaigns[k].id)
            .uuid(ct.id)
            .null()
            .text(status)
            .opt_ts(responded)
            .ts(sent)
            .ts(responded.unwrap_or(sent))
            .end()?;
    }
    em.finish()
}

fn stage_histories(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "stage_histories");
    let mut ids = c.t.shard_ids(s.ix, "stage_histories");
    em.begin(STAGE_HISTORIES);
    for o in &s.opps {
        let mut from: Option<Uuid> = None;
        for &(stage, at) in &o.path[..o.seen] {
            let amount = if stage >= STAGE_PROPOSAL && !o.quotes.is_empty() { o.amount } else { o.estimate };
            let by = if chance(&mut rng, 0.9) { o.owner } else { c.org.users[o.owner].manager.unwrap_or(o.owner) };
            let to = c.cat.stages[usize::from(stage)].id;
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(at as u64))
                .uuid(o.id)
                .opt_uuid(from)
                .uuid(to)
                .uuid(c.org.users[by].id)
                .ts(at)
                .money(amount)
                .text(o.currency.code())
                .dec(STAGE_PROBABILITY[usize::from(stage)] * 100, 2)
                .ts(at)
                .ts(at)
                .end()?;
            from = Some(to);
        }
    }
    em.finish()
}

/// Every move of a deal's expected close date ([`close_dates`]).
fn close_date_changes(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard, plans: &[CloseDates]) -> Result<()> {
    let mut ids = c.t.shard_ids(s.ix, "close_date_changes");
    em.begin(CLOSE_DATE_CHANGES);
    for (o, plan) in s.opps.iter().zip(plans) {
        for m in &plan.moves {
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(m.at as u64))
                .uuid(o.id)
                .date(m.from)
                .date(m.to)
                .uuid(c.org.users[m.by].id)
                .ts(m.at)
                .ts(m.at)
                .ts(m.at)
                .end()?;
        }
    }
    em.finish()
}

/// Tags chosen from observable facts (segment, lifecycle, stage), as a rep would set them.
fn tags(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "tags");
    let mut ids = c.t.shard_ids(s.ix, "tags");
    let n = TAG_SPECS.len();
    let pick_tags = |rng: &mut crate::seed::rng::SeedRng, first: Option<usize>| -> Vec<usize> {
        let mut out: Vec<usize> = first.into_iter().collect();
        if out.is_empty() || chance(rng, 0.3) {
            let t = rng.random_range(0..n);
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    };
    let mut row = |em: &mut Emitter<'_>, tag: usize, entity: Uuid, at: Ms| {
        let at = at.min(c.t.now - 60_000);
        em.row().uuid(c.t.id).uuid(ids.at_millis(at as u64)).uuid(c.cat.tags[tag]).uuid(entity).ts(at).ts(at).end()
    };
    em.begin(ACCOUNT_TAGS);
    for a in &s.accounts {
        if !chance(&mut rng, 0.3) {
            continue;
        }
        let first = match (a.segment, a.lifecycle) {
            (_, crate::model::AccountLifecycle::FormerCustomer) => Some(TAG_AT_RISK),
            (Segment::Enterprise, _) => Some(0),
            _ => None,
        };
        for t in pick_tags(&mut rng, first) {
            row(em, t, a.id, a.created + DAY)?;
        }
    }
    em.finish()?;
    em.begin(CONTACT_TAGS);
    for ct in &s.contacts {
        if !chance(&mut rng, 0.12) {
            continue;
        }
        for t in pick_tags(&mut rng, None) {
            row(em, t, ct.id, ct.created + HOUR)?;
        }
    }
    em.finish()?;
    em.begin(LEAD_TAGS);
    for l in &s.leads {
        if !chance(&mut rng, 0.15) {
            continue;
        }
        let first = (l.source == crate::model::LeadSource::Event).then_some(15);
        for t in pick_tags(&mut rng, first) {
            row(em, t, l.id, l.created + HOUR)?;
        }
    }
    em.finish()?;
    em.begin(OPPORTUNITY_TAGS);
    for o in &s.opps {
        if !chance(&mut rng, 0.25) {
            continue;
        }
        let first = match o.status {
            OpportunityStatus::Open if o.stage() >= 3 => Some(TAG_HOT),
            _ if o.lead_source == "partner" => Some(9),
            _ => None,
        };
        for t in pick_tags(&mut rng, first) {
            row(em, t, o.id, o.created + DAY)?;
        }
    }
    em.finish()
}
