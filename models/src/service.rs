//! The intelligence stage as a long-running service: what `orbas demo`, `orbas serve` (given a lake)
//! and `orbas models run` keep going in the background. This module owns the schedule, not the work:
//!
//! | job | when | what |
//! |---|---|---|
//! | retraining | at start, then every [`Schedule::retrain_every`] | [`ops::retrain`] of every scoring model of every tenant (promotion only when better on the held-out time split), predictions written; then the next-best-action [`acceptance`] model from the reps' feedback |
//! | sentiment | whenever the lake moved on (checked every [`Schedule::sentiment_poll`]) | new or edited tickets, ticket messages and interactions scored ([`sentiment::score_subjects`], incremental) |
//! | decisions | whenever the lake moved on (checked every [`Schedule::poll`]) | next-best actions refreshed ([`nba::refresh`]) for the tenants whose rows moved ([`Lake::moved`]), and for every tenant each [`Schedule::full_decisions_every`] |
//! | forecasts | at start, then every [`Schedule::forecast_every`] | today's forecast snapshots ([`forecast::run`]) and their accuracy so far |
//!
//! Each job is its own task, so a long retraining never holds up the decisions a logged call should
//! change. Tenants are listed anew every round (a tenant created while the service runs is picked
//! up). A failing job is logged with its tenant and its whole cause chain, and never stops the
//! others. A lake-driven job retries at its next check; a scheduled round that failed runs again 15 s
//! later, then after twice as long each time it fails again, up to a tenth of its period — a database
//! busy for a moment at start does not leave a day without forecasts. One tenant's turn that runs
//! past [`Schedule::tenant_deadline`] is abandoned and counts as failed. Everything a job writes goes
//! through `orbas-oltp` into Postgres and so through CDC back into the lake — which is what moves the
//! lake on for the jobs that wait for it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbas_oltp::Chain;
use orbas_oltp::db::Db;
use orbas_oltp::model::{SentimentSubject, TenantId};
use orbas_oltp::repo::identity;
use orbas_warehouse::sql::{Lake, Versions};
use sqlx::PgPool;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::features::Entity;
use crate::sentiment::SentimentModel;
use crate::{acceptance, forecast, nba, ops, sentiment};

/// When each job runs, and with what settings.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub retrain_every: Duration,
    pub forecast_every: Duration,
    /// How often the decisions job checks whether the lake moved on.
    pub poll: Duration,
    /// The decisions job refreshes only the tenants whose lake rows moved, and every tenant this often.
    pub full_decisions_every: Duration,
    /// How often the sentiment job checks whether the lake moved on.
    pub sentiment_poll: Duration,
    /// The sentence encoder's directory; without one sentiment is not scored (and the service says so).
    pub model_dir: Option<PathBuf>,
    /// Which customer text gets a tone.
    pub sentiment_subjects: Vec<SentimentSubject>,
    /// Generator texts of each kind in the evaluation stored with a registered sentiment version.
    pub sentiment_eval_rows: usize,
    pub nba: nba::Settings,
    pub forecast: forecast::Settings,
    /// How long one tenant's turn in a round (one model's training, one forecast, one refresh, one
    /// kind of text) may take. Past it the turn is abandoned — its transaction rolls back — and counts
    /// as failed, retried like any failure: a query that never returns costs one turn, not every
    /// later round of the job.
    pub tenant_deadline: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            retrain_every: Duration::from_secs(6 * 3600),
            forecast_every: Duration::from_secs(24 * 3600),
            poll: Duration::from_secs(2),
            full_decisions_every: Duration::from_secs(600),
            sentiment_poll: Duration::from_secs(10),
            model_dir: crate::embed::model_dir(None),
            sentiment_subjects: SentimentSubject::ALL.to_vec(),
            sentiment_eval_rows: 600,
            nba: nba::Settings::default(),
            forecast: forecast::Settings::default(),
            tenant_deadline: Duration::from_secs(3600),
        }
    }
}

/// Where the decisions job is: the lake versions its last round handled, the tenants whose refresh
/// failed (retried next round), and when every tenant was last refreshed.
#[derive(Debug, Default)]
pub struct Decisions {
    seen: Versions,
    failed: BTreeSet<TenantId>,
    full_at: Option<Instant>,
}

/// What the service reads and writes: the admin pool lists tenants (the app role sees one tenant at a
/// time), the app database takes every write, the lake is read.
#[derive(Debug, Clone)]
pub struct Service {
    pub admin: PgPool,
    pub db: Db,
    pub lake: Arc<Lake>,
}

