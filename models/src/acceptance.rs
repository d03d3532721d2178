//! How likely a rep is to accept a next-best action: the factor [`crate::nba::rank`] weighs the value
//! at stake by, learned from the feedback reps gave and retrained with the scorers.
//!
//! A **verdict** is the latest accept or dismiss a rep gave on an action (snoozes decide nothing); a
//! dismissal saying the data was stale or wrong rather than the advice (reason code `already_handled`
//! or `not_mine`, [`judges`]) is none.
//! From the verdicts the module counts acceptance per rep and action type, per rep, per action type
//! and overall ([`Feedback`]). Two ways to turn them into a probability:
//!
//! - **the rate** (serves from the first verdict): the rep's rate of this action type, shrunk towards
//!   the tenant's rate of it — a prior worth [`RATE_PRIOR`] verdicts, the tenant's rate
//!   Laplace-smoothed. A rep with few verdicts on one action type gets the tenant's.
//! - **the learned model** ([`Acceptance`]): a ridge logistic regression over three smoothed rates
//!   as log-odds — the rep's for this action type, the rep's over every action type, the tenant's
//!   for this action type. It learns how far to trust each, so a rep's habits carry over from the
//!   action types they answered to one they rarely saw, where the rate falls back to the tenant.
//!
//! **Retraining** ([`retrain`], with the scorers): the verdicts are split in time — the latest
//! quarter held out ([`trial`]). Every verdict, trained on or held out, is described by the rates of
//! the verdicts *before* it — what the live ranking had when the action was answered; never its own
//! answer (that leaks the label) nor the rates with just its own answer left out (that biases a rate
//! against the row's label, a pattern a model would learn and misuse when serving). A candidate is stored as a version of the `nba_acceptance` model and
//! put in service only if its held-out log-loss beats the rate's by more than one standard error
//! ([`Gain`]) and the version in service's on the same verdicts; when the rate beats the version in
//! service, that version is retired and the rate serves again. Too little feedback (fewer than
//! [`MIN_TRAIN`] training or [`MIN_TEST`] held-out verdicts): nothing is trained, the rate serves.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::prelude::SessionContext;
use orbas_oltp::db::Db;
use orbas_oltp::model::{DismissReason, RecommendationAction, TenantId, UserId};
use orbas_oltp::repo::intelligence;
use orbas_warehouse::sql::{Lake, Limits};
use serde_json::json;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::dataset::texts;
use crate::error::Result;
use crate::logistic::{Logistic, Prior};
use crate::metrics;
use crate::scoring::Gain;

/// Prior strength (in verdicts) of the tenant's rate for one rep.
pub const RATE_PRIOR: f64 = 5.0;
/// Fewest training verdicts a model is learned from.
pub const MIN_TRAIN: usize = 60;
/// Fewest held-out verdicts a model is judged on.
pub const MIN_TEST: usize = 20;
/// The share of verdicts (the latest) held out.
const HELD_OUT: f64 = 0.25;
/// Ridge strength on the standardised weights.
const RIDGE: f64 = 1.0;
/// How many standard errors the learned model's mean log-loss gain over the rate must exceed: a few
/// dozen held-out verdicts are noisy, but both ways of scoring are sound and a switch costs little,
/// so one error (a one-sided 16 % chance that noise alone switches) rather than the scorers' 2.28.
/// On a seeded tenant with 17 reps the learned model's gain is 1.7–2.0 errors with 50–100 verdicts a
/// rep; a two-error rule would keep it out of service there.
const SIGNIFICANCE: f64 = 1.0;
/// Rates are kept this far from 0 and 1 before taking log-odds.
const EPS: f64 = 1e-4;

/// The registry entry: key, name, task.
pub const MODEL_KEY: &str = "nba_acceptance";
const MODEL_NAME: &str = "Next-best-action acceptance";
const MODEL_TASK: &str = "next_best_action";

/// The learned model's features, in column order (log-odds of smoothed rates).
pub const FEATURES: [&str; 3] = ["rep_action_rate", "rep_rate", "action_rate"];

