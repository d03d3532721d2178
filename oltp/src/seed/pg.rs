//! Loading into Postgres with `COPY … FROM STDIN (FORMAT csv)`. The generator runs on a blocking
//! thread and streams chunks through a bounded channel; this side copies them, one transaction per
//! tenant (a tenant is loaded completely or not at all), so generation and loading overlap. Tenants
//! are independent, so several are loaded at once, each by its own generator thread and connection
//! (as many as there are CPUs, tenants and pool connections); the data does not depend on this.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::mpsc;
use tracing::{error, info};
use uuid::Uuid;

use super::csv::{Counts, Sink};
use super::ctx::{self, Tenant};
use super::generate::{add_counts, generate_tenant, password_hash};
use super::schema::{TABLES, copy_statement};
use super::{Progress, SeedConfig};
use crate::model::TenantId;
use crate::{Error, Result};

/// What the generator thread tells the loader.
#[derive(Debug)]
pub(crate) enum Msg {
    BeginTenant(Uuid, String),
    BeginTable(usize),
    Data(Vec<u8>),
    EndTable(u64),
    EndTenant,
}

/// The generator's end of the channel.
#[derive(Debug)]
pub(crate) struct ChannelSink {
    pub tx: mpsc::Sender<Msg>,
}

impl ChannelSink {
    fn send(&self, msg: Msg) -> Result<()> {
        self.tx.blocking_send(msg).map_err(|_| Error::Seed { message: "the loader stopped; see its error".into() })
    }
}

impl Sink for ChannelSink {
    fn begin_tenant(&mut self, id: Uuid, slug: &str) -> Result<()> {
        self.send(Msg::BeginTenant(id, slug.to_owned()))
    }
    fn begin_table(&mut self, table: usize) -> Result<()> {
        self.send(Msg::BeginTable(table))
    }
    fn data(&mut self, _: usize, chunk: Vec<u8>) -> Result<()> {
        self.send(Msg::Data(chunk))
    }
    fn end_table(&mut self, _: usize, rows: u64) -> Result<()> {
        self.send(Msg::EndTable(rows))
    }
    fn end_tenant(&mut self) -> Result<()> {
        self.send(Msg::EndTenant)
    }
}

/// Error of the loader when the generator went away mid-stream (the generator's error is the cause).
pub(crate) const GENERATOR_STOPPED: &str = "the generator stopped mid-stream";

fn stopped() -> Error {
    Error::Seed { message: GENERATOR_STOPPED.into() }
}

fn protocol(what: &str) -> Error {
    Error::Seed { message: format!("unexpected message from the generator: {what}") }
}

/// Time spent copying and rows copied, per table.
pub(crate) type CopyStats = Vec<(u64, Duration)>;

/// Fails unless the pool's role may COPY into tables with row-level security.
pub(crate) async fn check_role(pool: &PgPool) -> Result<()> {
    let bypass: Option<bool> =
        sqlx::query_scalar("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_optional(pool)
            .await?;
    if bypass == Some(true) {
        return Ok(());
    }
    Err(Error::Seed {
        message: "the seed loader needs a database role that is superuser or has BYPASSRLS: Postgres refuses \
                  COPY FROM into tables with row-level security otherwise; connect with the admin DATABASE_URL"
            .into(),
    })
}

/// Copies everything the generator sends, committing each tenant.
pub(crate) async fn copy_all(pool: &PgPool, mut rx: mpsc::Receiver<Msg>, progress: &Progress) -> Result<CopyStats> {
    let mut conn = pool.acquire().await?;
    let mut stats: CopyStats = vec![(0, Duration::ZERO); TABLES.len()];
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::BeginTenant(id, slug) => copy_tenant(&mut conn, &mut rx, (id, &slug), &mut stats, progress).await?,
            other => return Err(protocol(&format!("{other:?}").chars().take(40).collect::<String>())),
        }
    }
    Ok(stats)
}

async fn copy_tenant(
    conn: &mut PgConnection,
    rx: &mut mpsc::Receiver<Msg>,
    (id, slug): (Uuid, &str),
    stats: &mut CopyStats,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)").bind(id.to_string()).execute(&mut *tx).await?;
    let mut rows = 0;
    loop {
        match rx.recv().await {
            Some(Msg::BeginTable(t)) => {
                let copied = copy_table(&mut tx, rx, t, stats).await.inspect_err(|e| {
                    error!(tenant_id = %id, slug, table = TABLES[t].name, error = %e, "COPY failed; tenant rolled back");
                })?;
                rows += copied;
                progress(copied);
            }
            Some(Msg::EndTenant) => break,
            Some(_) => return Err(protocol("data outside a table")),
            None => return Err(stopped()),
        }
    }
    tx.commit().await?;
    let secs = started.elapsed().as_secs_f64();
    info!(tenant_id = %id, slug, rows, seconds = secs, rows_per_sec = rows as f64 / secs.max(1e-9), "tenant loaded");
    Ok(())
}

