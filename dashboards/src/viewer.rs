//! Who a dashboard, KPI or report is computed for, and what of the lake that person may see: the
//! permission matrix of `orbas_oltp` applied to lake tables, so a report mailed to two people is two
//! different reports when their permissions differ.
//!
//! A silver table is the CRM table of the same name: without read permission on it the viewer's session
//! does not have the table at all; with an `own` or `team` scope only the rows owned (`owner_id`, else
//! `user_id`) by the viewer or their reports; with `all` every row of the tenant. A gold table answers to
//! the permission of the CRM table it is computed from, and is hidden from a restricted scope unless it
//! carries the owner column (aggregates over other people's records would leak them otherwise).
//! Tables the matrix does not name (stage histories, rates, quotas) are reference data every viewer of
//! the lake reads.

use std::hash::{Hash, Hasher};

use datafusion::arrow::datatypes::SchemaRef;
use orbas_oltp::auth::Principal;
use orbas_oltp::model::{Action, RESOURCES, Scope, TenantId, UserId};
use orbas_warehouse::sql::Access;

/// The CRM table a gold table is computed from.
fn gold_base(table: &str) -> Option<&'static str> {
    Some(match table {
        "daily_bookings" | "pipeline_by_stage_owner" | "win_rate" | "sales_cycle" => "opportunities",
        "mrr_monthly" => "subscriptions",
        "ticket_sla" => "tickets",
        "recommendation_acceptance" => "recommendations",
        _ => return None,
    })
}

/// A person's view of the lake.
#[derive(Debug, Clone)]
pub struct Viewer {
    principal: Principal,
}

impl Viewer {
    pub fn new(principal: Principal) -> Self {
        Viewer { principal }
    }

    pub fn tenant(&self) -> TenantId {
        self.principal.tenant
    }

    /// What `key` (`schema.table`) shows this viewer.
    pub fn access(&self, key: &str, schema: &SchemaRef) -> Access {
        let (layer, table) = key.split_once('.').unwrap_or(("public", key));
        let resource = match layer {
            "gold" => match gold_base(table) {
                Some(r) => r,
                // A gold table this version does not know: only those who read everything see it.
                None => return if self.reads_all() { Access::All } else { Access::Hidden },
            },
            _ if RESOURCES.contains(&table) => table,
            _ => return Access::All,
        };
        let owners = match self.principal.scope_for(resource, Action::Read) {
            None => return Access::Hidden,
            Some(Scope::All) => return Access::All,
            Some(Scope::Own) => vec![self.principal.user],
            Some(Scope::Team) => {
                std::iter::once(self.principal.user).chain(self.principal.reports.iter().copied()).collect()
            }
        };
        let has = |c: &str| schema.fields().iter().any(|f| f.name() == c);
        let column = if has("owner_id") {
            "owner_id"
        } else if has("user_id") && layer != "gold" {
            "user_id"
        } else {
            return Access::Hidden;
        };
        Access::Rows { column: column.to_owned(), values: owners.iter().map(ToString::to_string).collect() }
    }

    /// The people whose numbers an alert over `source` (a KPI's source SQL) tells this viewer about,
    /// `None` for everyone. Reading a table is not enough to be alerted about its owners: a line role
    /// hears about the records it answers for — the scope it may change them in (a rep: their own, a
    /// manager: their team's) — and a role that only reads (analyst, read-only) about what it reads.
    /// Over several tables the narrowest scope wins; a table the viewer cannot read counts as `own`.
    pub fn people_in_reach(&self, source: &str) -> Option<Vec<UserId>> {
        use datafusion::sql::sqlparser::dialect::GenericDialect;
        use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
        let p = &self.principal;
        let own = Some(vec![p.user]);
        let Ok(tokens) = Tokenizer::new(&GenericDialect {}, source).tokenize() else { return own };
        let mut narrowest: Option<Scope> = None;
        for t in tokens {
            let Token::Word(w) = t else { continue };
            let word = w.value.to_ascii_lowercase();
            let resource = match gold_base(&word) {
                Some(r) => r,
                None => match RESOURCES.iter().find(|r| **r == word) {
                    Some(r) => *r,
                    None => continue,
                },
            };
            let scope =
                p.scope_for(resource, Action::Update).or(p.scope_for(resource, Action::Read)).unwrap_or(Scope::Own);
            narrowest = Some(narrowest.map_or(scope, |n| n.min(scope)));
        }
        match narrowest {
            None | Some(Scope::All) => None,
            Some(Scope::Own) => own,
            Some(Scope::Team) => Some(std::iter::once(p.user).chain(p.reports.iter().copied()).collect()),
        }
    }