/// One rep's answer to one action: the latest accept or dismiss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub user: UserId,
    pub action: RecommendationAction,
    pub accepted: bool,
    pub at: DateTime<Utc>,
}

/// Accepts and answers (accepts + dismissals).
type Tally = (u64, u64);

fn add(t: &mut Tally, accepted: bool) {
    t.0 += u64::from(accepted);
    t.1 += 1;
}

/// The verdicts counted, and the learned model in service (if any).
#[derive(Debug, Clone, Default)]
pub struct Feedback {
    by_rep_action: HashMap<(UserId, RecommendationAction), Tally>,
    by_rep: HashMap<UserId, Tally>,
    by_action: HashMap<RecommendationAction, Tally>,
    total: Tally,
    model: Option<Acceptance>,
}

impl Feedback {
    pub fn from_verdicts(verdicts: &[Verdict]) -> Feedback {
        let mut f = Feedback::default();
        for v in verdicts {
            f.add(v.user, v.action, v.accepted);
        }
        f
    }

    /// Counts one more answer.
    pub fn add(&mut self, user: UserId, action: RecommendationAction, accepted: bool) {
        add(self.by_rep_action.entry((user, action)).or_default(), accepted);
        add(self.by_rep.entry(user).or_default(), accepted);
        add(self.by_action.entry(action).or_default(), accepted);
        add(&mut self.total, accepted);
    }

    /// Answers counted.
    pub fn len(&self) -> u64 {
        self.total.1
    }

    pub fn is_empty(&self) -> bool {
        self.total.1 == 0
    }

    /// Serves `model` instead of the rate (`None`: the rate).
    pub fn serving(mut self, model: Option<Acceptance>) -> Feedback {
        self.model = model;
        self
    }

    /// Whether the learned model serves.
    pub fn learned(&self) -> bool {
        self.model.is_some()
    }

    /// The probability that `user` accepts an `action`: the learned model's where one serves, else
    /// the rate.
    pub fn acceptance(&self, user: UserId, action: RecommendationAction) -> f64 {
        match &self.model {
            Some(m) => m.probability(&self.features(user, action)),
            None => self.rate(user, action),
        }
    }

    /// The rate: the rep's rate of `action`, shrunk towards the tenant's (Laplace-smoothed).
    pub fn rate(&self, user: UserId, action: RecommendationAction) -> f64 {
        self.rates(user, action)[0]
    }

    /// The rep's rate of `action`, the rep's over all actions (each shrunk towards the tenant's) and
    /// the tenant's of `action`.
    fn rates(&self, user: UserId, action: RecommendationAction) -> [f64; 3] {
        let get = |t: Option<&Tally>| t.map_or((0.0, 0.0), |t| (t.0 as f64, t.1 as f64));
        let (acc, n) = get(self.by_action.get(&action));
        let tenant_action = (acc + 1.0) / (n + 2.0);
        let (acc, n) = get(Some(&self.total));
        let tenant = (acc + 1.0) / (n + 2.0);
        let (acc, n) = get(self.by_rep_action.get(&(user, action)));
        let rep_action = (acc + RATE_PRIOR * tenant_action) / (n + RATE_PRIOR);
        let (acc, n) = get(self.by_rep.get(&user));
        let rep = (acc + RATE_PRIOR * tenant) / (n + RATE_PRIOR);
        [rep_action, rep, tenant_action]
    }

    /// The learned model's features of an answer by `user` to `action` ([`FEATURES`]).
    fn features(&self, user: UserId, action: RecommendationAction) -> [f64; 3] {
        self.rates(user, action).map(logit)
    }
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    (p / (1.0 - p)).ln()
}

/// The learned acceptance model.
#[derive(Debug, Clone, PartialEq)]
pub struct Acceptance {
    pub logistic: Logistic,
}

