//! Point-in-time features of leads, opportunities and accounts, computed by DataFusion SQL over the
//! lake's silver tables of one tenant.
//!
//! Every feature row belongs to an entity **at a cut-off**: it is computed only from rows whose
//! business time lies strictly before the cut-off (activities by `occurred_at`, stage changes by
//! `changed_at`, tickets by `created_at`, payments by `paid_at`, …), and the entity itself must have
//! existed and been undecided at the cut-off. So a training row built at a past cut-off sees exactly
//! what a live score at that moment would have seen; the label is what happened *after* it. Attributes
//! the CRM keeps only as a current value and that change over a record's life (an opportunity's
//! `amount` and `close_date`, a subscription's `active_seats_30d`) are not used as such: amount and
//! probability come from the stage history at the cut-off, close-date pushes from the dated
//! `close_date_changes`, usage from dated product events.
//!
//! The module owns the feature definitions (names, SQL, order) and the conversion of the query's
//! Arrow answer into a dense row-major matrix for the learners; which cut-offs to use is the caller's.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit, TimestampMicrosecondType};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use tracing::debug;

use crate::error::{Error, Result};

/// The table of cut-offs the feature queries join against (registered in the caller's session).
const CUTOFFS: &str = "orbas_feature_cutoffs";

/// Each ticket's tone: the label of its latest sentiment score (`sentiment_scores`, written by
/// [`crate::sentiment`]). A score is a function of the ticket's own text, which existed when the ticket
/// was created, so joining it through a ticket created before a cut-off reads nothing from after it
/// even though the score was computed later.
const TONE: &str = "SELECT ticket_id, label FROM (
    SELECT ticket_id, label, ROW_NUMBER() OVER (PARTITION BY ticket_id ORDER BY scored_at DESC) AS r
    FROM sentiment_scores WHERE subject_type = 'ticket') WHERE r = 1";
/// The same shape before any ticket was scored (the lake has no `sentiment_scores` yet).
const NO_TONE: &str = "SELECT CAST(NULL AS VARCHAR) AS ticket_id, CAST(NULL AS VARCHAR) AS label WHERE false";

/// The query of each ticket's tone (`ticket_id`, `label`) in `ctx`: empty before anything was scored.
pub(crate) fn tone_source(ctx: &SessionContext) -> Result<&'static str> {
    Ok(if ctx.table_exist("sentiment_scores")? { TONE } else { NO_TONE })
}

/// Every move of a deal's expected close date: when, and by how many days (later is positive).
const MOVES: &str = "SELECT opportunity_id, changed_at,
    (date_part('epoch', CAST(to_date AS TIMESTAMP)) - date_part('epoch', CAST(from_date AS TIMESTAMP))) / 86400.0 AS days
    FROM close_date_changes";
/// The same shape (with the real column types) before the lake has any close-date change.
const NO_MOVES: &str =
    "SELECT id AS opportunity_id, created_at AS changed_at, CAST(0 AS DOUBLE) AS days FROM opportunities WHERE false";

/// The query of close-date moves (`opportunity_id`, `changed_at`, `days`) in `ctx`.
pub(crate) fn moves_source(ctx: &SessionContext) -> Result<&'static str> {
    Ok(if ctx.table_exist("close_date_changes")? { MOVES } else { NO_MOVES })
}

/// The lake-dependent parts of the feature queries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sources {
    pub tone: &'static str,
    pub moves: &'static str,
}

impl Sources {
    pub(crate) fn of(ctx: &SessionContext) -> Result<Sources> {
        Ok(Sources { tone: tone_source(ctx)?, moves: moves_source(ctx)? })
    }
}

/// What is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    /// A lead: converted within [`LEAD_HORIZON_DAYS`] of the cut-off?
    Lead,
    /// An open opportunity: eventually won?
    Opportunity,
    /// A paying account: cancels a subscription within [`CHURN_HORIZON_DAYS`] of the cut-off?
    Account,
}

/// A lead's label: converted within this many days after the cut-off.
pub const LEAD_HORIZON_DAYS: i64 = 90;
/// An account's label: a subscription cancelled within this many days after the cut-off.
pub const CHURN_HORIZON_DAYS: i64 = 90;

impl Entity {
    /// Every entity kind, in the order commands report them.
    pub const ALL: [Entity; 3] = [Entity::Lead, Entity::Opportunity, Entity::Account];

    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Lead => "lead",
            Entity::Opportunity => "opportunity",
            Entity::Account => "account",
        }
    }

    /// The feature names, in column order.
    pub fn feature_names(self) -> &'static [&'static str] {
        match self {
            Entity::Lead => LEAD_FEATURES,
            Entity::Opportunity => OPPORTUNITY_FEATURES,
            Entity::Account => ACCOUNT_FEATURES,
        }
    }

    fn sql(self, horizon: DateTime<Utc>, sources: Sources) -> String {
        let horizon = timestamp_literal(horizon);
        match self {
            Entity::Lead => lead_sql(&horizon),
            Entity::Opportunity => opportunity_sql(&horizon, sources),
            Entity::Account => account_sql(&horizon, sources.tone),
        }
    }
}

impl std::str::FromStr for Entity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lead" => Ok(Entity::Lead),
            "opportunity" => Ok(Entity::Opportunity),
            "account" => Ok(Entity::Account),
            other => Err(Error::Invalid(format!("unknown entity '{other}' (lead, opportunity or account)"))),
        }
    }
}

/// One entity at one cut-off.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub cutoff: DateTime<Utc>,
    /// The outcome after the cut-off: `None` while it cannot be known yet (still open, or the label's
    /// horizon reaches past the data).
    pub label: Option<bool>,
}

/// Feature rows of one entity kind: `values` is row-major, `names.len()` values per row.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    pub entity: Entity,
    pub names: Vec<&'static str>,
    pub rows: Vec<Row>,
    pub values: Vec<f64>,
}

impl FeatureSet {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The features of row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let n = self.names.len();
        &self.values[i * n..(i + 1) * n]
    }

    /// The rows whose label is known, as `(features, label)`.
    pub fn labelled(&self) -> impl Iterator<Item = (&Row, &[f64], bool)> {
        (0..self.len()).filter_map(|i| self.rows[i].label.map(|l| (&self.rows[i], self.row(i), l)))
    }
}

