//! `orbas demo` stopped with SIGINT (Ctrl-C) once it is up: it exits 0 within a bound after every
//! service finished its batch, and a second start on the same `--data-dir` continues with nothing
//! lost — an account written just before the signal reaches the lake.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

/// The demo without a sentence encoder (an empty `ORBAS_MODELS`): keyword search only and no
/// sentiment model, so the test spends its time on the pipeline, not on embeddings.
fn demo(data: &std::path::Path, exit_when_ready: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orbas"));
    c.env_remove("DATABASE_URL")
        .env("ORBAS_MODELS", data.join("no-models"))
        .env_remove("ORBAS_APP_DATABASE_URL")
        .env_remove("ORBAS_APP_PASSWORD")
        .env("RUST_LOG", "warn")
        .env("ORBAS_HTTP_ADDR", "127.0.0.1:0")
        .env("ORBAS_SQL_ADDR", "127.0.0.1:0")
        .args(["demo", "--tenants", "1", "--scale", "0.01", "--seed", "9", "--data-dir"])
        .arg(data)
        .kill_on_drop(true);
    if exit_when_ready {
        c.arg("--exit-when-ready");
    }
    c
}

/// Reads stdout until a line starts with `prefix`; returns it and what was read.
async fn until(lines: &mut Lines<BufReader<ChildStdout>>, prefix: &str, seen: &mut String) -> String {
    let wait = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with(prefix) {
                return line;
            }
        }
        panic!("the demo's stdout ended before `{prefix}`:\n{seen}");
    };
    tokio::time::timeout(Duration::from_secs(300), wait).await.unwrap_or_else(|_| panic!("no `{prefix}` in 5 min"))
}

fn silver_accounts(line: &str) -> u64 {
    line.trim_start_matches("lake: silver accounts = ").split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Logs in as the tenant's admin and creates an account over the API.
async fn create_account(api: &str, tenant: &str, admin: &str) {
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{api}/v1/auth/login"))
        .json(&json!({"tenant": tenant, "email": admin, "password": "orbas-demo-password"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login json");
    let token = login["access_token"].as_str().expect("access token");
    let created = http
        .post(format!("{api}/v1/accounts"))
        .bearer_auth(token)
        .json(&json!({"name": "Written just before Ctrl-C", "industry": "software"}))
        .send()
        .await
        .expect("create account");
    assert_eq!(created.status(), 201);
}

#[tokio::test]
async fn demo_stop_on_sigint_is_clean_and_the_next_start_loses_nothing() {
    let data = tempfile::tempdir().expect("data dir");
    let mut child = demo(data.path(), false).stdout(Stdio::piped()).spawn().expect("start the demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    let api = until(&mut lines, "  API            ", &mut seen).await.split_whitespace().nth(1).map(str::to_owned);
    let tenant = until(&mut lines, "  tenant ", &mut seen).await;
    let (slug, admin) = match tenant.split_whitespace().collect::<Vec<_>>()[..] {
        ["tenant", slug, "admin", admin] => (slug.to_owned(), admin.to_owned()),
        _ => panic!("tenant line: {tenant}"),
    };
    let before = silver_accounts(&until(&mut lines, "lake: silver accounts = ", &mut seen).await);
    assert!(before > 0, "{seen}");
    create_account(&api.expect("API URL"), &slug, &admin).await;

    let pid = child.id().expect("pid").to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().await.expect("kill -INT");
    assert!(sent.success());
    let rest = async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
        }
        child.wait().await.expect("wait")
    };
    let status = tokio::time::timeout(Duration::from_secs(180), rest).await.expect("the demo stopped within 3 min");
    assert!(status.success(), "exit {status:?}:\n{seen}");
    assert!(seen.contains("demo stopped; Postgres shut down cleanly"), "{seen}");

    let again = demo(data.path(), true).output().await.expect("second start");
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{out}\n{}", String::from_utf8_lossy(&again.stderr));
    assert!(out.contains("not seeding again"), "{out}");
    let line = out.lines().find(|l| l.starts_with("lake: silver accounts = ")).unwrap_or_default();
    assert_eq!(silver_accounts(line), before + 1, "the account written before SIGINT is in the lake:\n{out}");
}
