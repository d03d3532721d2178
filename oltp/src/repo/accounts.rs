//! Accounts: companies, with a hierarchy through `parent_id`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

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
    super::table::insert(conn, &TABLE, tenant, AccountId::new().0, new).await
}

pub async fn get(conn: &mut PgConnection, id: AccountId) -> Result<Account> {
    super::table::get(conn, &TABLE, id.0, false).await
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
    super::table::update(conn, &TABLE, id.0, p).await
}
