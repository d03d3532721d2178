//! Lead, deal and churn scorers: which model a tenant gets (the expert prior until it has enough
//! outcomes of its own, then a model trained on them), calibration on the most recent training
//! months, explanations per record, and evaluation on a later period.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::features::{Entity, FeatureSet};
use crate::logistic::{Logistic, Prior, Standardizer};
use crate::metrics::{self, Platt};

/// Labelled rows needed before a tenant's own model replaces the prior …
pub const MIN_OUTCOMES: usize = 200;
/// … with at least this many of each class.
pub const MIN_PER_CLASS: usize = 30;
/// Ridge strength of the trained model (standardised features).
const RIDGE: f64 = 1.0;
/// How firmly the prior model holds the expert weights against a few outcomes.
const PRIOR_STRENGTH: f64 = 25.0;
/// The share of the latest training cut-offs held out to calibrate on.
const CALIBRATION_SHARE: f64 = 0.2;

/// Which model scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Expert weights, nudged by the few outcomes there are.
    Prior,
    /// Trained on the tenant's outcomes and calibrated on its latest months.
    Trained,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Prior => "prior",
            Kind::Trained => "trained",
        }
    }
}

/// Expert weights per standardised feature: the signs and rough sizes a sales-ops analyst would set.
fn expert_weights(entity: Entity) -> &'static [(&'static str, f64)] {
    match entity {
        Entity::Opportunity => &[
            ("stage_probability", 0.8),
            ("touches_30d", 0.5),
            ("meetings", 0.3),
            ("days_since_touch", -0.5),
            ("stage_age_vs_typical", -0.4),
            ("owner_win_rate", 0.3),
            ("account_won_deals", 0.2),
        ],
        Entity::Lead => &[
            ("touches_30d", 0.5),
            ("meetings", 0.4),
            ("inbound_share", 0.3),
            ("days_since_touch", -0.5),
            ("from_referral", 0.3),
            ("senior_title", 0.2),
            ("owner_conversion_rate", 0.3),
        ],
        Entity::Account => &[
            ("usage_trend", -0.5),
            ("usage_events_30d", -0.4),
            ("low_csat_tickets_90d", 0.4),
            ("urgent_tickets_90d", 0.3),
            ("invoices_overdue", 0.4),
            ("failed_payments_365d", 0.3),
            ("days_since_touch", 0.2),
        ],
    }
}

/// The base rate the prior starts from when a tenant has no outcomes at all.
fn expert_rate(entity: Entity) -> f64 {
    match entity {
        Entity::Opportunity => 0.3,
        Entity::Lead => 0.1,
        Entity::Account => 0.05,
    }
}

fn prior_mean(entity: Entity) -> Vec<f64> {
    let weights = expert_weights(entity);
    entity.feature_names().iter().map(|n| weights.iter().find(|(w, _)| w == n).map_or(0.0, |(_, v)| *v)).collect()
}

/// A fitted scorer of one entity kind.
#[derive(Debug, Clone)]
pub struct Scorer {
    pub entity: Entity,
    pub kind: Kind,
    pub names: Vec<&'static str>,
    pub model: Logistic,
    pub platt: Platt,
    /// Labelled rows it learnt from, and how many were positive.
    pub outcomes: usize,
    pub positives: usize,
    pub fit_time: Duration,
}

/// One feature's part in a score.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    pub feature: &'static str,
    pub value: f64,
    /// Contribution to the log-odds, relative to the average record.
    pub contribution: f64,
}

/// A calibrated probability and the factors behind it, strongest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub probability: f64,
    pub positive: Vec<Factor>,
    pub negative: Vec<Factor>,
}

