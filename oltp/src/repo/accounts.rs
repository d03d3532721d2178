//! Accounts: companies, with a hierarchy through `parent_id`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::found;
use super::table::{Filter, Op, Table, col, eq};
use crate::Result;
use crate::model::{AccountId, AccountLifecycle, CompanySize, Industry, Segment, TenantId, TerritoryId, UserId};

/// A company in the CRM.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Account {
    pub id: AccountId,
    pub tenant_id: TenantId,
    pub name: String,
    pub domain: Option<String>,
    pub parent_id: Option<AccountId>,
    pub owner_id: Option<UserId>,
    pub territory_id: Option<TerritoryId>,
    pub industry: Option<Industry>,
    pub size: Option<CompanySize>,
    pub segment: Option<Segment>,
    pub lifecycle_stage: AccountLifecycle,
    pub annual_revenue: Option<Decimal>,
    pub currency: String,
    pub billing_country: Option<String>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new account; the owner defaults to the caller.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub name: String,
    pub domain: Option<String>,
    pub parent_id: Option<AccountId>,
    pub owner_id: Option<UserId>,
    pub territory_id: Option<TerritoryId>,
    pub industry: Option<Industry>,
    pub size: Option<CompanySize>,
    pub segment: Option<Segment>,
    pub annual_revenue: Option<Decimal>,
    pub currency: Option<String>,
    pub billing_country: Option<String>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, name, domain, parent_id, owner_id, territory_id, industry, size, segment, \
    lifecycle_stage, annual_revenue, currency, billing_country, last_activity_at, created_at, updated_at"
    };
}

/// The `accounts` table, for the generic list/get/delete statements.
pub const TABLE: Table = Table {
    name: "accounts",
    entity: "account",
    columns: &[
        "id",
        "tenant_id",
        "name",
        "domain",
        "parent_id",
        "owner_id",
        "territory_id",
        "industry",
        "size",
        "segment",
        "lifecycle_stage",
        "annual_revenue",
        "currency",
        "billing_country",
        "last_activity_at",
        "created_at",
        "updated_at",
    ],
    owner: Some("owner_id"),
    filters: &[
        eq("owner_id", "uuid"),
        eq("parent_id", "uuid"),
        eq("territory_id", "uuid"),
        eq("industry", "text"),
        eq("segment", "text"),
        eq("lifecycle_stage", "text"),
        Filter { param: "domain", column: col("domain", "text"), op: Op::IEq },
    ],
    sorts: &[col("name", "text"), col("created_at", "timestamptz"), col("updated_at", "timestamptz")],
};

pub async fn create(conn: &mut PgConnection, tenant: TenantId, new: &NewAccount) -> Result<Account> {
    let sql = concat!(
        "INSERT INTO accounts (tenant_id, id, name, domain, parent_id, owner_id, territory_id, industry, size, \
         segment, annual_revenue, currency, billing_country) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12, 'USD'), $13) RETURNING ",
        columns!()
    );
    let row = sqlx::query_as::<_, Account>(sql)
        .bind(tenant)
        .bind(AccountId::new())
        .bind(&new.name)
        .bind(&new.domain)
        .bind(new.parent_id)
        .bind(new.owner_id)
        .bind(new.territory_id)
        .bind(new.industry)
        .bind(new.size)
        .bind(new.segment)
        .bind(new.annual_revenue)
        .bind(&new.currency)
        .bind(&new.billing_country)
        .fetch_one(conn)
        .await?;
    Ok(row)
}

pub async fn get(conn: &mut PgConnection, id: AccountId) -> Result<Account> {
    let sql = concat!("SELECT ", columns!(), " FROM accounts WHERE id = $1");
    found(sqlx::query_as(sql).bind(id).fetch_optional(conn).await?, "account")
}

/// Direct children of an account in the hierarchy.
pub async fn children(conn: &mut PgConnection, id: AccountId) -> Result<Vec<Account>> {
    let sql = concat!("SELECT ", columns!(), " FROM accounts WHERE parent_id = $1 ORDER BY name");
    Ok(sqlx::query_as(sql).bind(id).fetch_all(conn).await?)
}

/// Fields a client may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub parent_id: Option<AccountId>,
    pub owner_id: Option<UserId>,
    pub territory_id: Option<TerritoryId>,
    pub industry: Option<Industry>,
    pub size: Option<CompanySize>,
    pub segment: Option<Segment>,
    pub annual_revenue: Option<Decimal>,
    pub billing_country: Option<String>,
}

pub async fn update(conn: &mut PgConnection, id: AccountId, p: &AccountPatch) -> Result<Account> {
    let sql = concat!(
        "UPDATE accounts SET name = coalesce($2, name), domain = coalesce($3, domain), parent_id = coalesce($4, parent_id), \
         owner_id = coalesce($5, owner_id), territory_id = coalesce($6, territory_id), industry = coalesce($7, industry), \
         size = coalesce($8, size), segment = coalesce($9, segment), annual_revenue = coalesce($10, annual_revenue), \
         billing_country = coalesce($11, billing_country) WHERE id = $1 RETURNING ",
        columns!()
    );
    found(
        sqlx::query_as(sql)
            .bind(id)
            .bind(&p.name)
            .bind(&p.domain)
            .bind(p.parent_id)
            .bind(p.owner_id)
            .bind(p.territory_id)
            .bind(p.industry)
            .bind(p.size)
            .bind(p.segment)
            .bind(p.annual_revenue)
            .bind(&p.billing_country)
            .fetch_optional(conn)
            .await?,
        "account",
    )
}
