use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;

use super::*;
use crate::standard;

fn fields(e: Error) -> Vec<String> {
    match e {
        Error::Invalid(problems) => problems.into_iter().map(|p| p.field).collect(),
        other => vec![format!("not a field error: {other}")],
    }
}

fn bookings() -> KpiDefinition {
    standard::kpis().into_iter().find(|k| k.key == "bookings").expect("bookings is standard")
}

#[test]
fn the_standard_set_is_valid_complete_and_round_trips_through_yaml() {
    let kpis = standard::kpis();
    for k in &kpis {
        assert_eq!(k.problems(), Vec::new(), "{}", k.key);
        assert_eq!(k.status, Status::Approved);
    }
    let keys: BTreeSet<&str> = kpis.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys.len(), kpis.len(), "unique keys");
    for wanted in [
        "bookings",
        "pipeline_coverage",
        "win_rate",
        "average_sales_cycle",
        "average_deal_size",
        "mrr",
        "revenue_churn",
        "net_revenue_retention",
        "resolution_sla",
        "csat",
        "forecast_vs_quota",
    ] {
        assert!(keys.contains(wanted), "the issue's standard KPI {wanted}");
    }
    let yaml = to_yaml(&kpis).expect("to YAML");
    assert!(yaml.starts_with("kpis:\n"), "{yaml}");
    assert_eq!(from_yaml(&yaml).expect("back from YAML"), kpis);
}

#[test]
fn yaml_problems_name_their_place() {
    let text = "kpis:
  - key: ok_kpi
    name: Fine
    source: gold.daily_bookings
    measure: SUM(bookings)
    time: day
  - key: Bad Key
    name: ''
    source: 'SELECT 1; DROP TABLE accounts'
    measure: 'SUM(x); DELETE FROM accounts'
    time: 'day; --'
    filter: 'a = 1 OR'
    dimensions:
      - {name: owner, column: owner_id}
      - {name: owner, column: 'owner\"id'}
  - key: ok_kpi
    name: Twice
    source: opportunities
    measure: COUNT(*)
";
    let mut got = fields(from_yaml(text).expect_err("invalid"));
    got.sort();
    assert_eq!(
        got,
        [
            "kpis[1].dimensions[1].column",
            "kpis[1].dimensions[1].name",
            "kpis[1].filter",
            "kpis[1].key",
            "kpis[1].measure",
            "kpis[1].name",
            "kpis[1].source",
            "kpis[1].time",
            "kpis[2].key",
        ]
    );
    let unknown =
        from_yaml("kpis:\n  - key: a_b\n    name: A\n    source: t\n    measure: COUNT(*)\n    colour: red\n");
    assert!(matches!(unknown, Err(Error::Yaml(_))), "unknown fields are refused: {unknown:?}");
    assert!(from_yaml("kpis: [").is_err());
}

#[test]
fn a_query_compiles_to_one_statement_with_its_buckets_dimensions_and_filters() {
    let k = bookings();
    let q = KpiQuery {
        from: NaiveDate::from_ymd_opt(2026, 1, 1),
        until: NaiveDate::from_ymd_opt(2026, 7, 1),
        grain: Some(Grain::Quarter),
        group_by: vec!["kind".into()],
        filters: BTreeMap::from([
            ("kind".to_owned(), vec!["new_business".to_owned(), "o'brien".to_owned()]),
            ("territory".to_owned(), vec!["emea".to_owned()]),
        ]),
    };
    let c = k.compile(&q).expect("compiles");
    assert_eq!(c.columns, ["period", "kind", "value"]);
    assert_eq!(c.ignored, ["territory"], "bookings has no territory");
    assert!(c.sql.contains("\"day\" >= DATE '2026-01-01' AND \"day\" < DATE '2026-07-01'"), "{}", c.sql);
    assert!(c.sql.contains("IN ('new_business', 'o''brien')"), "values are quoted literals: {}", c.sql);
    assert!(c.sql.contains("date_trunc('quarter', \"day\")"), "{}", c.sql);
    assert_eq!(Parser::parse_sql(&GenericDialect {}, &c.sql).map(|s| s.len()).ok(), Some(1), "{}", c.sql);

    let unknown = KpiQuery { group_by: vec!["owner".into()], ..KpiQuery::default() };
    assert_eq!(fields(k.compile(&unknown).expect_err("no owner")), ["group_by[0]"]);
    let backwards = KpiQuery { from: q.until, until: q.from, ..KpiQuery::default() };
    assert_eq!(fields(k.compile(&backwards).expect_err("backwards")), ["until"]);

    let pipeline = standard::kpis().into_iter().find(|k| k.key == "open_pipeline").expect("standard");
    let c = pipeline.compile(&KpiQuery { group_by: Vec::new(), ..q }).expect("compiles");
    assert_eq!(c.columns, ["value"], "no time: one value, no period");
    assert_eq!(c.ignored, ["from", "until", "grain", "kind", "territory"]);
}

