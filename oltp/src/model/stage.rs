//! The stage transition policy for opportunities, as pure functions.
//!
//! Rules:
//! * a closed opportunity (won or lost) does not move;
//! * moving to a stage requires every field that stage, and every earlier open stage of the pipeline,
//!   requires: skipping stages is allowed, skipping their requirements is not (so nobody jumps to
//!   "Closed Won" without the fields the proposal stage demands);
//! * moving to a lost stage requires only the lost stage's own fields (a deal can be lost at any point).

use serde::Serialize;

use super::{ForecastCategory, OpportunityStatus};

/// What the policy needs to know of a stage.
#[derive(Debug, Clone)]
pub struct StageRule {
    pub position: i16,
    pub probability: f64,
    pub is_won: bool,
    pub is_lost: bool,
    pub required_fields: Vec<String>,
}

/// Why a transition is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum TransitionRefusal {
    AlreadyClosed,
    SameStage,
    MissingFields { fields: Vec<String> },
}

/// The opportunity's state after an accepted transition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransitionOutcome {
    pub status: OpportunityStatus,
    pub probability: f64,
    pub forecast_category: ForecastCategory,
}

/// Checks a move from `from` to `to` within `pipeline` (all stages of the opportunity's pipeline);
/// `is_set(field)` says whether the opportunity has a value for a field.
pub fn check_transition(
    from: &StageRule,
    to: &StageRule,
    pipeline: &[StageRule],
    is_set: impl Fn(&str) -> bool,
) -> Result<TransitionOutcome, TransitionRefusal> {
    if from.is_won || from.is_lost {
        return Err(TransitionRefusal::AlreadyClosed);
    }
    if from.position == to.position {
        return Err(TransitionRefusal::SameStage);
    }
    let mut required: Vec<&str> = to.required_fields.iter().map(String::as_str).collect();
    if !to.is_lost {
        for stage in pipeline.iter().filter(|s| !s.is_lost && s.position < to.position) {
            required.extend(stage.required_fields.iter().map(String::as_str));
        }
    }
    let mut missing: Vec<String> = required.into_iter().filter(|f| !is_set(f)).map(str::to_owned).collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        return Err(TransitionRefusal::MissingFields { fields: missing });
    }
    Ok(outcome_for(to))
}

fn outcome_for(to: &StageRule) -> TransitionOutcome {
    let (status, forecast_category) = if to.is_won {
        (OpportunityStatus::Won, ForecastCategory::Closed)
    } else if to.is_lost {
        (OpportunityStatus::Lost, ForecastCategory::Omitted)
    } else if to.probability >= 80.0 {
        (OpportunityStatus::Open, ForecastCategory::Commit)
    } else if to.probability >= 50.0 {
        (OpportunityStatus::Open, ForecastCategory::BestCase)
    } else {
        (OpportunityStatus::Open, ForecastCategory::Pipeline)
    };
    TransitionOutcome { status, probability: to.probability, forecast_category }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(position: i16, probability: f64, required: &[&str]) -> StageRule {
        StageRule {
            position,
            probability,
            is_won: probability == 100.0,
            is_lost: probability == 0.0,
            required_fields: required.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn pipeline() -> Vec<StageRule> {
        vec![
            stage(0, 10.0, &[]),
            stage(1, 40.0, &["primary_contact_id"]),
            stage(2, 60.0, &["amount"]),
            stage(3, 100.0, &["close_date"]),
            stage(4, 0.0, &["lost_reason"]),
        ]
    }

    #[test]
    fn skipping_to_won_needs_every_earlier_requirement() {
        let p = pipeline();
        let only_close_date = |f: &str| f == "close_date";
        let refused = check_transition(&p[0], &p[3], &p, only_close_date);
        assert_eq!(
            refused,
            Err(TransitionRefusal::MissingFields { fields: vec!["amount".into(), "primary_contact_id".into()] })
        );
        let ok = check_transition(&p[0], &p[3], &p, |_| true).map(|o| o.status);
        assert_eq!(ok, Ok(OpportunityStatus::Won));
    }

    #[test]
    fn lost_needs_only_its_own_fields_and_closed_deals_stay_put() {
        let p = pipeline();
        let lost = check_transition(&p[1], &p[4], &p, |f| f == "lost_reason");
        assert_eq!(lost.map(|o| o.forecast_category), Ok(ForecastCategory::Omitted));
        assert_eq!(check_transition(&p[3], &p[1], &p, |_| true), Err(TransitionRefusal::AlreadyClosed));
        assert_eq!(check_transition(&p[1], &p[1], &p, |_| true), Err(TransitionRefusal::SameStage));
    }

    #[test]
    fn open_stages_map_probability_to_forecast_category() {
        let p = pipeline();
        let o = check_transition(&p[0], &p[2], &p, |_| true);
        assert_eq!(
            o.map(|o| (o.status, o.forecast_category)),
            Ok((OpportunityStatus::Open, ForecastCategory::BestCase))
        );
    }
}