impl Acceptance {
    /// Fits on `verdicts`, each described by the rates of the verdicts before it ([`ordered`]).
    pub fn fit(verdicts: &[Verdict]) -> Result<Acceptance> {
        let (rows, _) = ordered(verdicts, Feedback::default());
        let x: Vec<f64> = rows.iter().flat_map(|r| r.features).collect();
        let y: Vec<bool> = rows.iter().map(|r| r.accepted).collect();
        let logistic = Logistic::fit(&x, FEATURES.len(), &y, &Prior::ridge(FEATURES.len(), RIDGE))?;
        Ok(Acceptance { logistic })
    }

    pub fn probability(&self, row: &[f64]) -> f64 {
        self.logistic.predict(row)
    }

    /// What a version stores.
    pub fn params(&self) -> serde_json::Value {
        json!({"kind": "logistic", "features": FEATURES, "rate_prior": RATE_PRIOR, "logistic": self.logistic})
    }

    /// A stored version, if it is one of this recipe and whole.
    pub fn from_params(params: &serde_json::Value) -> Option<Acceptance> {
        if params["features"] != json!(FEATURES) || params["rate_prior"].as_f64() != Some(RATE_PRIOR) {
            return None;
        }
        let logistic: Logistic = serde_json::from_value(params["logistic"].clone()).ok()?;
        logistic.check(FEATURES.len()).then_some(Acceptance { logistic })
    }
}

/// A verdict as a row: the rates before it, as the ranking had them when the action was answered.
#[derive(Debug, Clone, Copy)]
struct Row {
    user: UserId,
    features: [f64; 3],
    rate: f64,
    accepted: bool,
}

/// The `verdicts` in time order, each described by what `history` and the verdicts before it say
/// (never by itself or a later one: a rate counting the row's own answer would leak its label, and
/// leaving just that answer out biases the rate against it); and the counts after all of them.
fn ordered(verdicts: &[Verdict], mut history: Feedback) -> (Vec<Row>, Feedback) {
    let mut sorted = verdicts.to_vec();
    sorted.sort_by_key(|v| v.at);
    let mut rows = Vec::with_capacity(sorted.len());
    for v in sorted {
        rows.push(Row {
            user: v.user,
            features: history.features(v.user, v.action),
            rate: history.rate(v.user, v.action),
            accepted: v.accepted,
        });
        history.add(v.user, v.action, v.accepted);
    }
    (rows, history)
}

/// Held-out quality of one way of scoring.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scored {
    pub log_loss: f64,
    pub auc: Option<f64>,
    pub brier: f64,
    pub calibration_error: f64,
}

impl Scored {
    fn of(probs: &[f64], labels: &[bool]) -> Scored {
        Scored {
            log_loss: metrics::log_loss(probs, labels),
            auc: metrics::auc(probs, labels),
            brier: metrics::brier(probs, labels),
            calibration_error: metrics::calibration_error(probs, labels, 10),
        }
    }
}

/// A time split of the verdicts with the rate, a candidate and (given) the version in service judged
/// on the held-out ones.
#[derive(Debug, Clone)]
pub struct Trial {
    pub verdicts: usize,
    /// Held-out verdicts: those at or after this time.
    pub split_at: Option<DateTime<Utc>>,
    pub train: usize,
    pub test: usize,
    pub test_accepted: usize,
    pub rate: Option<Scored>,
    /// `None`: too little feedback to learn from.
    pub candidate: Option<(Acceptance, Scored)>,
    /// The candidate's per-verdict log-loss gain over the rate, its standard error clustered by rep
    /// (one rep's answers are not independent).
    pub gain: Option<Gain>,
    pub incumbent: Option<Scored>,
}

impl Trial {
    /// Whether the candidate beats the rate (by more than [`SIGNIFICANCE`] standard errors) and the
    /// version in service on the held-out verdicts.
    pub fn promote(&self) -> bool {
        match (&self.candidate, &self.gain) {
            (Some((_, c)), Some(g)) => {
                g.exceeds(SIGNIFICANCE) && self.incumbent.as_ref().is_none_or(|i| c.log_loss < i.log_loss)
            }
            _ => false,
        }
    }

