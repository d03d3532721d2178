//! The KPI semantic layer: what a KPI is, how it becomes one SQL query over the lake for a tenant's
//! dashboard filters, and its YAML form (dashboards-as-code).
//!
//! A KPI is a **measure** (an aggregate SQL expression, e.g. `SUM(bookings)`, or a ratio of
//! aggregates such as `SUM(won) / NULLIF(SUM(won) + SUM(lost), 0)` — ratios are always re-aggregated
//! from their parts, never averaged) over a **source** (a lake table — `gold.daily_bookings`,
//! `opportunities` — or a SELECT over the lake), bucketed by the source's **time** column at a
//! **grain**, and broken down or filtered by named **dimensions** (`owner` → `owner_id`). A global
//! dashboard filter (date range, territory, owner, segment) applies to every KPI that has the dimension
//! and is reported as ignored by the rest. A **stock** KPI (MRR, open pipeline) is a level, not a flow:
//! a coarser bucket takes the rows at the bucket's last time, never the sum of its months.
//!
//! Tenant isolation is not here: the compiled SQL names no tenant and runs in a session whose every
//! table is scoped to the caller's tenant (`orbas_warehouse::sql::Lake::session`). Identifiers are
//! checked against a strict pattern and quoted; values are quoted literals; measure, filter and source
//! must each parse as one SQL expression (or one query), so a definition cannot smuggle a second
//! statement.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};

/// How values roll up into a coarser time bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Events in the bucket (bookings, tickets): the measure over all its rows.
    #[default]
    Flow,
    /// A level (MRR, open pipeline): the measure over the rows at the bucket's last time.
    Stock,
}

/// The time bucket of a KPI's series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grain {
    Day,
    Week,
    #[default]
    Month,
    Quarter,
    Year,
    /// The tenant's fiscal quarter, from the source's `fiscal_year` and `fiscal_quarter` columns
    /// (every gold table carries them, in the tenant's own calendar).
    FiscalQuarter,
    /// One value for the whole range.
    Total,
}

impl Grain {
    /// The bucket of `time` (a quoted column) as a SQL expression; `None` for [`Grain::Total`].
    fn bucket(self, time: &str) -> Option<String> {
        let trunc = |unit: &str| format!("CAST(date_trunc('{unit}', {time}) AS DATE)");
        Some(match self {
            Grain::Day => format!("CAST({time} AS DATE)"),
            Grain::Week => trunc("week"),
            Grain::Month => trunc("month"),
            Grain::Quarter => trunc("quarter"),
            Grain::Year => trunc("year"),
            Grain::FiscalQuarter => "concat('FY', CAST(\"fiscal_year\" AS VARCHAR), ' Q', \
                                     CAST(\"fiscal_quarter\" AS VARCHAR))"
                .to_owned(),
            Grain::Total => return None,
        })
    }
}

/// What a value is, for formatting and for goals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    #[default]
    Count,
    /// In the tenant's corporate currency.
    Currency,
    /// A fraction (0.25 shows as 25 %).
    Percent,
    Days,
    Ratio,
    /// A score on the source's own scale (CSAT 1–5).
    Score,
}

/// Which way is better (tiles colour their delta with it; alerts fire on the bad side).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Up,
    Down,
}

/// A definition's review state: only approved KPIs appear in shared dashboards, reports and alerts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Draft,
    Approved,
}

/// A named breakdown of a KPI: `owner` is the source's `owner_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    pub name: String,
    pub column: String,
}

/// One KPI (see the module docs). The YAML and JSON forms are this struct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KpiDefinition {
    /// Stable identifier (`^[a-z][a-z0-9_]{1,60}$`): dashboards and alerts refer to it.
    pub key: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A lake table (`gold.daily_bookings`, `opportunities`) or a SELECT over the lake.
    pub source: String,
    /// An aggregate SQL expression over the source's columns.
    pub measure: String,
    /// The source's date or timestamp column the series and date filters use; none for a KPI that
    /// is only ever "now" (open pipeline against this quarter's quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default)]
    pub aggregation: Aggregation,
    #[serde(default)]
    pub grain: Grain,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<Dimension>,
    /// A row predicate over the source, applied before everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The records behind a value, for drill-down: a lake table or a SELECT with the source's time and
    /// dimension columns (and, by convention, `<record>_id` columns the UI links to: `opportunity_id`,
    /// `account_id`, …). Without it a drill-down shows the source's own rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<String>,
    #[serde(default)]
    pub unit: Unit,
    #[serde(default)]
    pub good_direction: Direction,
    #[serde(default)]
    pub status: Status,
}

