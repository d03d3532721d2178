//! `orbas demo`: Postgres up (embedded unless DATABASE_URL is set), migrated, seeded once, a Kafka
//! broker (tansu unless `kafka.brokers` is set: its log kept in SQLite under `--data-dir`, else in
//! memory) with change data capture streaming every table into it, the lake sink keeping bronze/silver
//! Delta tables from those topics, the search indexer keeping the tantivy + vector index from the same
//! topics, the intelligence service (`orbas_models::service`: retraining, sentiment, next-best actions,
//! forecasts) once the lake has caught up, the HTTP server and the SQL port listening, URLs printed.
//! Long steps show progress bars on a terminal ([`progress`]). Ctrl-C (or SIGTERM) at any point stops
//! cleanly: every service finishes its current batch, Postgres shuts down, the exit code is 0; an
//! interrupted seed leaves no tenant behind; a second Ctrl-C exits at once.

mod progress;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use orbas_models::service::{Schedule, Service};
use orbas_oltp::cluster::{ClusterOptions, PgCluster};
use orbas_oltp::db::Db;
use orbas_oltp::secrets::SecretsKey;
use orbas_oltp::{db, seed};
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use orbas_pipeline::broker::{Broker, BrokerOptions, DURABLE_LOG};
use orbas_pipeline::cdc::{self, CdcConfig};
use orbas_pipeline::resnapshot;
use orbas_warehouse::sink::{Sink, SinkConfig};
use tokio::sync::watch;

use crate::cli::DemoArgs;
use crate::server::{Extras, Server};
use crate::settings::{Settings, with_credentials};

const DEMO_DATABASE: &str = "orbas";

pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    watch_signals(stop_tx.clone());
    let mut cluster = None;
    if settings.database.url.is_none() {
        let opts = ClusterOptions { data_dir: args.data_dir.clone(), ..ClusterOptions::default() };
        let c = PgCluster::start(opts).await.context("starting the embedded Postgres")?;
        create_database_if_missing(&c).await?;
        settings.database.url = Some(SecretString::from(c.url(DEMO_DATABASE)));
        cluster = Some(c);
    }
    let outcome = serve(settings, &args, cluster.is_some(), &stop_tx, stop).await;
    // Last, once every service has stopped: Postgres (fast shutdown), also after a failure.
    if let Some(c) = cluster {
        let stopped = c.stop().await.context("stopping the embedded Postgres");
        outcome?;
        stopped?;
        println!("demo stopped; Postgres shut down cleanly");
        return Ok(());
    }
    outcome
}

/// The first Ctrl-C (or SIGTERM) asks every service to stop after its current batch; a second one
/// exits at once (the Postgres and broker watchdogs then stop what this process started).
fn watch_signals(stop: Arc<watch::Sender<bool>>) {
    tokio::spawn(async move {
        super::shutdown_signal().await;
        eprintln!("stopping: every service finishes its current batch (Ctrl-C again to force)");
        let _ = stop.send(true);
        super::shutdown_signal().await;
        eprintln!("forced exit: the current batches are abandoned (they are redone on the next start)");
        std::process::exit(130);
    });
}

