//! Dashboards: what a dashboard is (global filters, widgets from a KPI or from SQL, chart kinds and
//! grid places), how it is checked, and how its data is computed for a viewer's filters.
//!
//! A widget from a KPI is compiled for the dashboard's filters (date range, territory, owner, segment)
//! merged with its own (grain, breakdown, fixed filters); a filter the KPI has no dimension for is
//! reported as ignored on that widget. A KPI tile also gets the value of the period before (the same
//! length, just before the range) for its delta. A widget from SQL runs as written (read-only, the
//! viewer's tenant). One widget's failure is reported on that widget; the others still render.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use orbas_warehouse::sql::QueryError;

use crate::engine::{Engine, Table};
use crate::error::{Error, FieldError, Result};
use crate::kpi::{Grain, KpiDefinition, KpiQuery};
use crate::viewer::Viewer;

/// How a widget draws its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WidgetKind {
    /// One number with its change against the period before.
    Tile,
    Line,
    Bar,
    /// Bars stacked by the widget's one breakdown.
    StackedBar,
    /// Stages of one breakdown, largest first.
    Funnel,
    Table,
    /// Two keys (period × breakdown, or two breakdowns) coloured by value.
    Heatmap,
    Pie,
}

impl WidgetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WidgetKind::Tile => "tile",
            WidgetKind::Line => "line",
            WidgetKind::Bar => "bar",
            WidgetKind::StackedBar => "stacked_bar",
            WidgetKind::Funnel => "funnel",
            WidgetKind::Table => "table",
            WidgetKind::Heatmap => "heatmap",
            WidgetKind::Pie => "pie",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// A KPI widget's own query settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetConfig {
    /// Overrides the KPI's grain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grain: Option<Grain>,
    /// Dimensions to break down by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// Fixed filters of this widget, by dimension (applied with the dashboard's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, Vec<String>>,
}

/// A widget as written by a client (and in the dashboard's YAML): a KPI by key or an SQL query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetSpec {
    /// A KPI's key; exactly one of `kpi` and `sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kpi: Option<String>,
    /// One read-only query over the lake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    pub kind: WidgetKind,
    pub title: String,
    #[serde(default)]
    pub config: WidgetConfig,
    /// Grid column (0..=11) and row of the top-left corner; width 1..=12 and height 1..=12 in cells.
    #[serde(default)]
    pub x: i16,
    #[serde(default)]
    pub y: i16,
    #[serde(default = "default_w")]
    pub w: i16,
    #[serde(default = "default_h")]
    pub h: i16,
}

fn default_w() -> i16 {
    4
}
fn default_h() -> i16 {
    3
}

/// A named date range relative to today, or explicit dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RangePreset {
    Last7Days,
    Last30Days,
    Last90Days,
    Last12Months,
    ThisMonth,
    ThisQuarter,
    ThisYear,
    /// Everything.
    All,
}

/// A dashboard's global filters (its defaults; a viewer may override them per request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardFilters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangePreset>,
    /// First day (inclusive); with `until`, instead of `range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    /// Day after the last (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub territory: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment: Vec<String>,
}

/// A dashboard as written by a client (and its YAML form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardSpec {
    /// Stable identifier for dashboards-as-code (`^[a-z][a-z0-9_]{1,60}$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Visible to everyone in the tenant (else to its owner and admins).
    #[serde(default)]
    pub is_shared: bool,
    /// The role whose users open it first (admin only; one per role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_for_role: Option<String>,
    #[serde(default)]
    pub filters: DashboardFilters,
    #[serde(default)]
    pub widgets: Vec<WidgetSpec>,
}

const MAX_WIDGETS: usize = 40;
const MAX_TITLE: usize = 120;
const ROLES: [&str; 6] = ["admin", "manager", "sales_rep", "analyst", "support_agent", "read_only"];

fn is_key(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|c| c.is_ascii_lowercase())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && (2..=61).contains(&s.len())
}

