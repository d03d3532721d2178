//! Activities: calls, e-mails, meetings and notes on deals, leads and customers, plus the tasks that
//! are still open. A deal with more momentum gets more activity and keeps getting it until it closes;
//! a deal that will be lost goes quiet well before it is closed out (so volume and recency of activity
//! predict wins). Customers get check-ins, and escalated tickets get a call from the account owner.
//!
//! [`finalize`] derives every `last_activity_at` from the touches and the lifecycle stages of accounts
//! and contacts from deals and subscriptions.

use rand::Rng;

use super::{OpenTask, Shard, SubStatus, Touch, Via};
use crate::model::{AccountLifecycle, OpportunityStatus, Priority, Segment, TaskKind, TicketStatus};
use crate::seed::ctx::TenantCtx;
use crate::seed::rng::{self, SeedRng, between, chance, lognormal, poisson, uniform};
use crate::seed::text::Mood;
use crate::seed::time::{DAY, HOUR, MINUTE, Ms, WEEK, business_time};

/// Creates touches and open tasks from one random stream.
pub(super) struct TouchGen {
    rng: SeedRng,
    task_ids: crate::model::IdGen<SeedRng>,
}

/// Who and what a touch is about.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct About {
    pub account: Option<usize>,
    pub contact: Option<usize>,
    pub lead: Option<usize>,
    pub opp: Option<usize>,
    pub ticket: Option<usize>,
}

impl TouchGen {
    pub fn new(c: &TenantCtx, shard: usize, purpose: &str) -> TouchGen {
        TouchGen {
            rng: c.t.shard_rng(shard, &format!("touches:{purpose}")),
            task_ids: c.t.shard_ids(shard, &format!("tasks:{purpose}")),
        }
    }

    /// A past activity; calls, e-mails and meetings were planned as a task with probability `task_p`.
    #[allow(clippy::too_many_arguments)]
    pub fn add(&mut self, s: &mut Shard, at: Ms, via: Via, user: usize, about: About, positive: bool, task_p: f64) {
        let rng = &mut self.rng;
        // Activities with a contact that came from a lead keep referring to that lead.
        let lead = about.lead.or_else(|| about.contact.and_then(|c| s.contacts[c].lead));
        let inbound = match via {
            Via::WebVisit | Via::Chat => true,
            Via::Email => chance(rng, if positive { 0.45 } else { 0.2 }),
            _ => false,
        };
        let outcome = match via {
            Via::Call => rng::weighted(rng, &[("connected", 0.55), ("left_voicemail", 0.3), ("no_answer", 0.15)]),
            Via::Email if inbound => "replied",
            Via::Email => "done",
            Via::Meeting => {
                if !positive && chance(rng, 0.12) {
                    "no_show"
                } else {
                    "held"
                }
            }
            _ => "done",
        };
        let duration_s = match (via, outcome) {
            (Via::Call, "connected") => Some((lognormal(rng, 360.0, 0.6)) as i64),
            (Via::Call, _) => Some(between(rng, 5, 40)),
            (Via::Meeting, _) => Some(rng::pick(rng, &[1800, 2700, 3600])),
            _ => None,
        };
        let task = (via.task_kind().is_some() && chance(rng, task_p)).then(|| {
            let created = at - between(rng, HOUR, 3 * DAY);
            (self.task_ids.at_millis(created as u64), created)
        });
        s.touches.push(Touch {
            at,
            via,
            inbound,
            user,
            account: about.account,
            contact: about.contact,
            lead,
            opp: about.opp,
            ticket: about.ticket,
            task,
            positive,
            duration_s,
            outcome,
        });
    }

    pub fn lead(&mut self, s: &mut Shard, at: Ms, via: Via, user: usize, lead: usize, positive: bool) {
        let about = About { lead: Some(lead), ..About::default() };
        self.add(s, at, via, user, about, positive, 0.4);
    }

