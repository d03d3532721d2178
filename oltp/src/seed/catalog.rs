//! Tenant-wide reference data the shards point into: pipeline stages, campaigns, tags, products and
//! price books, SLA policies, the model registry, and the monthly currency rates.

use chrono::NaiveDate;
use rand::Rng;
use uuid::Uuid;

use super::ctx::{Cur, Rates, Tenant};
use super::org::Org;
use super::rng::{self, SeedRng, between, chance, lognormal};
use super::time::{DAY, Ms, add_months, date_of, month_start, ms_of};

pub(crate) const STAGE_WON: u8 = 5;
pub(crate) const STAGE_LOST: u8 = 6;
pub(crate) const STAGE_PROPOSAL: u8 = 3;
/// Stage probabilities in percent, by position.
pub(crate) const STAGE_PROBABILITY: [i64; 7] = [10, 20, 40, 60, 80, 100, 0];

#[derive(Debug)]
pub(crate) struct Stage {
    pub id: Uuid,
    pub name: &'static str,
    pub required: &'static [&'static str],
}

#[derive(Debug)]
pub(crate) struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub kind: &'static str,
    pub owner: usize,
    pub starts: NaiveDate,
    pub ends: NaiveDate,
    pub budget: i64,
    pub created: Ms,
    pub aborted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Platform,
    AddOn,
    Support,
    Services,
    Hardware,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Platform => "platform",
            Family::AddOn => "add_on",
            Family::Support => "support",
            Family::Services => "services",
            Family::Hardware => "hardware",
        }
    }
}

/// (sku, name, family, recurring, priced per seat, active, list price in USD cents — per seat and
/// year for per-seat products, per year for other recurring ones, once otherwise).
type ProductSpec = (&'static str, &'static str, Family, bool, bool, bool, i64);

pub(crate) const PRODUCT_SPECS: &[ProductSpec] = &[
    ("PLT-STARTER", "Starter", Family::Platform, true, true, true, 36_000),
    ("PLT-PRO", "Professional", Family::Platform, true, true, true, 96_000),
    ("PLT-ENT", "Enterprise", Family::Platform, true, true, true, 180_000),
    ("ADD-ANALYTICS", "Advanced Analytics", Family::AddOn, true, true, true, 24_000),
    ("ADD-AI", "AI Assistant", Family::AddOn, true, true, true, 36_000),
    ("ADD-SANDBOX", "Sandbox Environment", Family::AddOn, true, false, true, 480_000),
    ("ADD-API", "API Access Pack", Family::AddOn, true, false, true, 360_000),
    ("SUP-PREMIUM", "Premium Support", Family::Support, true, false, true, 600_000),
    ("SUP-247", "24/7 Mission-Critical Support", Family::Support, true, false, true, 1_800_000),
    ("SVC-ONBOARD", "Onboarding Package", Family::Services, false, false, true, 500_000),
    ("SVC-TRAIN", "Training Day", Family::Services, false, false, true, 250_000),
    ("SVC-MIGRATE", "Data Migration", Family::Services, false, false, true, 1_200_000),
    ("HW-SCANNER", "Event Badge Scanner", Family::Hardware, false, false, false, 45_000),
    ("PLT-LEGACY", "Classic (legacy)", Family::Platform, true, true, false, 60_000),
];

/// Product indexes used by the deal generator.
pub(crate) const P_STARTER: usize = 0;
pub(crate) const P_PRO: usize = 1;
pub(crate) const P_ENTERPRISE: usize = 2;
pub(crate) const P_ANALYTICS: usize = 3;
pub(crate) const P_AI: usize = 4;
pub(crate) const P_PREMIUM_SUPPORT: usize = 7;
pub(crate) const P_ONBOARDING: usize = 9;

#[derive(Debug)]
pub(crate) struct PriceBook {
    pub id: Uuid,
    pub name: String,
    pub currency: Cur,
    pub default: bool,
    pub active: bool,
    /// `price[product]` in cents of the book's currency.
    pub price: Vec<i64>,
}

/// (name, priority, first response minutes, resolution minutes)
pub(crate) const SLA: [(&str, &str, i64, i64); 4] = [
    ("Low", "low", 480, 4_320),
    ("Normal", "normal", 240, 1_440),
    ("High", "high", 60, 480),
    ("Urgent", "urgent", 30, 240),
];

