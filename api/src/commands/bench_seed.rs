//! `orbas bench seed`: our generator + COPY loader against the plain peer — `psql \copy` of the very
//! same CSV into the same schema — in one run, on one cluster. Prints a Markdown table for
//! docs/BENCHMARKS.md.

use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use orbas_oltp::cluster::{ClusterOptions, PgCluster};
use orbas_oltp::{db, seed};
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::cli::BenchSeedArgs;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: &BenchSeedArgs) -> anyhow::Result<()> {
    let (cluster, base_url) = bench_server(settings, false).await?;
    let cfg = seed::SeedConfig::new(args.tenants, args.scale, args.seed)?;
    let ours_url = fresh_database(&base_url, "orbas_bench_ours").await?;
    let peer_url = fresh_database(&base_url, "orbas_bench_psql").await?;

    let ours = db::connect(&ours_url, 4).await?;
    let report = seed::load(&ours, &cfg).await?;
    ours.close().await;

    let dir = tempfile::tempdir()?;
    let tables = seed::write_csv(&cfg, dir.path())?;
    let peer_rows: u64 = tables.iter().map(|t| t.rows).sum();
    let peer_time = psql_copy(&peer_url, &tables).await?;
    verify_same_rows(&peer_url, &tables, report.total_rows).await?;

    print_markdown(args, report.total_rows, report.elapsed, peer_rows, peer_time);
    if let Some(c) = cluster {
        c.stop().await?;
    }
    Ok(())
}

/// The server a benchmark runs on: `DATABASE_URL`'s, else a private cluster started for the run
/// (returned so the caller stops it); with the URL of a database to connect to first.
/// With `socket`, a cluster started here is reached over its Unix-domain socket instead of loopback TCP.
pub(super) async fn bench_server(settings: &Settings, socket: bool) -> anyhow::Result<(Option<PgCluster>, String)> {
    match &settings.database.url {
        Some(u) => Ok((None, u.expose_secret().to_owned())),
        None => {
            let c = PgCluster::start(ClusterOptions::default()).await?;
            let url = if socket { c.socket_url("postgres") } else { c.url("postgres") };
            Ok((Some(c), url))
        }
    }
}

/// Drops and re-creates `name` next to `base_url`'s database, migrated; returns its URL.
pub(super) async fn fresh_database(base_url: &str, name: &str) -> anyhow::Result<String> {
    let pool = db::connect(base_url, 1).await?;
    for stmt in [format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), format!("CREATE DATABASE {name}")] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(stmt)).execute(&pool).await?;
    }
    pool.close().await;
    let url = replace_database(base_url, name)?;
    let p = db::connect(&url, 1).await?;
    db::migrate(&p).await?;
    p.close().await;
    Ok(url)
}

fn replace_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (head, query) = url.split_once('?').map_or((url, None), |(h, q)| (h, Some(q)));
    let (server, _) = head.rsplit_once('/').context("database URL has no /database part")?;
    Ok(match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    })
}

/// Loads every CSV with `psql \copy` in one transaction, in the generator's load order.
async fn psql_copy(url: &str, tables: &[seed::CsvTable]) -> anyhow::Result<Duration> {
    let mut script = String::from("\\set ON_ERROR_STOP on\nBEGIN;\n");
    for t in tables {
        writeln!(
            script,
            "\\copy {} ({}) FROM '{}' WITH (FORMAT csv)",
            t.table,
            t.columns.join(", "),
            t.path.display()
        )?;
    }
    script.push_str("COMMIT;\n");
    let script_file = tempfile::NamedTempFile::new()?;
    std::fs::write(script_file.path(), script)?;
    let started = Instant::now();
    let out = tokio::process::Command::new("psql")
        .arg(url)
        .args(["-q", "-X", "-f"])
        .arg(script_file.path())
        .stdout(Stdio::null())
        .output()
        .await
        .context("running psql (install postgresql-client)")?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(elapsed)
}

/// Counts what psql loaded, table by table, so both loaders are known to have loaded the same data.
async fn verify_same_rows(url: &str, tables: &[seed::CsvTable], expected: u64) -> anyhow::Result<()> {
    let pool: PgPool = db::connect(url, 1).await?;
    let mut counted = 0i64;
    for t in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {}", t.table)))
            .fetch_one(&pool)
            .await?;
        counted += n;
    }
    pool.close().await;
    if u64::try_from(counted).ok() != Some(expected) {
        bail!("psql loaded {counted} rows, orbas seed loaded {expected}: the runs are not comparable");
    }
    Ok(())
}

fn print_markdown(args: &BenchSeedArgs, ours_rows: u64, ours: Duration, peer_rows: u64, peer: Duration) {
    let rate = |rows: u64, d: Duration| rows as f64 / d.as_secs_f64().max(1e-9);
    let (r_ours, r_peer) = (rate(ours_rows, ours), rate(peer_rows, peer));
    println!(
        "| loader (scale {}, {} tenants, seed {}) | rows | seconds | rows/s |",
        args.scale, args.tenants, args.seed
    );
    println!("|---|---:|---:|---:|");
    println!("| `orbas seed` (generate + COPY, streamed) | {ours_rows} | {:.2} | {r_ours:.0} |", ours.as_secs_f64());
    println!("| `psql \\copy` of the same CSV (load only) | {peer_rows} | {:.2} | {r_peer:.0} |", peer.as_secs_f64());
    println!("\nratio orbas/psql: {:.2}", r_ours / r_peer.max(1e-9));
}
