//! Running alerts: the checks the scheduler claims (and "check now"), which record each recipient's
//! breaches once per group and period, and the sender of the digests.
//!
//! A check, in one transaction: the due alerts are locked (`SKIP LOCKED`: servers share the work) and
//! their next check computed — a check is claimed exactly once; every recipient is evaluated under
//! their own permissions and their breaches inserted `ON CONFLICT DO NOTHING` (the de-duplication).
//! The sender then locks the pending breaches, mails each recipient one digest of all of theirs, and
//! marks them sent — or failed with the error, retried after 30 s, 1, 2, 4 min, then given up. A crash
//! between sending and marking can send one digest twice; nothing is ever skipped.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use orbas_oltp::auth::Principal;
use orbas_oltp::db::Db;
use orbas_oltp::model::{AlertId, TenantId, uses_team_scope};
use orbas_oltp::repo::alerts::{self, AlertRow, NewEvent, PendingEvent};
use orbas_oltp::repo::{identity, reports};
use serde::Serialize;
use sqlx::PgConnection;
use tracing::{instrument, warn};

use super::evaluate::evaluate;
use super::{Goal, StoredAlert, Window, digest};
use crate::catalog;
use crate::engine::Engine;
use crate::error::{Error, FieldError, Result};
use crate::kpi::{KpiDefinition, Status};
use crate::report::{Mailer, Schedule};
use crate::viewer::Viewer;

/// A breach found by a check.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Found {
    /// The group's dimension value (absent: the KPI's total).
    pub group: Option<String>,
    pub value: f64,
    /// The goal (factor applied).
    pub goal: f64,
    /// First found for this recipient, group and period (it will be mailed); otherwise already known.
    pub new: bool,
}

/// What a check found for one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RecipientCheck {
    pub email: String,
    /// Groups compared (with both a value and a goal) as this recipient may see them.
    pub compared: usize,
    pub breaches: Vec<Found>,
    /// Why this recipient could not be checked (no longer an active user, a query the lake refused).
    pub error: Option<String>,
}

/// What a check of one alert found.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CheckReport {
    pub alert_id: AlertId,
    pub window: Window,
    pub recipients: Vec<RecipientCheck>,
}

impl CheckReport {
    /// Breaches recorded for the first time.
    pub fn new_breaches(&self) -> u64 {
        self.recipients.iter().flat_map(|r| &r.breaches).filter(|b| b.new).count() as u64
    }
}

/// An approved KPI by key (a draft or missing KPI is a field problem of `field`).
async fn approved(conn: &mut PgConnection, key: &str, field: &str) -> Result<KpiDefinition> {
    let k = catalog::get(conn, key).await?.definition;
    if k.status != Status::Approved {
        return Err(Error::Invalid(vec![FieldError {
            field: field.into(),
            message: format!("the KPI {key} awaits an admin's approval"),
        }]));
    }
    Ok(k)
}

/// The principal of a recipient: their role, their team — only while they are an active user.
async fn recipient(conn: &mut PgConnection, tenant: TenantId, email: &str) -> Result<Option<Principal>> {
    let users = reports::recipients(conn, &[email.to_owned()]).await?;
    let Some(user) = users.into_iter().find(|u| u.active && u.email.eq_ignore_ascii_case(email)) else {
        return Ok(None);
    };
    let mut principal = Principal::interactive(tenant, user.id, user.role);
    if uses_team_scope(user.role) {
        principal.reports = identity::reports_of(conn, user.id).await?;
    }
    Ok(Some(principal))
}