impl Scorer {
    /// Fits on the labelled rows of `train` (the prior where there are too few; see [`Kind`]).
    pub fn train(train: &FeatureSet) -> Result<Scorer> {
        let started = Instant::now();
        let p = train.names.len();
        let (rows, labels) = labelled(train, None);
        let positives = labels.iter().filter(|l| **l).count();
        let negatives = labels.len() - positives;
        let enough = labels.len() >= MIN_OUTCOMES && positives.min(negatives) >= MIN_PER_CLASS;
        let (kind, model, platt) = if enough {
            // Calibrate on the latest cut-offs with a model that has not seen them, then refit on all.
            let mut cutoffs: Vec<_> = train.rows.iter().map(|r| r.cutoff).collect();
            cutoffs.sort();
            cutoffs.dedup();
            let held = ((cutoffs.len() as f64) * CALIBRATION_SHARE).ceil() as usize;
            let platt = match cutoffs.len().checked_sub(held).and_then(|i| cutoffs.get(i)).copied() {
                Some(boundary) if held > 0 && held < cutoffs.len() => {
                    let (early_x, early_y) = labelled(train, Some((None, Some(boundary))));
                    let (late_x, late_y) = labelled(train, Some((Some(boundary), None)));
                    if early_y.is_empty() || late_y.is_empty() {
                        Platt::IDENTITY
                    } else {
                        let early = Logistic::fit(&early_x, p, &early_y, &Prior::ridge(p, RIDGE))?;
                        let logits: Vec<f64> = late_x.chunks_exact(p).map(|r| early.logit(r)).collect();
                        Platt::fit(&logits, &late_y)
                    }
                }
                _ => Platt::IDENTITY,
            };
            (Kind::Trained, Logistic::fit(&rows, p, &labels, &Prior::ridge(p, RIDGE))?, platt)
        } else {
            let prior = Prior { mean: prior_mean(train.entity), strength: PRIOR_STRENGTH };
            let model = if labels.is_empty() {
                let rate = expert_rate(train.entity);
                Logistic::from_parts(Standardizer::fit(&train.values, p), prior.mean, (rate / (1.0 - rate)).ln())
            } else {
                Logistic::fit(&rows, p, &labels, &prior)?
            };
            (Kind::Prior, model, Platt::IDENTITY)
        };
        Ok(Scorer {
            entity: train.entity,
            kind,
            names: train.names.clone(),
            model,
            platt,
            outcomes: labels.len(),
            positives,
            fit_time: started.elapsed(),
        })
    }

    /// The calibrated probability of `row` with its top `top` factors each way.
    pub fn score(&self, row: &[f64], top: usize) -> Score {
        let contributions = self.model.contributions(row);
        let logit = self.model.intercept + contributions.iter().sum::<f64>();
        let mut factors: Vec<Factor> = self
            .names
            .iter()
            .zip(row)
            .zip(&contributions)
            .map(|((feature, value), contribution)| Factor { feature, value: *value, contribution: *contribution })
            .collect();
        factors.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        let positive = factors.iter().filter(|f| f.contribution > 0.0).take(top).cloned().collect();
        let negative = factors.iter().rev().filter(|f| f.contribution < 0.0).take(top).cloned().collect();
        Score { probability: self.platt.apply(logit), positive, negative }
    }

    /// What a model version stores: enough to score again without retraining.
    pub fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "entity": self.entity.as_str(),
            "kind": self.kind.as_str(),
            "features": self.names,
            "model": self.model,
            "platt": self.platt,
            "outcomes": self.outcomes,
            "positives": self.positives,
        })
    }

    /// A scorer from stored [`Scorer::params`]; `None` when they do not fit today's features of
    /// `entity` (another entity, or the feature set changed since).
    pub fn from_params(entity: Entity, params: &serde_json::Value) -> Option<Scorer> {
        if params.get("entity")?.as_str()? != entity.as_str() {
            return None;
        }
        let names: Vec<String> = serde_json::from_value(params.get("features")?.clone()).ok()?;
        if names.iter().map(String::as_str).ne(entity.feature_names().iter().copied()) {
            return None;
        }
        let model: Logistic = serde_json::from_value(params.get("model")?.clone()).ok()?;
        let p = names.len();
        if model.weights.len() != p || model.standardizer.mean.len() != p || model.standardizer.scale.len() != p {
            return None;
        }
        let kind = match params.get("kind")?.as_str()? {
            "prior" => Kind::Prior,
            "trained" => Kind::Trained,
            _ => return None,
        };
        Some(Scorer {
            entity,
            kind,
            names: entity.feature_names().to_vec(),
            model,
            platt: serde_json::from_value(params.get("platt")?.clone()).ok()?,
            outcomes: params.get("outcomes")?.as_u64()? as usize,
            positives: params.get("positives")?.as_u64()? as usize,
            fit_time: Duration::ZERO,
        })
    }

    /// The calibrated probability only.
    pub fn probability(&self, row: &[f64]) -> f64 {
        self.platt.apply(self.model.logit(row))
    }
}

/// A scorer's quality on labelled rows it did not learn from.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub rows: usize,
    pub positives: usize,
    pub auc: Option<f64>,
    pub log_loss: f64,
    pub brier: f64,
    pub calibration_error: f64,
    pub score_time: Duration,
}