impl Service {
    /// Starts every job; each runs until `stop` turns true (or the returned [`Jobs`] is dropped).
    pub fn spawn(self, schedule: Schedule, stop: watch::Receiver<bool>) -> Jobs {
        let me = Arc::new(self);
        let schedule = Arc::new(schedule);
        let mut jobs = Vec::new();
        {
            let (me, s) = (Arc::clone(&me), Arc::clone(&schedule));
            let deadline = s.tenant_deadline;
            jobs.push(tokio::spawn(every(s.retrain_every, stop.clone(), move || {
                let me = Arc::clone(&me);
                async move { me.retrain(deadline).await }
            })));
        }
        {
            let (me, s) = (Arc::clone(&me), Arc::clone(&schedule));
            let (settings, deadline) = (s.forecast.clone(), s.tenant_deadline);
            jobs.push(tokio::spawn(every(s.forecast_every, stop.clone(), move || {
                let (me, settings) = (Arc::clone(&me), settings.clone());
                async move { me.forecast(&settings, deadline).await }
            })));
        }
        {
            let (me, s) = (Arc::clone(&me), Arc::clone(&schedule));
            let (settings, full_every, deadline) = (s.nba.clone(), s.full_decisions_every, s.tenant_deadline);
            let state = Arc::new(Mutex::new(Decisions::default()));
            jobs.push(tokio::spawn(on_lake_change(Arc::clone(&me.lake), s.poll, stop.clone(), move || {
                let (me, settings, state) = (Arc::clone(&me), settings.clone(), Arc::clone(&state));
                async move { me.decide(&state, &settings, full_every, deadline).await }
            })));
        }
        match schedule.model_dir.clone() {
            Some(dir) => {
                let (me, s) = (Arc::clone(&me), Arc::clone(&schedule));
                let stop = stop.clone();
                jobs.push(tokio::spawn(async move {
                    let model = match train_sentiment(dir.clone(), s.sentiment_eval_rows).await {
                        Ok(m) => Arc::new(m),
                        Err(e) => {
                            return warn!(dir = %dir.display(), error = %Chain(&e), "sentiment model not trained; ticket tone is not scored");
                        }
                    };
                    let (subjects, deadline) = (s.sentiment_subjects.clone(), s.tenant_deadline);
                    on_lake_change(Arc::clone(&me.lake), s.sentiment_poll, stop, move || {
                        let (me, model, subjects) = (Arc::clone(&me), Arc::clone(&model), subjects.clone());
                        async move { me.score_sentiment(&model, &subjects, deadline).await }
                    })
                    .await
                }));
            }
            None => warn!(
                "no sentence encoder (set ORBAS_MODELS; ./scripts/setup.sh installs it): ticket tone is not scored"
            ),
        }
        Jobs(jobs)
    }

    async fn tenants(&self) -> Result<Vec<TenantId>> {
        Ok(identity::active_tenants(&self.admin).await?)
    }

    /// One round of retraining; true when every model of every tenant trained.
    pub async fn retrain(&self, deadline: Duration) -> Result<bool> {
        let round = Round::start("retrain");
        let mut ok = true;
        for tenant in self.tenants().await? {
            for entity in Entity::ALL {
                match bounded(deadline, "training", ops::retrain(&self.db, &self.lake, tenant, entity)).await {
                    Ok(r) => info!(
                        %tenant, model = entity.as_str(), version = r.version, kind = r.kind.as_str(),
                        family = r.family.as_str(), promoted = r.promoted, held_out_auc = r.candidate.auc, predictions = r.predictions, "model retrained"
                    ),
                    Err(e) => {
                        ok = false;
                        warn!(%tenant, model = entity.as_str(), error = %Chain(&e), "model training failed");
                    }
                }
            }
            // The acceptance model of next-best actions, from the feedback reps gave (it logs what serves).
            if let Err(e) = bounded(deadline, "training", acceptance::retrain(&self.db, &self.lake, tenant)).await {
                ok = false;
                warn!(%tenant, model = acceptance::MODEL_KEY, error = %Chain(&e), "model training failed");
            }
        }
        Ok(round.end(ok))
    }

    /// One round of forecast snapshots; true when every tenant's were written.
    pub async fn forecast(&self, settings: &forecast::Settings, deadline: Duration) -> Result<bool> {
        let round = Round::start("forecast");
        let mut ok = true;
        for tenant in self.tenants().await? {
            match bounded(deadline, "forecast", forecast::run(&self.db, &self.lake, tenant, settings)).await {
                Ok(r) => info!(
                    %tenant, day = %r.day, series = r.forecasts.len(), inserted = r.written.inserted, "forecast snapshots written"
                ),
                Err(e) => {
                    ok = false;
                    warn!(%tenant, error = %Chain(&e), "forecasting failed");
                }
            }
        }
        Ok(round.end(ok))
    }