/// Checks `row` as of `now` for every recipient and records their new breaches (the caller commits).
#[instrument(skip_all, fields(tenant_id = %tenant, alert = %row.id))]
pub async fn check(
    engine: &Engine,
    conn: &mut PgConnection,
    tenant: TenantId,
    row: &AlertRow,
    now: DateTime<Utc>,
) -> Result<CheckReport> {
    let alert = StoredAlert::from_row(row)?;
    let spec = &alert.spec;
    let kpi = approved(conn, &spec.kpi, "kpi").await?;
    let goal_kpi = match &spec.goal {
        Goal::Kpi { kpi } => Some(approved(conn, kpi, "goal.kpi").await?),
        _ => None,
    };
    let tz: chrono_tz::Tz = spec.timezone.parse().unwrap_or(chrono_tz::UTC);
    let today = now.with_timezone(&tz).date_naive();
    let fiscal = alerts::fiscal_year_start_month(conn, tenant).await?;
    let window = Window::of(spec.period, spec.trailing_days, today, u32::try_from(fiscal).unwrap_or(1));
    let mut out = Vec::with_capacity(spec.recipients.len());
    for email in &spec.recipients {
        let mut r = RecipientCheck { email: email.clone(), compared: 0, breaches: Vec::new(), error: None };
        let Some(principal) = recipient(conn, tenant, email).await? else {
            r.error = Some(format!("{email} is no longer an active user of the tenant"));
            out.push(r);
            continue;
        };
        let user = principal.user;
        let viewer = Viewer::new(principal);
        match evaluate(engine, &viewer, spec, &kpi, goal_kpi.as_ref(), window).await {
            Ok(e) => {
                let events: Vec<NewEvent> = e
                    .breaches
                    .iter()
                    .map(|b| NewEvent {
                        group_key: b.group.clone().unwrap_or_default(),
                        period: window.key(),
                        value: b.value,
                        goal: b.goal,
                    })
                    .collect();
                let added =
                    alerts::add_events(conn, tenant, row.id, (Some(user), email.as_str()), &events, now).await?;
                r.compared = e.compared;
                r.breaches = e
                    .breaches
                    .into_iter()
                    .zip(added)
                    .map(|(b, new)| Found { group: b.group, value: b.value, goal: b.goal, new })
                    .collect();
            }
            Err(e @ (Error::Db(_) | Error::Corrupt(_) | Error::Render(_))) => return Err(e),
            Err(e) => {
                warn!(error = %orbas_oltp::Chain(&e), "an alert could not be checked for a recipient");
                r.error = Some(e.to_string());
            }
        }
        out.push(r);
    }
    Ok(CheckReport { alert_id: row.id, window, recipients: out })
}

/// Claims the tenant's due alerts, checks them, records their breaches and schedules the next checks;
/// returns how many breaches were recorded for the first time.
pub async fn check_due(engine: &Engine, db: &Db, tenant: TenantId, now: DateTime<Utc>) -> Result<u64> {
    let mut tx = db.begin(tenant).await?;
    let due = alerts::claim_due(tx.conn(), now, 50).await?;
    let mut recorded = 0;
    for row in &due {
        let next = match Schedule::parse(&row.cron, &row.timezone) {
            Ok(s) => s.next_after(now.max(row.next_check_at.unwrap_or(now))),
            Err(problems) => {
                warn!(alert = %row.id, ?problems, "an alert's schedule no longer parses; it is paused");
                None
            }
        };
        match check(engine, tx.conn(), tenant, row, now).await {
            Ok(report) => recorded += report.new_breaches(),
            Err(e @ Error::Db(_)) => return Err(e),
            Err(e) => warn!(alert = %row.id, error = %orbas_oltp::Chain(&e), "an alert could not be checked"),
        }
        alerts::set_schedule(tx.conn(), row.id, Some(now), next).await?;
    }
    tx.commit().await?;
    Ok(recorded)
}

/// What a sending pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Digests mailed.
    pub digests: u64,
    /// Digests given up after the last attempt.
    pub failed: u64,
}

/// Mails every recipient with pending breaches one digest of them; failures are retried with backoff
/// until `max_attempts`.
pub async fn send_pending(
    mailer: &Mailer,
    db: &Db,
    tenant: TenantId,
    now: DateTime<Utc>,
    max_attempts: i32,
) -> Result<Sent> {
    const BATCH: i64 = 500;
    let mut done = Sent::default();
    loop {
        let mut tx = db.begin(tenant).await?;
        let batch = alerts::claim_pending(tx.conn(), now, BATCH).await?;
        let full = batch.len() as i64 == BATCH;
        let mut by_email: BTreeMap<String, Vec<PendingEvent>> = BTreeMap::new();
        for e in batch {
            by_email.entry(e.email.clone()).or_default().push(e);
        }
        for (email, events) in by_email {
            let ids: Vec<_> = events.iter().map(|e| e.id).collect();
            let names = person_names(tx.conn(), &events).await?;
            let rendered = digest::render(&events, &names);
            match mailer.send(&email, &rendered).await {
                Ok(()) => {
                    alerts::mark_sent(tx.conn(), &ids, Utc::now()).await?;
                    done.digests += 1;
                }
                Err(why) => {
                    let attempt = events.iter().map(|e| e.attempts).max().unwrap_or(0) + 1;
                    let retry = crate::scheduler::retry_at(now, attempt, max_attempts);
                    warn!(to = %email, attempt, error = %why, "an alert digest was not sent");
                    alerts::mark_failed(tx.conn(), &ids, &why.to_string(), retry).await?;
                    done.failed += u64::from(retry.is_none());
                }
            }
        }
        tx.commit().await?;
        if !full {
            return Ok(done);
        }
    }
}

/// Full names of the people among the groups (group keys that are user ids), for the digest.
async fn person_names(conn: &mut PgConnection, events: &[PendingEvent]) -> Result<BTreeMap<String, String>> {
    let ids: Vec<uuid::Uuid> = events.iter().filter_map(|e| e.group_key.parse().ok()).collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(identity::names_of(conn, &ids).await?.into_iter().map(|(id, name)| (id.to_string(), name)).collect())
}
