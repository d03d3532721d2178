//! Gold: the KPI tables, computed from silver with DataFusion SQL and kept current per tenant.
//!
//! | table (`gold.…` in SQL) | grain | what |
//! |---|---|---|
//! | `daily_bookings` | tenant, close date, kind | won deals and their amount |
//! | `pipeline_by_stage_owner` | tenant, stage, owner, close quarter, forecast category | open deals, amount, probability-weighted amount |
//! | `win_rate` | tenant, close quarter, owner | won / (won + lost), by count and amount |
//! | `sales_cycle` | tenant, close quarter, owner | days from creation to win: mean, median, extremes |
//! | `mrr_monthly` | tenant, month | opening, new, churned and closing MRR, subscription counts, revenue and logo churn |
//! | `ticket_sla` | tenant, creation day, priority | first-response and resolution SLA attainment, CSAT |
//! | `recommendation_acceptance` | tenant, feedback day, kind, action, rep | next-best actions accepted, dismissed (of which as already handled, as not the rep's record) and snoozed; accepted / (accepted + dismissed on the advice's merits) |
//!
//! **Money** is in the tenant's corporate currency (`tenants.corporate_currency`): an amount in another
//! currency is converted at the `currency_rates` rate valid on the amount's date — the close date for
//! bookings and closed deals, today for the open pipeline, the month's first day for MRR. A rate is
//! valid from its `valid_on` until the next one for the same pair; before the first known rate the
//! first applies; a pair entered only the other way round is used inverted. Amounts without any rate
//! are left out of the sums and counted in `unconverted_deals`, never summed unconverted. Sums are exact
//! decimals rounded half away from zero to cents.
//!
//! **Periods** follow each tenant's fiscal calendar (`fiscal_year_start_month`, `fiscal_year_named_by`):
//! every row carries its `fiscal_year` and `fiscal_quarter`. Days of timestamps are UTC days.
//!
//! **Incremental refresh:** the sink reports which tenants each committed batch touched in the
//! source tables ([`dirty`]); [`Refresher`] recomputes just the KPI tables that read those sources, for
//! just those tenants, and replaces their rows in one Delta commit per table (`replaceWhere tenant_id IN
//! (…)`), so a reader sees a
//! tenant's KPIs either before or after a refresh, never half. Batches arriving while a refresh runs are
//! coalesced into the next. Everything is recomputed at start and periodically (figures that depend on
//! the clock — today's rate, SLA deadlines passing — move without any change to the data).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use url::Url;

use crate::error::{Error, Result};
use crate::sink::{schema_url, table_url};
use crate::sql::{Lake, Limits};
use crate::tenant::TenantScoped;

/// Gold tables live under `<lake>/gold/kpi/<table>/`.
pub const DIR: &str = "kpi";
/// …and are `gold.<table>` in SQL.
pub const SQL_SCHEMA: &str = "gold";

/// One KPI table: its name, the silver tables it reads, and the query computing it.
#[derive(Debug, Clone)]
pub struct Kpi {
    pub name: &'static str,
    pub sources: &'static [&'static str],
    pub sql: String,
}

/// How long a failed refresh waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// The silver tables a KPI reads besides its own: the tenant calendar and the exchange rates.
const CALENDAR: &[&str] = &["tenants", "currency_rates"];

/// Which tenants need their KPIs recomputed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    All,
    Tenants(BTreeSet<String>),
}

impl Scope {
    /// Both scopes together.
    pub fn merge(self, other: Scope) -> Scope {
        match (self, other) {
            (Scope::Tenants(mut a), Scope::Tenants(b)) => {
                a.extend(b);
                Scope::Tenants(a)
            }
            _ => Scope::All,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Scope::Tenants(t) if t.is_empty())
    }
}

/// Which tenants each KPI table needs recomputed for. A change to a silver table dirties only the
/// KPIs that read it (a change to the calendar tables, every KPI), so a burst of ticket updates
/// recomputes `ticket_sla` and leaves the deal KPIs alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dirty(BTreeMap<&'static str, Scope>);

impl Dirty {
    /// Every KPI for `scope`.
    pub fn every_kpi(scope: &Scope) -> Dirty {
        Dirty(kpis().iter().map(|k| (k.name, scope.clone())).collect())
    }

    /// The KPIs reading silver `table`, for `scope`.
    fn of(table: &str, scope: &Scope) -> Dirty {
        let all = CALENDAR.contains(&table);
        Dirty(kpis().iter().filter(|k| all || k.sources.contains(&table)).map(|k| (k.name, scope.clone())).collect())
    }

    /// Both together: per KPI, the union of the tenants.
    pub fn merge(mut self, other: Dirty) -> Dirty {
        for (kpi, scope) in other.0 {
            let merged = match self.0.remove(kpi) {
                Some(s) => s.merge(scope),
                None => scope,
            };
            self.0.insert(kpi, merged);
        }
        self
    }

