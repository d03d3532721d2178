//! Identity flows over HTTP: invitations and password resets through single-use mailed tokens (with
//! the SCRAM verifier stored for the SQL port), and API keys — shown once, scoped, rate-limited,
//! revocable.

use serde_json::{Value, json};

use crate::helpers::{DEMO_PASSWORD, TestApp, send, spawn_app};

async fn token_for(app: &TestApp, email: &str, password: &str) -> String {
    let body: Value = app.login(email, password).await.json().await.expect("json");
    body["access_token"].as_str().unwrap_or_default().to_owned()
}

/// The token in the newest mail to `to`.
async fn mailed_token(app: &TestApp, to: &str) -> String {
    let body: String =
        sqlx::query_scalar("SELECT body_text FROM email_outbox WHERE to_address = $1 ORDER BY id DESC LIMIT 1")
            .bind(to)
            .fetch_one(&app.db.admin)
            .await
            .expect("mail");
    body.split("token=").nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn invite_accept_login_and_reset() {
    let app = spawn_app().await;
    let admin = token_for(&app, &app.admin_email, DEMO_PASSWORD).await;
    let email = "new.rep@orbas.example";
    let (status, user) = send(
        app.http
            .post(format!("{}/v1/users", app.base))
            .json(&json!({"email": email, "full_name": "New Rep", "role": "sales_rep"})),
        &admin,
    )
    .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["status"], "invited");
    let (status, _) = send(
        app.http
            .post(format!("{}/v1/users", app.base))
            .json(&json!({"email": email.to_uppercase(), "full_name": "Dup", "role": "sales_rep"})),
        &admin,
    )
    .await;
    assert_eq!(status, 409, "one user per email");
    assert_eq!(app.login(email, "irrelevant-password").await.status(), 401, "no password yet");

    let token = mailed_token(&app, email).await;
    assert!(token.starts_with("inv_"), "{token}");
    let weak = app.post_json("/v1/auth/accept-invite", json!({"token": token, "password": "password"})).await;
    assert_eq!(weak.status(), 422, "the policy applies, and the token survives a refused password");
    let password = "correct horse battery staple 42";
    let ok = app.post_json("/v1/auth/accept-invite", json!({"token": token, "password": password})).await;
    assert_eq!(ok.status(), 204);
    let again = app.post_json("/v1/auth/accept-invite", json!({"token": token, "password": password})).await;
    assert_eq!(again.status(), 422, "single use");
    let rep = token_for(&app, email, password).await;
    assert!(!rep.is_empty());
    let scram: Option<String> = sqlx::query_scalar("SELECT scram_verifier FROM user_credentials WHERE id = $1::uuid")
        .bind(user["id"].as_str().unwrap_or_default())
        .fetch_one(&app.db.admin)
        .await
        .expect("credentials");
    assert!(scram.unwrap_or_default().starts_with("SCRAM-SHA-256$4096:"), "the SQL port can check this password");

    // Reset: unknown emails answer the same; the old sessions end; the new password works.
    let unknown =
        app.post_json("/v1/auth/password-reset", json!({"tenant": app.tenant_slug, "email": "nobody@x.example"})).await;
    assert_eq!(unknown.status(), 202);
    let known = app.post_json("/v1/auth/password-reset", json!({"tenant": app.tenant_slug, "email": email})).await;
    assert_eq!(known.status(), 202);
    let reset = mailed_token(&app, email).await;
    assert!(reset.starts_with("pwr_"), "{reset}");
    let invite_as_reset =
        app.post_json("/v1/auth/password-reset/confirm", json!({"token": token, "password": password})).await;
    assert_eq!(invite_as_reset.status(), 422);
    let new_password = "another long passphrase 17";
    let done =
        app.post_json("/v1/auth/password-reset/confirm", json!({"token": reset, "password": new_password})).await;
    assert_eq!(done.status(), 204);
    assert_eq!(app.get("/v1/me", &rep).await.status(), 401, "sessions end with a reset");
    assert_eq!(app.login(email, password).await.status(), 401);
    assert!(!token_for(&app, email, new_password).await.is_empty());

    // Disabling a user ends access at once.
    let rep = token_for(&app, email, new_password).await;
    let (status, _) = send(
        app.http
            .patch(format!("{}/v1/users/{}", app.base, user["id"].as_str().unwrap_or_default()))
            .json(&json!({"status": "disabled"})),
        &admin,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.get("/v1/me", &rep).await.status(), 401);
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_limited_and_revocable() {
    let app = spawn_app().await;
    let admin = token_for(&app, &app.admin_email, DEMO_PASSWORD).await;
    let (status, created) = send(
        app.http.post(format!("{}/v1/api-keys", app.base)).json(&json!({
            "name": "warehouse sync", "scopes": ["accounts:read", "tasks:*"], "rate_limit_per_minute": 5})),
        &admin,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap_or_default().to_owned();
    assert!(key.starts_with("orbas_"));
    let (_, listed) = send(app.http.get(format!("{}/v1/api-keys", app.base)), &admin).await;
    assert!(!listed.to_string().contains(&key), "never shown again");
    let stored: (String, Option<String>) =
        sqlx::query_as("SELECT key_hash, scram_verifier FROM api_keys WHERE id = $1::uuid")
            .bind(created["id"].as_str().unwrap_or_default())
            .fetch_one(&app.db.admin)
            .await
            .expect("row");
    assert_ne!(stored.0, key);
    assert!(stored.1.unwrap_or_default().starts_with("SCRAM-SHA-256$"));

    let (status, me) = send(app.http.get(format!("{}/v1/me", app.base)), &key).await;
    assert_eq!((status, &me["api_key_id"]), (200, &created["id"]));
    assert_eq!(send(app.http.get(format!("{}/v1/accounts?limit=1", app.base)), &key).await.0, 200);
    assert_eq!(send(app.http.get(format!("{}/v1/leads?limit=1", app.base)), &key).await.0, 403, "outside its scopes");
    let (status, _) =
        send(app.http.post(format!("{}/v1/api-keys", app.base)).json(&json!({"name": "x", "scopes": ["*"]})), &key)
            .await;
    assert_eq!(status, 403, "a key cannot mint keys");
    // 5 per minute: the budget is spent by now (4 requests above) — the next one or two are refused.
    let mut limited = None;
    for _ in 0..3 {
        let r = app.http.get(format!("{}/v1/accounts?limit=1", app.base)).bearer_auth(&key).send().await.expect("get");
        if r.status() == 429 {
            limited = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|s| s.parse::<u64>().ok());
            break;
        }
    }
    assert!(limited.is_some_and(|s| (1..=12).contains(&s)), "429 with Retry-After: {limited:?}");

    let (status, revoked) = send(
        app.http.delete(format!("{}/v1/api-keys/{}", app.base, created["id"].as_str().unwrap_or_default())),
        &admin,
    )
    .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(send(app.http.get(format!("{}/v1/me", app.base)), &key).await.0, 401);
    let (status, _) = send(
        app.http.post(format!("{}/v1/api-keys", app.base)).json(&json!({"name": "bad", "scopes": ["accounts:fly"]})),
        &admin,
    )
    .await;
    assert_eq!(status, 422);
}
