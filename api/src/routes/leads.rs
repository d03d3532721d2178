//! `/v1/leads`: unqualified prospects (conversion has its own workflow endpoint).

use orbas_oltp::model::{LeadId, LeadStatus, UserId};
use orbas_oltp::repo::leads::{self, Lead, LeadFilter, LeadPatch, NewLead};
use serde::Deserialize;

/// Filters of `GET /v1/leads`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeadQuery {
    pub owner_id: Option<UserId>,
    pub status: Option<LeadStatus>,
    /// Page size, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub after: Option<uuid::Uuid>,
}

crate::repo_resource!(Leads {
    name: "leads",
    entity: "lead",
    repo: leads,
    id: LeadId,
    record: Lead,
    new: NewLead,
    patch: LeadPatch,
    query: LeadQuery,
    filter: |q, owners| LeadFilter { owner_id: q.owner_id, owned_by_any: owners, status: q.status }
});

crate::crud_handlers!(
    resource = Leads,
    tag = "leads",
    collection = "/v1/leads",
    item = "/v1/leads/{id}",
    record = Lead,
    new = NewLead,
    patch = LeadPatch,
    filter = LeadQuery
);
