//! Login, refresh-token rotation and revocation, lockout — over HTTP against the real server.

use serde_json::{Value, json};

use crate::helpers::{DEMO_PASSWORD, spawn_app};

async fn json(resp: reqwest::Response) -> Value {
    resp.json().await.expect("json body")
}

#[tokio::test]
async fn login_gives_tokens_that_identify_the_user() {
    let app = spawn_app().await;
    let resp = app.login(&app.admin_email, DEMO_PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let tokens = json(resp).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let me = app.get("/v1/me", tokens["access_token"].as_str().unwrap_or_default()).await;
    assert_eq!(me.status(), 200);
    let me = json(me).await;
    assert_eq!(me["role"], "admin");
    let history: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM login_history WHERE succeeded AND method = 'password' AND user_id = $1::uuid",
    )
    .bind(me["user_id"].as_str().unwrap_or_default())
    .fetch_one(&app.db.admin)
    .await
    .expect("history");
    assert!(history >= 1);
}

#[tokio::test]
async fn bad_credentials_and_bad_bodies_are_problems_not_errors() {
    let app = spawn_app().await;
    for (email, password) in [(app.admin_email.as_str(), "wrong-password"), ("nobody@example.com", DEMO_PASSWORD)] {
        let resp = app.login(email, password).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
        assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
        assert_eq!(json(resp).await["detail"], "invalid tenant, email or password", "same answer for both");
    }
    let unknown_field = app
        .post_json(
            "/v1/auth/login",
            json!({"tenant": app.tenant_slug, "email": "a@b.c", "password": "x", "role": "admin"}),
        )
        .await;
    assert_eq!(unknown_field.status(), 422);
    assert!(json(unknown_field).await["errors"][0]["message"].as_str().unwrap_or_default().contains("role"));
    let malformed = app
        .http
        .post(format!("{}/v1/auth/login", app.base))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("send");
    assert_eq!(malformed.status(), 400);
    assert_eq!(app.get("/v1/me", "not-a-jwt").await.status(), 401);
}

#[tokio::test]
async fn refresh_rotates_and_replaying_an_old_token_ends_the_session() {
    let app = spawn_app().await;
    let first = json(app.login(&app.admin_email, DEMO_PASSWORD).await).await;
    let second = app.post_json("/v1/auth/refresh", json!({"refresh_token": first["refresh_token"]})).await;
    assert_eq!(second.status(), 200);
    let second = json(second).await;
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let access = second["access_token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(app.get("/v1/me", &access).await.status(), 200);

    let replay = app.post_json("/v1/auth/refresh", json!({"refresh_token": first["refresh_token"]})).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(app.get("/v1/me", &access).await.status(), 401, "reuse revokes the whole family");
    let after = app.post_json("/v1/auth/refresh", json!({"refresh_token": second["refresh_token"]})).await;
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn logout_revokes_the_session_at_once() {
    let app = spawn_app().await;
    let tokens = json(app.login(&app.admin_email, DEMO_PASSWORD).await).await;
    let access = tokens["access_token"].as_str().unwrap_or_default();
    let out = app.http.post(format!("{}/v1/auth/logout", app.base)).bearer_auth(access).send().await.expect("logout");
    assert_eq!(out.status(), 204);
    assert_eq!(app.get("/v1/me", access).await.status(), 401);
    let refresh = app.post_json("/v1/auth/refresh", json!({"refresh_token": tokens["refresh_token"]})).await;
    assert_eq!(refresh.status(), 401);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_even_for_the_right_password() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_eq!(app.login(&app.admin_email, "wrong-password").await.status(), 401);
    }
    let locked = app.login(&app.admin_email, DEMO_PASSWORD).await;
    assert_eq!(locked.status(), 429);
    assert!(locked.headers().get("retry-after").is_some());
}