    /// An open follow-up task for a lead being worked (with a response SLA for inbound leads).
    pub fn lead_follow_up(&mut self, c: &TenantCtx, s: &mut Shard, lead: usize, inbound: bool) {
        let l = &s.leads[lead];
        let due = c.t.now + between(&mut self.rng, -2 * DAY, 5 * DAY);
        let subject = format!("Follow up with {} {} ({})", l.first, l.last, l.company);
        let task = OpenTask {
            id: self.task_ids.at_millis(l.created.max(c.t.now - 10 * DAY) as u64),
            kind: TaskKind::Call,
            cancelled: false,
            created: l.created.max(c.t.now - 10 * DAY),
            due,
            sla_due: inbound.then_some(l.created + 24 * HOUR),
            owner: l.owner,
            account: None,
            contact: None,
            lead: Some(lead),
            opp: None,
            ticket: None,
            subject,
            meeting_at: None,
        };
        s.open_tasks.push(task);
    }

    #[allow(clippy::too_many_arguments)]
    fn open_task(
        &mut self,
        s: &mut Shard,
        created: Ms,
        due: Ms,
        kind: TaskKind,
        owner: usize,
        about: About,
        subject: String,
    ) {
        let meeting_at = (kind == TaskKind::Meeting).then_some(due);
        s.open_tasks.push(OpenTask {
            id: self.task_ids.at_millis(created as u64),
            kind,
            cancelled: false,
            created,
            due,
            sla_due: None,
            owner,
            account: about.account,
            contact: about.contact,
            lead: about.lead.or_else(|| about.contact.and_then(|c| s.contacts[c].lead)),
            opp: about.opp,
            ticket: about.ticket,
            subject,
            meeting_at,
        });
    }
}

pub(super) fn build(c: &TenantCtx, s: &mut Shard) {
    let mut g = TouchGen::new(c, s.ix, "opp");
    for o in 0..s.opps.len() {
        opp_touches(c, s, &mut g, o);
        opp_open_tasks(c, s, &mut g, o);
    }
    let mut g = TouchGen::new(c, s.ix, "customer");
    for sub in 0..s.subs.len() {
        customer_touches(c, s, &mut g, sub);
    }
    let mut g = TouchGen::new(c, s.ix, "ticket");
    for t in 0..s.tickets.len() {
        ticket_follow_up(c, s, &mut g, t);
    }
}

fn contact_at(rng: &mut SeedRng, s: &Shard, account: usize, preferred: Option<usize>, at: Ms) -> Option<usize> {
    if let Some(p) = preferred.filter(|_| chance(rng, 0.85)) {
        return Some(p);
    }
    let list: Vec<usize> =
        s.accounts[account].contacts.iter().copied().filter(|&c| s.contacts[c].created <= at).collect();
    if list.is_empty() { preferred } else { Some(list[rng.random_range(0..list.len())]) }
}

fn opp_touches(c: &TenantCtx, s: &mut Shard, g: &mut TouchGen, o: usize) {
    let opp = &s.opps[o];
    let (created, end, wins) = (opp.created, opp.end(), opp.eventually_won());
    let (account, contact, owner, momentum) = (opp.account, opp.contact, opp.owner, opp.momentum);
    let region = s.accounts[account].region;
    let active_end = if wins { end } else { created + ((end - created) as f64 * uniform(&mut g.rng, 0.3, 0.7)) as Ms };
    let active_end = active_end.min(c.t.now);
    let per_week = match s.accounts[account].segment {
        Segment::Smb => 0.9,
        Segment::MidMarket => 1.2,
        Segment::Enterprise => 1.5,
    } * (0.5 * momentum).exp()
        * match opp.kind {
            crate::model::OpportunityKind::NewBusiness => 1.0,
            crate::model::OpportunityKind::Expansion => 0.8,
            crate::model::OpportunityKind::Renewal => 0.6,
        };
    let weeks = (active_end - created) as f64 / WEEK as f64;
    let n = poisson(&mut g.rng, per_week * weeks).max(1);
    let mut times: Vec<Ms> = (0..n).map(|_| created + g.rng.random_range(0..(active_end - created).max(1))).collect();
    match (wins, end <= c.t.now) {
        (true, true) => times.push(end - between(&mut g.rng, 0, 3 * DAY)),
        (true, false) => times.push(c.t.now - between(&mut g.rng, HOUR, 5 * DAY)),
        (false, true) if chance(&mut g.rng, 0.4) => times.push(end - between(&mut g.rng, 0, DAY)),
        _ => {}
    }
    let limit = end.min(c.t.now);
    let positive = wins || momentum > 0.0;
    for t in times {
        let t = business_time(&mut g.rng, t, region).clamp(created, limit);
        let via =
            rng::weighted(&mut g.rng, &[(Via::Email, 0.45), (Via::Call, 0.28), (Via::Meeting, 0.2), (Via::Note, 0.07)]);
        let who = contact_at(&mut g.rng, s, account, contact, t);
        let user = if via == Via::Meeting && chance(&mut g.rng, 0.2) {
            c.org.users[owner].manager.unwrap_or(owner)
        } else {
            owner
        };
        let about = super::activity::About { account: Some(account), contact: who, opp: Some(o), ..Default::default() };
        g.add(s, t, via, user, about, positive, 0.45);
    }
}

