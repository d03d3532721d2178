//! `orbas bench kpi`: the gold KPI suite on our engine vs DuckDB, on the same Parquet files, in one run.
//!
//! A private cluster gets `--tenants`/`--scale` of seeded CRM data, which the CDC service and the lake
//! sink bring into silver (durable tansu, as in the demo; not timed). Then every KPI query of
//! [`orbas_warehouse::gold::kpis`] — the queries a full gold refresh runs, over all tenants — is timed
//! `--runs` times:
//!
//! - **Ours**: DataFusion over the silver Delta tables through the Delta table provider, with the
//!   `cal` and `fx` views, exactly as the refresh runs them (default settings: one partition per core).
//! - **Peer**: DuckDB (the venv's `duckdb`, same thread count) with views over `read_parquet` of the
//!   very files of the same Delta versions, the same view and query text.
//!
//! The answers are compared cell by cell (numbers to 1e-6 relative); a mismatch fails the command.

use std::time::Instant;

use anyhow::{Context as _, bail};
use deltalake::arrow::array::{Array as _, RecordBatch};
use orbas_oltp::{db, seed};
use orbas_pipeline::cdc::CdcConfig;
use orbas_warehouse::gold::{self, Gold};
use orbas_warehouse::sink::{Sink, SinkConfig, table_url};

use super::bench_cdc::{Service, durable_broker, temp_lake};
use super::bench_seed::{bench_server, fresh_database};
use crate::cli::BenchKpiArgs;
use crate::settings::Settings;

const DATABASE: &str = "orbas_bench_kpi";

