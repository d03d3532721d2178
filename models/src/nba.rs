//! Next-best actions: per rep, a short ranked list of what to do now, written to `recommendations`
//! through `orbas-oltp` (and from there through CDC back into the lake).
//!
//! One [`refresh`] of a tenant reads its lake at the *decision time* (just after the latest business
//! event, so a static dataset is judged as of its own present), scores every open lead, opportunity
//! and account with the model version in service (the prior where none is), stores the scores that
//! moved since their last prediction ([`ops::rescore`]: a logged meeting moves its deal's win
//! probability now, not at the next retraining), and proposes:
//!
//! | kind | when | action | expected value |
//! |---|---|---|---|
//! | `hot_lead_untouched` | a lead in the top quarter of open-lead scores, untouched for ≥ 7 days | call | P(convert) × typical deal |
//! | `stalled_deal` | an open deal in its stage longer than 75 % of past deals stayed there | meeting | P(win) × amount |
//! | `churn_risk_ticket` | an account with churn risk ≥ 25 % and an open ticket negative in tone ([`crate::sentiment`]) or urgent/high | escalate | P(churn) × 12 × MRR |
//! | `overdue_invoice` | an account with open invoices past their due date | follow_up | amount outstanding |
//!
//! Ranking ([`rank`]) weighs how much is at stake (`value / (value + typical deal)`) by how likely the
//! rep is to accept that action type ([`crate::acceptance`]): learned from the feedback reps give
//! (accept/dismiss, read back from the lake) and retrained with the scorers, or — until a learned model
//! beats it — the rep's rate shrunk towards the tenant's. The top [`Settings::per_rep`]
//! per rep are kept; [`orbas_oltp::repo::recommendations::sync`] updates live actions in place, does
//! not re-propose what a rep dismissed or accepted lately, and marks actions whose situation was
//! handled as `done`.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;
use orbas_oltp::db::Db;
use orbas_oltp::model::{EntityType, ModelId, ModelVersionId, RecommendationAction, TenantId, UserId};
use orbas_oltp::repo::recommendations::{self, Proposal, Quiet, Synced};
use orbas_oltp::repo::{identity, intelligence};
use orbas_warehouse::gold::FX_VIEW;
use orbas_warehouse::sql::{Lake, Limits};
use rust_decimal::Decimal;
use serde_json::json;
use tracing::{debug, info};
use uuid::Uuid;

use crate::acceptance::{self, Feedback};
use crate::dataset::{self, texts};
use crate::error::{Error, Result};
use crate::features::{self, Entity, FeatureSet};
use crate::ops;
use crate::scoring::{Factor, Scorer};

/// The rules, as stored in `recommendations.kind`.
pub const KINDS: [&str; 4] = [HOT_LEAD, STALLED_DEAL, CHURN_RISK, OVERDUE_INVOICE];
pub const HOT_LEAD: &str = "hot_lead_untouched";
pub const STALLED_DEAL: &str = "stalled_deal";
pub const CHURN_RISK: &str = "churn_risk_ticket";
pub const OVERDUE_INVOICE: &str = "overdue_invoice";

/// The tables a refresh writes (the actions, and the scores that moved): a change there is the
/// refresh's own, not news for the next one — a rep's answer also lands in `recommendation_feedback`.
pub const WRITES: [&str; 2] = ["recommendations", "predictions"];

/// Factors quoted per action.
const FACTORS: usize = 3;

/// Thresholds of the rules and the list's length.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A hot lead untouched for at least this many days gets a call.
    pub untouched_days: f64,
    /// Hot: at or above this quantile of the tenant's open-lead scores …
    pub hot_quantile: f64,
    /// … and at least this probability.
    pub hot_min_probability: f64,
    /// Stalled: longer in the stage than this quantile of past stays there.
    pub stalled_quantile: f64,
    /// Churn risk at which an account with a negative or urgent open ticket needs attention.
    pub churn_risk: f64,
    /// Actions kept per rep.
    pub per_rep: usize,
    /// How long an action lives unless refreshed.
    pub lifetime: Duration,
    /// How long an answered action is not proposed again, by the answer (a dismissal's reason code).
    pub quiet: Quiet,
}

/// The default of [`Settings::untouched_days`].
pub const DEFAULT_UNTOUCHED_DAYS: f64 = 7.0;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            untouched_days: DEFAULT_UNTOUCHED_DAYS,
            hot_quantile: 0.75,
            hot_min_probability: 0.15,
            stalled_quantile: 0.75,
            churn_risk: 0.25,
            per_rep: 10,
            lifetime: Duration::days(7),
            quiet: Quiet::default(),
        }
    }
}

/// An action a rule found, before ranking.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub user: UserId,
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    pub kind: &'static str,
    pub action: RecommendationAction,
    pub title: String,
    pub rationale: String,
    /// In the corporate currency.
    pub expected_value: f64,
    pub factors: serde_json::Value,
    pub model_version: Option<ModelVersionId>,
}

