//! `orbas bench decisions`: decision latency — from a CRM write that changes a score to the updated
//! next-best actions visible in the CRM API — measured on the real binary as a rep would see it.
//!
//! The bench starts `orbas demo` as a child process on a fresh database (seeded, CDC into its own
//! broker, the lake sink, model training and the next-best-action loop, all as the demo runs them),
//! waits until the models are trained and the reps have "call this hot lead" actions, then per trial:
//!
//! 1. picks an open `hot_lead_untouched` action and logs in as the rep it belongs to;
//! 2. logs the call over `POST /v1/interactions` (the write; its response is the start instant);
//! 3. polls the rep's `GET /v1/me/recommendations` until the action has left the list, and at the
//!    same time the lake (the demo's silver `interaction_logs`) until the call has landed there.
//!
//! Reported side by side: write → call in the lake (CDC + Kafka + sink: the transport share) and
//! write → action gone from the rep's list (end to end, ours). A trial counts only when the action
//! left because it was resolved (`done`), not because another refresh pushed it off the list, and
//! only when it left after the call reached the lake (the decisions job reads the lake, so an action
//! gone earlier went for another reason, such as a retrained scorer no longer proposing it).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use orbas_oltp::db;
use orbas_warehouse::sql::{Lake, Limits};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use super::bench_seed::{bench_server, fresh_database};
use crate::cli::BenchDecisionsArgs;
use crate::settings::Settings;

const DATABASE: &str = "orbas_bench_decisions";
const PASSWORD: &str = "orbas-demo-password";
const TARGET_P95: Duration = Duration::from_secs(60);

pub async fn run(settings: &Settings, args: &BenchDecisionsArgs) -> anyhow::Result<()> {
    if args.trials == 0 {
        bail!("--trials must be positive");
    }
    let (cluster, base_url) = bench_server(settings, false).await?;
    let url = fresh_database(&base_url, DATABASE).await?;
    let admin = db::connect(&url, 2).await?;
    let (_temporary, data) = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            if std::fs::read_dir(dir)?.next().is_some() {
                bail!("--keep {}: the directory is not empty", dir.display());
            }
            (None, dir.clone())
        }
        None => {
            let t = tempfile::Builder::new().prefix("orbas-bench-decisions-").tempdir()?;
            let path = t.path().to_owned();
            (Some(t), path)
        }
    };
    let log_path = data.join("demo.log");
    let mut demo = Demo::start(&url, args, &data, &log_path).await?;
    let result = measure(&admin, &mut demo, args, &data).await;
    demo.stop().await;
    drop(cluster);
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(e.context(format!("the demo's log: {}", log_path.display()))),
    }
}

/// Scoring-model versions the demo's intelligence service trained (the seed's are dated weeks back).
async fn trained_models(admin: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM model_versions v JOIN ai_models m ON m.id = v.model_id
          WHERE m.task IN ('lead_score', 'deal_score', 'churn_score') AND v.created_at > pg_postmaster_start_time()",
    )
    .fetch_one(admin)
    .await?)
}