impl WidgetSpec {
    /// Problems with this widget, fields prefixed by `at` (`widgets[2]`). `kpis` resolves keys.
    pub fn problems(&self, at: &str, kpi: Option<&KpiDefinition>) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut bad = |f: &str, m: String| out.push(FieldError { field: format!("{at}{f}"), message: m });
        if self.title.trim().is_empty() || self.title.chars().count() > MAX_TITLE {
            bad("title", format!("1 to {MAX_TITLE} characters"));
        }
        if !(0..=11).contains(&self.x) {
            bad("x", "a grid column 0..=11".into());
        }
        if !(0..=999).contains(&self.y) {
            bad("y", "a grid row 0..=999".into());
        }
        if !(1..=12).contains(&self.w) || self.x + self.w > 12 {
            bad("w", "1..=12 cells, within the 12-column grid".into());
        }
        if !(1..=12).contains(&self.h) {
            bad("h", "1..=12 cells".into());
        }
        match (&self.kpi, &self.sql) {
            (Some(_), Some(_)) | (None, None) => bad("kpi", "exactly one of kpi and sql".into()),
            (Some(key), None) => match kpi {
                None => bad("kpi", format!("no KPI {key:?}")),
                Some(k) => {
                    let dims: Vec<&str> = k.dimensions.iter().map(|d| d.name.as_str()).collect();
                    for (i, g) in self.config.group_by.iter().enumerate() {
                        if !dims.contains(&g.as_str()) {
                            bad(&format!("config.group_by[{i}]"), format!("{key} has no dimension {g:?}"));
                        }
                    }
                    let groups = self.config.group_by.len();
                    let series = k.time.is_some() && self.config.grain != Some(Grain::Total);
                    let shape = match self.kind {
                        WidgetKind::Tile if groups > 0 => Some("a tile shows one number: no group_by"),
                        WidgetKind::Line if !series => {
                            Some("a line needs a KPI with time and a grain other than total")
                        }
                        WidgetKind::StackedBar if groups != 1 => Some("a stacked bar needs exactly one group_by"),
                        WidgetKind::Funnel | WidgetKind::Pie if groups != 1 => {
                            Some("a funnel or pie needs exactly one group_by")
                        }
                        WidgetKind::Heatmap if groups + usize::from(series) != 2 => {
                            Some("a heat map needs two keys: a time series and one group_by, or two group_by")
                        }
                        _ => None,
                    };
                    if let Some(m) = shape {
                        bad("kind", m.into());
                    }
                }
            },
            (None, Some(sql)) => {
                if sql.trim().is_empty() || sql.len() > 20_000 {
                    bad("sql", "one query, 1 to 20000 characters".into());
                }
                if self.config != WidgetConfig::default() {
                    bad("config", "grain, group_by and filters apply to KPI widgets only".into());
                }
            }
        }
        out
    }
}

impl DashboardSpec {
    /// Problems with the dashboard; `kpi` resolves a widget's KPI key.
    pub fn problems<'a>(&self, kpi: impl Fn(&str) -> Option<&'a KpiDefinition>) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut bad = |f: &str, m: String| out.push(FieldError { field: f.to_owned(), message: m });
        if let Some(k) = &self.key
            && !is_key(k)
        {
            bad("key", "2 to 61 characters: a lower-case letter, then letters, digits or _".into());
        }
        if self.name.trim().is_empty() || self.name.chars().count() > MAX_TITLE {
            bad("name", format!("1 to {MAX_TITLE} characters"));
        }
        if let Some(r) = &self.default_for_role
            && !ROLES.contains(&r.as_str())
        {
            bad("default_for_role", format!("one of {}", ROLES.join(", ")));
        }
        let f = &self.filters;
        if f.range.is_some() && (f.from.is_some() || f.until.is_some()) {
            bad("filters.range", "either a range or from/until, not both".into());
        }
        if let (Some(a), Some(b)) = (f.from, f.until)
            && a >= b
        {
            bad("filters.until", format!("must be after from ({a})"));
        }
        if self.widgets.len() > MAX_WIDGETS {
            bad("widgets", format!("at most {MAX_WIDGETS}"));
        }
        for (i, w) in self.widgets.iter().enumerate() {
            let k = w.kpi.as_deref().and_then(&kpi);
            out.extend(w.problems(&format!("widgets[{i}]."), k));
        }
        out
    }
}