/// Computes the features of `entity` at every cut-off in `ctx` (a tenant-scoped lake session).
/// `horizon` is the present of the data: labels reaching past it are unknown.
pub async fn compute(
    ctx: &SessionContext,
    entity: Entity,
    cutoffs: &[DateTime<Utc>],
    horizon: DateTime<Utc>,
) -> Result<FeatureSet> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![Field::new("cutoff", ts, false)]));
    let values = TimestampMicrosecondArray::from(cutoffs.iter().map(DateTime::timestamp_micros).collect::<Vec<_>>())
        .with_timezone("UTC");
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values) as ArrayRef])?;
    let table = MemTable::try_new(schema, vec![vec![batch]])?;
    ctx.deregister_table(CUTOFFS)?;
    ctx.register_table(CUTOFFS, Arc::new(table))?;
    let sources = Sources::of(ctx)?;
    let answer = async { ctx.sql(&entity.sql(horizon, sources)).await?.collect().await }.await;
    ctx.deregister_table(CUTOFFS)?;
    let batches = answer?;
    let set = decode(entity, &batches)?;
    debug!(entity = entity.as_str(), cutoffs = cutoffs.len(), rows = set.len(), "features computed");
    Ok(set)
}

/// Turns the query's answer (id, cutoff, label, then one Float64 per feature) into a [`FeatureSet`].
fn decode(entity: Entity, batches: &[RecordBatch]) -> Result<FeatureSet> {
    let names = entity.feature_names().to_vec();
    let mut set = FeatureSet { entity, names, rows: Vec::new(), values: Vec::new() };
    for batch in batches {
        if batch.num_columns() != 3 + set.names.len() {
            return Err(Error::Invalid(format!(
                "the {} feature query returned {} columns, expected {}",
                entity.as_str(),
                batch.num_columns(),
                3 + set.names.len()
            )));
        }
        let ids = datafusion::arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let cutoffs = batch.column(1).as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(|| {
            Error::Invalid(format!("{} feature query: the cut-off is not a timestamp", entity.as_str()))
        })?;
        let labels = datafusion::arrow::compute::cast(batch.column(2), &DataType::Boolean)?;
        let labels = labels.as_boolean();
        let features: Vec<ArrayRef> = (3..batch.num_columns())
            .map(|c| datafusion::arrow::compute::cast(batch.column(c), &DataType::Float64))
            .collect::<std::result::Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            let cutoff = DateTime::from_timestamp_micros(cutoffs.value(i))
                .ok_or_else(|| Error::Invalid("a cut-off out of range".into()))?;
            let label = labels.is_valid(i).then(|| labels.value(i));
            set.rows.push(Row { id: ids.value(i).to_owned(), cutoff, label });
            for f in &features {
                let f = f.as_primitive::<Float64Type>();
                // Missing values (no history at all) are 0 by construction of the queries; a NULL
                // here would be a bug in them, kept visible as NaN rather than hidden.
                set.values.push(if f.is_valid(i) { f.value(i) } else { f64::NAN });
            }
        }
    }
    // Deterministic order for training and tests: by cut-off, then id.
    let n = set.names.len();
    let mut order: Vec<usize> = (0..set.rows.len()).collect();
    order.sort_by(|&a, &b| (set.rows[a].cutoff, &set.rows[a].id).cmp(&(set.rows[b].cutoff, &set.rows[b].id)));
    let rows = order.iter().map(|&i| set.rows[i].clone()).collect();
    let values = order.iter().flat_map(|&i| set.values[i * n..(i + 1) * n].iter().copied()).collect();
    set.rows = rows;
    set.values = values;
    Ok(set)
}