/// Ranks candidates per rep and keeps the best `per_rep` of each: score = the probability the rep
/// accepts the action type ([`Feedback::acceptance`]: the learned model where one serves, else the
/// rate) × value at stake relative to a typical deal (`value / (value + typical)`), in 0..1.
pub fn rank(
    candidates: Vec<Candidate>,
    feedback: &Feedback,
    typical_deal: f64,
    per_rep: usize,
) -> Vec<(f64, Candidate)> {
    let scale = if typical_deal.is_finite() && typical_deal > 0.0 { typical_deal } else { 10_000.0 };
    let mut by_user: HashMap<UserId, Vec<(f64, Candidate)>> = HashMap::new();
    for c in candidates {
        let value = c.expected_value.max(0.0);
        let score = (feedback.acceptance(c.user, c.action) * value / (value + scale)).clamp(0.0, 1.0);
        by_user.entry(c.user).or_default().push((score, c));
    }
    let mut out = Vec::new();
    for (_, mut list) in by_user {
        list.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.entity_id.cmp(&b.1.entity_id)));
        list.truncate(per_rep);
        out.extend(list);
    }
    out.sort_by(|a, b| a.1.user.cmp(&b.1.user).then_with(|| b.0.total_cmp(&a.0)));
    out
}

/// What one refresh of a tenant did.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub decided_at: DateTime<Utc>,
    pub candidates: usize,
    pub synced: Synced,
    /// Records whose stored score moved (see [`ops::rescore`]).
    pub rescored: u64,
}

/// A scorer of one entity kind, its model and the version it came from (`None`: the prior, nothing
/// trained).
struct Serving {
    scorer: Scorer,
    model: ModelId,
    version: Option<ModelVersionId>,
}

/// Recomputes the next-best actions of `tenant` and writes them back.
pub async fn refresh(db: &Db, lake: &Lake, tenant: TenantId, settings: &Settings) -> Result<Refreshed> {
    let ctx = lake.session(&tenant.to_string(), Limits::BATCH).await?;
    let wall = Utc::now();
    // Just after the latest business event, so the event itself counts ("touched today").
    let at = match dataset::data_horizon(&ctx).await? {
        Some(h) => (h + Duration::seconds(1)).min(wall),
        None => wall,
    };
    let mut sets = HashMap::new();
    for entity in Entity::ALL {
        sets.insert(entity, features::compute(&ctx, entity, &[at], at).await?);
    }
    let (currency, serving, acceptance) = {
        let mut tx = db.begin(tenant).await?;
        let currency = identity::corporate_currency(tx.conn(), tenant).await?;
        let acceptance = acceptance::serving(tx.conn(), tenant).await?;
        let mut serving = HashMap::new();
        for entity in Entity::ALL {
            let (key, task, name, _) = ops::registry(entity);
            let model = intelligence::ensure_model(tx.conn(), tenant, key, name, task, name).await?;
            let active = intelligence::active_version(tx.conn(), model.id).await?;
            let found = active.and_then(|v| Scorer::from_params(entity, &v.params).map(|s| (s, v.id)));
            let s = match found {
                Some((scorer, id)) => Serving { scorer, model: model.id, version: Some(id) },
                None => Serving { scorer: Scorer::train(&sets[&entity])?, model: model.id, version: None },
            };
            serving.insert(entity, s);
        }
        tx.commit().await?;
        (currency, serving, acceptance)
    };
    let typical = typical_deal(&ctx, &currency, at).await?;
    let mut candidates = Vec::new();
    candidates.extend(hot_leads(&ctx, &sets[&Entity::Lead], &serving[&Entity::Lead], settings, typical).await?);
    candidates.extend(
        stalled_deals(&ctx, &sets[&Entity::Opportunity], &serving[&Entity::Opportunity], &currency, at, settings)
            .await?,
    );
    candidates
        .extend(churn_risks(&ctx, &sets[&Entity::Account], &serving[&Entity::Account], &currency, at, settings).await?);
    candidates.extend(overdue_invoices(&ctx, &currency, at).await?);
    let found = candidates.len();
    let feedback = Feedback::from_verdicts(&acceptance::verdicts(&ctx).await?).serving(acceptance);
    let ranked = rank(candidates, &feedback, typical, settings.per_rep);
    let expires = wall + settings.lifetime;
    let proposals: Vec<Proposal> = ranked
        .into_iter()
        .map(|(score, c)| Proposal {
            user_id: c.user,
            entity_type: c.entity_type,
            entity_id: c.entity_id,
            kind: c.kind.to_owned(),
            action: c.action,
            title: c.title,
            rationale: c.rationale,
            score,
            expected_value: Decimal::from_f64_retain(c.expected_value.max(0.0)).unwrap_or_default().round_dp(2),
            currency: currency.clone(),
            factors: c.factors,
            expires_at: expires,
            model_version_id: c.model_version,
        })
        .collect();
    let mut tx = db.begin(tenant).await?;
    // The scores shown on each record follow it between retrainings (a logged meeting moves its deal's).
    let mut rescored = 0;
    for entity in Entity::ALL {
        let s = &serving[&entity];
        if let Some(version) = s.version {
            rescored += ops::rescore(tx.conn(), tenant, s.model, version, &s.scorer, &sets[&entity], wall).await?;
        }
    }
    let synced = recommendations::sync(tx.conn(), tenant, &KINDS, &proposals, wall, &settings.quiet).await?;
    tx.commit().await?;
    info!(%tenant, decided_at = %at, candidates = found, inserted = synced.inserted, updated = synced.updated,
          resolved = synced.resolved, suppressed = synced.suppressed, rescored, "next-best actions refreshed");
    Ok(Refreshed { decided_at: at, candidates: found, synced, rescored })
}

