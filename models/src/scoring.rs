//! Lead, deal and churn scorers: which model a tenant gets (the expert prior until it has enough
//! outcomes of its own, then the best of three model families trained on them — see [`Family`]),
//! calibration on the most recent training months, explanations per record, the stored form of a
//! scorer, and evaluation on a later period.

use std::time::{Duration, Instant};

use crate::boost::Boosted;
use crate::error::{Error, Result};
use crate::features::{Entity, FeatureSet, Row};
use crate::logistic::{Logistic, Prior, Standardizer};
use crate::metrics::{self, Platt};

mod select;
#[cfg(test)]
mod tests;

pub use select::{Gain, Selection, SliceScore};

/// Labelled rows needed before a tenant's own model replaces the prior …
pub const MIN_OUTCOMES: usize = 200;
/// … with at least this many of each class.
pub const MIN_PER_CLASS: usize = 30;
/// How firmly the prior model holds the expert weights against a few outcomes.
const PRIOR_STRENGTH: f64 = 25.0;

/// Which model scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Expert weights, nudged by the few outcomes there are.
    Prior,
    /// Trained on the tenant's outcomes (the better [`Family`] on its latest months) and
    /// calibrated on those months.
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

/// The model family behind a scorer. A trained scorer gets logistic regression unless one of the
/// others did better by more than noise on the latest 20 % of training cut-offs (log-loss after
/// calibration) when all were fitted on the earlier ones — see [`select`]; the prior is always
/// logistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Ridge logistic regression ([`crate::logistic`]); contributions are weight × standardised value.
    Logistic,
    /// Histogram gradient-boosted trees ([`crate::boost`]); contributions are TreeSHAP values.
    Boosted,
    /// The mean of both families' calibrated log-odds ([`Blend`]); contributions blend alike.
    Blend,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Logistic => "logistic",
            Family::Boosted => "boosted",
            Family::Blend => "blend",
        }
    }

    /// The algorithm, in words, for reports and model-version records.
    pub fn algorithm(self) -> &'static str {
        match self {
            Family::Logistic => "ridge logistic regression (Newton), Platt-calibrated",
            Family::Boosted => "histogram gradient-boosted trees (logistic loss), Platt-calibrated",
            Family::Blend => {
                "mean log-odds of ridge logistic regression and histogram gradient-boosted trees, \
                 each Platt-calibrated"
            }
        }
    }

    fn parse(s: &str) -> Option<Family> {
        match s {
            "logistic" => Some(Family::Logistic),
            "boosted" => Some(Family::Boosted),
            "blend" => Some(Family::Blend),
            _ => None,
        }
    }
}

/// A scorer's fitted model, of any family.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    Logistic(Logistic),
    Boosted(Boosted),
    Blend(Blend),
}

/// Both families at once: the mean of their log-odds, each first mapped by its own Platt
/// calibration on the slice the families were compared on, so that neither weighs more for the
/// scale of its raw scores (and the blend needs no calibration of its own: it is served as it is).
/// Averaging two models that err differently ranks better than either where the outcome is partly
/// smooth (a logged meeting always helps a little) and partly a matter of interactions; and it keeps
/// the explanation exact, since contributions average alike.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Blend {
    pub logistic: Logistic,
    pub boosted: Boosted,
    pub logistic_platt: Platt,
    pub boosted_platt: Platt,
}

impl Blend {
    /// The blended log-odds of `row`.
    pub fn logit(&self, row: &[f64]) -> f64 {
        Blend::mean(self.logistic_platt, self.logistic.logit(row), self.boosted_platt, self.boosted.logit(row))
    }

    /// The blend of the two families' raw log-odds `l` and `b` under their calibrations.
    pub fn mean(l_platt: Platt, l: f64, b_platt: Platt, b: f64) -> f64 {
        0.5 * (l_platt.a * l + l_platt.b) + 0.5 * (b_platt.a * b + b_platt.b)
    }

    /// The blended log-odds of the average training record and each feature's blended
    /// contribution: the same mean of the two families' explanations, so they add up to
    /// [`Blend::logit`].
    pub fn explain(&self, row: &[f64]) -> (f64, Vec<f64>) {
        let (l, b) = (&self.logistic_platt, &self.boosted_platt);
        let base = Blend::mean(*l, self.logistic.intercept, *b, self.boosted.expected_logit());
        let contributions = self
            .logistic
            .contributions(row)
            .iter()
            .zip(self.boosted.contributions(row))
            .map(|(cl, cb)| 0.5 * l.a * cl + 0.5 * b.a * cb)
            .collect();
        (base, contributions)
    }
}

impl Model {
    pub fn family(&self) -> Family {
        match self {
            Model::Logistic(_) => Family::Logistic,
            Model::Boosted(_) => Family::Boosted,
            Model::Blend(_) => Family::Blend,
        }
    }

    /// The (uncalibrated) log-odds of `row`.
    pub fn logit(&self, row: &[f64]) -> f64 {
        match self {
            Model::Logistic(m) => m.logit(row),
            Model::Boosted(m) => m.logit(row),
            Model::Blend(m) => m.logit(row),
        }
    }

    /// The log-odds of the average training record and each feature's contribution relative to
    /// it; together they add up to [`Model::logit`] (exactly for the logistic family, to rounding
    /// for the boosted one).
    pub fn explain(&self, row: &[f64]) -> (f64, Vec<f64>) {
        match self {
            Model::Logistic(m) => (m.intercept, m.contributions(row)),
            Model::Boosted(m) => (m.expected_logit(), m.contributions(row)),
            Model::Blend(m) => m.explain(row),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Model::Logistic(m) => serde_json::json!(m),
            Model::Boosted(m) => serde_json::json!(m),
            Model::Blend(m) => serde_json::json!(m),
        }
    }