    /// The scope of KPI `name` (`None`: clean).
    pub fn scope(&self, name: &str) -> Option<&Scope> {
        self.0.get(name).filter(|s| !s.is_empty())
    }

    fn is_empty(&self) -> bool {
        self.0.values().all(Scope::is_empty)
    }
}

/// The fiscal year and quarter of the date expression `d` under the calendar of the row's tenant (alias
/// `c` of the `cal` view), as two columns `fiscal_year`, `fiscal_quarter`. See [`fiscal_period`].
fn fiscal(d: &str) -> String {
    let month = format!("CAST(date_part('month', {d}) AS INT)");
    format!(
        "CAST(CAST(date_part('year', {d}) AS INT) - CASE WHEN {month} >= c.fy_start THEN 0 ELSE 1 END \
         + CASE WHEN c.fy_named_by = 'end' AND c.fy_start <> 1 THEN 1 ELSE 0 END AS INT) AS fiscal_year, \
         CAST(CASE WHEN ({month} - c.fy_start + 12) % 12 < 3 THEN 1 WHEN ({month} - c.fy_start + 12) % 12 < 6 THEN 2 \
              WHEN ({month} - c.fy_start + 12) % 12 < 9 THEN 3 ELSE 4 END AS INT) AS fiscal_quarter"
    )
}

/// The fiscal (year, quarter) of a calendar (year, month 1..=12) for a year starting in `start_month`,
/// named by its first (`named_by_end == false`) or last calendar year. The reference the SQL of
/// [`fiscal`] is tested against.
pub fn fiscal_period(year: i32, month: u32, start_month: u32, named_by_end: bool) -> (i32, u32) {
    let start_year = if month >= start_month { year } else { year - 1 };
    let fy = if named_by_end && start_month != 1 { start_year + 1 } else { start_year };
    (fy, (month + 12 - start_month) % 12 / 3 + 1)
}

/// `LEFT JOIN` of the rate converting `currency` into the tenant's corporate currency on `day`.
fn fx_join(alias: &str, tenant: &str, currency: &str, day: &str) -> String {
    format!(
        "LEFT JOIN fx {alias} ON {alias}.tenant_id = {tenant} AND {alias}.from_currency = {currency} \
         AND {alias}.to_currency = c.currency AND {alias}.valid_from <= {day} \
         AND ({alias}.valid_until IS NULL OR {day} < {alias}.valid_until)"
    )
}

/// `amount` (in `currency`) in the corporate currency through the rate joined as `alias`; NULL when
/// there is no rate.
fn converted(amount: &str, currency: &str, alias: &str) -> String {
    format!(
        "CASE WHEN {currency} = c.currency THEN CAST({amount} AS DECIMAL(38, 12)) \
         ELSE CAST({amount} * {alias}.rate AS DECIMAL(38, 12)) END"
    )
}

/// Rounds a money sum to cents; an empty sum is zero.
fn money(sum: &str) -> String {
    format!("CAST(COALESCE({sum}, 0) AS DECIMAL(38, 2))")
}

/// The tenants' calendars and currencies.
pub const CAL_VIEW: &str = "SELECT id AS tenant_id, corporate_currency AS currency, \
     CAST(fiscal_year_start_month AS INT) AS fy_start, fiscal_year_named_by AS fy_named_by FROM tenants";

/// Every rate with the days it is valid on: `[valid_from, valid_until)`. Pairs entered only the other
/// way round are inverted; the first rate of a pair also covers the time before it.
pub const FX_VIEW: &str = "WITH inverse AS ( \
       SELECT r.tenant_id, r.to_currency AS from_currency, r.from_currency AS to_currency, \
              CAST(1.0 / CAST(r.rate AS DOUBLE) AS DECIMAL(20, 10)) AS rate, r.valid_on \
       FROM currency_rates r \
       WHERE NOT EXISTS (SELECT 1 FROM currency_rates d WHERE d.tenant_id = r.tenant_id \
                         AND d.from_currency = r.to_currency AND d.to_currency = r.from_currency)), \
     rates AS ( \
       SELECT tenant_id, from_currency, to_currency, CAST(rate AS DECIMAL(20, 10)) AS rate, valid_on \
       FROM currency_rates UNION ALL SELECT * FROM inverse) \
     SELECT tenant_id, from_currency, to_currency, rate, \
       CASE WHEN ROW_NUMBER() OVER (PARTITION BY tenant_id, from_currency, to_currency ORDER BY valid_on) = 1 \
            THEN DATE '0001-01-01' ELSE valid_on END AS valid_from, \
       LEAD(valid_on) OVER (PARTITION BY tenant_id, from_currency, to_currency ORDER BY valid_on) AS valid_until \
     FROM rates";