/// `name value (±contribution)` for the strongest factors, e.g. `meetings 3 (+0.41)`.
fn describe(factors: &[Factor]) -> String {
    factors
        .iter()
        .map(|f| format!("{} {} ({:+.2})", f.feature.replace('_', " "), short(f.value), f.contribution))
        .collect::<Vec<_>>()
        .join(", ")
}

fn short(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("{v:.0}") } else { format!("{v:.2}") }
}

fn factors_json(factors: &[Factor]) -> serde_json::Value {
    factors.iter().map(|f| json!({"feature": f.feature, "value": f.value, "contribution": f.contribution})).collect()
}

fn money(v: f64, currency: &str) -> String {
    format!("{currency} {:.0}", v.round())
}

fn column(set: &FeatureSet, name: &str) -> Result<usize> {
    set.names.iter().position(|n| *n == name).ok_or_else(|| Error::Invalid(format!("no feature {name}")))
}

async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Reads column `c` of `b` as doubles (NULL → NaN).
fn doubles(b: &RecordBatch, c: usize) -> Result<Vec<f64>> {
    let a = datafusion::arrow::compute::cast(b.column(c), &DataType::Float64)?;
    let a = a.as_primitive::<Float64Type>();
    Ok((0..a.len()).map(|i| if a.is_valid(i) { a.value(i) } else { f64::NAN }).collect())
}

fn uuid(s: &Option<String>) -> Option<Uuid> {
    s.as_deref().and_then(|s| Uuid::parse_str(s).ok())
}

fn ts(t: DateTime<Utc>) -> String {
    format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// `amount` (a column of `alias` with currency column `cur`) in the corporate currency at `at`: the
/// join and the converted expression. Amounts without a rate are taken as they are (and logged by
/// the callers' counts).
fn fx_join(alias: &str, cur: &str, currency: &str, at: DateTime<Utc>) -> String {
    format!(
        "LEFT JOIN ({FX_VIEW}) fx ON fx.from_currency = {alias}.{cur} AND fx.to_currency = '{currency}' \
           AND fx.valid_from <= CAST({t} AS DATE) AND (fx.valid_until IS NULL OR fx.valid_until > CAST({t} AS DATE))",
        t = ts(at)
    )
}

fn converted(alias: &str, amount: &str, cur: &str, currency: &str) -> String {
    format!(
        "CAST({alias}.{amount} AS DOUBLE) * CASE WHEN {alias}.{cur} = '{currency}' THEN 1.0 \
           ELSE COALESCE(CAST(fx.rate AS DOUBLE), 1.0) END"
    )
}

/// The median amount of deals won in the year before `at`, in the corporate currency: the yardstick
/// for how much is at stake.
async fn typical_deal(ctx: &SessionContext, currency: &str, at: DateTime<Utc>) -> Result<f64> {
    let sql = format!(
        "SELECT median({v}) FROM opportunities o {join} \
          WHERE o.status = 'won' AND o.closed_at < {t} AND o.closed_at >= {t} - INTERVAL '365 days'",
        v = converted("o", "amount", "currency", currency),
        join = fx_join("o", "currency", currency, at),
        t = ts(at)
    );
    let b = rows(ctx, &sql).await?;
    Ok(b.first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| doubles(b, 0))
        .transpose()?
        .and_then(|v| v.first().copied())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(10_000.0))
}

/// The `q` quantile of `values` (linear interpolation); NaN for none.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