/// Everything on top of Postgres, from migrations to the stop of every service.
async fn serve(
    mut settings: Settings,
    args: &DemoArgs,
    embedded: bool,
    stop_tx: &watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let admin_url = settings.database.admin_url()?.to_owned();
    let admin = db::connect(&admin_url, 4).await?;
    db::migrate(&admin).await?;
    let app_url = provision_app(&admin, &mut settings, &admin_url).await?;
    seed_if_empty(&admin, args, &stop_rx).await?;
    if *stop_rx.borrow() {
        return Ok(());
    }

    let app_pool = db::connect(&app_url, settings.database.max_connections).await?;
    let jwt_secret = match &settings.jwt_secret {
        Some(s) => s.clone(),
        None => SecretString::from(random_secret(48)),
    };
    let capture = start_cdc(&settings, &admin, &admin_url, args.data_dir.as_deref(), stop_rx.clone()).await?;
    let lake = match &capture {
        Some(c) => Some(start_sink(&admin_url, c, args.data_dir.as_deref(), stop_rx.clone())?),
        None => None,
    };
    let lake_url = lake.as_ref().map(|l| super::pipeline::lake_url(&l.root.display().to_string())).transpose()?;
    let sql_port = match &lake_url {
        Some(url) => Some(start_sql_port(&settings, app_pool.clone(), url.clone(), &jwt_secret).await?),
        None => None,
    };
    let search = match &capture {
        Some(c) => Some(start_search(c, args.data_dir.as_deref(), stop_rx.clone()).await?),
        None => None,
    };
    let server_pool = app_pool.clone();
    let extras = Extras {
        lake: lake_url,
        search: search.as_ref().map(|s| s.index.clone()).into(),
        secrets: Some(Arc::new(secrets_key(&settings, args.data_dir.as_deref())?)),
        default_llm: orbas_models::LlmConfig::from_env(),
        renderer: orbas_dashboards::render::Renderer::from_env()?.map(Arc::new),
    };
    let server = Server::build_with(settings.http_addr, app_pool, &jwt_secret, extras).await?;
    let http = format!("http://{}", server.local_addr()?);
    let kafka = capture.as_ref().map(|c| {
        let source = match (&c.broker, args.data_dir.is_some()) {
            (Some(_), true) => "tansu, log kept under --data-dir",
            (Some(_), false) => "tansu, in memory",
            (None, _) => "kafka.brokers",
        };
        format!("{} ({source}); CDC topics orbas.cdc.<schema>.<table>, orbas.cdc.transaction, orbas.events", c.brokers)
    });
    print_banner(&admin, &http, &admin_url, embedded, kafka.as_deref()).await?;
    if let Some(l) = &lake {
        println!("  lake           {} (bronze/ and silver/ Delta tables per CRM table)", l.root.display());
        println!(
            "  lake SQL       POST {http}/v1/sql {{\"sql\": \"SELECT status, count(*) FROM opportunities GROUP BY 1\"}}"
        );
    }
    if let Some(s) = &search {
        println!("{}", s.banner);
    }
    if let Some((addr, _)) = &sql_port {
        println!(
            "  SQL port       psql \"host={} port={} dbname=<tenant slug> user=<admin e-mail>\" (password orbas-demo-password)",
            addr.ip(),
            addr.port()
        );
    }

    let mut stopped = stop_rx.clone();
    let serving = tokio::spawn(server.run_until_stopped(async move { drop(stopped.wait_for(|s| *s).await) }));
    let mut intelligence = None;
    let outcome = if args.exit_when_ready {
        let waited = progress::unless_stopped(&stop_rx, wait_ready(&http, &admin, lake.as_ref().map(|l| &l.root)));
        match waited.await {
            Some(ready) => ready.map(|()| println!("demo is ready; exiting as asked (--exit-when-ready)")),
            None => Ok(()),
        }
    } else {
        intelligence = lake.as_ref().map(|l| spawn_intelligence(&admin, &l.root, &server_pool, &stop_rx));
        drop(stop_rx.clone().wait_for(|s| *s).await);
        Ok(())
    };
    let _ = stop_tx.send(true);
    let services = Services { serving, intelligence, sql_port, lake, search, capture };
    let stopped = services.stop().await;
    outcome.and(stopped)
}

/// Ctrl-C (or a failure) during seeding: the load's uncommitted tenants were rolled back when it was
/// dropped; the tenants it had already committed are removed too, so the database is as empty as
/// before and the next start seeds everything again. Only ever called on a database that held no
/// tenant when the seed started.
async fn undo_partial_seed(admin: &PgPool) -> anyhow::Result<()> {
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(admin).await?;
    if tenants > 0 {
        sqlx::query("TRUNCATE tenants CASCADE").execute(admin).await.context("removing the interrupted seed")?;
    }
    println!("seeding stopped: nothing was kept ({tenants} committed tenant(s) removed); the next start seeds again");
    Ok(())
}

/// `--exit-when-ready`: the API answers, the snapshot is in Kafka and the lake has caught up.
async fn wait_ready(http: &str, admin: &PgPool, lake: Option<&std::path::PathBuf>) -> anyhow::Result<()> {
    check_ready(http).await?;
    if let Some(root) = lake {
        progress::wait_snapshot(admin).await?;
        progress::wait_lake(admin, root).await?;
    }
    Ok(())
}

