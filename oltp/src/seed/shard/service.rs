//! Support tickets of customers. Unhealthy customers open more tickets — and more again in the months
//! before they leave —, write them in a worse mood (more urgent, more negative), wait longer for
//! answers and rate the support lower.

use rand::Rng;

use super::{Shard, Ticket};
use crate::model::{Priority, Segment, TicketStatus};
use crate::seed::catalog::SLA;
use crate::seed::ctx::TenantCtx;
use crate::seed::rng::{self, SeedRng, chance, lognormal, normal, poisson};
use crate::seed::text::Mood;
use crate::seed::time::{DAY, HOUR, MINUTE, Ms, business_time};

pub(super) fn build(c: &mut TenantCtx, s: &mut Shard) {
    let mut rng = c.t.shard_rng(s.ix, "tickets");
    let mut ids = c.t.shard_ids(s.ix, "tickets");
    let mut planned: Vec<(Ms, usize, bool)> = Vec::new();
    for sub in s.subs.iter().filter(|x| !x.addon) {
        let a = &s.accounts[sub.account];
        let base = match a.segment {
            Segment::Smb => 0.12,
            Segment::MidMarket => 0.3,
            Segment::Enterprise => 0.7,
        };
        let rate = base * (0.3 + 2.5 * (1.0 - a.health).powi(2));
        let end = sub.end().unwrap_or(Ms::MAX).min(c.t.now - HOUR);
        if end <= sub.start {
            continue;
        }
        let months = (end - sub.start) as f64 / (30 * DAY) as f64;
        for _ in 0..poisson(&mut rng, rate * months) {
            planned.push((sub.start + rng.random_range(0..(end - sub.start)), sub.account, false));
        }
        if let Some(churn) = sub.churn_at {
            let from = (churn - 120 * DAY).max(sub.start);
            let to = churn.min(c.t.now - HOUR);
            for _ in 0..poisson(&mut rng, rate * 4.0) {
                if to > from {
                    planned.push((from + rng.random_range(0..(to - from)), sub.account, true));
                }
            }
        }
    }
    planned.sort_by_key(|p| p.0);
    for (at, account, near_churn) in planned {
        let created = business_time(&mut rng, at, s.accounts[account].region).min(c.t.now - HOUR);
        let t = ticket(c, s, &mut rng, created, account, near_churn);
        let t = Ticket { id: ids.at_millis(created as u64), ..t };
        s.tickets.push(t);
    }
}

fn mood(rng: &mut SeedRng, health: f64, near_churn: bool) -> Mood {
    let score = 0.9 * (1.0 - health) + if near_churn { 0.35 } else { 0.0 } + 0.15 * normal(rng);
    match score {
        x if x < 0.3 => Mood::Positive,
        x if x < 0.5 => Mood::Neutral,
        x if x < 0.68 => Mood::Negative,
        _ => Mood::Angry,
    }
}

fn ticket(c: &mut TenantCtx, s: &Shard, rng: &mut SeedRng, created: Ms, account: usize, near_churn: bool) -> Ticket {
    let health = s.accounts[account].health;
    let mood = mood(rng, health, near_churn);
    let priority = match mood {
        Mood::Angry => rng::weighted(rng, &[(Priority::Urgent, 0.4), (Priority::High, 0.5), (Priority::Normal, 0.1)]),
        Mood::Negative => rng::weighted(rng, &[(Priority::High, 0.4), (Priority::Normal, 0.5), (Priority::Low, 0.1)]),
        Mood::Neutral => rng::weighted(rng, &[(Priority::Normal, 0.6), (Priority::Low, 0.3), (Priority::High, 0.1)]),
        Mood::Positive => rng::weighted(rng, &[(Priority::Low, 0.6), (Priority::Normal, 0.4)]),
    };
    let (_, _, first_min, resolution_min) = SLA[priority as usize];
    let age = c.t.now - created;
    let status = match age {
        a if a > 10 * DAY => {
            if chance(rng, 0.7) {
                TicketStatus::Closed
            } else {
                TicketStatus::Solved
            }
        }
        a if a > 3 * DAY => {
            rng::weighted(rng, &[(TicketStatus::Solved, 0.5), (TicketStatus::Pending, 0.2), (TicketStatus::Open, 0.3)])
        }
        _ => rng::weighted(
            rng,
            &[
                (TicketStatus::New, 0.3),
                (TicketStatus::Open, 0.4),
                (TicketStatus::Pending, 0.15),
                (TicketStatus::Solved, 0.15),
            ],
        ),
    };
    let slow = 0.45 + 0.5 * (1.0 - health);
    let first = created + ((first_min as f64 * lognormal(rng, slow, 0.7)) as Ms * MINUTE).max(MINUTE);
    let first_response = (status != TicketStatus::New).then_some(first.min(c.t.now - MINUTE).max(created + MINUTE));
    let solve = created + (resolution_min as f64 * lognormal(rng, 0.6 + 0.6 * (1.0 - health), 0.8)) as Ms * MINUTE;
    let solved = matches!(status, TicketStatus::Solved | TicketStatus::Closed)
        .then(|| solve.min(c.t.now - MINUTE).max(first_response.unwrap_or(created) + MINUTE));
    let breached = solved.is_some_and(|x| x - created > resolution_min * MINUTE);
    let csat = solved.filter(|_| chance(rng, 0.55)).map(|_| {
        let score = 1.0 + 4.0 * (0.25 + 0.75 * health) - if breached { 1.0 } else { 0.0 } + 0.6 * normal(rng);
        (score.round() as i64).clamp(1, 5)
    });
    let contacts = &s.accounts[account].contacts;
    let eligible: Vec<usize> = contacts.iter().copied().filter(|&x| s.contacts[x].created <= created).collect();
    let agents = &c.org.support_agents;
    c.counters.ticket += 1;
    Ticket {
        id: uuid::Uuid::nil(),
        number: c.counters.ticket,
        account,
        contact: (!eligible.is_empty()).then(|| eligible[rng.random_range(0..eligible.len())]),
        owner: agents[rng.random_range(0..agents.len().max(1)).min(agents.len().saturating_sub(1))],
        priority,
        status,
        mood,
        created,
        first_response,
        solved,
        csat,
        channel: rng::weighted(
            rng,
            &[("email", 0.45), ("web", 0.25), ("chat", 0.15), ("phone", 0.12), ("social", 0.03)],
        ),
    }
}
