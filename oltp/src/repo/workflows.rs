//! Workflows that span tables: lead conversion (lead → account + contact + opportunity in one
//! transaction) and the customer timeline (everything that happened with an account or a contact, in
//! time order).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::accounts::{self, Account, NewAccount};
use super::contacts::{self, Contact, NewContact};
use super::leads::{self, Lead};
use super::opportunities::{self, NewOpportunity, Opportunity};
use super::table;
use crate::model::{AccountId, ContactId, LeadId, LeadStatus, OpportunityKind, TenantId, UserId};
use crate::{Error, Result};

/// How to convert a lead. Without `account_id`/`contact_id` they are created from the lead.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadConversion {
    /// Attach to this existing account instead of creating one from the lead's company.
    pub account_id: Option<AccountId>,
    /// Use this existing contact instead of creating one from the lead.
    pub contact_id: Option<ContactId>,
    /// Also open an opportunity.
    pub opportunity: Option<ConversionOpportunity>,
}

/// The opportunity a conversion opens.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversionOpportunity {
    /// Default: "<company> — new business".
    pub name: Option<String>,
    pub amount: Decimal,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    pub close_date: NaiveDate,
    pub kind: Option<OpportunityKind>,
}

/// What a conversion made (or reused).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Converted {
    pub lead: Lead,
    pub account: Account,
    pub account_created: bool,
    pub contact: Contact,
    pub contact_created: bool,
    pub opportunity: Option<Opportunity>,
}

fn domain_of(email: Option<&str>) -> Option<String> {
    let domain = email?.rsplit_once('@')?.1.trim().to_lowercase();
    const FREE_MAIL: &[&str] = &["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "gmx.de"];
    (!domain.is_empty() && !FREE_MAIL.contains(&domain.as_str())).then_some(domain)
}

/// Converts a lead in the caller's transaction: everything or nothing. The new records are owned by
/// the lead's owner (or `by` when the lead has none); the lead's open activities follow the contact.
pub async fn convert_lead(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: LeadId,
    req: &LeadConversion,
    by: UserId,
) -> Result<Converted> {
    let lead: Lead = table::get(conn, &leads::TABLE, id.0, true).await?;
    if lead.status == LeadStatus::Converted {
        return Err(Error::state("the lead is already converted"));
    }
    let owner = lead.owner_id.or(Some(by));
    let company = lead.company.clone().unwrap_or_else(|| format!("{} {}", lead.first_name, lead.last_name));
    let (account, account_created) = match req.account_id {
        Some(a) => (
            table::get(conn, &accounts::TABLE, a.0, false)
                .await
                .map_err(|_| Error::invalid("account_id: no such account"))?,
            false,
        ),
        None => {
            let new = NewAccount {
                name: company.clone(),
                domain: domain_of(lead.email.as_deref()),
                owner_id: owner,
                ..NewAccount::default()
            };
            (accounts::create(conn, tenant, &new).await?, true)
        }
    };
    let (contact, contact_created) = match req.contact_id {
        Some(c) => (
            table::get(conn, &contacts::TABLE, c.0, false)
                .await
                .map_err(|_| Error::invalid("contact_id: no such contact"))?,
            false,
        ),
        None => {
            let new = NewContact {
                account_id: Some(account.id),
                owner_id: owner,
                first_name: lead.first_name.clone(),
                last_name: lead.last_name.clone(),
                email: lead.email.clone(),
                phone: None,
                title: lead.title.clone(),
            };
            (contacts::create(conn, tenant, &new).await?, true)
        }
    };
    let opportunity = match &req.opportunity {
        None => None,
        Some(o) => {
            let new = NewOpportunity {
                account_id: account.id,
                primary_contact_id: Some(contact.id),
                owner_id: owner,
                name: o.name.clone().unwrap_or_else(|| format!("{company} — new business")),
                kind: o.kind.unwrap_or(OpportunityKind::NewBusiness),
                amount: o.amount,
                currency: o.currency.clone().unwrap_or_else(|| account.currency.clone()),
                close_date: o.close_date,
            };
            Some(opportunities::create(conn, tenant, &new, Some(by)).await?)
        }
    };
    sqlx::query("UPDATE tasks SET contact_id = $2, account_id = coalesce(account_id, $3) WHERE lead_id = $1 AND contact_id IS NULL")
        .bind(id)
        .bind(contact.id)
        .bind(account.id)
        .execute(&mut *conn)
        .await?;
    let lead = leads::mark_converted(conn, id, account.id, contact.id, opportunity.as_ref().map(|o| o.id)).await?;
    Ok(Converted { lead, account, account_created, contact, contact_created, opportunity })
}

/// One thing that happened with a customer.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TimelineEvent {
    pub at: DateTime<Utc>,
    /// `activity`, `interaction`, `ticket`, `stage_change`, `invoice`.
    pub kind: String,
    /// Id of the record the event comes from (task, interaction, ticket, stage change, invoice).
    pub id: Uuid,
    pub title: String,
    /// Kind-specific detail: activity kind and status, ticket status, stage name, invoice total…
    pub detail: Option<String>,
    pub user_id: Option<Uuid>,
}

