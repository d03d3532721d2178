//! `orbas migrate`, `doctor`, `serve` and `demo`, driven as a user would drive them.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn orbas() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orbas"));
    c.env_remove("DATABASE_URL")
        .env_remove("ORBAS_APP_DATABASE_URL")
        .env_remove("ORBAS_APP_PASSWORD")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    c
}

async fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().await.expect("run orbas");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn migrate_is_idempotent_and_doctor_approves_the_result() {
    let t = orbas_testkit::empty_db().await;
    let env = [("DATABASE_URL", t.admin_url.as_str()), ("ORBAS_APP_PASSWORD", "a-long-app-password")];
    let (ok, out) = run(orbas().arg("migrate").envs(env)).await;
    assert!(ok, "{out}");
    assert!(out.contains("migration(s) applied now") && !out.contains(" 0 migration(s)"), "{out}");
    assert!(out.contains("application login \"orbas_api\" provisioned"), "{out}");
    let (ok, out) = run(orbas().arg("migrate").envs(env)).await;
    assert!(ok && out.contains("(0 migration(s) applied now)"), "{out}");
    let (ok, out) = run(orbas().arg("doctor").envs(env)).await;
    assert!(ok, "{out}");
    for line in [
        "✓ wal_level = logical",
        "✓ schema current",
        "✓ application login cannot bypass RLS",
        "✓ login lookups can see every tenant",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

#[tokio::test]
async fn doctor_fails_on_an_unmigrated_database() {
    let t = orbas_testkit::empty_db().await;
    let (ok, out) = run(orbas().arg("doctor").env("DATABASE_URL", &t.admin_url)).await;
    assert!(!ok, "{out}");
    assert!(out.contains("✗ schema current"), "{out}");
}

#[tokio::test]
async fn serve_answers_health_readiness_and_problem_json() {
    let t = orbas_testkit::fresh_db().await;
    let mut child = orbas()
        .arg("serve")
        .env("ORBAS_APP_DATABASE_URL", &t.app_url)
        .env("ORBAS_HTTP_ADDR", "127.0.0.1:0")
        .env("ORBAS_JWT_SECRET", "a-test-signing-key-of-at-least-32-bytes")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_owned();
            }
        }
        String::new()
    })
    .await
    .expect("server printed its address");
    let http = reqwest::Client::new();
    let ready = http.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    let missing = http.get(format!("{base}/v1/nothing-here")).send().await.expect("404");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
    let problem: serde_json::Value = missing.json().await.expect("problem json");
    assert_eq!(problem["status"], 404);
    child.kill().await.expect("kill");
}

#[tokio::test]
async fn demo_brings_everything_up_on_an_embedded_postgres_and_resumes_from_its_data_dir() {
    let data = tempfile::tempdir().expect("data dir");
    let demo = || {
        let mut c = orbas();
        c.args(["demo", "--exit-when-ready", "--tenants", "2", "--scale", "0.01", "--seed", "5", "--data-dir"])
            .arg(data.path())
            .env("ORBAS_HTTP_ADDR", "127.0.0.1:0")
            .env("ORBAS_SQL_ADDR", "127.0.0.1:0");
        c
    };
    let silver_accounts = |out: &str| -> u64 {
        let lake = out.lines().find(|l| l.starts_with("lake: silver accounts = ")).unwrap_or_default();
        lake.trim_start_matches("lake: silver accounts = ").split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    let (ok, out) = run(&mut demo()).await;
    assert!(ok, "{out}");
    assert!(out.contains("Orbas demo is up"), "{out}");
    assert_eq!(out.matches("  tenant ").count(), 2, "{out}");
    assert!(out.contains("demo is ready"), "{out}");
    assert!(out.contains("tansu, log kept under --data-dir") && out.contains("  SQL port       psql"), "{out}");
    let snapshot = out.lines().find(|l| l.starts_with("change data capture: initial snapshot of")).unwrap_or_default();
    let rows: u64 =
        snapshot.split(" (").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(rows > 1000, "the seeded CRM went through CDC into Kafka: {out}");
    let accounts = silver_accounts(&out);
    assert!(accounts > 0, "the accounts reached silver in the lake: {out}");
    let won: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("lake: gold daily_bookings counts "))
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(won > 0, "the gold KPI tables count the won deals: {out}");
    let created = data.path().join("lake/silver/public/accounts/_delta_log/00000000000000000000.json");
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let first = modified(&created);
    assert!(first.is_some(), "silver accounts has a Delta log");

    // A second run on the same data directory, right after the first: the broker's log, the slot and
    // the lake's positions survived, so the lake is not rebuilt and holds the same rows.
    let (ok, again) = run(&mut demo()).await;
    assert!(ok, "{again}");
    assert_eq!(silver_accounts(&again), accounts, "{again}");
    assert_eq!(modified(&created), first, "the first run's lake was kept, not rebuilt");
}