/// The KPI tables, in refresh order.
pub fn kpis() -> Vec<Kpi> {
    let close = fiscal("o.close_date");
    vec![
        Kpi {
            name: "daily_bookings",
            sources: &["opportunities"],
            sql: format!(
                "WITH won AS ( \
                   SELECT o.tenant_id, o.close_date AS day, {close}, o.kind, c.currency, \
                          {amount} AS amount \
                   FROM opportunities o JOIN cal c ON c.tenant_id = o.tenant_id {fx} \
                   WHERE o.status = 'won') \
                 SELECT tenant_id, day, fiscal_year, fiscal_quarter, kind, currency, \
                        COUNT(*) AS deals_won, {bookings} AS bookings, \
                        COUNT(*) - COUNT(amount) AS unconverted_deals \
                 FROM won GROUP BY tenant_id, day, fiscal_year, fiscal_quarter, kind, currency \
                 ORDER BY tenant_id, day, kind",
                amount = converted("o.amount", "o.currency", "r"),
                fx = fx_join("r", "o.tenant_id", "o.currency", "o.close_date"),
                bookings = money("SUM(amount)"),
            ),
        },
        Kpi {
            name: "pipeline_by_stage_owner",
            sources: &["opportunities", "pipeline_stages"],
            sql: format!(
                "WITH pipe AS ( \
                   SELECT o.tenant_id, s.pipeline, o.stage_id, s.name AS stage_name, s.position AS stage_position, \
                          o.owner_id, {close}, o.forecast_category, c.currency, o.probability, \
                          {amount} AS amount \
                   FROM opportunities o JOIN cal c ON c.tenant_id = o.tenant_id \
                   JOIN pipeline_stages s ON s.tenant_id = o.tenant_id AND s.id = o.stage_id {fx} \
                   WHERE o.status = 'open') \
                 SELECT tenant_id, pipeline, stage_id, stage_name, stage_position, owner_id, fiscal_year, \
                        fiscal_quarter, forecast_category, currency, COUNT(*) AS open_deals, {sum} AS amount, \
                        {weighted} AS weighted_amount, COUNT(*) - COUNT(amount) AS unconverted_deals \
                 FROM pipe GROUP BY tenant_id, pipeline, stage_id, stage_name, stage_position, owner_id, \
                          fiscal_year, fiscal_quarter, forecast_category, currency \
                 ORDER BY tenant_id, pipeline, stage_position, owner_id, fiscal_year, fiscal_quarter, forecast_category",
                amount = converted("o.amount", "o.currency", "r"),
                fx = fx_join("r", "o.tenant_id", "o.currency", "CURRENT_DATE"),
                sum = money("SUM(amount)"),
                weighted = money("SUM(amount * CAST(probability AS DECIMAL(5, 2)) * CAST('0.01' AS DECIMAL(3, 2)))"),
            ),
        },
        Kpi {
            name: "win_rate",
            sources: &["opportunities"],
            sql: format!(
                "WITH closed AS ( \
                   SELECT o.tenant_id, o.owner_id, o.status, {close}, c.currency, {amount} AS amount \
                   FROM opportunities o JOIN cal c ON c.tenant_id = o.tenant_id {fx} \
                   WHERE o.status IN ('won', 'lost')) \
                 SELECT tenant_id, fiscal_year, fiscal_quarter, owner_id, currency, \
                        SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END) AS won_deals, \
                        SUM(CASE WHEN status = 'lost' THEN 1 ELSE 0 END) AS lost_deals, \
                        CAST(SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS win_rate, \
                        {won} AS won_amount, {lost} AS lost_amount, \
                        COUNT(*) - COUNT(amount) AS unconverted_deals \
                 FROM closed GROUP BY tenant_id, fiscal_year, fiscal_quarter, owner_id, currency \
                 ORDER BY tenant_id, fiscal_year, fiscal_quarter, owner_id",
                amount = converted("o.amount", "o.currency", "r"),
                fx = fx_join("r", "o.tenant_id", "o.currency", "o.close_date"),
                won = money("SUM(CASE WHEN status = 'won' THEN amount END)"),
                lost = money("SUM(CASE WHEN status = 'lost' THEN amount END)"),
            ),
        },
        Kpi {
            name: "sales_cycle",
            sources: &["opportunities"],
            sql: format!(
                "WITH won AS ( \
                   SELECT o.tenant_id, o.owner_id, {close}, \
                          GREATEST(date_part('epoch', o.closed_at) - date_part('epoch', o.created_at), 0) / 86400.0 AS days \
                   FROM opportunities o JOIN cal c ON c.tenant_id = o.tenant_id \
                   WHERE o.status = 'won' AND o.closed_at IS NOT NULL) \
                 SELECT tenant_id, fiscal_year, fiscal_quarter, owner_id, COUNT(*) AS won_deals, \
                        AVG(days) AS avg_days, MEDIAN(days) AS median_days, MIN(days) AS min_days, \
                        MAX(days) AS max_days \
                 FROM won GROUP BY tenant_id, fiscal_year, fiscal_quarter, owner_id \
                 ORDER BY tenant_id, fiscal_year, fiscal_quarter, owner_id"
            ),
        },
        Kpi {
            name: "mrr_monthly",
            sources: &["subscriptions"],
            sql: format!(
                "WITH subs AS ( \
                   SELECT tenant_id, mrr, currency, CAST(started_at AS DATE) AS started, \
                          CAST(CASE status WHEN 'cancelled' THEN cancelled_at \
                                           WHEN 'expired' THEN current_period_end END AS DATE) AS ended \
                   FROM subscriptions WHERE status <> 'trialing'), \
                 span AS ( \
                   SELECT tenant_id, CAST(date_trunc('month', MIN(started)) AS DATE) AS first_month \
                   FROM subs GROUP BY tenant_id), \
                 months AS ( \
                   SELECT tenant_id, unnest(generate_series(first_month, \
                          CAST(date_trunc('month', CURRENT_DATE) AS DATE), INTERVAL '1 month')) AS month \
                   FROM span), \
                 m AS (SELECT tenant_id, CAST(month AS DATE) AS month, CAST(month + INTERVAL '1 month' AS DATE) AS next \
                       FROM months), \
                 active AS ( \
                   SELECT m.tenant_id, m.month, m.next, {period}, c.currency, s.started, s.ended, {amount} AS mrr, \
                          s.tenant_id IS NOT NULL AS present \
                   FROM m JOIN cal c ON c.tenant_id = m.tenant_id \
                   LEFT JOIN subs s ON s.tenant_id = m.tenant_id AND s.started < m.next \
                        AND (s.ended IS NULL OR s.ended >= m.month) {fx}), \
                 flows AS ( \
                   SELECT tenant_id, month, fiscal_year, fiscal_quarter, currency, mrr, present, \
                          present AND started < month AND (ended IS NULL OR ended >= month) AS is_opening, \
                          present AND started >= month AS is_new, \
                          present AND ended IS NOT NULL AND ended < next AS is_churned, \
                          present AND (ended IS NULL OR ended >= next) AS is_closing \
                   FROM active) \
                 SELECT tenant_id, month, fiscal_year, fiscal_quarter, currency, \
                        {opening} AS opening_mrr, {new} AS new_mrr, {churned} AS churned_mrr, \
                        {closing} AS closing_mrr, \
                        SUM(CASE WHEN is_opening THEN 1 ELSE 0 END) AS opening_subscriptions, \
                        SUM(CASE WHEN is_new THEN 1 ELSE 0 END) AS new_subscriptions, \
                        SUM(CASE WHEN is_churned THEN 1 ELSE 0 END) AS churned_subscriptions, \
                        SUM(CASE WHEN is_closing THEN 1 ELSE 0 END) AS closing_subscriptions, \
                        CAST(SUM(CASE WHEN is_churned THEN mrr END) AS DOUBLE) \
                          / NULLIF(CAST(SUM(CASE WHEN is_opening THEN mrr END) AS DOUBLE), 0) AS revenue_churn_rate, \
                        CAST(SUM(CASE WHEN is_churned THEN 1 ELSE 0 END) AS DOUBLE) \
                          / NULLIF(SUM(CASE WHEN is_opening THEN 1 ELSE 0 END), 0) AS logo_churn_rate, \
                        SUM(CASE WHEN present AND mrr IS NULL THEN 1 ELSE 0 END) AS unconverted_subscriptions \
                 FROM flows GROUP BY tenant_id, month, fiscal_year, fiscal_quarter, currency \
                 ORDER BY tenant_id, month",
                amount = converted("s.mrr", "s.currency", "r"),
                fx = fx_join("r", "s.tenant_id", "s.currency", "m.month"),
                period = fiscal("m.month"),
                opening = money("SUM(CASE WHEN is_opening THEN mrr END)"),
                new = money("SUM(CASE WHEN is_new THEN mrr END)"),
                churned = money("SUM(CASE WHEN is_churned THEN mrr END)"),
                closing = money("SUM(CASE WHEN is_closing THEN mrr END)"),
            ),
        },
        Kpi {
            name: "ticket_sla",
            sources: &["tickets"],
            sql: format!(
                "WITH tk AS ( \
                   SELECT t.tenant_id, CAST(t.created_at AS DATE) AS day, {period}, t.priority, t.csat, \
                          t.first_response_due_at IS NOT NULL \
                            AND (t.first_responded_at IS NOT NULL OR t.first_response_due_at < now()) AS fr_measured, \
                          t.first_responded_at IS NOT NULL \
                            AND t.first_responded_at <= t.first_response_due_at AS fr_met, \
                          t.resolution_due_at IS NOT NULL \
                            AND (t.solved_at IS NOT NULL OR t.resolution_due_at < now()) AS res_measured, \
                          t.solved_at IS NOT NULL AND t.solved_at <= t.resolution_due_at AS res_met \
                   FROM tickets t JOIN cal c ON c.tenant_id = t.tenant_id) \
                 SELECT tenant_id, day, fiscal_year, fiscal_quarter, priority, COUNT(*) AS tickets, \
                        SUM(CASE WHEN fr_measured THEN 1 ELSE 0 END) AS first_response_measured, \
                        SUM(CASE WHEN fr_measured AND fr_met THEN 1 ELSE 0 END) AS first_response_met, \
                        SUM(CASE WHEN res_measured THEN 1 ELSE 0 END) AS resolution_measured, \
                        SUM(CASE WHEN res_measured AND res_met THEN 1 ELSE 0 END) AS resolution_met, \
                        CAST(SUM(CASE WHEN fr_measured AND fr_met THEN 1 ELSE 0 END) AS DOUBLE) \
                          / NULLIF(SUM(CASE WHEN fr_measured THEN 1 ELSE 0 END), 0) AS first_response_attainment, \
                        CAST(SUM(CASE WHEN res_measured AND res_met THEN 1 ELSE 0 END) AS DOUBLE) \
                          / NULLIF(SUM(CASE WHEN res_measured THEN 1 ELSE 0 END), 0) AS resolution_attainment, \
                        AVG(CAST(csat AS DOUBLE)) AS avg_csat, COUNT(csat) AS csat_responses \
                 FROM tk GROUP BY tenant_id, day, fiscal_year, fiscal_quarter, priority \
                 ORDER BY tenant_id, day, priority",
                period = fiscal("CAST(t.created_at AS DATE)"),
            ),
        },
        // The feedback reps give on next-best actions, by the day it was given: the rate the ranking
        // weighs each action type by, for managers to read. `owner_id` is the rep the action was for.
        Kpi {
            name: "recommendation_acceptance",
            sources: &["recommendation_feedback", "recommendations"],
            sql: format!(
                "WITH fb AS ( \
                   SELECT f.tenant_id, CAST(f.created_at AS DATE) AS day, {period}, r.kind, r.action, \
                          r.user_id AS owner_id, f.verdict, f.reason_code \
                   FROM recommendation_feedback f \
                   JOIN recommendations r ON r.tenant_id = f.tenant_id AND r.id = f.recommendation_id \
                   JOIN cal c ON c.tenant_id = f.tenant_id) \
                 SELECT tenant_id, day, fiscal_year, fiscal_quarter, kind, action, owner_id, \
                        SUM(CASE WHEN verdict = 'accept' THEN 1 ELSE 0 END) AS accepted, \
                        SUM(CASE WHEN verdict = 'dismiss' THEN 1 ELSE 0 END) AS dismissed, \
                        SUM(CASE WHEN verdict = 'snooze' THEN 1 ELSE 0 END) AS snoozed, \
                        SUM(CASE WHEN reason_code = 'already_handled' THEN 1 ELSE 0 END) AS already_handled, \
                        SUM(CASE WHEN reason_code = 'not_mine' THEN 1 ELSE 0 END) AS not_mine, \
                        CAST(SUM(CASE WHEN verdict = 'accept' THEN 1 ELSE 0 END) AS DOUBLE) \
                          / NULLIF(SUM(CASE WHEN verdict = 'accept' OR (verdict = 'dismiss' AND \
                                   (reason_code IS NULL OR reason_code = 'not_relevant')) THEN 1 ELSE 0 END), 0) \
                          AS acceptance_rate \
                 FROM fb GROUP BY tenant_id, day, fiscal_year, fiscal_quarter, kind, action, owner_id \
                 ORDER BY tenant_id, day, kind, action, owner_id",
                period = fiscal("CAST(f.created_at AS DATE)"),
            ),
        },
    ]
}