    /// Whether the rate beats the version in service (which then should stop serving).
    pub fn rate_beats_incumbent(&self) -> bool {
        matches!((&self.rate, &self.incumbent), (Some(r), Some(i)) if r.log_loss <= i.log_loss)
    }
}

/// Splits `verdicts` in time (the latest [`HELD_OUT`] held out), fits a candidate on the rest and
/// judges it, the rate and `incumbent` on the held-out verdicts.
pub fn trial(verdicts: &[Verdict], incumbent: Option<&Acceptance>) -> Result<Trial> {
    let mut sorted = verdicts.to_vec();
    sorted.sort_by_key(|v| v.at);
    let n = sorted.len();
    let test_n = ((n as f64) * HELD_OUT).ceil() as usize;
    let mut out = Trial {
        verdicts: n,
        split_at: None,
        train: n - test_n,
        test: test_n,
        test_accepted: 0,
        rate: None,
        candidate: None,
        gain: None,
        incumbent: None,
    };
    if test_n < MIN_TEST || n - test_n < MIN_TRAIN {
        return Ok(out);
    }
    let (train, test) = sorted.split_at(n - test_n);
    out.split_at = test.first().map(|v| v.at);
    // Held-out verdicts as the live ranking meets them: each with the rates of every verdict before it.
    let (_, history) = ordered(train, Feedback::default());
    let (rows, _) = ordered(test, history);
    let labels: Vec<bool> = rows.iter().map(|r| r.accepted).collect();
    out.test_accepted = labels.iter().filter(|a| **a).count();
    let rate: Vec<f64> = rows.iter().map(|r| r.rate).collect();
    out.rate = Some(Scored::of(&rate, &labels));
    let probs = |m: &Acceptance| rows.iter().map(|r| m.probability(&r.features)).collect::<Vec<f64>>();
    let judge = |m: &Acceptance| Scored::of(&probs(m), &labels);
    let candidate = Acceptance::fit(train)?;
    let learned = probs(&candidate);
    let reps: Vec<UserId> = rows.iter().map(|r| r.user).collect();
    out.gain = Some(Gain::of(&rate, &learned, &labels, &reps));
    out.candidate = Some((candidate, Scored::of(&learned, &labels)));
    out.incumbent = incumbent.map(judge);
    Ok(out)
}

/// Every verdict of the session's tenant: per recommendation the latest accept or dismiss, with the
/// rep and the action type of the recommendation. A dismissal that says the data was stale or wrong
/// (reason code `already_handled` or `not_mine`) is no verdict on the advice and is left out (with the
/// recommendation: an earlier answer it replaced does not stand in); one without a code counts.
pub async fn verdicts(ctx: &SessionContext) -> Result<Vec<Verdict>> {
    if !(ctx.table_exist("recommendation_feedback")? && ctx.table_exist("recommendations")?) {
        return Ok(Vec::new());
    }
    // A lake written before reason codes existed has no such column: every dismissal counts.
    let coded = ctx.table("recommendation_feedback").await?.schema().has_column_with_unqualified_name("reason_code");
    let code = if coded { "reason_code" } else { "CAST(NULL AS VARCHAR) AS reason_code" };
    let sql = format!(
        "SELECT r.user_id, r.action, f.verdict, CAST(date_part('epoch', f.created_at) AS DOUBLE), f.reason_code \
           FROM (SELECT recommendation_id, verdict, {code}, created_at, \
                        ROW_NUMBER() OVER (PARTITION BY recommendation_id ORDER BY created_at DESC, id DESC) AS n \
                   FROM recommendation_feedback WHERE verdict IN ('accept', 'dismiss')) f \
           JOIN recommendations r ON r.id = f.recommendation_id \
          WHERE f.n = 1"
    );
    let batches: Vec<RecordBatch> = ctx.sql(&sql).await?.collect().await?;
    let mut out = Vec::new();
    let (mut unknown, mut stale) = (0usize, 0usize);
    for b in &batches {
        let (user, action, verdict, code) = (texts(b, 0)?, texts(b, 1)?, texts(b, 2)?, texts(b, 4)?);
        let at = b.column(3).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            if code[i].as_deref().and_then(|c| c.parse::<DismissReason>().ok()).is_some_and(|c| !judges(c)) {
                stale += 1;
                continue;
            }
            let user = user[i].as_deref().and_then(|u| Uuid::parse_str(u).ok());
            let action = action[i].as_deref().and_then(|a| a.parse::<RecommendationAction>().ok());
            let at =
                at.is_valid(i).then(|| at.value(i)).and_then(|s| DateTime::from_timestamp_micros((s * 1e6) as i64));
            match (user, action, at) {
                (Some(user), Some(action), Some(at)) => out.push(Verdict {
                    user: UserId(user),
                    action,
                    accepted: verdict[i].as_deref() == Some("accept"),
                    at,
                }),
                _ => unknown += 1,
            }
        }
    }
    if unknown > 0 {
        warn!(unknown, "verdicts on unknown reps or action types; ignored");
    }
    debug!(verdicts = out.len(), stale, "verdicts read; dismissals as already handled or not mine set aside");
    Ok(out)
}

