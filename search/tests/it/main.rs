//! The search index fed the real way: rows written to Postgres go through real CDC and a real broker
//! (tansu) into the indexer and the index; queries then run against what it committed.
//! - `relevance`: a fixed corpus and ≥ 30 queries (names, companies, subjects, titles, typos, prefixes)
//!   with the record each must rank in the top 3; a second tenant with identical texts never appears,
//!   in keyword or semantic mode, and read scopes (own, and roles without a resource) filter inside.
//! - `freshness`: an update and a delete are visible once the index's applied LSN reached the LSN of
//!   the write; a restarted indexer resumes from the index's positions.

use std::sync::Arc;
use std::time::Duration;

use orbas_pipeline::broker::{Broker, BrokerOptions};
use orbas_pipeline::cdc::CdcConfig;
use orbas_search::{Access, IndexerConfig, IndexerStats, SearchIndex};
use orbas_testkit::TestDb;
use tokio::sync::{oneshot, watch};

mod corpus;
mod freshness;
mod relevance;

/// How long anything flowing through CDC → broker → indexer may take (generous: a loaded 2-core CI).
pub const FLOW: Duration = Duration::from_secs(180);

/// Postgres with CDC into a broker.
#[derive(Debug)]
pub struct Stream {
    pub broker: Broker,
    _cdc_stop: oneshot::Sender<()>,
}

pub async fn stream(db: &TestDb) -> Stream {
    let broker = Broker::start(BrokerOptions::default()).expect("start tansu (./scripts/setup.sh installs it)");
    let mut cfg = CdcConfig::new(&db.admin_url, &broker.bootstrap()).expect("cdc config");
    cfg.slot = format!("s_{}", &db.name[db.name.len() - 16..]);
    cfg.status_interval = Duration::from_millis(100);
    cfg.heartbeat_interval = Duration::ZERO;
    let slot = cfg.slot.clone();
    let (cdc_stop, rx) = oneshot::channel::<()>();
    tokio::spawn(orbas_pipeline::cdc::run(cfg, async move {
        let _ = rx.await;
    }));
    orbas_testkit::cdc_snapshot_done(&db.admin, &slot).await;
    Stream { broker, _cdc_stop: cdc_stop }
}

/// A running indexer over an index.
#[derive(Debug)]
pub struct Indexing {
    pub index: Arc<SearchIndex>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<orbas_search::Result<IndexerStats>>,
}

impl Indexing {
    pub async fn start(stream: &Stream, dir: &std::path::Path, embedder: bool) -> Indexing {
        let embedder = embedder.then(embedder_or_panic);
        let dir = dir.to_owned();
        let index = tokio::task::spawn_blocking(move || SearchIndex::open(&dir, Access::Writer, embedder))
            .await
            .expect("open task")
            .expect("open the index");
        let index = Arc::new(index);
        let mut cfg = IndexerConfig::new(&stream.broker.bootstrap());
        cfg.batch_interval = Duration::from_millis(200);
        cfg.discovery_interval = Duration::from_millis(500);
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(orbas_search::indexer::run(cfg, index.clone(), rx));
        Indexing { index, stop, task }
    }

    /// Clears the index and re-reads every topic from the beginning until caught up (`orbas search
    /// rebuild`).
    pub async fn rebuild(stream: &Stream, index: Arc<SearchIndex>) -> IndexerStats {
        let ix = index.clone();
        tokio::task::spawn_blocking(move || ix.clear()).await.expect("clear task").expect("clear");
        assert_eq!(index.num_docs(), 0);
        let mut cfg = IndexerConfig::new(&stream.broker.bootstrap());
        cfg.batch_interval = Duration::from_millis(200);
        cfg.discovery_interval = Duration::from_millis(500);
        cfg.until_caught_up = true;
        let (_stop, rx) = watch::channel(false);
        tokio::time::timeout(FLOW, orbas_search::indexer::run(cfg, index, rx))
            .await
            .expect("the rebuild catches up")
            .expect("the rebuild ran without error")
    }

    /// Stops the indexer (its open batch committed) and returns what it did.
    pub async fn stop(self) -> (Arc<SearchIndex>, IndexerStats) {
        let _ = self.stop.send(true);
        let stats = self.task.await.expect("indexer task").expect("the indexer ran without error");
        (self.index, stats)
    }

    /// Drops the stop channel without a word, as an owner that ends does: the indexer must take that
    /// as stop (its open batch committed), not spin on a channel that can never say stop.
    pub async fn abandon(self) -> (Arc<SearchIndex>, IndexerStats) {
        drop(self.stop);
        let stats = tokio::time::timeout(FLOW, self.task)
            .await
            .expect("the indexer stops once nobody can stop it")
            .expect("indexer task")
            .expect("the indexer ran without error");
        (self.index, stats)
    }

    /// Waits until the index holds `n` documents.
    pub async fn hold(&self, n: u64) {
        orbas_testkit::eventually(&format!("the index holds {n} documents"), FLOW, || {
            let ix = self.index.clone();
            async move { ix.num_docs() == n }
        })
        .await;
    }

    /// Waits until the index holds every change up to `lsn`.
    pub async fn reach(&self, lsn: i64) {
        orbas_testkit::eventually(&format!("the index applied LSN {lsn}"), FLOW, || {
            let ix = self.index.clone();
            async move { ix.applied_lsn() >= lsn }
        })
        .await;
    }
}

/// The sentence encoder (installed by scripts/setup.sh; these tests need it for the semantic path).
pub fn embedder_or_panic() -> Arc<orbas_models::embed::Embedder> {
    let dir = orbas_models::embed::model_dir(None).expect("a models root ($ORBAS_MODELS or $HOME)");
    Arc::new(orbas_models::embed::Embedder::load(&dir).expect("the all-MiniLM-L6-v2 model (scripts/setup.sh)"))
}

/// The WAL insert position inside the current transaction of `tx`: every change the transaction made so
/// far lies before it, and its commit record (the commit LSN the events carry) at or after it.
pub async fn write_lsn(tx: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint")
        .fetch_one(tx)
        .await
        .expect("current WAL insert LSN")
}

/// Runs `sql` (binding `id`) in a transaction and returns the WAL position right after it, before the
/// commit: the commit LSN the change carries is at or beyond it.
pub async fn write(db: &TestDb, sql: &str, id: &str) -> i64 {
    let mut tx = db.admin.begin().await.expect("begin");
    let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).bind(id).execute(&mut *tx).await.expect("write");
    assert_eq!(done.rows_affected(), 1, "{sql}");
    let lsn = write_lsn(&mut tx).await;
    tx.commit().await.expect("commit");
    lsn
}

/// A change after everything written so far (a no-op update of an indexed row): its LSN, once
/// applied, means the index holds all earlier writes of that table's topic.
pub async fn mark(db: &TestDb, tenant: &corpus::Tenant) -> i64 {
    write(db, "UPDATE employees SET title = title WHERE id = $1::uuid", &tenant.id_of("lamarr")).await
}
