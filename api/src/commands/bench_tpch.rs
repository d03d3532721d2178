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
//! Each query runs `--runs` times per engine (best and median reported); the answers are compared cell
//! by cell (numbers to 1e-6 relative) and a difference fails the command.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
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

pub async fn run(args: &BenchTpchArgs) -> anyhow::Result<()> {
    if args.scale.is_nan() || args.scale <= 0.0 {
        bail!("--scale must be positive");
    }
    let selected = selection(args.queries.as_deref())?;
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(format!(".cache/orbas/tpch/sf{}", args.scale))
    });
    generate(&dir, args.scale).await?;

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
    let threads = ctx.state().config().target_partitions();

    let mut ours = Vec::new();
    for &n in &selected {
        let sql = QUERIES[n - 1];
        let mut times = Vec::new();
        let mut rows = Vec::new();
        for _ in 0..args.runs.max(1) {
            let started = Instant::now();
            let batches = ctx
                .sql(sql)
                .await
                .with_context(|| format!("Q{n}"))?
                .collect()
                .await
                .with_context(|| format!("Q{n}"))?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            rows = texts(&batches)?;
        }
        eprintln!("ours Q{n}: {:.0} ms", best(&times));
        ours.push((times, rows));
    }

    let tables: serde_json::Map<String, serde_json::Value> = TABLES
        .iter()
        .map(|t| ((*t).to_owned(), serde_json::json!([dir.join(format!("{t}.parquet")).display().to_string()])))
        .collect();
    let spec = serde_json::json!({
        "threads": threads,
        "runs": args.runs.max(1),
        "tables": tables,
        "views": [],
        "queries": selected.iter().map(|n| [format!("q{n}"), QUERIES[n - 1].to_owned()]).collect::<Vec<_>>(),
    });
    let peer = duckdb(&spec).await?;

    println!("## TPC-H SF{}: our engine vs DuckDB {}\n", args.scale, peer["version"].as_str().unwrap_or("?"));
    println!("{} runs each, best and median; {threads} threads for both engines; data: {}", args.runs, dir.display());
    println!(
        "our DataFusion options: {}\n",
        if args.datafusion_option.is_empty() { "defaults".to_owned() } else { args.datafusion_option.join(", ") }
    );
    println!(
        "| query | rows | ours best ms | ours median ms | DuckDB best ms | DuckDB median ms | ours / DuckDB | answers |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    let mut ratios = Vec::new();
    let mut mismatches = 0;
    for (&n, (times, rows)) in selected.iter().zip(&ours) {
        let p = &peer["queries"][format!("q{n}")];
        let peer_times: Vec<f64> =
            p["ms"].as_array().map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect()).unwrap_or_default();
        let peer_rows: Vec<Vec<Option<String>>> = serde_json::from_value(p["rows"].clone()).unwrap_or_default();
        let agree = same_answers(rows, &peer_rows);
        if let Err(why) = &agree {
            mismatches += 1;
            eprintln!("Q{n}: answers differ: {why}");
        }
        let (ob, om, pb, pm) = (best(times), median(times), best(&peer_times), median(&peer_times));
        let ratio = ob / pb.max(1e-9);
        ratios.push(ratio);
        println!(
            "| Q{n} | {} | {ob:.0} | {om:.0} | {pb:.0} | {pm:.0} | {ratio:.2}× | {} |",
            rows.len(),
            if agree.is_ok() { "agree" } else { "DIFFER" }
        );
    }
    let geo = geometric_mean(&ratios);
    let (total_ours, total_peer): (f64, f64) = selected
        .iter()
        .zip(&ours)
        .map(|(n, (t, _))| {
            let p = &peer["queries"][format!("q{n}")]["ms"];
            let pt: Vec<f64> =
                p.as_array().map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect()).unwrap_or_default();
            (best(t), best(&pt))
        })
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    println!(
        "\ngeometric mean ours / DuckDB (best times): {geo:.2}× (target ≤ 1.0×: {}); sum of best times {total_ours:.0} ms vs {total_peer:.0} ms",
        if geo <= 1.0 { "met" } else { "NOT met" }
    );
    if mismatches > 0 {
        bail!("{mismatches} queries answered differently on the two engines");
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
    let venv = std::env::var_os("ORBAS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/orbas/venv"));
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

    #[test]
    fn query_selection() {
        assert_eq!(selection(None).map(|v| v.len()).ok(), Some(22));
        assert_eq!(selection(Some("1, q6,Q14")).ok(), Some(vec![1, 6, 14]));
        assert!(selection(Some("23")).is_err());
        assert!(selection(Some("x")).is_err());
    }
}