/// Every silver table some KPI reads.
pub fn sources() -> BTreeSet<&'static str> {
    kpis().iter().flat_map(|k| k.sources.iter().copied()).chain(CALENDAR.iter().copied()).collect()
}

/// The KPIs and tenants a batch of changes to silver `table` touched: `None` when the table feeds no
/// KPI; [`Scope::All`] for the KPIs that read it when a change does not name its tenant (a truncate).
pub fn dirty<'a>(table: &str, rows: impl IntoIterator<Item = Option<&'a Map<String, Value>>>) -> Option<Dirty> {
    if !sources().contains(table) {
        return None;
    }
    Some(match crate::lake::tenants_of(table, rows) {
        Some(tenants) => Dirty::of(table, &Scope::Tenants(tenants)),
        None => Dirty::of(table, &Scope::All),
    })
}

/// What one refresh did.
#[derive(Debug, Clone, Default)]
pub struct Refreshed {
    /// Rows written per KPI table.
    pub rows: BTreeMap<&'static str, usize>,
    /// KPI tables skipped because a source table does not exist yet.
    pub skipped: Vec<&'static str>,
}

/// The KPI tables of one lake and the silver tables they read.
pub struct Gold {
    lake: Url,
    silver: BTreeMap<&'static str, DeltaTable>,
    limits: Limits,
}

