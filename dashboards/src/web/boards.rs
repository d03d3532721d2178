//! View models of the dashboard pages: widgets placed on the 12-column grid, tiles formatted by their
//! KPI's unit with the change against the period before (in words, not only colour), tables with links
//! to CRM records and a drill-down link per row, and the chart data the page's script draws.
//!
//! Every chart carries its numbers as an HTML table too (inside a `<details>`), so the page says the
//! same thing without JavaScript, without sight and without colour.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::board::{WidgetData, WidgetKind, WidgetSpec};
use crate::kpi::{Direction, KpiDefinition, Unit};

/// A number with thousands separators and `decimals` digits after the point.
pub fn grouped(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    let zero = s.chars().all(|c| c == '0' || c == '.');
    if v < 0.0 && !zero { format!("-{out}") } else { out }
}

/// A KPI value as people read it: counts whole, money with two decimals and the currency, fractions
/// as percent, durations in days.
pub fn format_value(v: f64, unit: Unit, currency: &str) -> String {
    match unit {
        Unit::Count if v.fract() == 0.0 => grouped(v, 0),
        Unit::Count | Unit::Ratio | Unit::Score => grouped(v, 2),
        Unit::Currency => format!("{} {currency}", grouped(v, 2)),
        Unit::Percent => format!("{} %", grouped(v * 100.0, 1)),
        Unit::Days => format!("{} days", grouped(v, 1)),
    }
}

/// A cell of a result as text (numbers by `unit` when it is the value column).
fn cell_text(v: &Value, unit: Option<Unit>, currency: &str) -> String {
    match (v, unit) {
        (Value::Null, _) => "—".to_owned(),
        (Value::Number(n), Some(u)) => n.as_f64().map_or_else(|| n.to_string(), |x| format_value(x, u, currency)),
        (Value::Number(n), None) => match n.as_f64() {
            Some(x) if x.fract() != 0.0 => grouped(x, 2),
            // A whole number read as a float (`5.0`) shows as the integer it is; no grouping (years, ids).
            Some(x) if x.abs() < 1e15 => format!("{x:.0}"),
            _ => n.to_string(),
        },
        (Value::String(s), _) => s.clone(),
        (other, _) => other.to_string(),
    }
}

/// Display names of key values (a user's name for an owner id), by the raw value.
pub type Labels = BTreeMap<String, String>;

/// Key columns whose values are user ids (shown by name when `Labels` has one).
pub const USER_COLUMNS: [&str; 3] = ["owner", "owner_id", "user_id"];

/// A key cell as shown: its label when it is a user column and the label is known.
fn labelled(column: &str, v: &Value, labels: &Labels) -> Value {
    match v {
        Value::String(s) if USER_COLUMNS.contains(&column) => labels.get(s).map_or_else(|| v.clone(), |l| json!(l)),
        _ => v.clone(),
    }
}

/// A single value with its change against the period before.
#[derive(Debug, Clone)]
pub struct TileView {
    pub value: String,
    /// The raw number (for scripts and tests).
    pub raw: String,
    /// "up 12 (+5.0 %) on the period before, better", or `None` without a previous period.
    pub delta: Option<String>,
    /// `better`, `worse` or `same` (the CSS class; the words are in `delta`).
    pub tone: &'static str,
}

