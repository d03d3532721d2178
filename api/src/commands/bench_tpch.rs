//! `orbas bench tpch`: TPC-H on our engine vs DuckDB over the same Parquet files, in one run.
//!
//! The data comes from `tpchgen-cli` (the Rust TPC-H generator, PyPI wheel in the benchmark venv),
//! one Parquet file per table, generated once into `--data-dir`. The 22 queries (`tpch/qNN.sql`, the
//! specification's text with its validation parameters; Q15's view as a CTE) run unchanged on both:
//!
//! - **Ours**: a session configured like the product's SQL sessions (`warehouse::sql::Lake::context`:
//!   one partition per core, a memory pool), the files registered as Parquet tables.
//! - **Peer**: DuckDB (the venv's `duckdb`, the same thread count) over `read_parquet` of the same files.
//!
//! Each query runs `--runs` times per engine (best and median reported; a markdown table, or JSON with
//! `--json`); the answers are compared cell by cell (numbers to 1e-6 relative), and where the query has
//! an ORDER BY the rows must come in the same order of its columns (ties in either order); a difference
//! fails the command.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use deltalake::datafusion::prelude::SessionContext;
use orbas_warehouse::sql::{Lake, Limits};

use super::bench_kpi::{best, duckdb, geometric_mean, median, same_answers, texts};
use crate::cli::BenchTpchArgs;

const TABLES: [&str; 8] = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"];

const QUERIES: [&str; 22] = [
    include_str!("tpch/q01.sql"),
    include_str!("tpch/q02.sql"),
    include_str!("tpch/q03.sql"),
    include_str!("tpch/q04.sql"),
    include_str!("tpch/q05.sql"),
    include_str!("tpch/q06.sql"),
    include_str!("tpch/q07.sql"),
    include_str!("tpch/q08.sql"),
    include_str!("tpch/q09.sql"),
    include_str!("tpch/q10.sql"),
    include_str!("tpch/q11.sql"),
    include_str!("tpch/q12.sql"),
    include_str!("tpch/q13.sql"),
    include_str!("tpch/q14.sql"),
    include_str!("tpch/q15.sql"),
    include_str!("tpch/q16.sql"),
    include_str!("tpch/q17.sql"),
    include_str!("tpch/q18.sql"),
    include_str!("tpch/q19.sql"),
    include_str!("tpch/q20.sql"),
    include_str!("tpch/q21.sql"),
    include_str!("tpch/q22.sql"),
];

/// One query's answer and times on our engine.
struct Ours {
    columns: Vec<String>,
    times: Vec<f64>,
    rows: Vec<Vec<Option<String>>>,
}

pub async fn run(args: &BenchTpchArgs) -> anyhow::Result<()> {
    if args.scale.is_nan() || args.scale <= 0.0 {
        bail!("--scale must be positive");
    }
    let selected = selection(args.queries.as_deref())?;
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(format!(".cache/orbas/tpch/sf{}", args.scale))
    });
    generate(&dir, args.scale).await?;
    let ctx = session(&dir, args).await?;
    let threads = ctx.state().config().target_partitions();
    let runs = args.runs.max(1);

    let mut ours = Vec::new();
    for &n in &selected {
        ours.push(time_ours(&ctx, n, runs).await?);
    }
    let tables: serde_json::Map<String, serde_json::Value> = TABLES
        .iter()
        .map(|t| ((*t).to_owned(), serde_json::json!([dir.join(format!("{t}.parquet")).display().to_string()])))
        .collect();
    let spec = serde_json::json!({
        "threads": threads,
        "runs": runs,
        "tables": tables,
        "views": [],
        "queries": selected.iter().map(|n| [format!("q{n}"), QUERIES[n - 1].to_owned()]).collect::<Vec<_>>(),
    });
    let peer = duckdb(&spec).await?;

    let outcomes: Vec<serde_json::Value> =
        selected.iter().zip(&ours).map(|(&n, o)| outcome(n, o, &peer["queries"][format!("q{n}")])).collect();
    let setup = Setup {
        scale: args.scale,
        dir: &dir,
        threads,
        runs,
        duckdb: peer["version"].as_str().unwrap_or("?"),
        options: &args.datafusion_option,
    };
    if args.json {
        report_json(&setup, &outcomes)?;
    } else {
        report_markdown(&setup, &outcomes);
    }
    let mismatches = outcomes.iter().filter(|o| o["agree"] != true).count();
    if mismatches > 0 {
        bail!("{mismatches} queries answered differently on the two engines");
    }
    Ok(())
}

