//! A local Kafka-protocol broker for the demo and the tests: `tansu` (crates.io, Apache-2.0) on a
//! loopback port. Production points the same producer at Kafka, Redpanda or MSK instead.
//!
//! The binary is found at `$ORBAS_TANSU`, then `~/.cache/orbas/tools/bin/tansu` (where `setup.sh`
//! installs it), then `PATH`. A watchdog shell stops the broker when this process exits however it
//! exits, so tests never leak brokers.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing::info;

use crate::error::{Error, Result};

/// How to start the broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// `None`: a free port.
    pub port: Option<u16>,
    /// tansu's storage URL; `None`: `memory://tansu/` (lost on restart), or the SQLite file of
    /// `dir` when that is set.
    pub storage: Option<String>,
    /// Keep the log in `dir/tansu.db` (tansu's `libsql` engine): topics, offsets and consumer-group
    /// positions survive restarts and `kill -9` (verified: nothing acknowledged is lost, offsets
    /// continue where they were). The broker runs with `dir` as its working directory.
    pub dir: Option<PathBuf>,
}

impl BrokerOptions {
    /// A broker whose log is kept in `dir` (created if missing).
    pub fn durable(dir: impl Into<PathBuf>) -> Self {
        BrokerOptions { dir: Some(dir.into()), ..Self::default() }
    }
}

/// The file a durable broker keeps its log in, under its directory.
pub const DURABLE_LOG: &str = "tansu.db";

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    port: u16,
    watchdog: Option<Child>,
}

/// Where the tansu binary is.
pub fn tansu_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORBAS_TANSU").map(PathBuf::from) {
        return Some(p);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".cache/orbas/tools/bin/tansu");
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join("tansu")).find(|p| p.is_file())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Broker {
    pub fn start(opts: BrokerOptions) -> Result<Self> {
        let bin = tansu_binary().ok_or_else(|| {
            Error::Config(
                "tansu not found: run ./setup.sh (installs it into ~/.cache/orbas/tools) or set ORBAS_TANSU".into(),
            )
        })?;
        let port = match opts.port {
            Some(p) => p,
            None => free_port()?,
        };
        let url = format!("tcp://127.0.0.1:{port}");
        if let Some(dir) = &opts.dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Config(format!("broker directory {}: {e}", dir.display())))?;
        }
        // tansu resolves a sqlite:// path against its working directory.
        let storage = match (&opts.storage, &opts.dir) {
            (Some(s), _) => s.clone(),
            (None, Some(_)) => format!("sqlite://{DURABLE_LOG}"),
            (None, None) => "memory://tansu/".into(),
        };
        let mut command = Command::new(&bin);
        if let Some(dir) = &opts.dir {
            command.current_dir(dir);
        }
        let child = command
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", &storage])
            .env("RUST_LOG", std::env::var("ORBAS_TANSU_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own process group: a Ctrl-C at the terminal reaches the process that owns the broker,
            // which stops its consumers and producers first and the broker last.
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Config(format!("cannot start {}: {e}", bin.display())))?;
        let mut broker = Broker { child, port, watchdog: None };
        broker.watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null && kill -0 {child} 2>/dev/null; do sleep 1; done; kill -9 {child} 2>/dev/null",
                me = std::process::id(),
                child = broker.child.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok();
        broker.wait_ready(Duration::from_secs(30))?;
        info!(port, storage = %storage, "broker started");
        Ok(broker)
    }

    fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Config(format!("tansu exited at start-up ({status})")));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Config(format!("tansu did not listen on port {} in time", self.port)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the broker (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        if let Some(w) = self.watchdog.as_mut() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
