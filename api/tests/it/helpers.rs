//! `spawn_app`: the real server on port 0 over a fresh, seeded database, and a client for it.

use std::sync::Arc;

use deltalake::arrow::array::{RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::protocol::SaveMode;
use std::time::Duration;

use orbas_api::server::{Extras, Server};
use orbas_oltp::model::TenantId;
use orbas_oltp::seed;
use orbas_pipeline::broker::{Broker, BrokerOptions};
use orbas_pipeline::cdc::CdcConfig;
use orbas_warehouse::sink::{Sink, SinkConfig};
use orbas_warehouse::sql::{Lake, Limits};
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
/// The access-token signing key of [`spawn_app`]'s server.
pub const JWT_SECRET: &str = "a-test-signing-key-of-at-least-32-bytes";

pub async fn spawn_app() -> TestApp {
    spawn_app_with_lake(None).await
}

/// As [`spawn_app`], with `POST /v1/sql` over the lake at `lake`.
pub async fn spawn_app_with_lake(lake: Option<url::Url>) -> TestApp {
    spawn_app_with(lake, None).await
}

/// As [`spawn_app_with_lake`], with `GET /v1/search` over `search`.
pub async fn spawn_app_with(lake: Option<url::Url>, search: Option<Arc<orbas_search::SearchIndex>>) -> TestApp {
    spawn_app_rendering(lake, search, None).await
}

/// As [`spawn_app_with`], with headless Chromium printing PDFs.
pub async fn spawn_app_rendering(
    lake: Option<url::Url>,
    search: Option<Arc<orbas_search::SearchIndex>>,
    renderer: Option<Arc<orbas_dashboards::render::Renderer>>,
) -> TestApp {
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
    let secret = SecretString::from(JWT_SECRET);
    let secrets = orbas_oltp::secrets::SecretsKey::from_bytes(&[42; 32]).expect("secrets key");
    let extras = Extras { lake, search: search.into(), secrets: Some(Arc::new(secrets)), default_llm: None, renderer };
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

/// The change stream of a test app's database into a lake: CDC, the broker and the sink (with gold).
pub struct Flow {
    _broker: Broker,
    /// The broker's bootstrap address.
    pub brokers: String,
    pub lake: Lake,
}

/// CDC and the sink from the app's database into `root`.
pub async fn flow(app: &TestApp, root: &url::Url) -> Flow {
    let broker = Broker::start(BrokerOptions::default()).expect("start tansu (./scripts/setup.sh installs it)");
    let mut cfg = CdcConfig::new(&app.db.admin_url, &broker.bootstrap()).expect("cdc config");
    cfg.slot = format!("s_{}", &app.db.name[2..18]);
    cfg.status_interval = Duration::from_millis(100);
    cfg.heartbeat_interval = Duration::ZERO;
    let slot = cfg.slot.clone();
    tokio::spawn(orbas_pipeline::cdc::run(cfg, std::future::pending::<()>()));
    orbas_testkit::cdc_snapshot_done(&app.db.admin, &slot).await;
    let mut sink = SinkConfig::new(&app.db.admin_url, &broker.bootstrap(), root.clone());
    sink.batch_interval = Duration::from_millis(200);
    sink.discovery_interval = Duration::from_millis(500);
    let (_stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = _stop;
        if let Err(e) = async { Sink::connect(sink).await?.run(rx).await }.await {
            eprintln!("the sink stopped: {e}");
        }
    });
    Flow { brokers: broker.bootstrap(), _broker: broker, lake: Lake::new(root.clone()) }
}

/// Waits until the tenant's silver `table` holds what Postgres holds (row count, and the latest
/// `updated_at`, so updates have arrived too).
pub async fn landed(app: &TestApp, lake: &Lake, tenant: TenantId, table: &str) {
    // Table names are constants of this file.
    let (want, latest): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), max(updated_at) FROM {table} WHERE tenant_id = $1"
    )))
    .bind(tenant)
    .fetch_one(&app.db.admin)
    .await
    .expect("count");
    let want_latest = latest.map(|t| t.timestamp_micros());
    orbas_testkit::eventually(&format!("silver {table}: {want} rows"), Duration::from_secs(240), || async {
        let Ok(ctx) = lake.session(&tenant.to_string(), Limits::default()).await else { return false };
        let sql = format!("SELECT count(*), CAST(max(updated_at) AS BIGINT) FROM {table}");
        let Ok(df) = ctx.sql(&sql).await else { return false };
        let Ok(batches) = df.collect().await else { return false };
        batches.first().is_some_and(|b| {
            use deltalake::arrow::array::{Array, AsArray};
            use deltalake::arrow::datatypes::Int64Type;
            let n = b.column(0).as_primitive::<Int64Type>().value(0);
            let m = b.column(1).as_primitive::<Int64Type>();
            n == want && (m.is_valid(0).then(|| m.value(0)) == want_latest)
        })
    })
    .await;
}

/// A test app over a lake directory, its first tenant with the standard KPIs and role dashboards
/// installed (the lake stays empty until [`flow`] streams the CRM into it).
pub struct LakeApp {
    pub app: TestApp,
    pub tenant: TenantId,
    pub root: url::Url,
    pub db: orbas_oltp::db::Db,
    /// The lake's directory, removed when dropped.
    pub dir: tempfile::TempDir,
}

pub async fn lake_app_with_dashboards() -> LakeApp {
    lake_app_rendering(None).await
}

/// As [`lake_app_with_dashboards`], the server printing PDFs with `renderer`.
pub async fn lake_app_rendering(renderer: Option<Arc<orbas_dashboards::render::Renderer>>) -> LakeApp {
    let dir = tempfile::tempdir().expect("lake dir");
    let root = url::Url::from_directory_path(dir.path()).expect("lake url");
    let app = spawn_app_rendering(Some(root.clone()), None, renderer).await;
    let tenant = TenantId(
        sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
            .bind(&app.tenant_slug)
            .fetch_one(&app.db.admin)
            .await
            .expect("tenant"),
    );
    let db = orbas_oltp::db::Db::new(app.db.app.pool().clone());
    let mut tx = db.begin(tenant).await.expect("tx");
    orbas_dashboards::store::install_defaults(tx.conn(), tenant, chrono::Utc::now()).await.expect("install");
    tx.commit().await.expect("commit");
    LakeApp { app, tenant, root, db, dir }
}

/// Logs of the code under test on the test's output, filtered by `RUST_LOG` (nothing when unset).
pub fn trace() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The text of a PDF, by poppler's `pdftotext` (installed by scripts/setup.sh).
pub fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).expect("write the PDF");
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils; run scripts/setup.sh)");
    assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}