impl std::fmt::Debug for Gold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gold").field("lake", &self.lake.as_str()).finish_non_exhaustive()
    }
}

impl Gold {
    pub fn new(lake: Url) -> Self {
        let limits = Limits { timeout: Duration::from_secs(600), memory_bytes: 2 * 1024 * 1024 * 1024 };
        Gold { lake, silver: BTreeMap::new(), limits }
    }

    /// The silver tables at their latest versions (those that exist).
    async fn load_sources(&mut self) -> Result<()> {
        for name in sources() {
            if let Some(t) = self.silver.get_mut(name) {
                t.update_state().await?;
                continue;
            }
            let url = table_url(&self.lake, "silver", "public", name)?;
            if crate::lake::exists(&url).await {
                self.silver.insert(name, deltalake::open_table(url).await?);
            }
        }
        Ok(())
    }

    /// A context holding the silver sources restricted to `scope`, and the `cal` and `fx` views.
    async fn context(&self, scope: &Scope) -> Result<SessionContext> {
        let ctx = Lake::context(self.limits)?;
        for (name, table) in &self.silver {
            let provider = table.table_provider().await?;
            let provider = match scope {
                Scope::All => provider,
                Scope::Tenants(set) => {
                    let column = if *name == "tenants" { "id" } else { "tenant_id" };
                    let tenants = set.iter().map(|t| ScalarValue::from(t.as_str())).collect();
                    let scoped = TenantScoped::any_of(provider, column, tenants).ok_or_else(|| Error::Table {
                        table: format!("silver public.{name}"),
                        why: format!("has no {column} column"),
                    })?;
                    Arc::new(scoped)
                }
            };
            ctx.register_table(*name, provider)?;
        }
        if self.silver.contains_key("tenants") {
            ctx.register_table("cal", ctx.sql(CAL_VIEW).await?.into_view())?;
        }
        if self.silver.contains_key("currency_rates") {
            ctx.register_table("fx", ctx.sql(FX_VIEW).await?.into_view())?;
        }
        Ok(ctx)
    }

