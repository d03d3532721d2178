//! `/v1/accounts`: companies, with a hierarchy through `parent_id`.

use orbas_oltp::model::{AccountId, Industry, UserId};
use orbas_oltp::repo::accounts::{self, Account, AccountFilter, AccountPatch, NewAccount};
use serde::Deserialize;

/// Filters of `GET /v1/accounts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    pub owner_id: Option<UserId>,
    pub parent_id: Option<AccountId>,
    pub industry: Option<Industry>,
    /// Page size, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub after: Option<uuid::Uuid>,
}

crate::repo_resource!(Accounts {
    name: "accounts",
    entity: "account",
    repo: accounts,
    id: AccountId,
    record: Account,
    new: NewAccount,
    patch: AccountPatch,
    query: AccountQuery,
    filter: |q, owners| AccountFilter {
        owner_id: q.owner_id,
        owned_by_any: owners,
        parent_id: q.parent_id,
        industry: q.industry
    }
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