    /// A stored model of `family` over `p` features; `None` when it does not fit them.
    fn from_json(family: Family, value: &serde_json::Value, p: usize) -> Option<Model> {
        match family {
            Family::Logistic => {
                let m: Logistic = serde_json::from_value(value.clone()).ok()?;
                m.check(p).then_some(Model::Logistic(m))
            }
            Family::Boosted => {
                let m: Boosted = serde_json::from_value(value.clone()).ok()?;
                m.check(p).then_some(Model::Boosted(m))
            }
            Family::Blend => {
                let m: Blend = serde_json::from_value(value.clone()).ok()?;
                let whole = m.logistic.check(p) && m.boosted.check(p);
                (whole && m.logistic_platt.check() && m.boosted_platt.check()).then_some(Model::Blend(m))
            }
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
            ("close_date_pushes", -0.3),
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
    pub model: Model,
    pub platt: Platt,
    /// How the families did when it was trained; `None` for the prior, when the training
    /// cut-offs were too few to compare on, and for scorers stored before there was a choice.
    pub selection: Option<Selection>,
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
    /// Fits on the labelled rows of `train`: the prior where there are too few (see [`Kind`]),
    /// else the best [`Family`] on the latest training cut-offs, calibrated on them and refitted
    /// on every row.
    pub fn train(train: &FeatureSet) -> Result<Scorer> {
        let started = Instant::now();
        let p = train.names.len();
        let (rows, labels) = labelled(train, None);
        let positives = labels.iter().filter(|l| **l).count();
        let negatives = labels.len() - positives;
        let enough = labels.len() >= MIN_OUTCOMES && positives.min(negatives) >= MIN_PER_CLASS;
        let (kind, model, platt, selection) = if enough {
            let t = select::train(train, &rows, &labels)?;
            (Kind::Trained, t.model, t.platt, t.selection)
        } else {
            let prior = Prior { mean: prior_mean(train.entity), strength: PRIOR_STRENGTH };
            let model = if labels.is_empty() {
                let rate = expert_rate(train.entity);
                Logistic::from_parts(Standardizer::fit(&train.values, p), prior.mean, (rate / (1.0 - rate)).ln())
            } else {
                Logistic::fit(&rows, p, &labels, &prior)?
            };
            (Kind::Prior, Model::Logistic(model), Platt::IDENTITY, None)
        };
        Ok(Scorer {
            entity: train.entity,
            kind,
            names: train.names.clone(),
            model,
            platt,
            selection,
            outcomes: labels.len(),
            positives,
            fit_time: started.elapsed(),
        })
    }

    pub fn family(&self) -> Family {
        self.model.family()
    }

    /// The calibrated probability of `row` with its top `top` factors each way: the chosen
    /// family's contributions relative to the average training record (see [`Model::explain`]).
    /// With `top` 0 nothing is explained, which for the boosted family saves most of the work.
    pub fn score(&self, row: &[f64], top: usize) -> Score {
        let probability = self.probability(row);
        if top == 0 {
            return Score { probability, positive: Vec::new(), negative: Vec::new() };
        }
        let (_, contributions) = self.model.explain(row);
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
        Score { probability, positive, negative }
    }

    /// What a model version stores: enough to score again without retraining.
    pub fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "entity": self.entity.as_str(),
            "kind": self.kind.as_str(),
            "family": self.family().as_str(),
            "algorithm": self.family().algorithm(),
            "features": self.names,
            "model": self.model.to_json(),
            "platt": self.platt,
            "selection": self.selection,
            "outcomes": self.outcomes,
            "positives": self.positives,
        })
    }

    /// A scorer from stored [`Scorer::params`]; `None` when they do not fit today's features of
    /// `entity` (another entity, or the feature set changed since). Params stored before there
    /// were two families (no `family`) are logistic.
    pub fn from_params(entity: Entity, params: &serde_json::Value) -> Option<Scorer> {
        if params.get("entity")?.as_str()? != entity.as_str() {
            return None;
        }
        let names: Vec<String> = serde_json::from_value(params.get("features")?.clone()).ok()?;
        if names.iter().map(String::as_str).ne(entity.feature_names().iter().copied()) {
            return None;
        }
        let family = match params.get("family") {
            None => Family::Logistic,
            Some(f) => Family::parse(f.as_str()?)?,
        };
        let model = Model::from_json(family, params.get("model")?, names.len())?;
        let kind = match params.get("kind")?.as_str()? {
            "prior" => Kind::Prior,
            "trained" => Kind::Trained,
            _ => return None,
        };
        let platt: Platt = serde_json::from_value(params.get("platt")?.clone()).ok()?;
        if !platt.check() {
            return None;
        }
        Some(Scorer {
            entity,
            kind,
            names: entity.feature_names().to_vec(),
            model,
            platt,
            selection: params.get("selection").and_then(|s| serde_json::from_value(s.clone()).ok()),
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

/// The labelled rows of `set` whose cut-off lies in `window` (`[from, to)`; all without one).
fn labelled_in(set: &FeatureSet, window: Option<Window>) -> impl Iterator<Item = (&Row, &[f64], bool)> {
    set.labelled().filter(move |(row, _, _)| {
        window.is_none_or(|(from, to)| from.is_none_or(|f| row.cutoff >= f) && to.is_none_or(|t| row.cutoff < t))
    })
}

/// The labelled rows (optionally with cut-off in `[from, to)`) as a flat matrix and labels.
fn labelled(set: &FeatureSet, window: Option<Window>) -> (Vec<f64>, Vec<bool>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (_, values, label) in labelled_in(set, window) {
        x.extend_from_slice(values);
        y.push(label);
    }
    (x, y)
}
