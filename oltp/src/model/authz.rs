//! The permission matrix: which role may do which action on which resource, and over which records
//! (`own`, `team`, `all`). One place, asked by the API, the SQL port, search and the report scheduler.
//! Tenants start from this default (materialised into `role_permissions` when a tenant is created).

use serde::{Deserialize, Serialize};

use super::RoleKey;

/// What a principal wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
}

impl Action {
    pub const ALL: &'static [Action] = &[Action::Read, Action::Create, Action::Update, Action::Delete];

    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// Over which records a permission holds. Ordered: `Own < Team < All`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Records the principal owns.
    Own,
    /// Records owned by the principal or by anyone who reports to them.
    Team,
    /// Every record of the tenant.
    All,
}

impl Scope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Own => "own",
            Scope::Team => "team",
            Scope::All => "all",
        }
    }
}

/// Resources the matrix covers (table names where there is one table).
pub const RESOURCES: &[&str] = &[
    "accounts",
    "contacts",
    "leads",
    "opportunities",
    "pipeline_stages",
    "tasks",
    "calendar_events",
    "interaction_logs",
    "tickets",
    "products",
    "quotes",
    "subscriptions",
    "invoices",
    "payments",
    "campaigns",
    "knowledge_articles",
    "documents",
    "employees",
    "users",
    "recommendations",
    "predictions",
    "dashboards",
    "scheduled_reports",
    "kpi_alerts",
    "kpi_definitions",
    "audit_logs",
    "api_keys",
    "lake_sql",
    "ai_settings",
    "ai_queries",
];

const SALES: &[&str] = &[
    "accounts",
    "contacts",
    "leads",
    "opportunities",
    "tasks",
    "calendar_events",
    "interaction_logs",
    "quotes",
    "documents",
];
const SERVICE: &[&str] = &["tickets", "knowledge_articles"];
const ADMIN_ONLY: &[&str] = &["users", "employees", "api_keys", "audit_logs", "pipeline_stages", "products"];
const ANALYTICS: &[&str] = &["dashboards", "scheduled_reports", "kpi_alerts", "kpi_definitions"];

/// The default scope a role has for `action` on `resource`, `None` when it may not act at all.
pub fn default_scope(role: RoleKey, resource: &str, action: Action) -> Option<Scope> {
    use Action::*;
    use Scope::*;
    let is = |set: &[&str]| set.contains(&resource);
    match resource {
        // The assistant's language-model settings (endpoint, sealed API key) are the admin's alone.
        "ai_settings" => return (role == RoleKey::Admin).then_some(All),
        // Questions to the assistant: everyone reads and rates their own; managers read their team's,
        // analysts all of them (answer-quality review); admins everything.
        "ai_queries" => {
            return match (role, action) {
                (RoleKey::Admin, _) => Some(All),
                (RoleKey::Analyst, Read) => Some(All),
                (RoleKey::Manager, Read) => Some(Team),
                (_, Read | Update) => Some(Own),
                _ => None,
            };
        }
        _ => {}
    }
    match role {
        RoleKey::Admin => Some(All),
        RoleKey::ReadOnly => match action {
            Read if !is(&["audit_logs", "api_keys", "lake_sql"]) => Some(All),
            _ => None,
        },
        RoleKey::Manager => match action {
            Read if resource != "api_keys" => Some(All),
            Create | Update | Delete if is(SALES) || is(SERVICE) || resource == "recommendations" => Some(Team),
            Create | Update | Delete if is(ANALYTICS) => Some(Own),
            _ => None,
        },
        RoleKey::SalesRep => match action {
            Read if is(SALES)
                || is(&[
                    "products",
                    "pipeline_stages",
                    "users",
                    "campaigns",
                    "subscriptions",
                    "invoices",
                    "tickets",
                    "knowledge_articles",
                    "predictions",
                    "dashboards",
                    "kpi_definitions",
                ]) =>
            {
                Some(All)
            }
            Read | Update if resource == "recommendations" => Some(Own),
            Create if is(SALES) => Some(Own),
            Update if is(SALES) => Some(Own),
            Delete if is(&["tasks", "calendar_events", "quotes", "documents"]) => Some(Own),
            _ => None,
        },
        RoleKey::Analyst => match action {
            Read if !is(&["api_keys", "audit_logs"]) => Some(All),
            Create | Update | Delete if is(ANALYTICS) => Some(Own),
            _ => None,
        },
        RoleKey::SupportAgent => match action {
            Read if is(SERVICE)
                || is(&[
                    "accounts",
                    "contacts",
                    "tasks",
                    "calendar_events",
                    "subscriptions",
                    "invoices",
                    "products",
                    "users",
                    "documents",
                    "dashboards",
                    "kpi_definitions",
                ]) =>
            {
                Some(All)
            }
            Create | Update if is(SERVICE) => Some(All),
            Create | Update | Delete if is(&["tasks", "calendar_events"]) => Some(Own),
            Read | Update if resource == "recommendations" => Some(Own),
            _ => None,
        },
    }
    .filter(|_| !is(ADMIN_ONLY) || action == Read || role == RoleKey::Admin)
}

