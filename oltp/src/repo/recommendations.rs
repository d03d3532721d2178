//! Next-best-action recommendations for reps, and the feedback they give (accept, dismiss, snooze).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::found;
use crate::model::{
    EntityType, FeedbackVerdict, RecommendationAction, RecommendationId, RecommendationStatus, TenantId, UserId,
};
use crate::{Error, Result};

/// A next-best action for a rep.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Recommendation {
    pub id: RecommendationId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    pub action: RecommendationAction,
    pub title: String,
    pub rationale: String,
    pub score: f64,
    pub status: RecommendationStatus,
    pub snoozed_until: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewRecommendation {
    pub user_id: UserId,
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    pub action: RecommendationAction,
    pub title: String,
    pub rationale: String,
    pub score: f64,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A rep's answer to a recommendation.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    pub verdict: FeedbackVerdict,
    pub reason: Option<String>,
    pub snooze_until: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, user_id, entity_type, entity_id, action, title, rationale, score, status, \
    snoozed_until, expires_at, created_at"
    };
}

pub async fn create(conn: &mut PgConnection, tenant: TenantId, new: &NewRecommendation) -> Result<Recommendation> {
    if !(0.0..=1.0).contains(&new.score) {
        return Err(Error::invalid("score must be within 0..1"));
    }
    let sql = concat!(
        "INSERT INTO recommendations (tenant_id, id, user_id, entity_type, entity_id, action, title, rationale, score, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
        columns!()
    );
    Ok(sqlx::query_as(sql)
        .bind(tenant)
        .bind(RecommendationId::new())
        .bind(new.user_id)
        .bind(new.entity_type)
        .bind(new.entity_id)
        .bind(new.action)
        .bind(&new.title)
        .bind(&new.rationale)
        .bind(new.score)
        .bind(new.expires_at)
        .fetch_one(conn)
        .await?)
}

/// The user's actionable recommendations at `now`: open ones, and snoozed ones whose snooze ended;
/// expired ones are left out. Best first.
pub async fn for_user(
    conn: &mut PgConnection,
    user: UserId,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Recommendation>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM recommendations WHERE user_id = $1 \
         AND (status = 'open' OR (status = 'snoozed' AND snoozed_until <= $2)) \
         AND (expires_at IS NULL OR expires_at > $2) ORDER BY score DESC, id LIMIT $3"
    );
    Ok(sqlx::query_as(sql).bind(user).bind(now).bind(i64::from(limit.clamp(1, 200))).fetch_all(conn).await?)
}

/// Records feedback and moves the recommendation to the matching status, in one transaction.
pub async fn give_feedback(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: RecommendationId,
    user: UserId,
    feedback: &Feedback,
) -> Result<Recommendation> {
    if feedback.reason.as_deref().is_some_and(|r| r.chars().count() > 1000) {
        return Err(Error::invalid("reason is longer than 1000 characters"));
    }
    if feedback.snooze_until.is_some_and(|t| t <= chrono::Utc::now()) {
        return Err(Error::invalid("snooze_until must be in the future"));
    }
    let (status, snooze) = match (feedback.verdict, feedback.snooze_until) {
        (FeedbackVerdict::Snooze, Some(until)) => (RecommendationStatus::Snoozed, Some(until)),
        (FeedbackVerdict::Snooze, None) => return Err(Error::invalid("snooze needs snooze_until")),
        (_, Some(_)) => return Err(Error::invalid("snooze_until is only valid with verdict snooze")),
        (FeedbackVerdict::Accept, None) => (RecommendationStatus::Accepted, None),
        (FeedbackVerdict::Dismiss, None) => (RecommendationStatus::Dismissed, None),
    };
    let sql = concat!(
        "UPDATE recommendations SET status = $2, snoozed_until = $3 WHERE id = $1 AND user_id = $4 RETURNING ",
        columns!()
    );
    let rec: Recommendation = found(
        sqlx::query_as(sql).bind(id).bind(status).bind(snooze).bind(user).fetch_optional(&mut *conn).await?,
        "recommendation",
    )?;
    sqlx::query(
        "INSERT INTO recommendation_feedback (tenant_id, id, recommendation_id, user_id, verdict, reason, snooze_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(id)
    .bind(user)
    .bind(feedback.verdict)
    .bind(&feedback.reason)
    .bind(feedback.snooze_until)
    .execute(conn)
    .await?;
    Ok(rec)
}
