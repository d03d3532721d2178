//! Typed ids. Every CRM id is a UUIDv7: time-ordered, so B-tree inserts stay local and ids sort by
//! creation. Postgres 15 has no `uuidv7()`, so ids are generated here — from the wall clock in
//! production, from a seeded RNG and a simulated clock in the data generator (see [`IdGen`]).

use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh UUIDv7 from the wall clock.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    )*};
}

id_type!(
    /// A tenant: the unit of isolation.
    TenantId,
    UserId,
    RoleId,
    TerritoryId,
    AccountId,
    ContactId,
    LeadId,
    OpportunityId,
    StageId,
    TaskId,
    InteractionId,
    TicketId,
    TicketMessageId,
    RecommendationId,
    AiQueryId,
    CampaignId,
    ProductId,
    PriceBookId,
    QuoteId,
    QuoteItemId,
    SubscriptionId,
    InvoiceId,
    InvoiceItemId,
    ArticleId,
    EmployeeId,
    DepartmentId,
    SlaPolicyId,
    ModelId,
    ModelVersionId,
    PredictionId,
    KpiId,
    DashboardId,
    WidgetId,
    AlertId,
    AlertEventId,
);

/// Deterministic UUIDv7 generator: the timestamp comes from the caller's (simulated) clock and the 74
/// random bits from the caller's RNG, so the same seed and clock give the same ids.
#[derive(Debug)]
pub struct IdGen<R> {
    rng: R,
}

impl<R: RngCore> IdGen<R> {
    pub fn new(rng: R) -> Self {
        Self { rng }
    }

    /// A v7 id whose timestamp is `unix_millis`.
    pub fn at_millis(&mut self, unix_millis: u64) -> Uuid {
        let mut random = [0u8; 10];
        self.rng.fill_bytes(&mut random);
        uuid::Builder::from_unix_timestamp_millis(unix_millis, &random).into_uuid()
    }

    /// A v7 id for a moment of the simulated clock.
    pub fn at(&mut self, t: chrono::DateTime<chrono::Utc>) -> Uuid {
        self.at_millis(u64::try_from(t.timestamp_millis()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn idgen_is_deterministic_and_v7() {
        let mut a = IdGen::new(rand_chacha::ChaCha8Rng::seed_from_u64(7));
        let mut b = IdGen::new(rand_chacha::ChaCha8Rng::seed_from_u64(7));
        let (x, y) = (a.at_millis(1_700_000_000_000), b.at_millis(1_700_000_000_000));
        assert_eq!(x, y);
        assert_eq!(x.get_version_num(), 7);
        let later = a.at_millis(1_700_000_000_001);
        assert!(later > x, "v7 ids sort by time");
    }
}
