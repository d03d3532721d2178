//! The run's private Postgres cluster, restartable on the same data directory and port so every URL
//! handed out stays valid across a restart.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use orbas_oltp::cluster::{ClusterOptions, PgCluster};

/// A cluster in a directory of its own (removed when dropped) that [`Pg::restart`] stops and starts.
pub(super) struct Pg {
    opts: ClusterOptions,
    cluster: Option<PgCluster>,
    password: String,
    port: u16,
    // Declared last: dropped after the cluster has stopped.
    _dir: tempfile::TempDir,
}

impl Pg {
    pub(super) async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("orbas-chaos-pg-").tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let opts = ClusterOptions { data_dir: Some(dir.path().to_path_buf()), port: Some(port), ..Default::default() };
        let cluster = PgCluster::start(opts.clone()).await.context("starting the run's Postgres cluster")?;
        let password = cluster.superuser_password().to_owned();
        Ok(Pg { opts, cluster: Some(cluster), password, port, _dir: dir })
    }

    /// The superuser's URL of `database` (valid across restarts).
    pub(super) fn url(&self, database: &str) -> String {
        format!("postgres://postgres:{}@127.0.0.1:{}/{database}", self.password, self.port)
    }

    /// A login role's URL of `database`.
    pub(super) fn url_as(&self, user: &str, password: &str, database: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{database}", self.port)
    }

    /// Fast shutdown (every session is terminated, open transactions roll back), then a start on the
    /// same directory and port; returns how long the server was away.
    pub(super) async fn restart(&mut self) -> anyhow::Result<Duration> {
        let began = Instant::now();
        if let Some(c) = self.cluster.take() {
            c.stop().await.context("stopping Postgres")?;
        }
        let c = PgCluster::start(self.opts.clone()).await.context("restarting Postgres on its data directory")?;
        self.cluster = Some(c);
        Ok(began.elapsed())
    }

    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(c) = self.cluster.take() {
            c.stop().await?;
        }
        Ok(())
    }
}
