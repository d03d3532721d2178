//! `/v1/accounts`: companies, with a hierarchy through `parent_id`.

use orbas_oltp::model::{AccountId, AccountLifecycle, Industry, Segment, TerritoryId, UserId};
use orbas_oltp::repo::accounts::{self, Account, AccountPatch, NewAccount};

crate::list_query!(
    /// Filters of `GET /v1/accounts`.
    AccountQuery {
        owner_id: UserId,
        parent_id: AccountId,
        territory_id: TerritoryId,
        industry: Industry,
        segment: Segment,
        lifecycle_stage: AccountLifecycle,
        /// Exact domain, case-insensitive.
        domain: String,
    }
);

crate::resource!(Accounts {
    name: "accounts",
    table: accounts::TABLE,
    record: Account,
    new: NewAccount,
    patch: AccountPatch,
    query: AccountQuery,
    owner: owner_id,
});

crate::crud_handlers!(
    resource = Accounts,
    tag = "accounts",
    collection = "/v1/accounts",
    item = "/v1/accounts/{id}",
    record = Account,
    new = NewAccount,
    patch = AccountPatch,
    filter = AccountQuery
);