    /// A context over every tenant's silver sources at their latest versions, with the `cal` and `fx`
    /// views: where a full refresh runs the KPI queries (and benchmarks run them too).
    pub async fn full_context(&mut self) -> Result<SessionContext> {
        self.load_sources().await?;
        self.context(&Scope::All).await
    }

    /// The Parquet files of the current version of each silver source, for engines that read files
    /// rather than Delta tables. Call after [`Gold::full_context`].
    pub fn source_files(&self) -> Result<BTreeMap<&'static str, Vec<String>>> {
        let mut out = BTreeMap::new();
        for (name, table) in &self.silver {
            out.insert(*name, table.get_file_uris()?.collect());
        }
        Ok(out)
    }

    /// Recomputes every KPI table for `scope`, one commit per table.
    pub async fn refresh(&mut self, scope: &Scope) -> Result<Refreshed> {
        self.refresh_dirty(&Dirty::every_kpi(scope)).await
    }

    /// Recomputes each dirty KPI table for its tenants, one commit per table (the KPIs dirty for the
    /// same tenants share one context).
    pub async fn refresh_dirty(&mut self, dirty: &Dirty) -> Result<Refreshed> {
        let mut out = Refreshed::default();
        if dirty.is_empty() {
            return Ok(out);
        }
        self.load_sources().await?;
        let mut by_scope: BTreeMap<&Scope, Vec<Kpi>> = BTreeMap::new();
        for kpi in kpis() {
            if let Some(scope) = dirty.scope(kpi.name) {
                by_scope.entry(scope).or_default().push(kpi);
            }
        }
        for (scope, kpis) in by_scope {
            let ctx = self.context(scope).await?;
            for kpi in kpis {
                self.refresh_kpi(&ctx, kpi, scope, &mut out).await?;
            }
        }
        Ok(out)
    }

    /// Recomputes one KPI table for `scope` in `ctx` (skipped while a source table is missing).
    async fn refresh_kpi(&self, ctx: &SessionContext, kpi: Kpi, scope: &Scope, out: &mut Refreshed) -> Result<()> {
        if !kpi.sources.iter().chain(CALENDAR).all(|s| self.silver.contains_key(s)) {
            out.skipped.push(kpi.name);
            return Ok(());
        }
        let df = ctx.sql(&kpi.sql).await.map_err(|e| kpi_error(&kpi, e))?;
        let schema = nullable(df.schema().as_arrow());
        let batches = tokio::time::timeout(self.limits.timeout, df.collect())
            .await
            .map_err(|_| Error::Table { table: format!("gold {}", kpi.name), why: "refresh timed out".into() })?
            .map_err(|e| kpi_error(&kpi, e))?;
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        self.write(&kpi, schema, batches, scope).await?;
        out.rows.insert(kpi.name, rows);
        Ok(())
    }

    /// Replaces the rows of `scope` in the KPI table with `batches`, in one commit.
    async fn write(&self, kpi: &Kpi, schema: SchemaRef, batches: Vec<RecordBatch>, scope: &Scope) -> Result<()> {
        let url = table_url(&self.lake, "gold", DIR, kpi.name)?;
        let table = crate::lake::ensure(&url, kpi.name, &schema, &[], &[]).await?;
        let mut input = Vec::with_capacity(batches.len().max(1));
        for b in batches {
            input.push(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?);
        }
        if input.is_empty() {
            // The write needs a batch to know the schema; an empty one deletes the scope's rows.
            input.push(RecordBatch::new_empty(schema.clone()));
        }
        let write = table.write(input).with_save_mode(SaveMode::Overwrite);
        let write = match scope {
            Scope::All => write.with_schema_mode(SchemaMode::Overwrite),
            Scope::Tenants(set) => {
                write.with_replace_where(col("tenant_id").in_list(set.iter().map(|t| lit(t.as_str())).collect(), false))
            }
        };
        write.await.map_err(|e| Error::Table { table: format!("gold {}", kpi.name), why: e.to_string() })?;
        Ok(())
    }
}

