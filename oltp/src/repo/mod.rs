//! Repositories for the core CRM entities. Every function takes a [`TenantTx`](crate::db::TenantTx)
//! connection (`&mut PgConnection` inside a tenant-scoped transaction), so row-level security applies
//! to every statement; ids of another tenant behave exactly like ids that do not exist.
//!
//! Lists use keyset pagination on the (time-ordered, UUIDv7) id: `after` is the last id of the previous
//! page, so pages are stable under concurrent inserts and cost the same at any depth.

pub mod access;
pub mod accounts;
pub mod alerts;
pub mod assistant;
pub mod audit;
pub mod catalog;
pub mod commerce;
pub mod contacts;
pub mod content;
pub mod dashboards;
pub mod dedupe;
pub mod erasure;
pub mod forecasts;
pub mod idempotency;
pub mod identity;
pub mod intelligence;
pub mod interactions;
pub mod kpis;
pub mod leads;
pub mod opportunities;
pub mod people;
pub mod recommendations;
pub mod reports;
pub mod sentiment;
pub mod status;
pub mod table;
pub mod tasks;
pub mod tickets;
pub mod workflows;

use uuid::Uuid;

/// Keyset page request.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub after: Option<Uuid>,
    pub limit: u32,
}

impl PageRequest {
    pub const MAX_LIMIT: u32 = 500;

    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }

    /// The limit clamped to `1..=MAX_LIMIT`, plus one row to learn whether another page exists.
    fn fetch_limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, Self::MAX_LIMIT)) + 1
    }

    fn after_or_nil(&self) -> Uuid {
        self.after.unwrap_or(Uuid::nil())
    }
}

/// One page of results and the cursor of the next page, if any.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<Uuid>,
}

impl<T> Page<T> {
    fn from_rows(mut rows: Vec<T>, req: &PageRequest, id_of: impl Fn(&T) -> Uuid) -> Self {
        let limit = req.limit.clamp(1, PageRequest::MAX_LIMIT) as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_after = if more { rows.last().map(&id_of) } else { None };
        Page { items: rows, next_after }
    }
}

/// Maps "no row" to a typed NotFound for `entity`.
fn found<T>(row: Option<T>, entity: &'static str) -> crate::Result<T> {
    row.ok_or(crate::Error::NotFound { entity })
}
