//! Scoring a tenant's records: texts come from the tenant's lake session (silver tables), the
//! classifier is registered as the tenant's `sentiment` model (`ai_models` / `model_versions`, a new
//! version only when the training fingerprint changed), and the scores are written to
//! `sentiment_scores` through `orbas-oltp`, so they flow through CDC back into the lake.
//!
//! Incremental: a record is embedded only if the version in service has no score for it or scored
//! another text (the stored SHA-256 differs); identical texts are embedded once per run. The encoder
//! runs on a blocking thread, never on the async executor.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use orbas_oltp::db::Db;
use orbas_oltp::model::{ModelVersionId, SentimentLabel, SentimentSubject, TenantId};
use orbas_oltp::repo::intelligence;
use orbas_oltp::repo::sentiment::{self as repo, NewSentiment};
use orbas_warehouse::sql::{Lake, Limits};
use sha2::{Digest, Sha256};
use tracing::{info, instrument, warn};
use uuid::Uuid;

use super::{Classifier, eval};
use crate::embed::Embedder;
use crate::error::{Error, Result};

/// The registry key of the sentiment model.
pub const MODEL_KEY: &str = "sentiment";
/// Rows per write transaction.
const WRITE_BATCH: usize = 2_000;

/// What a scoring run needs: the encoder, the trained classifier, and its evaluation (stored with a
/// newly registered version).
#[derive(Debug, Clone)]
pub struct SentimentModel {
    pub embedder: Arc<Embedder>,
    pub classifier: Classifier,
    pub metrics: serde_json::Value,
}

/// What one run did for one kind of record.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreReport {
    pub subject: SentimentSubject,
    /// The registered version the scores belong to.
    pub version: i32,
    /// Whether this run registered (and put in service) that version.
    pub registered: bool,
    /// Records with text in the lake.
    pub records: usize,
    /// Records whose current score was still valid.
    pub unchanged: usize,
    /// Records scored now, and how many distinct texts that took.
    pub scored: usize,
    pub distinct_texts: usize,
    /// Labels of the records scored now: negative, neutral, positive.
    pub labels: [usize; 3],
}

/// Scores the tenant's tickets (subject and description).
pub async fn score_tickets(db: &Db, lake: &Lake, tenant: TenantId, model: &SentimentModel) -> Result<ScoreReport> {
    score_subjects(db, lake, tenant, model, SentimentSubject::Ticket).await
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The tenant's version of the sentiment model: the one in service if its fingerprint matches the
/// classifier's, else a new version, registered and promoted.
async fn register(db: &Db, tenant: TenantId, model: &SentimentModel) -> Result<(ModelVersionId, i32, bool)> {
    let mut tx = db.begin(tenant).await?;
    let description = "Tone of customer text: sentence embeddings (all-MiniLM-L6-v2) + softmax regression";
    let registered =
        intelligence::ensure_model(tx.conn(), tenant, MODEL_KEY, "Customer sentiment", "sentiment", description)
            .await?;
    let active = intelligence::active_version(tx.conn(), registered.id).await?;
    let fingerprint = &model.classifier.fingerprint;
    if let Some(v) = active.filter(|v| v.params["fingerprint"].as_str() == Some(fingerprint)) {
        tx.commit().await?;
        return Ok((v.id, v.version, false));
    }
    let rows = model.classifier.training_rows as i64;
    let params = model.classifier.params();
    let v =
        intelligence::add_version(tx.conn(), tenant, registered.id, &params, &model.metrics, rows, Utc::now()).await?;
    intelligence::promote(tx.conn(), registered.id, v.id).await?;
    tx.commit().await?;
    info!(version = v.version, "sentiment model registered");
    Ok((v.id, v.version, true))
}

/// The SQL that reads `(id, text parts…)` of a subject kind from the tenant's silver tables.
fn texts_sql(subject: SentimentSubject) -> &'static str {
    match subject {
        SentimentSubject::Ticket => "SELECT id, subject, description FROM tickets",
        // What customers wrote; agents' replies and internal notes say nothing about the customer.
        SentimentSubject::TicketMessage => {
            "SELECT id, body FROM ticket_messages WHERE author_contact_id IS NOT NULL AND NOT is_internal"
        }
        SentimentSubject::Interaction => "SELECT id, body FROM interaction_logs WHERE body IS NOT NULL",
    }
}