async fn hot_leads(
    ctx: &SessionContext,
    set: &FeatureSet,
    serving: &Serving,
    settings: &Settings,
    typical: f64,
) -> Result<Vec<Candidate>> {
    let since = column(set, "days_since_touch")?;
    let mut info = HashMap::new();
    let sql = "SELECT id, owner_id, trim(concat(first_name, ' ', last_name)), company FROM leads \
               WHERE status NOT IN ('converted', 'unqualified') AND owner_id IS NOT NULL";
    for b in rows(ctx, sql).await? {
        let (id, owner, name, company) = (texts(&b, 0)?, texts(&b, 1)?, texts(&b, 2)?, texts(&b, 3)?);
        for i in 0..b.num_rows() {
            if let (Some(id), Some(owner)) = (uuid(&id[i]), uuid(&owner[i])) {
                info.insert(id, (UserId(owner), name[i].clone().unwrap_or_default(), company[i].clone()));
            }
        }
    }
    let probabilities: Vec<f64> = (0..set.len()).map(|i| serving.scorer.probability(set.row(i))).collect();
    let bar = quantile(&probabilities, settings.hot_quantile).max(settings.hot_min_probability);
    let mut out = Vec::new();
    for (i, &probability) in probabilities.iter().enumerate() {
        let days = set.row(i)[since];
        let Some(id) = Uuid::parse_str(&set.rows[i].id).ok() else { continue };
        let Some((owner, name, company)) = info.get(&id) else { continue };
        if probability < bar || days < settings.untouched_days {
            continue;
        }
        // Explained only when picked: a boosted model's factors cost far more than its probability.
        let score = serving.scorer.score(set.row(i), FACTORS);
        let who = match company {
            Some(c) if !c.is_empty() => format!("{name} ({c})"),
            _ => name.clone(),
        };
        out.push(Candidate {
            user: *owner,
            entity_type: EntityType::Lead,
            entity_id: id,
            kind: HOT_LEAD,
            action: RecommendationAction::Call,
            title: format!("Call {who}"),
            rationale: format!(
                "{:.0} % likely to convert within 90 days (among your hottest open leads) and untouched for {:.0} days. Why: {}.",
                score.probability * 100.0,
                days.floor(),
                describe(&score.positive)
            ),
            expected_value: score.probability * typical,
            factors: factors_json(&score.positive.iter().chain(&score.negative).cloned().collect::<Vec<_>>()),
            model_version: serving.version,
        });
    }
    debug!(candidates = out.len(), bar, "hot leads");
    Ok(out)
}

async fn stalled_deals(
    ctx: &SessionContext,
    set: &FeatureSet,
    serving: &Serving,
    currency: &str,
    at: DateTime<Utc>,
    settings: &Settings,
) -> Result<Vec<Candidate>> {
    // How long past deals stayed in each stage (left before `at`).
    let stays = format!(
        "WITH h AS (SELECT to_stage_id AS stage, changed_at, \
                           LEAD(changed_at) OVER (PARTITION BY opportunity_id ORDER BY changed_at) AS left_at \
                      FROM stage_histories WHERE changed_at < {t}) \
         SELECT CAST(stage AS VARCHAR), (date_part('epoch', left_at) - date_part('epoch', changed_at)) / 86400.0 \
           FROM h WHERE left_at IS NOT NULL AND left_at < {t} AND stage IS NOT NULL",
        t = ts(at)
    );
    let mut by_stage: HashMap<String, Vec<f64>> = HashMap::new();
    let mut all = Vec::new();
    for b in rows(ctx, &stays).await? {
        let (stage, days) = (texts(&b, 0)?, doubles(&b, 1)?);
        for i in 0..b.num_rows() {
            if let Some(s) = &stage[i] {
                by_stage.entry(s.clone()).or_default().push(days[i]);
                all.push(days[i]);
            }
        }
    }
    let overall = quantile(&all, settings.stalled_quantile);
    let p75: HashMap<String, f64> = by_stage
        .into_iter()
        .map(|(s, v)| {
            let q = if v.len() >= 10 { quantile(&v, settings.stalled_quantile) } else { overall };
            (s, q)
        })
        .collect();
    let sql = format!(
        "SELECT o.id, o.owner_id, o.name, CAST(o.stage_id AS VARCHAR), s.name, {v} FROM opportunities o \
           JOIN pipeline_stages s ON s.id = o.stage_id {join} \
          WHERE o.status = 'open' AND o.owner_id IS NOT NULL",
        v = converted("o", "amount", "currency", currency),
        join = fx_join("o", "currency", currency, at)
    );
    let mut info = HashMap::new();
    for b in rows(ctx, &sql).await? {
        let (id, owner, name, stage, stage_name, amount) =
            (texts(&b, 0)?, texts(&b, 1)?, texts(&b, 2)?, texts(&b, 3)?, texts(&b, 4)?, doubles(&b, 5)?);
        for i in 0..b.num_rows() {
            if let (Some(id), Some(owner), Some(stage)) = (uuid(&id[i]), uuid(&owner[i]), stage[i].clone()) {
                info.insert(
                    id,
                    (
                        UserId(owner),
                        name[i].clone().unwrap_or_default(),
                        stage,
                        stage_name[i].clone().unwrap_or_default(),
                        amount[i],
                    ),
                );
            }
        }
    }
    let age = column(set, "stage_age_days")?;
    let mut out = Vec::new();
    for i in 0..set.len() {
        let Some(id) = Uuid::parse_str(&set.rows[i].id).ok() else { continue };
        let Some((owner, name, stage, stage_name, amount)) = info.get(&id) else { continue };
        let days = set.row(i)[age];
        let Some(limit) = p75.get(stage).copied().or(Some(overall)).filter(|l| l.is_finite()) else { continue };
        if days <= limit || !amount.is_finite() {
            continue;
        }
        let score = serving.scorer.score(set.row(i), FACTORS);
        out.push(Candidate {
            user: *owner,
            entity_type: EntityType::Opportunity,
            entity_id: id,
            kind: STALLED_DEAL,
            action: RecommendationAction::Meeting,
            title: format!("Unblock {name}"),
            rationale: format!(
                "In {stage_name} for {:.0} days; 75 % of deals leave it within {:.0}. {} at {:.0} % win probability. Holding it back: {}.",
                days.floor(),
                limit.ceil(),
                money(*amount, currency),
                score.probability * 100.0,
                if score.negative.is_empty() { "nothing in particular".to_owned() } else { describe(&score.negative) }
            ),
            expected_value: score.probability * amount,
            factors: factors_json(&score.negative.iter().chain(&score.positive).cloned().collect::<Vec<_>>()),
            model_version: serving.version,
        });
    }
    debug!(candidates = out.len(), "stalled deals");
    Ok(out)
}