fn kpi_error(kpi: &Kpi, e: datafusion::error::DataFusionError) -> Error {
    Error::Table { table: format!("gold {}", kpi.name), why: e.to_string() }
}

/// The same fields, all nullable (a table's schema must not depend on whether a batch had nulls).
fn nullable(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema.fields().iter().map(|f| Field::new(f.name(), f.data_type().clone(), true)).collect::<Vec<_>>(),
    ))
}

/// The names of the gold tables that exist in a local lake.
pub async fn local_tables(lake: &Url) -> Result<Vec<String>> {
    let Ok(dir) = schema_url(lake, "gold", DIR)?.to_file_path() else { return Ok(Vec::new()) };
    Ok(crate::lake::local_tables(&dir).await)
}

/// Keeps the gold tables current in the background: fed the scopes of committed batches, refreshes
/// at most once per `min_interval` (coalescing what arrived meanwhile), everything at start and every
/// `full_every`.
#[derive(Debug, Clone)]
pub struct Refresher {
    tx: mpsc::UnboundedSender<Dirty>,
}

/// How the background refresh runs.
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    pub min_interval: Duration,
    pub full_every: Duration,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig { min_interval: Duration::from_millis(500), full_every: Duration::from_secs(300) }
    }
}

impl Refresher {
    /// Starts the refresh task; it ends when `stop` turns true or every [`Refresher`] is dropped, after
    /// applying what it was sent.
    pub fn spawn(
        lake: Url,
        config: RefreshConfig,
        mut stop: watch::Receiver<bool>,
    ) -> (Refresher, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Dirty>();
        let task = tokio::spawn(async move {
            let mut gold = Gold::new(lake);
            let mut pending = Some(Dirty::every_kpi(&Scope::All));
            let mut last_full = Instant::now();
            let mut open = true;
            loop {
                let mut failed = false;
                if let Some(scope) = pending.take() {
                    let started = Instant::now();
                    match gold.refresh_dirty(&scope).await {
                        Ok(r) => {
                            metrics::counter!("orbas_gold_refreshes_total").increment(1);
                            metrics::histogram!("orbas_gold_refresh_seconds").record(started.elapsed().as_secs_f64());
                            debug!(?scope, rows = ?r.rows, skipped = ?r.skipped, "gold refreshed");
                        }
                        Err(e) => {
                            // Derived data: keep the scope and try again shortly.
                            metrics::counter!("orbas_gold_refresh_errors_total").increment(1);
                            warn!(error = %e, "gold refresh failed; will retry");
                            pending = Some(scope);
                            failed = true;
                        }
                    }
                }
                if !open && (pending.is_none() || failed) {
                    break;
                }
                let full_in = config.full_every.saturating_sub(last_full.elapsed());
                tokio::select! {
                    got = rx.recv(), if open => match got {
                        Some(s) => {
                            // Let more batches arrive, then take all of them at once.
                            tokio::time::sleep(config.min_interval).await;
                            let mut scope = s;
                            while let Ok(more) = rx.try_recv() {
                                scope = scope.merge(more);
                            }
                            pending = Some(pending.take().map_or(scope.clone(), |p| p.merge(scope)));
                        }
                        None => open = false,
                    },
                    () = tokio::time::sleep(full_in) => {
                        last_full = Instant::now();
                        pending = Some(Dirty::every_kpi(&Scope::All));
                    }
                    () = tokio::time::sleep(RETRY), if failed => {}
                    _ = stop.changed(), if open => {
                        while let Ok(more) = rx.try_recv() {
                            pending = Some(pending.take().map_or(more.clone(), |p| p.merge(more)));
                        }
                        open = false;
                    }
                }
            }
            info!("gold refresher stopped");
        });
        (Refresher { tx }, task)
    }

