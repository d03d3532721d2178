//! Sentiment scores of customer text (`sentiment_scores`): written by the intelligence stage in a
//! tenant transaction, one row per scored record and model version, replaced in place when the text
//! changed. From here they flow through CDC into the lake like any CRM write.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::{ModelVersionId, SentimentLabel, SentimentSubject, TenantId};
use crate::{Error, Result};

/// One score to store.
#[derive(Debug, Clone)]
pub struct NewSentiment {
    pub subject_type: SentimentSubject,
    pub subject_id: Uuid,
    pub label: SentimentLabel,
    /// P(positive) − P(negative), in [-1, 1].
    pub score: f64,
    /// P(negative), P(neutral), P(positive).
    pub probabilities: [f64; 3],
    /// Hex SHA-256 of the scored text.
    pub text_sha256: String,
}

fn check(rows: &[NewSentiment]) -> Result<()> {
    for r in rows {
        let probabilities_ok = r.probabilities.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p));
        let score_ok = r.score.is_finite() && (-1.0..=1.0).contains(&r.score);
        if !score_ok || !probabilities_ok {
            return Err(Error::invalid(format!("the sentiment of {} is not a valid score", r.subject_id)));
        }
        if r.text_sha256.len() != 64 || !r.text_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!("the text hash of {} is not hex SHA-256", r.subject_id)));
        }
    }
    Ok(())
}

/// Inserts or replaces the scores of `version` (None: the lexicon baseline) for a batch of subjects, in
/// one statement. A subject scored before by the same version gets the new label, score and hash.
/// Returns how many rows were written.
pub async fn upsert(
    conn: &mut PgConnection,
    tenant: TenantId,
    version: Option<ModelVersionId>,
    at: DateTime<Utc>,
    rows: &[NewSentiment],
) -> Result<u64> {
    check(rows)?;
    let ids: Vec<Uuid> = rows.iter().map(|_| Uuid::now_v7()).collect();
    let types: Vec<&str> = rows.iter().map(|r| r.subject_type.as_str()).collect();
    let subjects: Vec<Uuid> = rows.iter().map(|r| r.subject_id).collect();
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let scores: Vec<f64> = rows.iter().map(|r| r.score).collect();
    let probabilities: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let [negative, neutral, positive] = r.probabilities;
            serde_json::json!({"negative": negative, "neutral": neutral, "positive": positive})
        })
        .collect();
    let hashes: Vec<&str> = rows.iter().map(|r| r.text_sha256.as_str()).collect();
    let done = sqlx::query(include_str!("sentiment_upsert.sql"))
        .bind(tenant)
        .bind(version)
        .bind(at)
        .bind(&ids)
        .bind(&types)
        .bind(&subjects)
        .bind(&labels)
        .bind(&scores)
        .bind(&probabilities)
        .bind(&hashes)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// The text hash each subject of `subject_type` was last scored on by `version` — what the scorer
/// compares with to skip records whose text did not change.
pub async fn scored_hashes(
    conn: &mut PgConnection,
    subject_type: SentimentSubject,
    version: Option<ModelVersionId>,
) -> Result<HashMap<Uuid, String>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT subject_id, text_sha256 FROM sentiment_scores
          WHERE subject_type = $1 AND model_version_id IS NOT DISTINCT FROM $2",
    )
    .bind(subject_type.as_str())
    .bind(version)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// A stored score.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSentiment {
    pub subject_type: SentimentSubject,
    pub subject_id: Uuid,
    pub label: SentimentLabel,
    pub score: f64,
    pub model_version_id: Option<ModelVersionId>,
    pub scored_at: DateTime<Utc>,
}

/// Every score of `subject_type` in the tenant (tests and reports).
pub async fn list(conn: &mut PgConnection, subject_type: SentimentSubject) -> Result<Vec<StoredSentiment>> {
    Ok(sqlx::query_as(
        "SELECT subject_type, subject_id, label, score, model_version_id, scored_at FROM sentiment_scores
          WHERE subject_type = $1 ORDER BY subject_id, scored_at",
    )
    .bind(subject_type.as_str())
    .fetch_all(conn)
    .await?)
}
