//! Training a scorer that has enough outcomes: both families are fitted on the earlier training
//! cut-offs and compared on the latest 20 % (the calibration slice) by log-loss after each one's
//! Platt calibration on it — AUC breaks a tie, the logistic family a full one. The winner keeps its
//! calibration and is refitted on every training row; boosting with the number of rounds early
//! stopping chose. Early stopping watches the latest 20 % of the *earlier* cut-offs, so neither
//! family has seen the slice they are compared on. Time order throughout, never a random split.

use chrono::{DateTime, Utc};
use tracing::debug;

use super::{Model, labelled};
use crate::boost::{self, Boosted, Rows};
use crate::error::Result;
use crate::features::FeatureSet;
use crate::logistic::{Logistic, Prior};
use crate::metrics::{self, Platt};

/// Ridge strength of the trained logistic model (standardised features).
const RIDGE: f64 = 1.0;
/// The share of the latest training cut-offs held out to calibrate and compare on (and, of the
/// cut-offs before those, to stop boosting on).
const CALIBRATION_SHARE: f64 = 0.2;
/// Calibrated log-losses closer than this are a tie.
const TIE: f64 = 1e-6;

/// A family's quality on the calibration slice, after its Platt calibration there.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SliceScore {
    pub log_loss: f64,
    pub auc: Option<f64>,
}

/// How the families compared when a scorer was trained.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    /// Labelled rows in the calibration slice.
    pub rows: usize,
    pub logistic: SliceScore,
    /// `None` when boosting was not tried: too few cut-offs before the slice to stop on, or no
    /// round improved on the base rate.
    pub boosted: Option<SliceScore>,
    /// The rounds early stopping chose (0 when boosting was not tried).
    pub rounds: usize,
}

/// What [`train`] chose.
#[derive(Debug)]
pub(super) struct Trained {
    pub model: Model,
    pub platt: Platt,
    pub selection: Option<Selection>,
}

/// A family's model fitted on the early cut-offs and judged on the slice.
#[derive(Debug)]
struct Candidate {
    platt: Platt,
    score: SliceScore,
}

/// Fits, compares and refits as the module says, on the labelled `rows`/`labels` of `set`.
pub(super) fn train(set: &FeatureSet, rows: &[f64], labels: &[bool]) -> Result<Trained> {
    let p = set.names.len();
    let ridge = Prior::ridge(p, RIDGE);
    let uncalibrated = || -> Result<Trained> {
        let model = Model::Logistic(Logistic::fit(rows, p, labels, &Prior::ridge(p, RIDGE))?);
        Ok(Trained { model, platt: Platt::IDENTITY, selection: None })
    };
    let Some(boundary) = latest(set, None) else { return uncalibrated() };
    let (early_x, early_y) = labelled(set, Some((None, Some(boundary))));
    let (late_x, late_y) = labelled(set, Some((Some(boundary), None)));
    if early_y.is_empty() || late_y.is_empty() {
        return uncalibrated();
    }
    let (early, late) = (Rows { x: &early_x, y: &early_y }, Rows { x: &late_x, y: &late_y });
    let logistic = judge(&Model::Logistic(Logistic::fit(early.x, p, early.y, &ridge)?), late, p);
    let boosted = boosted(set, boundary, early, late, p)?;
    let selection = Selection {
        rows: late.y.len(),
        logistic: logistic.score,
        boosted: boosted.as_ref().map(|(c, _)| c.score),
        rounds: boosted.as_ref().map_or(0, |(_, rounds)| *rounds),
    };
    let (model, platt) = match boosted {
        Some((c, rounds)) if beats(&c.score, &logistic.score) => {
            let config = boost::Config { rounds, ..boost::Config::default() };
            (Model::Boosted(Boosted::fit(Rows { x: rows, y: labels }, p, None, &config)?), c.platt)
        }
        _ => (Model::Logistic(Logistic::fit(rows, p, labels, &ridge)?), logistic.platt),
    };
    debug!(
        family = model.family().as_str(),
        slice_rows = selection.rows,
        logistic_log_loss = selection.logistic.log_loss,
        boosted_log_loss = selection.boosted.map(|b| b.log_loss),
        rounds = selection.rounds,
        "scorer family chosen"
    );
    Ok(Trained { model, platt, selection: Some(selection) })
}

