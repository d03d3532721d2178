//! `orbas demo`: Postgres up (embedded unless DATABASE_URL is set), migrated, seeded once, the server
//! listening, URLs printed. Later stages (CDC, lake, models) join this command as they arrive.

use anyhow::Context;
use orbas_oltp::cluster::{ClusterOptions, PgCluster};
use orbas_oltp::{db, seed};
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::cli::DemoArgs;
use crate::server::Server;
use crate::settings::{Settings, with_credentials};

const DEMO_DATABASE: &str = "orbas";

pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    let mut cluster = None;
    if settings.database.url.is_none() {
        let opts = ClusterOptions { data_dir: args.data_dir.clone(), ..ClusterOptions::default() };
        let c = PgCluster::start(opts).await.context("starting the embedded Postgres")?;
        create_database_if_missing(&c).await?;
        settings.database.url = Some(SecretString::from(c.url(DEMO_DATABASE)));
        cluster = Some(c);
    }
    let admin_url = settings.database.admin_url()?.to_owned();
    let admin = db::connect(&admin_url, 4).await?;
    db::migrate(&admin).await?;
    let app_url = provision_app(&admin, &mut settings, &admin_url).await?;
    seed_if_empty(&admin, &args).await?;

    let app_pool = db::connect(&app_url, settings.database.max_connections).await?;
    let jwt_secret = match &settings.jwt_secret {
        Some(s) => s.clone(),
        None => SecretString::from(random_secret(48)),
    };
    let server = Server::build(settings.http_addr, app_pool, &jwt_secret).await?;
    let http = format!("http://{}", server.local_addr()?);
    print_banner(&admin, &http, &admin_url, cluster.is_some()).await?;

    if args.exit_when_ready {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run_until_stopped(async { drop(rx.await) }));
        let ready = check_ready(&http).await;
        let _ = tx.send(());
        serving.await??;
        ready?;
        println!("demo is ready; exiting as asked (--exit-when-ready)");
    } else {
        server.run_until_stopped(super::shutdown_signal()).await?;
    }
    if let Some(c) = cluster {
        c.stop().await?;
    }
    Ok(())
}

async fn create_database_if_missing(c: &PgCluster) -> anyhow::Result<()> {
    let pool = db::connect(&c.url("postgres"), 1).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(DEMO_DATABASE)
        .fetch_one(&pool)
        .await?;
    if !exists {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DEMO_DATABASE}"))).execute(&pool).await?;
    }
    pool.close().await;
    Ok(())
}

/// Makes sure the application login exists and returns the server's URL.
async fn provision_app(admin: &PgPool, settings: &mut Settings, admin_url: &str) -> anyhow::Result<String> {
    if let Some(url) = &settings.database.app_url {
        return Ok(url.expose_secret().to_owned());
    }
    let password = match &settings.database.app_password {
        Some(p) => p.expose_secret().to_owned(),
        None => random_secret(24),
    };
    db::provision_app_role(admin, &settings.database.app_user, &password).await?;
    with_credentials(admin_url, &settings.database.app_user, &password)
}

async fn seed_if_empty(admin: &PgPool, args: &DemoArgs) -> anyhow::Result<()> {
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(admin).await?;
    if tenants > 0 {
        println!("database already holds {tenants} tenant(s); not seeding again");
        return Ok(());
    }
    let cfg = seed::SeedConfig::new(args.seed.tenants, args.seed.scale, args.seed.seed)?;
    let report = seed::load(admin, &cfg).await?;
    super::seed::print_report(&report);
    Ok(())
}

async fn print_banner(admin: &PgPool, http: &str, admin_url: &str, embedded: bool) -> anyhow::Result<()> {
    let tenants: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.slug, u.email FROM tenants t JOIN users u ON u.tenant_id = t.id \
         JOIN roles r ON r.tenant_id = u.tenant_id AND r.id = u.role_id AND r.key = 'admin' \
         ORDER BY t.slug, u.email",
    )
    .fetch_all(admin)
    .await?;
    println!();
    println!("Orbas demo is up");
    println!("  API            {http}");
    println!("  API docs       {http}/docs   (OpenAPI: {http}/openapi.json)");
    println!("  health         {http}/healthz   readiness {http}/readyz   metrics {http}/metrics");
    println!("  Postgres       {} ({})", redact(admin_url), if embedded { "embedded" } else { "DATABASE_URL" });
    for (slug, email) in tenants.iter().take(6) {
        println!("  tenant {slug:<24} admin {email}");
    }
    println!(
        "  log in: POST {http}/v1/auth/login {{\"tenant\": <slug>, \"email\": <admin>, \"password\": \"orbas-demo-password\"}}"
    );
    println!("  stop with Ctrl-C");
    Ok(())
}

fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://…@{host}"),
        _ => url.to_owned(),
    }
}

async fn check_ready(http: &str) -> anyhow::Result<()> {
    let addr = http.trim_start_matches("http://");
    for _ in 0..50 {
        if let Ok(body) = http_get(addr, "/readyz").await
            && body.contains("200 OK")
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("server did not become ready")
}

/// A minimal HTTP/1.1 GET over a raw socket (the binary carries no HTTP client).
async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    Ok(buf)
}

fn random_secret(len: usize) -> String {
    rand::rng().sample_iter(Alphanumeric).take(len).map(char::from).collect()
}
