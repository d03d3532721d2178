//! The standard CRM KPI set every tenant starts with (approved, owned by the system): bookings, deals
//! won, average deal size, win rate, average sales cycle, open pipeline, pipeline coverage, quota
//! attainment, forecast vs quota, MRR, revenue churn, net revenue retention, first-response and
//! resolution SLA attainment, CSAT, and the acceptance rate of next-best actions.
//!
//! Money comes from the gold tables, already in the tenant's corporate currency (converted at the
//! rate of the amount's date; see `orbas_warehouse::gold`); counts and durations may read silver.
//! Quotas and forecast snapshots are kept in the corporate currency by the CRM. "This quarter" is the
//! quota period containing today, so it follows each tenant's fiscal calendar.

use crate::kpi::{Aggregation, Dimension, Direction, Grain, KpiDefinition, Status, Unit};

fn dims(pairs: &[(&str, &str)]) -> Vec<Dimension> {
    pairs.iter().map(|(name, column)| Dimension { name: (*name).into(), column: (*column).into() }).collect()
}

/// The base of a definition: approved, monthly, a flow, good when it goes up.
fn kpi(key: &str, name: &str, description: &str, source: &str, measure: &str, unit: Unit) -> KpiDefinition {
    KpiDefinition {
        key: key.into(),
        name: name.into(),
        description: description.into(),
        source: source.into(),
        measure: measure.into(),
        time: None,
        aggregation: Aggregation::Flow,
        grain: Grain::Month,
        dimensions: Vec::new(),
        filter: None,
        drill: None,
        unit,
        good_direction: Direction::Up,
        status: Status::Approved,
    }
}

/// Closed-won and closed-lost deals with their owner, territory, kind and account segment.
const CLOSED_DEALS: &str = "SELECT o.id AS opportunity_id, o.account_id, o.name, o.amount, o.currency, o.status, \
    o.close_date, o.owner_id, o.territory_id, o.kind, a.segment, \
    CASE WHEN o.status = 'won' THEN 1 ELSE 0 END AS won, CASE WHEN o.status = 'lost' THEN 1 ELSE 0 END AS lost, \
    CASE WHEN o.status = 'won' AND o.closed_at IS NOT NULL \
         THEN GREATEST(date_part('epoch', o.closed_at) - date_part('epoch', o.created_at), 0) / 86400.0 END AS cycle_days \
    FROM opportunities o LEFT JOIN accounts a ON a.id = o.account_id WHERE o.status IN ('won', 'lost')";

/// Won deals, the records behind bookings (`day` is the close date, as in `gold.daily_bookings`).
const WON_DEALS: &str = "SELECT id AS opportunity_id, account_id, name, amount, currency, owner_id, kind, \
    close_date AS day FROM opportunities WHERE status = 'won'";

/// Open deals with their stage, the records behind the open pipeline.
const OPEN_DEALS: &str = "SELECT o.id AS opportunity_id, o.account_id, o.name, o.amount, o.currency, o.close_date, \
    o.owner_id, s.name AS stage_name, o.forecast_category, s.pipeline \
    FROM opportunities o JOIN pipeline_stages s ON s.id = o.stage_id WHERE o.status = 'open'";

/// Tickets by creation day, the records behind the service KPIs.
const TICKETS: &str = "SELECT id AS ticket_id, account_id, number, subject, priority, status, csat, \
    CAST(created_at AS DATE) AS day FROM tickets";

/// The answers reps gave on next-best actions (snoozes too), by answer day, the records behind the
/// acceptance rate.
const ANSWERS: &str = "SELECT f.recommendation_id, r.title, r.kind, r.action, r.user_id AS owner_id, f.verdict, \
    f.reason_code, f.reason, CAST(f.created_at AS DATE) AS day \
    FROM recommendation_feedback f JOIN recommendations r ON r.id = f.recommendation_id";

/// This quarter's quota per rep (the quota period containing today).
const CURRENT_QUOTAS: &str = "SELECT user_id AS owner_id, fiscal_year, fiscal_quarter, amount FROM quotas \
    WHERE user_id IS NOT NULL AND period_start <= CURRENT_DATE AND CURRENT_DATE < period_end";