/// Whose timeline.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    Account(AccountId),
    Contact(ContactId),
}

/// The customer's events, newest first, strictly after the page boundary `before` (the `(at, id)` of
/// the previous page's last event), at most `limit`.
pub async fn timeline(
    conn: &mut PgConnection,
    subject: Subject,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: u32,
) -> Result<Vec<TimelineEvent>> {
    let (account, contact) = match subject {
        Subject::Account(a) => (Some(a.0), None),
        Subject::Contact(c) => (None, Some(c.0)),
    };
    // $1 account, $2 contact: each branch matches the subject through its own indexed column.
    let sql = "
        SELECT * FROM (
          SELECT coalesce(t.completed_at, t.due_at, t.created_at) AS at, 'activity' AS kind, t.id, t.subject AS title,
                 t.kind || ' · ' || t.status AS detail, t.owner_id AS user_id
            FROM tasks t WHERE t.account_id = $1 OR t.contact_id = $2
          UNION ALL
          SELECT i.occurred_at, 'interaction', i.id, coalesce(i.subject, i.kind),
                 i.kind || coalesce(' · ' || i.direction, ''), i.user_id
            FROM interaction_logs i WHERE i.account_id = $1 OR i.contact_id = $2
          UNION ALL
          SELECT k.created_at, 'ticket', k.id, k.number || ' ' || k.subject, k.status || ' · ' || k.priority, k.owner_id
            FROM tickets k WHERE k.account_id = $1 OR k.contact_id = $2
          UNION ALL
          SELECT h.changed_at, 'stage_change', h.id, o.name, s.name || ' · ' || h.amount || ' ' || h.currency, h.changed_by
            FROM stage_histories h JOIN opportunities o ON o.id = h.opportunity_id
            JOIN pipeline_stages s ON s.id = h.to_stage_id
            WHERE o.account_id = $1 OR o.primary_contact_id = $2
          UNION ALL
          SELECT (v.issued_on::timestamp AT TIME ZONE 'UTC'), 'invoice', v.id, v.number,
                 v.status || ' · ' || v.total || ' ' || v.currency, NULL::uuid
            FROM invoices v WHERE v.account_id = $1
              OR v.account_id = (SELECT c.account_id FROM contacts c WHERE c.id = $2)
        ) e
        WHERE $3::timestamptz IS NULL OR (e.at, e.id) < ($3, $5)
        ORDER BY e.at DESC, e.id DESC LIMIT $4";
    Ok(sqlx::query_as(sql)
        .bind(account)
        .bind(contact)
        .bind(before.map(|b| b.0))
        .bind(i64::from(limit.clamp(1, super::PageRequest::MAX_LIMIT)))
        .bind(before.map(|b| b.1))
        .fetch_all(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::domain_of;

    #[test]
    fn company_domains_come_from_work_emails_only() {
        assert_eq!(domain_of(Some("ada@Analytical.Engines")), Some("analytical.engines".into()));
        assert_eq!(domain_of(Some("ada@gmail.com")), None);
        assert_eq!(domain_of(Some("no-at-sign")), None);
        assert_eq!(domain_of(None), None);
    }
}
