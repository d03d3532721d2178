//! Operations: request ids, Prometheus metrics, the body size limit.

use serde_json::json;

use crate::helpers::{DEMO_PASSWORD, admin_token, send, spawn_app, spawn_app_with_lake, write_accounts};

#[tokio::test]
async fn request_ids_are_echoed_and_generated() {
    let app = spawn_app().await;
    let given =
        app.http.get(format!("{}/healthz", app.base)).header("x-request-id", "req-42").send().await.expect("get");
    assert_eq!(given.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-42"));
    let made = app.http.get(format!("{}/healthz", app.base)).send().await.expect("get");
    let id = made.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(id.len(), 36, "a generated UUID: {id:?}");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_sample_the_pool() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.http
            .get(format!("{}/v1/accounts/00000000-0000-0000-0000-000000000000", app.base))
            .send()
            .await
            .expect("get");
    }
    let text = app.http.get(format!("{}/metrics", app.base)).send().await.expect("metrics").text().await.expect("text");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("orbas_api_http_requests_total")
                && l.contains("route=\"/v1/accounts/{id}\"")
                && l.contains("status=\"401\"")
        })
        .unwrap_or_default();
    let count: f64 = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
    assert!(count >= 3.0, "route template label, not raw paths: {line:?}");
    assert!(text.contains("orbas_api_http_request_duration_seconds_bucket"));
    assert!(text.contains("orbas_api_db_pool_connections{state=\"open\"}"));
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413_problem() {
    let app = spawn_app().await;
    let big = format!("{{\"tenant\":\"x\",\"email\":\"a@b.c\",\"password\":\"{}\"}}", "p".repeat(2 << 20));
    let resp = app
        .http
        .post(format!("{}/v1/auth/login", app.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
}

/// `GET /v1/status`: every part with its health and, where something needs attention, a note that
/// says what to do; figures that match the database and the lake; reps are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_each_part_and_what_to_fix() {
    let lake = tempfile::tempdir().expect("lake dir");
    let app = spawn_app_with_lake(Some(url::Url::from_directory_path(lake.path()).expect("url"))).await;
    write_accounts(&app, lake.path()).await;
    // A slot nobody consumes, as when the CDC service is down.
    let slot = format!("st_{}", &app.db.name[2..18]);
    sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
        .bind(&slot)
        .execute(&app.db.admin)
        .await
        .expect("slot");
    let token = admin_token(&app).await;
    let (code, body) = send(app.http.get(format!("{}/v1/status", app.base)), &token).await;
    sqlx::query("SELECT pg_drop_replication_slot($1)").bind(&slot).execute(&app.db.admin).await.expect("drop slot");
    assert_eq!(code, 200, "{body}");

    let version: String =
        sqlx::query_scalar("SELECT current_setting('server_version')").fetch_one(&app.db.admin).await.expect("version");
    assert_eq!(body["database"]["health"], "ok", "{body}");
    assert_eq!(body["database"]["server"]["version"], json!(version));

    let cdc = &body["change_capture"];
    assert_eq!(cdc["health"], "degraded", "{body}");
    assert_eq!(
        cdc["slots"],
        json!([{"name": slot, "active": false, "lag_bytes": cdc["slots"][0]["lag_bytes"], "wal_status": "reserved"}])
    );
    assert!(cdc["slots"][0]["lag_bytes"].as_i64().is_some_and(|b| b >= 0), "{cdc}");
    let note = cdc["notes"][0].as_str().unwrap_or_default();
    assert!(note.contains(&slot) && note.contains("orbas pipeline cdc"), "{note}");

    let l = &body["lake"];
    assert_eq!(
        (l["health"].clone(), l["silver_tables"].clone(), l["gold_tables"].clone()),
        (json!("ok"), json!(1), json!(0))
    );
    let newest: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(l["silver_newest_commit"].clone()).expect("a commit time");
    assert!((chrono::Utc::now() - newest).num_seconds().abs() < 600, "{newest}");

    assert_eq!(body["search"]["health"], "off");
    // The seeded baselines, trained at the dataset's end (months ago): in service, but stale.
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT m.key FROM model_versions v JOIN ai_models m ON m.id = v.model_id JOIN tenants t ON t.id = v.tenant_id \
         WHERE t.slug = $1 AND v.status = 'active' ORDER BY m.task, m.key",
    )
    .bind(&app.tenant_slug)
    .fetch_all(&app.db.admin)
    .await
    .expect("active models");
    let listed: Vec<&str> =
        body["models"]["active"].as_array().into_iter().flatten().filter_map(|m| m["key"].as_str()).collect();
    assert!(!keys.is_empty());
    assert_eq!(listed, keys);
    assert_eq!(body["models"]["health"], "degraded");
    let note = body["models"]["notes"][0].as_str().unwrap_or_default();
    assert!(note.contains(&keys[0]) && note.contains("days ago"), "{note}");
    assert_eq!(body["deliveries"]["health"], "ok");
    assert_eq!(body["deliveries"]["backlog"]["reports_pending"], 0);
    // The whole is its worst part.
    assert_eq!(body["health"], "degraded");

    let rep: String = sqlx::query_scalar(
        "SELECT u.email FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id \
         WHERE t.slug = $1 AND r.key = 'sales_rep' AND u.status = 'active' ORDER BY u.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("rep");
    let login: serde_json::Value = app.login(&rep, DEMO_PASSWORD).await.json().await.expect("login");
    let rep_token = login["access_token"].as_str().unwrap_or_default();
    let (code, body) = send(app.http.get(format!("{}/v1/status", app.base)), rep_token).await;
    assert_eq!(code, 403, "{body}");
    let (code, _) = send(app.http.get(format!("{}/v1/status", app.base)), "not-a-token").await;
    assert_eq!(code, 401);
}
