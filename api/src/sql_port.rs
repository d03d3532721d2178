//! The SQL port's view of who may log in: [`orbas_warehouse::wire::AuthSource`] over the CRM's users
//! and API keys. The user name is an e-mail (password login) or an API key's 8-character prefix (the
//! whole key is the password); the database name is the tenant's slug. Lockout and login history work
//! as for the HTTP login: failures count towards the user's lockout, every attempt is recorded.

use async_trait::async_trait;
use chrono::Utc;
use orbas_oltp::auth::Principal;
use orbas_oltp::auth::lockout::LoginThrottle;
use orbas_oltp::auth::tokens::API_KEY_PREFIX_LEN;
use orbas_oltp::db::Db;
use orbas_oltp::model::{Action, TenantId, UserId};
use orbas_oltp::repo::access;
use orbas_oltp::repo::identity::{self, LoginAttempt, LoginMethod, Lookup};
use orbas_warehouse::wire::{Attempt, AuthSource, Login, Outcome};
use uuid::Uuid;

const RESOURCE: &str = "lake_sql";

/// Users and API keys in the CRM database.
#[derive(Debug, Clone)]
pub struct CrmLogins {
    db: Db,
    throttle: LoginThrottle,
}

impl CrmLogins {
    pub fn new(db: Db) -> Self {
        CrmLogins { db, throttle: LoginThrottle::default() }
    }
}

/// What [`CrmLogins::record`] needs to know of a login.
#[derive(Debug, Clone)]
pub struct Detail {
    tenant: TenantId,
    /// `None`: no such user in the tenant (the attempt is still recorded).
    user: Option<UserId>,
    api_key: Option<Uuid>,
    failed_attempts: i32,
}

fn is_key_prefix(user: &str) -> bool {
    user.len() == API_KEY_PREFIX_LEN && user.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether the login may query the lake: the same permission check `POST /v1/sql` makes.
fn may_query(p: &Principal) -> bool {
    p.scope_for(RESOURCE, Action::Read).is_some()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[async_trait]
impl AuthSource for CrmLogins {
    type Detail = Detail;

    async fn lookup(&self, database: &str, user: &str) -> Result<Option<Login<Detail>>, BoxError> {
        let Some(tenant) = identity::tenant_of(self.db.pool(), Lookup::Slug(database.trim())).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        let mut tx = self.db.begin(tenant).await?;
        let unknown = Login {
            tenant: tenant.to_string(),
            verifier: None,
            refusal: None,
            may_query: false,
            detail: Detail { tenant, user: None, api_key: None, failed_attempts: 0 },
        };
        let login = if is_key_prefix(user) {
            match access::key_login(tx.conn(), user).await? {
                None => unknown,
                Some(k) => {
                    let refusal = k.refusal(now);
                    let principal = Principal {
                        api_key: Some(k.id),
                        scopes: k.scopes,
                        ..Principal::interactive(tenant, k.user_id, k.role)
                    };
                    Login {
                        tenant: tenant.to_string(),
                        verifier: k.scram_verifier,
                        refusal,
                        may_query: may_query(&principal),
                        detail: Detail { tenant, user: Some(k.user_id), api_key: Some(k.id), failed_attempts: 0 },
                    }
                }
            }
        } else {
            match identity::login_user_by_email(tx.conn(), user).await? {
                None => unknown,
                Some(u) => {
                    let refusal = u.refusal(now);
                    Login {
                        tenant: tenant.to_string(),
                        may_query: may_query(&Principal::interactive(tenant, u.id, u.role)),
                        verifier: u.scram_verifier,
                        refusal,
                        detail: Detail { tenant, user: Some(u.id), api_key: None, failed_attempts: u.failed_attempts },
                    }
                }
            }
        };
        tx.commit().await?;
        Ok(Some(login))
    }

    async fn record(&self, login: Option<&Login<Detail>>, attempt: Attempt<'_>) {
        let Some(login) = login else { return };
        if let Err(e) = self.store(&login.detail, &attempt).await {
            tracing::warn!(error = %e, "recording a SQL-port login");
        }
    }
}

impl CrmLogins {
    async fn store(&self, d: &Detail, attempt: &Attempt<'_>) -> orbas_oltp::Result<()> {
        let now = Utc::now();
        let mut tx = self.db.begin(d.tenant).await?;
        let failure = match attempt.outcome {
            Outcome::Success => None,
            Outcome::BadCredentials => Some("bad_credentials"),
            Outcome::Refused(why) => Some(why),
            Outcome::Forbidden => Some("forbidden"),
        };
        let method = if d.api_key.is_some() { LoginMethod::SqlApiKey } else { LoginMethod::SqlPassword };
        if let (Some(user), None) = (d.user, d.api_key) {
            match attempt.outcome {
                Outcome::BadCredentials => {
                    let (count, until) = self.throttle.on_failure(d.failed_attempts, now);
                    identity::set_login_failures(tx.conn(), user, u32::try_from(count).unwrap_or(0), until).await?;
                }
                Outcome::Success | Outcome::Forbidden => {
                    identity::set_login_failures(tx.conn(), user, 0, None).await?;
                }
                Outcome::Refused(_) => {}
            }
            if attempt.outcome == Outcome::Success {
                identity::touch_last_login(tx.conn(), user, now).await?;
            }
        }
        if let (Some(key), Outcome::Success) = (d.api_key, attempt.outcome) {
            access::touch_api_key(tx.conn(), key, now).await?;
        }
        let agent = attempt.application.map(|a| format!("sql: {a}"));
        let record = LoginAttempt {
            user: d.user,
            method,
            failure,
            ip: Some(attempt.peer.ip()),
            user_agent: Some(agent.as_deref().unwrap_or("sql")),
        };
        identity::record_login(tx.conn(), d.tenant, &record).await?;
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use orbas_oltp::model::RoleKey;

    use super::*;

    #[test]
    fn key_prefixes_and_scopes() {
        assert!(is_key_prefix("Ab3dE6gH"));
        assert!(!is_key_prefix("ana@example.com"));
        assert!(!is_key_prefix("Ab3dE6g"));
        let user = |role| Principal::interactive(TenantId(Uuid::nil()), UserId(Uuid::nil()), role);
        let key =
            |role, scope: &str| Principal { api_key: Some(Uuid::nil()), scopes: vec![scope.into()], ..user(role) };
        assert!(may_query(&user(RoleKey::Analyst)));
        assert!(!may_query(&user(RoleKey::SalesRep)));
        assert!(may_query(&key(RoleKey::Admin, "lake_sql:read")));
        assert!(may_query(&key(RoleKey::Admin, "*")));
        assert!(!may_query(&key(RoleKey::Admin, "accounts:read")));
        assert!(!may_query(&key(RoleKey::SalesRep, "*")));
    }
}
