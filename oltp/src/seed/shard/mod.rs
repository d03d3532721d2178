//! One shard of a tenant: up to [`SHARD_ACCOUNTS`](super::ctx::SHARD_ACCOUNTS) accounts with everything
//! that hangs off them (contacts, deals, leads, activities, tickets, billing, usage, scores).
//!
//! A shard is built completely in memory first ([`build`]), because columns such as
//! `last_activity_at` or an opportunity's amount depend on rows of later tables, and then emitted
//! table by table in foreign-key order ([`emit`]). Entities refer to each other by index into the
//! shard's vectors (and to users, campaigns and products by index into the tenant context).
//!
//! The latent variables that drive the outcomes — an account's `health`, a deal's `momentum` — are
//! never written; models have to recover them from observable columns (activity volume and recency,
//! usage, ticket volume and tone, payment behaviour).

mod accounts;
mod activity;
mod billing;
mod close_dates;
mod deals;
mod emit_commerce;
mod emit_core;
mod emit_intel;
mod emit_service;
mod leads;
mod service;

use chrono::NaiveDate;
use uuid::Uuid;

use super::csv::Emitter;
use super::ctx::{Cur, TenantCtx};
use super::text::Mood;
use super::time::{Ms, Region};
use crate::Result;
use crate::model::{
    AccountLifecycle, CompanySize, ForecastCategory, Industry, LeadSource, LeadStatus, OpportunityKind,
    OpportunityStatus, Priority, Segment, TaskKind, TicketStatus,
};