/// The viewer's filters for one request (each overrides the dashboard's default when given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewFilters {
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    pub territory: Option<Vec<String>>,
    pub owner: Option<Vec<String>>,
    pub segment: Option<Vec<String>>,
}

/// The date range `[from, until)` a preset means on `today` (`None` ends: unbounded).
pub fn resolve_range(preset: RangePreset, today: NaiveDate) -> (Option<NaiveDate>, Option<NaiveDate>) {
    let tomorrow = today + Duration::days(1);
    let month_start = today.with_day(1).unwrap_or(today);
    let quarter_start = NaiveDate::from_ymd_opt(today.year(), (today.month0() / 3) * 3 + 1, 1).unwrap_or(month_start);
    let year_start = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(month_start);
    match preset {
        RangePreset::Last7Days => (Some(tomorrow - Duration::days(7)), Some(tomorrow)),
        RangePreset::Last30Days => (Some(tomorrow - Duration::days(30)), Some(tomorrow)),
        RangePreset::Last90Days => (Some(tomorrow - Duration::days(90)), Some(tomorrow)),
        RangePreset::Last12Months => (month_start.checked_sub_months(Months::new(11)), Some(tomorrow)),
        RangePreset::ThisMonth => (Some(month_start), Some(tomorrow)),
        RangePreset::ThisQuarter => (Some(quarter_start), Some(tomorrow)),
        RangePreset::ThisYear => (Some(year_start), Some(tomorrow)),
        RangePreset::All => (None, None),
    }
}

/// The filters in force: the viewer's over the dashboard's defaults.
pub fn effective(defaults: &DashboardFilters, view: &ViewFilters, today: NaiveDate) -> DashboardFilters {
    let (mut from, mut until) = match defaults.range {
        Some(p) => resolve_range(p, today),
        None => (defaults.from, defaults.until),
    };
    if view.from.is_some() || view.until.is_some() {
        (from, until) = (view.from, view.until);
    }
    DashboardFilters {
        range: None,
        from,
        until,
        territory: view.territory.clone().unwrap_or_else(|| defaults.territory.clone()),
        owner: view.owner.clone().unwrap_or_else(|| defaults.owner.clone()),
        segment: view.segment.clone().unwrap_or_else(|| defaults.segment.clone()),
    }
}

/// The KPI query a widget asks for under the filters in force.
pub fn widget_query(config: &WidgetConfig, filters: &DashboardFilters, kind: WidgetKind) -> KpiQuery {
    let mut f = config.filters.clone();
    for (name, values) in [("territory", &filters.territory), ("owner", &filters.owner), ("segment", &filters.segment)]
    {
        if !values.is_empty() {
            f.entry(name.to_owned()).or_insert_with(|| values.clone());
        }
    }
    let grain = match kind {
        WidgetKind::Tile | WidgetKind::Funnel | WidgetKind::Pie => Some(Grain::Total),
        _ => config.grain,
    };
    KpiQuery { from: filters.from, until: filters.until, grain, group_by: config.group_by.clone(), filters: f }
}

/// One widget's data.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WidgetData {
    #[serde(flatten)]
    pub table: Option<Table>,
    /// A tile's value over the period just before the range (same length), for its delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<f64>,
    /// Filters this widget's KPI has no dimension for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// Why this widget has no data (its query failed); the rest of the dashboard is unaffected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Served from the cache (the lake has not moved since it was computed).
    pub cached: bool,
}