/// Rows of a result as text, one line per row.
async fn run(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.expect("runs");
    let opts = FormatOptions::default().with_null("∅");
    let mut rows = Vec::new();
    for b in &batches {
        let formatters: Vec<_> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter")).collect();
        for r in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect::<Vec<_>>().join(" | "));
        }
    }
    rows
}

async fn lake() -> SessionContext {
    let ctx = SessionContext::new();
    for sql in [
        "CREATE SCHEMA gold",
        "CREATE TABLE gold.daily_bookings (day DATE, kind VARCHAR, deals_won BIGINT, bookings DECIMAL(38, 2), \
         unconverted_deals BIGINT)",
        "INSERT INTO gold.daily_bookings VALUES \
         (DATE '2026-01-05', 'new_business', 2, 100.00, 0), (DATE '2026-02-10', 'renewal', 1, 50.50, 0), \
         (DATE '2026-04-01', 'new_business', 3, 300.00, 1), (DATE '2026-06-30', 'new_business', 1, 10.00, 0), \
         (DATE '2025-12-31', 'new_business', 9, 999.00, 0)",
        "CREATE TABLE gold.mrr_monthly (month DATE, opening_mrr DECIMAL(38, 2), churned_mrr DECIMAL(38, 2), \
         closing_mrr DECIMAL(38, 2))",
        "INSERT INTO gold.mrr_monthly VALUES (DATE '2026-01-01', 100, 10, 120), (DATE '2026-02-01', 120, 0, 130), \
         (DATE '2026-03-01', 130, 13, 125), (DATE '2026-04-01', 125, 5, 140)",
    ] {
        ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.expect("setup");
    }
    ctx
}

fn standard_kpi(key: &str) -> KpiDefinition {
    standard::kpis().into_iter().find(|k| k.key == key).unwrap_or_else(|| panic!("{key} is standard"))
}

