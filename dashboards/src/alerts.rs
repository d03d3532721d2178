//! Threshold alerts on KPIs: an approved KPI, optionally broken down by one of its dimensions, computed
//! over a window (this fiscal quarter, month, the trailing 30 days…) and compared with a goal — a
//! constant, another KPI, or a query over the lake returning the goal per group (quotas per owner for
//! the period), times a factor — on a cron schedule.
//!
//! Every recipient's check runs under that recipient's own permissions ([`Viewer`], as a report copy
//! does), and groups that are people (a dimension over `owner_id` / `user_id`) are narrowed to the
//! people the recipient answers for ([`Viewer::people_in_reach`]): a rep hears about themselves, a
//! manager about their team. Each breach is recorded once per (alert, recipient, group, period) — the
//! de-duplication — and the sender mails every recipient one digest of their new breaches.
//!
//! - [`AlertSpec`] / [`AlertPatch`]: what a client writes, and its field problems;
//! - [`evaluate`]: one recipient's breaches for one window;
//! - [`run`]: the checks the scheduler claims, "check now", and the digests it mails.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use orbas_oltp::model::{AlertId, UserId};
use orbas_oltp::repo::alerts::AlertRow;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, FieldError, Result};
use crate::kpi::{check_query, is_identifier, is_key};
use crate::report::Schedule;

mod digest;
pub mod evaluate;
pub mod run;

pub use evaluate::{Breach, Evaluation};
pub use run::{CheckReport, Found, RecipientCheck, check, check_due, send_pending};

/// The window a KPI is computed over, as of the check, in the alert's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// The current quarter of the tenant's fiscal calendar.
    FiscalQuarter,
    /// The current calendar quarter.
    Quarter,
    Month,
    /// The current ISO week (Monday to Sunday).
    Week,
    Day,
    /// The last `trailing_days` days, today included.
    TrailingDays,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::FiscalQuarter => "fiscal_quarter",
            Period::Quarter => "quarter",
            Period::Month => "month",
            Period::Week => "week",
            Period::Day => "day",
            Period::TrailingDays => "trailing_days",
        }
    }
}

/// Which side of the goal is a breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// The value falls short of the goal (bookings under quota).
    Below,
    /// The value exceeds the goal (sales cycle over 60 days).
    Above,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Below => "below",
            Comparison::Above => "above",
        }
    }

    /// Whether `value` breaches `goal`.
    pub fn breached(self, value: f64, goal: f64) -> bool {
        match self {
            Comparison::Below => value < goal,
            Comparison::Above => value > goal,
        }
    }
}

/// Where the goal comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Goal {
    /// The same goal for every group.
    Constant { value: f64 },
    /// Another approved KPI (by key), computed over the same window and groups.
    Kpi { kpi: String },
    /// One read-only query over the lake returning a `goal` column and, for a grouped alert, a column
    /// named as the group's dimension (`owner`); `:from` and `:until` stand for the window's first day
    /// and the day after its last (`SELECT user_id AS owner, amount AS goal FROM quotas WHERE
    /// period_start <= :from AND :from < period_end`).
    Sql { sql: String },
}

/// An alert as a client writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    pub name: String,
    /// The key of an approved KPI.
    pub kpi: String,
    /// One of the KPI's dimensions to check group by group (`owner`); absent: the KPI's total.
    #[serde(default)]
    pub group_by: Option<String>,
    pub period: Period,
    /// The window's length for `trailing_days` (1 to 3660).
    #[serde(default)]
    pub trailing_days: Option<u32>,
    pub comparison: Comparison,
    pub goal: Goal,
    /// The goal is multiplied by this (0.8 × quota); default 1.
    #[serde(default = "one")]
    pub factor: f64,
    /// A group with a goal but no value counts as 0 (a rep with a quota and no bookings); default true.
    #[serde(default = "yes")]
    pub missing_as_zero: bool,
    /// E-mail addresses of the tenant's active users; each is told what they may see.
    pub recipients: Vec<String>,
    /// When to check: five fields (`0 8 * * 1-5`) or six with seconds first.
    pub cron: String,
    /// IANA time zone of the schedule and of "today" for the window (default UTC).
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn utc() -> String {
    "UTC".into()
}

