//! The assistant over HTTP with a language model: each tenant's admin points the assistant at an
//! OpenAI-compatible endpoint (a loopback server here) with an API key sealed at rest; answers (JSON and
//! streamed) come from that model with the tenant's key, every question is logged with its cost and
//! rated by its asker; another tenant's settings and sealed key are never used.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use orbas_search::{Access, SearchIndex};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{DEMO_PASSWORD, TestApp, admin_token, send, spawn_app_with};

/// What the loopback model saw: (authorization header, request body) per call.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// An OpenAI-compatible endpoint that answers "<answer> [1]." (JSON or streamed in words) and
/// records each request; with `fail`, every call is a 500.
async fn model_server(fail: Arc<Mutex<bool>>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let keep = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
            keep.lock().expect("lock").push((auth, body.0.clone()));
            let failing = *fail.lock().expect("lock");
            async move { reply(&body.0, failing) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

const WORDS: [&str; 5] = ["The ", "account ", "is ", "active ", "[1]."];

fn reply(body: &Value, failing: bool) -> Response {
    if failing {
        return (StatusCode::INTERNAL_SERVER_ERROR, "model exploded").into_response();
    }
    if body["stream"] == true {
        let mut sse = String::new();
        for w in WORDS {
            sse.push_str(&format!("data: {}\n\n", json!({"choices": [{"delta": {"content": w}}]})));
        }
        sse.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":5}}\n\n");
        sse.push_str("data: [DONE]\n\n");
        return ([(header::CONTENT_TYPE, "text/event-stream")], sse).into_response();
    }
    axum::Json(json!({
        "id": "c1", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": WORDS.concat()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 5, "total_tokens": 125}
    }))
    .into_response()
}

/// An access token of a user of tenant `slug` with `role`, and the user's id.
async fn token_of(app: &TestApp, slug: &str, role: &str) -> (String, Uuid) {
    let (id, email): (Uuid, String) = sqlx::query_as(
        "SELECT u.id, u.email FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id \
         WHERE t.slug = $1 AND r.key = $2 AND u.status = 'active' ORDER BY u.id LIMIT 1",
    )
    .bind(slug)
    .bind(role)
    .fetch_one(&app.db.admin)
    .await
    .expect("a user of the role");
    let login: Value = app
        .http
        .post(format!("{}/v1/auth/login", app.base))
        .json(&json!({ "tenant": slug, "email": email, "password": DEMO_PASSWORD }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    (login["access_token"].as_str().expect("a token").to_owned(), id)
}

/// Fills the index with every tenant's accounts.
async fn fill(ix: &SearchIndex, db: &orbas_testkit::TestDb) {
    let rows: Vec<Value> =
        sqlx::query_scalar("SELECT to_jsonb(t) FROM accounts t ORDER BY id").fetch_all(&db.admin).await.expect("rows");
    let changes = rows
        .into_iter()
        .filter_map(|r| {
            let row: serde_json::Map<String, Value> = serde_json::from_value(r).ok()?;
            orbas_search::document::from_row("accounts", &row)
        })
        .map(|d| orbas_search::index::Change::Upsert(Box::new(d)))
        .collect();
    ix.apply(orbas_search::index::Batch { changes, positions: Vec::new(), max_lsn: None }).expect("apply");
}

fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_owned(), serde_json::from_str(data).ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_answers_through_its_own_model_with_its_sealed_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ix = Arc::new(SearchIndex::open(dir.path(), Access::Writer, None).expect("index"));
    let app = spawn_app_with(None, Some(ix.clone())).await;
    fill(&ix, &app.db).await;
    let admin = admin_token(&app).await;
    let (rep, rep_id) = token_of(&app, &app.tenant_slug, "sales_rep").await;
    let other_slug: String = sqlx::query_scalar("SELECT slug FROM tenants WHERE slug <> $1 ORDER BY slug LIMIT 1")
        .bind(&app.tenant_slug)
        .fetch_one(&app.db.admin)
        .await
        .expect("a second tenant");
    let (other_admin, _) = token_of(&app, &other_slug, "admin").await;
    let name: String = sqlx::query_scalar(
        "SELECT a.name FROM accounts a JOIN tenants t ON t.id = a.tenant_id WHERE t.slug = $1 ORDER BY a.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("an account");
    let question = json!({ "question": format!("What do we know about {name}?") });
    let fail = Arc::new(Mutex::new(false));
    let (base_url, seen) = model_server(fail.clone()).await;
    let settings = format!("{}/v1/admin/assistant", app.base);
    let ask = format!("{}/v1/assistant/query", app.base);
    let key = "sk-tenant-one-secret-0001";

    // No settings: the server has no default model, so answers are extractive.
    let (status, body) = send(app.http.get(&settings), &admin).await;
    assert_eq!((status, body["source"].as_str()), (200, Some("none")), "{body}");
    let (status, body) = send(app.http.post(&ask).json(&question), &admin).await;
    assert_eq!((status, body["mode"].as_str()), (200, Some("extractive")), "{body}");

    // Only an admin manages the settings; bad input is a 422 with the fields named.
    let put = json!({ "base_url": base_url, "model": "tenant-one-model", "api_key": key, "timeout_seconds": 20 });
    let (status, _) = send(app.http.put(&settings).json(&put), &rep).await;
    assert_eq!(status, 403);
    let (status, _) = send(app.http.get(&settings), &rep).await;
    assert_eq!(status, 403);
    let bad = json!({ "base_url": "ftp://x", "model": "", "api_key": "has space" });
    let (status, body) = send(app.http.put(&settings).json(&bad), &admin).await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["base_url", "model", "api_key"], "{body}");

    let (status, body) = send(app.http.put(&settings).json(&put), &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["source"].as_str(), body["api_key_set"].as_bool()), (Some("tenant"), Some(true)), "{body}");
    assert_eq!(body["api_key_hint"], "0001", "{body}");
    assert!(!body.to_string().contains(key), "the key came back: {body}");
    // At rest the key is sealed: its bytes appear nowhere in the row.
    let plain_in_row: bool = sqlx::query_scalar(
        "SELECT position(convert_to($1, 'UTF8') IN s.llm_api_key_sealed) > 0 OR to_jsonb(s)::text LIKE '%' || $1 || '%' \
         FROM ai_settings s JOIN tenants t ON t.id = s.tenant_id WHERE t.slug = $2",
    )
    .bind(key)
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("settings row");
    assert!(!plain_in_row, "the API key is stored in the clear");

    // JSON answer through the tenant's model, with its key; logged with tokens and latency.
    let (status, body) = send(app.http.post(&ask).json(&question), &rep).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["mode"].as_str(), body["answer"].as_str()), (Some("llm"), Some(WORDS.concat().as_str())));
    assert_eq!(body["tokens"], json!({ "prompt": 120, "completion": 5 }), "{body}");
    assert_eq!(body["citations"].as_array().map(Vec::len), Some(1), "{body}");
    let json_query = body["query_id"].as_str().expect("a query id").to_owned();
    {
        let seen = seen.lock().expect("lock");
        let (auth, req) = seen.last().expect("the model was called");
        assert_eq!(auth.as_deref(), Some(format!("Bearer {key}").as_str()));
        assert_eq!(req["model"], "tenant-one-model");
        assert!(req.to_string().contains(&name), "the retrieved record reaches the prompt");
    }

    // Streamed: the deltas in order, then `done` with the logged id.
    let resp = app
        .http
        .post(&ask)
        .header("accept", "text/event-stream")
        .bearer_auth(&rep)
        .json(&question)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 200);
    let evs = events(&resp.text().await.expect("events"));
    let deltas: String =
        evs.iter().filter(|(e, _)| e == "delta").filter_map(|(_, d)| d["text"].as_str()).collect::<String>();
    assert_eq!(deltas, WORDS.concat());
    let (last, done) = evs.last().expect("events");
    assert_eq!(last, "done", "{evs:?}");
    assert_eq!((done["mode"].as_str(), done["answer"].as_str()), (Some("llm"), Some(WORDS.concat().as_str())));
    let streamed_query = done["query_id"].as_str().expect("a query id").to_owned();

    // The log: both questions, the rep's own, newest first, with cost and the model.
    let (status, log) = send(app.http.get(format!("{}/v1/assistant/queries", app.base)), &rep).await;
    assert_eq!(status, 200, "{log}");
    let rows = log.as_array().expect("rows");
    let ids: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, [streamed_query.as_str(), json_query.as_str()], "{log}");
    for (r, streamed) in rows.iter().zip([true, false]) {
        assert_eq!(r["user_id"], rep_id.to_string());
        assert_eq!((r["status"].as_str(), r["mode"].as_str()), (Some("answered"), Some("llm")), "{r}");
        assert_eq!((r["model"].as_str(), r["streamed"].as_bool()), (Some("tenant-one-model"), Some(streamed)));
        assert_eq!((r["prompt_tokens"].as_i64(), r["completion_tokens"].as_i64()), (Some(120), Some(5)));
        assert_eq!(r["citations"].as_array().map(Vec::len), Some(1), "{r}");
        assert!(r["latency_ms"].as_i64().is_some_and(|l| l >= 0), "{r}");
    }

    // Feedback: the asker rates (and corrects); nobody else can; bad ratings are 422.
    let fb = |id: &str| format!("{}/v1/assistant/queries/{id}/feedback", app.base);
    let (status, body) =
        send(app.http.post(fb(&json_query)).json(&json!({ "rating": "down", "correction": "It churned." })), &rep)
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["rating"].as_str(), body["correction"].as_str()), (Some("down"), Some("It churned.")));
    assert!(body["rated_at"].is_string(), "{body}");
    let (status, _) = send(app.http.post(fb(&json_query)).json(&json!({ "rating": "up" })), &admin).await;
    assert_eq!(status, 404, "only the asker rates an answer");
    let (status, body) = send(app.http.post(fb(&json_query)).json(&json!({ "rating": "meh" })), &rep).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = send(app.http.post(fb(&Uuid::now_v7().to_string())).json(&json!({ "rating": "up" })), &rep).await;
    assert_eq!(status, 404);
    // The admin reads every question of the tenant, and none of another tenant's.
    let (_, log) = send(app.http.get(format!("{}/v1/assistant/queries", app.base)), &admin).await;
    assert!(log.as_array().is_some_and(|r| r.len() == 3), "its own extractive one and the rep's two: {log}");
    let (_, log) = send(app.http.get(format!("{}/v1/assistant/queries", app.base)), &other_admin).await;
    assert_eq!(log, json!([]));

    // The other tenant does not get tenant one's model, and its own sealed key is its own: copying
    // tenant one's sealed key into its row does not open (503, not an answer with a foreign key).
    let calls_before = seen.lock().expect("lock").len();
    let (status, body) = send(app.http.post(&ask).json(&json!({ "question": "anything?" })), &other_admin).await;
    assert_eq!((status, body["mode"].as_str()), (200, Some("extractive")), "{body}");
    let other_put =
        json!({ "base_url": base_url, "model": "tenant-two-model", "api_key": "sk-tenant-two-secret-0002" });
    let (status, _) = send(app.http.put(&settings).json(&other_put), &other_admin).await;
    assert_eq!(status, 200);
    sqlx::query(
        "UPDATE ai_settings SET llm_api_key_sealed = (SELECT s.llm_api_key_sealed FROM ai_settings s JOIN tenants t \
         ON t.id = s.tenant_id WHERE t.slug = $1) WHERE tenant_id = (SELECT id FROM tenants WHERE slug = $2)",
    )
    .bind(&app.tenant_slug)
    .bind(&other_slug)
    .execute(&app.db.admin)
    .await
    .expect("copy the sealed key");
    let (status, body) = send(app.http.post(&ask).json(&json!({ "question": "anything?" })), &other_admin).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("set the API key again")), "{body}");
    assert_eq!(seen.lock().expect("lock").len(), calls_before, "the model was called with a key that is not theirs");

    // Keep the key (absent), then clear it (null): the model is then called without authorization.
    let (_, body) = send(app.http.put(&settings).json(&json!({ "base_url": base_url, "model": "m2" })), &admin).await;
    assert_eq!((body["api_key_set"].as_bool(), body["model"].as_str()), (Some(true), Some("m2")), "{body}");
    let clear = json!({ "base_url": base_url, "model": "m2", "api_key": null });
    let (_, body) = send(app.http.put(&settings).json(&clear), &admin).await;
    assert_eq!(body["api_key_set"], false, "{body}");
    let (status, _) = send(app.http.post(&ask).json(&question), &admin).await;
    assert_eq!(status, 200);
    assert_eq!(seen.lock().expect("lock").last().map(|(a, _)| a.clone()), Some(None));

    // A failing model: 502 for the caller, a `failed` row in the log.
    *fail.lock().expect("lock") = true;
    let (status, body) = send(app.http.post(&ask).json(&question), &rep).await;
    assert_eq!(status, 502, "{body}");
    let (_, log) = send(app.http.get(format!("{}/v1/assistant/queries?limit=1", app.base)), &rep).await;
    assert_eq!(log[0]["status"], "failed", "{log}");
    assert!(log[0]["error"].as_str().is_some_and(|e| e.contains("language model failed")), "{log}");
    *fail.lock().expect("lock") = false;

    // Settings removed: extractive again; a second delete is a 404; every change is audited.
    let (status, _) = send(app.http.delete(&settings), &admin).await;
    assert_eq!(status, 204);
    let (status, _) = send(app.http.delete(&settings), &admin).await;
    assert_eq!(status, 404);
    let (_, body) = send(app.http.post(&ask).json(&question), &admin).await;
    assert_eq!(body["mode"], "extractive", "{body}");
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT a.action FROM audit_logs a JOIN tenants t ON t.id = a.tenant_id \
         WHERE t.slug = $1 AND a.resource = 'ai_settings' ORDER BY a.id",
    )
    .bind(&app.tenant_slug)
    .fetch_all(&app.db.admin)
    .await
    .expect("audit");
    assert_eq!(audited, ["update", "update", "update", "delete"]);
    let leaked: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE changes::text LIKE '%secret-000%'")
        .fetch_one(&app.db.admin)
        .await
        .expect("audit");
    assert_eq!(leaked, 0, "a key reached the audit log");
}
