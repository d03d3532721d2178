//! What forecasting reads from a tenant's lake session (silver tables, DataFusion SQL): won deals
//! and MRR for the series, the open and won deals of a quarter and its quotas for the roll-up. Money is
//! converted into the corporate currency through the gold exchange-rate view ([`FX_VIEW`]) at the rate
//! valid on the amount's day — the close day of a won deal, the snapshot day for open deals, the
//! month's first day for MRR, the quarter's first day for quotas. An amount without any rate is left
//! out (NULL) and counted, never summed unconverted.

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;
use orbas_warehouse::gold::FX_VIEW;

use super::period::Quarter;
use crate::dataset::texts;
use crate::error::{Error, Result};

async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Column `c` of `b` as doubles (NULL → None).
fn doubles(b: &RecordBatch, c: usize) -> Result<Vec<Option<f64>>> {
    let a = datafusion::arrow::compute::cast(b.column(c), &DataType::Float64)?;
    let a = a.as_primitive::<Float64Type>();
    Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect())
}

fn date(s: &Option<String>) -> Result<NaiveDate> {
    let s = s.as_deref().ok_or_else(|| Error::Invalid("a NULL date".to_owned()))?;
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
        .map_err(|e| Error::Invalid(format!("date {s:?} from the lake: {e}")))
}

/// A currency code from the tenant's own data, checked before it goes into SQL text.
fn code(currency: &str) -> Result<&str> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(currency)
    } else {
        Err(Error::Invalid(format!("{currency:?} is not a currency code")))
    }
}

/// `LEFT JOIN` of the rate from `{alias}.{cur}` into `currency` valid on the date expression `day`.
fn fx_join(alias: &str, cur: &str, currency: &str, day: &str) -> String {
    format!(
        "LEFT JOIN ({FX_VIEW}) fx ON fx.from_currency = {alias}.{cur} AND fx.to_currency = '{currency}' \
           AND fx.valid_from <= {day} AND (fx.valid_until IS NULL OR fx.valid_until > {day})"
    )
}

/// `{alias}.{amount}` in `currency` through the joined rate (NULL without one).
fn converted(alias: &str, amount: &str, cur: &str, currency: &str) -> String {
    format!(
        "CASE WHEN {alias}.{cur} = '{currency}' THEN CAST({alias}.{amount} AS DOUBLE) \
              ELSE CAST({alias}.{amount} AS DOUBLE) * CAST(fx.rate AS DOUBLE) END"
    )
}

/// A won deal: owner, close day, amount in the corporate currency (`None`: no rate).
#[derive(Debug, Clone, PartialEq)]
pub struct Won {
    pub owner: Option<String>,
    pub territory: Option<String>,
    pub day: NaiveDate,
    pub amount: Option<f64>,
}

/// Every deal won before `until`.
pub async fn won_deals(ctx: &SessionContext, currency: &str, until: NaiveDate) -> Result<Vec<Won>> {
    let currency = code(currency)?;
    let sql = format!(
        "SELECT o.owner_id, o.territory_id, CAST(o.close_date AS VARCHAR), {v} FROM opportunities o {join} \
          WHERE o.status = 'won' AND o.close_date < DATE '{until}'",
        v = converted("o", "amount", "currency", currency),
        join = fx_join("o", "currency", currency, "o.close_date"),
    );
    let mut out = Vec::new();
    for b in rows(ctx, &sql).await? {
        let (owner, territory, day, amount) = (texts(&b, 0)?, texts(&b, 1)?, texts(&b, 2)?, doubles(&b, 3)?);
        for i in 0..b.num_rows() {
            out.push(Won {
                owner: owner[i].clone(),
                territory: territory[i].clone(),
                day: date(&day[i])?,
                amount: amount[i],
            });
        }
    }
    Ok(out)
}

/// MRR at the end of each month from the first subscription's month up to (not including) `until`'s
/// month: subscriptions started before the month's end and not ended by it (trials excluded), as the
/// gold `mrr_monthly.closing_mrr`. Months as `(first day, MRR)`; and the count of subscription-months
/// left out for want of a rate.
pub async fn mrr_by_month(
    ctx: &SessionContext,
    currency: &str,
    until: NaiveDate,
) -> Result<(Vec<(NaiveDate, f64)>, u64)> {
    let currency = code(currency)?;
    let first = rows(
        ctx,
        "SELECT CAST(date_trunc('month', MIN(started_at)) AS DATE) FROM subscriptions WHERE status <> 'trialing'",
    )
    .await?;
    let Some(first) =
        first.first().filter(|b| b.num_rows() > 0).map(|b| texts(b, 0)).transpose()?.and_then(|t| t[0].clone())
    else {
        return Ok((Vec::new(), 0));
    };
    let first = date(&Some(first))?;
    let Some(last) = until.pred_opt().map(super::series::month_of).filter(|l| *l >= first) else {
        return Ok((Vec::new(), 0));
    };
    let sql = format!(
        "WITH subs AS ( \
           SELECT mrr, currency, CAST(started_at AS DATE) AS started, \
                  CAST(CASE status WHEN 'cancelled' THEN cancelled_at WHEN 'expired' THEN current_period_end END AS DATE) AS ended \
             FROM subscriptions WHERE status <> 'trialing'), \
         months AS (SELECT unnest(generate_series(DATE '{first}', DATE '{last}', INTERVAL '1 month')) AS month), \
         m AS (SELECT CAST(month AS DATE) AS month, CAST(month + INTERVAL '1 month' AS DATE) AS next FROM months) \
         SELECT CAST(m.month AS VARCHAR) AS day, SUM({v}) AS mrr, SUM(CASE WHEN ({v}) IS NULL THEN 1 ELSE 0 END) AS unconverted \
           FROM m JOIN subs s ON s.started < m.next AND (s.ended IS NULL OR s.ended >= m.next) {join} \
          GROUP BY m.month ORDER BY m.month",
        v = converted("s", "mrr", "currency", currency),
        join = fx_join("s", "currency", currency, "m.month"),
    );
    let (mut out, mut unconverted) = (Vec::new(), 0u64);
    for b in rows(ctx, &sql).await? {
        let (month, mrr, missing) = (texts(&b, 0)?, doubles(&b, 1)?, doubles(&b, 2)?);
        for i in 0..b.num_rows() {
            out.push((date(&month[i])?, mrr[i].unwrap_or(0.0)));
            unconverted += missing[i].unwrap_or(0.0).max(0.0) as u64;
        }
    }
    Ok((out, unconverted))
}