fn timestamp_literal(t: DateTime<Utc>) -> String {
    format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// Days from `b` to `a` as a double (both timestamps).
macro_rules! days {
    ($a:expr, $b:expr) => {
        concat!("((date_part('epoch', ", $a, ") - date_part('epoch', ", $b, ")) / 86400.0)")
    };
}

pub const OPPORTUNITY_FEATURES: &[&str] = &[
    "deal_age_days",
    "stage_position",
    "stage_probability",
    "stage_age_days",
    "stage_age_vs_typical",
    "stage_changes",
    "amount_vs_median",
    "is_expansion",
    "is_renewal",
    "touches",
    "touches_30d",
    "meetings",
    "calls",
    "emails",
    "inbound_share",
    "days_since_touch",
    "owner_win_rate",
    "owner_closed_deals",
    "account_won_deals",
    "account_lost_deals",
    "account_tickets_90d",
    "account_urgent_tickets_90d",
    "account_negative_tickets_90d",
    "close_date_pushes",
    "close_date_pushed_days",
];

/// An opportunity is a row at a cut-off when it was created before it and not yet closed; its label
/// is whether it was won, known once it closed before `horizon`.
fn opportunity_sql(horizon: &str, sources: Sources) -> String {
    let Sources { tone, moves } = sources;
    format!(
        "
WITH c AS (SELECT cutoff FROM {CUTOFFS}),
tone AS ({tone}),
moves AS ({moves}),
opp AS (
  SELECT o.id, o.account_id, o.owner_id, o.kind, o.currency, o.created_at, c.cutoff,
         CASE WHEN o.closed_at < {horizon} THEN o.status = 'won' END AS label
  FROM opportunities o CROSS JOIN c
  WHERE o.created_at < c.cutoff AND (o.closed_at IS NULL OR o.closed_at >= c.cutoff)
),
hist AS (
  SELECT h.opportunity_id, h.to_stage_id AS stage_id, h.changed_at,
         CAST(h.amount AS DOUBLE) AS amount, CAST(h.probability AS DOUBLE) AS probability,
         LEAD(h.changed_at) OVER (PARTITION BY h.opportunity_id ORDER BY h.changed_at, h.id) AS left_at
  FROM stage_histories h
),
at_c AS (
  SELECT opp.id, opp.cutoff, h.stage_id, h.changed_at, h.amount, h.probability
  FROM opp JOIN hist h ON h.opportunity_id = opp.id
  WHERE h.changed_at < opp.cutoff AND (h.left_at IS NULL OR h.left_at >= opp.cutoff)
),
changes AS (
  SELECT opp.id, opp.cutoff, COUNT(*) AS n
  FROM opp JOIN stage_histories h ON h.opportunity_id = opp.id AND h.changed_at < opp.cutoff
  GROUP BY opp.id, opp.cutoff
),
typical AS (
  SELECT c.cutoff, h.stage_id, median({stay}) AS days
  FROM hist h CROSS JOIN c WHERE h.left_at < c.cutoff
  GROUP BY c.cutoff, h.stage_id
),
positions AS (
  SELECT s.id, CAST(s.position AS DOUBLE) / CAST(m.top AS DOUBLE) AS position
  FROM pipeline_stages s
  JOIN (SELECT pipeline, GREATEST(MAX(position), 1) AS top FROM pipeline_stages GROUP BY pipeline) m
    ON m.pipeline = s.pipeline
),
medians AS (
  SELECT opp.cutoff, opp.kind, opp.currency, median(a.amount) AS amount
  FROM opp JOIN at_c a ON a.id = opp.id AND a.cutoff = opp.cutoff
  GROUP BY opp.cutoff, opp.kind, opp.currency
),
touch AS (
  SELECT opp.id, opp.cutoff, COUNT(*) AS touches,
         SUM(CASE WHEN i.occurred_at >= opp.cutoff - INTERVAL '30 days' THEN 1 ELSE 0 END) AS touches_30d,
         SUM(CASE WHEN i.kind = 'meeting' THEN 1 ELSE 0 END) AS meetings,
         SUM(CASE WHEN i.kind = 'call' THEN 1 ELSE 0 END) AS calls,
         SUM(CASE WHEN i.kind = 'email' THEN 1 ELSE 0 END) AS emails,
         SUM(CASE WHEN i.direction = 'inbound' THEN 1 ELSE 0 END) AS inbound,
         MAX(i.occurred_at) AS last_touch
  FROM opp JOIN interaction_logs i ON i.opportunity_id = opp.id AND i.occurred_at < opp.cutoff
  GROUP BY opp.id, opp.cutoff
),
closed AS (
  SELECT c.cutoff, o.owner_id, o.account_id, CASE WHEN o.status = 'won' THEN 1 ELSE 0 END AS won
  FROM opportunities o CROSS JOIN c
  WHERE o.closed_at < c.cutoff AND o.status IN ('won', 'lost')
),
base AS (
  SELECT c.cutoff, COALESCE(CAST(SUM(closed.won) AS DOUBLE) / NULLIF(COUNT(closed.won), 0), 0.3) AS rate
  FROM c LEFT JOIN closed ON closed.cutoff = c.cutoff
  GROUP BY c.cutoff
),
owners AS (
  SELECT cutoff, owner_id, SUM(won) AS won, COUNT(*) AS n FROM closed WHERE owner_id IS NOT NULL
  GROUP BY cutoff, owner_id
),
account_deals AS (
  SELECT cutoff, account_id, SUM(won) AS won, COUNT(*) - SUM(won) AS lost FROM closed GROUP BY cutoff, account_id
),
account_tickets AS (
  SELECT opp.id, opp.cutoff, COUNT(*) AS n,
         SUM(CASE WHEN t.priority IN ('high', 'urgent') THEN 1 ELSE 0 END) AS urgent,
         SUM(CASE WHEN tone.label = 'negative' THEN 1 ELSE 0 END) AS negative
  FROM opp JOIN tickets t ON t.account_id = opp.account_id
   AND t.created_at < opp.cutoff AND t.created_at >= opp.cutoff - INTERVAL '90 days'
  LEFT JOIN tone ON tone.ticket_id = t.id
  GROUP BY opp.id, opp.cutoff
),
pushes AS (
  SELECT opp.id, opp.cutoff, COUNT(*) AS n, SUM(m.days) AS days
  FROM opp JOIN moves m ON m.opportunity_id = opp.id AND m.changed_at < opp.cutoff AND m.days > 0
  GROUP BY opp.id, opp.cutoff
)
SELECT opp.id, opp.cutoff, opp.label,
  {deal_age},
  COALESCE(p.position, 0),
  COALESCE(a.probability / 100.0, 0),
  COALESCE({stage_age}, 0),
  COALESCE({stage_age} / NULLIF(ty.days, 0), 1),
  CAST(COALESCE(ch.n, 0) AS DOUBLE),
  COALESCE(a.amount / NULLIF(md.amount, 0), 1),
  CASE WHEN opp.kind = 'expansion' THEN 1.0 ELSE 0.0 END,
  CASE WHEN opp.kind = 'renewal' THEN 1.0 ELSE 0.0 END,
  CAST(COALESCE(t.touches, 0) AS DOUBLE),
  CAST(COALESCE(t.touches_30d, 0) AS DOUBLE),
  CAST(COALESCE(t.meetings, 0) AS DOUBLE),
  CAST(COALESCE(t.calls, 0) AS DOUBLE),
  CAST(COALESCE(t.emails, 0) AS DOUBLE),
  COALESCE(CAST(t.inbound AS DOUBLE) / NULLIF(CAST(t.touches AS DOUBLE), 0), 0),
  COALESCE({since_touch}, {deal_age}),
  (CAST(COALESCE(ow.won, 0) AS DOUBLE) + 5.0 * b.rate) / (CAST(COALESCE(ow.n, 0) AS DOUBLE) + 5.0),
  CAST(COALESCE(ow.n, 0) AS DOUBLE),
  CAST(COALESCE(ac.won, 0) AS DOUBLE),
  CAST(COALESCE(ac.lost, 0) AS DOUBLE),
  CAST(COALESCE(tk.n, 0) AS DOUBLE),
  CAST(COALESCE(tk.urgent, 0) AS DOUBLE),
  CAST(COALESCE(tk.negative, 0) AS DOUBLE),
  CAST(COALESCE(pu.n, 0) AS DOUBLE),
  COALESCE(pu.days, 0)
FROM opp
JOIN base b ON b.cutoff = opp.cutoff
LEFT JOIN at_c a ON a.id = opp.id AND a.cutoff = opp.cutoff
LEFT JOIN positions p ON p.id = a.stage_id
LEFT JOIN typical ty ON ty.stage_id = a.stage_id AND ty.cutoff = opp.cutoff
LEFT JOIN changes ch ON ch.id = opp.id AND ch.cutoff = opp.cutoff
LEFT JOIN medians md ON md.cutoff = opp.cutoff AND md.kind = opp.kind AND md.currency = opp.currency
LEFT JOIN touch t ON t.id = opp.id AND t.cutoff = opp.cutoff
LEFT JOIN owners ow ON ow.owner_id = opp.owner_id AND ow.cutoff = opp.cutoff
LEFT JOIN account_deals ac ON ac.account_id = opp.account_id AND ac.cutoff = opp.cutoff
LEFT JOIN account_tickets tk ON tk.id = opp.id AND tk.cutoff = opp.cutoff
LEFT JOIN pushes pu ON pu.id = opp.id AND pu.cutoff = opp.cutoff
",
        stay = days!("h.left_at", "h.changed_at"),
        deal_age = days!("opp.cutoff", "opp.created_at"),
        stage_age = days!("opp.cutoff", "a.changed_at"),
        since_touch = days!("opp.cutoff", "t.last_touch"),
    )
}

pub const LEAD_FEATURES: &[&str] = &[
    "lead_age_days",
    "touches",
    "touches_30d",
    "meetings",
    "calls",
    "emails",
    "web_visits",
    "inbound_share",
    "days_since_touch",
    "from_referral",
    "from_event",
    "from_web",
    "from_outbound",
    "from_partner",
    "from_paid_ads",
    "from_content",
    "company_size_rank",
    "senior_title",
    "in_campaign",
    "owner_conversion_rate",
];

/// A lead is a row at a cut-off when it was created before it, not converted yet, and younger than a
/// year (older unconverted leads are dead and would swamp the negatives). Label: converted within
/// [`LEAD_HORIZON_DAYS`] after the cut-off; unknown until the whole window lies before `horizon`.
/// An early conversion is not labelled before then either: the cut-offs whose window is still open
/// would otherwise hold their conversions and none of their misses, a positive rate inflated exactly
/// where the latest training months calibrate the model.
fn lead_sql(horizon: &str) -> String {
    format!(
        "
WITH c AS (SELECT cutoff FROM {CUTOFFS}),
lead AS (
  SELECT l.id, l.owner_id, l.source, l.company_size, l.title, l.campaign_id, l.created_at, c.cutoff,
         CASE WHEN c.cutoff + INTERVAL '{LEAD_HORIZON_DAYS} days' <= {horizon}
              THEN COALESCE(l.converted_at < c.cutoff + INTERVAL '{LEAD_HORIZON_DAYS} days', false) END AS label
  FROM leads l CROSS JOIN c
  WHERE l.created_at < c.cutoff AND l.created_at >= c.cutoff - INTERVAL '365 days'
    AND (l.converted_at IS NULL OR l.converted_at >= c.cutoff)
),
touch AS (
  SELECT lead.id, lead.cutoff, COUNT(*) AS touches,
         SUM(CASE WHEN i.occurred_at >= lead.cutoff - INTERVAL '30 days' THEN 1 ELSE 0 END) AS touches_30d,
         SUM(CASE WHEN i.kind = 'meeting' THEN 1 ELSE 0 END) AS meetings,
         SUM(CASE WHEN i.kind = 'call' THEN 1 ELSE 0 END) AS calls,
         SUM(CASE WHEN i.kind = 'email' THEN 1 ELSE 0 END) AS emails,
         SUM(CASE WHEN i.kind = 'web_visit' THEN 1 ELSE 0 END) AS web_visits,
         SUM(CASE WHEN i.direction = 'inbound' THEN 1 ELSE 0 END) AS inbound,
         MAX(i.occurred_at) AS last_touch
  FROM lead JOIN interaction_logs i ON i.lead_id = lead.id AND i.occurred_at < lead.cutoff
  GROUP BY lead.id, lead.cutoff
),
decided AS (
  SELECT c.cutoff, l.owner_id, CASE WHEN l.converted_at < c.cutoff THEN 1 ELSE 0 END AS converted
  FROM leads l CROSS JOIN c
  WHERE l.created_at < c.cutoff - INTERVAL '{LEAD_HORIZON_DAYS} days' OR l.converted_at < c.cutoff
),
base AS (
  SELECT c.cutoff, COALESCE(CAST(SUM(d.converted) AS DOUBLE) / NULLIF(COUNT(d.converted), 0), 0.1) AS rate
  FROM c LEFT JOIN decided d ON d.cutoff = c.cutoff GROUP BY c.cutoff
),
owners AS (
  SELECT cutoff, owner_id, SUM(converted) AS converted, COUNT(*) AS n FROM decided
  WHERE owner_id IS NOT NULL GROUP BY cutoff, owner_id
)
SELECT lead.id, lead.cutoff, lead.label,
  {lead_age},
  CAST(COALESCE(t.touches, 0) AS DOUBLE),
  CAST(COALESCE(t.touches_30d, 0) AS DOUBLE),
  CAST(COALESCE(t.meetings, 0) AS DOUBLE),
  CAST(COALESCE(t.calls, 0) AS DOUBLE),
  CAST(COALESCE(t.emails, 0) AS DOUBLE),
  CAST(COALESCE(t.web_visits, 0) AS DOUBLE),
  COALESCE(CAST(t.inbound AS DOUBLE) / NULLIF(CAST(t.touches AS DOUBLE), 0), 0),
  COALESCE({since_touch}, {lead_age}),
  CASE WHEN lead.source = 'referral' THEN 1.0 ELSE 0.0 END,
  CASE WHEN lead.source = 'event' THEN 1.0 ELSE 0.0 END,
  CASE WHEN lead.source = 'web' THEN 1.0 ELSE 0.0 END,
  CASE WHEN lead.source = 'outbound' THEN 1.0 ELSE 0.0 END,
  CASE WHEN lead.source = 'partner' THEN 1.0 ELSE 0.0 END,
  CASE WHEN lead.source = 'paid_ads' THEN 1.0 ELSE 0.0 END,
  CASE WHEN lead.source = 'content' THEN 1.0 ELSE 0.0 END,
  CASE lead.company_size WHEN '1-10' THEN 1.0 WHEN '11-50' THEN 2.0 WHEN '51-200' THEN 3.0
       WHEN '201-1000' THEN 4.0 WHEN '1001-5000' THEN 5.0 WHEN '5000+' THEN 6.0 ELSE 0.0 END,
  CASE WHEN lower(COALESCE(lead.title, '')) LIKE '%chief%' OR lower(COALESCE(lead.title, '')) LIKE '%vp%'
         OR lower(COALESCE(lead.title, '')) LIKE '%vice president%' OR lower(COALESCE(lead.title, '')) LIKE '%head%'
         OR lower(COALESCE(lead.title, '')) LIKE '%director%' OR lower(COALESCE(lead.title, '')) LIKE '%founder%'
       THEN 1.0 ELSE 0.0 END,
  CASE WHEN lead.campaign_id IS NOT NULL THEN 1.0 ELSE 0.0 END,
  (CAST(COALESCE(ow.converted, 0) AS DOUBLE) + 10.0 * b.rate) / (CAST(COALESCE(ow.n, 0) AS DOUBLE) + 10.0)
FROM lead
JOIN base b ON b.cutoff = lead.cutoff
LEFT JOIN touch t ON t.id = lead.id AND t.cutoff = lead.cutoff
LEFT JOIN owners ow ON ow.owner_id = lead.owner_id AND ow.cutoff = lead.cutoff
",
        lead_age = days!("lead.cutoff", "lead.created_at"),
        since_touch = days!("lead.cutoff", "t.last_touch"),
    )
}

pub const ACCOUNT_FEATURES: &[&str] = &[
    "customer_days",
    "subscriptions",
    "seats",
    "usage_events_30d",
    "usage_events_prior_30d",
    "usage_trend",
    "tickets_90d",
    "urgent_tickets_90d",
    "open_tickets",
    "low_csat_tickets_90d",
    "negative_tickets_90d",
    "negative_open_tickets",
    "touches_90d",
    "days_since_touch",
    "invoices_overdue",
    "late_payments_365d",
    "failed_payments_365d",
    "is_enterprise",
    "is_smb",
];

/// An account is a row at a cut-off when it has a subscription started before it and not cancelled
/// before it. Label: a subscription of it cancelled within [`CHURN_HORIZON_DAYS`] after the cut-off;
/// unknown where that window reaches past `horizon`, a cancellation inside it included (as for leads).
fn account_sql(horizon: &str, tone: &str) -> String {
    format!(
        "
WITH c AS (SELECT cutoff FROM {CUTOFFS}),
tone AS ({tone}),
subs AS (
  SELECT s.account_id, c.cutoff, COUNT(*) AS n, SUM(s.seats) AS seats, MIN(s.started_at) AS since,
         MIN(s.cancelled_at) AS first_cancel
  FROM subscriptions s CROSS JOIN c
  WHERE s.started_at < c.cutoff AND (s.cancelled_at IS NULL OR s.cancelled_at >= c.cutoff)
  GROUP BY s.account_id, c.cutoff
),
acct AS (
  SELECT subs.*, a.segment,
         CASE WHEN subs.cutoff + INTERVAL '{CHURN_HORIZON_DAYS} days' <= {horizon}
              THEN COALESCE(subs.first_cancel < subs.cutoff + INTERVAL '{CHURN_HORIZON_DAYS} days', false) END AS label
  FROM subs JOIN accounts a ON a.id = subs.account_id
),
usage AS (
  SELECT acct.account_id, acct.cutoff,
         SUM(CASE WHEN e.occurred_at >= acct.cutoff - INTERVAL '30 days' THEN 1 ELSE 0 END) AS recent,
         SUM(CASE WHEN e.occurred_at < acct.cutoff - INTERVAL '30 days' THEN 1 ELSE 0 END) AS prior
  FROM acct JOIN analytics_events e ON e.account_id = acct.account_id AND e.source = 'product'
   AND e.occurred_at < acct.cutoff AND e.occurred_at >= acct.cutoff - INTERVAL '60 days'
  GROUP BY acct.account_id, acct.cutoff
),
ticket_stats AS (
  SELECT acct.account_id, acct.cutoff,
         SUM(CASE WHEN t.created_at >= acct.cutoff - INTERVAL '90 days' THEN 1 ELSE 0 END) AS recent,
         SUM(CASE WHEN t.created_at >= acct.cutoff - INTERVAL '90 days' AND t.priority IN ('high', 'urgent')
                  THEN 1 ELSE 0 END) AS urgent,
         SUM(CASE WHEN t.solved_at IS NULL OR t.solved_at >= acct.cutoff THEN 1 ELSE 0 END) AS open,
         SUM(CASE WHEN t.created_at >= acct.cutoff - INTERVAL '90 days' AND t.solved_at < acct.cutoff
                   AND t.csat <= 2 THEN 1 ELSE 0 END) AS low_csat,
         SUM(CASE WHEN t.created_at >= acct.cutoff - INTERVAL '90 days' AND tone.label = 'negative'
                  THEN 1 ELSE 0 END) AS negative,
         SUM(CASE WHEN (t.solved_at IS NULL OR t.solved_at >= acct.cutoff) AND tone.label = 'negative'
                  THEN 1 ELSE 0 END) AS negative_open
  FROM acct JOIN tickets t ON t.account_id = acct.account_id AND t.created_at < acct.cutoff
  LEFT JOIN tone ON tone.ticket_id = t.id
  GROUP BY acct.account_id, acct.cutoff
),
touch AS (
  SELECT acct.account_id, acct.cutoff,
         SUM(CASE WHEN i.occurred_at >= acct.cutoff - INTERVAL '90 days' THEN 1 ELSE 0 END) AS recent,
         MAX(i.occurred_at) AS last_touch
  FROM acct JOIN interaction_logs i ON i.account_id = acct.account_id AND i.occurred_at < acct.cutoff
  GROUP BY acct.account_id, acct.cutoff
),
paid AS (
  SELECT p.invoice_id, acct.cutoff, MIN(CASE WHEN p.status = 'succeeded' THEN p.paid_at END) AS paid_at,
         SUM(CASE WHEN p.status = 'failed' AND p.paid_at >= acct.cutoff - INTERVAL '365 days' THEN 1 ELSE 0 END) AS failed
  FROM acct JOIN payments p ON p.account_id = acct.account_id AND p.paid_at < acct.cutoff
  GROUP BY p.invoice_id, acct.cutoff
),
billing AS (
  SELECT acct.account_id, acct.cutoff,
         SUM(CASE WHEN paid.paid_at IS NULL AND CAST(i.due_on AS TIMESTAMP) < CAST(acct.cutoff AS TIMESTAMP)
                  THEN 1 ELSE 0 END) AS overdue,
         SUM(CASE WHEN CAST(paid.paid_at AS TIMESTAMP) > CAST(i.due_on AS TIMESTAMP) + INTERVAL '1 day'
                   AND paid.paid_at >= acct.cutoff - INTERVAL '365 days' THEN 1 ELSE 0 END) AS late,
         SUM(COALESCE(paid.failed, 0)) AS failed
  FROM acct JOIN invoices i ON i.account_id = acct.account_id
   AND CAST(i.issued_on AS TIMESTAMP) < CAST(acct.cutoff AS TIMESTAMP)
  LEFT JOIN paid ON paid.invoice_id = i.id AND paid.cutoff = acct.cutoff
  GROUP BY acct.account_id, acct.cutoff
)
SELECT acct.account_id, acct.cutoff, acct.label,
  {customer_days},
  CAST(acct.n AS DOUBLE),
  CAST(acct.seats AS DOUBLE),
  CAST(COALESCE(u.recent, 0) AS DOUBLE),
  CAST(COALESCE(u.prior, 0) AS DOUBLE),
  (CAST(COALESCE(u.recent, 0) AS DOUBLE) + 1.0) / (CAST(COALESCE(u.prior, 0) AS DOUBLE) + 1.0),
  CAST(COALESCE(tk.recent, 0) AS DOUBLE),
  CAST(COALESCE(tk.urgent, 0) AS DOUBLE),
  CAST(COALESCE(tk.open, 0) AS DOUBLE),
  CAST(COALESCE(tk.low_csat, 0) AS DOUBLE),
  CAST(COALESCE(tk.negative, 0) AS DOUBLE),
  CAST(COALESCE(tk.negative_open, 0) AS DOUBLE),
  CAST(COALESCE(t.recent, 0) AS DOUBLE),
  COALESCE({since_touch}, {customer_days}),
  CAST(COALESCE(bl.overdue, 0) AS DOUBLE),
  CAST(COALESCE(bl.late, 0) AS DOUBLE),
  CAST(COALESCE(bl.failed, 0) AS DOUBLE),
  CASE WHEN acct.segment = 'enterprise' THEN 1.0 ELSE 0.0 END,
  CASE WHEN acct.segment = 'smb' THEN 1.0 ELSE 0.0 END
FROM acct
LEFT JOIN usage u ON u.account_id = acct.account_id AND u.cutoff = acct.cutoff
LEFT JOIN ticket_stats tk ON tk.account_id = acct.account_id AND tk.cutoff = acct.cutoff
LEFT JOIN touch t ON t.account_id = acct.account_id AND t.cutoff = acct.cutoff
LEFT JOIN billing bl ON bl.account_id = acct.account_id AND bl.cutoff = acct.cutoff
",
        customer_days = days!("acct.cutoff", "acct.since"),
        since_touch = days!("acct.cutoff", "t.last_touch"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "TIMESTAMP WITH TIME ZONE";

    /// (table, columns, rows known before the cut-off, rows dated at or after it)
    fn fixture() -> Vec<(&'static str, String, &'static str, &'static str)> {
        vec![
            ("pipeline_stages", "id VARCHAR, pipeline VARCHAR, position INT".into(),
             "('s1', 'default', 1), ('s2', 'default', 2), ('s3', 'default', 4)", ""),
            ("opportunities",
             format!("id VARCHAR, account_id VARCHAR, owner_id VARCHAR, kind VARCHAR, currency VARCHAR, status VARCHAR, created_at {TS}, closed_at {TS}"),
             "('o1', 'a1', 'u1', 'new_business', 'USD', 'won', '2026-03-01T00:00:00Z', '2026-07-10T00:00:00Z'),
              ('o2', 'a1', 'u1', 'expansion', 'USD', 'lost', '2026-04-01T00:00:00Z', '2026-06-20T00:00:00Z'),
              ('o3', 'a2', 'u1', 'new_business', 'USD', 'won', '2026-01-01T00:00:00Z', '2026-03-15T00:00:00Z'),
              ('o4', 'a2', 'u2', 'new_business', 'USD', 'lost', '2026-01-10T00:00:00Z', '2026-02-01T00:00:00Z'),
              ('o5', 'a2', 'u2', 'new_business', 'USD', 'open', '2026-05-01T00:00:00Z', NULL)",
             "('o6', 'a1', 'u1', 'new_business', 'USD', 'lost', '2026-06-05T00:00:00Z', '2026-06-20T00:00:00Z'),
              ('o7', 'a1', 'u1', 'renewal', 'USD', 'won', '2026-06-01T00:00:00Z', '2026-06-02T00:00:00Z')"),
            ("stage_histories",
             format!("id VARCHAR, opportunity_id VARCHAR, to_stage_id VARCHAR, changed_at {TS}, amount DECIMAL(18, 2), probability DECIMAL(5, 2)"),
             "('h1', 'o1', 's1', '2026-03-01T00:00:00Z', 1000, 10), ('h2', 'o1', 's2', '2026-04-15T00:00:00Z', 1200, 40),
              ('h4', 'o2', 's1', '2026-04-01T00:00:00Z', 500, 10),
              ('h5', 'o3', 's1', '2026-01-01T00:00:00Z', 800, 10), ('h6', 'o3', 's2', '2026-02-01T00:00:00Z', 800, 40),
              ('h7', 'o3', 's3', '2026-03-15T00:00:00Z', 800, 100),
              ('h8', 'o5', 's1', '2026-05-01T00:00:00Z', 300, 10), ('h9', 'o4', 's1', '2026-01-10T00:00:00Z', 50, 10)",
             "('h3', 'o1', 's3', '2026-06-10T00:00:00Z', 2000, 80), ('h10', 'o5', 's2', '2026-06-01T00:00:00Z', 9000, 40),
              ('h11', 'o6', 's1', '2026-06-05T00:00:00Z', 1, 10)"),
            ("interaction_logs",
             format!("id VARCHAR, kind VARCHAR, direction VARCHAR, account_id VARCHAR, lead_id VARCHAR, opportunity_id VARCHAR, occurred_at {TS}"),
             "('i1', 'call', 'outbound', 'a1', NULL, 'o1', '2026-04-20T00:00:00Z'),
              ('i2', 'meeting', NULL, 'a1', NULL, 'o1', '2026-05-20T00:00:00Z'),
              ('i3', 'email', 'inbound', 'a1', NULL, 'o1', '2026-05-25T00:00:00Z'),
              ('i4', 'web_visit', 'inbound', NULL, 'l1', NULL, '2026-05-02T00:00:00Z'),
              ('i5', 'call', 'outbound', NULL, 'l1', NULL, '2026-05-03T00:00:00Z')",
             "('i6', 'meeting', NULL, 'a1', NULL, 'o1', '2026-06-01T00:00:00Z'),
              ('i7', 'email', 'inbound', 'a1', NULL, 'o2', '2026-06-05T00:00:00Z'),
              ('i8', 'meeting', NULL, NULL, 'l1', NULL, '2026-06-10T00:00:00Z'),
              ('i9', 'call', NULL, 'a2', NULL, NULL, '2026-06-11T00:00:00Z')"),
            ("tickets",
             format!("id VARCHAR, account_id VARCHAR, priority VARCHAR, created_at {TS}, solved_at {TS}, csat SMALLINT"),
             "('t1', 'a1', 'urgent', '2026-05-10T00:00:00Z', '2026-05-12T00:00:00Z', 1),
              ('t2', 'a1', 'normal', '2026-05-28T00:00:00Z', '2026-06-03T00:00:00Z', 5)",
             "('t3', 'a1', 'high', '2026-06-03T00:00:00Z', NULL, NULL), ('t4', 'a2', 'urgent', '2026-06-01T00:00:00Z', NULL, NULL)"),
            // t2 was first scored positive, then (a newer version) negative: the latest score counts.
            ("sentiment_scores",
             format!("id VARCHAR, subject_type VARCHAR, ticket_id VARCHAR, label VARCHAR, scored_at {TS}"),
             "('s1', 'ticket', 't1', 'negative', '2026-11-01T00:00:00Z'),
              ('s2', 'ticket', 't2', 'positive', '2026-11-01T00:00:00Z'),
              ('s3', 'ticket', 't2', 'negative', '2026-11-02T00:00:00Z'),
              ('s4', 'ticket_message', 't2', 'positive', '2026-11-03T00:00:00Z')",
             "('s5', 'ticket', 't3', 'negative', '2026-11-01T00:00:00Z'), ('s6', 'ticket', 't4', 'negative', '2026-11-01T00:00:00Z')"),
            ("leads",
             format!("id VARCHAR, owner_id VARCHAR, source VARCHAR, company_size VARCHAR, title VARCHAR, campaign_id VARCHAR, created_at {TS}, converted_at {TS}"),
             "('l1', 'u1', 'referral', '51-200', 'VP Sales', 'c1', '2026-05-01T00:00:00Z', '2026-06-15T00:00:00Z'),
              ('l2', 'u1', 'web', NULL, 'Engineer', NULL, '2026-02-01T00:00:00Z', NULL),
              ('l3', 'u2', 'event', '5000+', NULL, NULL, '2025-01-01T00:00:00Z', NULL),
              ('l4', 'u1', 'web', '1-10', NULL, NULL, '2025-12-01T00:00:00Z', '2026-01-05T00:00:00Z')",
             "('l5', 'u1', 'web', '1-10', NULL, NULL, '2026-06-02T00:00:00Z', '2026-06-03T00:00:00Z')"),
            // o1: pushed twice by 30 days, then pulled in once, before the cut-off; pushed again
            // after it. o2: pushed exactly at the cut-off (not before it).
            ("close_date_changes",
             format!("id VARCHAR, opportunity_id VARCHAR, from_date DATE, to_date DATE, changed_at {TS}"),
             "('m1', 'o1', '2026-05-01', '2026-05-31', '2026-04-25T10:00:00Z'),
              ('m2', 'o1', '2026-05-31', '2026-06-30', '2026-05-28T10:00:00Z'),
              ('m3', 'o1', '2026-06-30', '2026-06-20', '2026-05-29T10:00:00Z')",
             "('m4', 'o1', '2026-06-20', '2026-07-20', '2026-06-18T10:00:00Z'),
              ('m5', 'o2', '2026-06-10', '2026-07-10', '2026-06-01T00:00:00Z')"),
            ("accounts", "id VARCHAR, segment VARCHAR".into(), "('a1', 'enterprise'), ('a2', 'smb')", ""),
            ("subscriptions",
             format!("id VARCHAR, account_id VARCHAR, seats INT, started_at {TS}, cancelled_at {TS}"),
             "('sub1', 'a1', 10, '2025-06-01T00:00:00Z', '2026-07-01T00:00:00Z'),
              ('sub2', 'a2', 5, '2026-01-01T00:00:00Z', NULL)",
             "('sub3', 'a2', 7, '2026-06-01T00:00:00Z', NULL)"),
            ("analytics_events",
             format!("id VARCHAR, account_id VARCHAR, source VARCHAR, occurred_at {TS}"),
             "('e1', 'a1', 'product', '2026-05-20T00:00:00Z'), ('e2', 'a1', 'product', '2026-04-20T00:00:00Z'),
              ('e3', 'a1', 'web', '2026-05-21T00:00:00Z'), ('e4', 'a2', 'product', '2026-05-30T00:00:00Z')",
             "('e5', 'a1', 'product', '2026-06-05T00:00:00Z'), ('e6', 'a2', 'product', '2026-06-01T00:00:00Z')"),
            ("invoices",
             "id VARCHAR, account_id VARCHAR, issued_on DATE, due_on DATE".into(),
             "('inv1', 'a1', '2026-04-01', '2026-04-15'), ('inv2', 'a1', '2026-05-01', '2026-05-15')",
             "('inv3', 'a1', '2026-06-02', '2026-06-16')"),
            ("payments",
             format!("id VARCHAR, invoice_id VARCHAR, account_id VARCHAR, status VARCHAR, paid_at {TS}"),
             "('p1', 'inv1', 'a1', 'succeeded', '2026-04-20T00:00:00Z'), ('p2', 'inv2', 'a1', 'failed', '2026-05-16T00:00:00Z')",
             "('p3', 'inv2', 'a1', 'succeeded', '2026-06-05T00:00:00Z'), ('p4', 'inv3', 'a1', 'failed', '2026-06-03T00:00:00Z')"),
        ]
    }

    async fn context(with_future: bool) -> SessionContext {
        let ctx = SessionContext::new();
        for (table, columns, base, future) in fixture() {
            ctx.sql(&format!("CREATE TABLE {table} ({columns})"))
                .await
                .expect("fixture SQL")
                .collect()
                .await
                .expect("fixture SQL");
            for rows in [base, if with_future { future } else { "" }] {
                if !rows.is_empty() {
                    ctx.sql(&format!("INSERT INTO {table} VALUES {rows}"))
                        .await
                        .expect("fixture SQL")
                        .collect()
                        .await
                        .expect("fixture SQL");
                }
            }
        }
        ctx
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a timestamp")
    }

    fn value(set: &FeatureSet, id: &str, cutoff: DateTime<Utc>, name: &str) -> f64 {
        let i = set.rows.iter().position(|r| r.id == id && r.cutoff == cutoff).unwrap_or_else(|| panic!("no row {id}"));
        let j = set.names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no feature {name}"));
        set.row(i)[j]
    }

    const CUT: &str = "2026-06-01T00:00:00Z";
    const HORIZON: &str = "2026-12-01T00:00:00Z";

    #[tokio::test]
    async fn rows_dated_after_the_cutoff_change_no_feature() {
        let cutoffs = [at("2026-05-01T00:00:00Z"), at(CUT)];
        for entity in [Entity::Opportunity, Entity::Lead, Entity::Account] {
            let past = compute(&context(false).await, entity, &cutoffs, at(HORIZON)).await.expect("features");
            let all = compute(&context(true).await, entity, &cutoffs, at(HORIZON)).await.expect("features");
            assert!(!past.is_empty(), "{entity:?}: no rows");
            let ids = |s: &FeatureSet| s.rows.iter().map(|r| (r.id.clone(), r.cutoff)).collect::<Vec<_>>();
            assert_eq!(ids(&past), ids(&all), "{entity:?}: the planted rows changed which entities are rows");
            assert_eq!(past.values.len(), past.len() * entity.feature_names().len());
            for (i, row) in past.rows.iter().enumerate() {
                for (j, name) in past.names.iter().enumerate() {
                    let (a, b) = (past.row(i)[j], all.row(i)[j]);
                    assert!(a.is_finite(), "{entity:?} {} {name} = {a}", row.id);
                    assert_eq!(
                        a, b,
                        "{entity:?} {} at {}: {name} read a row dated after the cut-off",
                        row.id, row.cutoff
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn opportunity_features_have_the_expected_values() {
        let set = compute(&context(true).await, Entity::Opportunity, &[at(CUT)], at(HORIZON)).await.expect("features");
        let ids: Vec<_> = set.rows.iter().map(|r| (r.id.as_str(), r.label)).collect();
        // o3/o4 closed before, o6 created after, o7 created at the cut-off (not before it).
        assert_eq!(ids, [("o1", Some(true)), ("o2", Some(false)), ("o5", None)]);
        let early = compute(&context(true).await, Entity::Opportunity, &[at(CUT)], at("2026-07-01T00:00:00Z")).await;
        let labels: Vec<_> = early.expect("features").rows.iter().map(|r| r.label).collect();
        assert_eq!(labels, [None, Some(false), None], "o1 closes after that horizon");
        let c = at(CUT);
        let v = |id, name| value(&set, id, c, name);
        assert_eq!(v("o1", "deal_age_days"), 92.0);
        assert_eq!(v("o1", "stage_position"), 0.5);
        assert_eq!(v("o1", "stage_probability"), 0.4);
        assert_eq!(v("o1", "stage_age_days"), 47.0);
        // s2's only stay that ended before the cut-off: o3's, 42 days.
        assert!((v("o1", "stage_age_vs_typical") - 47.0 / 42.0).abs() < 1e-12);
        assert_eq!(v("o1", "stage_changes"), 2.0);
        // Pushes only (a pull-in is not one), made before the cut-off.
        assert_eq!((v("o1", "close_date_pushes"), v("o1", "close_date_pushed_days")), (2.0, 60.0));
        assert_eq!((v("o2", "close_date_pushes"), v("o2", "close_date_pushed_days")), (0.0, 0.0));
        // A lake from before close dates were tracked has no close_date_changes: no pushes, the
        // rest unchanged.
        let untracked = context(true).await;
        untracked.deregister_table("close_date_changes").expect("deregister");
        let plain = compute(&untracked, Entity::Opportunity, &[c], at(HORIZON)).await.expect("features without moves");
        let w = |id, name| value(&plain, id, c, name);
        assert_eq!((w("o1", "close_date_pushes"), w("o1", "close_date_pushed_days")), (0.0, 0.0));
        assert_eq!(w("o1", "meetings"), v("o1", "meetings"));
        // Open new-business USD deals at the cut-off: o1 (1200) and o5 (300), median 750.
        assert_eq!(v("o1", "amount_vs_median"), 1.6);
        assert_eq!(v("o2", "is_expansion"), 1.0);
        assert_eq!((v("o1", "touches"), v("o1", "touches_30d")), (3.0, 2.0));
        assert_eq!((v("o1", "meetings"), v("o1", "calls"), v("o1", "emails")), (1.0, 1.0, 1.0));
        assert!((v("o1", "inbound_share") - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(v("o1", "days_since_touch"), 7.0);
        // Never touched: as old as the deal.
        assert_eq!(v("o5", "days_since_touch"), 31.0);
        // u1 closed o3 (won) before; the tenant's rate then is 1 of 2: (1 + 5 × 0.5) / (1 + 5).
        assert!((v("o1", "owner_win_rate") - 3.5 / 6.0).abs() < 1e-12);
        assert_eq!(v("o1", "owner_closed_deals"), 1.0);
        assert_eq!((v("o5", "account_won_deals"), v("o5", "account_lost_deals")), (1.0, 1.0));
        assert_eq!((v("o1", "account_tickets_90d"), v("o1", "account_urgent_tickets_90d")), (2.0, 1.0));
        assert_eq!(v("o1", "account_negative_tickets_90d"), 2.0);
    }

    #[tokio::test]
    async fn lead_and_account_features_have_the_expected_values() {
        let c = at(CUT);
        let leads = compute(&context(true).await, Entity::Lead, &[c], at(HORIZON)).await.expect("features");
        let ids: Vec<_> = leads.rows.iter().map(|r| (r.id.as_str(), r.label)).collect();
        // l3 is older than a year, l4 converted before, l5 created after.
        assert_eq!(ids, [("l1", Some(true)), ("l2", Some(false))]);
        let v = |id, name| value(&leads, id, c, name);
        assert_eq!((v("l1", "lead_age_days"), v("l1", "touches"), v("l1", "web_visits")), (31.0, 2.0, 1.0));
        assert_eq!((v("l1", "from_referral"), v("l1", "company_size_rank"), v("l1", "senior_title")), (1.0, 3.0, 1.0));
        assert_eq!((v("l2", "senior_title"), v("l2", "in_campaign"), v("l2", "days_since_touch")), (0.0, 0.0, 120.0));
        // Decided at the cut-off (converted, or older than 90 days): u1's l4 (converted) and l2 (not),
        // u2's l3 (not): (1 + 10 × 1/3) / (2 + 10).
        assert!((v("l1", "owner_conversion_rate") - (1.0 + 10.0 / 3.0) / 12.0).abs() < 1e-12);
        // The label needs the whole 90 days: unknown when the horizon is closer, even for l1, whose
        // conversion lies before it (labelling it would keep the window's hits and drop its misses).
        let early =
            compute(&context(true).await, Entity::Lead, &[c], at("2026-07-01T00:00:00Z")).await.expect("features");
        assert_eq!(early.rows.iter().map(|r| r.label).collect::<Vec<_>>(), [None, None]);
        // A conversion after the horizon is not known there either (a training side built at a split
        // must not learn of conversions after it).
        let before = compute(&context(true).await, Entity::Lead, &[c], at("2026-06-10T00:00:00Z")).await;
        assert_eq!(before.expect("features").rows.iter().map(|r| r.label).collect::<Vec<_>>(), [None, None]);

        let accounts = compute(&context(true).await, Entity::Account, &[c], at(HORIZON)).await.expect("features");
        let ids: Vec<_> = accounts.rows.iter().map(|r| (r.id.as_str(), r.label)).collect();
        assert_eq!(ids, [("a1", Some(true)), ("a2", Some(false))]);
        // sub1's cancellation (2026-07-01) is not known at a horizon before it.
        let before = compute(&context(true).await, Entity::Account, &[c], at("2026-06-20T00:00:00Z")).await;
        assert_eq!(before.expect("features").rows.iter().map(|r| r.label).collect::<Vec<_>>(), [None, None]);
        // Nor at one after it whose 90-day window from the cut-off is still open.
        let inside = compute(&context(true).await, Entity::Account, &[c], at("2026-07-15T00:00:00Z")).await;
        assert_eq!(inside.expect("features").rows.iter().map(|r| r.label).collect::<Vec<_>>(), [None, None]);
        let v = |id, name| value(&accounts, id, c, name);
        assert_eq!((v("a1", "customer_days"), v("a1", "seats"), v("a2", "subscriptions")), (365.0, 10.0, 1.0));
        assert_eq!(
            (v("a1", "usage_events_30d"), v("a1", "usage_events_prior_30d"), v("a1", "usage_trend")),
            (1.0, 1.0, 1.0)
        );
        assert_eq!((v("a1", "tickets_90d"), v("a1", "urgent_tickets_90d"), v("a1", "open_tickets")), (2.0, 1.0, 1.0));
        assert_eq!(v("a1", "low_csat_tickets_90d"), 1.0);
        // t1 and t2 (its latest ticket score) are negative; only t2 was still open at the cut-off.
        assert_eq!((v("a1", "negative_tickets_90d"), v("a1", "negative_open_tickets")), (2.0, 1.0));
        // Before anything was scored the lake has no sentiment_scores: no tone, the rest unchanged.
        let unscored = context(true).await;
        unscored.deregister_table("sentiment_scores").expect("deregister");
        let plain = compute(&unscored, Entity::Account, &[c], at(HORIZON)).await.expect("features without tone");
        let w = |id, name| value(&plain, id, c, name);
        assert_eq!((w("a1", "negative_tickets_90d"), w("a1", "negative_open_tickets")), (0.0, 0.0));
        assert_eq!(w("a1", "tickets_90d"), v("a1", "tickets_90d"));
        // inv1 paid 5 days late; inv2 due 2026-05-15 and unpaid at the cut-off, with one failed attempt.
        assert_eq!(
            (v("a1", "invoices_overdue"), v("a1", "late_payments_365d"), v("a1", "failed_payments_365d")),
            (1.0, 1.0, 1.0)
        );
        assert_eq!((v("a1", "is_enterprise"), v("a2", "is_smb")), (1.0, 1.0));
    }
}