/// `(id, text)` of every record of `subject` in the tenant's lake.
async fn lake_texts(lake: &Lake, tenant: TenantId, subject: SentimentSubject) -> Result<Vec<(Uuid, String)>> {
    let ctx = lake.session(&tenant.to_string(), Limits::BATCH).await?;
    let batches = ctx.sql(texts_sql(subject)).await?.collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        let columns = (0..b.num_columns())
            .map(|c| datafusion::arrow::compute::cast(b.column(c), &DataType::Utf8))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let columns: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
        for r in 0..b.num_rows() {
            let Ok(id) = Uuid::parse_str(columns[0].value(r)) else {
                warn!(row = r, "a record id that is not a UUID; not scored");
                continue;
            };
            let part = |c: usize| if columns[c].is_null(r) { "" } else { columns[c].value(r) };
            let text = match subject {
                SentimentSubject::Ticket => orbas_oltp::seed::ticket_text(part(1), part(2)),
                _ => part(1).to_owned(),
            };
            out.push((id, text));
        }
    }
    Ok(out)
}

/// Scores every record of `subject` in the tenant's lake that the version in service has not scored
/// on its current text, and writes the scores.
#[instrument(skip_all, fields(tenant_id = %tenant, subject = subject.as_str()))]
pub async fn score_subjects(
    db: &Db,
    lake: &Lake,
    tenant: TenantId,
    model: &SentimentModel,
    subject: SentimentSubject,
) -> Result<ScoreReport> {
    let (version_id, version, registered) = register(db, tenant, model).await?;
    let records = lake_texts(lake, tenant, subject).await?;
    let known = {
        let mut tx = db.begin(tenant).await?;
        let known = repo::scored_hashes(tx.conn(), subject, Some(version_id)).await?;
        tx.commit().await?;
        known
    };
    let todo: Vec<(Uuid, String, String)> = records
        .iter()
        .map(|(id, text)| (*id, sha256_hex(text), text))
        .filter(|(id, hash, _)| known.get(id) != Some(hash))
        .map(|(id, hash, text)| (id, hash, text.clone()))
        .collect();
    // Each distinct text once.
    let mut distinct: HashMap<&str, usize> = HashMap::new();
    let mut texts: Vec<String> = Vec::new();
    for (_, hash, text) in &todo {
        distinct.entry(hash.as_str()).or_insert_with(|| {
            texts.push(text.clone());
            texts.len() - 1
        });
    }
    let distinct_texts = texts.len();
    let embedder = Arc::clone(&model.embedder);
    let (texts, embeddings) = tokio::task::spawn_blocking(move || embedder.embed(&texts).map(|e| (texts, e)))
        .await
        .map_err(|e| Error::Invalid(format!("the embedding task failed: {e}")))??;
    let predictions: Vec<_> = embeddings.iter().zip(&texts).map(|(e, t)| model.classifier.classify(e, t)).collect();
    let mut labels = [0usize; 3];
    let rows: Vec<NewSentiment> = todo
        .iter()
        .map(|(id, hash, _)| {
            let p = predictions[distinct[hash.as_str()]];
            labels[eval::index(p.label)] += 1;
            NewSentiment {
                subject_type: subject,
                subject_id: *id,
                label: p.label,
                score: p.score,
                probabilities: p.probabilities,
                text_sha256: hash.clone(),
            }
        })
        .collect();
    let at = Utc::now();
    for chunk in rows.chunks(WRITE_BATCH) {
        let mut tx = db.begin(tenant).await?;
        repo::upsert(tx.conn(), tenant, Some(version_id), at, chunk).await?;
        tx.commit().await?;
    }
    let report = ScoreReport {
        subject,
        version,
        registered,
        records: records.len(),
        unchanged: records.len() - todo.len(),
        scored: rows.len(),
        distinct_texts,
        labels,
    };
    info!(
        version,
        records = report.records,
        scored = report.scored,
        distinct_texts,
        negative = labels[0],
        neutral = labels[1],
        positive = labels[2],
        "sentiment scored"
    );
    Ok(report)
}

/// The label counts of a report, for printing.
pub fn label_counts(report: &ScoreReport) -> Vec<(SentimentLabel, usize)> {
    SentimentLabel::ALL.iter().map(|l| (*l, report.labels[eval::index(*l)])).collect()
}
