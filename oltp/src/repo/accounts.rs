//! Accounts: companies, with a hierarchy through `parent_id`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::{Page, PageRequest, found, owner_ids};
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
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub owner_id: Option<UserId>,
    /// Restricts to records owned by one of these users (the caller's `own`/`team` scope).
    pub owned_by_any: Option<Vec<UserId>>,
    pub parent_id: Option<AccountId>,
    pub industry: Option<Industry>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, name, domain, parent_id, owner_id, territory_id, industry, size, segment, \
    lifecycle_stage, annual_revenue, currency, billing_country, last_activity_at, created_at, updated_at"
    };
}

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

pub async fn list(conn: &mut PgConnection, filter: &AccountFilter, page: PageRequest) -> Result<Page<Account>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM accounts WHERE id > $1 \
         AND ($2::uuid IS NULL OR owner_id = $2) AND ($3::uuid IS NULL OR parent_id = $3) \
         AND ($4::text IS NULL OR industry = $4) AND ($6::uuid[] IS NULL OR owner_id = ANY($6)) ORDER BY id LIMIT $5"
    );
    let rows: Vec<Account> = sqlx::query_as(sql)
        .bind(page.after_or_nil())
        .bind(filter.owner_id)
        .bind(filter.parent_id)
        .bind(filter.industry)
        .bind(page.fetch_limit())
        .bind(owner_ids(&filter.owned_by_any))
        .fetch_all(conn)
        .await?;
    Ok(Page::from_rows(rows, &page, |a| a.id.0))
}

/// Direct children of an account in the hierarchy.
pub async fn children(conn: &mut PgConnection, id: AccountId) -> Result<Vec<Account>> {
    let sql = concat!("SELECT ", columns!(), " FROM accounts WHERE parent_id = $1 ORDER BY name");
    Ok(sqlx::query_as(sql).bind(id).fetch_all(conn).await?)
}

pub async fn delete(conn: &mut PgConnection, id: AccountId) -> Result<()> {
    let done = sqlx::query("DELETE FROM accounts WHERE id = $1").bind(id).execute(conn).await?;
    found((done.rows_affected() == 1).then_some(()), "account")
}

/// Fields a client may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
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

/// Locks the account for an update (optimistic-concurrency checks compare against this version).
pub async fn get_for_update(conn: &mut PgConnection, id: AccountId) -> Result<Account> {
    let sql = concat!("SELECT ", columns!(), " FROM accounts WHERE id = $1 FOR UPDATE");
    found(sqlx::query_as(sql).bind(id).fetch_optional(conn).await?, "account")
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
