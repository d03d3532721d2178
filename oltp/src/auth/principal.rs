//! The authenticated caller and the one permission check every surface asks: the API, the SQL port,
//! search and the report scheduler. Decisions come from the role's permission matrix
//! ([`crate::model::default_scope`]), narrowed by an API key's scopes when the caller used one.

use uuid::Uuid;

use crate::model::{Action, RoleKey, Scope, TenantId, UserId, default_scope};

/// Who is calling: a user of a tenant, possibly through one of their API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub user: UserId,
    pub role: RoleKey,
    /// The API key used, if any (`api_keys.id`). `None` for an interactive session.
    pub api_key: Option<Uuid>,
    /// The API key's scopes (`api_keys.scopes`); ignored when `api_key` is `None`. Each is
    /// `"<resource>:<action>"`, `"<resource>:*"` or `"*"`; anything else grants nothing.
    pub scopes: Vec<String>,
    /// Users who report to this one, directly or indirectly (for `team` scope).
    pub reports: Vec<UserId>,
}

impl Principal {
    /// An interactive (non-API-key) principal without reports.
    pub fn interactive(tenant: TenantId, user: UserId, role: RoleKey) -> Self {
        Self { tenant, user, role, api_key: None, scopes: Vec::new(), reports: Vec::new() }
    }

    /// Over which records the principal may do `action` on `resource`: the role's scope, and for an
    /// API key only if one of the key's scopes covers `resource:action` (a key never widens a role).
    /// `None` means not at all.
    pub fn scope_for(&self, resource: &str, action: Action) -> Option<Scope> {
        let granted = default_scope(self.role, resource, action)?;
        if self.api_key.is_none() || self.key_allows(resource, action) { Some(granted) } else { None }
    }

    /// Whether the principal may do `action` on a record of `resource` owned by `record_owner` (for
    /// `Create`: the owner the new record would get). `Own` reaches records the principal owns, `Team`
    /// those owned by the principal or anyone in `reports`, `All` every record of the tenant. A record
    /// without an owner is reachable only with `All`.
    pub fn may(&self, resource: &str, action: Action, record_owner: Option<UserId>) -> bool {
        match (self.scope_for(resource, action), record_owner) {
            (None, _) => false,
            (Some(Scope::All), _) => true,
            (Some(_), None) => false,
            (Some(Scope::Own), Some(owner)) => owner == self.user,
            (Some(Scope::Team), Some(owner)) => owner == self.user || self.reports.contains(&owner),
        }
    }

