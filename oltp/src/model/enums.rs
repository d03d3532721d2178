//! Enumerations mirroring the schema's CHECK constraints. Stored as text (readable in CDC events and
//! in the lake); `as_str` / `FromStr` are the one mapping between the two.

use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
        #[sqlx(type_name = "text")]
        pub enum $name {
            $(
                #[serde(rename = $text)]
                #[sqlx(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        // Written by hand: utoipa's derive does not see serde renames that arrive as macro fragments,
        // and would document the Rust variant names instead of the wire values.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(crate::Error::invalid(format!(
                        concat!("unknown ", stringify!($name), " {:?}; expected one of: {}"),
                        other,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

text_enum!(
    /// The built-in roles; the permission matrix is keyed on them.
    RoleKey { Admin = "admin", Manager = "manager", SalesRep = "sales_rep", Analyst = "analyst",
              SupportAgent = "support_agent", ReadOnly = "read_only" }
);
text_enum!(Industry { Software = "software", FinancialServices = "financial_services", Healthcare = "healthcare",
    Manufacturing = "manufacturing", Retail = "retail", Education = "education", Media = "media",
    Logistics = "logistics", Energy = "energy", PublicSector = "public_sector",
    ProfessionalServices = "professional_services", Other = "other" });
text_enum!(
    /// Employee-count band of an account or a lead's company.
    CompanySize { S1to10 = "1-10", S11to50 = "11-50", S51to200 = "51-200", S201to1000 = "201-1000",
                  S1001to5000 = "1001-5000", S5000Plus = "5000+" }
);
text_enum!(Segment { Smb = "smb", MidMarket = "mid_market", Enterprise = "enterprise" });
text_enum!(AccountLifecycle { Prospect = "prospect", Customer = "customer", FormerCustomer = "former_customer",
    Partner = "partner" });
text_enum!(LeadStatus { New = "new", Working = "working", Nurturing = "nurturing", Qualified = "qualified",
    Unqualified = "unqualified", Converted = "converted" });
text_enum!(LeadSource { Web = "web", Referral = "referral", Event = "event", Outbound = "outbound",
    Partner = "partner", PaidAds = "paid_ads", Content = "content", Other = "other" });
text_enum!(OpportunityStatus { Open = "open", Won = "won", Lost = "lost" });
text_enum!(OpportunityKind { NewBusiness = "new_business", Expansion = "expansion", Renewal = "renewal" });
text_enum!(ForecastCategory { Omitted = "omitted", Pipeline = "pipeline", BestCase = "best_case",
    Commit = "commit", Closed = "closed" });
text_enum!(
    /// Activities are tasks of a kind: calls, emails, meetings and plain to-dos.
    TaskKind { Call = "call", Email = "email", Meeting = "meeting", Task = "task" }
);
text_enum!(TaskStatus { Open = "open", InProgress = "in_progress", Completed = "completed", Cancelled = "cancelled" });
text_enum!(Priority { Low = "low", Normal = "normal", High = "high", Urgent = "urgent" });
text_enum!(TicketStatus { New = "new", Open = "open", Pending = "pending", Solved = "solved", Closed = "closed" });
text_enum!(TicketChannel { Email = "email", Chat = "chat", Phone = "phone", Web = "web", Social = "social" });
text_enum!(InteractionKind { Email = "email", Call = "call", Meeting = "meeting", Note = "note", WebVisit = "web_visit",
    Chat = "chat" });
text_enum!(Direction { Inbound = "inbound", Outbound = "outbound" });
text_enum!(EntityType { Lead = "lead", Opportunity = "opportunity", Account = "account", Contact = "contact",
    Subscription = "subscription", Ticket = "ticket" });
text_enum!(RecommendationAction { Call = "call", Email = "email", Meeting = "meeting", FollowUp = "follow_up",
    SendQuote = "send_quote", OfferDiscount = "offer_discount", Escalate = "escalate", Upsell = "upsell",
    RenewalOutreach = "renewal_outreach", Nurture = "nurture", Reassign = "reassign" });
text_enum!(RecommendationStatus { Open = "open", Accepted = "accepted", Dismissed = "dismissed",
    Snoozed = "snoozed", Expired = "expired", Done = "done" });
text_enum!(
    /// The tone of a customer's text (`sentiment_scores.label`), in the order of the classifier's outputs.
    SentimentLabel { Negative = "negative", Neutral = "neutral", Positive = "positive" });
text_enum!(
    /// What a sentiment score is about (`sentiment_scores.subject_type`).
    SentimentSubject { Ticket = "ticket", TicketMessage = "ticket_message", Interaction = "interaction" });
text_enum!(FeedbackVerdict { Accept = "accept", Dismiss = "dismiss", Snooze = "snooze" });
text_enum!(
    /// Why a rep dismissed an action (`recommendation_feedback.reason_code`): a judgement of the advice
    /// (`not_relevant`), or the data behind it was stale (`already_handled`: done outside the CRM) or
    /// wrong (`not_mine`: the record is not the rep's to work).
    DismissReason { NotRelevant = "not_relevant", AlreadyHandled = "already_handled", NotMine = "not_mine" });
text_enum!(ProductFamily { Platform = "platform", AddOn = "add_on", Services = "services", Support = "support",
    Hardware = "hardware" });
text_enum!(QuoteStatus { Draft = "draft", InReview = "in_review", Approved = "approved", Sent = "sent",
    Accepted = "accepted", Rejected = "rejected", Expired = "expired" });
text_enum!(SubscriptionStatus { Trialing = "trialing", Active = "active", PastDue = "past_due",
    Cancelled = "cancelled", Expired = "expired" });
text_enum!(BillingPeriod { Monthly = "monthly", Quarterly = "quarterly", Annual = "annual" });
text_enum!(InvoiceStatus { Draft = "draft", Open = "open", Paid = "paid", Void = "void",
    Uncollectible = "uncollectible" });
text_enum!(CampaignKind { Email = "email", Event = "event", Webinar = "webinar", PaidAds = "paid_ads",
    Content = "content", Referral = "referral", Other = "other" });
text_enum!(CampaignStatus { Planned = "planned", Active = "active", Completed = "completed", Aborted = "aborted" });
text_enum!(ArticleStatus { Draft = "draft", Published = "published", Archived = "archived" });
text_enum!(EmployeeStatus { Active = "active", OnLeave = "on_leave", Terminated = "terminated" });
text_enum!(UserStatus { Invited = "invited", Active = "active", Disabled = "disabled" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_values_are_the_wire_values() {
        let schema = serde_json::to_value(<RoleKey as utoipa::PartialSchema>::schema()).unwrap_or_default();
        let documented: Vec<&str> =
            schema["enum"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
        assert_eq!(documented, RoleKey::ALL.iter().map(RoleKey::as_str).collect::<Vec<_>>());
        let sizes = serde_json::to_value(<CompanySize as utoipa::PartialSchema>::schema()).unwrap_or_default();
        assert_eq!(sizes["enum"][1], "11-50");
    }
    use std::str::FromStr;

    #[test]
    fn text_roundtrip_for_every_value() {
        for v in TaskKind::ALL {
            assert_eq!(TaskKind::from_str(v.as_str()).ok(), Some(*v));
        }
        for v in CompanySize::ALL {
            let json = serde_json::to_string(v).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", v.as_str()));
        }
        let err = LeadStatus::from_str("won").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("expected one of: new, working"), "{err}");
    }
}
