//! `orbas bench chaos`: the reliability run of docs/RELIABILITY.md, in one process as orchestrator.
//!
//! It owns a private Postgres cluster (random port, temporary directory, restartable in place), a
//! tansu broker, the API server (in this process, as `orbas serve` builds it, over an unprivileged
//! pool so row-level security applies) and the pipeline's two services as real child processes of
//! this binary (`orbas pipeline cdc`, `orbas pipeline sink`), so they can be killed with SIGKILL. Then:
//!
//! 1. **Burst**: `--rows` accounts created (every tenth also renamed) through the HTTP API by
//!    `--clients` concurrent clients with `Idempotency-Key` and retries ([`burst`]), while the CDC and
//!    the sink are SIGKILLed alternately `--kills` times and Postgres is restarted `--pg-restarts`
//!    times, at seeded random points of the burst ([`services`]).
//! 2. **Reconciliation**: once the sink has caught up, every published table in Postgres against its
//!    silver Delta table: rows, missing / duplicated / extra keys, checksum ([`reconcile`]); and the
//!    API's own ledger: every acknowledged create exists once in Postgres.
//! 3. **Pooled tenants**: `--requests` reads by the admins of `--tenants` tenants over the shared
//!    pool, ~10 % cancelled mid-flight; foreign rows in any response are counted ([`tenants`]).
//! 4. **schemathesis** over the whole OpenAPI document; the server's 5xx are counted ([`fuzz`]).
//!
//! It prints a Markdown section with the figures, the date, the machine and the command, and exits
//! non-zero when an invariant is violated (keeping the run's directory, with the services' logs).

mod burst;
mod fuzz;
mod pg;
mod reconcile;
mod services;
mod tenants;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use orbas_oltp::{db, seed};
use orbas_pipeline::broker::{Broker, BrokerOptions};
use rand::Rng as _;
use rand::distr::Alphanumeric;
use secrecy::SecretString;
use sqlx::PgPool;
use tracing::info;

use self::burst::{Api, BurstReport, Login};
use self::fuzz::FuzzReport;
use self::reconcile::TableCheck;
use self::services::{ChaosReport, Schedule, Services};
use self::tenants::IsolationReport;
use super::bench_cdc::wait_sql;
use super::bench_seed::fresh_database;
use crate::cli::BenchChaosArgs;
use crate::server::{Extras, Server};

const DATABASE: &str = "orbas_chaos";
const APP_ROLE: &str = "orbas_chaos_app";
/// Seed data size: small, the run is about the burst; every tenant still gets rows in every table.
const SEED_SCALE: f64 = 0.01;
/// Tenants whose admins write the burst.
const BURST_TENANTS: usize = 4;
/// Connections of the API's pool: few, so cancelled requests' connections are reused across tenants.
const API_POOL: u32 = 10;

