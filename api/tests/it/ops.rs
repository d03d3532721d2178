//! Operations: request ids, Prometheus metrics, the body size limit.

use crate::helpers::spawn_app;

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