/// Whether any permission of `role` is `team`-scoped, i.e. whether deciding for it needs the list of
/// people who report to the principal (callers skip computing that list otherwise).
pub fn uses_team_scope(role: RoleKey) -> bool {
    RESOURCES.iter().any(|r| Action::ALL.iter().any(|a| default_scope(role, r, *a) == Some(Scope::Team)))
}

/// Every (role, resource, action, scope) the default matrix grants, for materialising it.
pub fn default_matrix() -> impl Iterator<Item = (RoleKey, &'static str, Action, Scope)> {
    RoleKey::ALL.iter().flat_map(|role| {
        RESOURCES.iter().flat_map(move |res| {
            Action::ALL.iter().filter_map(move |act| default_scope(*role, res, *act).map(|s| (*role, *res, *act, s)))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_spot_checks() {
        assert_eq!(default_scope(RoleKey::SalesRep, "opportunities", Action::Update), Some(Scope::Own));
        assert_eq!(default_scope(RoleKey::Manager, "opportunities", Action::Update), Some(Scope::Team));
        assert_eq!(default_scope(RoleKey::ReadOnly, "opportunities", Action::Update), None);
        assert_eq!(default_scope(RoleKey::Manager, "users", Action::Create), None);
        assert_eq!(default_scope(RoleKey::Admin, "users", Action::Create), Some(Scope::All));
        assert_eq!(default_scope(RoleKey::Analyst, "lake_sql", Action::Read), Some(Scope::All));
        assert_eq!(default_scope(RoleKey::SupportAgent, "opportunities", Action::Read), None);
        assert_eq!(default_scope(RoleKey::Manager, "ai_settings", Action::Read), None);
        assert_eq!(default_scope(RoleKey::ReadOnly, "ai_settings", Action::Read), None);
        assert_eq!(default_scope(RoleKey::Admin, "ai_settings", Action::Update), Some(Scope::All));
        assert_eq!(default_scope(RoleKey::SalesRep, "ai_queries", Action::Update), Some(Scope::Own));
        assert_eq!(default_scope(RoleKey::Manager, "ai_queries", Action::Read), Some(Scope::Team));
        assert_eq!(default_scope(RoleKey::Analyst, "ai_queries", Action::Read), Some(Scope::All));
        assert_eq!(default_scope(RoleKey::ReadOnly, "ai_queries", Action::Read), Some(Scope::Own));
        // Alerts are authorised as reports are: analytics roles write their own, admins all.
        for action in Action::ALL {
            for role in RoleKey::ALL {
                assert_eq!(
                    default_scope(*role, "kpi_alerts", *action),
                    default_scope(*role, "scheduled_reports", *action),
                    "{role:?} {action:?}"
                );
            }
        }
        assert_eq!(default_scope(RoleKey::Manager, "kpi_alerts", Action::Create), Some(Scope::Own));
        assert_eq!(default_scope(RoleKey::SalesRep, "kpi_alerts", Action::Read), None);
        assert!(default_matrix().count() > 100);
        assert!(uses_team_scope(RoleKey::Manager));
        assert!(!uses_team_scope(RoleKey::Admin) && !uses_team_scope(RoleKey::SalesRep));
    }
}