fn tile(data: &WidgetData, unit: Unit, good: Direction, currency: &str) -> Option<TileView> {
    let t = data.table.as_ref()?;
    let v = t.rows.first().and_then(|r| r.iter().rev().find_map(Value::as_f64));
    let Some(v) = v else {
        return Some(TileView { value: "—".into(), raw: String::new(), delta: None, tone: "same" });
    };
    let (delta, tone) = match data.previous {
        Some(p) => {
            let d = v - p;
            let (word, tone) = match (d.partial_cmp(&0.0), good) {
                (Some(std::cmp::Ordering::Greater), Direction::Up)
                | (Some(std::cmp::Ordering::Less), Direction::Down) => ("better", "better"),
                (Some(std::cmp::Ordering::Equal) | None, _) => ("no change", "same"),
                _ => ("worse", "worse"),
            };
            let arrow = if d > 0.0 {
                "▲ up"
            } else if d < 0.0 {
                "▼ down"
            } else {
                "● flat"
            };
            let pct = if p != 0.0 { format!(" ({:+.1} %)", d / p.abs() * 100.0) } else { String::new() };
            let amount = format_value(d.abs(), unit, currency);
            (Some(format!("{arrow} {amount}{pct} on the period before: {word}")), tone)
        }
        None => (None, "same"),
    };
    Some(TileView { value: format_value(v, unit, currency), raw: v.to_string(), delta, tone })
}

/// One cell of an HTML table.
#[derive(Debug, Clone)]
pub struct CellView {
    pub text: String,
    /// The CRM record the cell names (`opportunity_id`, `account_id` columns).
    pub href: Option<String>,
}

/// One row, with the link to the records behind it.
#[derive(Debug, Clone)]
pub struct RowView {
    pub cells: Vec<CellView>,
    pub drill: Option<String>,
}

/// A result as an HTML table.
#[derive(Debug, Clone, Default)]
pub struct TableView {
    pub columns: Vec<String>,
    pub rows: Vec<RowView>,
    pub truncated: bool,
}

/// The record page a `<record>_id` column links to.
fn record_link(column: &str, v: &Value) -> Option<String> {
    let id = v.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok())?;
    match column {
        "opportunity_id" => Some(format!("/ui/opportunities/{id}")),
        "account_id" => Some(format!("/ui/accounts/{id}")),
        _ => None,
    }
}

impl TableView {
    /// `t`'s rows; the last column is formatted by `unit` when given, id columns link to their records,
    /// user ids in key columns show their `labels`, and each row gets `drill[i]` when given.
    pub fn new(
        t: &crate::engine::Table,
        unit: Option<Unit>,
        currency: &str,
        drill: &[Option<String>],
        labels: &Labels,
    ) -> Self {
        let last = t.columns.len().saturating_sub(1);
        let rows = t
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| RowView {
                cells: r
                    .iter()
                    .enumerate()
                    .map(|(c, v)| {
                        let name = t.columns.get(c).map_or("", String::as_str);
                        let unit = if c == last { unit } else { None };
                        let shown = if c == last { v.clone() } else { labelled(name, v, labels) };
                        CellView { text: cell_text(&shown, unit, currency), href: record_link(name, v) }
                    })
                    .collect(),
                drill: drill.get(i).cloned().flatten(),
            })
            .collect();
        let columns = t.columns.iter().map(|c| c.replace('_', " ")).collect();
        TableView { columns, rows, truncated: t.truncated }
    }
}

/// One widget on the grid.
#[derive(Debug, Clone)]
pub struct WidgetView {
    pub id: String,
    pub title: String,
    pub kind: &'static str,
    /// `grid-column` / `grid-row` placement.
    pub style: String,
    pub error: Option<String>,
    pub tile: Option<TileView>,
    pub table: Option<TableView>,
    /// Drawn by the script (every kind but tile and table).
    pub chart: bool,
    /// The chart's accessible name.
    pub summary: String,
    /// Filters the KPI has no dimension for, in words.
    pub note: Option<String>,
}

