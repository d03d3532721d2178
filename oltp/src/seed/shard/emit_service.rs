//! Rows of service and activities: tickets and their message threads, tasks (completed and open),
//! calendar events and interaction logs.

use rand::Rng;

use super::{Shard, Touch, Via};
use crate::Result;
use crate::model::{Priority, TaskKind};
use crate::seed::catalog::SLA;
use crate::seed::csv::Emitter;
use crate::seed::ctx::TenantCtx;
use crate::seed::rng::{self, SeedRng, between, chance, poisson};
use crate::seed::text::{self, Mood};
use crate::seed::time::{DAY, HOUR, MINUTE, Ms};

pub(super) fn emit(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    tickets(em, c, s)?;
    messages(em, c, s)?;
    tasks(em, c, s)?;
    calendar(em, c, s)?;
    interactions(em, c, s)
}

fn tickets(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "tickets:text");
    em.begin(crate::seed::schema::TICKETS);
    for t in &s.tickets {
        let who = t.contact.map_or("A customer", |x| s.contacts[x].first);
        let (category, subject, description) = text::ticket(&mut rng, t.mood, who);
        let (_, _, first_min, resolution_min) = SLA[t.priority as usize];
        let updated = [Some(t.created), t.first_response, t.solved].into_iter().flatten().max().unwrap_or(t.created);
        em.row()
            .uuid(c.t.id)
            .uuid(t.id)
            .text(&format!("TCK-{:06}", t.number))
            .uuid(s.accounts[t.account].id)
            .opt_uuid(t.contact.map(|x| s.contacts[x].id))
            .uuid(c.org.users[t.owner].id)
            .uuid(c.cat.sla[t.priority as usize])
            .text(&subject)
            .text(&description)
            .text(t.status.as_str())
            .text(t.priority.as_str())
            .text(t.channel)
            .text(category)
            .ts(t.created + first_min * MINUTE)
            .ts(t.created + resolution_min * MINUTE)
            .opt_ts(t.first_response)
            .opt_ts(t.solved)
            .opt_int(t.csat)
            .ts(t.created)
            .ts(updated)
            .end()?;
    }
    em.finish()
}

/// The thread of a ticket: the customer's report, the first answer, back-and-forth (longer when the
/// customer is unhappy), internal notes and the resolution.
fn messages(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "ticket_messages");
    let mut ids = c.t.shard_ids(s.ix, "ticket_messages");
    em.begin(crate::seed::schema::TICKET_MESSAGES);
    for t in &s.tickets {
        let contact = t.contact.map(|x| &s.contacts[x]);
        let agent = &c.org.users[t.owner];
        let first_name = contact.map_or("there", |x| x.first);
        let (_, _, description) = text::ticket(&mut rng, t.mood, contact.map_or("A customer", |x| x.first));
        let mut thread: Vec<(Ms, bool, bool, String)> = vec![(t.created, false, false, description)];
        let end = t.solved.unwrap_or(c.t.now - MINUTE);
        if let Some(first) = t.first_response {
            thread.push((first, true, false, text::agent_reply(&mut rng, first_name, agent.first, false)));
            let rounds = poisson(
                &mut rng,
                match t.mood {
                    Mood::Positive => 0.4,
                    Mood::Neutral => 0.8,
                    Mood::Negative => 1.4,
                    Mood::Angry => 2.2,
                },
            );
            for _ in 0..rounds.min(5) {
                let at = first + between(&mut rng, MINUTE, (end - first).max(2 * MINUTE));
                thread.push((at, false, false, text::customer_followup(&mut rng, t.mood)));
                let reply = (at + between(&mut rng, 10 * MINUTE, 6 * HOUR)).min(end);
                thread.push((reply, true, false, text::agent_reply(&mut rng, first_name, agent.first, false)));
            }
            if chance(&mut rng, 0.25) {
                let at = first + between(&mut rng, 0, (end - first).max(MINUTE));
                let issue = rng_issue(&mut rng);
                thread.push((at, true, true, text::internal_note(&mut rng, issue)));
            }
        }
        if let Some(solved) = t.solved {
            thread.push((solved, true, false, text::agent_reply(&mut rng, first_name, agent.first, true)));
        }
        thread.sort_by_key(|m| m.0);
        for (at, by_agent, internal, body) in thread {
            let at = at.min(c.t.now - MINUTE).max(t.created);
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(at as u64))
                .uuid(t.id)
                .opt_uuid(by_agent.then_some(agent.id))
                .opt_uuid(if by_agent { None } else { contact.map(|x| x.id) })
                .text(&body)
                .boolean(internal)
                .ts(at)
                .ts(at)
                .ts(at)
                .end()?;
        }
    }
    em.finish()
}