async fn copy_table(
    conn: &mut PgConnection,
    rx: &mut mpsc::Receiver<Msg>,
    table: usize,
    stats: &mut CopyStats,
) -> Result<u64> {
    let started = Instant::now();
    let mut copy = conn.copy_in_raw(&copy_statement(&TABLES[table])).await?;
    loop {
        match rx.recv().await {
            Some(Msg::Data(chunk)) => {
                copy.send(chunk).await?;
            }
            Some(Msg::EndTable(expected)) => {
                let copied = copy.finish().await?;
                if copied != expected {
                    return Err(Error::Seed {
                        message: format!("{}: copied {copied} rows, generated {expected}", TABLES[table].name),
                    });
                }
                stats[table].0 += copied;
                stats[table].1 += started.elapsed();
                return Ok(copied);
            }
            Some(_) => return Err(protocol("table not ended")),
            None => {
                copy.abort(GENERATOR_STOPPED).await?;
                return Err(stopped());
            }
        }
    }
}

/// Everything a load produced: tenants in generation order, rows and bytes per table, COPY time.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub tenants: Vec<(TenantId, String)>,
    pub counts: Counts,
    pub stats: CopyStats,
}

type Queue = Arc<Mutex<VecDeque<(usize, Tenant)>>>;

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Seed { message: format!("generator thread failed: {e}") }
}

/// Generates and copies every tenant of `cfg`, several at a time.
pub(crate) async fn load_all(pool: &PgPool, cfg: &SeedConfig, progress: &Progress) -> Result<Loaded> {
    let seed = cfg.seed;
    let hash = tokio::task::spawn_blocking(move || password_hash(seed)).await.map_err(join_error)??;
    let tenants: VecDeque<(usize, Tenant)> = ctx::tenants(cfg).into_iter().enumerate().collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cpus.min(tenants.len()).min(pool.options().get_max_connections() as usize).max(1);
    let queue: Queue = Arc::new(Mutex::new(tenants));
    let done = futures::future::try_join_all((0..workers).map(|_| worker(pool, queue.clone(), hash.clone(), progress)))
        .await?;
    let mut all: Vec<(usize, TenantId, String)> = Vec::new();
    let mut loaded = Loaded {
        tenants: Vec::new(),
        counts: vec![(0, 0); TABLES.len()],
        stats: vec![(0, Duration::ZERO); TABLES.len()],
    };
    for (tenants, counts, stats) in done {
        all.extend(tenants);
        add_counts(&mut loaded.counts, &counts);
        for (total, s) in loaded.stats.iter_mut().zip(stats) {
            total.0 += s.0;
            total.1 += s.1;
        }
    }
    all.sort_by_key(|t| t.0);
    loaded.tenants = all.into_iter().map(|(_, id, slug)| (id, slug)).collect();
    Ok(loaded)
}

type WorkerResult = (Vec<(usize, TenantId, String)>, Counts, CopyStats);

/// Takes tenants off the queue until it is empty: generates each on a blocking thread and copies it.
async fn worker(pool: &PgPool, queue: Queue, hash: String, progress: &Progress) -> Result<WorkerResult> {
    let mut out: WorkerResult = (Vec::new(), vec![(0, 0); TABLES.len()], vec![(0, Duration::ZERO); TABLES.len()]);
    loop {
        let next = queue.lock().map_err(|_| Error::Seed { message: "tenant queue poisoned".into() })?.pop_front();
        let Some((ix, tenant)) = next else { return Ok(out) };
        let (tx, rx) = mpsc::channel(8);
        let hash = hash.clone();
        let generator = tokio::task::spawn_blocking(move || generate_tenant(tenant, &hash, &mut ChannelSink { tx }));
        let copied = copy_all(pool, rx, progress).await;
        let generated = generator.await.map_err(join_error)?;
        let (stats, (id, slug, counts)) = match (copied, generated) {
            (Ok(stats), Ok(generated)) => (stats, generated),
            (Err(Error::Seed { message }), Err(g)) if message == GENERATOR_STOPPED => return Err(g),
            (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
        };
        out.0.push((ix, id, slug));
        add_counts(&mut out.1, &counts);
        for (total, s) in out.2.iter_mut().zip(stats) {
            total.0 += s.0;
            total.1 += s.1;
        }
    }
}