#[derive(Debug)]
pub(crate) struct Account {
    pub id: Uuid,
    pub created: Ms,
    pub name: String,
    pub domain: String,
    pub parent: Option<usize>,
    pub owner: usize,
    pub territory: usize,
    pub region: Region,
    pub country: &'static str,
    pub city: &'static str,
    pub industry: Industry,
    pub size: CompanySize,
    pub segment: Segment,
    pub employees: Option<i64>,
    pub revenue: Option<i64>,
    pub currency: Cur,
    pub phone: Option<String>,
    pub description: Option<String>,
    /// Latent customer health in (0, 1); drives usage, tickets, churn. Never stored.
    pub health: f64,
    pub lifecycle: AccountLifecycle,
    pub contacts: Vec<usize>,
    pub last_activity: Option<Ms>,
    pub updated: Ms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Seniority {
    Individual,
    Manager,
    Director,
    Vp,
    CLevel,
}

impl Seniority {
    pub fn as_str(self) -> &'static str {
        match self {
            Seniority::Individual => "individual",
            Seniority::Manager => "manager",
            Seniority::Director => "director",
            Seniority::Vp => "vp",
            Seniority::CLevel => "c_level",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Contact {
    pub id: Uuid,
    pub account: usize,
    pub created: Ms,
    pub first: &'static str,
    pub last: &'static str,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: &'static str,
    pub seniority: Seniority,
    pub lifecycle: &'static str,
    pub dnc: bool,
    /// The lead this contact was converted from.
    pub lead: Option<usize>,
    pub last_activity: Option<Ms>,
}

#[derive(Debug)]
pub(crate) struct QuoteLine {
    pub product: usize,
    /// Hundredths (numeric(12,2)).
    pub qty: i64,
    pub unit: i64,
    /// Basis points of percent: 1500 = 15.00 %.
    pub discount_bp: i64,
    pub line_total: i64,
}

#[derive(Debug)]
pub(crate) struct Quote {
    pub id: Uuid,
    pub number: String,
    pub created: Ms,
    pub status: &'static str,
    pub book: usize,
    pub approved_by: Option<usize>,
    pub lines: Vec<QuoteLine>,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
}

#[derive(Debug)]
pub(crate) struct Opp {
    pub id: Uuid,
    pub account: usize,
    pub contact: Option<usize>,
    pub owner: usize,
    pub kind: OpportunityKind,
    pub created: Ms,
    pub currency: Cur,
    /// Amount before a quote exists (stage history before Proposal carries it).
    pub estimate: i64,
    pub amount: i64,
    /// Every stage the deal enters, with the time, including stages after `now` for open deals.
    pub path: Vec<(u8, Ms)>,
    /// How many entries of `path` happened by `now`.
    pub seen: usize,
    pub status: OpportunityStatus,
    pub forecast: ForecastCategory,
    pub campaign: Option<usize>,
    pub lead: Option<usize>,
    pub lead_sourced: bool,
    pub lead_source: &'static str,
    pub lost_reason: Option<&'static str>,
    pub next_step: Option<&'static str>,
    /// Latent deal quality; drives stage conversion and activity. Never stored.
    pub momentum: f64,
    pub name: String,
    pub quotes: Vec<Quote>,
    pub last_activity: Option<Ms>,
}

impl Opp {
    pub fn stage(&self) -> u8 {
        self.path[self.seen.max(1) - 1].0
    }
    /// Time of the deal's last stage change (its close, or the expected close for open deals).
    pub fn end(&self) -> Ms {
        self.path.last().map_or(self.created, |p| p.1)
    }
    pub fn closed_at(&self) -> Option<Ms> {
        (self.status != OpportunityStatus::Open).then(|| self.end())
    }
    pub fn won(&self) -> bool {
        self.status == OpportunityStatus::Won
    }
    /// Whether the deal will be won (known for open deals too: the walk is simulated to the end).
    pub fn eventually_won(&self) -> bool {
        self.path.last().is_some_and(|p| p.0 == super::catalog::STAGE_WON)
    }
    pub fn entered(&self, stage: u8) -> Option<Ms> {
        self.path[..self.seen].iter().find(|p| p.0 == stage).map(|p| p.1)
    }
}

#[derive(Debug)]
pub(crate) struct Lead {
    pub id: Uuid,
    pub created: Ms,
    pub owner: usize,
    pub campaign: Option<usize>,
    pub first: &'static str,
    pub last: &'static str,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: String,
    pub title: &'static str,
    pub industry: Industry,
    pub size: CompanySize,
    pub country: &'static str,
    pub region: Region,
    pub source: LeadSource,
    pub status: LeadStatus,
    /// (converted at, account, contact, opportunity)
    pub converted: Option<(Ms, usize, usize, usize)>,
    pub last_activity: Option<Ms>,
    pub updated: Ms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubStatus {
    Trialing,
    Active,
    PastDue,
    Cancelled,
    Expired,
}

#[derive(Debug)]
pub(crate) struct SubLine {
    pub product: usize,
    pub qty: i64,
    /// Price per unit and month, in cents.
    pub unit_month: i64,
}

#[derive(Debug)]
pub(crate) struct Invoice {
    pub id: Uuid,
    pub number: String,
    pub issued: NaiveDate,
    pub due: NaiveDate,
    pub status: &'static str,
    /// (product, description, quantity in hundredths, unit price, amount)
    pub items: Vec<(Option<usize>, String, i64, i64, i64)>,
    pub subtotal: i64,
    pub tax: i64,
    pub paid: i64,
    /// (amount, status, at, method)
    pub payments: Vec<(i64, &'static str, Ms, &'static str)>,
    pub created: Ms,
}

#[derive(Debug)]
pub(crate) struct Sub {
    pub id: Uuid,
    pub account: usize,
    pub product: usize,
    pub opp: usize,
    pub plan_name: String,
    pub period_months: i32,
    pub lines: Vec<SubLine>,
    /// Seat changes of the first line from won expansions: (time, delta).
    pub seat_changes: Vec<(Ms, i64)>,
    /// One-off items billed with the first invoice: (product, amount).
    pub one_off: Vec<(usize, i64)>,
    pub start: Ms,
    /// End of the period at which the customer leaves.
    pub churn_at: Option<Ms>,
    pub cancel_requested: Option<Ms>,
    pub cancel_reason: Option<&'static str>,
    pub fixed_term_end: Option<Ms>,
    pub status: SubStatus,
    pub active_seats: Option<i64>,
    pub addon: bool,
    pub currency: Cur,
    pub invoices: Vec<Invoice>,
    pub current_period_end: Ms,
}

impl Sub {
    /// Seats of the first line at `t`.
    pub fn seats_at(&self, t: Ms) -> i64 {
        let base = self.lines.first().map_or(1, |l| l.qty);
        base + self.seat_changes.iter().filter(|(at, _)| *at <= t).map(|(_, d)| d).sum::<i64>()
    }
    /// End of access: the churn period end or a fixed term.
    pub fn end(&self) -> Option<Ms> {
        match (self.churn_at, self.fixed_term_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Ticket {
    pub id: Uuid,
    pub number: u32,
    pub account: usize,
    pub contact: Option<usize>,
    pub owner: usize,
    pub priority: Priority,
    pub status: TicketStatus,
    pub mood: Mood,
    pub created: Ms,
    pub first_response: Option<Ms>,
    pub solved: Option<Ms>,
    pub csat: Option<i64>,
    pub channel: &'static str,
}

/// Kinds of logged interactions (`interaction_logs.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Email,
    Call,
    Meeting,
    Note,
    WebVisit,
    Chat,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Email => "email",
            Via::Call => "call",
            Via::Meeting => "meeting",
            Via::Note => "note",
            Via::WebVisit => "web_visit",
            Via::Chat => "chat",
        }
    }
    pub fn task_kind(self) -> Option<TaskKind> {
        match self {
            Via::Email => Some(TaskKind::Email),
            Via::Call => Some(TaskKind::Call),
            Via::Meeting => Some(TaskKind::Meeting),
            _ => None,
        }
    }
}

/// One past activity: an interaction log row, plus a completed task when it was planned as one,
/// plus a calendar event for meetings. `last_activity_at` columns are the latest `at` of the touches
/// that reference the record.
#[derive(Debug)]
pub(crate) struct Touch {
    pub at: Ms,
    pub via: Via,
    pub inbound: bool,
    pub user: usize,
    pub account: Option<usize>,
    pub contact: Option<usize>,
    pub lead: Option<usize>,
    pub opp: Option<usize>,
    pub ticket: Option<usize>,
    /// Completed task: (id, created).
    pub task: Option<(Uuid, Ms)>,
    pub positive: bool,
    pub duration_s: Option<i64>,
    pub outcome: &'static str,
}

/// A task that is not done: open, in progress (due in the future or overdue) or cancelled.
#[derive(Debug)]
pub(crate) struct OpenTask {
    pub id: Uuid,
    pub kind: TaskKind,
    pub cancelled: bool,
    pub created: Ms,
    pub due: Ms,
    pub sla_due: Option<Ms>,
    pub owner: usize,
    pub account: Option<usize>,
    pub contact: Option<usize>,
    pub lead: Option<usize>,
    pub opp: Option<usize>,
    pub ticket: Option<usize>,
    pub subject: String,
    /// A future meeting also gets a calendar event.
    pub meeting_at: Option<Ms>,
}

#[derive(Debug, Default)]
pub(crate) struct Shard {
    pub ix: usize,
    pub accounts: Vec<Account>,
    pub contacts: Vec<Contact>,
    pub opps: Vec<Opp>,
    pub leads: Vec<Lead>,
    pub subs: Vec<Sub>,
    pub tickets: Vec<Ticket>,
    pub touches: Vec<Touch>,
    pub open_tasks: Vec<OpenTask>,
}

/// Builds shard `ix` of the tenant (accounts `ix * SHARD_ACCOUNTS ..`).
pub(crate) fn build(c: &mut TenantCtx, ix: usize) -> Shard {
    let start = ix * super::ctx::SHARD_ACCOUNTS;
    let n = (c.t.accounts - start).min(super::ctx::SHARD_ACCOUNTS);
    let mut s = Shard { ix, ..Shard::default() };
    accounts::build(c, &mut s, n);
    deals::build(c, &mut s);
    leads::build(c, &mut s);
    service::build(c, &mut s);
    billing::build(c, &mut s);
    activity::build(c, &mut s);
    activity::finalize(c, &mut s);
    s
}

/// Emits the shard's rows, table by table in foreign-key order.
pub(crate) fn emit(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    emit_core::emit(em, c, s)?;
    emit_service::emit(em, c, s)?;
    emit_commerce::emit(em, c, s)?;
    emit_intel::emit(em, c, s)
}