fn rng_issue(rng: &mut SeedRng) -> u32 {
    between(rng, 1_000, 9_999) as u32
}

fn topic(
    c: &TenantCtx,
    s: &Shard,
    opp: Option<usize>,
    lead: Option<usize>,
    ticket: Option<usize>,
    account: Option<usize>,
) -> String {
    if let Some(t) = ticket {
        return format!("ticket TCK-{:06}", s.tickets[t].number);
    }
    if let Some(o) = opp {
        return s.opps[o].name.clone();
    }
    if let (Some(l), None) = (lead, account) {
        return s.leads[l].company.clone();
    }
    account.map_or_else(|| c.t.brand.clone(), |a| s.accounts[a].name.clone())
}

fn task_kind(via: Via) -> TaskKind {
    via.task_kind().unwrap_or(TaskKind::Task)
}

fn tasks(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "tasks:text");
    let id = |x: Option<usize>, f: &dyn Fn(usize) -> uuid::Uuid| x.map(f);
    em.begin(crate::seed::schema::TASKS);
    for t in &s.touches {
        let Some((task_id, created)) = t.task else { continue };
        let kind = task_kind(t.via);
        let subject = text::activity_subject(&mut rng, kind.as_str(), &topic(c, s, t.opp, t.lead, t.ticket, t.account));
        let sla = t.ticket.map(|x| s.tickets[x].created + 8 * HOUR);
        let priority = if t.ticket.is_some() { Priority::High } else { Priority::Normal };
        em.row()
            .uuid(c.t.id)
            .uuid(task_id)
            .text(kind.as_str())
            .text(&subject)
            .opt_text(text::activity_body(&mut rng, t.via.as_str(), t.positive).as_deref())
            .text("completed")
            .text(priority.as_str())
            .uuid(c.org.users[t.user].id)
            .opt_uuid(id(t.account, &|a| s.accounts[a].id))
            .opt_uuid(id(t.contact, &|x| s.contacts[x].id))
            .opt_uuid(id(t.lead, &|x| s.leads[x].id))
            .opt_uuid(id(t.opp, &|x| s.opps[x].id))
            .opt_uuid(id(t.ticket, &|x| s.tickets[x].id))
            .ts(t.at)
            .opt_ts(sla)
            .ts(t.at)
            .text(t.outcome)
            .ts(created.min(t.at))
            .ts(t.at)
            .end()?;
    }
    for t in &s.open_tasks {
        let status = match () {
            _ if t.cancelled => "cancelled",
            _ if t.due - c.t.now < 2 * DAY && chance(&mut rng, 0.3) => "in_progress",
            _ => "open",
        };
        let priority = if t.sla_due.is_some() {
            Priority::High
        } else {
            rng::weighted(&mut rng, &[(Priority::Normal, 0.7), (Priority::Low, 0.15), (Priority::High, 0.15)])
        };
        let updated = if t.cancelled { t.due.min(c.t.now) } else { t.created };
        em.row()
            .uuid(c.t.id)
            .uuid(t.id)
            .text(t.kind.as_str())
            .text(&t.subject)
            .null()
            .text(status)
            .text(priority.as_str())
            .uuid(c.org.users[t.owner].id)
            .opt_uuid(id(t.account, &|a| s.accounts[a].id))
            .opt_uuid(id(t.contact, &|x| s.contacts[x].id))
            .opt_uuid(id(t.lead, &|x| s.leads[x].id))
            .opt_uuid(id(t.opp, &|x| s.opps[x].id))
            .opt_uuid(id(t.ticket, &|x| s.tickets[x].id))
            .ts(t.due)
            .opt_ts(t.sla_due)
            .null()
            .null()
            .ts(t.created)
            .ts(updated.max(t.created))
            .end()?;
    }
    em.finish()
}

