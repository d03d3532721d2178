//! Model operations for one tenant and entity kind: train a candidate on a time split, compare it
//! with the version in service on the same held-out months, register it (`model_versions`, with its
//! metrics and training-set reference), promote it only if it is better, and write the serving
//! model's scores of every open entity to `predictions` — all through `orbas-oltp` in one tenant
//! transaction, so the results flow through CDC into the lake like any CRM write. Between
//! retrainings [`rescore`] stores the scores that moved (the next-best-action refresh calls it).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use orbas_oltp::db::Db;
use orbas_oltp::model::{EntityType, ModelId, ModelVersionId, TenantId};
use orbas_oltp::repo::intelligence::{self, NewPrediction};
use orbas_warehouse::sql::{Lake, Limits};
use serde_json::json;
use tracing::{info, warn};

use crate::dataset::{self, Split};
use crate::error::{Error, Result};
use crate::features::{self, Entity, FeatureSet};
use crate::scoring::{self, Evaluation, Family, Kind, Scorer};

/// Factors stored per prediction, each way.
const TOP_FACTORS: usize = 3;

/// What one retraining did.
#[derive(Debug, Clone)]
pub struct Retrained {
    pub entity: Entity,
    pub version: i32,
    /// What serves now: the new version if promoted, else the one in service.
    pub kind: Kind,
    pub family: Family,
    pub promoted: bool,
    /// The candidate and the version in service on the same held-out months.
    pub candidate: Evaluation,
    pub incumbent: Option<Evaluation>,
    pub predictions: u64,
    pub data_until: DateTime<Utc>,
}

/// The registry entry of `entity`'s model: key, task, name and the predictions' entity type.
pub fn registry(entity: Entity) -> (&'static str, &'static str, &'static str, EntityType) {
    match entity {
        Entity::Lead => ("lead_conversion", "lead_score", "Lead conversion within 90 days", EntityType::Lead),
        Entity::Opportunity => ("deal_win", "deal_score", "Opportunity win probability", EntityType::Opportunity),
        Entity::Account => ("account_churn", "churn_score", "Account churn within 90 days", EntityType::Account),
    }
}

