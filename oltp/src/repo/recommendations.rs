//! Next-best-action recommendations for reps, and the feedback they give (accept, dismiss, snooze).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::found;
use crate::model::{
    DismissReason, EntityType, FeedbackVerdict, ModelVersionId, PredictionId, RecommendationAction, RecommendationId,
    RecommendationStatus, TenantId, UserId,
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
    /// The rule that proposed it (`hot_lead_untouched`, `stalled_deal`, …); none for actions people
    /// created.
    pub kind: Option<String>,
    /// What is at stake times the model's probability that it matters, in `currency`.
    pub expected_value: Option<Decimal>,
    pub currency: Option<String>,
    /// The model factors behind the rationale: `[{"feature", "value", "contribution"}]`.
    #[schema(value_type = Vec<Object>)]
    pub factors: serde_json::Value,
    pub model_version_id: Option<ModelVersionId>,
    pub prediction_id: Option<PredictionId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
    /// Why the action was dismissed (only with `dismiss`; a dismissal without one is read as
    /// `not_relevant`). `already_handled` and `not_mine` say the data behind the action was stale or
    /// wrong rather than the advice: they do not count against the rep's acceptance of the action
    /// type, and they set how soon the action may come back (see [`Quiet`]).
    #[serde(default)]
    pub reason_code: Option<DismissReason>,
    /// A note in the rep's words (at most 1000 characters).
    pub reason: Option<String>,
    /// With `snooze`: when the action comes back.
    pub snooze_until: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, user_id, entity_type, entity_id, action, title, rationale, score, status, \
    snoozed_until, expires_at, kind, expected_value, currency, factors, model_version_id, prediction_id, \
    created_at, updated_at"
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
    if feedback.reason_code.is_some() && feedback.verdict != FeedbackVerdict::Dismiss {
        return Err(Error::invalid("reason_code is only valid with verdict dismiss"));
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
        "INSERT INTO recommendation_feedback (tenant_id, id, recommendation_id, user_id, verdict, reason_code, \
                                              reason, snooze_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(id)
    .bind(user)
    .bind(feedback.verdict)
    .bind(feedback.reason_code)
    .bind(&feedback.reason)
    .bind(feedback.snooze_until)
    .execute(conn)
    .await?;
    Ok(rec)
}

/// An action a rule proposes for a rep; [`sync`] turns the proposals of one refresh into rows.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub user_id: UserId,
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    pub kind: String,
    pub action: RecommendationAction,
    pub title: String,
    pub rationale: String,
    /// Ranking score in 0..=1.
    pub score: f64,
    pub expected_value: Decimal,
    pub currency: String,
    pub factors: serde_json::Value,
    pub expires_at: DateTime<Utc>,
    pub model_version_id: Option<ModelVersionId>,
}

/// What one [`sync`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// New actions.
    pub inserted: u64,
    /// Live actions whose score, wording or value changed.
    pub updated: u64,
    /// Live actions no rule proposes any more (the situation was handled): now `done`.
    pub resolved: u64,
    /// Proposals left out because the rep answered the same action recently (see [`Quiet`]).
    pub suppressed: u64,
}

/// How long [`sync`] keeps an answered action from being proposed again, by the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    /// Accepted, or dismissed as not relevant (or without a reason code).
    pub answered: chrono::Duration,
    /// Dismissed as already handled outside the CRM: proposed again after this if the situation
    /// still holds (for an untouched lead, the rep's word counts as a touch).
    pub handled: chrono::Duration,
    /// Dismissed as not the rep's record: no action of any kind on that record for that rep.
    pub not_mine: chrono::Duration,
}

impl Default for Quiet {
    fn default() -> Self {
        Quiet {
            answered: chrono::Duration::days(30),
            handled: chrono::Duration::days(7),
            not_mine: chrono::Duration::days(180),
        }
    }
}

impl Quiet {
    fn longest(&self) -> chrono::Duration {
        self.answered.max(self.handled).max(self.not_mine)
    }
}

