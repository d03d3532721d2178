//! List semantics shared by every resource: filters, sort with keyset cursors, sparse fieldsets, and
//! the errors a malformed query gets; plus `Idempotency-Key` on POST.

use serde_json::{Value, json};

use crate::helpers::{TestApp, admin_token, spawn_app};

async fn get_json(app: &TestApp, path: &str, t: &str) -> (u16, Value) {
    let r = app.get(path, t).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn sorted_pages_walk_every_row_once_in_order() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    let expected: Vec<String> = sqlx::query_scalar(
        "SELECT o.id::text FROM opportunities o JOIN tenants t ON t.id = o.tenant_id \
         WHERE t.slug = $1 ORDER BY o.amount DESC, o.id DESC",
    )
    .bind(&app.tenant_slug)
    .fetch_all(&app.db.admin)
    .await
    .expect("expected");
    assert!(expected.len() > 20, "seed has deals: {}", expected.len());
    let (mut seen, mut after, mut amounts) = (Vec::new(), None::<String>, Vec::new());
    loop {
        let cursor = after.as_ref().map(|c| format!("&after={c}")).unwrap_or_default();
        let (status, page) = get_json(&app, &format!("/v1/opportunities?sort=-amount&limit=7{cursor}"), &t).await;
        assert_eq!(status, 200, "{page}");
        for o in page["items"].as_array().into_iter().flatten() {
            seen.push(o["id"].as_str().unwrap_or_default().to_owned());
            amounts.push(o["amount"].as_str().unwrap_or_default().parse::<f64>().unwrap_or(-1.0));
        }
        match page["next_cursor"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert!(amounts.windows(2).all(|w| w[0] >= w[1]));
}

#[tokio::test]
async fn sparse_fields_and_bad_queries() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    let (status, page) = get_json(&app, "/v1/accounts?fields=name,industry&limit=3", &t).await;
    assert_eq!(status, 200);
    for a in page["items"].as_array().into_iter().flatten() {
        let mut keys: Vec<_> = a.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        keys.sort();
        assert_eq!(keys, vec!["id", "industry", "name"]);
    }
    for (query, mentions) in [
        ("sort=password", "sortable"),
        ("fields=name,secret", "no field"),
        ("after=not-a-cursor", "cursor"),
        ("limit=many", "limit"),
        ("bogus=1", "bogus"),
    ] {
        let r = app.get(&format!("/v1/accounts?{query}"), &t).await;
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.expect("problem");
        assert!(body["detail"].as_str().unwrap_or_default().contains(mentions), "{query}: {body}");
    }
    // A cursor only continues the sort it came from.
    let (_, first) = get_json(&app, "/v1/accounts?sort=name&limit=2", &t).await;
    let cursor = first["next_cursor"].as_str().unwrap_or_default();
    let r = app.get(&format!("/v1/accounts?sort=-created_at&after={cursor}"), &t).await;
    assert_eq!(r.status(), 400);
    // Filters combine: industry and a case-insensitive domain.
    let (domain, industry): (String, String) = sqlx::query_as(
        "SELECT a.domain, a.industry FROM accounts a JOIN tenants t ON t.id = a.tenant_id WHERE t.slug = $1 LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("account");
    let (status, page) =
        get_json(&app, &format!("/v1/accounts?industry={industry}&domain={}", domain.to_uppercase()), &t).await;
    assert_eq!(status, 200);
    let items = page["items"].as_array().cloned().unwrap_or_default();
    assert!(!items.is_empty());
    assert!(items.iter().all(|a| a["domain"] == domain.as_str() && a["industry"] == industry.as_str()));
}

#[tokio::test]
async fn idempotency_keys_replay_instead_of_writing_twice() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    let url = format!("{}/v1/tasks", app.base);
    let body = json!({"kind": "call", "subject": "Idempotent call"});
    let send = |key: &'static str, body: Value| {
        app.http.post(&url).bearer_auth(&t).header("idempotency-key", key).json(&body).send()
    };
    let first = send("retry-1", body.clone()).await.expect("post");
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let location = first.headers().get("location").cloned();
    let created: Value = first.json().await.expect("json");
    let again = send("retry-1", body.clone()).await.expect("post");
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!(again.headers().get("location").cloned(), location);
    let replayed: Value = again.json().await.expect("json");
    assert_eq!(replayed, created);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE subject = 'Idempotent call'")
        .fetch_one(&app.db.admin)
        .await
        .expect("count");
    assert_eq!(count, 1, "a retry does not write twice");
    // Same key, other body: refused; a new key writes again.
    let other = send("retry-1", json!({"kind": "call", "subject": "Something else"})).await.expect("post");
    assert_eq!(other.status(), 422);
    assert_eq!(send("retry-2", body.clone()).await.expect("post").status(), 201);
    // A refused request is refused again on retry, without running twice.
    let bad = json!({"kind": "carrier-pigeon", "subject": "x"});
    assert_eq!(send("retry-3", bad.clone()).await.expect("post").status(), 422);
    let r = send("retry-3", bad).await.expect("post");
    assert_eq!((r.status().as_u16(), r.headers().contains_key("idempotent-replayed")), (422, true));
}