/// Sums of one (owner, territory) cell of a quarter's deals, in the corporate currency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub owner: Option<String>,
    pub territory: Option<String>,
    pub commit: f64,
    pub best_case: f64,
    pub pipeline: f64,
    pub closed: f64,
    pub weighted: f64,
    pub open_deals: u64,
    pub unconverted: u64,
}

/// The quarter's deals (closing in it) per owner and territory: open amounts by forecast category,
/// the open pipeline weighted by its stage's probability (deals marked `omitted` left out), and the
/// won amount. Open deals convert at the rate of `day`, won deals at their close day's.
pub async fn quarter_cells(ctx: &SessionContext, currency: &str, day: NaiveDate, q: &Quarter) -> Result<Vec<Cell>> {
    let currency = code(currency)?;
    let rate_day = format!("(CASE WHEN o.status = 'won' THEN o.close_date ELSE DATE '{day}' END)");
    let sql = format!(
        "WITH d AS ( \
           SELECT o.owner_id, o.territory_id, o.status, o.forecast_category AS cat, \
                  CAST(s.probability AS DOUBLE) / 100.0 AS p, {v} AS amount \
             FROM opportunities o JOIN pipeline_stages s ON s.id = o.stage_id {join} \
            WHERE o.close_date >= DATE '{start}' AND o.close_date < DATE '{end}' AND o.status IN ('open', 'won')) \
         SELECT owner_id, territory_id, \
                SUM(CASE WHEN status = 'open' AND cat = 'commit' THEN amount ELSE 0 END), \
                SUM(CASE WHEN status = 'open' AND cat = 'best_case' THEN amount ELSE 0 END), \
                SUM(CASE WHEN status = 'open' AND cat = 'pipeline' THEN amount ELSE 0 END), \
                SUM(CASE WHEN status = 'won' THEN amount ELSE 0 END), \
                SUM(CASE WHEN status = 'open' AND cat <> 'omitted' THEN amount * p ELSE 0 END), \
                SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END), \
                SUM(CASE WHEN amount IS NULL THEN 1 ELSE 0 END) \
           FROM d GROUP BY owner_id, territory_id",
        v = converted("o", "amount", "currency", currency),
        join = fx_join("o", "currency", currency, &rate_day),
        start = q.start,
        end = q.end,
    );
    let mut out = Vec::new();
    for b in rows(ctx, &sql).await? {
        let (owner, territory) = (texts(&b, 0)?, texts(&b, 1)?);
        let v: Vec<Vec<Option<f64>>> = (2..9).map(|c| doubles(&b, c)).collect::<Result<_>>()?;
        for i in 0..b.num_rows() {
            let f = |c: usize| v[c][i].unwrap_or(0.0);
            out.push(Cell {
                owner: owner[i].clone(),
                territory: territory[i].clone(),
                commit: f(0),
                best_case: f(1),
                pipeline: f(2),
                closed: f(3),
                weighted: f(4),
                open_deals: f(5).max(0.0) as u64,
                unconverted: f(6).max(0.0) as u64,
            });
        }
    }
    Ok(out)
}

/// A quota of the quarter: a rep's (`user`) or a territory's (no user), in the corporate currency
/// at the quarter's first day's rate.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaRow {
    pub user: Option<String>,
    pub territory: Option<String>,
    pub amount: Option<f64>,
}

pub async fn quotas(ctx: &SessionContext, currency: &str, q: &Quarter) -> Result<Vec<QuotaRow>> {
    let currency = code(currency)?;
    let sql = format!(
        "SELECT q.user_id, q.territory_id, {v} FROM quotas q {join} \
          WHERE q.fiscal_year = {fy} AND q.fiscal_quarter = {fq}",
        v = converted("q", "amount", "currency", currency),
        join = fx_join("q", "currency", currency, &format!("DATE '{}'", q.start)),
        fy = q.fiscal_year,
        fq = q.fiscal_quarter,
    );
    let mut out = Vec::new();
    for b in rows(ctx, &sql).await? {
        let (user, territory, amount) = (texts(&b, 0)?, texts(&b, 1)?, doubles(&b, 2)?);
        for i in 0..b.num_rows() {
            out.push(QuotaRow { user: user[i].clone(), territory: territory[i].clone(), amount: amount[i] });
        }
    }
    Ok(out)
}

/// Each user's manager (`users.manager_id`), for the team a manager's forecast call covers.
pub async fn managers(ctx: &SessionContext) -> Result<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    for b in rows(ctx, "SELECT id, manager_id FROM users WHERE manager_id IS NOT NULL").await? {
        let (id, manager) = (texts(&b, 0)?, texts(&b, 1)?);
        for i in 0..b.num_rows() {
            if let (Some(id), Some(m)) = (&id[i], &manager[i]) {
                out.insert(id.clone(), m.clone());
            }
        }
    }
    Ok(out)
}
