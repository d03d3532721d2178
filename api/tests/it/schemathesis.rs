//! Property-based API testing with schemathesis (PyPI, installed by `scripts/setup.sh` into
//! `$ORBAS_VENV`): generated and mutated requests against every documented `/v1` operation except the
//! login flows; no response may be a 5xx or contradict `/openapi.json`. The server is configured as in
//! production: a lake, a search index and headless Chromium for printing.

use serde_json::Value;

use crate::helpers::{DEMO_PASSWORD, spawn_app_rendering};

fn schemathesis() -> std::path::PathBuf {
    let venv = std::env::var_os("ORBAS_VENV").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/orbas/venv")
    });
    venv.join("bin/schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_find_no_5xx_and_no_schema_violation() {
    let bin = schemathesis();
    assert!(bin.exists(), "{} is missing: run scripts/setup.sh (the test command does)", bin.display());
    // An (empty) lake, so `POST /v1/sql` answers as a configured server does: 4xx for bad queries.
    let lake = tempfile::tempdir().expect("lake dir");
    // An (empty, keyword-only) search index, so `GET /v1/search` answers as a configured server does.
    let search = tempfile::tempdir().expect("search dir");
    let index = orbas_search::SearchIndex::open(search.path(), orbas_search::Access::Writer, None).expect("index");
    // Headless Chromium, so `GET /v1/dashboards/{id}/pdf` prints as on a configured server.
    let renderer =
        std::sync::Arc::new(orbas_dashboards::render::Renderer::new(orbas_testkit::browser::chromium_path()));
    let app = spawn_app_rendering(
        url::Url::from_directory_path(lake.path()).ok(),
        Some(std::sync::Arc::new(index)),
        Some(renderer.clone()),
    )
    .await;
    let body: Value = app.login(&app.admin_email, DEMO_PASSWORD).await.json().await.expect("json");
    let token = body["access_token"].as_str().unwrap_or_default().to_owned();
    let report = tempfile::tempdir().expect("tempdir");
    let out = tokio::process::Command::new(&bin)
        .arg("run")
        .arg(format!("{}/openapi.json", app.base))
        .args(["--checks", "not_a_server_error,response_schema_conformance,content_type_conformance"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--exclude-path-regex", "^/v1/auth/"])
        .args(["--max-examples", "15", "--workers", "1", "--seed", "20261123"])
        .args(["--generation-database", "none", "--no-color", "--suppress-health-check", "all"])
        .args(["--request-timeout", "20"])
        .arg("--report-dir")
        .arg(report.path())
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run schemathesis");
    renderer.close().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail = |s: &str| s.chars().rev().take(20_000).collect::<Vec<_>>().into_iter().rev().collect::<String>();
    assert!(out.status.success(), "schemathesis found problems:\n{}\n{}", tail(&stdout), tail(&stderr));
    // It must actually have run requests, not skipped everything.
    let generated = stdout
        .lines()
        .find_map(|l| l.trim().split_once(" generated, ").and_then(|(n, _)| n.parse::<u64>().ok()))
        .unwrap_or(0);
    assert!(generated > 1000, "too few generated cases ({generated}):\n{}", tail(&stdout));
}