pub fn evaluate(scorer: &Scorer, test: &FeatureSet) -> Result<Evaluation> {
    if test.entity != scorer.entity || test.names != scorer.names {
        return Err(Error::Invalid("the test rows have other features than the scorer".into()));
    }
    let p = test.names.len();
    let (rows, labels) = labelled(test, None);
    let started = Instant::now();
    let probs: Vec<f64> = rows.chunks_exact(p).map(|r| scorer.probability(r)).collect();
    let score_time = started.elapsed();
    Ok(Evaluation {
        rows: labels.len(),
        positives: labels.iter().filter(|l| **l).count(),
        auc: metrics::auc(&probs, &labels),
        log_loss: metrics::log_loss(&probs, &labels),
        brier: metrics::brier(&probs, &labels),
        calibration_error: metrics::calibration_error(&probs, &labels, 10),
        score_time,
    })
}

/// The segment a row belongs to for the bias report: deal kind, account segment, lead source.
pub fn segment(entity: Entity, names: &[&str], row: &[f64]) -> &'static str {
    let flag = |name: &str| names.iter().position(|n| *n == name).is_some_and(|j| row[j] == 1.0);
    match entity {
        Entity::Opportunity if flag("is_expansion") => "expansion",
        Entity::Opportunity if flag("is_renewal") => "renewal",
        Entity::Opportunity => "new_business",
        Entity::Account if flag("is_enterprise") => "enterprise",
        Entity::Account if flag("is_smb") => "smb",
        Entity::Account => "mid_market",
        Entity::Lead => [
            ("from_referral", "referral"),
            ("from_event", "event"),
            ("from_web", "web"),
            ("from_outbound", "outbound"),
            ("from_partner", "partner"),
            ("from_paid_ads", "paid_ads"),
            ("from_content", "content"),
        ]
        .iter()
        .find(|(f, _)| flag(f))
        .map_or("other", |(_, s)| s),
    }
}

/// [`evaluate`] per [`segment`]: the bias report (does the model serve every segment alike?).
pub fn evaluate_by_segment(
    scorer: &Scorer,
    test: &FeatureSet,
) -> Result<std::collections::BTreeMap<&'static str, Evaluation>> {
    let mut parts: std::collections::BTreeMap<&'static str, FeatureSet> = std::collections::BTreeMap::new();
    for i in 0..test.len() {
        let part = parts.entry(segment(test.entity, &test.names, test.row(i))).or_insert_with(|| FeatureSet {
            entity: test.entity,
            names: test.names.clone(),
            rows: Vec::new(),
            values: Vec::new(),
        });
        part.rows.push(test.rows[i].clone());
        part.values.extend_from_slice(test.row(i));
    }
    parts.into_iter().map(|(name, part)| Ok((name, evaluate(scorer, &part)?))).collect()
}

type Window = (Option<chrono::DateTime<chrono::Utc>>, Option<chrono::DateTime<chrono::Utc>>);