    fn key_allows(&self, resource: &str, action: Action) -> bool {
        self.scopes.iter().any(|scope| {
            scope == "*"
                || scope.split_once(':').is_some_and(|(r, a)| r == resource && (a == "*" || a == action.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use Action::*;
    use RoleKey::*;

    use super::*;

    #[derive(Debug, Clone, Copy)]
    enum Owner {
        Me,
        Report,
        Other,
        Nobody,
    }

    struct World {
        me: UserId,
        report: UserId,
        other: UserId,
    }

    impl World {
        fn new() -> Self {
            Self { me: UserId::new(), report: UserId::new(), other: UserId::new() }
        }

        fn principal(&self, role: RoleKey) -> Principal {
            Principal { reports: vec![self.report], ..Principal::interactive(TenantId::new(), self.me, role) }
        }

        fn owner(&self, o: Owner) -> Option<UserId> {
            match o {
                Owner::Me => Some(self.me),
                Owner::Report => Some(self.report),
                Owner::Other => Some(self.other),
                Owner::Nobody => None,
            }
        }
    }

    /// (role, resource, action, [may for Me, Report, Other, Nobody])
    const TABLE: &[(RoleKey, &str, Action, [bool; 4])] = &[
        // own
        (SalesRep, "opportunities", Update, [true, false, false, false]),
        (SalesRep, "opportunities", Create, [true, false, false, false]),
        (SalesRep, "tasks", Delete, [true, false, false, false]),
        (SalesRep, "recommendations", Read, [true, false, false, false]),
        (Analyst, "dashboards", Create, [true, false, false, false]),
        (Manager, "dashboards", Update, [true, false, false, false]),
        (SupportAgent, "tasks", Update, [true, false, false, false]),
        // team
        (Manager, "opportunities", Update, [true, true, false, false]),
        (Manager, "tickets", Delete, [true, true, false, false]),
        (Manager, "recommendations", Create, [true, true, false, false]),
        // all
        (Manager, "opportunities", Read, [true, true, true, true]),
        (SalesRep, "accounts", Read, [true, true, true, true]),
        (SupportAgent, "tickets", Update, [true, true, true, true]),
        (ReadOnly, "invoices", Read, [true, true, true, true]),
        (Analyst, "lake_sql", Read, [true, true, true, true]),
        (Admin, "users", Delete, [true, true, true, true]),
        (Admin, "api_keys", Create, [true, true, true, true]),
        // none
        (SalesRep, "opportunities", Delete, [false, false, false, false]),
        (SalesRep, "users", Create, [false, false, false, false]),
        (SupportAgent, "opportunities", Read, [false, false, false, false]),
        (ReadOnly, "accounts", Update, [false, false, false, false]),
        (ReadOnly, "audit_logs", Read, [false, false, false, false]),
        (Manager, "users", Create, [false, false, false, false]),
        (Manager, "api_keys", Read, [false, false, false, false]),
        (Analyst, "accounts", Update, [false, false, false, false]),
        (Admin, "no_such_resource", Read, [true, true, true, true]),
    ];

    #[test]
    fn role_resource_action_ownership_table() {
        let world = World::new();
        for &(role, resource, action, expected) in TABLE {
            let p = world.principal(role);
            for (owner, want) in [Owner::Me, Owner::Report, Owner::Other, Owner::Nobody].into_iter().zip(expected) {
                assert_eq!(
                    p.may(resource, action, world.owner(owner)),
                    want,
                    "{role} {resource} {action:?} owner={owner:?}"
                );
            }
        }
    }

    #[test]
    fn scope_for_delegates_to_the_matrix_for_sessions() {
        let world = World::new();
        for &role in RoleKey::ALL {
            let mut p = world.principal(role);
            p.scopes = vec!["nothing:read".into()]; // ignored without an API key
            for resource in crate::model::RESOURCES {
                for &action in Action::ALL {
                    assert_eq!(p.scope_for(resource, action), default_scope(role, resource, action));
                }
            }
        }
    }

    fn keyed(role: RoleKey, scopes: &[&str]) -> Principal {
        Principal {
            api_key: Some(Uuid::now_v7()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Principal::interactive(TenantId::new(), UserId::new(), role)
        }
    }

    #[test]
    fn api_key_scopes_narrow_the_role() {
        let p = keyed(Admin, &["accounts:read", "contacts:*"]);
        assert_eq!(p.scope_for("accounts", Read), Some(Scope::All));
        assert_eq!(p.scope_for("accounts", Update), None);
        assert_eq!(p.scope_for("contacts", Delete), Some(Scope::All));
        assert_eq!(p.scope_for("leads", Read), None);
        assert!(!p.may("accounts", Update, Some(p.user)));

        let everything = keyed(Manager, &["*"]);
        assert_eq!(everything.scope_for("opportunities", Update), Some(Scope::Team));
        assert_eq!(everything.scope_for("users", Create), None, "a key never widens the role");

        let rep = keyed(SalesRep, &["opportunities:*", "users:create"]);
        assert_eq!(rep.scope_for("opportunities", Update), Some(Scope::Own), "the role still caps the scope");
        assert_eq!(rep.scope_for("users", Create), None);

        let none = keyed(Admin, &[]);
        assert_eq!(none.scope_for("accounts", Read), None, "a key without scopes grants nothing");
    }

    #[test]
    fn malformed_key_scopes_grant_nothing() {
        let p =
            keyed(Admin, &["accounts", "accounts:", ":read", "accounts:read:extra", "ACCOUNTS:read", " *", "*:read"]);
        for &action in Action::ALL {
            assert_eq!(p.scope_for("accounts", action), None, "{action:?}");
        }
    }
}
