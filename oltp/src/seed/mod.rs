//! The deterministic synthetic CRM data generator behind `orbas seed`.
//!
//! One pure generator ([`generate`](generate::generate)) builds tenants of realistic CRM data — an
//! organisation with a sales hierarchy, accounts and contacts, leads, deals walking the pipeline, quotes,
//! subscriptions with invoices and payments, support tickets, activities, product usage, model scores —
//! and emits the rows table by table, in foreign-key order, as Postgres CSV into a sink:
//! [`load`] COPYs them into Postgres, [`write_csv`] writes one file per table, [`checksums`] hashes them.
//!
//! Invariants:
//! * **Deterministic.** Everything derives from `seed` (one `ChaCha8` stream per tenant, shard and table)
//!   and a simulated clock that ends at `as_of` 00:00 UTC, with about two years of history before it.
//!   The wall clock and OS randomness are never read for data: the same [`SeedConfig`] gives
//!   byte-identical CSV.
//! * **Consistent.** Every CHECK, unique and composite foreign key of the schema holds; derived columns
//!   agree with the rows they summarise (`last_activity_at` is the latest interaction or completed
//!   task referencing the record; quote and invoice totals are exact sums in cents; a converted lead
//!   points at the account, contact and opportunity it became).
//! * **Learnable, not labelled.** Outcomes are driven by latent variables (an account's health, a deal's
//!   momentum) that are never stored; they show only through observable columns: activity volume and
//!   recency, lead source, seat usage, ticket volume and tone, payment delays.
//! * **Sized.** `scale` 1.0 is about 1,000,000 rows over all tables and tenants (tenants get unequal
//!   shares: weights 1, 0.59, 0.42, …); every tenant has rows in every generated table even at tiny
//!   scales (the configuration tables — KPIs, dashboards, reports — are installed afterwards).

mod catalog;
mod catalog_emit;
mod csv;
mod ctx;
mod generate;
mod identity_emit;
mod org;
mod org_emit;
mod pg;
mod rng;
mod schema;
mod shard;
mod sinks;
mod text;
mod time;
mod trailing;
mod words;

#[cfg(test)]
mod load_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sqlx::PgPool;
use tracing::{info, instrument};

use crate::model::TenantId;
use crate::{Error, Result};

pub use generate::DEMO_PASSWORD;
pub use text::{planted_ticket_label, ticket_text};

/// `n` support-ticket texts (subject and description, as [`ticket_text`] joins them) written by the
/// generator's own templates, each with the sentiment its customer's mood planted: a third each of
/// negative, neutral and positive. Deterministic in `seed`. For evaluating sentiment models.
pub fn labelled_ticket_texts(seed: u64, n: usize) -> Vec<(crate::model::SentimentLabel, String)> {
    text::labelled_tickets(seed, n)
}

/// `n` interaction notes written by the generator's own templates, each with the tone it planted (the
/// deal going well or not, or a neutral note). Deterministic in `seed`.
pub fn labelled_interaction_texts(seed: u64, n: usize) -> Vec<(crate::model::SentimentLabel, String)> {
    text::labelled_interactions(seed, n)
}

/// Version of the generator; recorded in `seed_templates`. Bump when the same config yields other data.
pub const GENERATOR_VERSION: i32 = 1;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SeedConfig {
    /// Number of tenants, 1..=1000.
    pub tenants: u32,
    /// 1.0 ≈ 1,000,000 rows in total; rows grow linearly with it.
    pub scale: f64,
    pub seed: u64,
    /// The simulation's "today": data ends at this date's midnight UTC.
    pub as_of: NaiveDate,
}

impl SeedConfig {
    /// The default `as_of`: a fixed date, never the wall clock.
    pub const DEFAULT_AS_OF: (i32, u32, u32) = (2026, 10, 1);

    pub fn new(tenants: u32, scale: f64, seed: u64) -> Result<Self> {
        if !(1..=1000).contains(&tenants) {
            return Err(Error::invalid(format!("tenants must be between 1 and 1000, got {tenants}")));
        }
        if !(scale > 0.0 && scale <= 100.0) {
            return Err(Error::invalid(format!("scale must be greater than 0 and at most 100, got {scale}")));
        }
        let (y, m, d) = Self::DEFAULT_AS_OF;
        let as_of = NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| Error::invalid("invalid default as_of"))?;
        Ok(SeedConfig { tenants, scale, seed, as_of })
    }
}