pub async fn run(args: &BenchChaosArgs) -> anyhow::Result<()> {
    if args.rows == 0 || args.tenants < 2 || args.clients == 0 {
        bail!("--rows and --clients must be positive and --tenants at least 2");
    }
    let date = chrono::Utc::now();
    let run_dir = tempfile::Builder::new().prefix("orbas-chaos-").tempdir()?;
    let (lake, logs) = (run_dir.path().join("lake"), run_dir.path().join("logs"));
    std::fs::create_dir_all(&lake)?;
    std::fs::create_dir_all(&logs)?;
    let lake_url = url::Url::from_directory_path(&lake).map_err(|()| anyhow::anyhow!("lake path"))?;

    let pg = pg::Pg::start().await?;
    let url = fresh_database(&pg.url("postgres"), DATABASE).await?;
    let admin = db::connect(&url, 4).await?;
    info!(tenants = args.tenants, "seeding");
    seed::load(&admin, &seed::SeedConfig::new(args.tenants, SEED_SCALE, args.seed)?).await?;
    let logins = logins(&admin).await?;
    let app_password: String = rand::rng().sample_iter(Alphanumeric).take(24).map(char::from).collect();
    db::provision_app_role(&admin, APP_ROLE, &app_password).await?;
    let app_pool = db::connect(&pg.url_as(APP_ROLE, &app_password, DATABASE), API_POOL).await?;
    let broker = Broker::start(BrokerOptions::default()).context("starting the tansu broker (./scripts/setup.sh)")?;
    let services = Services::start(&url, &broker.bootstrap(), &lake, &logs)?;
    wait_sql(&admin, "SELECT completed_at IS NOT NULL FROM orbas.cdc_snapshots", Duration::from_secs(600))
        .await
        .context("the CDC's initial snapshot")?;

    let renderer = orbas_dashboards::render::Renderer::from_env()?.map(Arc::new);
    let index = orbas_search::SearchIndex::open(&run_dir.path().join("search"), orbas_search::Access::Writer, None)?;
    let extras = Extras {
        lake: Some(lake_url),
        search: Some(Arc::new(index)).into(),
        secrets: None,
        default_llm: None,
        renderer: renderer.clone(),
    };
    let secret: String = rand::rng().sample_iter(Alphanumeric).take(48).map(char::from).collect();
    let server =
        Server::build_with("127.0.0.1:0".parse()?, app_pool.clone(), &SecretString::from(secret), extras).await?;
    let api = Api::new(format!("http://{}", server.local_addr()?))?;
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    // 1. The burst under kill -9 and Postgres restarts.
    let progress = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let schedule = Schedule::new(args.seed, args.kills, args.pg_restarts);
    let chaos = tokio::spawn(services::run(services, pg, schedule, progress.clone(), args.rows, finished.clone()));
    info!(rows = args.rows, "burst");
    let writers = &logins[..BURST_TENANTS.min(logins.len())];
    let burst = burst::run(&api, writers, args.rows, args.clients, args.seed, progress).await;
    finished.store(true, Ordering::Release);
    let (services, pg, chaos) = chaos.await??;
    let burst = burst?;

    // 2. Catch up and reconcile.
    let ledger = ledger(&admin, &burst, args.seed).await?;
    info!("waiting for the sink to catch up");
    let caught_up = Instant::now();
    let checks = settle(&admin, &lake, Duration::from_secs(600 + args.rows / 200)).await?;
    let catch_up = caught_up.elapsed();
    services.stop().await;

    // 3. Pooled tenants with cancelled requests; 4. schemathesis.
    info!(tenants = logins.len(), requests = args.requests, "pooled load");
    let isolation = tenants::run(&api, &admin, &logins, args.requests, args.seed).await?;
    let fuzz = if args.no_schemathesis {
        FuzzReport::Skipped("--no-schemathesis".into())
    } else {
        info!("schemathesis");
        let token = api.login(&logins[0]).await?;
        fuzz::run(&api.base, &token, &super::venv(), renderer.is_some(), args.seed).await?
    };

    let _ = stop_server.send(());
    let _ = served.await;
    if let Some(r) = renderer {
        r.close().await;
    }
    app_pool.close().await;
    admin.close().await;
    pg.stop().await?;
    drop(broker);

    let figures = Figures { args, date, burst, chaos, catch_up, ledger, checks, isolation, fuzz };
    figures.print();
    let violations = figures.violations();
    if violations.is_empty() {
        return Ok(());
    }
    let kept = run_dir.keep();
    bail!("invariants violated: {}; the run's logs are in {}", violations.join("; "), kept.join("logs").display())
}

/// Every tenant's first active admin, by slug.
async fn logins(admin: &PgPool) -> anyhow::Result<Vec<Login>> {
    let rows: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (t.slug) t.id, t.slug, u.email
           FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id
          WHERE r.key = 'admin' AND u.status = 'active'
          ORDER BY t.slug, u.id",
    )
    .fetch_all(admin)
    .await?;
    Ok(rows.into_iter().map(|(tenant, slug, email)| Login { tenant, slug, email }).collect())
}

/// The API's ledger against Postgres: every acknowledged create present, none created twice.
#[derive(Debug, Default)]
struct Ledger {
    acknowledged: usize,
    in_postgres: usize,
    lost: usize,
    duplicated: usize,
}

async fn ledger(admin: &PgPool, burst: &BurstReport, seed: u64) -> anyhow::Result<Ledger> {
    let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as("SELECT id, domain FROM accounts WHERE domain LIKE '%' || $1")
        .bind(burst::domain_suffix(seed))
        .fetch_all(admin)
        .await?;
    let ids: std::collections::HashSet<uuid::Uuid> = rows.iter().map(|r| r.0).collect();
    let domains: std::collections::HashSet<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    Ok(Ledger {
        acknowledged: burst.created.len(),
        in_postgres: rows.len(),
        lost: burst.created.iter().filter(|(_, id)| !ids.contains(id)).count(),
        duplicated: rows.len() - domains.len(),
    })
}

