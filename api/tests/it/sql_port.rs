//! The SQL port (`orbas sql`, the real binary) over a real Delta table holding two tenants' accounts,
//! with real clients: psql, psycopg (Python) and the PostgreSQL JDBC driver (the one DBeaver and
//! Metabase use), all over TLS with SCRAM-SHA-256 against the CRM's stored verifiers. Each tenant sees
//! only its rows — through joins, subqueries, `information_schema` and EXPLAIN too; DDL/DML are
//! refused with Postgres error codes; wrong passwords, sales reps and other tenants' slugs are refused
//! at login; an API key works as the password of its prefix.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::{DEMO_PASSWORD, TestApp, admin_token, send, spawn_app_with_lake, write_accounts};

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("ORBAS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/orbas/venv"));
    venv.join("bin/python")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A self-signed certificate for 127.0.0.1 (openssl CLI).
async fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .await
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

async fn start_port(app: &TestApp, lake: &Path, tls: &(PathBuf, PathBuf), port: u16, extra: &[&str]) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_orbas"))
        .arg("sql")
        .arg("--lake")
        .arg(lake)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(&tls.0)
        .arg("--tls-key")
        .arg(&tls.1)
        .args(extra)
        .env_remove("DATABASE_URL")
        .env("ORBAS_APP_DATABASE_URL", &app.db.app_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start orbas sql");
    orbas_testkit::eventually("the SQL port accepts connections", Duration::from_secs(60), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await;
    child
}

/// psql's output (`-At`, verbose errors with SQLSTATE) and whether it succeeded.
async fn psql(port: u16, db: &str, user: &str, password: &str, sslmode: &str, sql: &str) -> (bool, String) {
    let out = Command::new("psql")
        .arg(format!("host=127.0.0.1 port={port} dbname={db} user={user} sslmode={sslmode} connect_timeout=10"))
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCHANNELBINDING", "disable")
        .output()
        .await
        .expect("run psql");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_owned())
}

async fn email_of(app: &TestApp, slug: &str, role: &str) -> String {
    sqlx::query_scalar(
        "SELECT u.email FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id \
           JOIN user_credentials c ON c.id = u.id \
         WHERE t.slug = $1 AND r.key = $2 AND u.status = 'active' AND c.failed_attempts = 0 ORDER BY u.id LIMIT 1",
    )
    .bind(slug)
    .bind(role)
    .fetch_one(&app.db.admin)
    .await
    .expect("user")
}