/// The intelligence stage (retraining, sentiment, next-best actions, forecasts), once the lake has
/// caught up with the seed — however long that takes (a scale-1 seed needs several minutes on two
/// cores, past the two minutes each wait allows: it is retried while the demo runs); it stops with
/// the demo after its current job.
fn spawn_intelligence(
    admin: &PgPool,
    root: &std::path::Path,
    app: &PgPool,
    stop: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (admin, root, app, stop) = (admin.clone(), root.to_path_buf(), Db::new(app.clone()), stop.clone());
    tokio::spawn(async move {
        let caught_up = async {
            if let Err(e) = progress::wait_snapshot(&admin).await {
                tracing::warn!(error = %e, "still waiting for the lake");
            }
            loop {
                match progress::wait_lake(&admin, &root).await {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(error = %e, "the models wait for the lake to catch up"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        };
        if progress::unless_stopped(&stop, caught_up).await.is_none() {
            return;
        }
        let lake = match super::pipeline::lake_url(&root.display().to_string()) {
            Ok(url) => Arc::new(orbas_warehouse::sql::Lake::new(url)),
            Err(e) => return tracing::warn!(error = %e, "the demo lake's URL"),
        };
        println!("models: retraining every 6 h, sentiment and next-best actions as the lake moves, forecasts daily");
        let jobs = Service { admin: admin.clone(), db: app, lake }.spawn(Schedule::default(), stop.clone());
        tokio::join!(jobs.join(), progress::first_training(&admin, &stop));
    })
}

/// The demo's running services, stopped together.
struct Services {
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
    intelligence: Option<tokio::task::JoinHandle<()>>,
    sql_port: Option<(std::net::SocketAddr, tokio::task::JoinHandle<orbas_warehouse::Result<()>>)>,
    lake: Option<Lake>,
    search: Option<Search>,
    capture: Option<Capture>,
}

impl Services {
    /// Waits for every service to finish its current batch (the stop signal was sent): the server
    /// drains its requests, the models finish their job, the sink commits (with its Kafka positions),
    /// the indexer commits, CDC confirms what Kafka acknowledged. Every service is waited for even
    /// when one failed; the first failure is returned.
    async fn stop(self) -> anyhow::Result<()> {
        let mut first: anyhow::Result<()> = Ok(());
        let mut keep = |what: &str, r: anyhow::Result<()>| {
            if let Err(e) = r {
                tracing::error!(error = %format!("{e:#}"), "{what} did not stop cleanly");
                if first.is_ok() {
                    first = Err(e.context(format!("{what} did not stop cleanly")));
                }
            }
        };
        keep("the HTTP server", self.serving.await.map_err(anyhow::Error::from).and_then(|r| r));
        if let Some(task) = self.intelligence {
            waiting("the models' current job", &task);
            keep("the models", task.await.map_err(anyhow::Error::from));
        }
        if let Some((_, task)) = self.sql_port {
            // Queries only, no state: nothing to finish.
            task.abort();
        }
        if let Some(l) = self.lake {
            waiting("the lake sink's current batch", &l.task);
            keep("the lake sink", joined(l.task.await));
        }
        if let Some(s) = self.search {
            waiting("the search indexer's current batch", &s.task);
            keep("the search indexer", joined(s.task.await));
        }
        if let Some(c) = self.capture {
            waiting("change data capture's current batch", &c.task);
            keep("change data capture", joined(c.task.await));
            drop(c.broker);
        }
        first
    }
}

/// Says what the stop is waiting for, unless it is done already.
fn waiting<T>(what: &str, task: &tokio::task::JoinHandle<T>) {
    if !task.is_finished() {
        eprintln!("stopping: waiting for {what}");
    }
}

fn joined<T, E: std::error::Error + Send + Sync + 'static>(
    r: Result<Result<T, E>, tokio::task::JoinError>,
) -> anyhow::Result<()> {
    r?.map(drop).map_err(anyhow::Error::from)
}

/// The demo's change data capture: its broker (unless one is configured) and the service's task.
struct Capture {
    brokers: String,
    broker: Option<Broker>,
    /// The demo's broker started with an empty log: topics (and so the lake) are rebuilt.
    fresh_topics: bool,
    task: tokio::task::JoinHandle<orbas_pipeline::Result<()>>,
}

/// Starts CDC into the configured brokers, or into a tansu broker of its own: durable under
/// `data_dir/broker` (so a restarted demo continues where it stopped), else in memory. When the demo's
/// broker starts with an empty log, the slot from an earlier run is reset and the snapshot redone —
/// otherwise the new, empty topics would miss everything before the slot's position. Without tansu
/// (not installed) the demo runs without CDC and says so.
async fn start_cdc(
    settings: &Settings,
    admin: &PgPool,
    admin_url: &str,
    data_dir: Option<&std::path::Path>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<Capture>> {
    let (brokers, broker, fresh_topics) = match &settings.kafka_brokers {
        Some(b) => (b.clone(), None, false),
        None => {
            let (opts, fresh) = match data_dir {
                Some(d) => {
                    let dir = d.join("broker");
                    let fresh = !dir.join(DURABLE_LOG).exists();
                    (BrokerOptions::durable(dir), fresh)
                }
                None => (BrokerOptions::default(), true),
            };
            match Broker::start(opts) {
                Ok(b) => (b.bootstrap(), Some(b), fresh),
                Err(e) => {
                    println!("change data capture not started: {e}");
                    return Ok(None);
                }
            }
        }
    };
    let cfg = CdcConfig::new(admin_url, &brokers)?;
    if fresh_topics {
        resnapshot::reset_all(admin, &cfg.slot).await.context("resetting the demo's CDC slot")?;
    }
    let mut stop = stop;
    let task = tokio::spawn(async move {
        let result = cdc::run(cfg, async move { drop(stop.wait_for(|s| *s).await) }).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "change data capture stopped");
        }
        result
    });
    Ok(Some(Capture { brokers, broker, fresh_topics, task }))
}

/// The demo's lake sink: its root directory and the service's task.
struct Lake {
    root: std::path::PathBuf,
    _temp: Option<tempfile::TempDir>,
    task: tokio::task::JoinHandle<orbas_warehouse::Result<orbas_warehouse::sink::SinkStats>>,
}

/// Starts the lake sink on the demo's topics. When the demo's broker starts empty (in memory, or a
/// first run) CDC re-snapshots and the lake is rebuilt from scratch: positions from an earlier broker
/// would (rightly) stop the sink as offsets that went backwards. With a durable broker the lake
/// continues from the positions it holds.
fn start_sink(
    admin_url: &str,
    capture: &Capture,
    data_dir: Option<&std::path::Path>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Lake> {
    let (root, temp) = derived_dir(data_dir, "lake", capture.fresh_topics)?;
    let url = super::pipeline::lake_url(&root.display().to_string())?;
    let cfg = SinkConfig::new(admin_url, &capture.brokers, url);
    let task = tokio::spawn(async move {
        let result = async { Sink::connect(cfg).await?.run(stop).await }.await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "lake sink stopped");
        }
        result
    });
    Ok(Lake { root, _temp: temp, task })
}

