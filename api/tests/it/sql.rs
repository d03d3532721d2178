//! `POST /v1/sql` over a real Delta table: the tenant sees its own rows only, in three encodings;
//! statements other than queries, bad SQL and roles without `lake_sql` get problem+json.

use serde_json::{Value, json};

use crate::helpers::{DEMO_PASSWORD, TestApp, admin_token, send, spawn_app_with_lake, write_accounts};

async fn sql(app: &TestApp, token: &str, accept: &str, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/sql", app.base))
        .bearer_auth(token)
        .header("accept", accept)
        .json(&body)
        .send()
        .await
        .expect("post /v1/sql")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_query_their_own_rows_and_nothing_else() {
    let lake = tempfile::tempdir().expect("lake dir");
    let app = spawn_app_with_lake(Some(url::Url::from_directory_path(lake.path()).expect("url"))).await;
    write_accounts(&app, lake.path()).await;
    let (tenant, mine, all): (String, i64, i64) = sqlx::query_as(
        "SELECT t.id::text, (SELECT count(*) FROM accounts a WHERE a.tenant_id = t.id), (SELECT count(*) FROM accounts)
           FROM tenants t WHERE t.slug = $1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("counts");
    assert!(all > mine && mine > 0, "two tenants with accounts: {mine} of {all}");
    let token = admin_token(&app).await;

    // JSON: only this tenant's rows, whatever the query tries.
    let q =
        json!({"sql": "SELECT count(*) AS n, count(DISTINCT tenant_id) AS tenants, min(tenant_id) AS t FROM accounts"});
    let r = sql(&app, &token, "application/json", q).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["rows"], json!([{"n": mine, "tenants": 1, "t": tenant}]), "{body}");
    assert_eq!(body["columns"][0], json!({"name": "n", "type": "bigint"}));
    let sneaky = json!({"sql": "SELECT count(*) AS n FROM accounts WHERE tenant_id <> (SELECT min(tenant_id) FROM accounts) OR 1 = 1"});
    let body: Value = sql(&app, &token, "application/json", sneaky).await.json().await.expect("json");
    assert_eq!(body["rows"][0]["n"], json!(mine));

    // Time travel: before the lake's first commit there was no accounts table; a later commit is not
    // seen as of an earlier instant.
    let past = json!({"sql": "SELECT count(*) AS n FROM accounts", "as_of": "2020-01-01T00:00:00Z"});
    let (code, body) = send(app.http.post(format!("{}/v1/sql", app.base)).json(&past), &token).await;
    assert_eq!((code, body["errors"][0]["field"].clone()), (400, json!("sql")), "{body}");
    let before_second = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    write_accounts(&app, lake.path()).await;
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let now: Value = sql(&app, &token, "application/json", json!({"sql": "SELECT count(*) AS n FROM accounts"}))
        .await
        .json()
        .await
        .expect("json");
    let then: Value = sql(
        &app,
        &token,
        "application/json",
        json!({"sql": "SELECT count(*) AS n FROM accounts", "as_of": before_second.to_rfc3339()}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!((now["rows"][0]["n"].clone(), then["rows"][0]["n"].clone()), (json!(2 * mine), json!(mine)));
    let future = json!({"sql": "SELECT 1", "as_of": "2999-01-01T00:00:00Z"});
    let (code, body) = send(app.http.post(format!("{}/v1/sql", app.base)).json(&future), &token).await;
    assert_eq!((code, body["errors"][0]["field"].clone()), (422, json!("as_of")), "{body}");
    let mine = 2 * mine;

    // CSV and Arrow IPC carry the same answer.
    let r = sql(&app, &token, "text/csv", json!({"sql": "SELECT count(*) AS n FROM accounts"})).await;
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.text().await.expect("csv"), format!("n\n{mine}\n"));
    let r = sql(&app, &token, "application/vnd.apache.arrow.stream", json!({"sql": "SELECT name FROM accounts"})).await;
    let bytes = r.bytes().await.expect("ipc");
    let reader = deltalake::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("ipc");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows as i64, mine);

    // Refusals are problems, never 500s.
    for (sql_text, status) in [
        ("DROP TABLE accounts", 403),
        ("INSERT INTO accounts VALUES ('x', 'y', 'z')", 403),
        ("SELECT nope FROM accounts", 400),
        ("SELEC 1", 400),
    ] {
        let (code, body) =
            send(app.http.post(format!("{}/v1/sql", app.base)).json(&json!({"sql": sql_text})), &token).await;
        assert_eq!(code, status, "{sql_text}: {body}");
        assert_eq!(body["status"], json!(status), "{sql_text}: problem+json {body}");
    }
    let (code, body) =
        send(app.http.post(format!("{}/v1/sql", app.base)).json(&json!({"sql": "SELECT 1", "timeout_ms": 0})), &token)
            .await;
    assert_eq!((code, body["errors"][0]["field"].clone()), (422, json!("timeout_ms")));
    let r = sql(&app, &token, "image/png", json!({"sql": "SELECT 1"})).await;
    assert_eq!(r.status(), 406);

    // A sales rep's role has no lake_sql.
    let rep: String = sqlx::query_scalar(
        "SELECT u.email FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id \
         WHERE t.slug = $1 AND r.key = 'sales_rep' AND u.status = 'active' ORDER BY u.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("rep");
    let body: Value = app.login(&rep, DEMO_PASSWORD).await.json().await.expect("login");
    let rep_token = body["access_token"].as_str().unwrap_or_default().to_owned();
    let (code, _) =
        send(app.http.post(format!("{}/v1/sql", app.base)).json(&json!({"sql": "SELECT 1"})), &rep_token).await;
    assert_eq!(code, 403);
}