fn opp_open_tasks(c: &TenantCtx, s: &mut Shard, g: &mut TouchGen, o: usize) {
    let opp = &s.opps[o];
    let about = About { account: Some(opp.account), contact: opp.contact, opp: Some(o), ..About::default() };
    let (owner, name, created) = (opp.owner, opp.name.clone(), opp.created);
    let subject = opp.next_step.unwrap_or("Check in on the deal").to_owned();
    match opp.status {
        OpportunityStatus::Open if opp.eventually_won() || chance(&mut g.rng, 0.5) => {
            let kind = rng::weighted(
                &mut g.rng,
                &[(TaskKind::Call, 0.35), (TaskKind::Email, 0.2), (TaskKind::Meeting, 0.35), (TaskKind::Task, 0.1)],
            );
            let due = c.t.now + between(&mut g.rng, HOUR, 14 * DAY);
            let made = (c.t.now - between(&mut g.rng, HOUR, 7 * DAY)).max(created);
            g.open_task(s, made, due, kind, owner, about, format!("{subject} — {name}"));
        }
        OpportunityStatus::Open => {
            let made = created + (c.t.now - created) / 3;
            let due = made + between(&mut g.rng, 3 * DAY, 10 * DAY);
            g.open_task(s, made, due.min(c.t.now - HOUR), TaskKind::Call, owner, about, format!("Re-engage — {name}"));
        }
        OpportunityStatus::Lost if chance(&mut g.rng, 0.25) => {
            let end = opp.end();
            let made = created + (end - created) / 2;
            g.open_task(s, made, end, TaskKind::Call, owner, about, format!("Follow up — {name}"));
            if let Some(t) = s.open_tasks.last_mut() {
                t.cancelled = true;
            }
        }
        _ => {}
    }
}

fn customer_touches(c: &TenantCtx, s: &mut Shard, g: &mut TouchGen, sub: usize) {
    let sb = &s.subs[sub];
    if sb.addon {
        return;
    }
    let (account, start) = (sb.account, sb.start);
    let end = sb.end().unwrap_or(Ms::MAX).min(c.t.now);
    if end <= start {
        return;
    }
    let champion = s.opps[sb.opp].contact;
    let (owner, region, health) = (s.accounts[account].owner, s.accounts[account].region, s.accounts[account].health);
    let months = (end - start) as f64 / (30 * DAY) as f64;
    // Healthy customers talk to their account team more often.
    let n = poisson(&mut g.rng, (0.3 + 1.2 * health) * months);
    for _ in 0..n {
        let t = start + g.rng.random_range(0..(end - start));
        let t = business_time(&mut g.rng, t, region).clamp(start, end);
        let via = rng::weighted(&mut g.rng, &[(Via::Meeting, 0.3), (Via::Email, 0.5), (Via::Call, 0.2)]);
        let who = contact_at(&mut g.rng, s, account, champion, t);
        let about = About { account: Some(account), contact: who, ..About::default() };
        g.add(s, t, via, owner, about, health > 0.5, 0.3);
    }
}