impl WidgetData {
    /// A widget that shows `why` instead of data.
    pub fn unavailable(why: String) -> Self {
        WidgetData { table: None, previous: None, ignored: Vec::new(), error: Some(why), cached: false }
    }

    fn failed(e: &Error) -> Self {
        match e {
            // Ours, not the viewer's: logged by the caller, not shown.
            Error::Lake(_) | Error::Db(_) | Error::Corrupt(_) | Error::Query(QueryError::Internal(_)) => {
                Self::unavailable("the data cannot be read right now".into())
            }
            e => Self::unavailable(e.to_string()),
        }
    }
}

/// The first numeric cell of a one-row result.
fn scalar(t: &Table) -> Option<f64> {
    t.rows.first()?.iter().rev().find_map(serde_json::Value::as_f64)
}

/// Computes one widget for `viewer` under `filters`.
pub async fn widget_data(
    engine: &Engine,
    viewer: &Viewer,
    kind: WidgetKind,
    kpi: Option<&KpiDefinition>,
    sql: Option<&str>,
    config: &WidgetConfig,
    filters: &DashboardFilters,
) -> WidgetData {
    let run = async {
        match (kpi, sql) {
            (Some(k), _) => {
                let q = widget_query(config, filters, kind);
                let (compiled, answer) = engine.run_kpi(viewer, k, &q).await?;
                let mut previous = None;
                if kind == WidgetKind::Tile
                    && k.time.is_some()
                    && let (Some(from), Some(until)) = (q.from, q.until)
                {
                    let len = until - from;
                    let before = KpiQuery { from: Some(from - len), until: Some(from), ..q.clone() };
                    let (_, prev) = engine.run_kpi(viewer, k, &before).await?;
                    previous = scalar(&prev.table);
                }
                Ok(WidgetData {
                    table: Some((*answer.table).clone()),
                    previous,
                    ignored: compiled.ignored,
                    error: None,
                    cached: answer.cached,
                })
            }
            (None, Some(sql)) => {
                let answer = engine.run_sql(viewer, sql).await?;
                Ok(WidgetData {
                    table: Some((*answer.table).clone()),
                    previous: None,
                    ignored: Vec::new(),
                    error: None,
                    cached: answer.cached,
                })
            }
            (None, None) => Err(Error::Corrupt("a widget without a KPI or SQL".into())),
        }
    };
    run.await.unwrap_or_else(|e: Error| {
        tracing::warn!(error = %orbas_oltp::Chain(&e), "a dashboard widget failed");
        WidgetData::failed(&e)
    })
}