/// Our engine's session, configured like the product's, with the tables and `--datafusion-option`s.
async fn session(dir: &Path, args: &BenchTpchArgs) -> anyhow::Result<SessionContext> {
    let limits = Limits { timeout: Duration::from_secs(3600), memory_bytes: args.memory_mib.saturating_mul(1 << 20) };
    let ctx = Lake::context(limits)?;
    for t in TABLES {
        let file = dir.join(format!("{t}.parquet"));
        ctx.register_parquet(t, &file.display().to_string(), Default::default()).await?;
    }
    for option in &args.datafusion_option {
        let (key, value) = option.split_once('=').context("--datafusion-option takes key=value")?;
        let key = key.trim();
        if !key.starts_with("datafusion.") || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            bail!("--datafusion-option: {key} is not a DataFusion option");
        }
        let value = value.trim().replace('\'', "''");
        ctx.sql(&format!("SET {key} = '{value}'")).await?.collect().await?;
    }
    Ok(ctx)
}

/// Runs query `n` `runs` times on our engine (planning and execution timed, as DuckDB's side is).
async fn time_ours(ctx: &SessionContext, n: usize, runs: u64) -> anyhow::Result<Ours> {
    let sql = QUERIES[n - 1];
    let mut ours = Ours { columns: Vec::new(), times: Vec::new(), rows: Vec::new() };
    for _ in 0..runs {
        let started = Instant::now();
        let df = ctx.sql(sql).await.with_context(|| format!("Q{n}"))?;
        let columns = df.schema().fields().iter().map(|f| f.name().clone()).collect();
        let batches = df.collect().await.with_context(|| format!("Q{n}"))?;
        ours.times.push(started.elapsed().as_secs_f64() * 1000.0);
        ours.columns = columns;
        ours.rows = texts(&batches)?;
    }
    eprintln!("ours Q{n}: {:.0} ms", best(&ours.times));
    Ok(ours)
}

/// One query's line of the report: both engines' times and whether the answers agree.
fn outcome(n: usize, ours: &Ours, peer: &serde_json::Value) -> serde_json::Value {
    let peer_times: Vec<f64> =
        peer["ms"].as_array().map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect()).unwrap_or_default();
    let peer_rows: Vec<Vec<Option<String>>> = serde_json::from_value(peer["rows"].clone()).unwrap_or_default();
    let keys = order_keys(QUERIES[n - 1], &ours.columns);
    let agree = same_answers(&ours.rows, &peer_rows).and_then(|()| same_order(&ours.rows, &peer_rows, &keys));
    if let Err(why) = &agree {
        eprintln!("Q{n}: answers differ: {why}");
    }
    let (ob, pb) = (best(&ours.times), best(&peer_times));
    serde_json::json!({
        "query": format!("Q{n}"),
        "rows": ours.rows.len(),
        "duckdb_rows": peer_rows.len(),
        "ours_best_ms": ob,
        "ours_median_ms": median(&ours.times),
        "duckdb_best_ms": pb,
        "duckdb_median_ms": median(&peer_times),
        "ratio": ob / pb.max(1e-9),
        "order_checked_on": keys.iter().filter_map(|&k| ours.columns.get(k)).collect::<Vec<_>>(),
        "agree": agree.is_ok(),
        "difference": agree.err(),
    })
}

/// What the run was: printed above the table, and the header of the JSON report.
struct Setup<'a> {
    scale: f64,
    dir: &'a Path,
    threads: usize,
    runs: u64,
    duckdb: &'a str,
    options: &'a [String],
}

impl Setup<'_> {
    fn options(&self) -> String {
        if self.options.is_empty() { "defaults".to_owned() } else { self.options.join(", ") }
    }
}