fn location(rng: &mut SeedRng, city: &str) -> String {
    match rng.random_range(0..4) {
        0 => format!("{city} office"),
        1 => "Google Meet".to_owned(),
        _ => "Zoom".to_owned(),
    }
}

fn calendar(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "calendar_events");
    let mut ids = c.t.shard_ids(s.ix, "calendar_events");
    em.begin(crate::seed::schema::CALENDAR_EVENTS);
    for t in s.touches.iter().filter(|t| t.via == Via::Meeting) {
        let starts = t.at - t.duration_s.unwrap_or(1800) * 1000;
        let created = starts - between(&mut rng, HOUR, 10 * DAY);
        let (city, tz) =
            t.account.map_or(("Head", c.t.timezone), |a| (s.accounts[a].city, s.accounts[a].region.timezone()));
        let title = text::activity_subject(&mut rng, "meeting", &topic(c, s, t.opp, t.lead, t.ticket, t.account));
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(created as u64))
            .uuid(c.org.users[t.user].id)
            .opt_uuid(t.task.map(|x| x.0))
            .opt_uuid(t.account.map(|a| s.accounts[a].id))
            .opt_uuid(t.contact.map(|x| s.contacts[x].id))
            .opt_uuid(t.opp.map(|o| s.opps[o].id))
            .text(&title)
            .text(&location(&mut rng, city))
            .ts(starts)
            .ts(t.at)
            .text(tz)
            .boolean(false)
            .ts(created)
            .ts(created)
            .end()?;
    }
    for t in s.open_tasks.iter().filter(|t| !t.cancelled) {
        let Some(at) = t.meeting_at else { continue };
        let tz = t.account.map_or(c.t.timezone, |a| s.accounts[a].region.timezone());
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(t.created as u64))
            .uuid(c.org.users[t.owner].id)
            .uuid(t.id)
            .opt_uuid(t.account.map(|a| s.accounts[a].id))
            .opt_uuid(t.contact.map(|x| s.contacts[x].id))
            .opt_uuid(t.opp.map(|o| s.opps[o].id))
            .text(&t.subject)
            .text("Zoom")
            .ts(at)
            .ts(at + 45 * MINUTE)
            .text(tz)
            .boolean(false)
            .ts(t.created)
            .ts(t.created)
            .end()?;
    }
    em.finish()
}

fn interactions(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "interaction_logs");
    let mut ids = c.t.shard_ids(s.ix, "interaction_logs");
    em.begin(crate::seed::schema::INTERACTION_LOGS);
    for t in &s.touches {
        interaction(em, c, s, &mut rng, &mut ids, t)?;
    }
    em.finish()
}

fn interaction(
    em: &mut Emitter<'_>,
    c: &TenantCtx,
    s: &Shard,
    rng: &mut SeedRng,
    ids: &mut crate::model::IdGen<SeedRng>,
    t: &Touch,
) -> Result<()> {
    let subject = text::activity_subject(rng, t.via.as_str(), &topic(c, s, t.opp, t.lead, t.ticket, t.account));
    let direction = match t.via {
        Via::Note => None,
        _ if t.inbound => Some("inbound"),
        _ => Some("outbound"),
    };
    let body = text::activity_body(rng, t.via.as_str(), t.positive);
    let logged = t.at + between(rng, 0, 10 * MINUTE);
    em.row()
        .uuid(c.t.id)
        .uuid(ids.at_millis(t.at as u64))
        .text(t.via.as_str())
        .opt_text(direction)
        .opt_uuid((t.via != Via::WebVisit).then(|| c.org.users[t.user].id))
        .opt_uuid(t.account.map(|a| s.accounts[a].id))
        .opt_uuid(t.contact.map(|x| s.contacts[x].id))
        .opt_uuid(t.lead.map(|l| s.leads[l].id))
        .opt_uuid(t.opp.map(|o| s.opps[o].id))
        .text(&subject)
        .opt_text(body.as_deref())
        .opt_int(t.duration_s)
        .ts(t.at)
        .ts(logged.min(c.t.now))
        .ts(logged.min(c.t.now))
        .end()
}