async fn churn_risks(
    ctx: &SessionContext,
    set: &FeatureSet,
    serving: &Serving,
    currency: &str,
    at: DateTime<Utc>,
    settings: &Settings,
) -> Result<Vec<Candidate>> {
    // Accounts with an open ticket that is negative in tone or urgent/high: the worst one (negative
    // and urgent first) is quoted.
    let sql = format!(
        "WITH tone AS ({tone}), \
         flagged AS ( \
           SELECT t.account_id, t.number, t.subject, t.priority, tone.label = 'negative' AS negative, t.created_at \
             FROM tickets t LEFT JOIN tone ON tone.ticket_id = t.id \
            WHERE t.status NOT IN ('solved', 'closed') AND t.created_at < {t} AND t.account_id IS NOT NULL \
              AND (t.priority IN ('urgent', 'high') OR tone.label = 'negative')), \
         open AS ( \
           SELECT account_id, number, subject, priority, negative, \
                  ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY CASE WHEN negative THEN 0 ELSE 1 END, \
                    CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 ELSE 2 END, created_at) AS r, \
                  COUNT(*) OVER (PARTITION BY account_id) AS n, \
                  SUM(CASE WHEN negative THEN 1 ELSE 0 END) OVER (PARTITION BY account_id) AS negatives \
             FROM flagged), \
         mrr AS (SELECT s.account_id, SUM({v}) AS mrr FROM subscriptions s {join} \
                  WHERE s.status IN ('active', 'past_due', 'trialing') GROUP BY s.account_id) \
         SELECT a.id, a.owner_id, a.name, open.number, open.subject, open.priority, open.n, COALESCE(mrr.mrr, 0), \
                open.negatives, open.negative \
           FROM accounts a JOIN open ON open.account_id = a.id AND open.r = 1 \
           LEFT JOIN mrr ON mrr.account_id = a.id WHERE a.owner_id IS NOT NULL",
        tone = crate::features::tone_source(ctx)?,
        t = ts(at),
        v = converted("s", "mrr", "currency", currency),
        join = fx_join("s", "currency", currency, at)
    );
    let mut info = HashMap::new();
    for b in rows(ctx, &sql).await? {
        let (id, owner, name, number, subject, priority) =
            (texts(&b, 0)?, texts(&b, 1)?, texts(&b, 2)?, texts(&b, 3)?, texts(&b, 4)?, texts(&b, 5)?);
        let (n, mrr, negatives, negative) = (doubles(&b, 6)?, doubles(&b, 7)?, doubles(&b, 8)?, texts(&b, 9)?);
        for i in 0..b.num_rows() {
            if let (Some(id), Some(owner)) = (uuid(&id[i]), uuid(&owner[i])) {
                let tone = if negative[i].as_deref() == Some("true") { ", negative in tone" } else { "" };
                let ticket = format!(
                    "{} {} \u{201c}{}\u{201d}{tone}",
                    priority[i].clone().unwrap_or_default(),
                    number[i].clone().unwrap_or_default(),
                    subject[i].clone().unwrap_or_default()
                );
                let flagged = Flagged { n: n[i], negative: negatives[i], mrr: mrr[i] };
                info.insert(id, (UserId(owner), name[i].clone().unwrap_or_default(), ticket, flagged));
            }
        }
    }
    let mut out = Vec::new();
    for i in 0..set.len() {
        let Some(id) = Uuid::parse_str(&set.rows[i].id).ok() else { continue };
        let Some((owner, name, ticket, flagged)) = info.get(&id) else { continue };
        if serving.scorer.probability(set.row(i)) < settings.churn_risk {
            continue;
        }
        let score = serving.scorer.score(set.row(i), FACTORS);
        let mrr = if flagged.mrr.is_finite() { flagged.mrr } else { 0.0 };
        out.push(Candidate {
            user: *owner,
            entity_type: EntityType::Account,
            entity_id: id,
            kind: CHURN_RISK,
            action: RecommendationAction::Escalate,
            title: format!("Get {name}'s open ticket resolved"),
            rationale: format!(
                "{:.0} % churn risk over 90 days, {} of recurring revenue a month, {} — worst: {ticket}. Risk drivers: {}.",
                score.probability * 100.0,
                money(mrr, currency),
                flagged.describe(),
                describe(&score.positive)
            ),
            expected_value: score.probability * 12.0 * mrr,
            factors: factors_json(&score.positive.iter().chain(&score.negative).cloned().collect::<Vec<_>>()),
            model_version: serving.version,
        });
    }
    debug!(candidates = out.len(), "churn risks");
    Ok(out)
}