/// The directory of a store the demo derives from the CDC topics (the lake, the search index):
/// `data_dir/name`, else a temporary directory (removed on exit). When the topics start empty
/// (`fresh`), what an earlier run left there is cleared, so the store is rebuilt from them.
fn derived_dir(
    data_dir: Option<&std::path::Path>,
    name: &str,
    fresh: bool,
) -> anyhow::Result<(std::path::PathBuf, Option<tempfile::TempDir>)> {
    let (dir, temp) = match data_dir {
        Some(d) => (d.join(name), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix(&format!("orbas-{name}-"))
                .tempdir()
                .with_context(|| format!("{name} directory"))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    if fresh && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing the demo's {name} {}", dir.display()))?;
    }
    Ok((dir, temp))
}

/// The demo's search index: its directory, the index (shared by the indexer and the API) and the
/// indexer's task.
struct Search {
    index: std::sync::Arc<orbas_search::SearchIndex>,
    banner: String,
    _temp: Option<tempfile::TempDir>,
    task: tokio::task::JoinHandle<orbas_search::Result<orbas_search::indexer::IndexerStats>>,
}

/// Starts the search indexer on the demo's topics, into `data_dir/search` (else a temporary
/// directory). Like the lake, the index is rebuilt when the demo's broker starts empty.
async fn start_search(
    capture: &Capture,
    data_dir: Option<&std::path::Path>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Search> {
    use orbas_search::{Access, IndexerConfig, SearchIndex};
    let (dir, temp) = derived_dir(data_dir, "search", capture.fresh_topics)?;
    let model = crate::cli::SearchModelArgs { model_dir: None, models: None, no_embeddings: false };
    let embedder = super::search::load_embedder(&model)?;
    let semantic = embedder.is_some();
    let at = dir.clone();
    let index = tokio::task::spawn_blocking(move || SearchIndex::open(&at, Access::Writer, embedder))
        .await?
        .with_context(|| format!("search index {}", dir.display()))?;
    let index = std::sync::Arc::new(index);
    let banner = format!(
        "  search         GET /v1/search?q=…&mode=keyword|semantic|hybrid — index {} ({})",
        dir.display(),
        if semantic { "keyword, semantic and hybrid" } else { "keyword only: no sentence encoder installed" }
    );
    let cfg = IndexerConfig::new(&capture.brokers);
    let ix = index.clone();
    let task = tokio::spawn(async move {
        let result = orbas_search::indexer::run(cfg, ix, stop).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "search indexer stopped");
        }
        result
    });
    Ok(Search { index, banner, _temp: temp, task })
}