async fn measure(admin: &PgPool, demo: &mut Demo, args: &BenchDecisionsArgs, data: &Path) -> anyhow::Result<()> {
    let api = demo.api.clone();
    let models = args.tenants as usize * 3;
    eprintln!("bench decisions: demo up at {api}; waiting for {models} trained models and the first actions");
    let trained = Instant::now() + Duration::from_secs(3600);
    while trained_models(admin).await? < models as i64 {
        if Instant::now() > trained {
            bail!("the demo's models were not trained within an hour");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while open_hot_leads(admin).await? == 0 {
        if Instant::now() > deadline {
            bail!("no hot-lead actions 10 minutes after training");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let lake = Lake::new(super::pipeline::lake_url(&data.join("lake").display().to_string())?);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let poll = Duration::from_millis(args.poll_ms.max(10));
    let timeout = Duration::from_secs(args.timeout_secs);

    let (mut end_to_end, mut transport) = (Vec::new(), Vec::new());
    let (mut displaced, mut tried) = (0usize, Vec::new());
    let mut idle_since: Option<Instant> = None;
    while end_to_end.len() < args.trials as usize {
        if tried.len() >= args.trials as usize * 3 {
            bail!("only {} of {} trials resolved their action ({displaced} displaced)", end_to_end.len(), args.trials);
        }
        let Some(pick) = pick(admin, &tried).await? else {
            // Every hot lead has been called: report what was measured rather than wait for new ones.
            if idle_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(120) {
                if end_to_end.is_empty() {
                    bail!("no open hot-lead action left to answer");
                }
                eprintln!("bench decisions: no open hot-lead action left after {} trials", end_to_end.len());
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        idle_since = None;
        tried.push(pick.lead);
        let token = login(&http, &api, &pick.tenant_slug, &pick.email).await?;
        let (status, body) = call(
            http.post(format!("{api}/v1/interactions")).json(&json!({
                "kind": "call", "direction": "outbound", "lead_id": pick.lead,
                "subject": "Intro call (bench)", "duration_seconds": 600
            })),
            &token,
        )
        .await?;
        if status != 201 {
            bail!("logging the call answered {status}: {body}");
        }
        let written = Instant::now();
        let interaction = body["id"].as_str().context("the interaction's id")?.to_owned();
        let (gone, landed) = tokio::join!(
            async {
                loop {
                    let (status, list) =
                        call(http.get(format!("{api}/v1/me/recommendations?limit=200")), &token).await?;
                    if status != 200 {
                        bail!("listing the rep's actions answered {status}: {list}");
                    }
                    let present =
                        list.as_array().is_some_and(|l| l.iter().any(|r| r["id"] == json!(pick.recommendation)));
                    if !present {
                        return anyhow::Ok(written.elapsed());
                    }
                    if written.elapsed() > timeout {
                        bail!("the action {} was still listed after {timeout:?}", pick.recommendation);
                    }
                    tokio::time::sleep(poll).await;
                }
            },
            async {
                loop {
                    if in_lake(&lake, &pick.tenant_id, &interaction).await {
                        return Some(written.elapsed());
                    }
                    if written.elapsed() > timeout {
                        return None;
                    }
                    tokio::time::sleep(poll).await;
                }
            }
        );
        let gone = gone?;
        let status: String = sqlx::query_scalar("SELECT status FROM recommendations WHERE id = $1")
            .bind(pick.recommendation)
            .fetch_one(admin)
            .await?;
        if status != "done" {
            displaced += 1;
            eprintln!("bench decisions: action left the list as {status}, not resolved; not counted");
            continue;
        }
        // The decisions job reads the lake: an action gone before the call was there went for another
        // reason (a retrained scorer no longer proposing it, say), not because of the call.
        if let Some(l) = landed.filter(|l| gone < *l) {
            displaced += 1;
            eprintln!(
                "bench decisions: action left the list after {} ms, before the call reached the lake ({} ms); not counted",
                gone.as_millis(),
                l.as_millis()
            );
            continue;
        }
        eprintln!(
            "bench decisions: trial {}: in the lake after {} ms, off the rep's list after {} ms",
            end_to_end.len() + 1,
            landed.map_or("–".to_owned(), |d| d.as_millis().to_string()),
            gone.as_millis()
        );
        end_to_end.push(gone);
        if let Some(l) = landed {
            transport.push(l);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    end_to_end.sort_unstable();
    transport.sort_unstable();

    println!("## Decision latency: a logged call → the rep's next-best actions updated\n");
    println!(
        "`orbas demo` (--tenants {} --scale {} --seed {}) as a child process; {} trials, one at a time; \
         API and lake polled every {} ms; {} trials completed; {displaced} trial(s) whose action was displaced rather than resolved \
         were not counted\n",
        args.tenants,
        args.scale,
        args.seed,
        args.trials,
        args.poll_ms,
        end_to_end.len()
    );
    println!("| path | p50 ms | p95 ms | max ms | trials |");
    println!("|---|---:|---:|---:|---:|");
    for (name, samples) in [
        ("write → call in the lake (CDC + Kafka + sink)", &transport),
        ("write → action gone from the rep's list (ours, end to end)", &end_to_end),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            pct(samples, 0.50).as_millis(),
            pct(samples, 0.95).as_millis(),
            samples.last().copied().unwrap_or_default().as_millis(),
            samples.len()
        );
    }
    let p95 = pct(&end_to_end, 0.95);
    println!("\ntarget p95 ≤ {} s: {}", TARGET_P95.as_secs(), if p95 <= TARGET_P95 { "met" } else { "NOT met" });
    Ok(())
}

/// An open hot-lead action to answer, and who may see it.
struct Pick {
    recommendation: Uuid,
    lead: Uuid,
    email: String,
    tenant_slug: String,
    tenant_id: String,
}

async fn open_hot_leads(admin: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM recommendations WHERE kind = 'hot_lead_untouched' AND status = 'open'")
        .fetch_one(admin)
        .await?)
}

/// The best-scored open hot-lead action on a lead not tried yet.
async fn pick(admin: &PgPool, tried: &[Uuid]) -> anyhow::Result<Option<Pick>> {
    let row: Option<(Uuid, Uuid, String, String, Uuid)> = sqlx::query_as(
        "SELECT r.id, r.entity_id, u.email, t.slug, t.id FROM recommendations r
           JOIN users u ON u.id = r.user_id JOIN tenants t ON t.id = r.tenant_id
          WHERE r.kind = 'hot_lead_untouched' AND r.status = 'open' AND NOT (r.entity_id = ANY($1))
            AND u.status = 'active'
          ORDER BY r.score DESC, r.id LIMIT 1",
    )
    .bind(tried)
    .fetch_optional(admin)
    .await?;
    Ok(row.map(|(recommendation, lead, email, tenant_slug, tenant)| Pick {
        recommendation,
        lead,
        email,
        tenant_slug,
        tenant_id: tenant.to_string(),
    }))
}

async fn login(http: &reqwest::Client, api: &str, tenant: &str, email: &str) -> anyhow::Result<String> {
    let resp = http
        .post(format!("{api}/v1/auth/login"))
        .json(&json!({"tenant": tenant, "email": email, "password": PASSWORD}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if !status.is_success() {
        bail!("logging in as {email} answered {status}: {body}");
    }
    Ok(body["access_token"].as_str().context("an access token")?.to_owned())
}

async fn call(req: reqwest::RequestBuilder, token: &str) -> anyhow::Result<(u16, Value)> {
    let resp = req.bearer_auth(token).send().await?;
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Whether the tenant's silver `interaction_logs` holds `id` (read as `POST /v1/sql` would).
async fn in_lake(lake: &Lake, tenant: &str, id: &str) -> bool {
    let Ok(ctx) = lake.session(tenant, Limits::default()).await else { return false };
    // `id` is the UUID the API returned; checked before it is quoted.
    if Uuid::parse_str(id).is_err() {
        return false;
    }
    let Ok(df) = ctx.sql(&format!("SELECT count(*) FROM interaction_logs WHERE id = '{id}'")).await else {
        return false;
    };
    let Ok(batches) = df.collect().await else { return false };
    batches.first().is_some_and(|b| {
        matches!(
            deltalake::datafusion::common::ScalarValue::try_from_array(b.column(0), 0),
            Ok(deltalake::datafusion::common::ScalarValue::Int64(Some(n))) if n > 0
        )
    })
}

/// The `orbas demo` child process: its API address, its stdout lines, its log.
struct Demo {
    child: tokio::process::Child,
    api: String,
    /// Kept so the reader keeps draining the demo's stdout (a full pipe would block the demo).
    _lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Demo {
    async fn start(url: &str, args: &BenchDecisionsArgs, data: &Path, log: &Path) -> anyhow::Result<Demo> {
        let exe = std::env::current_exe().context("locating the orbas binary")?;
        let mut child = tokio::process::Command::new(exe)
            .args(["demo", "--tenants", &args.tenants.to_string(), "--scale", &args.scale.to_string()])
            .args(["--seed", &args.seed.to_string(), "--data-dir"])
            .arg(data)
            .env("DATABASE_URL", url)
            .env("ORBAS_HTTP_ADDR", "127.0.0.1:0")
            .env("ORBAS_SQL_ADDR", "127.0.0.1:0")
            .env_remove("KAFKA_BROKERS")
            .env_remove("ORBAS_APP_DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(log).context("the demo's log file")?)
            .kill_on_drop(true)
            .spawn()
            .context("starting orbas demo")?;
        let stdout = child.stdout.take().context("the demo's stdout")?;
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(1800);
        let api = loop {
            let line = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), lines.recv())
                .await
                .context("the demo did not come up in 30 minutes")?
                .context("the demo exited before it was up")?;
            if let Some(api) = line.trim_start().strip_prefix("API").map(str::trim)
                && api.starts_with("http://")
            {
                break api.to_owned();
            }
        };
        Ok(Demo { child, api, _lines: lines })
    }

    /// Stops the demo as Ctrl-C would (so it stops its broker too), killing it if it hangs.
    async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        if tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// The `q` quantile of sorted samples.
fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_durations() {
        let s: Vec<Duration> = (1..=20).map(Duration::from_secs).collect();
        assert_eq!(pct(&s, 0.5), Duration::from_secs(11));
        assert_eq!(pct(&s, 0.95), Duration::from_secs(19));
        assert_eq!(pct(&[], 0.95), Duration::ZERO);
    }
}