/// The boosted candidate: stopped early on the latest cut-offs before `boundary`, refitted on all of
/// `early` with the rounds it chose, judged on `late`. `None` when there is nothing to stop on or
/// no round helped.
fn boosted(
    set: &FeatureSet,
    boundary: DateTime<Utc>,
    early: Rows<'_>,
    late: Rows<'_>,
    p: usize,
) -> Result<Option<(Candidate, usize)>> {
    let Some(inner) = latest(set, Some(boundary)) else { return Ok(None) };
    let (fit_x, fit_y) = labelled(set, Some((None, Some(inner))));
    let (stop_x, stop_y) = labelled(set, Some((Some(inner), Some(boundary))));
    if fit_y.is_empty() || stop_y.is_empty() {
        return Ok(None);
    }
    let config = boost::Config::default();
    let stopped = Boosted::fit(Rows { x: &fit_x, y: &fit_y }, p, Some(Rows { x: &stop_x, y: &stop_y }), &config)?;
    let rounds = stopped.rounds();
    if rounds == 0 {
        return Ok(None);
    }
    let model = Boosted::fit(early, p, None, &boost::Config { rounds, ..config })?;
    Ok(Some((judge(&Model::Boosted(model), late, p), rounds)))
}

/// Calibrates `model` on the slice and scores it there.
fn judge(model: &Model, late: Rows<'_>, p: usize) -> Candidate {
    let logits: Vec<f64> = late.x.chunks_exact(p).map(|r| model.logit(r)).collect();
    let platt = Platt::fit(&logits, late.y);
    let probs: Vec<f64> = logits.iter().map(|&f| platt.apply(f)).collect();
    Candidate {
        platt,
        score: SliceScore { log_loss: metrics::log_loss(&probs, late.y), auc: metrics::auc(&probs, late.y) },
    }
}

/// Whether `boosted` beats `logistic`: a lower log-loss, or a tie and a higher AUC.
fn beats(boosted: &SliceScore, logistic: &SliceScore) -> bool {
    if (boosted.log_loss - logistic.log_loss).abs() > TIE {
        return boosted.log_loss < logistic.log_loss;
    }
    matches!((boosted.auc, logistic.auc), (Some(b), Some(l)) if b > l)
}

/// The first of the latest [`CALIBRATION_SHARE`] of the distinct cut-offs (of the rows before
/// `before`); `None` when that would leave no cut-off on either side.
fn latest(set: &FeatureSet, before: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    let mut cutoffs: Vec<DateTime<Utc>> =
        set.rows.iter().map(|r| r.cutoff).filter(|c| before.is_none_or(|b| *c < b)).collect();
    cutoffs.sort();
    cutoffs.dedup();
    let held = ((cutoffs.len() as f64) * CALIBRATION_SHARE).ceil() as usize;
    (held > 0 && held < cutoffs.len()).then(|| cutoffs[cutoffs.len() - held])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(log_loss: f64, auc: f64) -> SliceScore {
        SliceScore { log_loss, auc: Some(auc) }
    }

    #[test]
    fn log_loss_decides_and_auc_breaks_a_tie() {
        assert!(beats(&score(0.30, 0.70), &score(0.31, 0.80)), "lower log-loss wins whatever the AUC");
        assert!(!beats(&score(0.32, 0.90), &score(0.31, 0.80)));
        assert!(beats(&score(0.31, 0.81), &score(0.31, 0.80)), "a tie goes to AUC");
        assert!(!beats(&score(0.31, 0.80), &score(0.31, 0.80)), "a full tie stays logistic");
    }
}
