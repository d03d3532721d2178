//! Contacts: people, usually at an account.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::{Page, PageRequest, found};
use crate::Result;
use crate::model::{AccountId, ContactId, TenantId, UserId};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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

#[derive(Debug, Clone, Default, Deserialize)]
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

pub async fn create(conn: &mut PgConnection, tenant: TenantId, new: &NewContact) -> Result<Contact> {
    let sql = concat!(
        "INSERT INTO contacts (tenant_id, id, account_id, owner_id, first_name, last_name, email, phone, title) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
        columns!()
    );
    Ok(sqlx::query_as(sql)
        .bind(tenant)
        .bind(ContactId::new())
        .bind(new.account_id)
        .bind(new.owner_id)
        .bind(&new.first_name)
        .bind(&new.last_name)
        .bind(&new.email)
        .bind(&new.phone)
        .bind(&new.title)
        .fetch_one(conn)
        .await?)
}

pub async fn get(conn: &mut PgConnection, id: ContactId) -> Result<Contact> {
    let sql = concat!("SELECT ", columns!(), " FROM contacts WHERE id = $1");
    found(sqlx::query_as(sql).bind(id).fetch_optional(conn).await?, "contact")
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

pub async fn delete(conn: &mut PgConnection, id: ContactId) -> Result<()> {
    let done = sqlx::query("DELETE FROM contacts WHERE id = $1").bind(id).execute(conn).await?;
    found((done.rows_affected() == 1).then_some(()), "contact")
}