/// (key, name, task, description)
pub(crate) const MODELS: &[(&str, &str, &str, &str)] = &[
    (
        "lead_score_baseline",
        "Lead score (baseline)",
        "lead_score",
        "Logistic regression on source, title and engagement.",
    ),
    (
        "deal_score_baseline",
        "Deal score (baseline)",
        "deal_score",
        "Gradient-free baseline on stage, activity and age.",
    ),
    ("churn_score_baseline", "Churn risk (baseline)", "churn_score", "Usage, ticket volume and sentiment."),
    ("forecast_baseline", "Quarter forecast (baseline)", "forecast", "Stage-weighted pipeline plus run rate."),
    ("next_best_action_rules", "Next best action (rules v1)", "next_best_action", "Hand-written rules over scores."),
    ("ticket_sentiment_lexicon", "Ticket sentiment (lexicon)", "sentiment", "Lexicon-based sentiment of ticket text."),
];
pub(crate) const M_LEAD: usize = 0;
pub(crate) const M_DEAL: usize = 1;
pub(crate) const M_CHURN: usize = 2;
pub(crate) const M_NBA: usize = 4;

pub(crate) const TAG_SPECS: &[(&str, &str)] = &[
    ("Strategic", "#1f77b4"),
    ("Champion identified", "#2ca02c"),
    ("At risk", "#d62728"),
    ("Expansion candidate", "#9467bd"),
    ("Referenceable", "#8c564b"),
    ("Competitive deal", "#e377c2"),
    ("Budget approved", "#17becf"),
    ("Exec sponsor", "#bcbd22"),
    ("Needs follow-up", "#ff7f0e"),
    ("Partner-sourced", "#7f7f7f"),
    ("Hot", "#ff0000"),
    ("Security review", "#393b79"),
    ("Public sector", "#637939"),
    ("Beta program", "#8c6d31"),
    ("Renewal risk", "#843c39"),
    ("Event lead", "#7b4173"),
];
pub(crate) const TAG_AT_RISK: usize = 2;
pub(crate) const TAG_HOT: usize = 10;

#[derive(Debug)]
pub(crate) struct Catalog {
    pub stages: Vec<Stage>,
    pub campaigns: Vec<Campaign>,
    pub tags: Vec<Uuid>,
    pub products: Vec<Uuid>,
    pub books: Vec<PriceBook>,
    pub sla: Vec<Uuid>,
    pub models: Vec<Uuid>,
    /// Active version per model.
    pub model_versions: Vec<Uuid>,
    pub rates: Rates,
}

impl Catalog {
    pub fn build(t: &Tenant, org: &Org) -> Catalog {
        let mut ids = t.ids("catalog");
        let mut rng = t.rng("catalog");
        let at = t.created as u64;
        let mid = if rng.random_bool(0.5) { "Discovery" } else { "Needs Analysis" };
        let names = ["Prospecting", "Qualification", mid, "Proposal", "Negotiation", "Closed Won", "Closed Lost"];
        let required: [&[&str]; 7] = [
            &[],
            &[],
            &["amount"],
            &["amount", "primary_contact_id"],
            &["amount", "primary_contact_id"],
            &["close_date", "amount", "primary_contact_id"],
            &["lost_reason"],
        ];
        let stages =
            names.iter().zip(required).map(|(n, r)| Stage { id: ids.at_millis(at), name: n, required: r }).collect();
        let rates_from = add_months(month_start(date_of(t.history_start)), -14);
        Catalog {
            stages,
            campaigns: campaigns(t, org, &mut rng),
            tags: TAG_SPECS.iter().map(|_| ids.at_millis(at)).collect(),
            products: PRODUCT_SPECS.iter().map(|_| ids.at_millis(at)).collect(),
            books: price_books(&mut ids, at),
            sla: SLA.iter().map(|_| ids.at_millis(at)).collect(),
            models: MODELS.iter().map(|_| ids.at_millis((t.now - 200 * DAY) as u64)).collect(),
            model_versions: MODELS.iter().map(|_| ids.at_millis((t.now - 20 * DAY) as u64)).collect(),
            rates: Rates::generate(&mut t.rng("rates"), rates_from, 40),
        }
    }

    /// The default price book of a currency.
    pub fn book_for(&self, cur: Cur) -> usize {
        self.books.iter().position(|b| b.currency == cur && b.default).unwrap_or(0)
    }

