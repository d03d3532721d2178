//! `/v1/leads`: prospects not yet qualified into an account, contact and opportunity.

use orbas_oltp::model::{CampaignId, LeadId, LeadSource, LeadStatus, UserId};
use orbas_oltp::repo::leads::{self, Lead, LeadPatch, NewLead};

crate::list_query!(
    /// Filters of `GET /v1/leads`.
    LeadQuery {
        owner_id: UserId,
        campaign_id: CampaignId,
        status: LeadStatus,
        source: LeadSource,
        /// Exact email, case-insensitive.
        email: String,
    }
);

crate::resource!(Leads {
    name: "leads",
    table: leads::TABLE,
    record: Lead,
    new: NewLead,
    patch: LeadPatch,
    query: LeadQuery,
    owner: owner_id,
    update: |c, _p, id, patch| leads::update(c, LeadId(id), patch),
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