/// An account's open tickets that need attention (negative in tone, or urgent/high).
#[derive(Debug, Clone, Copy)]
struct Flagged {
    n: f64,
    negative: f64,
    mrr: f64,
}

impl Flagged {
    fn describe(&self) -> String {
        let n = if self.n.is_finite() { self.n } else { 0.0 };
        let neg = if self.negative.is_finite() { self.negative } else { 0.0 };
        let tickets = if n == 1.0 { "ticket" } else { "tickets" };
        if neg > 0.0 {
            format!("{n:.0} open {tickets} needing attention ({neg:.0} negative in tone)")
        } else {
            format!("{n:.0} urgent/high open {tickets}")
        }
    }
}

async fn overdue_invoices(ctx: &SessionContext, currency: &str, at: DateTime<Utc>) -> Result<Vec<Candidate>> {
    // One action per account: every open invoice of it past due, the oldest quoted.
    let outstanding = format!(
        "(CAST(i.total AS DOUBLE) - CAST(i.amount_paid AS DOUBLE)) * CASE WHEN i.currency = '{currency}' THEN 1.0 \
           ELSE COALESCE(CAST(fx.rate AS DOUBLE), 1.0) END"
    );
    let sql = format!(
        "WITH due AS ( \
           SELECT i.account_id, i.number, {v} AS outstanding, \
                  (date_part('epoch', {t}) - date_part('epoch', CAST(i.due_on AS TIMESTAMP))) / 86400.0 AS days \
             FROM invoices i {join} \
            WHERE i.status = 'open' AND i.due_on < CAST({t} AS DATE) AND i.total > i.amount_paid), \
         oldest AS (SELECT account_id, number, days, \
                           ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY days DESC, number) AS r FROM due) \
         SELECT a.id, a.owner_id, a.name, o.number, o.days, s.outstanding, s.n \
           FROM (SELECT account_id, SUM(outstanding) AS outstanding, COUNT(*) AS n FROM due GROUP BY account_id) s \
           JOIN oldest o ON o.account_id = s.account_id AND o.r = 1 \
           JOIN accounts a ON a.id = s.account_id WHERE a.owner_id IS NOT NULL",
        t = ts(at),
        v = outstanding,
        join = fx_join("i", "currency", currency, at)
    );
    let mut out = Vec::new();
    for b in rows(ctx, &sql).await? {
        let (id, owner, name, number) = (texts(&b, 0)?, texts(&b, 1)?, texts(&b, 2)?, texts(&b, 3)?);
        let (days, due, n) = (doubles(&b, 4)?, doubles(&b, 5)?, doubles(&b, 6)?);
        for i in 0..b.num_rows() {
            let (Some(id), Some(owner)) = (uuid(&id[i]), uuid(&owner[i])) else { continue };
            if !due[i].is_finite() {
                continue;
            }
            let number = number[i].clone().unwrap_or_default();
            let account = name[i].clone().unwrap_or_default();
            let invoices = if n[i] > 1.0 { format!("{:.0} invoices", n[i]) } else { "1 invoice".to_owned() };
            out.push(Candidate {
                user: UserId(owner),
                entity_type: EntityType::Account,
                entity_id: id,
                kind: OVERDUE_INVOICE,
                action: RecommendationAction::FollowUp,
                title: format!("Chase {account}'s overdue payment"),
                rationale: format!(
                    "{} outstanding on {invoices} past due; the oldest, {number}, is {:.0} days late.",
                    money(due[i], currency),
                    days[i].floor()
                ),
                expected_value: due[i],
                factors: json!([{"feature": "days_overdue", "value": days[i].floor(), "contribution": null},
                                {"feature": "overdue_invoices", "value": n[i], "contribution": null}]),
                model_version: None,
            });
        }
    }
    debug!(candidates = out.len(), "overdue invoices");
    Ok(out)
}