/// Whether a dismissal with this reason is a verdict on the advice (`not_relevant`), rather than on
/// the data behind it (`already_handled`: done outside the CRM; `not_mine`: not the rep's record) —
/// those come whatever the rep thinks of the action type, so counting them would blur the rep's
/// habit with the state of the data.
pub fn judges(reason: DismissReason) -> bool {
    match reason {
        DismissReason::NotRelevant => true,
        DismissReason::AlreadyHandled | DismissReason::NotMine => false,
    }
}

/// What one retraining did.
#[derive(Debug, Clone)]
pub struct Retrained {
    pub trial: Trial,
    /// The version stored (none with too little feedback).
    pub version: Option<i32>,
    pub promoted: bool,
    /// The version in service was retired: the rate beat it.
    pub retired: bool,
    /// What serves now.
    pub serving: &'static str,
}

/// Retrains the acceptance model of `tenant` from the verdicts in its lake (see the module doc).
pub async fn retrain(db: &Db, lake: &Lake, tenant: TenantId) -> Result<Retrained> {
    let ctx = lake.session(&tenant.to_string(), Limits::BATCH).await?;
    let all = verdicts(&ctx).await?;
    let mut tx = db.begin(tenant).await?;
    let model = intelligence::ensure_model(tx.conn(), tenant, MODEL_KEY, MODEL_NAME, MODEL_TASK, MODEL_NAME).await?;
    let active = intelligence::active_version(tx.conn(), model.id).await?;
    let incumbent = active.as_ref().and_then(|v| Acceptance::from_params(&v.params));
    if active.is_some() && incumbent.is_none() {
        warn!(
            model = MODEL_KEY,
            "the version in service is not of today's recipe; the rate or a candidate replaces it"
        );
    }
    let trial = trial(&all, incumbent.as_ref())?;
    let mut out = Retrained { version: None, promoted: false, retired: false, serving: "rate", trial: trial.clone() };
    if let Some((_, scored)) = &trial.candidate {
        let promoted = trial.promote();
        // What serves if promoted: the same recipe on every verdict known now.
        let serving = Acceptance::fit(&all)?;
        let metrics = json!({
            "held_out": scored,
            "rate_held_out": trial.rate,
            "gain_over_rate": trial.gain,
            "incumbent_held_out": trial.incumbent,
            "split_at": trial.split_at,
            "verdicts": trial.verdicts,
            "train_verdicts": trial.train,
            "test_verdicts": trial.test,
            "test_accepted": trial.test_accepted,
        });
        let mut params = serving.params();
        params["training_set"] = json!({
            "lake_tables": ["silver.recommendation_feedback", "silver.recommendations"],
            "verdicts": all.len(),
            "held_out_from": trial.split_at,
        });
        let version =
            intelligence::add_version(tx.conn(), tenant, model.id, &params, &metrics, all.len() as i64, Utc::now())
                .await?;
        out.version = Some(version.version);
        if promoted {
            intelligence::promote(tx.conn(), model.id, version.id).await?;
            out.promoted = true;
        } else {
            intelligence::reject(tx.conn(), version.id).await?;
        }
    }
    if !out.promoted && (trial.rate_beats_incumbent() || (active.is_some() && incumbent.is_none())) {
        out.retired = intelligence::retire_active(tx.conn(), model.id).await? > 0;
    }
    tx.commit().await?;
    let learned = out.promoted || (active.is_some() && incumbent.is_some() && !out.retired);
    out.serving = if learned { "learned" } else { "rate" };
    info!(
        %tenant, model = MODEL_KEY, verdicts = all.len(), version = out.version, promoted = out.promoted,
        retired = out.retired, serving = out.serving,
        log_loss = trial.candidate.as_ref().map(|c| c.1.log_loss), rate_log_loss = trial.rate.as_ref().map(|r| r.log_loss),
        "acceptance model retrained"
    );
    Ok(out)
}

