//! `/v1/contacts`: people, usually at an account.

use orbas_oltp::model::{AccountId, UserId};
use orbas_oltp::repo::contacts::{self, Contact, ContactPatch, NewContact};

crate::list_query!(
    /// Filters of `GET /v1/contacts`.
    ContactQuery {
        account_id: AccountId,
        owner_id: UserId,
        lifecycle_stage: String,
        /// Exact email, case-insensitive.
        email: String,
    }
);

crate::resource!(Contacts {
    name: "contacts",
    table: contacts::TABLE,
    record: Contact,
    new: NewContact,
    patch: ContactPatch,
    query: ContactQuery,
    owner: owner_id,
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