/// Present (even as `null`) → `Some`; absent → `None` by `#[serde(default)]`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A partial change of an alert: the fields sent replace the alert's (`null` clears `group_by` and
/// `trailing_days`); the result is checked as a whole.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertPatch {
    pub name: Option<String>,
    pub kpi: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub group_by: Option<Option<String>>,
    pub period: Option<Period>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub trailing_days: Option<Option<u32>>,
    pub comparison: Option<Comparison>,
    pub goal: Option<Goal>,
    pub factor: Option<f64>,
    pub missing_as_zero: Option<bool>,
    pub recipients: Option<Vec<String>>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub is_active: Option<bool>,
}

impl AlertPatch {
    /// `spec` with this patch applied.
    pub fn apply(self, spec: AlertSpec) -> AlertSpec {
        AlertSpec {
            name: self.name.unwrap_or(spec.name),
            kpi: self.kpi.unwrap_or(spec.kpi),
            group_by: self.group_by.unwrap_or(spec.group_by),
            period: self.period.unwrap_or(spec.period),
            trailing_days: self.trailing_days.unwrap_or(spec.trailing_days),
            comparison: self.comparison.unwrap_or(spec.comparison),
            goal: self.goal.unwrap_or(spec.goal),
            factor: self.factor.unwrap_or(spec.factor),
            missing_as_zero: self.missing_as_zero.unwrap_or(spec.missing_as_zero),
            recipients: self.recipients.unwrap_or(spec.recipients),
            cron: self.cron.unwrap_or(spec.cron),
            timezone: self.timezone.unwrap_or(spec.timezone),
            is_active: self.is_active.unwrap_or(spec.is_active),
        }
    }
}

const MAX_RECIPIENTS: usize = 50;
const MAX_SQL: usize = 20_000;

/// `sql` with the window's dates in place of `:from` and `:until`.
pub fn bind_window(sql: &str, from: NaiveDate, until: NaiveDate) -> String {
    sql.replace(":from", &format!("DATE '{from}'")).replace(":until", &format!("DATE '{until}'"))
}

impl AlertSpec {
    /// Shape problems by field (whether the KPIs exist and are approved, and whether the recipients are
    /// the tenant's active users, is checked against the database by the caller).
    pub fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut bad = |f: &str, m: String| out.push(FieldError { field: f.to_owned(), message: m });
        if self.name.trim().is_empty() || self.name.chars().count() > 120 {
            bad("name", "1 to 120 characters".into());
        }
        if !is_key(&self.kpi) {
            bad("kpi", "the key of an approved KPI".into());
        }
        if let Some(g) = &self.group_by
            && !is_identifier(g)
        {
            bad("group_by", "the name of one of the KPI's dimensions".into());
        }
        match (self.period, self.trailing_days) {
            (Period::TrailingDays, Some(1..=3660)) => {}
            (Period::TrailingDays, _) => bad("trailing_days", "1 to 3660 days for a trailing window".into()),
            (_, Some(_)) => bad("trailing_days", "only for the trailing_days period".into()),
            (_, None) => {}
        }
        if !(self.factor.is_finite() && self.factor > 0.0) {
            bad("factor", "a positive number".into());
        }
        match &self.goal {
            Goal::Constant { value } if !value.is_finite() => bad("goal.value", "a number".into()),
            Goal::Kpi { kpi } if !is_key(kpi) => bad("goal.kpi", "the key of an approved KPI".into()),
            Goal::Sql { sql } if sql.trim().is_empty() || sql.len() > MAX_SQL => {
                bad("goal.sql", format!("one SELECT of at most {MAX_SQL} bytes"));
            }
            Goal::Sql { sql } => {
                let day = NaiveDate::default();
                if let Err(e) = check_query(&bind_window(sql, day, day)) {
                    bad("goal.sql", format!("one read-only query (SELECT …): {e}"));
                }
            }
            _ => {}
        }
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            bad("recipients", format!("1 to {MAX_RECIPIENTS} addresses"));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            if r.parse::<lettre::Address>().is_err() {
                bad(&format!("recipients[{i}]"), format!("{r:?} is not an e-mail address"));
            }
        }
        if let Err(p) = Schedule::parse(&self.cron, &self.timezone) {
            out.extend(p);
        }
        out
    }
}