/// The acceptance model in service for `tenant`, if a learned one is.
pub async fn serving(conn: &mut sqlx::PgConnection, tenant: TenantId) -> Result<Option<Acceptance>> {
    let model = intelligence::ensure_model(conn, tenant, MODEL_KEY, MODEL_NAME, MODEL_TASK, MODEL_NAME).await?;
    Ok(intelligence::active_version(conn, model.id).await?.and_then(|v| Acceptance::from_params(&v.params)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logistic::sigmoid;
    use chrono::Duration;

    const ACTIONS: [RecommendationAction; 8] = [
        RecommendationAction::Call,
        RecommendationAction::Meeting,
        RecommendationAction::FollowUp,
        RecommendationAction::Escalate,
        RecommendationAction::Email,
        RecommendationAction::Upsell,
        RecommendationAction::RenewalOutreach,
        RecommendationAction::Nurture,
    ];

    /// `n` verdicts of `reps` reps on `actions` action types, one a minute: a rep accepts with
    /// log-odds `habit + appeal`, habits spread over ±1.5 and appeals over ±0.7.
    fn planted(n: usize, reps: usize, actions: usize, seed: u64) -> Vec<Verdict> {
        let mut state = seed;
        let mut uniform = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let spread =
            |i: usize, k: usize, half: f64| if k > 1 { (i as f64 / (k - 1) as f64 - 0.5) * 2.0 * half } else { 0.0 };
        let start = DateTime::from_timestamp(1_700_000_000, 0).expect("a time");
        (0..n)
            .map(|i| {
                let rep = (uniform() * reps as f64) as usize % reps;
                let a = (uniform() * actions as f64) as usize % actions;
                let accepted = uniform() < sigmoid(spread(rep, reps, 1.5) + spread(a, actions, 0.7));
                let at = start + Duration::minutes(i as i64);
                Verdict { user: UserId(Uuid::from_u128(rep as u128 + 1)), action: ACTIONS[a], accepted, at }
            })
            .collect()
    }

    #[test]
    fn the_rate_shrinks_a_rep_towards_the_tenant() {
        let (a, b) = (UserId(Uuid::from_u128(1)), UserId(Uuid::from_u128(2)));
        let mut fb = Feedback::default();
        for _ in 0..6 {
            fb.add(a, RecommendationAction::Call, false);
        }
        for _ in 0..4 {
            fb.add(b, RecommendationAction::FollowUp, true);
        }
        // The tenant's call rate (0 + 1) / (6 + 2); a's: (0 + 5 × 1/8) / (6 + 5).
        assert!((fb.rate(a, RecommendationAction::Call) - (5.0 / 8.0) / 11.0).abs() < 1e-12);
        assert!((fb.rate(b, RecommendationAction::Call) - 1.0 / 8.0).abs() < 1e-12);
        // a over every action: the tenant's (4 + 1) / (10 + 2); a's (0 + 5 × 5/12) / (6 + 5).
        let [_, rep, tenant_action] = fb.rates(a, RecommendationAction::Call);
        assert!((tenant_action - 1.0 / 8.0).abs() < 1e-12);
        assert!((rep - (25.0 / 12.0) / 11.0).abs() < 1e-12);
        assert_eq!(fb.len(), 10);
        assert!(
            !fb.learned()
                && (fb.acceptance(a, RecommendationAction::Call) - fb.rate(a, RecommendationAction::Call)).abs()
                    < 1e-15
        );
    }

    #[test]
    fn a_verdict_is_described_by_the_verdicts_before_it_only() {
        let verdicts = planted(50, 4, 4, 9);
        let mut shuffled = verdicts.clone();
        shuffled.reverse();
        let (rows, after) = ordered(&shuffled, Feedback::default());
        for (i, (row, v)) in rows.iter().zip(&verdicts).enumerate() {
            let before = Feedback::from_verdicts(&verdicts[..i]);
            assert_eq!(row.features, before.features(v.user, v.action), "verdict {i}");
            assert_eq!((row.rate, row.accepted), (before.rate(v.user, v.action), v.accepted));
        }
        assert_eq!(after.len(), 50);
        // The first verdict knows nothing: every rate is the uniform prior.
        assert_eq!(rows[0].features, [0.0; 3]);
    }

    #[test]
    fn learns_habits_the_rate_cannot_and_is_promoted() {
        let verdicts = planted(1_200, 40, 8, 7);
        let t = trial(&verdicts, None).expect("trial");
        assert_eq!((t.train, t.test), (900, 300));
        let (model, c) = t.candidate.clone().expect("enough feedback");
        let r = t.rate.clone().expect("the rate");
        assert!(c.log_loss < r.log_loss, "learned {} vs rate {}", c.log_loss, r.log_loss);
        assert!(t.promote());
        // The rep's habit over all actions carries weight.
        assert!(model.logistic.weights[1] > 0.0, "{:?}", model.logistic.weights);
        // Stored and read back, the same model.
        assert_eq!(Acceptance::from_params(&model.params()), Some(model.clone()));
        // An incumbent as good as the candidate is not replaced.
        let again = trial(&verdicts, Some(&model)).expect("trial");
        assert!(!again.promote());
    }

    #[test]
    fn random_answers_teach_nothing_worth_serving() {
        // Answers independent of rep and action: the candidate should not beat the rate by luck alone
        // on most seeds; at least it must never be promoted over an equal incumbent.
        let mut state = 11u64;
        let verdicts: Vec<Verdict> = planted(400, 20, 4, 3)
            .into_iter()
            .map(|mut v| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                v.accepted = (state >> 33).is_multiple_of(3);
                v
            })
            .collect();
        let t = trial(&verdicts, None).expect("trial");
        let (model, _) = t.candidate.clone().expect("enough feedback");
        // Weights stay small: no signal in the rates.
        assert!(model.logistic.weights.iter().all(|w| w.abs() < 0.3), "{:?}", model.logistic.weights);
        assert!(!trial(&verdicts, Some(&model)).expect("trial").promote());
    }

    #[test]
    fn too_little_feedback_trains_nothing() {
        let t = trial(&planted(70, 5, 4, 1), None).expect("trial");
        assert!(t.candidate.is_none() && t.rate.is_none() && !t.promote());
        assert_eq!(t.verdicts, 70);
    }

    #[test]
    fn a_stored_model_of_another_recipe_or_corrupt_is_refused() {
        let m = trial(&planted(400, 10, 4, 5), None).expect("trial").candidate.expect("model").0;
        let mut p = m.params();
        p["features"] = json!(["rep_action_rate"]);
        assert_eq!(Acceptance::from_params(&p), None);
        let mut p = m.params();
        p["logistic"]["standardizer"]["scale"][0] = json!(0.0);
        assert_eq!(Acceptance::from_params(&p), None);
        assert_eq!(Acceptance::from_params(&json!({})), None);
    }
}