fn ms(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Geometric mean of the ratios and the sums of the best times (ours, DuckDB's).
fn summary(outcomes: &[serde_json::Value]) -> (f64, f64, f64) {
    let ratios: Vec<f64> = outcomes.iter().map(|o| ms(&o["ratio"])).collect();
    let ours = outcomes.iter().map(|o| ms(&o["ours_best_ms"])).sum();
    let peer = outcomes.iter().map(|o| ms(&o["duckdb_best_ms"])).sum();
    (geometric_mean(&ratios), ours, peer)
}

fn report_markdown(setup: &Setup<'_>, outcomes: &[serde_json::Value]) {
    println!("## TPC-H SF{}: our engine vs DuckDB {}\n", setup.scale, setup.duckdb);
    println!(
        "{} runs each, best and median; {} threads for both engines; data: {}",
        setup.runs,
        setup.threads,
        setup.dir.display()
    );
    println!("our DataFusion options: {}", setup.options());
    println!("answers compared cell by cell (numbers to 1e-6 relative), rows in ORDER BY order\n");
    println!(
        "| query | rows | ours best ms | ours median ms | DuckDB best ms | DuckDB median ms | ours / DuckDB | answers |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for o in outcomes {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}× | {} |",
            o["query"].as_str().unwrap_or("?"),
            o["rows"],
            ms(&o["ours_best_ms"]),
            ms(&o["ours_median_ms"]),
            ms(&o["duckdb_best_ms"]),
            ms(&o["duckdb_median_ms"]),
            ms(&o["ratio"]),
            if o["agree"] == true { "agree" } else { "DIFFER" }
        );
    }
    let (geo, ours, peer) = summary(outcomes);
    println!(
        "\ngeometric mean ours / DuckDB (best times): {geo:.2}× (target ≤ 1.0×: {}); sum of best times {ours:.0} ms vs {peer:.0} ms",
        if geo <= 1.0 { "met" } else { "NOT met" }
    );
}

fn report_json(setup: &Setup<'_>, outcomes: &[serde_json::Value]) -> anyhow::Result<()> {
    let (geo, ours, peer) = summary(outcomes);
    let doc = serde_json::json!({
        "benchmark": "tpch",
        "scale": setup.scale,
        "data_dir": setup.dir.display().to_string(),
        "threads": setup.threads,
        "runs": setup.runs,
        "duckdb_version": setup.duckdb,
        "datafusion_options": setup.options,
        "queries": outcomes,
        "geometric_mean": geo,
        "sum_best_ms": { "ours": ours, "duckdb": peer },
        "target": 1.0,
        "target_met": geo <= 1.0,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

/// The output columns (by position) the statement's final, top-level ORDER BY sorts on, as far as
/// its items name output columns (by name or position): the check stops at the first expression.
/// Empty when there is no such ORDER BY. Subqueries, CTEs and window clauses are skipped.
fn order_keys(sql: &str, columns: &[String]) -> Vec<usize> {
    let flat = top_level(sql).to_lowercase().replace(',', " , ").replace(';', " ; ");
    let tokens: Vec<&str> = flat.split_whitespace().collect();
    let Some(at) = tokens.windows(2).rposition(|w| w == ["order", "by"]) else { return Vec::new() };
    let clause = tokens[at + 2..].iter().take_while(|t| !matches!(**t, "limit" | "offset" | "fetch" | ";"));
    let clause: Vec<&str> = clause.copied().collect();
    let mut keys = Vec::new();
    for item in clause.split(|t| *t == ",") {
        let mut item = item.to_vec();
        if item.len() >= 2 && item[item.len() - 2] == "nulls" {
            item.truncate(item.len() - 2);
        }
        if item.last().is_some_and(|t| *t == "asc" || *t == "desc") {
            item.pop();
        }
        let [name] = item[..] else { break };
        let key = match name.parse::<usize>() {
            Ok(position) => position.checked_sub(1).filter(|&k| k < columns.len()),
            Err(_) => {
                let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
                columns.iter().position(|c| c.eq_ignore_ascii_case(name))
            }
        };
        let Some(key) = key else { break };
        keys.push(key);
    }
    keys
}

/// `sql` with comments and string literals blanked and everything inside parentheses dropped (the
/// parentheses kept), so only the outermost statement's words remain.
fn top_level(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                out.push(' ');
            }
            '\'' => {
                while let Some(c) = chars.next() {
                    if c == '\'' && chars.next_if_eq(&'\'').is_none() {
                        break;
                    }
                }
                out.push_str(if depth == 0 { " '' " } else { "" });
            }
            '(' => {
                if depth == 0 {
                    out.push('(');
                }
                depth += 1;
            }
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    out.push(')');
                }
            }
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether both answers list their rows in the same order of the `keys` columns (the ORDER BY's):
/// rows that tie on them may come in either order. Row counts are `same_answers`' to compare.
fn same_order(a: &[Vec<Option<String>>], b: &[Vec<Option<String>>], keys: &[usize]) -> Result<(), String> {
    let project = |row: &[Option<String>]| -> Vec<Option<String>> {
        keys.iter().map(|&k| row.get(k).cloned().flatten()).collect()
    };
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let (kx, ky) = (project(x), project(y));
        if same_answers(std::slice::from_ref(&kx), std::slice::from_ref(&ky)).is_err() {
            return Err(format!("row {i} out of order: ORDER BY columns {kx:?} vs {ky:?}"));
        }
    }
    Ok(())
}

/// The query numbers asked for (`1,6,14`), all 22 when none.
fn selection(arg: Option<&str>) -> anyhow::Result<Vec<usize>> {
    let Some(list) = arg else { return Ok((1..=22).collect()) };
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let n: usize = part.trim_start_matches(['q', 'Q']).parse().with_context(|| format!("--queries: {part}"))?;
        if !(1..=22).contains(&n) {
            bail!("--queries: TPC-H has queries 1 to 22, not {n}");
        }
        out.push(n);
    }
    Ok(out)
}

/// Generates the tables with `tpchgen-cli` unless `dir` holds all of them.
async fn generate(dir: &Path, scale: f64) -> anyhow::Result<()> {
    if TABLES.iter().all(|t| dir.join(format!("{t}.parquet")).is_file()) {
        return Ok(());
    }
    let venv = super::venv();
    tokio::fs::create_dir_all(dir).await?;
    eprintln!("generating TPC-H SF{scale} into {}", dir.display());
    let out = tokio::process::Command::new(venv.join("bin/tpchgen-cli"))
        .args(["parquet", "-s", &scale.to_string(), "--output-dir"])
        .arg(dir)
        .output()
        .await
        .context("running tpchgen-cli from the venv (./scripts/setup.sh installs it)")?;
    if !out.status.success() {
        bail!("tpchgen-cli failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[&[&str]]) -> Vec<Vec<Option<String>>> {
        v.iter().map(|r| r.iter().map(|c| Some((*c).to_owned())).collect()).collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn order_keys_follow_the_outermost_order_by() {
        let q3 = names(&["l_orderkey", "revenue", "o_orderdate", "o_shippriority"]);
        assert_eq!(order_keys(QUERIES[2], &q3), vec![1, 2]);
        assert_eq!(order_keys(QUERIES[5], &names(&["revenue"])), Vec::<usize>::new(), "Q6 has no ORDER BY");
        let q13 = names(&["c_count", "custdist"]);
        assert_eq!(order_keys(QUERIES[12], &q13), vec![1, 0]);
        // Q15's CTE and Q2's subquery have no ORDER BY of their own to confuse it.
        assert_eq!(order_keys(QUERIES[14], &names(&["s_suppkey", "s_name"])), vec![0]);
        let cols = names(&["a", "b", "c"]);
        let sql = "select a, b, c from t -- order by c\n where x = ')order by b' order by 2 desc nulls last, t.a, sum(c), c limit 5";
        assert_eq!(order_keys(sql, &cols), vec![1, 0], "stops at the first expression");
        let sql = "select a, b, c from (select * from u order by c) s, w where b in (select 1 order by 1)";
        assert_eq!(order_keys(sql, &cols), Vec::<usize>::new());
        let sql = "select a, b, c, row_number() over (order by c) from t order by \"B\"";
        assert_eq!(order_keys(sql, &cols), vec![1]);
    }

    #[test]
    fn order_is_checked_on_the_keys_only() {
        let a = rows(&[&["x", "3"], &["y", "2"], &["z", "2"], &["w", "1"]]);
        let ties_swapped = rows(&[&["x", "3.0000000001"], &["z", "2"], &["y", "2"], &["w", "1"]]);
        assert_eq!(same_order(&a, &ties_swapped, &[1]), Ok(()));
        let reordered = rows(&[&["w", "1"], &["x", "3"], &["y", "2"], &["z", "2"]]);
        assert_eq!(same_answers(&a, &reordered), Ok(()), "same rows");
        assert!(same_order(&a, &reordered, &[1]).is_err(), "in another order");
        assert_eq!(same_order(&a, &reordered, &[]), Ok(()), "no ORDER BY, any order");
    }

    #[test]
    fn summary_of_outcomes() {
        let o = |r: f64, ours: f64, peer: f64| serde_json::json!({"ratio": r, "ours_best_ms": ours, "duckdb_best_ms": peer});
        let (geo, ours, peer) = summary(&[o(0.5, 10.0, 20.0), o(2.0, 40.0, 20.0)]);
        assert!((geo - 1.0).abs() < 1e-12);
        assert_eq!((ours, peer), (50.0, 40.0));
    }

    #[test]
    fn query_selection() {
        assert_eq!(selection(None).map(|v| v.len()).ok(), Some(22));
        assert_eq!(selection(Some("1, q6,Q14")).ok(), Some(vec![1, 6, 14]));
        assert!(selection(Some("23")).is_err());
        assert!(selection(Some("x")).is_err());
    }
}