    /// One round of next-best actions: refreshes the tenants whose lake rows moved since the last
    /// round ([`Lake::moved`]), those whose refresh failed last time, and — every `full_every` —
    /// every tenant (what depends on the clock alone: expiries, quiet periods ending). True when all
    /// succeeded.
    pub async fn decide(
        &self,
        state: &Mutex<Decisions>,
        settings: &nba::Settings,
        full_every: Duration,
        deadline: Duration,
    ) -> Result<bool> {
        let round = Round::start("decide");
        let mut state = state.lock().await;
        let (versions, moved) = self.lake.moved(&state.seen, &nba::WRITES).await?;
        let full = state.full_at.is_none_or(|t| t.elapsed() >= full_every);
        let tenants = self.tenants().await?;
        let due: Vec<TenantId> = tenants
            .iter()
            .copied()
            .filter(|t| full || state.failed.contains(t) || moved.includes(&t.to_string()))
            .collect();
        let mut ok = true;
        for &tenant in &due {
            match bounded(deadline, "refresh", nba::refresh(&self.db, &self.lake, tenant, settings)).await {
                Ok(_) => {
                    state.failed.remove(&tenant);
                }
                Err(e) => {
                    ok = false;
                    state.failed.insert(tenant);
                    warn!(%tenant, error = %Chain(&e), "refreshing next-best actions failed");
                }
            }
        }
        // What moved up to `versions` is handled (or remembered as failed): the next round starts there.
        state.seen = versions;
        if full && ok {
            state.full_at = Some(Instant::now());
        }
        debug!(refreshed = due.len(), unmoved = tenants.len() - due.len(), full, "decisions round");
        Ok(round.end(ok))
    }

    /// Scores whatever customer text is new or edited since the last round; true when all succeeded.
    pub async fn score_sentiment(
        &self,
        model: &SentimentModel,
        subjects: &[SentimentSubject],
        deadline: Duration,
    ) -> Result<bool> {
        let round = Round::start("sentiment");
        let mut ok = true;
        for tenant in self.tenants().await? {
            for &subject in subjects {
                let turn = sentiment::score_subjects(&self.db, &self.lake, tenant, model, subject);
                match bounded(deadline, "sentiment scoring", turn).await {
                    Ok(r) if r.scored > 0 => info!(
                        %tenant, subject = subject.as_str(), scored = r.scored, unchanged = r.unchanged,
                        negative = r.labels[0], "sentiment scored"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        ok = false;
                        warn!(%tenant, subject = subject.as_str(), error = %Chain(&e), "sentiment scoring failed");
                    }
                }
            }
        }
        Ok(round.end(ok))
    }
}

/// Gauge (label `job`: retrain, forecast, decide, sentiment): when the job last finished a round in
/// which every tenant succeeded (Unix seconds) — `time() - it` is the age of the models, forecasts,
/// decisions or sentiment scores.
pub const METRIC_LAST_SUCCESS: &str = "orbas_models_last_success_timestamp_seconds";
/// Counter (label `job`): rounds in which some tenant failed.
pub const METRIC_FAILED_ROUNDS: &str = "orbas_models_failed_rounds_total";
/// Histogram (label `job`): how long a round took.
pub const METRIC_ROUND_SECONDS: &str = "orbas_models_round_seconds";

/// One round of a job, timed and recorded in the job's metrics when it ends.
struct Round {
    job: &'static str,
    started: std::time::Instant,
}

impl Round {
    fn start(job: &'static str) -> Self {
        Round { job, started: std::time::Instant::now() }
    }

    fn end(self, ok: bool) -> bool {
        metrics::histogram!(METRIC_ROUND_SECONDS, "job" => self.job).record(self.started.elapsed().as_secs_f64());
        if ok {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            metrics::gauge!(METRIC_LAST_SUCCESS, "job" => self.job).set(now.as_secs_f64());
        } else {
            metrics::counter!(METRIC_FAILED_ROUNDS, "job" => self.job).increment(1);
        }
        ok
    }
}

/// The running jobs of a [`Service`]; dropping it aborts them.
#[derive(Debug)]
pub struct Jobs(Vec<JoinHandle<()>>);