#[tokio::test]
async fn pipeline_resnapshot_requests_refuses_and_resets() {
    let t = orbas_testkit::fresh_db().await;
    let slot = format!("cli_{}", &t.name[2..14]);
    let env = [("DATABASE_URL", t.admin_url.as_str())];
    let (ok, out) = run(orbas().args(["pipeline", "resnapshot", "no_such_table"]).envs(env)).await;
    assert!(!ok && out.contains("public.no_such_table is not a table of publication"), "{out}");

    let (ok, out) =
        run(orbas().args(["pipeline", "resnapshot", "accounts", "--slot", &slot, "--chunk-size", "50"]).envs(env))
            .await;
    assert!(ok && out.contains("re-snapshot of public.accounts requested"), "{out}");
    let (table, chunk): (String, i32) =
        sqlx::query_as("SELECT table_name, chunk_size FROM orbas.cdc_resnapshots WHERE slot_name = $1")
            .bind(&slot)
            .fetch_one(&t.admin)
            .await
            .expect("request row");
    assert_eq!((table.as_str(), chunk), ("accounts", 50));

    // --all: the slot and its snapshot record go, open requests are closed.
    sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
        .bind(&slot)
        .execute(&t.admin)
        .await
        .expect("slot");
    sqlx::query(
        "INSERT INTO orbas.cdc_snapshots (slot_name, consistent_point, completed_at) VALUES ($1, '0/0', now())",
    )
    .bind(&slot)
    .execute(&t.admin)
    .await
    .expect("record");
    let (ok, out) = run(orbas().args(["pipeline", "resnapshot", "--all", "--slot", &slot]).envs(env)).await;
    assert!(ok && out.contains("the next `orbas pipeline cdc` copies every table again"), "{out}");
    let left: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1),
                (SELECT count(*) FROM orbas.cdc_snapshots WHERE slot_name = $1),
                (SELECT count(*) FROM orbas.cdc_resnapshots WHERE slot_name = $1 AND completed_at IS NULL)",
    )
    .bind(&slot)
    .fetch_one(&t.admin)
    .await
    .expect("state");
    assert_eq!(left, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_erase_optimize_and_vacuum_from_the_command_line() {
    let lake = tempfile::tempdir().expect("lake dir");
    let app = crate::helpers::spawn_app_with_lake(None).await;
    // Two commits of every account, so the erased one is in several files and log versions.
    crate::helpers::write_accounts(&app, lake.path()).await;
    crate::helpers::write_accounts(&app, lake.path()).await;
    let (subject, total): (String, i64) = sqlx::query_as(
        "SELECT a.id::text, (SELECT count(*) FROM accounts) FROM accounts a JOIN tenants t ON t.id = a.tenant_id \
         WHERE t.slug = $1 ORDER BY a.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("an account");
    let lake_arg = lake.path().display().to_string();
    let (ok, out) = run(orbas()
        .args(["lake", "erase", "--lake", &lake_arg, "--tenant", &app.tenant_slug, "--subject", &subject, "--json"])
        .env("DATABASE_URL", &app.db.admin_url))
    .await;
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("report json");
    assert_eq!(report["rows_deleted"], 2, "{report}");
    assert_eq!(report["tables"][0]["table"], "accounts", "{report}");
    let table =
        deltalake::open_table(url::Url::from_directory_path(lake.path().join("silver/public/accounts")).expect("url"))
            .await
            .expect("open");
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    ctx.register_table("a", table.table_provider().await.expect("provider")).expect("register");
    let left = ctx.sql("SELECT count(*) AS n FROM a").await.expect("sql").collect().await.expect("collect");
    let n = deltalake::arrow::compute::cast(left[0].column(0), &deltalake::arrow::datatypes::DataType::Int64)
        .ok()
        .and_then(|a| {
            deltalake::arrow::array::AsArray::as_primitive_opt::<deltalake::arrow::datatypes::Int64Type>(&a)
                .map(|a| a.value(0))
        });
    assert_eq!(n, Some(2 * total - 2));
    // Nothing under the lake names the account any more (names are in Parquet, read as text here).
    let mut files = vec![lake.path().to_path_buf()];
    while let Some(d) = files.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            if e.path().is_dir() {
                files.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "json") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                assert!(!text.contains(&subject), "{} still names the subject", e.path().display());
            }
        }
    }

    let (ok, out) = run(orbas().args(["lake", "optimize", "--lake", &lake_arg])).await;
    assert!(ok && out.contains("silver/accounts: ") && out.contains("(sorted by tenant)"), "{out}");
    let (ok, out) = run(orbas().args(["lake", "vacuum", "--lake", &lake_arg, "--retention-hours", "0"])).await;
    assert!(ok && out.contains("vacuum: "), "{out}");
    let (ok, out) = run(orbas()
        .args(["lake", "erase", "--lake", &lake_arg, "--tenant", "no-such-slug", "--subject", "x"])
        .env("DATABASE_URL", &app.db.admin_url))
    .await;
    assert!(!ok && out.contains("no active tenant with slug"), "{out}");

    // The doctor reads every table's log and finds every file it references…
    let doctor = || {
        let mut c = orbas();
        c.args(["doctor", "--lake", &lake_arg]).env("DATABASE_URL", &app.db.admin_url);
        c
    };
    let (_, out) = run(&mut doctor()).await;
    assert!(out.contains("✓ lake tables readable and whole: 1 tables"), "{out}");
    // …and names a table whose data file is gone, and what to do.
    let silver = lake.path().join("silver/public/accounts");
    let parquet = std::fs::read_dir(&silver)
        .expect("table dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .expect("a data file");
    std::fs::remove_file(&parquet).expect("remove a data file");
    let (ok, out) = run(&mut doctor()).await;
    assert!(!ok, "{out}");
    assert!(out.contains("✗ lake tables readable and whole"), "{out}");
    assert!(out.contains("✗ lake table: silver.accounts: 1 of ") && out.contains("data files missing"), "{out}");
    let (_, out) =
        run(orbas().args(["doctor", "--lake", "/no/such/lake"]).env("DATABASE_URL", &app.db.admin_url)).await;
    assert!(out.contains("✗ lake: /no/such/lake is not a directory"), "{out}");
}