/// How well a rule's actions are aimed, offline: on a labelled test side, at every cut-off the rows
/// the rule triggers on are ranked once by the rule alone (the baseline a CRM without scores would
/// use) and once by our expected value, and the top `k` of each are compared with what happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Targeting {
    pub kind: &'static str,
    /// What the baseline orders by, and what counts as a hit.
    pub baseline: &'static str,
    pub hit: &'static str,
    pub cutoffs: usize,
    /// Labelled rows the rule triggered on, over all cut-offs.
    pub triggered: usize,
    /// Rows in the top `k` lists (each list at most `k`, the same number for both rankings).
    pub picked: usize,
    pub baseline_hits: usize,
    pub ours_hits: usize,
    /// Hits weighted by value (deals: amount in median-deal units; otherwise 1 a hit).
    pub baseline_value: f64,
    pub ours_value: f64,
}

impl Targeting {
    /// Ours over the baseline, minus one (`None` when the baseline captured nothing).
    pub fn uplift(&self) -> Option<f64> {
        (self.baseline_value > 0.0).then(|| self.ours_value / self.baseline_value - 1.0)
    }
}

/// The rule of `set`'s entity replayed on its labelled rows: [`Targeting`] of the top `k` per cut-off.
pub fn targeting(scorer: &Scorer, set: &FeatureSet, k: usize) -> Result<Targeting> {
    let col = |name| column(set, name);
    // (kind, trigger, baseline key, value of a row, baseline description, hit description)
    type Key = Box<dyn Fn(&[f64]) -> f64>;
    type Trigger = Box<dyn Fn(&[f64]) -> bool>;
    let (kind, trigger, baseline, value, baseline_name, hit): (
        &'static str,
        Trigger,
        Key,
        Key,
        &'static str,
        &'static str,
    ) = match set.entity {
        Entity::Lead => {
            let since = col("days_since_touch")?;
            (
                HOT_LEAD,
                Box::new(move |r| r[since] >= DEFAULT_UNTOUCHED_DAYS),
                Box::new(move |r| r[since]),
                Box::new(|_| 1.0),
                "longest untouched first",
                "converted within 90 days",
            )
        }
        Entity::Opportunity => {
            let (age, amount) = (col("stage_age_vs_typical")?, col("amount_vs_median")?);
            (
                STALLED_DEAL,
                // Past the stage's typical (median) stay; the live rule's p75 needs the stage's history.
                Box::new(move |r| r[age] > 1.0),
                Box::new(move |r| r[amount]),
                Box::new(move |r| r[amount].max(0.0)),
                "largest amount first",
                "won (value: amount in median-deal units)",
            )
        }
        Entity::Account => {
            let open = col("open_tickets")?;
            (
                CHURN_RISK,
                Box::new(move |r| r[open] >= 1.0),
                Box::new(move |r| r[open]),
                Box::new(|_| 1.0),
                "most open tickets first",
                "churned within 90 days (a risk rightly raised)",
            )
        }
    };
    let mut by_cutoff: std::collections::BTreeMap<DateTime<Utc>, Vec<(usize, bool)>> = Default::default();
    for i in 0..set.len() {
        let (row, Some(label)) = (&set.rows[i], set.rows[i].label) else { continue };
        if trigger(set.row(i)) {
            by_cutoff.entry(row.cutoff).or_default().push((i, label));
        }
    }
    let mut t = Targeting {
        kind,
        baseline: baseline_name,
        hit,
        cutoffs: by_cutoff.len(),
        triggered: 0,
        picked: 0,
        baseline_hits: 0,
        ours_hits: 0,
        baseline_value: 0.0,
        ours_value: 0.0,
    };
    for rows in by_cutoff.values() {
        t.triggered += rows.len();
        let take = rows.len().min(k);
        t.picked += take;
        let mut by_rule = rows.clone();
        by_rule.sort_by(|a, b| baseline(set.row(b.0)).total_cmp(&baseline(set.row(a.0))).then(a.0.cmp(&b.0)));
        let mut by_us: Vec<(f64, usize, bool)> = rows
            .iter()
            .map(|&(i, l)| {
                let p = scorer.score(set.row(i), 0).probability;
                let v = if set.entity == Entity::Opportunity { p * value(set.row(i)) } else { p };
                (v, i, l)
            })
            .collect();
        by_us.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(i, l) in &by_rule[..take] {
            t.baseline_hits += usize::from(l);
            t.baseline_value += if l { value(set.row(i)) } else { 0.0 };
        }
        for &(_, i, l) in &by_us[..take] {
            t.ours_hits += usize::from(l);
            t.ours_value += if l { value(set.row(i)) } else { 0.0 };
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Row;

    fn cand(user: UserId, action: RecommendationAction, value: f64, n: u128) -> Candidate {
        Candidate {
            user,
            entity_type: EntityType::Lead,
            entity_id: Uuid::from_u128(n),
            kind: HOT_LEAD,
            action,
            title: String::new(),
            rationale: String::new(),
            expected_value: value,
            factors: json!([]),
            model_version: None,
        }
    }

    /// Lead rows over `cutoffs` months whose conversion follows `meetings` and ignores how long the
    /// lead was left alone.
    fn leads(cutoffs: usize, per: usize, seed: u64) -> FeatureSet {
        let names = Entity::Lead.feature_names().to_vec();
        let (meetings, since) = (
            names.iter().position(|n| *n == "meetings").expect("meetings"),
            names.iter().position(|n| *n == "days_since_touch").expect("days_since_touch"),
        );
        let mut set = FeatureSet { entity: Entity::Lead, names, rows: Vec::new(), values: Vec::new() };
        let mut s = seed;
        let mut u = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let start: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().expect("a timestamp");
        for c in 0..cutoffs {
            for i in 0..per {
                let mut v = vec![0.0; set.names.len()];
                v[meetings] = (u() * 6.0).floor();
                v[since] = (u() * 40.0).floor();
                let p = 1.0 / (1.0 + (-(1.3 * v[meetings] - 4.0)).exp());
                let label = u() < p;
                set.rows.push(Row {
                    id: format!("l{c}-{i}"),
                    cutoff: start + Duration::days(30 * c as i64),
                    label: Some(label),
                });
                set.values.extend(v);
            }
        }
        set
    }

    #[test]
    fn the_model_aims_the_rule_better_than_the_rule_alone() {
        let scorer = Scorer::train(&leads(12, 150, 3)).expect("train");
        let test = leads(6, 150, 99);
        let t = targeting(&scorer, &test, 10).expect("targeting");
        let since = column(&test, "days_since_touch").expect("column");
        let eligible = (0..test.len()).filter(|&i| test.row(i)[since] >= DEFAULT_UNTOUCHED_DAYS).count();
        assert_eq!((t.kind, t.cutoffs, t.triggered), (HOT_LEAD, 6, eligible), "only untouched leads are triggered");
        assert_eq!(t.picked, 60, "ten a cut-off for both rankings");
        assert!(t.ours_hits > t.baseline_hits + 10, "{t:?}");
        assert!(t.uplift().is_some_and(|u| u > 0.3), "{t:?}");
        // k larger than every list: both pick everything triggered, so they tie.
        let all = targeting(&scorer, &test, 10_000).expect("targeting");
        assert_eq!((all.picked, all.ours_hits), (eligible, all.baseline_hits));
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[4.0, 1.0, 3.0, 2.0], 0.5), 2.5);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.75), 4.0);
        assert_eq!(quantile(&[7.0], 0.75), 7.0);
        assert!(quantile(&[f64::NAN], 0.5).is_nan());
    }

    #[test]
    fn more_at_stake_ranks_higher_and_each_rep_keeps_their_best() {
        let (a, b) = (UserId(Uuid::from_u128(1)), UserId(Uuid::from_u128(2)));
        let list = vec![
            cand(a, RecommendationAction::Call, 1_000.0, 1),
            cand(a, RecommendationAction::Call, 50_000.0, 2),
            cand(a, RecommendationAction::Call, 5_000.0, 3),
            cand(b, RecommendationAction::Call, 10.0, 4),
        ];
        let ranked = rank(list, &Feedback::default(), 10_000.0, 2);
        let ids: Vec<(UserId, u128)> = ranked.iter().map(|(_, c)| (c.user, c.entity_id.as_u128())).collect();
        assert_eq!(ids, vec![(a, 2), (a, 3), (b, 4)]);
        // No feedback: rate 1/2 for everyone; 50k against a 10k typical deal → 0.5 × 5/6.
        assert!((ranked[0].0 - 0.5 * 50_000.0 / 60_000.0).abs() < 1e-12);
        assert!(ranked.iter().all(|(s, _)| (0.0..=1.0).contains(s)));
    }

    #[test]
    fn dismissals_push_an_action_type_down_for_that_rep_and_less_for_others() {
        let (a, b) = (UserId(Uuid::from_u128(1)), UserId(Uuid::from_u128(2)));
        let list = || {
            vec![cand(a, RecommendationAction::Call, 20_000.0, 1), cand(a, RecommendationAction::FollowUp, 15_000.0, 2)]
        };
        let before = rank(list(), &Feedback::default(), 10_000.0, 10);
        assert_eq!(before[0].1.entity_id.as_u128(), 1, "more at stake first");
        let mut fb = Feedback::default();
        for _ in 0..6 {
            fb.add(a, RecommendationAction::Call, false);
        }
        for _ in 0..4 {
            fb.add(b, RecommendationAction::FollowUp, true);
        }
        let after = rank(list(), &fb, 10_000.0, 10);
        assert_eq!(after[0].1.entity_id.as_u128(), 2, "after six dismissed calls the follow-up leads");
        // The rep's rate: (0 + 5 × 1/8) / (6 + 5); the tenant prior (0 + 1) / (6 + 2).
        assert!((fb.rate(a, RecommendationAction::Call) - (5.0 / 8.0) / 11.0).abs() < 1e-12);
        // Another rep without history gets the tenant's rate.
        assert!((fb.rate(b, RecommendationAction::Call) - 1.0 / 8.0).abs() < 1e-12);
    }
}
