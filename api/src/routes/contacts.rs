//! `/v1/contacts`: people, usually at an account.

use orbas_oltp::model::{AccountId, ContactId, UserId};
use orbas_oltp::repo::contacts::{self, Contact, ContactFilter, ContactPatch, NewContact};
use serde::Deserialize;

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

crate::repo_resource!(Contacts {
    name: "contacts",
    entity: "contact",
    repo: contacts,
    id: ContactId,
    record: Contact,
    new: NewContact,
    patch: ContactPatch,
    query: ContactQuery,
    filter: |q, owners| ContactFilter {
        account_id: q.account_id,
        owner_id: q.owner_id,
        owned_by_any: owners,
        email: q.email.clone()
    }
});

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