/// Every dashboard filter's values must be short strings.
pub fn check_view(view: &ViewFilters) -> Result<()> {
    let mut problems = Vec::new();
    for (name, values) in [("territory", &view.territory), ("owner", &view.owner), ("segment", &view.segment)] {
        if let Some(v) = values
            && (v.len() > 200 || v.iter().any(|s| s.len() > 200))
        {
            problems.push(FieldError { field: name.into(), message: "at most 200 values of 200 characters".into() });
        }
    }
    if let (Some(a), Some(b)) = (view.from, view.until)
        && a >= b
    {
        problems.push(FieldError { field: "until".into(), message: format!("must be after from ({a})") });
    }
    if problems.is_empty() { Ok(()) } else { Err(Error::Invalid(problems)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn presets_end_today_inclusive() {
        let today = day(2026, 11, 18);
        assert_eq!(resolve_range(RangePreset::Last7Days, today), (Some(day(2026, 11, 12)), Some(day(2026, 11, 19))));
        assert_eq!(resolve_range(RangePreset::ThisQuarter, today), (Some(day(2026, 10, 1)), Some(day(2026, 11, 19))));
        assert_eq!(resolve_range(RangePreset::Last12Months, today), (Some(day(2025, 12, 1)), Some(day(2026, 11, 19))));
        assert_eq!(resolve_range(RangePreset::ThisYear, today).0, Some(day(2026, 1, 1)));
        assert_eq!(resolve_range(RangePreset::All, today), (None, None));
    }

    #[test]
    fn the_viewers_filters_override_the_dashboards() {
        let defaults = DashboardFilters {
            range: Some(RangePreset::ThisMonth),
            owner: vec!["a".into()],
            segment: vec!["smb".into()],
            ..DashboardFilters::default()
        };
        let view = ViewFilters { owner: Some(vec!["b".into()]), ..ViewFilters::default() };
        let e = effective(&defaults, &view, day(2026, 3, 10));
        assert_eq!((e.from, e.until), (Some(day(2026, 3, 1)), Some(day(2026, 3, 11))));
        assert_eq!((e.owner, e.segment), (vec!["b".to_owned()], vec!["smb".to_owned()]));
        let dated = ViewFilters { from: Some(day(2025, 1, 1)), until: Some(day(2025, 2, 1)), ..view };
        assert_eq!(effective(&defaults, &dated, day(2026, 3, 10)).from, Some(day(2025, 1, 1)));
    }

    #[test]
    fn widget_shapes_fit_their_kind() {
        let kpis = crate::standard::kpis();
        let find = |k: &str| kpis.iter().find(|d| d.key == k);
        let widget = |kpi: &str, kind: WidgetKind, group_by: &[&str]| WidgetSpec {
            kpi: Some(kpi.into()),
            sql: None,
            kind,
            title: "t".into(),
            config: WidgetConfig { group_by: group_by.iter().map(|s| (*s).to_owned()).collect(), ..Default::default() },
            x: 0,
            y: 0,
            w: 4,
            h: 3,
        };
        let fields = |w: &WidgetSpec| -> Vec<String> {
            w.problems("", w.kpi.as_deref().and_then(find)).into_iter().map(|p| p.field).collect()
        };
        assert!(fields(&widget("bookings", WidgetKind::Line, &[])).is_empty());
        assert!(fields(&widget("win_rate", WidgetKind::Heatmap, &["owner"])).is_empty());
        assert_eq!(fields(&widget("bookings", WidgetKind::Tile, &["kind"])), ["kind"]);
        assert_eq!(fields(&widget("open_pipeline", WidgetKind::Line, &[])), ["kind"]);
        assert_eq!(fields(&widget("bookings", WidgetKind::Funnel, &["owner"])), ["config.group_by[0]"]);
        assert_eq!(fields(&widget("bookings", WidgetKind::Pie, &[])), ["kind"]);
        assert_eq!(fields(&widget("nope", WidgetKind::Bar, &[])), ["kpi"]);
        let both = WidgetSpec { sql: Some("SELECT 1".into()), ..widget("bookings", WidgetKind::Bar, &[]) };
        assert_eq!(fields(&both), ["kpi"]);
        let off_grid = WidgetSpec { x: 10, w: 4, ..widget("bookings", WidgetKind::Bar, &[]) };
        assert_eq!(fields(&off_grid), ["w"]);
    }

    #[test]
    fn the_dashboards_filters_reach_the_kpi_query_unless_the_widget_fixes_them() {
        let filters = DashboardFilters {
            from: Some(day(2026, 1, 1)),
            until: Some(day(2026, 4, 1)),
            owner: vec!["u1".into()],
            territory: vec!["t1".into()],
            ..DashboardFilters::default()
        };
        let config = WidgetConfig {
            grain: Some(Grain::Week),
            filters: BTreeMap::from([("owner".to_owned(), vec!["u2".to_owned()])]),
            ..WidgetConfig::default()
        };
        let q = widget_query(&config, &filters, WidgetKind::Line);
        assert_eq!(q.grain, Some(Grain::Week));
        assert_eq!(q.filters["owner"], ["u2"]);
        assert_eq!(q.filters["territory"], ["t1"]);
        assert_eq!(widget_query(&config, &filters, WidgetKind::Tile).grain, Some(Grain::Total));
    }
}
