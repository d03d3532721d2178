//! A deal's expected close date as its rep keeps it: set when the deal is created (optimistically,
//! three to ten weeks out), moved shortly before it would pass with the deal still open, and set to the
//! close day when the deal closes. The CRM stores the current date in `opportunities.close_date` and
//! every move in `close_date_changes`.
//!
//! How a rep pushes depends on where the deal is really going, which is the signal a model can learn
//! from the history: on a deal that will be won the rep has a fair idea of the real date and moves it
//! there once or twice; on a deal that will be lost the rep strings it along, two to six weeks at a
//! time. Renewals start from the renewal date, which is known, and rarely move.

use chrono::NaiveDate;

use super::Opp;
use crate::model::OpportunityKind;
use crate::seed::ctx::TenantCtx;
use crate::seed::rng::{SeedRng, between, chance};
use crate::seed::time::{DAY, HOUR, Ms, date_of, ms_of};

/// One move of the expected close date.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Move {
    pub at: Ms,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The user (index into the tenant's users) who moved it.
    pub by: usize,
}

/// A deal's close dates: the one the CRM holds now and how it got there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CloseDates {
    /// The expected close date now; a closed deal's close day.
    pub current: NaiveDate,
    pub moves: Vec<Move>,
}

/// The plan of `o`, drawn from `rng` (one stream per shard, deals in order).
pub(crate) fn plan(rng: &mut SeedRng, c: &TenantCtx, o: &Opp) -> CloseDates {
    let end = o.end();
    let won = o.eventually_won();
    let closed = o.closed_at();
    // Moves happen while the deal is open and before the simulation's present (a closed deal
    // closed before it).
    let limit = closed.unwrap_or(c.t.now);
    let owner = o.owner;
    let by = |rng: &mut SeedRng| match c.org.users[owner].manager {
        Some(m) if chance(rng, 0.1) => m,
        _ => owner,
    };
    let first = match o.kind {
        OpportunityKind::Renewal => end + between(rng, -5, 10) * DAY,
        _ => o.created + between(rng, 21, 70) * DAY,
    };
    let mut expected = date_of(first.max(o.created + DAY));
    let mut moves = Vec::new();
    loop {
        // The rep moves the date in the last days before it passes, during working hours.
        let at = ms_of(expected) - between(rng, 1, 6) * DAY + between(rng, 9 * HOUR, 18 * HOUR);
        // Not yet due, or the deal closes (will close) by the date it has.
        if at >= limit || at <= o.created || end <= ms_of(expected) {
            break;
        }
        let to = if won {
            // Close to the real date: once or twice.
            (end + between(rng, -7, 21) * DAY).max(at + 7 * DAY).max(ms_of(expected) + 7 * DAY)
        } else {
            at + between(rng, 14, 45) * DAY
        };
        let to = date_of(to);
        moves.push(Move { at, from: expected, to, by: by(rng) });
        expected = to;
    }
    let current = match closed {
        Some(t) => {
            let day = date_of(t);
            if day != expected {
                moves.push(Move { at: t, from: expected, to: day, by: by(rng) });
            }
            day
        }
        None => expected,
    };
    CloseDates { current, moves }
}
