//! schemathesis (from the benchmark virtualenv) over the whole OpenAPI document of the run's server,
//! as `api/tests/it/schemathesis.rs` runs it; the 5xx count is the server's own — the difference of
//! its `orbas_api_http_requests_total` 5xx counters over the run — beside schemathesis' verdict.

use std::path::Path;

use anyhow::Context as _;

use crate::observe::{HTTP_REQUESTS_TOTAL, prometheus};

#[derive(Debug, Clone)]
pub(super) enum FuzzReport {
    Skipped(String),
    Ran { generated: u64, server_errors: u64, passed: bool, tail: String },
}

/// The sum of the server's 5xx request counters so far.
fn server_errors() -> u64 {
    prometheus()
        .render()
        .lines()
        .filter(|l| l.starts_with(HTTP_REQUESTS_TOTAL) && l.contains("status=\"5"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

pub(super) async fn run(base: &str, token: &str, venv: &Path, pdf: bool, seed: u64) -> anyhow::Result<FuzzReport> {
    let bin = venv.join("bin/schemathesis");
    if !bin.exists() {
        return Ok(FuzzReport::Skipped(format!("{} is missing (scripts/setup.sh installs it)", bin.display())));
    }
    let report = tempfile::tempdir()?;
    // Without Chromium the PDF export is refused with 503 by design: leave it out rather than count it.
    let exclude = if pdf { "^/v1/auth/" } else { "^/v1/auth/|/pdf$" };
    let before = server_errors();
    let out = tokio::process::Command::new(&bin)
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--checks", "not_a_server_error"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--exclude-path-regex", exclude])
        .args(["--max-examples", "15", "--workers", "2", "--seed", &seed.to_string()])
        .args(["--generation-database", "none", "--no-color", "--suppress-health-check", "all"])
        .args(["--request-timeout", "20"])
        .arg("--report-dir")
        .arg(report.path())
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .env("NO_COLOR", "1")
        .output()
        .await
        .context("running schemathesis")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let generated = stdout
        .lines()
        .find_map(|l| l.trim().split_once(" generated, ").and_then(|(n, _)| n.parse::<u64>().ok()))
        .unwrap_or(0);
    let tail: String =
        stdout.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    Ok(FuzzReport::Ran {
        generated,
        server_errors: server_errors().saturating_sub(before),
        passed: out.status.success(),
        tail,
    })
}
