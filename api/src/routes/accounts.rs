//! `/v1/accounts`: companies, with a hierarchy through `parent_id`.

use orbas_oltp::model::{AccountId, Industry, UserId};
use orbas_oltp::repo::accounts::{self, Account, AccountFilter, AccountPatch, NewAccount};
use orbas_oltp::repo::{Page, PageRequest};
use serde::Deserialize;
use sqlx::PgConnection;

use crate::resource::Resource;

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

#[derive(Debug)]
pub struct Accounts;

impl Resource for Accounts {
    const NAME: &'static str = "accounts";
    const ENTITY: &'static str = "account";
    type Record = Account;
    type New = NewAccount;
    type Patch = AccountPatch;
    type Filter = AccountQuery;

    fn id(r: &Account) -> uuid::Uuid {
        r.id.0
    }
    fn owner(r: &Account) -> Option<UserId> {
        r.owner_id
    }
    fn new_owner(n: &mut NewAccount) -> &mut Option<UserId> {
        &mut n.owner_id
    }
    fn patch_owner(p: &AccountPatch) -> Option<UserId> {
        p.owner_id
    }
    fn page(f: &AccountQuery) -> PageRequest {
        PageRequest { after: f.after, limit: f.limit.unwrap_or(50) }
    }
    async fn list(
        c: &mut PgConnection,
        f: &AccountQuery,
        owners: Option<Vec<UserId>>,
        page: PageRequest,
    ) -> orbas_oltp::Result<Page<Account>> {
        let filter =
            AccountFilter { owner_id: f.owner_id, owned_by_any: owners, parent_id: f.parent_id, industry: f.industry };
        accounts::list(c, &filter, page).await
    }
    async fn get(c: &mut PgConnection, id: uuid::Uuid, lock: bool) -> orbas_oltp::Result<Account> {
        if lock { accounts::get_for_update(c, AccountId(id)).await } else { accounts::get(c, AccountId(id)).await }
    }
    async fn create(
        c: &mut PgConnection,
        t: orbas_oltp::model::TenantId,
        n: &NewAccount,
    ) -> orbas_oltp::Result<Account> {
        accounts::create(c, t, n).await
    }
    async fn update(c: &mut PgConnection, id: uuid::Uuid, p: &AccountPatch) -> orbas_oltp::Result<Account> {
        accounts::update(c, AccountId(id), p).await
    }
    async fn delete(c: &mut PgConnection, id: uuid::Uuid) -> orbas_oltp::Result<()> {
        accounts::delete(c, AccountId(id)).await
    }
}

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