    /// Asks for the `dirty` KPIs to be recomputed.
    pub fn touch(&self, dirty: Dirty) {
        if !dirty.is_empty() {
            let _ = self.tx.send(dirty);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fiscal_periods() {
        assert_eq!(fiscal_period(2026, 5, 1, false), (2026, 2));
        // February start named by the end year: January 2026 is Q4 of FY2026, February 2026 Q1 of FY2027.
        assert_eq!(fiscal_period(2026, 1, 2, true), (2026, 4));
        assert_eq!(fiscal_period(2026, 2, 2, true), (2027, 1));
        assert_eq!(fiscal_period(2026, 3, 7, false), (2025, 3));
        assert_eq!(fiscal_period(2026, 12, 1, true), (2026, 4), "a January start names the same year either way");
    }

    #[test]
    fn scopes_merge() {
        let t = |v: &[&str]| Scope::Tenants(v.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(t(&["a"]).merge(t(&["b"])), t(&["a", "b"]));
        assert_eq!(t(&["a"]).merge(Scope::All), Scope::All);
    }

    #[test]
    fn batches_name_their_tenants() {
        let row = |k: &str, v: &str| {
            let mut m = Map::new();
            m.insert(k.to_owned(), Value::from(v));
            m
        };
        let t = |v: &[&str]| Scope::Tenants(v.iter().map(|s| (*s).to_owned()).collect());
        let scopes = |d: &Dirty| kpis().iter().map(|k| (k.name, d.scope(k.name).cloned())).collect::<Vec<_>>();
        let (a, b) = (row("tenant_id", "A"), row("tenant_id", "B"));
        let deals = dirty("opportunities", [Some(&a), Some(&b), Some(&a)]).expect("a source");
        // The deal KPIs for A and B; the subscription and ticket KPIs stay clean.
        assert_eq!(
            scopes(&deals),
            vec![
                ("daily_bookings", Some(t(&["A", "B"]))),
                ("pipeline_by_stage_owner", Some(t(&["A", "B"]))),
                ("win_rate", Some(t(&["A", "B"]))),
                ("sales_cycle", Some(t(&["A", "B"]))),
                ("mrr_monthly", None),
                ("ticket_sla", None),
                ("recommendation_acceptance", None),
            ]
        );
        let feedback = dirty("recommendation_feedback", [Some(&a)]).expect("a source");
        assert_eq!((feedback.scope("recommendation_acceptance"), feedback.scope("win_rate")), (Some(&t(&["A"])), None));
        let stages = dirty("pipeline_stages", [Some(&b)]).expect("a source");
        assert_eq!(stages.scope("pipeline_by_stage_owner"), Some(&t(&["B"])));
        assert_eq!(stages.scope("win_rate"), None);
        // Merged per KPI; the calendar dirties every KPI.
        let both = deals.clone().merge(dirty("tickets", [Some(&b)]).expect("a source"));
        assert_eq!((both.scope("win_rate"), both.scope("ticket_sla")), (Some(&t(&["A", "B"])), Some(&t(&["B"]))));
        let calendar = dirty("tenants", [Some(&row("id", "T"))]).expect("a source");
        assert!(scopes(&calendar).iter().all(|(_, s)| s.as_ref() == Some(&t(&["T"]))), "{calendar:?}");
        assert_eq!(calendar, Dirty::every_kpi(&t(&["T"])));
        let truncate = dirty("subscriptions", [None]).expect("a source");
        assert_eq!(truncate.scope("mrr_monthly"), Some(&Scope::All), "a truncate touches everyone");
        assert_eq!(truncate.scope("daily_bookings"), None);
        assert_eq!(dirty("audit_logs", [Some(&a)]), None, "not a KPI source");
        assert!(Dirty::default().is_empty() && dirty("tickets", Vec::new()).is_some_and(|d| d.is_empty()));
    }

    /// Evaluates the SQL of [`fiscal`] for one date and calendar.
    async fn fiscal_sql(day: chrono::NaiveDate, start: u32, named_by: &str) -> (i32, i32) {
        let ctx = SessionContext::new();
        let sql = format!(
            "SELECT {} FROM (SELECT {start} AS fy_start, '{named_by}' AS fy_named_by) c \
             CROSS JOIN (SELECT DATE '{day}' AS d) x",
            fiscal("x.d")
        );
        let batches = match ctx.sql(&sql).await {
            Ok(df) => df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}")),
            Err(e) => panic!("{sql}: {e}"),
        };
        let value = |i: usize| match batches.first().map(|b| ScalarValue::try_from_array(b.column(i), 0)) {
            Some(Ok(ScalarValue::Int32(Some(v)))) => v,
            other => panic!("{sql}: {other:?}"),
        };
        (value(0), value(1))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn fiscal_sql_matches_the_reference(days in 0i64..80_000, start in 1u32..=12, by_end in any::<bool>()) {
            let day = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default() + chrono::Duration::days(days);
            let rt = tokio::runtime::Builder::new_current_thread().build();
            let (fy, fq) = match rt {
                Ok(rt) => rt.block_on(fiscal_sql(day, start, if by_end { "end" } else { "start" })),
                Err(e) => panic!("{e}"),
            };
            use chrono::Datelike as _;
            let (want_fy, want_fq) = fiscal_period(day.year(), day.month(), start, by_end);
            prop_assert_eq!((fy, u32::try_from(fq).unwrap_or(0)), (want_fy, want_fq));
        }
    }
}