    /// A campaign of a kind that fits `source` and ran around `at` (started before, ended at most
    /// 30 days before).
    pub fn campaign_for(&self, rng: &mut impl Rng, source: &str, at: Ms) -> Option<usize> {
        let kinds: &[&str] = match source {
            "event" => &["event"],
            "paid_ads" => &["paid_ads"],
            "content" => &["content", "webinar"],
            "web" => &["email", "webinar", "content"],
            "referral" => &["referral"],
            _ => return None,
        };
        let day = date_of(at);
        let fits: Vec<usize> = (0..self.campaigns.len())
            .filter(|&i| {
                let c = &self.campaigns[i];
                kinds.contains(&c.kind) && c.starts <= day && day <= c.ends + chrono::Days::new(30)
            })
            .collect();
        (!fits.is_empty()).then(|| fits[rng.random_range(0..fits.len())])
    }
}

fn price_books(ids: &mut crate::model::IdGen<SeedRng>, at: u64) -> Vec<PriceBook> {
    let specs = [
        ("Standard (USD)", Cur::Usd, true, true, 1.0),
        ("Standard (EUR)", Cur::Eur, true, true, 1.0),
        ("Standard (GBP)", Cur::Gbp, true, true, 1.0),
        ("Partner (USD)", Cur::Usd, false, true, 0.8),
        ("Legacy 2024 (USD)", Cur::Usd, false, false, 0.9),
    ];
    specs
        .iter()
        .map(|(name, cur, default, active, factor)| PriceBook {
            id: ids.at_millis(at),
            name: (*name).to_owned(),
            currency: *cur,
            default: *default,
            active: *active,
            price: PRODUCT_SPECS
                .iter()
                .map(|p| ((p.6 as f64 / cur.usd_value() * factor / 100.0).round() as i64) * 100)
                .collect(),
        })
        .collect()
}

const CAMPAIGN_KINDS: &[(&str, f64)] = &[
    ("email", 0.3),
    ("webinar", 0.2),
    ("event", 0.15),
    ("paid_ads", 0.15),
    ("content", 0.12),
    ("referral", 0.05),
    ("other", 0.03),
];

const TOPICS: &[&str] = &[
    "Forecasting with AI",
    "Pipeline hygiene",
    "Revenue operations playbook",
    "Customer health scores",
    "From spreadsheets to a CRM",
    "Sales and support in one place",
    "Quarter-end readiness",
    "Data-driven renewals",
];

fn campaigns(t: &Tenant, org: &Org, rng: &mut SeedRng) -> Vec<Campaign> {
    let mut ids = t.ids("campaigns");
    let n = (6 + t.accounts / 150).min(200);
    let (from, to) = (t.history_start - 60 * DAY, t.now + 60 * DAY);
    let mut out: Vec<Campaign> = (0..n)
        .map(|_| {
            let kind = rng::weighted(rng, CAMPAIGN_KINDS);
            let start = from + rng.random_range(0..(to - from));
            let days = match kind {
                "event" => between(rng, 1, 4),
                "email" => between(rng, 5, 20),
                "referral" | "other" => between(rng, 60, 180),
                _ => between(rng, 14, 45),
            };
            let starts = date_of(start);
            let ends = starts + chrono::Days::new(days as u64);
            let budget_median = match kind {
                "event" => 40_000.0,
                "paid_ads" => 25_000.0,
                "content" => 8_000.0,
                "webinar" => 5_000.0,
                _ => 2_000.0,
            };
            let created = (start - between(rng, 10 * DAY, 60 * DAY)).max(t.created);
            Campaign {
                id: ids.at_millis(created as u64),
                name: campaign_name(rng, kind, starts),
                kind,
                owner: if chance(rng, 0.8) { org.marketing } else { org.admin },
                starts,
                ends,
                budget: (lognormal(rng, budget_median, 0.5) / 100.0).round() as i64 * 10_000,
                created,
                aborted: ms_of(ends) < t.now && chance(rng, 0.04),
            }
        })
        .collect();
    out.sort_by_key(|c| (c.starts, c.id));
    out
}

fn campaign_name(rng: &mut SeedRng, kind: &str, starts: NaiveDate) -> String {
    use chrono::Datelike;
    let q = (starts.month0() / 3) + 1;
    let topic = rng::pick(rng, TOPICS);
    let label = match kind {
        "email" => "Newsletter",
        "webinar" => "Webinar",
        "event" => rng::pick(rng, &["Roadshow", "Summit booth", "Customer dinner", "Trade fair"]),
        "paid_ads" => "Search ads",
        "content" => "E-book",
        "referral" => "Customer referral program",
        _ => "Partner co-marketing",
    };
    format!("Q{q} {} {label}: {topic}", starts.year())
}