/// What a widget's drill-down links start with: the dashboard's drill page, the widget and the filters
/// in force (`…/drill?widget=<id>&from=…`).
#[derive(Debug, Clone)]
pub struct DrillBase {
    pub prefix: String,
    /// Global filters (`name=value`) a row's own breakdown value replaces.
    pub filters: Vec<(String, String)>,
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl DrillBase {
    /// The link for one result row: its `period` and breakdown values (null as empty).
    fn link(&self, columns: &[String], row: &[Value]) -> String {
        let keys = &columns[..columns.len().saturating_sub(1)];
        let mut params: Vec<(String, String)> =
            self.filters.iter().filter(|(k, _)| !keys.contains(k)).cloned().collect();
        for (k, v) in keys.iter().zip(row) {
            let v = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            params.push((k.clone(), v));
        }
        let mut url = self.prefix.clone();
        for (k, v) in params {
            url.push('&');
            url.push_str(&encode(&k));
            url.push('=');
            url.push_str(&encode(&v));
        }
        url
    }
}

/// The chart data the script reads for one widget: its kind, unit, columns, rows and row links.
fn chart_data(
    id: &str,
    kind: WidgetKind,
    unit: Option<Unit>,
    t: &crate::engine::Table,
    drill: &[Option<String>],
    labels: &Labels,
) -> Value {
    let unit = unit.map(|u| serde_json::to_value(u).unwrap_or(Value::Null));
    let rows: Vec<Vec<Value>> =
        t.rows.iter().map(|r| r.iter().zip(&t.columns).map(|(v, c)| labelled(c, v, labels)).collect()).collect();
    json!({"id": id, "kind": kind.as_str(), "unit": unit, "columns": t.columns, "rows": rows, "drill": drill})
}

impl WidgetView {
    /// A widget of a dashboard: `kpi` is its KPI's definition (`None` for SQL widgets), `drill` the
    /// start of its drill-down links (`None`: its KPI has no drill-down). Returns the view and its
    /// chart data (`None` for tiles, tables and errors).
    pub fn new(
        id: &str,
        spec: &WidgetSpec,
        kpi: Option<&KpiDefinition>,
        data: &WidgetData,
        currency: &str,
        drill: Option<&DrillBase>,
        labels: &Labels,
    ) -> (Self, Option<Value>) {
        let style = format!(
            "grid-column: {} / span {}; grid-row: {} / span {};",
            spec.x.clamp(0, 11) + 1,
            spec.w.clamp(1, 12),
            spec.y.max(0) + 1,
            spec.h.max(1)
        );
        let unit = kpi.map(|k| k.unit);
        let mut view = WidgetView {
            id: id.to_owned(),
            title: spec.title.clone(),
            kind: spec.kind.as_str(),
            style,
            error: data.error.clone(),
            tile: None,
            table: None,
            chart: false,
            summary: String::new(),
            note: (!data.ignored.is_empty())
                .then(|| format!("Not filtered by {} (this KPI has no such breakdown).", data.ignored.join(", "))),
        };
        let Some(t) = data.table.as_ref().filter(|_| data.error.is_none()) else {
            return (view, None);
        };
        if spec.kind == WidgetKind::Tile {
            let (u, dir) = kpi.map_or((Unit::Count, Direction::Up), |k| (k.unit, k.good_direction));
            view.tile = tile(data, u, dir, currency);
            return (view, None);
        }
        let links: Vec<Option<String>> = t.rows.iter().map(|r| drill.map(|d| d.link(&t.columns, r))).collect();
        view.table = Some(TableView::new(t, unit, currency, &links, labels));
        if spec.kind == WidgetKind::Table {
            return (view, None);
        }
        view.chart = true;
        view.summary = format!(
            "{}: {} chart of {} values; the data table below lists them",
            spec.title,
            spec.kind.as_str().replace('_', " "),
            t.rows.len()
        );
        let chart = chart_data(id, spec.kind, unit, t, &links, labels);
        (view, Some(chart))
    }
}

/// JSON safe to put inside `<script type="application/json">` (no `<`, `>` or `&` to end the element).
pub fn script_json(v: &Value) -> String {
    v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Table;

    fn data(rows: Vec<Vec<Value>>, columns: &[&str], previous: Option<f64>) -> WidgetData {
        let table =
            Table { columns: columns.iter().map(|c| (*c).to_owned()).collect(), rows, truncated: false, generation: 1 };
        WidgetData { table: Some(table), previous, ignored: Vec::new(), error: None, cached: false }
    }

    #[test]
    fn values_are_formatted_by_unit() {
        assert_eq!(grouped(1234567.891, 2), "1,234,567.89");
        assert_eq!(grouped(-999.0, 0), "-999");
        assert_eq!(grouped(-0.001, 2), "0.00");
        assert_eq!(format_value(1200.0, Unit::Count, "EUR"), "1,200");
        assert_eq!(format_value(1200.5, Unit::Currency, "EUR"), "1,200.50 EUR");
        assert_eq!(format_value(0.256, Unit::Percent, "EUR"), "25.6 %");
        assert_eq!(format_value(12.25, Unit::Days, "EUR"), "12.2 days");
        // Cells without a unit: whole floats as integers, ungrouped; fractions to two places.
        assert_eq!(cell_text(&json!(5.0), None, "EUR"), "5");
        assert_eq!(cell_text(&json!(2026), None, "EUR"), "2026");
        assert_eq!(cell_text(&json!(1234.567), None, "EUR"), "1,234.57");
        assert_eq!(cell_text(&Value::Null, None, "EUR"), "—");
    }

    #[test]
    fn a_tile_says_whether_the_change_is_better_in_words() {
        let up = tile(&data(vec![vec![json!(12.0)]], &["value"], Some(10.0)), Unit::Count, Direction::Up, "EUR");
        let up = up.expect("tile");
        assert_eq!((up.value.as_str(), up.tone), ("12", "better"));
        assert_eq!(up.delta.as_deref(), Some("▲ up 2 (+20.0 %) on the period before: better"));
        let cycle = tile(&data(vec![vec![json!(12.0)]], &["value"], Some(10.0)), Unit::Days, Direction::Down, "EUR");
        assert_eq!(cycle.map(|t| t.tone), Some("worse"));
        let none = tile(&data(vec![], &["value"], None), Unit::Count, Direction::Up, "EUR").expect("tile");
        assert_eq!((none.value.as_str(), none.delta), ("—", None));
    }

    #[test]
    fn rows_link_to_records_and_drill_down_with_their_keys() {
        let id = uuid::Uuid::nil().to_string();
        let t = Table {
            columns: vec!["opportunity_id".into(), "amount".into()],
            rows: vec![vec![json!(id), json!(5)]],
            truncated: false,
            generation: 1,
        };
        let v = TableView::new(&t, None, "EUR", &[], &Labels::new());
        assert_eq!(v.rows[0].cells[0].href.as_deref(), Some(format!("/ui/opportunities/{id}").as_str()));
        assert_eq!(v.columns, ["opportunity id", "amount"]);
        let by_owner = Table {
            columns: vec!["owner".into(), "value".into()],
            rows: vec![vec![json!("u1"), json!(2)], vec![json!("u2"), json!(1)]],
            truncated: false,
            generation: 1,
        };
        let names = Labels::from([("u1".to_owned(), "Ada Lovelace".to_owned())]);
        let v = TableView::new(&by_owner, None, "EUR", &[], &names);
        let shown: Vec<&str> = v.rows.iter().map(|r| r.cells[0].text.as_str()).collect();
        assert_eq!(shown, ["Ada Lovelace", "u2"]);

        let base = DrillBase {
            prefix: "/ui/dashboards/d/drill?widget=w".into(),
            filters: vec![("owner".into(), "a,b".into()), ("segment".into(), "smb".into())],
        };
        let cols = vec!["period".to_owned(), "owner".to_owned(), "value".to_owned()];
        let link = base.link(&cols, &[json!("2026-01"), json!("a"), json!(3)]);
        assert_eq!(link, "/ui/dashboards/d/drill?widget=w&segment=smb&period=2026-01&owner=a");
        assert_eq!(base.link(&cols, &[json!("2026-01"), Value::Null, json!(3)]).rsplit('&').next(), Some("owner="));
    }

    #[test]
    fn script_json_cannot_close_its_element() {
        assert_eq!(script_json(&json!({"a": "</script>&"})), r#"{"a":"\u003c/script\u003e\u0026"}"#);
    }
}
