//! Leads: unqualified prospects, converted into an account, contact and opportunity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::found;
use super::table::{Filter, Op, Table, col, eq};
use crate::model::{
    AccountId, CampaignId, CompanySize, ContactId, LeadId, LeadSource, LeadStatus, OpportunityId, TenantId, UserId,
};
use crate::{Error, Result};

/// An unqualified prospect.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Lead {
    pub id: LeadId,
    pub tenant_id: TenantId,
    pub owner_id: Option<UserId>,
    pub campaign_id: Option<CampaignId>,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub company_size: Option<CompanySize>,
    pub source: LeadSource,
    pub status: LeadStatus,
    pub converted_at: Option<DateTime<Utc>>,
    pub converted_account_id: Option<AccountId>,
    pub converted_contact_id: Option<ContactId>,
    pub converted_opportunity_id: Option<OpportunityId>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLead {
    pub owner_id: Option<UserId>,
    pub campaign_id: Option<CampaignId>,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub company_size: Option<CompanySize>,
    pub source: LeadSource,
}

macro_rules! columns {
    () => {
        "id, tenant_id, owner_id, campaign_id, first_name, last_name, email, company, title, \
    company_size, source, status, converted_at, converted_account_id, converted_contact_id, \
    converted_opportunity_id, last_activity_at, created_at, updated_at"
    };
}

/// The `leads` table, for the generic list/get/delete statements.
pub const TABLE: Table = Table {
    name: "leads",
    entity: "lead",
    columns: &[
        "id",
        "tenant_id",
        "owner_id",
        "campaign_id",
        "first_name",
        "last_name",
        "email",
        "company",
        "title",
        "company_size",
        "source",
        "status",
        "converted_at",
        "converted_account_id",
        "converted_contact_id",
        "converted_opportunity_id",
        "last_activity_at",
        "created_at",
        "updated_at",
    ],
    owner: Some("owner_id"),
    filters: &[
        eq("owner_id", "uuid"),
        eq("campaign_id", "uuid"),
        eq("status", "text"),
        eq("source", "text"),
        Filter { param: "email", column: col("email", "text"), op: Op::IEq },
    ],
    sorts: &[col("last_name", "text"), col("created_at", "timestamptz"), col("updated_at", "timestamptz")],
};

pub async fn create(conn: &mut PgConnection, tenant: TenantId, new: &NewLead) -> Result<Lead> {
    super::table::insert(conn, &TABLE, tenant, LeadId::new().0, new).await
}

pub async fn get(conn: &mut PgConnection, id: LeadId) -> Result<Lead> {
    super::table::get(conn, &TABLE, id.0, false).await
}

/// Moves a lead to a working status. Conversion has its own path ([`mark_converted`]).
pub async fn set_status(conn: &mut PgConnection, id: LeadId, status: LeadStatus) -> Result<Lead> {
    if status == LeadStatus::Converted {
        return Err(Error::invalid("a lead is converted by the conversion workflow, not by a status change"));
    }
    let sql = concat!("UPDATE leads SET status = $2 WHERE id = $1 AND status <> 'converted' RETURNING ", columns!());
    found(sqlx::query_as(sql).bind(id).bind(status).fetch_optional(conn).await?, "lead")
}

/// Records a conversion; the caller creates the account, contact and opportunity in the same transaction.
pub async fn mark_converted(
    conn: &mut PgConnection,
    id: LeadId,
    account: AccountId,
    contact: ContactId,
    opportunity: Option<OpportunityId>,
) -> Result<Lead> {
    let sql = concat!(
        "UPDATE leads SET status = 'converted', converted_at = now(), converted_account_id = $2, \
         converted_contact_id = $3, converted_opportunity_id = $4 \
         WHERE id = $1 AND status <> 'converted' RETURNING ",
        columns!()
    );
    let row = sqlx::query_as(sql).bind(id).bind(account).bind(contact).bind(opportunity).fetch_optional(conn).await?;
    row.ok_or_else(|| Error::invalid("lead does not exist or is already converted"))
}

/// Fields a client may change; `None` leaves a field as it is. Conversion has its own workflow.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadPatch {
    pub owner_id: Option<UserId>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub company_size: Option<CompanySize>,
    /// Any status but `converted`.
    pub status: Option<LeadStatus>,
}

pub async fn update(conn: &mut PgConnection, id: LeadId, p: &LeadPatch) -> Result<Lead> {
    if p.status == Some(LeadStatus::Converted) {
        return Err(Error::invalid("a lead is converted by the conversion workflow, not by a status change"));
    }
    super::table::update(conn, &TABLE, id.0, p).await
}
