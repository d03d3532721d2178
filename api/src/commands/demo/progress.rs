//! The demo's long waits, each with a progress bar: seeding (rows COPYed), the CDC initial snapshot,
//! the lake catching up with Postgres (silver, then gold) and the first training of the scoring
//! models. Bars are drawn on stderr, and only when stdout is a terminal: logs, pipes and tests see the
//! plain result lines alone. Every wait ends early, with `None`, when the demo is asked to stop.

use std::future::Future;
use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use tokio::sync::watch;

/// Runs `step` unless a stop is asked first (then the step's future is dropped): `None` when stopped.
pub(super) async fn unless_stopped<T>(stop: &watch::Receiver<bool>, step: impl Future<Output = T>) -> Option<T> {
    let mut stop = stop.clone();
    tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => None,
        out = step => Some(out),
    }
}

fn bar(len: Option<u64>, template: &str) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar of rows for the seed: about `scale` million rows in all (the bar grows if there are more).
pub(super) fn seeding(scale: f64) -> ProgressBar {
    bar(
        Some((scale * 1_000_000.0).max(1.0) as u64),
        "{spinner} seeding [{bar:24}] {human_pos}/~{human_len} rows ({elapsed})",
    )
}

/// Adds `rows` to the seed's bar.
pub(super) fn seeded(bar: &ProgressBar, rows: u64) {
    bar.inc(rows);
    if bar.length().is_some_and(|len| bar.position() > len) {
        bar.set_length(bar.position());
    }
}

/// Waits for the initial snapshot to be acknowledged, then reports it.
pub(super) async fn wait_snapshot(admin: &PgPool) -> anyhow::Result<()> {
    let spinner = bar(None, "{spinner} change data capture: initial snapshot into Kafka ({elapsed})");
    for _ in 0..1200 {
        let done: Option<(i32, i64)> = sqlx::query_as(
            "SELECT tables, rows FROM orbas.cdc_snapshots WHERE slot_name = 'orbas_cdc' AND completed_at IS NOT NULL",
        )
        .fetch_optional(admin)
        .await?;
        if let Some((tables, rows)) = done {
            spinner.finish_and_clear();
            println!("change data capture: initial snapshot of {tables} tables ({rows} rows) is in Kafka; streaming");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    spinner.abandon();
    anyhow::bail!("the CDC initial snapshot did not finish in two minutes")
}

/// Waits until silver holds as many accounts as Postgres, then until gold counts every won deal.
pub(super) async fn wait_lake(admin: &PgPool, root: &std::path::Path) -> anyhow::Result<()> {
    let want: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts").fetch_one(admin).await?;
    let url = super::super::pipeline::lake_url(&root.join("silver/public/accounts").display().to_string())?;
    let landed =
        bar(Some(want.max(0) as u64), "{spinner} lake: silver accounts [{bar:24}] {human_pos}/{human_len} ({elapsed})");
    for _ in 0..600 {
        if let Ok(Some(got)) = orbas_warehouse::lake::row_count(&url).await {
            landed.set_position(got.max(0) as u64);
            if got == want {
                landed.finish_and_clear();
                println!(
                    "lake: silver accounts = {got} rows, as in Postgres (bronze and silver kept from the CDC topics)"
                );
                return wait_gold(admin, root).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    landed.abandon();
    anyhow::bail!("the lake did not catch up with Postgres (accounts) in two minutes")
}

/// Waits until the gold bookings count every won deal Postgres has, then reports it.
async fn wait_gold(admin: &PgPool, root: &std::path::Path) -> anyhow::Result<()> {
    let want: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opportunities WHERE status = 'won'").fetch_one(admin).await?;
    let url = super::super::pipeline::lake_url(&root.join("gold/kpi/daily_bookings").display().to_string())?;
    let spinner = bar(None, "{spinner} lake: gold KPI tables refreshing from silver ({elapsed})");
    for _ in 0..600 {
        if gold_won_deals(&url).await == Some(want) {
            spinner.finish_and_clear();
            println!(
                "lake: gold daily_bookings counts {want} won deals, as in Postgres (KPI tables refreshed from silver)"
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    spinner.abandon();
    anyhow::bail!("the gold KPI tables did not catch up with Postgres (won deals) in two minutes")
}

async fn gold_won_deals(url: &url::Url) -> Option<i64> {
    use deltalake::datafusion::common::ScalarValue;
    // Not opened before its first commit: delta-rs logs an ERROR for every open of a missing table.
    if !orbas_warehouse::lake::exists(url).await {
        return None;
    }
    let table = deltalake::open_table(url.clone()).await.ok()?;
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    ctx.register_table("t", table.table_provider().await.ok()?).ok()?;
    let batches = ctx.sql("SELECT CAST(sum(deals_won) AS BIGINT) FROM t").await.ok()?.collect().await.ok()?;
    match ScalarValue::try_from_array(batches.first()?.column(0), 0).ok()? {
        ScalarValue::Int64(v) => v,
        _ => None,
    }
}

/// Follows the first training of the scoring models (lead, deal and churn for every active tenant)
/// until each has a version trained by this run, then reports it; ends early on stop.
pub(super) async fn first_training(admin: &PgPool, stop: &watch::Receiver<bool>) {
    let want: i64 = sqlx::query_scalar("SELECT count(*) * 3 FROM tenants WHERE status = 'active'")
        .fetch_one(admin)
        .await
        .unwrap_or(0);
    let trained =
        bar(Some(want.max(0) as u64), "{spinner} models: first training [{bar:24}] {pos}/{len} models ({elapsed})");
    let poll = async {
        // Bounded: a training that never completes stops being followed after an hour.
        for _ in 0..3600 {
            let got: i64 = sqlx::query_scalar(
                "SELECT count(DISTINCT (m.tenant_id, m.task)) FROM model_versions v JOIN ai_models m ON m.id = v.model_id
                  WHERE m.task IN ('lead_score', 'deal_score', 'churn_score') AND v.created_at > pg_postmaster_start_time()",
            )
            .fetch_one(admin)
            .await
            .unwrap_or(0);
            trained.set_position(got.max(0) as u64);
            if got >= want {
                return got;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        trained.position() as i64
    };
    match unless_stopped(stop, poll).await {
        Some(got) => {
            trained.finish_and_clear();
            println!("models: {got} scoring models trained on the lake (lead, deal and churn per tenant)");
        }
        None => trained.finish_and_clear(),
    }
}