/// (tenant id, its account count) per tenant slug.
async fn tenants(app: &TestApp) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT t.slug, t.id::text, (SELECT count(*) FROM accounts a WHERE a.tenant_id = t.id) FROM tenants t ORDER BY t.slug",
    )
    .fetch_all(&app.db.admin)
    .await
    .expect("tenants")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_query_their_tenant_over_tls_with_scram() {
    let lake = tempfile::tempdir().expect("lake dir");
    let app = spawn_app_with_lake(Some(url::Url::from_directory_path(lake.path()).expect("url"))).await;
    write_accounts(&app, lake.path()).await;
    let all = tenants(&app).await;
    assert_eq!(all.len(), 2);
    let (a_slug, a_id, a_count) = all.iter().find(|t| t.0 == app.tenant_slug).cloned().expect("tenant A");
    let (b_slug, b_id, b_count) = all.iter().find(|t| t.0 != app.tenant_slug).cloned().expect("tenant B");
    assert!(a_count > 0 && b_count > 0 && a_count != b_count, "{a_count} {b_count}");
    let a_admin = app.admin_email.clone();
    let b_admin = email_of(&app, &b_slug, "admin").await;

    let certs = tempfile::tempdir().expect("cert dir");
    let tls = certificate(certs.path()).await;
    let port = free_port();
    let _server = start_port(&app, lake.path(), &tls, port, &[]).await;
    // psql, TLS + SCRAM: exactly the tenant's rows, whatever the query tries.
    let run = |db: String, user: String, sql: String| async move {
        psql(port, &db, &user, DEMO_PASSWORD, "require", &sql).await
    };
    let other_tenant = format!("SELECT count(*) FROM accounts WHERE tenant_id = '{b_id}'");
    for (sql, expected) in [
        ("SELECT count(*) FROM accounts", a_count.to_string()),
        ("SELECT count(*) FROM accounts WHERE tenant_id <> 'x' OR 1 = 1", a_count.to_string()),
        ("SELECT count(DISTINCT tenant_id) || ':' || min(tenant_id) FROM accounts", format!("1:{a_id}")),
        ("SELECT count(*) FROM accounts a JOIN accounts b ON a.id = b.id", a_count.to_string()),
        ("SELECT count(*) FROM accounts WHERE id IN (SELECT id FROM accounts)", a_count.to_string()),
        (
            "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM (SELECT * FROM accounts UNION ALL SELECT * FROM accounts))",
            (3 * a_count).to_string(),
        ),
        ("SELECT count(*) FROM information_schema.tables WHERE table_name = 'accounts'", "1".into()),
        (other_tenant.as_str(), "0".into()),
    ]
    .map(|(s, e)| (s.to_owned(), e))
    {
        let (ok, out) = run(a_slug.clone(), a_admin.clone(), sql.clone()).await;
        assert!(ok, "{sql}: {out}");
        assert_eq!(out, expected, "{sql}");
    }
    // EXPLAIN shows the tenant filter with this tenant's id and never the other's.
    let (ok, plan) = run(a_slug.clone(), a_admin.clone(), "EXPLAIN SELECT name FROM accounts".into()).await;
    assert!(ok && plan.contains(&a_id) && !plan.contains(&b_id), "{plan}");
    // psql's own catalog queries work (\dt lists the lake's tables).
    let (ok, listing) = run(a_slug.clone(), a_admin.clone(), "\\dt".into()).await;
    assert!(ok && listing.contains("accounts"), "\\dt: {listing}");

    // The second tenant's admin sees the second tenant's rows.
    let (ok, out) = run(b_slug.clone(), b_admin.clone(), "SELECT count(*) FROM accounts".into()).await;
    assert_eq!((ok, out), (true, b_count.to_string()));

    // Refusals, with Postgres SQLSTATEs.
    for (sql, code) in [
        ("DROP TABLE accounts", "25006"),
        ("INSERT INTO accounts VALUES ('x', 'y', 'z')", "25006"),
        ("CREATE TABLE t AS SELECT * FROM accounts", "25006"),
        ("SET datafusion.execution.batch_size = 1", "42501"),
        ("SELEC 1", "42601"),
        ("SELECT * FROM nowhere", "42P01"),
        ("SELECT nope FROM accounts", "42703"),
    ] {
        let (ok, out) = run(a_slug.clone(), a_admin.clone(), sql.into()).await;
        assert!(!ok && out.contains(&format!("ERROR:  {code}")), "{sql}: {out}");
    }
    // Logins that must fail: wrong password, another tenant's slug, a role without lake_sql, no TLS.
    let (ok, out) = psql(port, &a_slug, &a_admin, "wrong-password", "require", "SELECT 1").await;
    assert!(!ok && out.contains("28P01") || out.contains("password authentication failed"), "{out}");
    let (ok, out) = psql(port, &b_slug, &a_admin, DEMO_PASSWORD, "require", "SELECT 1").await;
    assert!(!ok && out.contains("password authentication failed"), "A's admin in B: {out}");
    let (ok, out) = psql(port, "no-such-tenant", &a_admin, DEMO_PASSWORD, "require", "SELECT 1").await;
    assert!(!ok && out.contains("password authentication failed"), "{out}");
    let rep = email_of(&app, &a_slug, "sales_rep").await;
    let (ok, out) = psql(port, &a_slug, &rep, DEMO_PASSWORD, "require", "SELECT 1").await;
    assert!(!ok && out.contains("may not query the lake"), "sales rep: {out}");
    let recorded: Vec<(String, bool, Option<String>)> = sqlx::query_as(
        "SELECT h.method, h.succeeded, h.failure_reason FROM login_history h JOIN users u ON u.id = h.user_id \
         WHERE h.method LIKE 'sql_%' AND u.email IN ($1, $2) ORDER BY h.occurred_at",
    )
    .bind(&a_admin)
    .bind(&rep)
    .fetch_all(&app.db.admin)
    .await
    .expect("history");
    assert!(recorded.contains(&("sql_password".into(), false, Some("bad_credentials".into()))), "{recorded:?}");
    assert!(recorded.contains(&("sql_password".into(), false, Some("forbidden".into()))), "{recorded:?}");
    assert!(recorded.contains(&("sql_password".into(), true, None)), "{recorded:?}");

    // An API key: the prefix is the user, the whole key the password.
    let token = admin_token(&app).await;
    let (code, key) =
        send(app.http.post(format!("{}/v1/api-keys", app.base)).json(&json!({"name": "bi", "scopes": ["*"]})), &token)
            .await;
    assert_eq!(code, 201, "{key}");
    let secret = key["key"].as_str().expect("key").to_owned();
    let prefix = secret.split('_').nth(1).expect("prefix").to_owned();
    let (ok, out) = psql(port, &a_slug, &prefix, &secret, "require", "SELECT count(*) FROM accounts").await;
    assert_eq!((ok, out), (true, a_count.to_string()));

    // psycopg: extended protocol with a bound parameter, typed results, error classes.
    let script = r#"
import json, sys, psycopg
port, db, user, password = sys.argv[1:5]
out = {}
with psycopg.connect(host="127.0.0.1", port=port, dbname=db, user=user, password=password,
                     sslmode="require", channel_binding="disable") as conn:
    out["tls"] = conn.info.pgconn.ssl_in_use
    cur = conn.execute("SELECT count(*) FROM accounts WHERE name <> %s", ["no such name"])
    out["count"] = cur.fetchone()[0]
    cur = conn.execute("SELECT tenant_id, count(*) FROM accounts GROUP BY tenant_id")
    out["groups"] = [list(r) for r in cur.fetchall()]
    try:
        conn.execute("DELETE FROM accounts")
        out["delete"] = "ran"
    except psycopg.Error as e:
        out["delete"] = e.sqlstate
        conn.rollback()
print(json.dumps(out))
"#;
    let py = Command::new(venv_python())
        .args(["-c", script, &port.to_string(), &b_slug, &b_admin, DEMO_PASSWORD])
        .output()
        .await
        .expect("run python");
    assert!(py.status.success(), "psycopg: {}", String::from_utf8_lossy(&py.stderr));
    let got: Value = serde_json::from_slice(&py.stdout).expect("psycopg json");
    assert_eq!(
        got,
        json!({"tls": true, "count": b_count, "groups": [[b_id, b_count]], "delete": "25006"}),
        "psycopg as B's admin"
    );

    // JDBC (PostgreSQL driver 42.x): a prepared statement with a parameter, and the driver's metadata
    // calls (what DBeaver's and Metabase's table browsers run).
    let java = certs.path().join("Probe.java");
    std::fs::write(
        &java,
        r#"
import java.sql.*;
public class Probe {
  public static void main(String[] a) throws Exception {
    String url = "jdbc:postgresql://127.0.0.1:" + a[0] + "/" + a[1] + "?sslmode=require&channelBinding=disable";
    try (Connection c = DriverManager.getConnection(url, a[2], a[3])) {
      try (PreparedStatement p = c.prepareStatement("SELECT count(*) FROM accounts WHERE name <> ?")) {
        p.setString(1, "no such name");
        try (ResultSet r = p.executeQuery()) { r.next(); System.out.println("count=" + r.getLong(1)); }
      }
      try (ResultSet r = c.getMetaData().getTables(null, "public", "%", new String[] {"TABLE"})) {
        StringBuilder names = new StringBuilder();
        while (r.next()) names.append(r.getString("TABLE_NAME")).append(' ');
        System.out.println("tables=" + names.toString().trim());
      }
      try (Statement s = c.createStatement()) {
        s.executeUpdate("UPDATE accounts SET name = 'x'");
        System.out.println("update=ran");
      } catch (SQLException e) {
        System.out.println("update=" + e.getSQLState());
      }
    }
  }
}
"#,
    )
    .expect("write Probe.java");
    let jar = std::env::var("ORBAS_JDBC_JAR").unwrap_or_else(|_| "/usr/share/java/postgresql.jar".into());
    let out = Command::new("java")
        .arg("-cp")
        .arg(&jar)
        .arg(&java)
        .args([&port.to_string(), &a_slug, &a_admin, DEMO_PASSWORD])
        .output()
        .await
        .expect("run java");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "JDBC: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("count={a_count}")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("tables=") && l.contains("accounts")), "{text}");
    assert!(text.contains("update=25006"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_refuses_plaintext_and_new_commits_become_visible_and_the_past_stays_readable() {
    let lake = tempfile::tempdir().expect("lake dir");
    let app = spawn_app_with_lake(Some(url::Url::from_directory_path(lake.path()).expect("url"))).await;
    write_accounts(&app, lake.path()).await;
    let certs = tempfile::tempdir().expect("cert dir");
    let tls = certificate(certs.path()).await;
    let port = free_port();
    let _server = start_port(&app, lake.path(), &tls, port, &["--require-tls"]).await;
    let (ok, out) = psql(port, &app.tenant_slug, &app.admin_email, DEMO_PASSWORD, "disable", "SELECT 1").await;
    assert!(!ok && out.contains("only TLS connections"), "plaintext: {out}");

    // On one open connection, a commit made to the lake after it opened (here by delta-rs' Python
    // writer) is seen by the next statement; `SET orbas.as_of` reads the lake as it was before it.
    let script = r#"
import datetime, json, sys, time, psycopg, pyarrow as pa
from deltalake import write_deltalake
port, db, user, password, table, tenant = sys.argv[1:7]
out = {}
with psycopg.connect(host="127.0.0.1", port=port, dbname=db, user=user, password=password,
                     sslmode="require", channel_binding="disable", autocommit=True) as conn:
    out["before"] = conn.execute("SELECT count(*) FROM accounts").fetchone()[0]
    time.sleep(0.05)
    moment = datetime.datetime.now(datetime.timezone.utc).isoformat()
    time.sleep(0.05)
    schema = pa.schema([pa.field("id", pa.string(), False), pa.field("tenant_id", pa.string(), False),
                        pa.field("name", pa.string(), True)])
    write_deltalake(table, pa.Table.from_pylist([{"id": "new-1", "tenant_id": tenant, "name": "New"}], schema=schema),
                    mode="append")
    time.sleep(0.3)
    out["after"] = conn.execute("SELECT count(*) FROM accounts").fetchone()[0]
    conn.execute(f"SET orbas.as_of = '{moment}'")
    out["as_of"] = conn.execute("SELECT count(*) FROM accounts").fetchone()[0]
    out["as_of_named"] = conn.execute("SELECT count(*) FROM accounts WHERE id = 'new-1'").fetchone()[0]
    conn.execute("SET orbas.as_of = DEFAULT")
    out["back"] = conn.execute("SELECT count(*) FROM accounts").fetchone()[0]
    for bad in ["'yesterday'", "'2999-01-01T00:00:00Z'"]:
        try:
            conn.execute(f"SET orbas.as_of = {bad}")
            out.setdefault("bad", []).append("accepted")
        except psycopg.Error as e:
            out.setdefault("bad", []).append(e.sqlstate)
print(json.dumps(out))
"#;
    let tenant: String = sqlx::query_scalar("SELECT id::text FROM tenants WHERE slug = $1")
        .bind(&app.tenant_slug)
        .fetch_one(&app.db.admin)
        .await
        .expect("tenant");
    let table = lake.path().join("silver/public/accounts");
    let py = Command::new(venv_python())
        .args(["-c", script, &port.to_string(), &app.tenant_slug, &app.admin_email, DEMO_PASSWORD])
        .arg(&table)
        .arg(&tenant)
        .output()
        .await
        .expect("run python");
    assert!(py.status.success(), "psycopg: {}", String::from_utf8_lossy(&py.stderr));
    let got: Value = serde_json::from_slice(&py.stdout).expect("json");
    let before = got["before"].as_i64().expect("before");
    assert!(before > 0);
    assert_eq!(got["after"].as_i64(), Some(before + 1), "{got}");
    assert_eq!(got["as_of"].as_i64(), Some(before), "as of a moment before the commit: {got}");
    assert_eq!(got["as_of_named"].as_i64(), Some(0), "{got}");
    assert_eq!(got["back"].as_i64(), Some(before + 1), "back to the latest: {got}");
    assert_eq!(got["bad"], serde_json::json!(["22023", "22023"]), "{got}");
}
