//! The pipeline's two services as real child processes of this binary (`orbas pipeline cdc`,
//! `orbas pipeline sink`), kept running — respawned whenever one exits — and killed with SIGKILL on
//! the chaos schedule; plus that schedule, driven by the burst's progress.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rand::{Rng, SeedableRng};
use tokio::process::{Child, Command};
use tracing::{info, warn};

use super::pg::Pg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Cdc,
    Sink,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Cdc => "cdc",
            Kind::Sink => "sink",
        }
    }
}

/// How to start a service: this binary, the database, the broker, the lake, a log directory.
struct Launcher {
    exe: PathBuf,
    database_url: String,
    brokers: String,
    lake: PathBuf,
    logs: PathBuf,
}

impl Launcher {
    fn spawn(&self, kind: Kind) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}.log", kind.name())))?;
        let mut cmd = Command::new(&self.exe);
        match kind {
            Kind::Cdc => cmd.args(["pipeline", "cdc", "--status-interval-ms", "100"]),
            Kind::Sink => cmd.args(["pipeline", "sink", "--lake"]).arg(&self.lake),
        };
        cmd.args(["--brokers", &self.brokers, "--metrics-addr", "127.0.0.1:0"])
            .env("DATABASE_URL", &self.database_url)
            .env("RUST_LOG", "warn,deltalake_core=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        cmd.spawn().with_context(|| format!("spawning orbas pipeline {}", kind.name()))
    }
}

/// The two children, how to start them again, and what happened to them.
pub(super) struct Services {
    launcher: Launcher,
    cdc: Child,
    sink: Child,
    /// Times a service exited by itself (Postgres went away under it) and was started again.
    pub(super) exits: u32,
}

impl Services {
    /// Starts both; their stderr is appended to `<logs>/cdc.log` and `<logs>/sink.log`.
    pub(super) fn start(database_url: &str, brokers: &str, lake: &Path, logs: &Path) -> anyhow::Result<Self> {
        let launcher = Launcher {
            exe: std::env::current_exe().context("locating the orbas binary")?,
            database_url: database_url.to_owned(),
            brokers: brokers.to_owned(),
            lake: lake.to_path_buf(),
            logs: logs.to_path_buf(),
        };
        let cdc = launcher.spawn(Kind::Cdc)?;
        let sink = launcher.spawn(Kind::Sink)?;
        Ok(Services { launcher, cdc, sink, exits: 0 })
    }

    fn child(&mut self, kind: Kind) -> &mut Child {
        match kind {
            Kind::Cdc => &mut self.cdc,
            Kind::Sink => &mut self.sink,
        }
    }

    /// Starts again whichever service has exited.
    pub(super) fn keep_alive(&mut self) -> anyhow::Result<()> {
        for kind in [Kind::Cdc, Kind::Sink] {
            if let Some(status) = self.child(kind).try_wait()? {
                info!(service = kind.name(), %status, "service exited; starting it again");
                self.exits += 1;
                *self.child(kind) = self.launcher.spawn(kind)?;
            }
        }
        Ok(())
    }

    /// SIGKILL, reap, start again.
    pub(super) async fn kill9(&mut self, kind: Kind) -> anyhow::Result<()> {
        let child = self.child(kind);
        if child.try_wait()?.is_none() {
            child.start_kill().context("SIGKILL")?; // tokio's kill is SIGKILL
            child.wait().await?;
        } else {
            self.exits += 1;
        }
        info!(service = kind.name(), "killed with SIGKILL; starting it again");
        *self.child(kind) = self.launcher.spawn(kind)?;
        Ok(())
    }

    /// Ends both (SIGKILL: everything they acknowledged is already durable).
    pub(super) async fn stop(mut self) {
        for kind in [Kind::Cdc, Kind::Sink] {
            let c = self.child(kind);
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}

/// When, as fractions of the burst done, each SIGKILL and each Postgres restart happens.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    kills: Vec<f64>,
    restarts: Vec<f64>,
}

impl Schedule {
    /// `kills` and `restarts` random moments between 3 % and 95 % of the burst (seeded).
    pub(super) fn new(seed: u64, kills: u32, restarts: u32) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut pick = |n: u32| {
            let mut v: Vec<f64> = (0..n).map(|_| rng.random_range(0.03..0.95)).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let kills = pick(kills);
        let restarts = pick(restarts);
        Schedule { kills, restarts }
    }
}

/// What the chaos task did.
#[derive(Debug, Default, Clone)]
pub(super) struct ChaosReport {
    pub(super) cdc_kills: u32,
    pub(super) sink_kills: u32,
    pub(super) pg_restarts: u32,
    /// Longest time Postgres was away during a restart.
    pub(super) pg_down_max: Duration,
    pub(super) exits: u32,
}

/// Runs the schedule against the burst's `progress` (rows done of `total`) until every kill and
/// restart happened and the burst is `finished`; keeps both services alive throughout. Returns the
/// services (still running) and the Postgres handle.
pub(super) async fn run(
    mut services: Services,
    mut pg: Pg,
    schedule: Schedule,
    progress: Arc<AtomicU64>,
    total: u64,
    finished: Arc<AtomicBool>,
) -> anyhow::Result<(Services, Pg, ChaosReport)> {
    let mut report = ChaosReport::default();
    let (mut kills, mut restarts) = (schedule.kills.into_iter().peekable(), schedule.restarts.into_iter().peekable());
    let mut next = Kind::Cdc;
    loop {
        let done = finished.load(Ordering::Acquire);
        let at = progress.load(Ordering::Acquire) as f64 / total.max(1) as f64;
        if restarts.next_if(|f| done || at >= *f).is_some() {
            info!(at, "restarting Postgres");
            let away = pg.restart().await?;
            report.pg_restarts += 1;
            report.pg_down_max = report.pg_down_max.max(away);
        } else if kills.next_if(|f| done || at >= *f).is_some() {
            services.kill9(next).await?;
            match next {
                Kind::Cdc => report.cdc_kills += 1,
                Kind::Sink => report.sink_kills += 1,
            }
            next = if next == Kind::Cdc { Kind::Sink } else { Kind::Cdc };
        }
        if let Err(e) = services.keep_alive() {
            warn!(error = %e, "could not restart a service");
        }
        if done && kills.peek().is_none() && restarts.peek().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report.exits = services.exits;
    Ok((services, pg, report))
}