/// Replaces the rule-made actions of the tenant with `proposals` — as one transaction's worth of
/// statements on `conn`:
/// - a proposal whose rep, record and kind match a live (open or snoozed) action updates it in place
///   (the status, and so a snooze, is kept), and only when something shown changed;
/// - one the rep answered lately is not proposed again: accepted or dismissed as not relevant within
///   [`Quiet::answered`], dismissed as already handled within [`Quiet::handled`]; after a dismissal as
///   not the rep's record, nothing on that record is proposed to the rep within [`Quiet::not_mine`]
///   (a live action on it is marked `done`);
/// - the rest are inserted as `open`;
/// - live actions of a kind in `kinds` that no proposal matches are marked `done`, those past their
///   expiry `expired`; a live action still proposed is renewed once half its life has passed.
///
/// Actions without a kind (made by people or other tools) are never touched.
pub async fn sync(
    conn: &mut PgConnection,
    tenant: TenantId,
    kinds: &[&str],
    proposals: &[Proposal],
    now: DateTime<Utc>,
    quiet: &Quiet,
) -> Result<Synced> {
    if let Some(bad) = proposals.iter().find(|p| !(0.0..=1.0).contains(&p.score)) {
        return Err(Error::invalid(format!("the score of {} {} is outside 0..1", bad.kind, bad.entity_id)));
    }
    if let Some(bad) = proposals.iter().find(|p| !kinds.contains(&p.kind.as_str())) {
        return Err(Error::invalid(format!("proposal kind {} is not among the synced kinds", bad.kind)));
    }
    let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
    // Past their expiry they are gone from the reps' lists: no longer live (a proposal starts anew).
    sqlx::query(
        "UPDATE recommendations SET status = 'expired'
          WHERE kind = ANY($1) AND status IN ('open', 'snoozed') AND expires_at <= $2",
    )
    .bind(&kinds)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let live: Vec<(RecommendationId, UserId, Uuid, String)> = sqlx::query_as(
        "SELECT id, user_id, entity_id, kind FROM recommendations
          WHERE kind = ANY($1) AND status IN ('open', 'snoozed')",
    )
    .bind(&kinds)
    .fetch_all(&mut *conn)
    .await?;
    // Answered lately, with the reason of a dismissal (the latest feedback's).
    type Answered = (UserId, Uuid, String, DateTime<Utc>, Option<DismissReason>);
    let answered: Vec<Answered> = sqlx::query_as(
        "SELECT r.user_id, r.entity_id, r.kind, r.updated_at, f.reason_code
           FROM recommendations r
           LEFT JOIN LATERAL (SELECT reason_code FROM recommendation_feedback f
                               WHERE f.tenant_id = r.tenant_id AND f.recommendation_id = r.id
                               ORDER BY f.created_at DESC, f.id DESC LIMIT 1) f ON r.status = 'dismissed'
          WHERE r.kind = ANY($1) AND r.status IN ('dismissed', 'accepted') AND r.updated_at > $2",
    )
    .bind(&kinds)
    .bind(now - quiet.longest())
    .fetch_all(&mut *conn)
    .await?;
    let mut quiet_keys = std::collections::HashSet::new();
    let mut not_mine = std::collections::HashSet::new();
    for (user, entity, kind, at, code) in answered {
        let period = match code {
            Some(DismissReason::NotMine) => quiet.not_mine,
            Some(DismissReason::AlreadyHandled) => quiet.handled,
            Some(DismissReason::NotRelevant) | None => quiet.answered,
        };
        if at + period <= now {
            continue;
        }
        if code == Some(DismissReason::NotMine) {
            not_mine.insert((user, entity));
        } else {
            quiet_keys.insert((user, entity, kind));
        }
    }
    let mut live: std::collections::HashMap<(UserId, Uuid, String), RecommendationId> =
        live.into_iter().map(|(id, user, entity, kind)| ((user, entity, kind), id)).collect();

    let mut out = Synced::default();
    let mut fresh: Vec<&Proposal> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in proposals {
        let key = (p.user_id, p.entity_id, p.kind.clone());
        if !seen.insert(key.clone()) {
            continue; // the first proposal of a key wins
        }
        if not_mine.contains(&(p.user_id, p.entity_id)) {
            // Not the rep's record: a live action of another kind on it is left to be resolved below.
            out.suppressed += 1;
        } else if let Some(id) = live.remove(&key) {
            let changed = sqlx::query(
                "UPDATE recommendations SET title = $2, rationale = $3, score = $4, expected_value = $5,
                        currency = $6, factors = $7, expires_at = $8, model_version_id = $9, action = $10
                  WHERE id = $1 AND ((title, rationale, round(score::numeric, 3), expected_value, currency,
                                      factors, model_version_id, action)
                                     IS DISTINCT FROM ($2, $3, round($4::numeric, 3), $5, $6, $7, $9, $10)
                                     OR expires_at < $11)",
            )
            .bind(id)
            .bind(&p.title)
            .bind(&p.rationale)
            .bind(p.score)
            .bind(p.expected_value)
            .bind(&p.currency)
            .bind(&p.factors)
            .bind(p.expires_at)
            .bind(p.model_version_id)
            .bind(p.action)
            // Still proposed: renewed once half its life has passed.
            .bind(now + (p.expires_at - now) / 2)
            .execute(&mut *conn)
            .await?;
            out.updated += changed.rows_affected();
        } else if quiet_keys.contains(&key) {
            out.suppressed += 1;
        } else {
            fresh.push(p);
        }
    }
    if !fresh.is_empty() {
        let ids: Vec<Uuid> = fresh.iter().map(|_| RecommendationId::new().0).collect();
        let users: Vec<Uuid> = fresh.iter().map(|p| p.user_id.0).collect();
        let types: Vec<String> = fresh.iter().map(|p| p.entity_type.to_string()).collect();
        let entities: Vec<Uuid> = fresh.iter().map(|p| p.entity_id).collect();
        let kinds: Vec<&str> = fresh.iter().map(|p| p.kind.as_str()).collect();
        let actions: Vec<String> = fresh.iter().map(|p| p.action.to_string()).collect();
        let titles: Vec<&str> = fresh.iter().map(|p| p.title.as_str()).collect();
        let rationales: Vec<&str> = fresh.iter().map(|p| p.rationale.as_str()).collect();
        let scores: Vec<f64> = fresh.iter().map(|p| p.score).collect();
        let values: Vec<Decimal> = fresh.iter().map(|p| p.expected_value).collect();
        let currencies: Vec<&str> = fresh.iter().map(|p| p.currency.as_str()).collect();
        let factors: Vec<serde_json::Value> = fresh.iter().map(|p| p.factors.clone()).collect();
        let expiries: Vec<DateTime<Utc>> = fresh.iter().map(|p| p.expires_at).collect();
        let versions: Vec<Option<Uuid>> = fresh.iter().map(|p| p.model_version_id.map(|v| v.0)).collect();
        let done = sqlx::query(
            "INSERT INTO recommendations (tenant_id, id, user_id, entity_type, entity_id, kind, action, title,
                                          rationale, score, expected_value, currency, factors, expires_at,
                                          model_version_id)
             SELECT $1, u.* FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::uuid[], $6::text[], $7::text[],
                                        $8::text[], $9::text[], $10::float8[], $11::numeric[], $12::text[],
                                        $13::jsonb[], $14::timestamptz[], $15::uuid[]) AS u",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(&users)
        .bind(&types)
        .bind(&entities)
        .bind(&kinds)
        .bind(&actions)
        .bind(&titles)
        .bind(&rationales)
        .bind(&scores)
        .bind(&values)
        .bind(&currencies)
        .bind(&factors)
        .bind(&expiries)
        .bind(&versions)
        .execute(&mut *conn)
        .await?;
        out.inserted = done.rows_affected();
    }
    let resolved: Vec<Uuid> = live.into_values().map(|id| id.0).collect();
    if !resolved.is_empty() {
        let done = sqlx::query("UPDATE recommendations SET status = 'done' WHERE id = ANY($1)")
            .bind(&resolved)
            .execute(&mut *conn)
            .await?;
        out.resolved = done.rows_affected();
    }
    Ok(out)
}
