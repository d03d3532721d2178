//! The report sender: claims due report runs, turns each into one delivery per recipient, renders every
//! recipient's copy under that recipient's permissions and mails it, retrying failures with backoff.
//!
//! Every tick, per active tenant: (1) in one transaction, the due reports are locked (`SKIP LOCKED`:
//! servers share the work), a delivery row is added per recipient for the run's scheduled time, and the
//! report's next run is computed from its cron schedule — a run is claimed exactly once; (2) pending
//! deliveries are locked a few at a time, rendered, sent, and marked sent — or failed with the error,
//! retried after 30 s, 1, 2, 4 min, then given up. A crash between sending and marking can send one copy
//! twice (the mail server already has it); nothing is ever skipped. Then (3) the tenant's due alerts
//! are checked and their new breaches mailed as digests ([`crate::alerts`]). With a [`Renderer`], PDFs
//! are printed and HTML mails carry their charts as images.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orbas_oltp::auth::Principal;
use orbas_oltp::db::Db;
use orbas_oltp::model::{TenantId, uses_team_scope};
use orbas_oltp::repo::{identity, reports};
use tracing::{info, warn};

use crate::alerts;
use crate::board::{self, DashboardFilters, ViewFilters};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::render::Renderer;
use crate::report::{self, Format, Mailer, Schedule};
use crate::store;
use crate::viewer::Viewer;

/// How the sender runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often due runs and pending deliveries are looked for.
    pub tick: Duration,
    /// Attempts before a delivery is given up.
    pub max_attempts: i32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig { tick: Duration::from_secs(15), max_attempts: 5 }
    }
}

/// When a mail that failed on its `attempt`-th try is tried again — 30 s, 1, 2, 4 min … after `now` —
/// or `None` once `max_attempts` are spent (report copies and alert digests alike).
pub(crate) fn retry_at(now: DateTime<Utc>, attempt: i32, max_attempts: i32) -> Option<DateTime<Utc>> {
    (attempt < max_attempts).then(|| now + chrono::Duration::seconds(30 * (1_i64 << (attempt - 1).clamp(0, 10))))
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    pub runs: u64,
    pub sent: u64,
    pub failed: u64,
    /// Alert breaches recorded for the first time (see [`crate::alerts`]).
    pub alerts: u64,
    /// Alert digests mailed.
    pub digests: u64,
}

/// The sender.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// Lists the active tenants (the tenants table is not readable without a tenant in scope).
    admin: sqlx::PgPool,
    db: Db,
    engine: Arc<Engine>,
    mailer: Arc<Mailer>,
    /// Prints PDFs and the charts of HTML mails (without it: no PDF, tables only).
    renderer: Option<Arc<Renderer>>,
    cfg: SchedulerConfig,
}

impl Scheduler {
    pub fn new(admin: sqlx::PgPool, db: Db, engine: Arc<Engine>, mailer: Arc<Mailer>, cfg: SchedulerConfig) -> Self {
        Scheduler { admin, db, engine, mailer, renderer: None, cfg }
    }

