//! `/v1/contacts`: people, usually at an account.

use orbas_oltp::model::{AccountId, ContactId, TenantId, UserId};
use orbas_oltp::repo::contacts::{self, Contact, ContactFilter, ContactPatch, NewContact};
use orbas_oltp::repo::{Page, PageRequest};
use serde::Deserialize;
use sqlx::PgConnection;

use crate::resource::Resource;

/// Filters of `GET /v1/contacts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    pub account_id: Option<AccountId>,
    pub owner_id: Option<UserId>,
    /// Exact email, case-insensitive.
    pub email: Option<String>,
    /// Page size, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub after: Option<uuid::Uuid>,
}

#[derive(Debug)]
pub struct Contacts;

impl Resource for Contacts {
    const NAME: &'static str = "contacts";
    const ENTITY: &'static str = "contact";
    type Record = Contact;
    type New = NewContact;
    type Patch = ContactPatch;
    type Filter = ContactQuery;

    fn id(r: &Contact) -> uuid::Uuid {
        r.id.0
    }
    fn owner(r: &Contact) -> Option<UserId> {
        r.owner_id
    }
    fn new_owner(n: &mut NewContact) -> &mut Option<UserId> {
        &mut n.owner_id
    }
    fn patch_owner(p: &ContactPatch) -> Option<UserId> {
        p.owner_id
    }
    fn page(f: &ContactQuery) -> PageRequest {
        PageRequest { after: f.after, limit: f.limit.unwrap_or(50) }
    }
    async fn list(
        c: &mut PgConnection,
        f: &ContactQuery,
        owners: Option<Vec<UserId>>,
        page: PageRequest,
    ) -> orbas_oltp::Result<Page<Contact>> {
        let filter = ContactFilter {
            account_id: f.account_id,
            owner_id: f.owner_id,
            owned_by_any: owners,
            email: f.email.clone(),
        };
        contacts::list(c, &filter, page).await
    }
    async fn get(c: &mut PgConnection, id: uuid::Uuid, lock: bool) -> orbas_oltp::Result<Contact> {
        if lock { contacts::get_for_update(c, ContactId(id)).await } else { contacts::get(c, ContactId(id)).await }
    }
    async fn create(c: &mut PgConnection, t: TenantId, n: &NewContact) -> orbas_oltp::Result<Contact> {
        contacts::create(c, t, n).await
    }
    async fn update(c: &mut PgConnection, id: uuid::Uuid, p: &ContactPatch) -> orbas_oltp::Result<Contact> {
        contacts::update(c, ContactId(id), p).await
    }
    async fn delete(c: &mut PgConnection, id: uuid::Uuid) -> orbas_oltp::Result<()> {
        contacts::delete(c, ContactId(id)).await
    }
}

crate::crud_handlers!(
    resource = Contacts,
    tag = "contacts",
    collection = "/v1/contacts",
    item = "/v1/contacts/{id}",
    record = Contact,
    new = NewContact,
    patch = ContactPatch,
    filter = ContactQuery
);
