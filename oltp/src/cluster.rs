//! A private Postgres cluster started from the system binaries (Debian's `postgresql-15`).
//!
//! Used by `orbas demo` when no `DATABASE_URL` is given ("embedded default") and, through the dev-only
//! `testkit`, by every test that needs a database. The cluster is configured for logical replication
//! (`wal_level=logical`, replication slots, WAL senders) so the CDC pipeline can run against it.
//!
//! `initdb` and `postgres` refuse to run as root. When this process is root, the cluster runs as an
//! unprivileged OS user (default `postgres`) via `runuser`, on a directory that user owns.
//!
//! Lifetime: [`PgCluster::stop`] shuts down cleanly; dropping the value stops it too (fast mode). A
//! watchdog process also stops the cluster and removes a temporary data directory when this process
//! exits without dropping it (a panic in a test, `process::exit`, a static that is never dropped).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;
use tracing::{debug, info, warn};

use crate::{Error, Result};

/// How to start a cluster. `Default` gives a throw-away cluster in a temporary directory on a free port.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Directory with `initdb`, `pg_ctl`, `postgres`. `None`: `$ORBAS_PG_BIN`, then the newest
    /// `/usr/lib/postgresql/<v>/bin`, then `PATH`.
    pub bin_dir: Option<PathBuf>,
    /// Keep data here across runs (initialised on first use). `None`: a temporary directory removed on stop.
    pub data_dir: Option<PathBuf>,
    /// TCP port on 127.0.0.1. `None`: a free port chosen at start.
    pub port: Option<u16>,
    /// OS user that runs the server when this process is root.
    pub os_user: String,
    /// Trade durability for speed (fsync off): for tests and throw-away demos only.
    pub ephemeral_durability: bool,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            bin_dir: None,
            data_dir: None,
            port: None,
            os_user: "postgres".into(),
            ephemeral_durability: false,
            settings: Vec::new(),
        }
    }
}

/// A running cluster. The superuser is `postgres` with a random password (SCRAM over TCP).
#[derive(Debug)]
pub struct PgCluster {
    bin_dir: PathBuf,
    root: PathBuf,
    temporary: bool,
    port: u16,
    password: String,
    run_as: Option<String>,
    stopped: bool,
}

const SUPERUSER: &str = "postgres";
const PASSWORD_FILE: &str = "superuser.password";

impl PgCluster {
    /// Initialises the data directory if needed and starts the server; returns once it accepts connections.
    pub async fn start(opts: ClusterOptions) -> Result<Self> {
        tokio::task::spawn_blocking(move || Self::start_blocking(opts))
            .await
            .map_err(|e| Error::cluster(format!("start task failed: {e}"), None))?
    }

    fn start_blocking(opts: ClusterOptions) -> Result<Self> {
        let bin_dir = find_bin_dir(opts.bin_dir.as_deref())?;
        let run_as = is_root().then(|| opts.os_user.clone());
        let (root, temporary) = match &opts.data_dir {
            Some(dir) => (dir.clone(), false),
            None => (make_temp_root()?, true),
        };
        std::fs::create_dir_all(&root).map_err(|e| io_err("create data root", e))?;
        if let Some(user) = &run_as {
            chown_recursive(&root, user)?;
        }
        let port = match opts.port {
            Some(p) => p,
            None => free_port()?,
        };
        let mut cluster = PgCluster { bin_dir, root, temporary, port, password: String::new(), run_as, stopped: true };
        cluster.password = cluster.init_if_needed()?;
        cluster.pg_ctl_start(&opts)?;
        cluster.stopped = false;
        cluster.spawn_watchdog();
        info!(port, data = %cluster.data_dir().display(), "postgres cluster started");
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password (random per cluster, stored in the data root).
    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// Connection URL for `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}", self.password, self.port)
    }

    /// Connection URL for `database` as the superuser over the cluster's Unix-domain socket (the socket
    /// directory percent-encoded as the host, as libpq and sqlx read it).
    pub fn socket_url(&self, database: &str) -> String {
        let dir: String = self
            .root
            .display()
            .to_string()
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("postgres://{SUPERUSER}:{}@{dir}:{}/{database}", self.password, self.port)
    }