/// The labelled rows (optionally with cut-off in `[from, to)`) as a flat matrix and labels.
fn labelled(set: &FeatureSet, window: Option<Window>) -> (Vec<f64>, Vec<bool>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (row, values, label) in set.labelled() {
        if let Some((from, to)) = window
            && (from.is_some_and(|f| row.cutoff < f) || to.is_some_and(|t| row.cutoff >= t))
        {
            continue;
        }
        x.extend_from_slice(values);
        y.push(label);
    }
    (x, y)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration as Days, Utc};

    use super::*;
    use crate::features::Row;
    use crate::logistic::sigmoid;

    /// Opportunity-shaped rows whose outcome depends on `touches_30d` (up) and `days_since_touch`
    /// (down); `labelled` of them carry labels.
    fn rows(n: usize, labelled: usize) -> FeatureSet {
        let names = Entity::Opportunity.feature_names().to_vec();
        let p = names.len();
        let (t30, since) = (
            names.iter().position(|n| *n == "touches_30d").unwrap_or(0),
            names.iter().position(|n| *n == "days_since_touch").unwrap_or(0),
        );
        let start: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().expect("a timestamp");
        let mut set = FeatureSet { entity: Entity::Opportunity, names, rows: Vec::new(), values: Vec::new() };
        let mut s = 17u64;
        let mut u = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        for i in 0..n {
            let mut v = vec![0.0; p];
            v.iter_mut().for_each(|x| *x = u());
            v[t30] = (u() * 10.0).floor();
            v[since] = u() * 60.0;
            let prob = sigmoid(-1.0 + 0.4 * v[t30] - 0.05 * v[since]);
            let label = (i < labelled).then(|| u() < prob);
            let cutoff = start + Days::days(30 * (i as i64 % 12));
            set.rows.push(Row { id: format!("o{i}"), cutoff, label });
            set.values.extend(v);
        }
        set
    }

    #[test]
    fn few_outcomes_give_the_prior_and_enough_give_a_trained_model() {
        let none = Scorer::train(&rows(100, 0)).expect("scorer");
        assert_eq!((none.kind, none.outcomes), (Kind::Prior, 0));
        let few = Scorer::train(&rows(500, 60)).expect("scorer");
        assert_eq!((few.kind, few.outcomes), (Kind::Prior, 60));
        let many = Scorer::train(&rows(3000, 3000)).expect("scorer");
        assert_eq!(many.kind, Kind::Trained);
        // The trained model ranks a later sample well; the prior already ranks it above chance
        // because its expert signs agree with the data.
        let test = rows(2000, 2000);
        let trained = evaluate(&many, &test).expect("evaluation");
        let prior = evaluate(&none, &test).expect("evaluation");
        assert!(trained.auc.unwrap_or(0.0) > 0.8, "{trained:?}");
        assert!(prior.auc.unwrap_or(0.0) > 0.65, "{prior:?}");
        assert!(trained.log_loss < prior.log_loss, "{trained:?} vs {prior:?}");
        assert!(trained.calibration_error < 0.05, "{trained:?}");
    }

    #[test]
    fn the_bias_report_partitions_the_rows_by_segment() {
        let scorer = Scorer::train(&rows(3000, 3000)).expect("scorer");
        let mut test = rows(1200, 1200);
        let p = test.names.len();
        let (exp, ren) = (column(&test, "is_expansion"), column(&test, "is_renewal"));
        for i in 0..test.len() {
            test.values[i * p + exp] = f64::from(u8::from(i % 3 == 1));
            test.values[i * p + ren] = f64::from(u8::from(i % 3 == 2));
        }
        let report = evaluate_by_segment(&scorer, &test).expect("report");
        assert_eq!(report.keys().copied().collect::<Vec<_>>(), ["expansion", "new_business", "renewal"]);
        assert!(report.values().all(|e| e.rows == 400 && e.auc.is_some()));
        let positives: usize = report.values().map(|e| e.positives).sum();
        assert_eq!(positives, evaluate(&scorer, &test).expect("evaluation").positives);
    }

    fn column(set: &FeatureSet, name: &str) -> usize {
        set.names.iter().position(|n| *n == name).unwrap_or_default()
    }

    #[test]
    fn stored_params_score_the_same() {
        let scorer = Scorer::train(&rows(2000, 2000)).expect("scorer");
        let back = Scorer::from_params(Entity::Opportunity, &scorer.params()).expect("params round trip");
        let set = rows(20, 0);
        for i in 0..set.len() {
            assert_eq!(back.probability(set.row(i)), scorer.probability(set.row(i)));
        }
        assert!(Scorer::from_params(Entity::Lead, &scorer.params()).is_none(), "another entity's model");
        let mut changed = scorer.params();
        changed["features"][0] = serde_json::json!("renamed");
        assert!(Scorer::from_params(Entity::Opportunity, &changed).is_none(), "features changed since");
    }

    #[test]
    fn explanations_add_up_and_are_ordered() {
        let scorer = Scorer::train(&rows(3000, 3000)).expect("scorer");
        let set = rows(50, 0);
        for i in 0..set.len() {
            let row = set.row(i);
            let score = scorer.score(row, 3);
            let all = scorer.model.contributions(row);
            // The probability is the calibrated sum of every contribution and the intercept.
            let logit = scorer.model.intercept + all.iter().sum::<f64>();
            assert!((score.probability - scorer.platt.apply(logit)).abs() < 1e-12);
            assert!(score.positive.len() <= 3 && score.negative.len() <= 3);
            assert!(score.positive.windows(2).all(|w| w[0].contribution >= w[1].contribution));
            assert!(score.negative.windows(2).all(|w| w[0].contribution <= w[1].contribution));
            assert!(score.positive.iter().all(|f| f.contribution > 0.0));
            assert!(score.negative.iter().all(|f| f.contribution < 0.0));
            // The strongest factor each way is the extreme contribution.
            let max = all.iter().copied().fold(f64::MIN, f64::max);
            if max > 0.0 {
                assert_eq!(score.positive[0].contribution, max);
            }
        }
    }
}