    /// Whether every table the matrix names is readable in full.
    fn reads_all(&self) -> bool {
        RESOURCES.iter().all(|r| self.principal.scope_for(r, Action::Read) == Some(Scope::All))
    }

    /// Two viewers with the same key see the same rows (cache key part): the tenant, the role, the
    /// API key's scopes and, for restricted roles, the user and their reports.
    pub fn key(&self) -> String {
        let p = &self.principal;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        p.api_key.is_some().hash(&mut h);
        p.scopes.hash(&mut h);
        let restricted =
            RESOURCES.iter().any(|r| matches!(p.scope_for(r, Action::Read), Some(Scope::Own | Scope::Team)));
        if restricted {
            p.user.hash(&mut h);
            p.reports.hash(&mut h);
        }
        format!("{}:{}:{:x}", p.tenant, p.role.as_str(), h.finish())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use orbas_oltp::model::RoleKey;

    use super::*;

    fn schema(cols: &[&str]) -> SchemaRef {
        Arc::new(Schema::new(cols.iter().map(|c| Field::new(*c, DataType::Utf8, true)).collect::<Vec<_>>()))
    }

    fn viewer(role: RoleKey) -> (Viewer, UserId) {
        let p = Principal::interactive(TenantId::new(), UserId::new(), role);
        let user = p.user;
        (Viewer::new(p), user)
    }

    #[test]
    fn tables_follow_the_permission_matrix() {
        let (rep, me) = viewer(RoleKey::SalesRep);
        let opp = schema(&["tenant_id", "id", "owner_id"]);
        assert_eq!(rep.access("public.opportunities", &opp), Access::All, "reps read every deal");
        assert_eq!(
            rep.access("public.recommendations", &schema(&["tenant_id", "user_id"])),
            Access::Rows { column: "user_id".into(), values: vec![me.to_string()] },
            "but only their own recommendations"
        );
        assert_eq!(
            rep.access("gold.recommendation_acceptance", &schema(&["tenant_id", "owner_id"])),
            Access::Rows { column: "owner_id".into(), values: vec![me.to_string()] },
            "and their own acceptance rates"
        );
        assert_eq!(rep.access("public.audit_logs", &schema(&["tenant_id"])), Access::Hidden);
        assert_eq!(rep.access("public.stage_histories", &schema(&["tenant_id"])), Access::All, "reference data");
        let (agent, _) = viewer(RoleKey::SupportAgent);
        assert_eq!(agent.access("public.opportunities", &opp), Access::Hidden, "agents do not read deals");
        assert_eq!(agent.access("gold.daily_bookings", &schema(&["tenant_id", "day"])), Access::Hidden);
        assert_eq!(agent.access("gold.ticket_sla", &schema(&["tenant_id", "day"])), Access::All);
        let (admin, _) = viewer(RoleKey::Admin);
        assert_eq!(admin.access("gold.something_new", &schema(&["tenant_id"])), Access::All);
        assert_eq!(agent.access("gold.something_new", &schema(&["tenant_id"])), Access::Hidden);
    }

    #[test]
    fn alerts_reach_the_people_a_viewer_answers_for() {
        let source = "SELECT owner_id, amount FROM opportunities WHERE status = 'won'";
        let (rep, me) = viewer(RoleKey::SalesRep);
        assert_eq!(rep.people_in_reach(source), Some(vec![me]), "a rep reads every deal but answers for their own");
        let mut p = Principal::interactive(TenantId::new(), UserId::new(), RoleKey::Manager);
        let report = UserId::new();
        p.reports = vec![report];
        let boss = p.user;
        assert_eq!(Viewer::new(p).people_in_reach("gold.win_rate"), Some(vec![boss, report]));
        let (analyst, _) = viewer(RoleKey::Analyst);
        assert_eq!(analyst.people_in_reach(source), None, "analysts are told about everyone");
        let (admin, _) = viewer(RoleKey::Admin);
        assert_eq!(admin.people_in_reach(source), None);
        assert_eq!(rep.people_in_reach("SELECT user_id AS owner_id, amount FROM quotas"), None, "reference data");
    }

    #[test]
    fn viewers_share_a_cache_key_only_when_they_see_the_same_rows() {
        let tenant = TenantId::new();
        let p = |role, user| Principal::interactive(tenant, user, role);
        let (a, b) = (UserId::new(), UserId::new());
        let key = |role, user| Viewer::new(p(role, user)).key();
        assert_ne!(key(RoleKey::SalesRep, a), key(RoleKey::SalesRep, b), "reps see their own recommendations");
        assert_eq!(key(RoleKey::Analyst, a), key(RoleKey::Analyst, b), "analysts read everything alike");
        assert_ne!(key(RoleKey::Analyst, a), key(RoleKey::Manager, a));
    }
}