/// The SQL port over the demo's lake (plaintext on loopback), authenticated against the demo's users.
async fn start_sql_port(
    settings: &Settings,
    app_pool: PgPool,
    lake: url::Url,
    jwt_secret: &SecretString,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<orbas_warehouse::Result<()>>)> {
    use orbas_warehouse::wire::{self, WireConfig};
    let listener = tokio::net::TcpListener::bind(settings.sql_addr)
        .await
        .with_context(|| format!("bind the SQL port {} (ORBAS_SQL_ADDR)", settings.sql_addr))?;
    let addr = listener.local_addr()?;
    let config = WireConfig { mock_secret: super::sql::mock_secret(Some(jwt_secret)), ..WireConfig::default() };
    let lake = std::sync::Arc::new(orbas_warehouse::sql::Lake::new(lake));
    let auth = std::sync::Arc::new(crate::sql_port::CrmLogins::new(db::Db::new(app_pool)));
    Ok((addr, tokio::spawn(wire::serve(listener, lake, auth, config))))
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

/// Seeds a database without tenants; one transaction per tenant (see [`undo_partial_seed`] for a stop
/// in the middle).
async fn seed_if_empty(admin: &PgPool, args: &DemoArgs, stop: &watch::Receiver<bool>) -> anyhow::Result<()> {
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(admin).await?;
    if tenants > 0 {
        println!("database already holds {tenants} tenant(s); not seeding again");
        return Ok(());
    }
    let mut cfg = seed::SeedConfig::new(args.seed.tenants, args.seed.scale, args.seed.seed)?;
    // The demo's history ends today, so what reps do now continues it.
    cfg.as_of = args.seed.as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let bar = progress::seeding(args.seed.scale);
    let on_rows = {
        let bar = bar.clone();
        move |rows| progress::seeded(&bar, rows)
    };
    let loading = seed::load_with_progress(admin, &cfg, &on_rows);
    let loaded = progress::unless_stopped(stop, loading).await;
    bar.finish_and_clear();
    let report = match loaded {
        Some(Ok(report)) => report,
        Some(Err(e)) => {
            undo_partial_seed(admin).await?;
            return Err(e.into());
        }
        None => return undo_partial_seed(admin).await,
    };
    super::seed::print_report(&report);
    super::seed::install_dashboards(admin, report.tenants.iter().map(|(t, _)| *t)).await?;
    Ok(())
}

async fn print_banner(
    admin: &PgPool,
    http: &str,
    admin_url: &str,
    embedded: bool,
    kafka: Option<&str>,
) -> anyhow::Result<()> {
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
    println!("  web UI         {http}/ui/login   (workspace = tenant slug below)");
    println!("  health         {http}/healthz   readiness {http}/readyz   metrics {http}/metrics");
    println!("  Postgres       {} ({})", redact(admin_url), if embedded { "embedded" } else { "DATABASE_URL" });
    if let Some(k) = kafka {
        println!("  Kafka          {k}");
    }
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

/// The key that seals tenants' secrets: the configured one, else the one kept in the data directory
/// (made there on the first run, readable by the owner only), else a random one for this run.
fn secrets_key(settings: &Settings, data_dir: Option<&Path>) -> anyhow::Result<SecretsKey> {
    if let Some(key) = settings.secrets_key()? {
        return Ok(key);
    }
    let Some(dir) = data_dir else { return Ok(SecretsKey::generate()?.0) };
    let path = dir.join("secrets.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => SecretsKey::parse(&text).with_context(|| format!("invalid secrets key in {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, text) = SecretsKey::generate()?;
            std::fs::create_dir_all(dir)?;
            let mut file = std::fs::OpenOptions::new();
            file.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
            std::io::Write::write_all(&mut file.open(&path)?, text.expose_secret().as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn random_secret(len: usize) -> String {
    rand::rng().sample_iter(Alphanumeric).take(len).map(char::from).collect()
}