    /// Connection URL for `database` as another role.
    pub fn url_as(&self, user: &str, password: &str, database: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Stops the server (fast shutdown: open transactions are rolled back) and removes a temporary directory.
    pub async fn stop(mut self) -> Result<()> {
        tokio::task::spawn_blocking(move || self.stop_blocking())
            .await
            .map_err(|e| Error::cluster(format!("stop task failed: {e}"), None))?
    }

    fn stop_blocking(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        let data = self.data_dir();
        let status = self
            .command("pg_ctl")
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| io_err("run pg_ctl stop", e))?;
        self.stopped = true;
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.root);
        }
        if !status.success() {
            return Err(Error::cluster(format!("pg_ctl stop exited with {status}"), None));
        }
        info!(port = self.port, "postgres cluster stopped");
        Ok(())
    }

    fn init_if_needed(&self) -> Result<String> {
        let data = self.data_dir();
        let pw_path = self.root.join(PASSWORD_FILE);
        if data.join("PG_VERSION").exists() {
            let pw = std::fs::read_to_string(&pw_path).map_err(|e| io_err("read superuser password", e))?;
            return Ok(pw.trim().to_owned());
        }
        let password: String = rand::rng().sample_iter(Alphanumeric).take(24).map(char::from).collect();
        std::fs::write(&pw_path, &password).map_err(|e| io_err("write superuser password", e))?;
        if let Some(user) = &self.run_as {
            chown_recursive(&pw_path, user)?;
        }
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C.UTF-8", "--no-instructions"])
            .arg(format!("--pwfile={}", pw_path.display()))
            .output()
            .map_err(|e| io_err("run initdb", e))?;
        if !output.status.success() {
            return Err(Error::cluster(
                format!("initdb failed: {}", String::from_utf8_lossy(&output.stderr).trim()),
                None,
            ));
        }
        debug!(data = %data.display(), "initdb done");
        Ok(password)
    }

    fn pg_ctl_start(&self, opts: &ClusterOptions) -> Result<()> {
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            ("port".into(), self.port.to_string()),
            ("unix_socket_directories".into(), self.root.display().to_string()),
            ("wal_level".into(), "logical".into()),
            ("max_replication_slots".into(), "16".into()),
            ("max_wal_senders".into(), "16".into()),
            ("max_connections".into(), "200".into()),
            ("password_encryption".into(), "scram-sha-256".into()),
        ];
        if opts.ephemeral_durability {
            for (k, v) in [("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")] {
                settings.push((k.into(), v.into()));
            }
        }
        settings.extend(opts.settings.iter().cloned());
        let server_opts: Vec<String> = settings.iter().map(|(k, v)| format!("-c {k}={v}")).collect();
        let output = self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .arg("-o")
            .arg(server_opts.join(" "))
            .stdout(Stdio::null())
            .output()
            .map_err(|e| io_err("run pg_ctl start", e))?;
        if !output.status.success() {
            let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            return Err(Error::cluster(
                format!(
                    "pg_ctl start failed on port {}: {}\nserver log (last lines, newest first):\n{}",
                    self.port,
                    String::from_utf8_lossy(&output.stderr).trim(),
                    tail.join("\n")
                ),
                None,
            ));
        }
        Ok(())
    }

    /// A detached shell that waits for this process to exit and then stops the server (and removes a
    /// temporary directory). It is what makes teardown reliable in tests, where statics never drop.
    /// It stops only the postmaster this process started: a server started on the same data directory
    /// after this process stopped its own (a quick demo restart) is left alone.
    fn spawn_watchdog(&self) {
        let pid_file = self.data_dir().join("postmaster.pid");
        let postmaster = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.lines().next().map(str::trim).map(str::to_owned))
            .unwrap_or_default();
        let stop = format!(
            "if [ \"$(head -n1 '{}' 2>/dev/null)\" = '{postmaster}' ]; then {}; fi",
            pid_file.display(),
            self.shell_stop_command()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; {cleanup}",
            pid = std::process::id(),
            cleanup = if self.temporary { format!("rm -rf '{}'", self.root.display()) } else { String::new() },
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        if let Err(e) = spawned {
            warn!(error = %e, "could not start the cluster watchdog; stop the cluster explicitly");
        }
    }

    fn shell_stop_command(&self) -> String {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let base = format!("'{}' stop -m fast -D '{}'", pg_ctl.display(), self.data_dir().display());
        match &self.run_as {
            Some(user) => format!("runuser -u {user} -- {base}"),
            None => base,
        }
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop_blocking() {
            warn!(error = %e, "stopping postgres cluster on drop failed");
        }
    }
}

use std::os::unix::process::CommandExt as _;

fn io_err(what: &str, e: std::io::Error) -> Error {
    Error::cluster(what.to_owned(), Some(e))
}

fn find_bin_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("ORBAS_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).find(|d| d.join("initdb").exists()))
        .unwrap_or_default();
    on_path.ok_or_else(|| {
        Error::cluster("no Postgres server binaries found (install the `postgresql` package or set ORBAS_PG_BIN)", None)
    })
}

/// Effective uid from /proc (Linux), without unsafe FFI.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn make_temp_root() -> Result<PathBuf> {
    let dir =
        tempfile::Builder::new().prefix("orbas-pg-").tempdir().map_err(|e| io_err("create temporary directory", e))?;
    Ok(dir.keep())
}

fn chown_recursive(path: &Path, user: &str) -> Result<()> {
    let status = Command::new("chown")
        .args(["-R", &format!("{user}:")])
        .arg(path)
        .status()
        .map_err(|e| io_err("run chown", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::cluster(format!("chown {user} {} failed (does the OS user exist?)", path.display()), None))
    }
}

/// Asks the OS for a free port. Another process may take it before the server binds; `start` reports
/// that as a clear error and callers in tests retry.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| io_err("find a free port", e))?;
    let port = listener.local_addr().map_err(|e| io_err("read bound port", e))?.port();
    drop(listener);
    std::thread::sleep(Duration::from_millis(1));
    Ok(port)
}