/// What a dashboard asks of a KPI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KpiQuery {
    /// First day of the range (inclusive).
    pub from: Option<NaiveDate>,
    /// Day after the range (exclusive).
    pub until: Option<NaiveDate>,
    /// Overrides the definition's grain.
    pub grain: Option<Grain>,
    /// Dimensions to break the series down by (each must be one of the KPI's).
    pub group_by: Vec<String>,
    /// Allowed values per dimension name; a dimension the KPI lacks is ignored (and reported).
    pub filters: BTreeMap<String, Vec<String>>,
}

/// A KPI query as SQL, with what it could not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub sql: String,
    /// The result's columns: `period` (unless the grain is total or the KPI has no time), the
    /// grouped dimensions by name, then `value`.
    pub columns: Vec<String>,
    /// Query parts this KPI has no use for (`from`, `until`, `grain`, or a filter's dimension).
    pub ignored: Vec<String>,
}

const MAX_NAME: usize = 120;

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

pub(crate) fn is_key(s: &str) -> bool {
    is_identifier(s) && s.starts_with(|c: char| c.is_ascii_lowercase()) && (2..=61).contains(&s.len())
}

/// `schema.table` or `table`, each part an identifier.
fn is_table(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok = parts.by_ref().take(2).all(is_identifier);
    ok && parts.next().is_none()
}

fn quote_ident(s: &str) -> String {
    format!("\"{s}\"")
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn quote_table(s: &str) -> String {
    s.split('.').map(quote_ident).collect::<Vec<_>>().join(".")
}

/// A table name as `SELECT *` of it; a query as it is.
fn as_query(source: &str) -> String {
    let source = source.trim();
    if is_table(source) { format!("SELECT * FROM {}", quote_table(source)) } else { source.to_owned() }
}

/// Whether `sql` is exactly one SQL expression.
fn check_expression(sql: &str) -> std::result::Result<(), String> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).try_with_sql(sql).map_err(|e| e.to_string())?;
    parser.parse_expr().map_err(|e| e.to_string())?;
    match parser.peek_token().token {
        Token::EOF => Ok(()),
        t => Err(format!("unexpected {t} after the expression")),
    }
}

/// Whether `sql` is exactly one query (SELECT or WITH … SELECT).
pub(crate) fn check_query(sql: &str) -> std::result::Result<(), String> {
    use datafusion::sql::sqlparser::ast::Statement;
    let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| e.to_string())?;
    match statements.as_slice() {
        [Statement::Query(_)] => Ok(()),
        [_] => Err("must be a query (SELECT …)".into()),
        _ => Err(format!("must be one query, found {} statements", statements.len())),
    }
}