impl Jobs {
    /// Waits until every job has stopped.
    pub async fn join(mut self) {
        for job in std::mem::take(&mut self.0) {
            if let Err(e) = job.await
                && e.is_panic()
            {
                warn!(error = %e, "an intelligence job panicked");
            }
        }
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        for job in &self.0 {
            job.abort();
        }
    }
}

/// Trains the sentiment classifier on the committed set (CPU-bound: on a blocking thread).
pub async fn train_sentiment(dir: PathBuf, eval_rows: usize) -> Result<SentimentModel> {
    tokio::task::spawn_blocking(move || {
        let embedder = Arc::new(Embedder::load(&dir)?);
        SentimentModel::train(embedder, eval_rows).map(|(m, _)| m)
    })
    .await
    .map_err(|e| Error::Invalid(format!("the sentiment training task failed: {e}")))?
}

/// `turn`, abandoned (dropped, so its transaction rolls back) when it has run for `deadline`. Work it
/// moved to a blocking thread finishes there, unseen.
async fn bounded<T>(deadline: Duration, job: &'static str, turn: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(deadline, turn).await.map_err(|_| Error::Overran { job, after: deadline })?
}

/// Runs `job` now and then every `period` until `stop`. A failed round is retried sooner
/// ([`retry_after`]), not a whole period later.
async fn every<F, Fut>(period: Duration, mut stop: watch::Receiver<bool>, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let mut failures = 0u32;
    loop {
        let ok = match job().await {
            Ok(ok) => ok,
            Err(e) => {
                warn!(error = %Chain(&e), "scheduled job failed");
                false
            }
        };
        failures = if ok { 0 } else { failures.saturating_add(1) };
        let wait = if ok { period } else { retry_after(period, failures) };
        if !ok {
            info!(failures, retry_in_s = wait.as_secs(), "a scheduled round failed; retrying");
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The wait after the `failures`-th failed round in a row: 15 s after the first (a pool timeout, a
/// restarting database), doubling with each further failure, at most a tenth of the period (but a
/// minute may always be waited) and never more than the period itself.
fn retry_after(period: Duration, failures: u32) -> Duration {
    let cap = (period / 10).max(Duration::from_secs(60)).min(period);
    let doublings = failures.saturating_sub(1).min(20);
    Duration::from_secs(15).saturating_mul(1 << doublings).min(cap)
}

/// Runs `job` whenever the lake's generation differs from the one the last successful round saw
/// (checked every `poll`) until `stop`. A failed round is retried at the next check.
pub async fn on_lake_change<F, Fut>(lake: Arc<Lake>, poll: Duration, mut stop: watch::Receiver<bool>, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let mut seen = None;
    loop {
        match lake.snapshot().await {
            Ok(s) if Some(s.generation) != seen => match job().await {
                Ok(true) => seen = Some(s.generation),
                Ok(false) => {}
                Err(e) => warn!(error = %Chain(&e), "lake-driven job failed"),
            },
            Ok(_) => {}
            Err(e) => warn!(error = %Chain(&e), "reading the lake's generation"),
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_that_never_ends_is_abandoned_as_a_failure() {
        let hung = bounded(Duration::from_millis(20), "forecast", std::future::pending::<Result<()>>()).await;
        assert!(matches!(hung, Err(Error::Overran { job: "forecast", .. })), "{hung:?}");
        let quick = bounded(Duration::from_secs(60), "forecast", async { Ok(7) }).await;
        assert_eq!(quick.ok(), Some(7));
        let refused = bounded(Duration::from_secs(60), "forecast", async { Err::<(), _>(Error::Invalid("no".into())) });
        assert!(matches!(refused.await, Err(Error::Invalid(_))), "its own error, not a deadline's");
    }

    #[test]
    fn a_failed_round_is_retried_soon_then_less_often_but_never_in_a_busy_loop() {
        let (s, day) = (Duration::from_secs, Duration::from_secs(24 * 3600));
        let waits: Vec<_> = (1..=12).map(|n| retry_after(day, n).as_secs()).collect();
        assert_eq!(
            waits,
            [15, 30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 8640, 8640],
            "doubling up to a tenth of a day"
        );
        assert_eq!(retry_after(day, u32::MAX), s(8640), "no overflow however long it fails");
        assert_eq!(retry_after(s(6 * 3600), 30), s(36 * 60));
        assert_eq!(retry_after(s(120), 1), s(15));
        assert_eq!(retry_after(s(120), 5), s(60), "a minute may always be waited");
        assert_eq!(retry_after(s(10), 1), s(10), "never longer than the period");
    }
}