/// Rows and CSV bytes generated for one table.
#[derive(Debug, Clone)]
pub struct TableStats {
    pub table: &'static str,
    pub rows: u64,
    pub bytes: u64,
}

/// The outcome of a load.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// Tenant ids and slugs, in generation order.
    pub tenants: Vec<(TenantId, String)>,
    /// Per table, in load order.
    pub tables: Vec<TableStats>,
    pub total_rows: u64,
    pub elapsed: Duration,
}

impl SeedReport {
    pub fn rows_per_sec(&self) -> f64 {
        self.total_rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One table's CSV file written by [`write_csv`].
#[derive(Debug, Clone)]
pub struct CsvTable {
    pub table: &'static str,
    pub columns: Vec<&'static str>,
    pub path: PathBuf,
    pub rows: u64,
}

fn table_stats(counts: &[(u64, u64)]) -> Vec<TableStats> {
    schema::TABLES
        .iter()
        .zip(counts)
        .map(|(t, (rows, bytes))| TableStats { table: t.name, rows: *rows, bytes: *bytes })
        .collect()
}

/// Told the rows of each table COPYed for a tenant, as the load goes (inside that tenant's still open
/// transaction: they count as loaded only once the load returns). Called on the loader's tasks, so it
/// must be cheap and must not block.
pub type Progress = dyn Fn(u64) + Send + Sync;

/// Bulk-loads the generated data with COPY (CSV) into the database behind `pool`, one transaction per
/// tenant (several tenants at once when the pool and the CPUs allow). The pool's role must bypass RLS (superuser or BYPASSRLS): Postgres refuses COPY FROM into
/// tables with row-level security otherwise.
pub async fn load(pool: &PgPool, cfg: &SeedConfig) -> Result<SeedReport> {
    load_with_progress(pool, cfg, &|_| {}).await
}

/// [`load`], telling `progress` the rows of every table COPYed. Dropping the future rolls back every
/// tenant not yet committed; tenants already committed stay.
#[instrument(skip_all, fields(tenants = cfg.tenants, scale = cfg.scale, seed = cfg.seed))]
pub async fn load_with_progress(pool: &PgPool, cfg: &SeedConfig, progress: &Progress) -> Result<SeedReport> {
    pg::check_role(pool).await?;
    let started = Instant::now();
    let loaded = pg::load_all(pool, cfg, progress).await?;
    let elapsed = started.elapsed();
    let tables = table_stats(&loaded.counts);
    for (t, (rows, spent)) in tables.iter().zip(&loaded.stats) {
        let per_sec = *rows as f64 / spent.as_secs_f64().max(1e-9);
        info!(table = t.table, rows, bytes = t.bytes, rows_per_sec = per_sec.round(), "table loaded");
    }
    let report =
        SeedReport { tenants: loaded.tenants, total_rows: tables.iter().map(|t| t.rows).sum(), tables, elapsed };
    info!(
        rows = report.total_rows,
        seconds = elapsed.as_secs_f64(),
        rows_per_sec = report.rows_per_sec().round(),
        "seed loaded"
    );
    Ok(report)
}

/// Writes the same data as [`load`] as one CSV file per table (`<dir>/<table>.csv`, no header) and
/// returns the files in load order.
pub fn write_csv(cfg: &SeedConfig, dir: &Path) -> Result<Vec<CsvTable>> {
    let mut sink = sinks::FileSink::create(dir)?;
    let generated = generate::generate(cfg, &mut sink)?;
    let paths = sink.finish()?;
    Ok(schema::TABLES
        .iter()
        .zip(paths)
        .zip(&generated.counts)
        .map(|((t, path), (rows, _))| CsvTable { table: t.name, columns: t.columns.to_vec(), path, rows: *rows })
        .collect())
}

/// SHA-256 (hex) per table of the generated CSV bytes.
pub fn checksums(cfg: &SeedConfig) -> Result<BTreeMap<&'static str, String>> {
    let mut sink = sinks::HashSink::new();
    generate::generate(cfg, &mut sink)?;
    Ok(schema::TABLES.iter().map(|t| t.name).zip(sink.finish()).collect())
}