/// Whether `candidate` beats `incumbent` on the same rows: a higher AUC, or the same AUC (within
/// 1e-9) and a lower log-loss. Without an incumbent any candidate with an AUC wins.
pub fn better(candidate: &Evaluation, incumbent: Option<&Evaluation>) -> bool {
    let Some(incumbent) = incumbent else { return true };
    match (candidate.auc, incumbent.auc) {
        (Some(c), Some(i)) if (c - i).abs() > 1e-9 => c > i,
        (Some(_), Some(_)) => candidate.log_loss < incumbent.log_loss,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn evaluation_json(e: &Evaluation) -> serde_json::Value {
    json!({
        "rows": e.rows, "positives": e.positives, "auc": e.auc, "log_loss": e.log_loss,
        "brier": e.brier, "calibration_error": e.calibration_error,
    })
}

/// All labelled rows of both sides, for the serving model's refit.
fn both(split: &Split) -> FeatureSet {
    let mut all = split.train.clone();
    all.rows.extend(split.test.rows.iter().cloned());
    all.values.extend(split.test.values.iter().copied());
    all
}

/// Retrains `entity` for `tenant`. The held-out months are the 180 days before the data's present;
/// training cut-offs reach two years further back.
pub async fn retrain(db: &Db, lake: &Lake, tenant: TenantId, entity: Entity) -> Result<Retrained> {
    let ctx = lake.session(&tenant.to_string(), Limits::BATCH).await?;
    let now = dataset::data_horizon(&ctx).await?.unwrap_or_else(Utc::now);
    let split_at = now - Duration::days(180);
    let split = Split::monthly(&ctx, entity, split_at - Duration::days(730), split_at, now).await?;
    // Training is CPU work (seconds when boosting is tried on tens of thousands of rows): off the
    // async executor. What is served if promoted: the same recipe refit on every outcome known now.
    let (split, candidate, serving) = tokio::task::spawn_blocking(move || -> Result<_> {
        let candidate = Scorer::train(&split.train)?;
        let serving = Scorer::train(&both(&split))?;
        Ok((split, candidate, serving))
    })
    .await
    .map_err(|source| Error::Task { what: "model training", source })??;
    let candidate_eval = scoring::evaluate(&candidate, &split.test)?;

    let (key, task, name, entity_type) = registry(entity);
    let mut tx = db.begin(tenant).await?;
    let model = intelligence::ensure_model(tx.conn(), tenant, key, name, task, name).await?;
    let active = intelligence::active_version(tx.conn(), model.id).await?;
    let incumbent = active.as_ref().and_then(|v| Scorer::from_params(entity, &v.params));
    if active.is_some() && incumbent.is_none() {
        warn!(model = key, "the version in service does not fit today's features; any candidate replaces it");
    }
    let incumbent_eval = incumbent.as_ref().map(|s| scoring::evaluate(s, &split.test)).transpose()?;
    let promoted = better(&candidate_eval, incumbent_eval.as_ref());
    let segments: serde_json::Map<String, serde_json::Value> = scoring::evaluate_by_segment(&candidate, &split.test)?
        .iter()
        .map(|(name, e)| ((*name).to_owned(), evaluation_json(e)))
        .collect();
    let metrics = json!({
        "held_out": evaluation_json(&candidate_eval),
        "held_out_by_segment": segments,
        "incumbent_held_out": incumbent_eval.as_ref().map(evaluation_json),
        "split_at": split_at,
        "data_until": now,
        "kind": serving.kind.as_str(),
        "family": serving.family().as_str(),
        "algorithm": serving.family().algorithm(),
        "selection": serving.selection,
    });
    let training = json!({
        "lake_tables": ["silver.opportunities", "silver.stage_histories", "silver.close_date_changes", "silver.interaction_logs",
                        "silver.leads", "silver.tickets", "silver.subscriptions", "silver.analytics_events",
                        "silver.invoices", "silver.payments", "silver.accounts", "silver.pipeline_stages"],
        "cutoffs": "monthly",
        "train_from": split_at - Duration::days(730),
        "split_at": split_at,
        "data_until": now,
        "train_rows": split.train.labelled().count(),
        "test_rows": split.test.labelled().count(),
    });
    let mut params = serving.params();
    params["training_set"] = training;
    let version =
        intelligence::add_version(tx.conn(), tenant, model.id, &params, &metrics, serving.outcomes as i64, Utc::now())
            .await?;
    let scorer = if promoted {
        intelligence::promote(tx.conn(), model.id, version.id).await?;
        serving
    } else {
        intelligence::reject(tx.conn(), version.id).await?;
        incumbent.unwrap_or(serving)
    };
    let serving_version = if promoted { version.id } else { active.map_or(version.id, |v| v.id) };

    // Score every entity open now with the model in service.
    let open = features::compute(&ctx, entity, &[now], now).await?;
    let rows = predictions(&scorer, &open, entity_type, |_, _| true);
    let predictions = intelligence::add_predictions(tx.conn(), tenant, serving_version, Utc::now(), &rows).await?;
    tx.commit().await?;
    info!(
        model = key,
        version = version.version,
        promoted,
        kind = scorer.kind.as_str(),
        family = scorer.family().as_str(),
        auc = candidate_eval.auc,
        incumbent_auc = incumbent_eval.as_ref().and_then(|e| e.auc),
        predictions,
        "model retrained"
    );
    Ok(Retrained {
        entity,
        version: version.version,
        kind: scorer.kind,
        family: scorer.family(),
        promoted,
        candidate: candidate_eval,
        incumbent: incumbent_eval,
        predictions,
        data_until: now,
    })
}

/// The scores of the open records of `set` under `scorer` that `keep` (given the id and the
/// probability) accepts, with their top factors each way — explained only once kept, since a
/// boosted model's explanation costs far more than its probability.
fn predictions(
    scorer: &Scorer,
    set: &FeatureSet,
    entity_type: EntityType,
    keep: impl Fn(uuid::Uuid, f64) -> bool,
) -> Vec<NewPrediction> {
    let mut rows = Vec::with_capacity(set.len());
    for i in 0..set.len() {
        let Ok(id) = uuid::Uuid::parse_str(&set.rows[i].id) else {
            warn!(id = %set.rows[i].id, "an entity id that is not a UUID; not scored");
            continue;
        };
        if !keep(id, scorer.probability(set.row(i))) {
            continue;
        }
        let score = scorer.score(set.row(i), TOP_FACTORS);
        let factors: Vec<serde_json::Value> = score
            .positive
            .iter()
            .chain(&score.negative)
            .map(|f| json!({"feature": f.feature, "value": f.value, "contribution": f.contribution}))
            .collect();
        rows.push(NewPrediction {
            entity_type,
            entity_id: id,
            score: score.probability,
            label: None,
            explanation: serde_json::Value::Array(factors),
        });
    }
    rows
}

/// A stored score is replaced between retrainings when the model in service now gives the record a
/// probability at least this far from it: what a logged meeting or a stage move does, not the few
/// hundredths of a percent the passing of time alone does.
pub const RESCORE_DELTA: f64 = 0.005;

/// Scores the open records of `set` (features as of the decision time) with `scorer`, version
/// `version` of `model`, and stores a prediction for each record whose probability moved by at least
/// [`RESCORE_DELTA`] from the latest one stored (or that has none), so a record's score follows what
/// happens to it between retrainings. Returns how many were stored.
pub async fn rescore(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    model: ModelId,
    version: ModelVersionId,
    scorer: &Scorer,
    set: &FeatureSet,
    at: DateTime<Utc>,
) -> Result<u64> {
    let entity_type = registry(set.entity).3;
    let stored: HashMap<uuid::Uuid, f64> =
        intelligence::latest_scores(conn, model, entity_type).await?.into_iter().collect();
    let moved = predictions(scorer, set, entity_type, |id, score| {
        stored.get(&id).is_none_or(|old| (score - old).abs() >= RESCORE_DELTA)
    });
    if moved.is_empty() {
        return Ok(0);
    }
    Ok(intelligence::add_predictions(conn, tenant, version, at, &moved).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(auc: Option<f64>, log_loss: f64) -> Evaluation {
        Evaluation {
            rows: 10,
            positives: 5,
            auc,
            log_loss,
            brier: 0.2,
            calibration_error: 0.1,
            score_time: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn only_a_better_candidate_is_promoted() {
        assert!(better(&eval(Some(0.6), 0.7), None));
        assert!(better(&eval(Some(0.81), 0.7), Some(&eval(Some(0.80), 0.5))));
        assert!(!better(&eval(Some(0.79), 0.4), Some(&eval(Some(0.80), 0.5))), "a worse AUC loses");
        assert!(better(&eval(Some(0.8), 0.4), Some(&eval(Some(0.8), 0.5))), "a tie goes to log-loss");
        assert!(!better(&eval(Some(0.8), 0.5), Some(&eval(Some(0.8), 0.5))), "equal is not better");
        assert!(!better(&eval(None, 0.1), Some(&eval(Some(0.5), 0.9))));
    }
}