/// Escalated tickets of unhappy customers get a call from the account owner.
fn ticket_follow_up(c: &TenantCtx, s: &mut Shard, g: &mut TouchGen, t: usize) {
    let tk = &s.tickets[t];
    let escalated = matches!(tk.priority, Priority::High | Priority::Urgent) && tk.mood >= Mood::Negative;
    if !escalated || !chance(&mut g.rng, 0.6) {
        return;
    }
    let about = About { account: Some(tk.account), contact: tk.contact, ticket: Some(t), ..About::default() };
    let owner = s.accounts[tk.account].owner;
    let region = s.accounts[tk.account].region;
    let subject = format!("Call about escalated ticket TCK-{:06}", tk.number);
    let (created, status) = (tk.created, tk.status);
    let at = created + between(&mut g.rng, 2 * HOUR, 2 * DAY);
    let solved = matches!(status, TicketStatus::Solved | TicketStatus::Closed);
    if solved && at < c.t.now {
        let at = business_time(&mut g.rng, at, region).clamp(created, c.t.now - MINUTE);
        g.add(s, at, Via::Call, owner, about, false, 1.0);
    } else {
        let made = created + MINUTE;
        g.open_task(s, made, (created + DAY).max(c.t.now + HOUR), TaskKind::Call, owner, about, subject);
        if let Some(task) = s.open_tasks.last_mut() {
            task.sla_due = Some(created + 8 * HOUR);
        }
    }
}

/// `last_activity_at` of accounts, contacts, leads and deals; lifecycle stages.
pub(super) fn finalize(c: &TenantCtx, s: &mut Shard) {
    fn bump(slot: &mut Option<Ms>, at: Ms) {
        *slot = Some(slot.map_or(at, |x| x.max(at)));
    }
    for t in &s.touches {
        if let Some(a) = t.account {
            bump(&mut s.accounts[a].last_activity, t.at);
        }
        if let Some(x) = t.contact {
            bump(&mut s.contacts[x].last_activity, t.at);
        }
        if let Some(l) = t.lead {
            bump(&mut s.leads[l].last_activity, t.at);
        }
        if let Some(o) = t.opp {
            bump(&mut s.opps[o].last_activity, t.at);
        }
    }
    let mut rng = c.t.shard_rng(s.ix, "lifecycle");
    for a in 0..s.accounts.len() {
        let subs: Vec<&super::Sub> = s.subs.iter().filter(|x| x.account == a).collect();
        let live = subs.iter().any(|x| match x.status {
            SubStatus::Active | SubStatus::PastDue | SubStatus::Trialing => true,
            SubStatus::Cancelled | SubStatus::Expired => x.current_period_end > c.t.now,
        });
        let acc = &mut s.accounts[a];
        acc.lifecycle = match () {
            _ if live => AccountLifecycle::Customer,
            _ if !subs.is_empty() => AccountLifecycle::FormerCustomer,
            _ if chance(&mut rng, 0.02) => AccountLifecycle::Partner,
            _ => AccountLifecycle::Prospect,
        };
        acc.updated = acc.last_activity.unwrap_or(acc.created).max(acc.created);
    }
    let open_primary: std::collections::HashSet<usize> =
        s.opps.iter().filter(|o| o.status == OpportunityStatus::Open).filter_map(|o| o.contact).collect();
    for (i, ct) in s.contacts.iter_mut().enumerate() {
        let acc = &s.accounts[ct.account];
        ct.lifecycle = match acc.lifecycle {
            AccountLifecycle::Customer if acc.health > 0.8 && chance(&mut rng, 0.15) => "evangelist",
            AccountLifecycle::Customer | AccountLifecycle::FormerCustomer => "customer",
            _ if open_primary.contains(&i) => "opportunity",
            _ if ct.lead.is_some() => "sql",
            _ => rng::weighted(&mut rng, &[("subscriber", 0.2), ("lead", 0.5), ("mql", 0.3)]),
        };
    }
    for l in &mut s.leads {
        l.updated = [Some(l.created), l.converted.map(|x| x.0), l.last_activity]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(l.created);
    }
}
