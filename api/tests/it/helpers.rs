//! `spawn_app`: the real server on port 0 over a fresh, seeded database, and a client for it.

use std::sync::Arc;

use deltalake::arrow::array::{RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::protocol::SaveMode;
use orbas_api::server::{Extras, Server};
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
    spawn_app_with(lake, None).await
}

/// As [`spawn_app_with_lake`], with `GET /v1/search` over `search`.
pub async fn spawn_app_with(lake: Option<url::Url>, search: Option<Arc<orbas_search::SearchIndex>>) -> TestApp {
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
    let secrets = orbas_oltp::secrets::SecretsKey::from_bytes(&[42; 32]).expect("secrets key");
    let extras = Extras { lake, search: search.into(), secrets: Some(Arc::new(secrets)), default_llm: None };
    let server = Server::build_with("127.0.0.1:0".parse().expect("addr"), db.app.pool().clone(), &secret, extras)
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

/// Writes every account of every tenant (id, tenant_id, name) as the silver `accounts` table.
pub async fn write_accounts(app: &TestApp, root: &std::path::Path) {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id::text, tenant_id::text, name FROM accounts ORDER BY id")
            .fetch_all(&app.db.admin)
            .await
            .expect("accounts");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("tenant_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let col =
        |i: usize| Arc::new(StringArray::from_iter_values(rows.iter().map(move |r| [&r.0, &r.1, &r.2][i].clone())));
    let batch = RecordBatch::try_new(schema, vec![col(0), col(1), col(2)]).expect("batch");
    let dir = root.join("silver/public/accounts");
    std::fs::create_dir_all(&dir).expect("dir");
    let url = url::Url::from_directory_path(&dir).expect("url");
    let table = deltalake::DeltaTable::try_from_url(url).await.expect("table");
    table.write(vec![batch]).with_save_mode(SaveMode::Append).await.expect("write");
}
