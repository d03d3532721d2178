//! Interactions reps log: calls, meetings, e-mails and notes with a lead, contact, account or deal
//! (`interaction_logs`). What the engagement features and next-best actions read, through CDC.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::model::{
    AccountId, ContactId, Direction, InteractionId, InteractionKind, LeadId, OpportunityId, TenantId, UserId,
};
use crate::{Error, Result};

/// A logged interaction.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Interaction {
    pub id: InteractionId,
    pub tenant_id: TenantId,
    pub kind: InteractionKind,
    pub direction: Option<Direction>,
    /// Who logged it.
    pub user_id: Option<UserId>,
    pub account_id: Option<AccountId>,
    pub contact_id: Option<ContactId>,
    pub lead_id: Option<LeadId>,
    pub opportunity_id: Option<OpportunityId>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub duration_seconds: Option<i32>,
    pub occurred_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// An interaction to log; at least one of the record ids is required.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInteraction {
    pub kind: InteractionKind,
    pub direction: Option<Direction>,
    pub account_id: Option<AccountId>,
    pub contact_id: Option<ContactId>,
    pub lead_id: Option<LeadId>,
    pub opportunity_id: Option<OpportunityId>,
    /// Up to 500 characters.
    pub subject: Option<String>,
    /// Up to 20,000 characters.
    pub body: Option<String>,
    #[schema(minimum = 0, maximum = 86400)]
    pub duration_seconds: Option<i32>,
    /// When it happened (default: now); not in the future.
    pub occurred_at: Option<DateTime<Utc>>,
}

impl NewInteraction {
    /// Field problems, as `(field, message)`.
    pub fn problems(&self, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.account_id.is_none() && self.contact_id.is_none() && self.lead_id.is_none() && self.opportunity_id.is_none()
        {
            out.push(("lead_id", "name the lead, contact, account or opportunity the interaction was with".to_owned()));
        }
        if self.subject.as_deref().is_some_and(|s| s.chars().count() > 500) {
            out.push(("subject", "at most 500 characters".to_owned()));
        }
        if self.body.as_deref().is_some_and(|s| s.chars().count() > 20_000) {
            out.push(("body", "at most 20,000 characters".to_owned()));
        }
        if self.duration_seconds.is_some_and(|d| !(0..=86_400).contains(&d)) {
            out.push(("duration_seconds", "between 0 and 86400".to_owned()));
        }
        if self.occurred_at.is_some_and(|t| t > now + chrono::Duration::minutes(5)) {
            out.push(("occurred_at", "must not be in the future".to_owned()));
        }
        out
    }
}

/// Logs `new` for `user`, and moves `last_activity_at` of the lead, opportunity and account it names
/// forward, in the caller's transaction.
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    new: &NewInteraction,
    now: DateTime<Utc>,
) -> Result<Interaction> {
    if let Some((field, message)) = new.problems(now).into_iter().next() {
        return Err(Error::invalid(format!("{field}: {message}")));
    }
    let at = new.occurred_at.unwrap_or(now);
    let row: Interaction = sqlx::query_as(
        "INSERT INTO interaction_logs (tenant_id, id, kind, direction, user_id, account_id, contact_id, lead_id,
                                       opportunity_id, subject, body, duration_seconds, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         RETURNING id, tenant_id, kind, direction, user_id, account_id, contact_id, lead_id, opportunity_id, subject,
                   body, duration_seconds, occurred_at, created_at",
    )
    .bind(tenant)
    .bind(InteractionId::new())
    .bind(new.kind)
    .bind(new.direction)
    .bind(user)
    .bind(new.account_id)
    .bind(new.contact_id)
    .bind(new.lead_id)
    .bind(new.opportunity_id)
    .bind(&new.subject)
    .bind(&new.body)
    .bind(new.duration_seconds)
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    for (table, id) in [
        ("leads", new.lead_id.map(|i| i.0)),
        ("opportunities", new.opportunity_id.map(|i| i.0)),
        ("accounts", new.account_id.map(|i| i.0)),
    ] {
        let Some(id) = id else { continue };
        // Table names are the constants above.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET last_activity_at = $2 WHERE id = $1 AND (last_activity_at IS NULL OR last_activity_at < $2)"
        )))
        .bind(id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(row)
}