/// An alert of the tenant as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredAlert {
    pub id: AlertId,
    pub owner_id: UserId,
    #[serde(flatten)]
    pub spec: AlertSpec,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub next_check_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn enum_from<T: for<'de> Deserialize<'de>>(what: &str, s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| Error::Corrupt(format!("stored alert {what} {s:?} is not one this version knows")))
}

impl StoredAlert {
    /// The stored row as an alert; a row this version cannot read is [`Error::Corrupt`].
    pub fn from_row(row: &AlertRow) -> Result<Self> {
        let goal = match (&row.goal_value, &row.goal_kpi_key, &row.goal_sql) {
            (Some(value), None, None) => Goal::Constant { value: *value },
            (None, Some(kpi), None) => Goal::Kpi { kpi: kpi.clone() },
            (None, None, Some(sql)) => Goal::Sql { sql: sql.clone() },
            _ => return Err(Error::Corrupt(format!("alert {}: not exactly one goal", row.id))),
        };
        let spec = AlertSpec {
            name: row.name.clone(),
            kpi: row.kpi_key.clone(),
            group_by: row.group_by.clone(),
            period: enum_from("period", &row.period)?,
            trailing_days: row.trailing_days.and_then(|d| u32::try_from(d).ok()),
            comparison: enum_from("comparison", &row.comparison)?,
            goal,
            factor: row.goal_factor,
            missing_as_zero: row.missing_as_zero,
            recipients: row.recipients.clone(),
            cron: row.cron.clone(),
            timezone: row.timezone.clone(),
            is_active: row.is_active,
        };
        Ok(StoredAlert {
            id: row.id,
            owner_id: row.owner_id,
            spec,
            last_checked_at: row.last_checked_at,
            next_check_at: row.next_check_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A window: `from` (inclusive) to `until` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Window {
    pub from: NaiveDate,
    pub until: NaiveDate,
}

impl Window {
    /// The window as the de-duplication key's period (`2026-10-01..2027-01-01`).
    pub fn key(&self) -> String {
        format!("{}..{}", self.from, self.until)
    }

    /// The window containing `today` (`trailing` days for [`Period::TrailingDays`]; the fiscal year
    /// starts in month `fiscal_start`, 1–12).
    pub fn of(period: Period, trailing: Option<u32>, today: NaiveDate, fiscal_start: u32) -> Window {
        let first_of_month = today.with_day(1).unwrap_or(today);
        let quarter_from = |offset: u32| first_of_month - chrono::Months::new(offset % 3);
        let (from, until) = match period {
            Period::Day => (today, today + Duration::days(1)),
            Period::Week => {
                let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
                (monday, monday + Duration::days(7))
            }
            Period::Month => (first_of_month, first_of_month + chrono::Months::new(1)),
            Period::Quarter => {
                let from = quarter_from(today.month0());
                (from, from + chrono::Months::new(3))
            }
            Period::FiscalQuarter => {
                let start = fiscal_start.clamp(1, 12);
                let from = quarter_from((today.month() + 12 - start) % 12);
                (from, from + chrono::Months::new(3))
            }
            Period::TrailingDays => {
                let days = i64::from(trailing.unwrap_or(1).clamp(1, 3660));
                (today - Duration::days(days - 1), today + Duration::days(1))
            }
        };
        Window { from, until }
    }
}

#[cfg(test)]
mod tests;