/// Reconciles until every table agrees, the answer stops changing, or `timeout` passes.
async fn settle(admin: &PgPool, lake: &Path, timeout: Duration) -> anyhow::Result<Vec<TableCheck>> {
    let deadline = Instant::now() + timeout;
    let (mut last, mut unchanged) = (Vec::new(), 0);
    loop {
        let checks = match reconcile::all(admin, lake).await {
            Ok(c) => c,
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "reconciliation failed; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if checks.iter().all(TableCheck::ok) || Instant::now() > deadline || unchanged >= 6 {
            return Ok(checks);
        }
        unchanged = if checks == last { unchanged + 1 } else { 0 };
        last = checks;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Everything the run measured.
struct Figures<'a> {
    args: &'a BenchChaosArgs,
    date: chrono::DateTime<chrono::Utc>,
    burst: BurstReport,
    chaos: ChaosReport,
    catch_up: Duration,
    ledger: Ledger,
    checks: Vec<TableCheck>,
    isolation: IsolationReport,
    fuzz: FuzzReport,
}

impl Figures<'_> {
    fn lost(&self) -> usize {
        self.ledger.lost + self.checks.iter().map(|c| c.missing).sum::<usize>()
    }

    fn duplicated(&self) -> usize {
        self.ledger.duplicated + self.checks.iter().map(|c| c.duplicated).sum::<usize>()
    }

    fn checksums_equal(&self) -> bool {
        self.checks.iter().all(|c| c.pg_checksum == c.silver_checksum)
    }

    fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let extra: usize = self.checks.iter().map(|c| c.extra + c.differing).sum();
        for (bad, what) in [
            (self.lost() > 0, format!("{} lost", self.lost())),
            (self.duplicated() > 0, format!("{} duplicated", self.duplicated())),
            (!self.checksums_equal(), "checksums differ".to_owned()),
            (extra > 0, format!("{extra} rows extra or differing in silver")),
            (self.isolation.foreign_rows > 0, format!("{} foreign rows", self.isolation.foreign_rows)),
            (self.isolation.server_errors > 0, format!("{} 5xx in the pooled load", self.isolation.server_errors)),
        ] {
            if bad {
                v.push(what);
            }
        }
        if let FuzzReport::Ran { server_errors, passed, .. } = &self.fuzz
            && (*server_errors > 0 || !passed)
        {
            v.push(format!("schemathesis: {server_errors} 5xx"));
        }
        v
    }

    fn print(&self) {
        let a = self.args;
        println!("## Reliability run (`orbas bench chaos`)\n");
        println!("- date: {}", self.date.format("%Y-%m-%d %H:%M UTC"));
        println!("- machine: {}", machine());
        println!("- build: {}", if cfg!(debug_assertions) { "debug" } else { "release" });
        println!(
            "- command: `orbas bench chaos --rows {} --kills {} --pg-restarts {} --tenants {} --requests {} --clients {} \
             --seed {}{}`\n",
            a.rows,
            a.kills,
            a.pg_restarts,
            a.tenants,
            a.requests,
            a.clients,
            a.seed,
            if a.no_schemathesis { " --no-schemathesis" } else { "" }
        );
        self.print_burst();
        self.print_reconciliation();
        self.print_isolation();
        self.print_verdict();
    }

    fn print_burst(&self) {
        let (b, c) = (&self.burst, &self.chaos);
        let secs = b.elapsed.as_secs_f64();
        println!("### Burst through the API under kill -9 and Postgres restarts\n");
        println!("| figure | value |\n|---|---:|");
        println!("| accounts created through `POST /v1/accounts` (acknowledged) | {} |", b.created.len());
        println!("| of them renamed through `PATCH` | {} |", b.updated);
        println!("| concurrent clients, writing tenants | {}, {} |", self.args.clients, BURST_TENANTS);
        println!("| burst duration | {secs:.1} s ({:.0} creates/s) |", b.created.len() as f64 / secs.max(1e-9));
        println!("| SIGKILL of `orbas pipeline cdc` / `orbas pipeline sink` | {} / {} |", c.cdc_kills, c.sink_kills);
        println!("| Postgres restarts (longest away) | {} ({:.1} s) |", c.pg_restarts, c.pg_down_max.as_secs_f64());
        println!("| services that exited by themselves (Postgres gone) and were restarted | {} |", c.exits);
        println!("| client retries (connection error, 429, 5xx, 409 in progress) | {} |", b.retries);
        println!(
            "| abandoned keys settled by lookup / re-sent under a new key | {} / {} |",
            b.found_by_lookup, b.new_keys
        );
        println!(
            "| keys refused with a 401 (token expired mid-request), re-sent under a new key | {} |",
            b.refused_keys
        );
        println!("| sink caught up and reconciled after the burst | {:.1} s |\n", self.catch_up.as_secs_f64());
        let l = &self.ledger;
        println!(
            "API ledger: {} creates acknowledged, {} such accounts in Postgres, {} lost, {} created twice.\n",
            l.acknowledged, l.in_postgres, l.lost, l.duplicated
        );
    }

    fn print_reconciliation(&self) {
        println!("### Reconciliation Postgres ↔ silver (every published table)\n");
        println!(
            "| table | Postgres rows | silver rows | missing | duplicated | extra | differing | checksum | columns |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---|---:|");
        for c in self.checks.iter().filter(|c| c.pg_rows + c.silver_rows > 0) {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.table,
                c.pg_rows,
                c.silver_rows,
                c.missing,
                c.duplicated,
                c.extra,
                c.differing,
                if c.pg_checksum == c.silver_checksum { format!("{:016x} =", c.pg_checksum) } else { "≠".into() },
                c.columns
            );
        }
        let sum = |f: fn(&TableCheck) -> usize| self.checks.iter().map(f).sum::<usize>();
        println!(
            "| **{} tables** | {} | {} | {} | {} | {} | {} | {} | |\n",
            self.checks.len(),
            sum(|c| c.pg_rows),
            sum(|c| c.silver_rows),
            sum(|c| c.missing),
            sum(|c| c.duplicated),
            sum(|c| c.extra),
            sum(|c| c.differing),
            if self.checksums_equal() { "all equal" } else { "NOT equal" }
        );
        let skipped: Vec<String> =
            self.checks.iter().flat_map(|c| c.skipped.iter().map(move |s| format!("{}.{s}", c.table))).collect();
        if !skipped.is_empty() {
            println!("Columns outside the checksum (no common text form): {}.\n", skipped.join(", "));
        }
    }

    fn print_isolation(&self) {
        let i = &self.isolation;
        println!("### Pooled tenants, cancelled requests\n");
        println!("| figure | value |\n|---|---:|");
        println!("| tenants (admins reading concurrently, 32 in flight) | {} |", i.tenants);
        println!(
            "| requests / completed / cancelled mid-flight | {} / {} / {} |",
            i.requests, i.completed, i.cancelled
        );
        println!("| rows checked | {} |", i.rows_checked);
        println!("| foreign rows | {} |", i.foreign_rows);
        println!(
            "| another tenant's record by id: refused / answered | {} / {} |",
            i.probes_refused, i.probes_answered
        );
        println!("| unexpected statuses / 5xx | {} / {} |\n", i.unexpected, i.server_errors);
        match &self.fuzz {
            FuzzReport::Skipped(why) => println!("### schemathesis\n\nskipped: {why}\n"),
            FuzzReport::Ran { generated, server_errors, passed, tail } => {
                println!("### schemathesis over the whole OpenAPI document\n");
                println!("{generated} generated cases; the server answered {server_errors} with a 5xx; ");
                println!("schemathesis {}.\n", if *passed { "passed" } else { "reported failures" });
                if !passed {
                    println!("```\n{tail}\n```\n");
                }
            }
        }
    }

    fn print_verdict(&self) {
        println!("### Verdict\n");
        println!("- lost: {}", self.lost());
        println!("- duplicated: {}", self.duplicated());
        println!(
            "- checksums: {} ({} tables)",
            if self.checksums_equal() { "equal" } else { "DIFFER" },
            self.checks.len()
        );
        println!("- foreign rows: {}", self.isolation.foreign_rows);
        match &self.fuzz {
            FuzzReport::Skipped(_) => println!("- schemathesis 5xx: skipped"),
            FuzzReport::Ran { server_errors, .. } => println!("- schemathesis 5xx: {server_errors}"),
        }
        let v = self.violations();
        println!("- result: {}", if v.is_empty() { "all invariants hold".to_owned() } else { v.join("; ") });
    }
}

/// CPU model, cores and RAM of this machine (Linux).
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    format!("{cpu}, {cores} cores, {:.1} GiB RAM", kib / 1024.0 / 1024.0)
}
