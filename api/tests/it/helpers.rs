//! `spawn_app`: the real server on port 0 over a fresh, seeded database, and a client for it.

use orbas_api::server::Server;
use orbas_oltp::seed;
use secrecy::SecretString;

#[derive(Debug)]
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: orbas_testkit::TestDb,
    /// (slug, admin email) of the first seeded tenant.
    pub tenant_slug: String,
    pub admin_email: String,
}

pub const DEMO_PASSWORD: &str = "orbas-demo-password";

pub async fn spawn_app() -> TestApp {
    spawn_app_with_lake(None).await
}

/// As [`spawn_app`], with `POST /v1/sql` over the lake at `lake`.
pub async fn spawn_app_with_lake(lake: Option<url::Url>) -> TestApp {
    let db = orbas_testkit::fresh_db().await;
    let report = seed::load(&db.admin, &seed::SeedConfig::new(2, 0.01, 21).expect("cfg")).await.expect("seed");
    let (tenant, tenant_slug) = report.tenants[0].clone();
    let admin_email: String = sqlx::query_scalar(
        "SELECT u.email FROM users u JOIN roles r ON r.id = u.role_id \
         WHERE u.tenant_id = $1 AND r.key = 'admin' AND u.status = 'active' ORDER BY u.id LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(&db.admin)
    .await
    .expect("admin");
    let secret = SecretString::from("a-test-signing-key-of-at-least-32-bytes");
    let server = Server::build_with_lake("127.0.0.1:0".parse().expect("addr"), db.app.pool().clone(), &secret, lake)
        .await
        .expect("build");
    let base = format!("http://{}", server.local_addr().expect("addr"));
    tokio::spawn(server.run_until_stopped(std::future::pending()));
    TestApp { base, http: reqwest::Client::new(), db, tenant_slug, admin_email }
}

impl TestApp {
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/auth/login", self.base))
            .json(&serde_json::json!({ "tenant": self.tenant_slug, "email": email, "password": password }))
            .send()
            .await
            .expect("login request")
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.expect("get")
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.base)).json(&body).send().await.expect("post")
    }
}

/// An access token of the first tenant's admin.
pub async fn admin_token(app: &TestApp) -> String {
    let body: serde_json::Value = app.login(&app.admin_email, DEMO_PASSWORD).await.json().await.expect("json");
    body["access_token"].as_str().unwrap_or_default().to_owned()
}

/// Sends with a bearer token; the status and the JSON body (`Null` when there is none).
pub async fn send(req: reqwest::RequestBuilder, token: &str) -> (u16, serde_json::Value) {
    let r = req.bearer_auth(token).send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}
