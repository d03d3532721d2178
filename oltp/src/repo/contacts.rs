//! Contacts: people, usually at an account.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::table::{Filter, Op, Table, col, eq};
use super::{Page, PageRequest};
use crate::Result;
use crate::model::{AccountId, ContactId, TenantId, UserId};

/// A person, usually at an account.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Contact {
    pub id: ContactId,
    pub tenant_id: TenantId,
    pub account_id: Option<AccountId>,
    pub owner_id: Option<UserId>,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub lifecycle_stage: String,
    pub do_not_contact: bool,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    pub account_id: Option<AccountId>,
    pub owner_id: Option<UserId>,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, account_id, owner_id, first_name, last_name, email, phone, title, \
    lifecycle_stage, do_not_contact, last_activity_at, created_at, updated_at"
    };
}

/// The `contacts` table, for the generic list/get/delete statements.
pub const TABLE: Table = Table {
    name: "contacts",
    entity: "contact",
    columns: &[
        "id",
        "tenant_id",
        "account_id",
        "owner_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "title",
        "lifecycle_stage",
        "do_not_contact",
        "last_activity_at",
        "created_at",
        "updated_at",
    ],
    owner: Some("owner_id"),
    filters: &[
        eq("account_id", "uuid"),
        eq("owner_id", "uuid"),
        eq("lifecycle_stage", "text"),
        Filter { param: "email", column: col("email", "text"), op: Op::IEq },
    ],
    sorts: &[
        col("last_name", "text"),
        col("first_name", "text"),
        col("created_at", "timestamptz"),
        col("updated_at", "timestamptz"),
    ],
};

pub async fn create(conn: &mut PgConnection, tenant: TenantId, new: &NewContact) -> Result<Contact> {
    super::table::insert(conn, &TABLE, tenant, ContactId::new().0, new).await
}

pub async fn get(conn: &mut PgConnection, id: ContactId) -> Result<Contact> {
    super::table::get(conn, &TABLE, id.0, false).await
}

pub async fn list_for_account(conn: &mut PgConnection, account: AccountId, page: PageRequest) -> Result<Page<Contact>> {
    let sql = concat!("SELECT ", columns!(), " FROM contacts WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3");
    let rows: Vec<Contact> =
        sqlx::query_as(sql).bind(account).bind(page.after_or_nil()).bind(page.fetch_limit()).fetch_all(conn).await?;
    Ok(Page::from_rows(rows, &page, |c| c.id.0))
}

/// Contacts whose email matches case-insensitively (the duplicate-detection entry point).
pub async fn find_by_email(conn: &mut PgConnection, email: &str) -> Result<Vec<Contact>> {
    let sql = concat!("SELECT ", columns!(), " FROM contacts WHERE lower(email) = lower($1) ORDER BY id");
    Ok(sqlx::query_as(sql).bind(email.trim()).fetch_all(conn).await?)
}

/// Fields a client may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    pub account_id: Option<AccountId>,
    pub owner_id: Option<UserId>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub do_not_contact: Option<bool>,
}

pub async fn update(conn: &mut PgConnection, id: ContactId, p: &ContactPatch) -> Result<Contact> {
    super::table::update(conn, &TABLE, id.0, p).await
}