    /// The sender with headless Chromium to print PDFs and draw the charts of HTML mails.
    pub fn with_renderer(mut self, renderer: Option<Arc<Renderer>>) -> Self {
        self.renderer = renderer;
        self
    }

    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        info!(tick = ?self.cfg.tick, "report sender running");
        loop {
            if let Err(e) = self.tick(Utc::now()).await {
                warn!(error = %orbas_oltp::Chain(&e), "report sender tick failed; retrying next tick");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.tick) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One pass over every active tenant.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Tick> {
        let mut total = Tick::default();
        for tenant in identity::active_tenants(&self.admin).await? {
            let t = self.tick_tenant(tenant, now).await?;
            total.runs += t.runs;
            total.sent += t.sent;
            total.failed += t.failed;
            total.alerts += t.alerts;
            total.digests += t.digests;
        }
        Ok(total)
    }

    async fn tick_tenant(&self, tenant: TenantId, now: DateTime<Utc>) -> Result<Tick> {
        let mut done = self.deliver_reports(tenant, now).await?;
        done.alerts = alerts::check_due(&self.engine, &self.db, tenant, now).await?;
        let sent = alerts::send_pending(&self.mailer, &self.db, tenant, now, self.cfg.max_attempts).await?;
        done.digests = sent.digests;
        done.failed += sent.failed;
        Ok(done)
    }

    async fn deliver_reports(&self, tenant: TenantId, now: DateTime<Utc>) -> Result<Tick> {
        let mut done = Tick { runs: self.claim_runs(tenant, now).await?, ..Tick::default() };
        loop {
            let mut tx = self.db.begin(tenant).await?;
            let batch = reports::claim_deliveries(tx.conn(), now, 8).await?;
            if batch.is_empty() {
                tx.commit().await?;
                return Ok(done);
            }
            for d in batch {
                match self.deliver(tx.conn(), tenant, &d, now).await {
                    Ok(()) => {
                        reports::mark_sent(tx.conn(), d.id, Utc::now()).await?;
                        done.sent += 1;
                    }
                    Err(why) => {
                        let attempt = d.attempts + 1;
                        let retry = retry_at(now, attempt, self.cfg.max_attempts);
                        warn!(report = %d.report_id, to = %d.email, attempt, error = %why, "a report copy was not sent");
                        reports::mark_failed(tx.conn(), d.id, &why, retry).await?;
                        done.failed += u64::from(retry.is_none());
                    }
                }
            }
            tx.commit().await?;
        }
    }

    /// Claims the tenant's due runs: a delivery per recipient, the next run scheduled.
    async fn claim_runs(&self, tenant: TenantId, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.db.begin(tenant).await?;
        let due = reports::claim_due(tx.conn(), now, 100).await?;
        let mut runs = 0;
        for r in &due {
            let scheduled_for = r.next_run_at.unwrap_or(now);
            let next = match Schedule::parse(&r.cron, &r.timezone) {
                Ok(s) => s.next_after(now.max(scheduled_for)),
                Err(problems) => {
                    warn!(report = %r.id, ?problems, "a report's schedule no longer parses; it is paused");
                    None
                }
            };
            let users = reports::recipients(tx.conn(), &r.recipients).await?;
            let to: Vec<_> = r
                .recipients
                .iter()
                .map(|email| {
                    let user = users.iter().find(|u| u.email.eq_ignore_ascii_case(email)).map(|u| u.id);
                    (user, email.clone())
                })
                .collect();
            reports::add_deliveries(tx.conn(), tenant, r.id, &to, scheduled_for).await?;
            reports::set_schedule(tx.conn(), r.id, Some(now), next).await?;
            runs += 1;
        }
        tx.commit().await?;
        Ok(runs)
    }

    /// Renders and sends one copy; the error text is what the delivery records.
    async fn deliver(
        &self,
        conn: &mut sqlx::PgConnection,
        tenant: TenantId,
        d: &reports::DeliveryRow,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), String> {
        let rendered = self.render_copy(conn, tenant, d, now).await.map_err(|e| e.to_string())?;
        self.mailer.send(&d.email, &rendered).await.map_err(|e| e.to_string())
    }

    async fn render_copy(
        &self,
        conn: &mut sqlx::PgConnection,
        tenant: TenantId,
        d: &reports::DeliveryRow,
        now: DateTime<Utc>,
    ) -> Result<report::Rendered> {
        let r = reports::get(conn, d.report_id, false).await?;
        // The copy is the recipient's: their role, their team, only while they are an active user.
        let user = reports::recipients(conn, std::slice::from_ref(&d.email))
            .await?
            .into_iter()
            .find(|u| Some(u.id) == d.recipient_id && u.active)
            .ok_or_else(|| Error::Corrupt(format!("{} is no longer an active user of the tenant", d.email)))?;
        let mut principal = Principal::interactive(tenant, user.id, user.role);
        if uses_team_scope(user.role) {
            principal.reports = identity::reports_of(conn, user.id).await?;
        }
        let dashboard = store::load(conn, r.dashboard_id).await?;
        let kpis = store::kpis_of(conn, &dashboard).await?;
        let format = Format::parse(&r.format).ok_or_else(|| Error::Corrupt(format!("report format {:?}", r.format)))?;
        let defaults: DashboardFilters = match serde_json::from_value::<DashboardFilters>(r.filters.clone()) {
            Ok(f) if f != DashboardFilters::default() => f,
            _ => dashboard.filters.clone(),
        };
        let filters = board::effective(&defaults, &ViewFilters::default(), now.date_naive());
        let currency = identity::corporate_currency(conn, tenant).await?;
        let viewer = Viewer::new(principal);
        let job = report::Job {
            report_name: &r.name,
            dashboard: &dashboard,
            kpis: &kpis,
            filters: &filters,
            format,
            currency: &currency,
            at: now,
        };
        report::render(&self.engine, &viewer, job, self.renderer.as_deref()).await
    }
}