/// The standard set (see the module docs).
pub fn kpis() -> Vec<KpiDefinition> {
    let deal_dims =
        dims(&[("owner", "owner_id"), ("territory", "territory_id"), ("segment", "segment"), ("kind", "kind")]);
    vec![
        KpiDefinition {
            drill: Some(WON_DEALS.into()),
            time: Some("day".into()),
            dimensions: dims(&[("kind", "kind")]),
            ..kpi(
                "bookings",
                "Bookings",
                "Amount of deals won, in the corporate currency (by close date).",
                "gold.daily_bookings",
                "SUM(bookings)",
                Unit::Currency,
            )
        },
        KpiDefinition {
            drill: Some(WON_DEALS.into()),
            time: Some("day".into()),
            dimensions: dims(&[("kind", "kind")]),
            ..kpi(
                "deals_won",
                "Deals won",
                "Deals closed as won.",
                "gold.daily_bookings",
                "SUM(deals_won)",
                Unit::Count,
            )
        },
        KpiDefinition {
            drill: Some(WON_DEALS.into()),
            time: Some("day".into()),
            dimensions: dims(&[("kind", "kind")]),
            ..kpi(
                "average_deal_size",
                "Average deal size",
                "Bookings per deal won (deals whose currency had no rate are left out of both).",
                "gold.daily_bookings",
                "SUM(bookings) / NULLIF(SUM(deals_won) - SUM(unconverted_deals), 0)",
                Unit::Currency,
            )
        },
        KpiDefinition {
            time: Some("close_date".into()),
            dimensions: deal_dims.clone(),
            ..kpi(
                "win_rate",
                "Win rate",
                "Deals won among deals closed (won or lost), by count.",
                CLOSED_DEALS,
                "CAST(SUM(won) AS DOUBLE) / NULLIF(SUM(won) + SUM(lost), 0)",
                Unit::Percent,
            )
        },
        KpiDefinition {
            time: Some("close_date".into()),
            dimensions: deal_dims,
            filter: Some("won = 1".into()),
            good_direction: Direction::Down,
            ..kpi(
                "average_sales_cycle",
                "Average sales cycle",
                "Days from a won deal's creation to its close.",
                CLOSED_DEALS,
                "AVG(cycle_days)",
                Unit::Days,
            )
        },
        KpiDefinition {
            drill: Some(OPEN_DEALS.into()),
            dimensions: dims(&[
                ("owner", "owner_id"),
                ("stage", "stage_name"),
                ("forecast_category", "forecast_category"),
                ("pipeline", "pipeline"),
            ]),
            ..kpi(
                "open_pipeline",
                "Open pipeline",
                "Amount of open deals today, in the corporate currency.",
                "gold.pipeline_by_stage_owner",
                "SUM(amount)",
                Unit::Currency,
            )
        },
        KpiDefinition {
            dimensions: dims(&[("owner", "owner_id")]),
            ..kpi(
                "pipeline_coverage",
                "Pipeline coverage",
                "Open pipeline closing this quarter over this quarter's quota (3× is the usual goal).",
                &format!(
                    "WITH q AS ({CURRENT_QUOTAS}) \
                     SELECT p.owner_id, CAST(p.amount AS DOUBLE) AS pipeline, CAST(0 AS DOUBLE) AS quota \
                     FROM gold.pipeline_by_stage_owner p \
                     JOIN (SELECT DISTINCT fiscal_year, fiscal_quarter FROM q) cur \
                       ON p.fiscal_year = cur.fiscal_year AND p.fiscal_quarter = cur.fiscal_quarter \
                     UNION ALL SELECT owner_id, CAST(0 AS DOUBLE), CAST(amount AS DOUBLE) FROM q"
                ),
                "SUM(pipeline) / NULLIF(SUM(quota), 0)",
                Unit::Ratio,
            )
        },
        KpiDefinition {
            dimensions: dims(&[("owner", "owner_id")]),
            ..kpi(
                "quota_attainment",
                "Quota attainment",
                "Bookings this quarter over this quarter's quota.",
                &format!(
                    "WITH q AS ({CURRENT_QUOTAS}), \
                     won AS (SELECT w.owner_id, SUM(CAST(w.won_amount AS DOUBLE)) AS won FROM gold.win_rate w \
                       JOIN (SELECT DISTINCT fiscal_year, fiscal_quarter FROM q) cur \
                         ON w.fiscal_year = cur.fiscal_year AND w.fiscal_quarter = cur.fiscal_quarter \
                       GROUP BY w.owner_id) \
                     SELECT q.owner_id, COALESCE(won.won, 0) AS won, CAST(q.amount AS DOUBLE) AS quota \
                     FROM q LEFT JOIN won ON won.owner_id = q.owner_id"
                ),
                "SUM(won) / NULLIF(SUM(quota), 0)",
                Unit::Percent,
            )
        },
        KpiDefinition {
            dimensions: dims(&[("owner", "owner_id")]),
            ..kpi(
                "forecast_vs_quota",
                "Forecast vs quota",
                "This quarter's latest roll-up forecast (closed + commit) over its quota.",
                &format!(
                    "WITH q AS ({CURRENT_QUOTAS}), \
                     f AS (SELECT user_id, fiscal_year, fiscal_quarter, \
                             CAST(closed_amount + commit_amount AS DOUBLE) AS forecast, \
                             ROW_NUMBER() OVER (PARTITION BY user_id, fiscal_year, fiscal_quarter \
                                                ORDER BY snapshot_date DESC, created_at DESC) AS newest \
                           FROM forecast_snapshots WHERE source = 'rollup' AND user_id IS NOT NULL) \
                     SELECT q.owner_id, COALESCE(f.forecast, 0) AS forecast, CAST(q.amount AS DOUBLE) AS quota \
                     FROM q LEFT JOIN f ON f.user_id = q.owner_id AND f.fiscal_year = q.fiscal_year \
                       AND f.fiscal_quarter = q.fiscal_quarter AND f.newest = 1"
                ),
                "SUM(forecast) / NULLIF(SUM(quota), 0)",
                Unit::Percent,
            )
        },
        KpiDefinition {
            time: Some("month".into()),
            aggregation: Aggregation::Stock,
            ..kpi(
                "mrr",
                "MRR",
                "Monthly recurring revenue at the end of the period, in the corporate currency.",
                "gold.mrr_monthly",
                "SUM(closing_mrr)",
                Unit::Currency,
            )
        },
        KpiDefinition {
            time: Some("month".into()),
            good_direction: Direction::Down,
            ..kpi(
                "revenue_churn",
                "Revenue churn",
                "MRR of subscriptions that ended over the MRR at the start of each month (a monthly rate).",
                "gold.mrr_monthly",
                "CAST(SUM(churned_mrr) AS DOUBLE) / NULLIF(CAST(SUM(opening_mrr) AS DOUBLE), 0)",
                Unit::Percent,
            )
        },
        KpiDefinition {
            time: Some("month".into()),
            ..kpi(
                "net_revenue_retention",
                "Net revenue retention",
                "MRR kept from the subscriptions open at the start of each month, churn deducted (a monthly \
                 rate; the lake's subscription history has no up- or down-grades yet, so it is at most 100 %).",
                "gold.mrr_monthly",
                "CAST(SUM(opening_mrr) - SUM(churned_mrr) AS DOUBLE) / NULLIF(CAST(SUM(opening_mrr) AS DOUBLE), 0)",
                Unit::Percent,
            )
        },
        KpiDefinition {
            drill: Some(TICKETS.into()),
            time: Some("day".into()),
            dimensions: dims(&[("priority", "priority")]),
            ..kpi(
                "first_response_sla",
                "First-response SLA attainment",
                "Tickets answered within their first-response target, among those whose target has passed or \
                 been met.",
                "gold.ticket_sla",
                "CAST(SUM(first_response_met) AS DOUBLE) / NULLIF(SUM(first_response_measured), 0)",
                Unit::Percent,
            )
        },
        KpiDefinition {
            drill: Some(TICKETS.into()),
            time: Some("day".into()),
            dimensions: dims(&[("priority", "priority")]),
            ..kpi(
                "resolution_sla",
                "Resolution SLA attainment",
                "Tickets solved within their resolution target, among those whose target has passed or been met.",
                "gold.ticket_sla",
                "CAST(SUM(resolution_met) AS DOUBLE) / NULLIF(SUM(resolution_measured), 0)",
                Unit::Percent,
            )
        },
        KpiDefinition {
            drill: Some(TICKETS.into()),
            time: Some("day".into()),
            dimensions: dims(&[("priority", "priority")]),
            ..kpi(
                "csat",
                "CSAT",
                "Average customer satisfaction score of rated tickets (1–5), weighted by responses.",
                "gold.ticket_sla",
                "SUM(avg_csat * csat_responses) / NULLIF(SUM(csat_responses), 0)",
                Unit::Score,
            )
        },
        KpiDefinition {
            drill: Some(ANSWERS.into()),
            time: Some("day".into()),
            dimensions: dims(&[("owner", "owner_id"), ("action", "action"), ("kind", "kind")]),
            ..kpi(
                "nba_acceptance",
                "Next-best-action acceptance",
                "Next-best actions accepted among those accepted or dismissed on their merits, by the day the \
                 rep answered (a snooze decides nothing, nor a dismissal as already handled or as not the \
                 rep's record): what the ranking's acceptance model learns from.",
                "gold.recommendation_acceptance",
                "CAST(SUM(accepted) AS DOUBLE) \
                 / NULLIF(CAST(SUM(accepted) + SUM(dismissed) - SUM(already_handled) - SUM(not_mine) AS DOUBLE), 0)",
                Unit::Percent,
            )
        },
    ]
}
