//! The lake sink against a real Postgres (testkit), a real Kafka-protocol broker (tansu) and real Delta
//! tables in a temporary directory: the CDC service and the sink run in-process; what the lake holds is
//! read back through deltalake + DataFusion and compared with Postgres value by value.

mod gold;
mod sink;

use std::time::{Duration, Instant};

use deltalake::arrow::array::Array as _;
use deltalake::datafusion::prelude::SessionContext;
use orbas_pipeline::broker::{Broker, BrokerOptions};
use orbas_pipeline::cdc::CdcConfig;
use orbas_testkit::TestDb;
use orbas_warehouse::sink::{Sink, SinkConfig, table_url};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use url::Url;

pub fn broker() -> Broker {
    Broker::start(BrokerOptions::default()).expect("start tansu (run ./scripts/setup.sh to install it)")
}

/// The CDC service in this process.
#[derive(Debug)]
pub struct Cdc {
    stop: oneshot::Sender<()>,
    task: JoinHandle<orbas_pipeline::Result<()>>,
}

/// Starts CDC and waits until its initial snapshot is done, so every later write is streamed.
pub async fn start_cdc(db: &TestDb, broker: &Broker) -> Cdc {
    let mut cfg = CdcConfig::new(&db.admin_url, &broker.bootstrap()).expect("cdc config");
    cfg.slot = format!("s_{}", &db.name[2..18]);
    cfg.status_interval = Duration::from_millis(100);
    cfg.heartbeat_interval = Duration::ZERO;
    let (stop, rx) = oneshot::channel::<()>();
    let slot = cfg.slot.clone();
    let task = tokio::spawn(orbas_pipeline::cdc::run(cfg, async move {
        let _ = rx.await;
    }));
    orbas_testkit::cdc_snapshot_done(&db.admin, &slot).await;
    Cdc { stop, task }
}

impl Cdc {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("cdc task").expect("cdc stopped cleanly");
    }
}

/// Logs to the test's output when `RUST_LOG` asks for them.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn sink_config(db: &TestDb, broker: &Broker, lake: &Url) -> SinkConfig {
    let mut cfg = SinkConfig::new(&db.admin_url, &broker.bootstrap(), lake.clone());
    cfg.batch_interval = Duration::from_millis(200);
    cfg.discovery_interval = Duration::from_millis(500);
    cfg
}

/// The sink in this process.
#[derive(Debug)]
pub struct Running {
    stop: watch::Sender<bool>,
    pub task: JoinHandle<orbas_warehouse::Result<orbas_warehouse::sink::SinkStats>>,
}

pub fn start_sink(cfg: SinkConfig) -> Running {
    logs();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let result = async { Sink::connect(cfg).await?.run(rx).await }.await;
        if let Err(e) = &result {
            eprintln!("the sink stopped: {e}");
        }
        result
    });
    Running { stop, task }
}

impl Running {
    pub async fn stop(self) -> orbas_warehouse::sink::SinkStats {
        let _ = self.stop.send(true);
        self.task.await.expect("sink task").expect("sink stopped cleanly")
    }

    /// Drops the stop channel without a word, as an owner that ends does: the sink must take that
    /// as stop (commit and return), not spin on a channel that can never say stop.
    pub async fn abandon(self) -> orbas_warehouse::sink::SinkStats {
        drop(self.stop);
        tokio::time::timeout(Duration::from_secs(120), self.task)
            .await
            .expect("the sink stops once nobody can stop it")
            .expect("sink task")
            .expect("sink stopped cleanly")
    }
}

/// A temporary lake directory and its URL.
pub fn temp_lake() -> (tempfile::TempDir, Url) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = Url::from_directory_path(dir.path()).expect("lake URL");
    (dir, url)
}

/// Rows of `sql` over the table registered as `t` (the layer's Delta table of `table`), as text.
pub async fn lake_rows(lake: &Url, layer: &str, table: &str, sql: &str) -> Option<Vec<String>> {
    let url = table_url(lake, layer, "public", table).ok()?;
    let t = deltalake::open_table(url).await.ok()?;
    let ctx = SessionContext::new();
    ctx.register_table("t", t.table_provider().await.ok()?).ok()?;
    let batches = ctx.sql(sql).await.ok()?.collect().await.ok()?;
    let mut out = Vec::new();
    for b in &batches {
        let col = deltalake::arrow::compute::cast(b.column(0), &deltalake::arrow::datatypes::DataType::Utf8).ok()?;
        let strings = deltalake::arrow::array::AsArray::as_string::<i32>(&col);
        out.extend(
            (0..strings.len())
                .map(|i| if strings.is_null(i) { "NULL".to_owned() } else { strings.value(i).to_owned() }),
        );
    }
    Some(out)
}

pub use orbas_testkit::eventually;

/// Polls `get` until it returns `want`; on timeout fails showing where the last value differed.
pub async fn eventually_equal<F, Fut>(what: &str, timeout: Duration, want: &[String], mut get: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Vec<String>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        last = get().await;
        if last.as_deref() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Some(got) = last else { panic!("{what}: nothing to read") };
    let first = want.iter().zip(&got).position(|(a, b)| a != b);
    panic!(
        "{what}: {} rows wanted, {} read; first difference at {first:?}: want {:?}, got {:?}",
        want.len(),
        got.len(),
        first.and_then(|i| want.get(i)),
        first.and_then(|i| got.get(i)),
    );
}

/// Rows of a lake table as an engine that is not ours reads them (`readers.py`, run with the test
/// virtualenv's Python: the deltalake package or DuckDB's delta extension).
pub async fn foreign_rows(engine: &str, table_dir: &std::path::Path) -> Vec<String> {
    let venv = std::env::var_os("ORBAS_VENV").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/orbas/venv")
    });
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup.sh (the test command does)", python.display());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/readers.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(engine)
        .arg(table_dir)
        .output()
        .await
        .expect("run readers.py");
    assert!(out.status.success(), "{engine} reader failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}
