//! Who may see which documents: a tenant and, per document type, either every record or only those
//! owned by a set of users. Built from an `orbas_oltp` [`Principal`] with the same permission matrix
//! the API and the SQL port ask (read scope own/team/all per resource), and applied inside both
//! searches — as Must clauses of the tantivy query and as the ANN search's filter — so a document the
//! caller may not see never takes a result slot and never shapes a score.

use orbas_oltp::auth::principal::Principal;
use orbas_oltp::model::{Action, Scope};

use crate::document::DocType;

/// Which records of one type are visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every record of the tenant.
    All,
    /// Records owned by one of these users (a record without an owner is not among them).
    Owners(Vec<String>),
}

/// The visibility a query runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    pub tenant_id: String,
    /// The types the caller may read and how far; types not listed are invisible.
    pub rules: Vec<(DocType, Reach)>,
}

impl Visibility {
    /// Everything of one tenant (operators: `orbas search query`).
    pub fn tenant(tenant_id: &str) -> Self {
        Self { tenant_id: tenant_id.to_owned(), rules: DocType::ALL.into_iter().map(|t| (t, Reach::All)).collect() }
    }

    /// What `principal` may read: per type, its read scope on the type's resource.
    pub fn for_principal(principal: &Principal) -> Self {
        let rules = DocType::ALL
            .into_iter()
            .filter_map(|t| {
                let reach = match principal.scope_for(t.resource(), Action::Read)? {
                    Scope::All => Reach::All,
                    Scope::Own => Reach::Owners(vec![principal.user.to_string()]),
                    Scope::Team => Reach::Owners(
                        std::iter::once(principal.user)
                            .chain(principal.reports.iter().copied())
                            .map(|u| u.to_string())
                            .collect(),
                    ),
                };
                Some((t, reach))
            })
            .collect();
        Self { tenant_id: principal.tenant.to_string(), rules }
    }

    /// Whether every record of every type of the tenant is visible (then the tenant is the only filter).
    pub fn whole_tenant(&self) -> bool {
        DocType::ALL.iter().all(|t| self.rules.iter().any(|(r, reach)| r == t && *reach == Reach::All))
    }

    /// Keeps only the rules of `types` (an empty slice keeps all).
    pub fn restrict_to(mut self, types: &[DocType]) -> Self {
        if !types.is_empty() {
            self.rules.retain(|(t, _)| types.contains(t));
        }
        self
    }

    /// Whether a document with these fields is visible (the ANN filter; the tantivy query encodes the
    /// same predicate).
    pub fn allows(&self, tenant_id: &str, doc_type: DocType, owner_id: Option<&str>) -> bool {
        tenant_id == self.tenant_id
            && self.rules.iter().any(|(t, reach)| {
                *t == doc_type
                    && match reach {
                        Reach::All => true,
                        Reach::Owners(owners) => owner_id.is_some_and(|o| owners.iter().any(|x| x == o)),
                    }
            })
    }
}

#[cfg(test)]
mod tests {
    use orbas_oltp::model::{RoleKey, TenantId, UserId};

    use super::*;

    #[test]
    fn principals_get_their_read_scopes() {
        let (tenant, me, report) = (TenantId::new(), UserId::new(), UserId::new());
        let mut manager = Principal::interactive(tenant, me, RoleKey::Manager);
        manager.reports = vec![report];
        let v = Visibility::for_principal(&manager);
        assert!(v.allows(&tenant.to_string(), DocType::Opportunity, Some("anyone")));
        assert!(!v.allows("another-tenant", DocType::Opportunity, Some("anyone")));

        let agent = Visibility::for_principal(&Principal::interactive(tenant, me, RoleKey::SupportAgent));
        assert!(agent.allows(&tenant.to_string(), DocType::Ticket, None));
        assert!(agent.allows(&tenant.to_string(), DocType::TicketMessage, None));
        assert!(!agent.allows(&tenant.to_string(), DocType::Opportunity, Some(&me.to_string())));
        assert!(!agent.allows(&tenant.to_string(), DocType::Lead, Some(&me.to_string())));
    }

    #[test]
    fn owner_rules_need_an_owner_among_them() {
        let v = Visibility { tenant_id: "t".into(), rules: vec![(DocType::Lead, Reach::Owners(vec!["u".into()]))] };
        assert!(v.allows("t", DocType::Lead, Some("u")));
        assert!(!v.allows("t", DocType::Lead, Some("w")));
        assert!(!v.allows("t", DocType::Lead, None));
        assert!(!v.allows("t", DocType::Contact, Some("u")));
        let all = Visibility::tenant("t").restrict_to(&[DocType::Ticket]);
        assert!(all.allows("t", DocType::Ticket, None) && !all.allows("t", DocType::Account, None));
    }
}
