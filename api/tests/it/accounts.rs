//! `/v1/accounts` over HTTP: CRUD round trip, optimistic concurrency, audit, RBAC with ownership,
//! tenant isolation and mass-assignment attempts.

use serde_json::{Value, json};

use crate::helpers::{DEMO_PASSWORD, TestApp, spawn_app};

async fn token(app: &TestApp, email: &str) -> String {
    let resp = app.login(email, DEMO_PASSWORD).await;
    assert_eq!(resp.status(), 200, "login {email}");
    let body: Value = resp.json().await.expect("json");
    body["access_token"].as_str().unwrap_or_default().to_owned()
}

async fn email_of_role(app: &TestApp, role: &str) -> String {
    sqlx::query_scalar(
        "SELECT u.email FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id \
         WHERE t.slug = $1 AND r.key = $2 AND u.status = 'active' ORDER BY u.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .bind(role)
    .fetch_one(&app.db.admin)
    .await
    .expect("user of role")
}

fn url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.base)
}

#[tokio::test]
async fn crud_round_trip_with_etag_and_audit() {
    let app = spawn_app().await;
    let t = token(&app, &app.admin_email).await;
    let created = app
        .http
        .post(url(&app, "/v1/accounts"))
        .bearer_auth(&t)
        .json(&json!({"name": "Umbrella Corp", "industry": "healthcare", "domain": "umbrella.example"}))
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), 201);
    let location = created.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let etag = created.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: Value = created.json().await.expect("json");
    assert_eq!(body["name"], "Umbrella Corp");
    assert_eq!(location, format!("/v1/accounts/{}", body["id"].as_str().unwrap_or_default()));

    let read = app.http.get(url(&app, &location)).bearer_auth(&t).send().await.expect("get");
    assert_eq!(read.headers().get("etag").and_then(|v| v.to_str().ok()), Some(etag.as_str()));

    let patched = app
        .http
        .patch(url(&app, &location))
        .bearer_auth(&t)
        .header("if-match", &etag)
        .json(&json!({"name": "Umbrella Inc"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    let stale = app
        .http
        .patch(url(&app, &location))
        .bearer_auth(&t)
        .header("if-match", &etag)
        .json(&json!({"name": "Lost update"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(stale.status(), 412);

    let deleted = app.http.delete(url(&app, &location)).bearer_auth(&t).send().await.expect("delete");
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.http.get(url(&app, &location)).bearer_auth(&t).send().await.expect("get").status(), 404);

    let audit: Vec<(String, Value)> = sqlx::query_as(
        "SELECT action, changes FROM audit_logs WHERE resource = 'accounts' AND resource_id = $1::uuid ORDER BY id",
    )
    .bind(body["id"].as_str().unwrap_or_default())
    .fetch_all(&app.db.admin)
    .await
    .expect("audit");
    let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, vec!["create", "update", "delete"]);
    assert_eq!(audit[1].1, json!({"name": {"before": "Umbrella Corp", "after": "Umbrella Inc"}}));
}

#[tokio::test]
async fn reps_edit_their_own_accounts_only_and_read_only_users_edit_nothing() {
    let app = spawn_app().await;
    let rep = email_of_role(&app, "sales_rep").await;
    let rt = token(&app, &rep).await;
    let mine = app
        .http
        .post(url(&app, "/v1/accounts"))
        .bearer_auth(&rt)
        .json(&json!({"name": "Rep's own"}))
        .send()
        .await
        .expect("post");
    assert_eq!(mine.status(), 201);
    let mine: Value = mine.json().await.expect("json");
    let ok = app
        .http
        .patch(url(&app, &format!("/v1/accounts/{}", mine["id"].as_str().unwrap_or_default())))
        .bearer_auth(&rt)
        .json(&json!({"industry": "retail"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(ok.status(), 200);

    let others: String = sqlx::query_scalar(
        "SELECT a.id::text FROM accounts a JOIN tenants t ON t.id = a.tenant_id JOIN users u ON u.id = a.owner_id \
         WHERE t.slug = $1 AND u.email <> $2 LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .bind(&rep)
    .fetch_one(&app.db.admin)
    .await
    .expect("someone else's account");
    let denied = app
        .http
        .patch(url(&app, &format!("/v1/accounts/{others}")))
        .bearer_auth(&rt)
        .json(&json!({"name": "hijacked"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(denied.status(), 403);

    let ro = token(&app, &email_of_role(&app, "read_only").await).await;
    assert_eq!(
        app.http.get(url(&app, &format!("/v1/accounts/{others}"))).bearer_auth(&ro).send().await.expect("get").status(),
        200
    );
    let create = app
        .http
        .post(url(&app, "/v1/accounts"))
        .bearer_auth(&ro)
        .json(&json!({"name": "nope"}))
        .send()
        .await
        .expect("post");
    assert_eq!(create.status(), 403);
}

#[tokio::test]
async fn other_tenants_ids_are_404_and_tenant_id_cannot_be_assigned() {
    let app = spawn_app().await;
    let t = token(&app, &app.admin_email).await;
    let foreign: String = sqlx::query_scalar(
        "SELECT a.id::text FROM accounts a JOIN tenants t ON t.id = a.tenant_id WHERE t.slug <> $1 LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("foreign account");
    for req in [
        app.http.get(url(&app, &format!("/v1/accounts/{foreign}"))),
        app.http.patch(url(&app, &format!("/v1/accounts/{foreign}"))).json(&json!({"name": "x"})),
        app.http.delete(url(&app, &format!("/v1/accounts/{foreign}"))),
    ] {
        let resp = req.bearer_auth(&t).send().await.expect("send");
        assert_eq!(resp.status(), 404);
    }
    let before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts").fetch_one(&app.db.admin).await.expect("count");
    let mass = app
        .http
        .post(url(&app, "/v1/accounts"))
        .bearer_auth(&t)
        .json(&json!({"name": "Sneaky", "tenant_id": foreign}))
        .send()
        .await
        .expect("post");
    assert_eq!(mass.status(), 422);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts").fetch_one(&app.db.admin).await.expect("count");
    assert_eq!(before, after, "nothing persisted");
    let bad_id = app.http.get(url(&app, "/v1/accounts/not-a-uuid")).bearer_auth(&t).send().await.expect("get");
    assert_eq!(bad_id.status(), 404);
    let bad_ref = app
        .http
        .post(url(&app, "/v1/accounts"))
        .bearer_auth(&t)
        .json(&json!({"name": "Child", "parent_id": foreign}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad_ref.status(), 422, "a parent in another tenant is a missing reference");
}

#[tokio::test]
async fn list_pages_through_everything_once() {
    let app = spawn_app().await;
    let t = token(&app, &app.admin_email).await;
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts a JOIN tenants t ON t.id = a.tenant_id WHERE t.slug = $1")
            .bind(&app.tenant_slug)
            .fetch_one(&app.db.admin)
            .await
            .expect("count");
    let (mut seen, mut after) = (Vec::new(), None::<String>);
    loop {
        let mut u = url(&app, "/v1/accounts?limit=7");
        if let Some(a) = &after {
            u.push_str(&format!("&after={a}"));
        }
        let page: Value = app.http.get(u).bearer_auth(&t).send().await.expect("list").json().await.expect("json");
        for item in page["items"].as_array().cloned().unwrap_or_default() {
            seen.push(item["id"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len() as i64, unique.len() as i64), (total, total));
    let bad = app.http.get(url(&app, "/v1/accounts?limit=abc")).bearer_auth(&t).send().await.expect("list");
    assert_eq!(bad.status(), 400);
}
