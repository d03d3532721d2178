//! The model registry (`ai_models`, `model_versions`) and the predictions models write back
//! (`predictions`). Written by the intelligence stage through these functions — inside a tenant
//! transaction, so row-level security applies — and from there they flow through CDC to the lake
//! like any CRM write.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::{EntityType, ModelId, ModelVersionId, PredictionId, TenantId};
use crate::{Error, Result};

/// A registered model of a tenant (one per task and key).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Model {
    pub id: ModelId,
    pub key: String,
    pub name: String,
    pub task: String,
}

/// The model `key` of the tenant, created on first use.
pub async fn ensure_model(
    conn: &mut PgConnection,
    tenant: TenantId,
    key: &str,
    name: &str,
    task: &str,
    description: &str,
) -> Result<Model> {
    // Read first, and insert only what is missing: a no-op upsert still writes a row version, which
    // CDC carries to the lake as a change to the tenant (and so wakes every job that waits for one).
    const FIND: &str = "SELECT id, key, name, task FROM ai_models WHERE tenant_id = $1 AND key = $2";
    if let Some(found) = sqlx::query_as(FIND).bind(tenant).bind(key).fetch_optional(&mut *conn).await? {
        return Ok(found);
    }
    let inserted = sqlx::query_as(
        "INSERT INTO ai_models (tenant_id, id, key, name, task, description) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, key) DO NOTHING
         RETURNING id, key, name, task",
    )
    .bind(tenant)
    .bind(ModelId::new())
    .bind(key)
    .bind(name)
    .bind(task)
    .bind(description)
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(model) => Ok(model),
        // Another transaction inserted it meanwhile: read it now that it is committed.
        None => Ok(sqlx::query_as(FIND).bind(tenant).bind(key).fetch_one(conn).await?),
    }
}

/// One trained version of a model.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ModelVersion {
    pub id: ModelVersionId,
    pub model_id: ModelId,
    pub version: i32,
    pub status: String,
    pub params: serde_json::Value,
    pub metrics: serde_json::Value,
    pub training_rows: Option<i64>,
    pub trained_at: Option<DateTime<Utc>>,
}

const VERSION_COLUMNS: &str = "id, model_id, version, status, params, metrics, training_rows, trained_at";

/// Records a new version (status `candidate`, next version number).
pub async fn add_version(
    conn: &mut PgConnection,
    tenant: TenantId,
    model: ModelId,
    params: &serde_json::Value,
    metrics: &serde_json::Value,
    training_rows: i64,
    trained_at: DateTime<Utc>,
) -> Result<ModelVersion> {
    let sql = format!(
        "INSERT INTO model_versions (tenant_id, id, model_id, version, status, params, metrics, training_rows, trained_at)
         SELECT $1, $2, $3, coalesce(max(version), 0) + 1, 'candidate', $4, $5, $6, $7
           FROM model_versions WHERE model_id = $3
         RETURNING {VERSION_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(ModelVersionId::new())
        .bind(model)
        .bind(params)
        .bind(metrics)
        .bind(training_rows)
        .bind(trained_at)
        .fetch_one(conn)
        .await?)
}

/// The version in service, if any.
pub async fn active_version(conn: &mut PgConnection, model: ModelId) -> Result<Option<ModelVersion>> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM model_versions WHERE model_id = $1 AND status = 'active'");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(model).fetch_optional(conn).await?)
}

/// Puts `version` in service: the active one (if another) is retired first.
pub async fn promote(conn: &mut PgConnection, model: ModelId, version: ModelVersionId) -> Result<()> {
    sqlx::query(
        "UPDATE model_versions SET status = 'retired', updated_at = now()
          WHERE model_id = $1 AND status = 'active' AND id <> $2",
    )
    .bind(model)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    let done =
        sqlx::query("UPDATE model_versions SET status = 'active', updated_at = now() WHERE id = $1 AND model_id = $2")
            .bind(version)
            .bind(model)
            .execute(&mut *conn)
            .await?;
    if done.rows_affected() == 0 {
        return Err(Error::invalid(format!("model version {version} is not a version of model {model}")));
    }
    Ok(())
}