#[tokio::test]
async fn compiled_queries_give_the_right_numbers_on_datafusion() {
    let ctx = lake().await;
    let half = KpiQuery {
        from: NaiveDate::from_ymd_opt(2026, 1, 1),
        until: NaiveDate::from_ymd_opt(2026, 7, 1),
        grain: Some(Grain::Quarter),
        ..KpiQuery::default()
    };
    let sql = |key: &str, q: &KpiQuery| standard_kpi(key).compile(q).expect("compiles").sql;
    assert_eq!(run(&ctx, &sql("bookings", &half)).await, ["2026-01-01 | 150.50", "2026-04-01 | 310.00"]);

    // A filter and a breakdown; the value with a quote is just a value.
    let q = KpiQuery {
        group_by: vec!["kind".into()],
        filters: BTreeMap::from([("kind".to_owned(), vec!["new_business".to_owned(), "x') OR (1=1".to_owned()])]),
        grain: Some(Grain::Total),
        ..half.clone()
    };
    assert_eq!(run(&ctx, &sql("bookings", &q)).await, ["new_business | 410.00"]);
    let none = KpiQuery { filters: BTreeMap::from([("kind".to_owned(), Vec::new())]), ..q.clone() };
    assert!(run(&ctx, &sql("bookings", &none)).await.is_empty(), "an empty selection selects nothing");

    // A ratio re-aggregated from its parts: (300 + 10) / (3 - 1 + 1) in Q2, not a mean of daily ratios.
    let rounded = format!(
        "SELECT period, ROUND(CAST(value AS DOUBLE), 4) FROM ({}) ORDER BY period",
        sql("average_deal_size", &half)
    );
    assert_eq!(run(&ctx, &rounded).await, ["2026-01-01 | 50.1667", "2026-04-01 | 103.3333"]);

    // A stock at a coarser grain is its value at the bucket's last month, not the sum of its months.
    assert_eq!(run(&ctx, &sql("mrr", &half)).await, ["2026-01-01 | 125.00", "2026-04-01 | 140.00"]);
    let all = KpiQuery { grain: Some(Grain::Total), ..KpiQuery::default() };
    assert_eq!(run(&ctx, &sql("mrr", &all)).await, ["140.00"]);
    // A flow rate over the quarter: churned over opening, summed over its months.
    let churn = ctx.sql(&sql("revenue_churn", &half)).await.expect("plans").collect().await.expect("runs");
    let values: Vec<f64> = churn
        .iter()
        .flat_map(|b| b.column(1).as_primitive::<Float64Type>().iter().flatten().collect::<Vec<_>>())
        .collect();
    assert_eq!(values.len(), 2);
    assert!((values[0] - 23.0 / 350.0).abs() < 1e-12 && (values[1] - 5.0 / 125.0).abs() < 1e-12, "{values:?}");
    assert_eq!(churn[0].column(1).null_count(), 0);
}

#[tokio::test]
async fn a_drill_down_lists_the_rows_of_one_value() {
    let ctx = lake().await;
    let half = KpiQuery {
        from: NaiveDate::from_ymd_opt(2026, 1, 1),
        until: NaiveDate::from_ymd_opt(2026, 7, 1),
        grain: Some(Grain::Quarter),
        ..KpiQuery::default()
    };
    let kind = |v: Option<&str>| BTreeMap::from([("kind".to_owned(), v.map(str::to_owned))]);
    let drill = |key: &str, period: Option<&str>, values| {
        standard_kpi(key).drill_down(&half, period, &values, 100).expect("drills")
    };
    // Without a drill source of its own the KPI shows its source's rows: Q2's new business, newest first.
    let mut bookings = standard_kpi("bookings");
    bookings.drill = None;
    let sql = bookings.drill_down(&half, Some("2026-04-01"), &kind(Some("new_business")), 100).expect("drills").sql;
    let rows = run(&ctx, &format!("SELECT day, bookings FROM ({sql}) ORDER BY day DESC")).await;
    assert_eq!(rows, ["2026-06-30 | 10.00", "2026-04-01 | 300.00"]);
    // A value with a quote is a value; NULL matches NULL; an unknown dimension is a field error.
    let sql = bookings.drill_down(&half, Some("2026-04-01"), &kind(Some("x' OR '1'='1")), 100).expect("drills").sql;
    assert!(run(&ctx, &sql).await.is_empty());
    let sql = bookings.drill_down(&half, None, &kind(None), 100).expect("drills").sql;
    assert!(run(&ctx, &sql).await.is_empty(), "no row has a NULL kind");
    let err = bookings.drill_down(&half, None, &BTreeMap::from([("planet".to_owned(), None)]), 100).expect_err("no");
    assert_eq!(fields(err), ["values.planet"]);
    // A stock's value is its bucket's last month: so are its rows.
    let sql = drill("mrr", Some("2026-01-01"), BTreeMap::new()).sql;
    assert_eq!(run(&ctx, &format!("SELECT month, closing_mrr FROM ({sql})")).await, ["2026-03-01 | 125.00"]);
    // The standard KPIs drill into records.
    assert!(standard_kpi("bookings").drill_sql().contains("opportunity_id"));
}