impl KpiDefinition {
    /// Every problem with the definition, by field (empty: valid). Whether the columns exist is
    /// checked when the query is planned against the lake.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut bad = |field: &str, message: String| out.push(FieldError { field: field.to_owned(), message });
        if !is_key(&self.key) {
            bad("key", "2 to 61 characters: a lower-case letter, then letters, digits or _".into());
        }
        if self.name.trim().is_empty() || self.name.chars().count() > MAX_NAME {
            bad("name", format!("1 to {MAX_NAME} characters"));
        }
        let source = self.source.trim();
        if !is_table(source)
            && let Err(e) = check_query(source)
        {
            bad("source", format!("a lake table (gold.daily_bookings, opportunities) or one SELECT: {e}"));
        }
        if let Err(e) = check_expression(&self.measure) {
            bad("measure", format!("one aggregate SQL expression: {e}"));
        }
        if let Some(f) = &self.filter
            && let Err(e) = check_expression(f)
        {
            bad("filter", format!("one SQL condition: {e}"));
        }
        if let Some(d) = &self.drill {
            let d = d.trim();
            if !is_table(d)
                && let Err(e) = check_query(d)
            {
                bad("drill", format!("a lake table or one SELECT of the records behind a value: {e}"));
            }
        }
        if let Some(t) = &self.time
            && !is_identifier(t)
        {
            bad("time", "a column name (lower-case letters, digits, _)".into());
        }
        if self.time.is_none() && self.aggregation == Aggregation::Stock {
            bad("aggregation", "a stock KPI needs a time column (its buckets take their last time)".into());
        }
        let mut names = BTreeSet::new();
        for (i, d) in self.dimensions.iter().enumerate() {
            if !is_identifier(&d.name) || d.name == "period" || d.name == "value" {
                bad(&format!("dimensions[{i}].name"), "an identifier other than period and value".into());
            } else if !names.insert(d.name.as_str()) {
                bad(&format!("dimensions[{i}].name"), format!("{} appears twice", d.name));
            }
            if !is_identifier(&d.column) {
                bad(&format!("dimensions[{i}].column"), "a column name (lower-case letters, digits, _)".into());
            }
        }
        out
    }

    /// The definition, or its problems as [`Error::Invalid`].
    pub fn validated(self) -> Result<Self> {
        let problems = self.problems();
        if problems.is_empty() { Ok(self) } else { Err(Error::Invalid(problems)) }
    }

    /// The source as a query: a table's rows, or the definition's own SELECT.
    pub fn source_sql(&self) -> String {
        as_query(&self.source)
    }

    /// The drill-down source as a query (the source itself when the KPI names none).
    pub fn drill_sql(&self) -> String {
        as_query(self.drill.as_deref().unwrap_or(&self.source))
    }

    /// The records behind one value of `q`'s result: those of the bucket `period` (as the result
    /// printed it; ignored for a total) and the dimension `values` (by name; `None` matches NULL),
    /// newest first, at most `limit`. For a stock KPI, the records at the bucket's last time.
    pub fn drill_down(
        &self,
        q: &KpiQuery,
        period: Option<&str>,
        values: &BTreeMap<String, Option<String>>,
        limit: usize,
    ) -> Result<Compiled> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let (mut conditions, ignored) = self.conditions(q)?;
        let time = self.time.as_deref().map(quote_ident);
        let grain = q.grain.unwrap_or(self.grain);
        let bucket = time.as_deref().and_then(|t| grain.bucket(t));
        if let (Some(b), Some(p)) = (&bucket, period) {
            conditions.push(format!("CAST({b} AS VARCHAR) = {}", quote_literal(p)));
        }
        for (name, value) in values {
            let Some(d) = self.dimension(name) else {
                return Err(Error::Invalid(vec![FieldError {
                    field: format!("values.{name}"),
                    message: format!("{} has no dimension {name:?}", self.key),
                }]));
            };
            let column = quote_ident(&d.column);
            conditions.push(match value {
                Some(v) => format!("CAST({column} AS VARCHAR) = {}", quote_literal(v)),
                None => format!("{column} IS NULL"),
            });
        }
        let mut sql = format!("WITH orbas_source AS ({}), orbas_rows AS (SELECT * FROM orbas_source", self.drill_sql());
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push(')');
        match &time {
            Some(t) if self.aggregation == Aggregation::Stock => sql.push_str(&format!(
                " SELECT * FROM orbas_rows WHERE {t} = (SELECT MAX({t}) FROM orbas_rows) LIMIT {limit}"
            )),
            Some(t) => sql.push_str(&format!(" SELECT * FROM orbas_rows ORDER BY {t} DESC LIMIT {limit}")),
            None => sql.push_str(&format!(" SELECT * FROM orbas_rows LIMIT {limit}")),
        }
        Ok(Compiled { sql, columns: Vec::new(), ignored })
    }

    /// The row conditions of `q` (the KPI's filter, the date range, the dimension filters) and the
    /// parts of `q` the KPI has no use for.
    fn conditions(&self, q: &KpiQuery) -> Result<(Vec<String>, Vec<String>)> {
        if let (Some(from), Some(until)) = (q.from, q.until)
            && from >= until
        {
            return Err(Error::Invalid(vec![FieldError {
                field: "until".into(),
                message: format!("must be after from ({from})"),
            }]));
        }
        let mut ignored = Vec::new();
        let mut conditions = Vec::new();
        if let Some(f) = &self.filter {
            conditions.push(format!("({f})"));
        }
        match self.time.as_deref().map(quote_ident) {
            Some(t) => {
                if let Some(from) = q.from {
                    conditions.push(format!("{t} >= DATE '{from}'"));
                }
                if let Some(until) = q.until {
                    conditions.push(format!("{t} < DATE '{until}'"));
                }
            }
            None => {
                ignored.extend(q.from.map(|_| "from".to_owned()));
                ignored.extend(q.until.map(|_| "until".to_owned()));
                ignored.extend(q.grain.map(|_| "grain".to_owned()));
            }
        }
        for (name, values) in &q.filters {
            match self.dimension(name) {
                // No value allowed: nothing matches (an empty selection is not "all").
                Some(_) if values.is_empty() => conditions.push("FALSE".into()),
                Some(d) => conditions.push(format!(
                    "CAST({} AS VARCHAR) IN ({})",
                    quote_ident(&d.column),
                    values.iter().map(|v| quote_literal(v)).collect::<Vec<_>>().join(", ")
                )),
                None => ignored.push(name.clone()),
            }
        }
        Ok((conditions, ignored))
    }

    fn dimension(&self, name: &str) -> Option<&Dimension> {
        self.dimensions.iter().find(|d| d.name == name)
    }

    /// The SQL answering `q` (see the module docs for its shape and scoping).
    pub fn compile(&self, q: &KpiQuery) -> Result<Compiled> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let mut group = Vec::new();
        for (i, name) in q.group_by.iter().enumerate() {
            match self.dimension(name) {
                Some(d) if !group.contains(&d) => group.push(d),
                Some(_) => {}
                None => {
                    return Err(Error::Invalid(vec![FieldError {
                        field: format!("group_by[{i}]"),
                        message: format!(
                            "{} has no dimension {name:?} (it has: {})",
                            self.key,
                            self.dimensions.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    }]));
                }
            }
        }
        let source = self.source_sql();
        let (conditions, ignored) = self.conditions(q)?;
        let time = self.time.as_deref().map(quote_ident);
        let grain = q.grain.unwrap_or(self.grain);
        let bucket = time.as_deref().and_then(|t| grain.bucket(t));

        let mut sql = format!("WITH orbas_source AS ({source}), orbas_rows AS (SELECT * FROM orbas_source");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push(')');
        let mut from = "orbas_rows".to_owned();
        let mut last_time = String::new();
        if self.aggregation == Aggregation::Stock
            && let Some(t) = &time
        {
            let partition = bucket.as_deref().map(|b| format!(" PARTITION BY {b}")).unwrap_or_default();
            sql.push_str(&format!(
                ", orbas_stock AS (SELECT *, MAX({t}) OVER ({partition}) AS orbas_last FROM orbas_rows)",
                partition = partition.trim_start()
            ));
            from = "orbas_stock".into();
            last_time = format!(" WHERE {t} = orbas_last");
        }
        // (expression, column name) of every key of the result.
        let mut keys: Vec<(String, String)> = Vec::new();
        if let Some(b) = bucket {
            keys.push((b, "period".to_owned()));
        }
        for d in &group {
            keys.push((quote_ident(&d.column), d.name.clone()));
        }
        let mut select: Vec<String> = keys.iter().map(|(e, name)| format!("{e} AS {}", quote_ident(name))).collect();
        select.push(format!("{} AS \"value\"", self.measure));
        sql.push_str(&format!(" SELECT {} FROM {from}{last_time}", select.join(", ")));
        if !keys.is_empty() {
            let exprs = keys.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>().join(", ");
            let names = keys.iter().map(|(_, n)| quote_ident(n)).collect::<Vec<_>>().join(", ");
            sql.push_str(&format!(" GROUP BY {exprs} ORDER BY {names}"));
        }
        let mut columns: Vec<String> = keys.into_iter().map(|(_, n)| n).collect();
        columns.push("value".into());
        Ok(Compiled { sql, columns, ignored })
    }
}

/// A file of KPI definitions (`kpis:` then a list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KpiFile {
    kpis: Vec<KpiDefinition>,
}

/// The YAML form of `kpis` (dashboards-as-code).
pub fn to_yaml(kpis: &[KpiDefinition]) -> Result<String> {
    Ok(serde_norway::to_string(&KpiFile { kpis: kpis.to_vec() })?)
}

/// KPI definitions from YAML, each validated; keys must be unique. Problems name their place
/// (`kpis[2].measure`).
pub fn from_yaml(text: &str) -> Result<Vec<KpiDefinition>> {
    let file: KpiFile = serde_norway::from_str(text)?;
    let mut problems = Vec::new();
    let mut keys = BTreeSet::new();
    for (i, k) in file.kpis.iter().enumerate() {
        problems.extend(k.problems().into_iter().map(|p| FieldError { field: format!("kpis[{i}].{}", p.field), ..p }));
        if !keys.insert(k.key.as_str()) {
            problems.push(FieldError { field: format!("kpis[{i}].key"), message: format!("{} appears twice", k.key) });
        }
    }
    if problems.is_empty() { Ok(file.kpis) } else { Err(Error::Invalid(problems)) }
}

#[cfg(test)]
mod tests;