/// Marks a candidate that lost its comparison.
pub async fn reject(conn: &mut PgConnection, version: ModelVersionId) -> Result<()> {
    sqlx::query(
        "UPDATE model_versions SET status = 'retired', updated_at = now() WHERE id = $1 AND status = 'candidate'",
    )
    .bind(version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the version in service of `model` out of service (what served before it takes over: for a
/// model with a rule-based fallback, the rule). Returns how many versions were retired (0 or 1).
pub async fn retire_active(conn: &mut PgConnection, model: ModelId) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE model_versions SET status = 'retired', updated_at = now() WHERE model_id = $1 AND status = 'active'",
    )
    .bind(model)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A score to store.
#[derive(Debug, Clone)]
pub struct NewPrediction {
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    pub score: f64,
    pub label: Option<String>,
    /// Top factors: `[{"feature", "value", "contribution"}]`.
    pub explanation: serde_json::Value,
}

/// Stores a batch of predictions of one model version made at `at`, in one statement. Returns how
/// many were written.
pub async fn add_predictions(
    conn: &mut PgConnection,
    tenant: TenantId,
    version: ModelVersionId,
    at: DateTime<Utc>,
    rows: &[NewPrediction],
) -> Result<u64> {
    if let Some(bad) = rows.iter().find(|p| !p.score.is_finite()) {
        return Err(Error::invalid(format!("the score of {} is not a number", bad.entity_id)));
    }
    let ids: Vec<Uuid> = rows.iter().map(|_| PredictionId::new().0).collect();
    let types: Vec<String> = rows.iter().map(|p| p.entity_type.to_string()).collect();
    let entities: Vec<Uuid> = rows.iter().map(|p| p.entity_id).collect();
    let scores: Vec<f64> = rows.iter().map(|p| p.score).collect();
    let labels: Vec<Option<String>> = rows.iter().map(|p| p.label.clone()).collect();
    let explanations: Vec<serde_json::Value> = rows.iter().map(|p| p.explanation.clone()).collect();
    let done = sqlx::query(
        "INSERT INTO predictions (tenant_id, id, model_version_id, entity_type, entity_id, score, label, explanation, predicted_at)
         SELECT $1, u.id, $2, u.entity_type, u.entity_id, u.score, u.label, u.explanation, $3
           FROM unnest($4::uuid[], $5::text[], $6::uuid[], $7::float8[], $8::text[], $9::jsonb[])
                AS u(id, entity_type, entity_id, score, label, explanation)",
    )
    .bind(tenant)
    .bind(version)
    .bind(at)
    .bind(&ids)
    .bind(&types)
    .bind(&entities)
    .bind(&scores)
    .bind(&labels)
    .bind(&explanations)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The latest score of a record from each model that scored it, with its explanation.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EntityScore {
    /// The model's key (`lead_conversion`, `deal_win`, `account_churn`, …).
    pub model: String,
    pub task: String,
    pub version: i32,
    /// Whether that version is still the one in service (`active`) or was replaced since.
    pub version_status: String,
    pub prediction_id: PredictionId,
    /// The calibrated probability.
    pub score: f64,
    pub label: Option<String>,
    /// Top factors each way: `[{"feature", "value", "contribution"}]`, contributions to the
    /// log-odds relative to the average record.
    #[schema(value_type = Vec<Object>)]
    pub explanation: serde_json::Value,
    pub predicted_at: DateTime<Utc>,
}

/// The latest prediction of every model about one record, by model key.
pub async fn latest_for(conn: &mut PgConnection, entity_type: EntityType, entity: Uuid) -> Result<Vec<EntityScore>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (m.key) m.key AS model, m.task, v.version, v.status AS version_status,
                p.id AS prediction_id, p.score, p.label, p.explanation, p.predicted_at
           FROM predictions p
           JOIN model_versions v ON v.id = p.model_version_id
           JOIN ai_models m ON m.id = v.model_id
          WHERE p.entity_type = $1 AND p.entity_id = $2
          ORDER BY m.key, p.predicted_at DESC, p.id DESC",
    )
    .bind(entity_type)
    .bind(entity)
    .fetch_all(conn)
    .await?)
}

/// The latest score the model `model` (any of its versions) gave each record of `entity_type` it
/// scored, as `(record id, score)`.
pub async fn latest_scores(
    conn: &mut PgConnection,
    model: ModelId,
    entity_type: EntityType,
) -> Result<Vec<(Uuid, f64)>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (p.entity_id) p.entity_id, p.score
           FROM predictions p
           JOIN model_versions v ON v.id = p.model_version_id
          WHERE v.model_id = $1 AND p.entity_type = $2
          ORDER BY p.entity_id, p.predicted_at DESC, p.id DESC",
    )
    .bind(model)
    .bind(entity_type)
    .fetch_all(conn)
    .await?)
}