pub async fn run(settings: &Settings, args: &BenchKpiArgs) -> anyhow::Result<()> {
    let (cluster, base_url) = bench_server(settings, false).await?;
    let url = fresh_database(&base_url, DATABASE).await?;
    let pool = db::connect(&url, 4).await?;
    let report = seed::load(&pool, &seed::SeedConfig::new(args.tenants, args.scale, args.seed)?).await?;
    eprintln!("seeded {} tenants, {} rows", report.tenants.len(), report.total_rows);

    let (_broker_dir, broker) = durable_broker()?;
    let (_lake_dir, root) = temp_lake()?;
    let mut cdc_cfg = CdcConfig::new(&url, &broker.bootstrap())?;
    cdc_cfg.slot = "orbas_bench_kpi".into();
    let cdc = Service::start(cdc_cfg);
    let mut sink_cfg = SinkConfig::new(&url, &broker.bootstrap(), root.clone());
    sink_cfg.gold = None;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sink = tokio::spawn(async move { Sink::connect(sink_cfg).await?.run(stopped).await });
    let loading = Instant::now();
    for table in gold::sources() {
        let want: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM public.{table}")))
            .fetch_one(&pool)
            .await?;
        let silver = table_url(&root, "silver", "public", table)?;
        while orbas_warehouse::lake::row_count(&silver).await.ok().flatten() != Some(want) {
            if loading.elapsed().as_secs() > 1800 {
                bail!("silver {table} did not reach Postgres' {want} rows in 30 minutes");
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
    eprintln!("silver holds the KPI sources ({:.1} s)", loading.elapsed().as_secs_f64());
    let _ = stop.send(true);
    sink.await??;
    cdc.stop().await?;
    drop(cluster);

    // Ours.
    let mut gold = Gold::new(root);
    let ctx = gold.full_context().await?;
    let threads = ctx.state().config().target_partitions();
    // KPIs over tables the seed leaves empty and the lake has not got (next-best-action feedback)
    // are left out on both sides.
    let tables = gold.source_files()?;
    let kpis: Vec<_> = gold::kpis().into_iter().filter(|k| k.sources.iter().all(|s| tables.contains_key(s))).collect();
    let mut ours = Vec::new();
    for kpi in &kpis {
        let mut times = Vec::new();
        let mut rows = Vec::new();
        for _ in 0..args.runs.max(1) {
            let started = Instant::now();
            let batches = ctx.sql(&kpi.sql).await?.collect().await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            rows = texts(&batches)?;
        }
        ours.push((times, rows));
    }

    // The peer.
    let spec = serde_json::json!({
        "threads": threads,
        "runs": args.runs.max(1),
        "tables": tables,
        "views": [["cal", gold::CAL_VIEW], ["fx", gold::FX_VIEW]],
        "queries": kpis.iter().map(|k| [k.name, k.sql.as_str()]).collect::<Vec<_>>(),
    });
    let peer = duckdb(&spec).await?;

    println!("## KPI suite: our engine vs DuckDB {}\n", peer["version"].as_str().unwrap_or("?"));
    println!(
        "{} tenants, scale {}, seed {}; {} runs each, best and median; {threads} threads for both engines\n",
        args.tenants, args.scale, args.seed, args.runs
    );
    println!(
        "| query | rows | ours best ms | ours median ms | DuckDB best ms | DuckDB median ms | ours / DuckDB | answers |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    let mut ratios = Vec::new();
    let mut mismatches = 0;
    for (kpi, (times, rows)) in kpis.iter().zip(&ours) {
        let p = &peer["queries"][kpi.name];
        let peer_times: Vec<f64> =
            p["ms"].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
        let peer_rows: Vec<Vec<Option<String>>> = serde_json::from_value(p["rows"].clone()).unwrap_or_default();
        let agree = same_answers(rows, &peer_rows);
        if let Err(why) = &agree {
            mismatches += 1;
            eprintln!("{}: answers differ: {why}", kpi.name);
        }
        let (ob, om) = (best(times), median(times));
        let (pb, pm) = (best(&peer_times), median(&peer_times));
        let ratio = ob / pb.max(1e-9);
        ratios.push(ratio);
        println!(
            "| {} | {} | {ob:.1} | {om:.1} | {pb:.1} | {pm:.1} | {ratio:.2}× | {} |",
            kpi.name,
            rows.len(),
            if agree.is_ok() { "agree" } else { "DIFFER" }
        );
    }
    let geo = geometric_mean(&ratios);
    println!(
        "\ngeometric mean ours / DuckDB (best times): {geo:.2}× (target ≤ 1.0×: {})",
        if geo <= 1.0 { "met" } else { "NOT met" }
    );
    if mismatches > 0 {
        bail!("{mismatches} queries answered differently on the two engines");
    }
    Ok(())
}

/// Every row of `batches` as text cells (NULL as `None`).
pub(super) fn texts(batches: &[RecordBatch]) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    let mut out = Vec::new();
    for b in batches {
        let columns = b
            .columns()
            .iter()
            .map(|c| deltalake::arrow::compute::cast(c, &deltalake::arrow::datatypes::DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..b.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| {
                        let s = deltalake::arrow::array::AsArray::as_string::<i32>(c);
                        (!s.is_null(i)).then(|| s.value(i).to_owned())
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// A cell as a sort key and comparison value: numbers normalised, text as it is.
fn normal(cell: &Option<String>) -> String {
    match cell {
        None => "NULL".into(),
        Some(s) => match s.parse::<f64>() {
            Ok(v) => format!("{v:.6}"),
            Err(_) => s.clone(),
        },
    }
}

/// Whether two answers hold the same rows (in any order), numbers to 1e-6 relative.
pub(super) fn same_answers(a: &[Vec<Option<String>>], b: &[Vec<Option<String>>]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} rows vs {}", a.len(), b.len()));
    }
    let sorted = |rows: &[Vec<Option<String>>]| {
        let mut keyed: Vec<(Vec<String>, &Vec<Option<String>>)> =
            rows.iter().map(|r| (r.iter().map(normal).collect(), r)).collect();
        keyed.sort_by(|x, y| x.0.cmp(&y.0));
        keyed.into_iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()
    };
    for (i, (x, y)) in sorted(a).iter().zip(sorted(b).iter()).enumerate() {
        if x.len() != y.len() {
            return Err(format!("row {i}: {} columns vs {}", x.len(), y.len()));
        }
        for (j, (p, q)) in x.iter().zip(y).enumerate() {
            let equal = match (p, q) {
                (None, None) => true,
                (Some(p), Some(q)) => match (p.parse::<f64>(), q.parse::<f64>()) {
                    (Ok(u), Ok(v)) => (u - v).abs() <= 1e-6 * u.abs().max(v.abs()).max(1.0),
                    _ => p == q,
                },
                _ => false,
            };
            if !equal {
                return Err(format!("row {i} column {j}: {p:?} vs {q:?}"));
            }
        }
    }
    Ok(())
}

pub(super) fn best(times: &[f64]) -> f64 {
    times.iter().copied().fold(f64::INFINITY, f64::min)
}

pub(super) fn median(times: &[f64]) -> f64 {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    t.get(t.len() / 2).copied().unwrap_or(f64::NAN)
}

pub(super) fn geometric_mean(ratios: &[f64]) -> f64 {
    if ratios.is_empty() {
        return f64::NAN;
    }
    (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp()
}

/// Runs `scripts/bench/duckdb_queries.py` with the benchmark virtualenv's Python.
pub(super) async fn duckdb(spec: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
    use tokio::io::AsyncWriteExt as _;
    let venv = super::venv();
    let script = super::repo_file("scripts/bench/duckdb_queries.py");
    let mut child = tokio::process::Command::new(venv.join("bin/python"))
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running DuckDB from the venv (./scripts/setup.sh installs it)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(serde_json::to_string(spec)?.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!("DuckDB runner failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[&[Option<&str>]]) -> Vec<Vec<Option<String>>> {
        v.iter().map(|r| r.iter().map(|c| c.map(str::to_owned)).collect()).collect()
    }

    #[test]
    fn answers_compare_in_any_order_with_numeric_tolerance() {
        let a = rows(&[&[Some("t1"), Some("123.40"), None], &[Some("t0"), Some("0.3333333333"), Some("x")]]);
        let b = rows(&[&[Some("t0"), Some("0.33333333330001"), Some("x")], &[Some("t1"), Some("123.4"), None]]);
        assert_eq!(same_answers(&a, &b), Ok(()));
        let c = rows(&[&[Some("t0"), Some("0.34"), Some("x")], &[Some("t1"), Some("123.4"), None]]);
        assert!(same_answers(&a, &c).is_err());
        assert!(same_answers(&a, &c[..1]).is_err(), "row counts differ");
    }

    #[test]
    fn summaries() {
        assert_eq!(best(&[3.0, 1.0, 2.0]), 1.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert!((geometric_mean(&[0.5, 2.0]) - 1.0).abs() < 1e-12);
    }
}
