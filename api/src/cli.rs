//! The command line: `orbas <subcommand>`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::settings::Overrides;
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(name = "orbas", version, about = "Orbas — open revenue-intelligence hub")]
pub struct Cli {
    #[command(flatten)]
    pub settings: Overrides,
    #[arg(long, env = "ORBAS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything at once: Postgres (embedded unless DATABASE_URL is set), migrations, demo data, server.
    Demo(DemoArgs),
    /// Apply pending schema migrations (idempotent); with ORBAS_APP_PASSWORD also provision the app login.
    Migrate,
    /// Generate deterministic synthetic CRM data and bulk-load it with COPY.
    Seed(SeedArgs),
    /// Run the HTTP API.
    Serve,
    /// Check the environment: Postgres reachable, wal_level, schema current, roles safe.
    Doctor,
    /// Benchmarks that compare Orbas with a named peer in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Number of tenants.
    #[arg(long, default_value_t = 3)]
    pub tenants: u32,
    /// Size: 1.0 ≈ one million rows in total.
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
    /// RNG seed: the same seed gives the same data, ids and timestamps included.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write CSV files (one per table) into this directory instead of loading.
    #[arg(long)]
    pub csv_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub seed: SeedArgs,
    /// Keep the embedded cluster's data here (default: a temporary directory, gone on exit).
    #[arg(long, env = "ORBAS_DEMO_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Start, print the URLs, check readiness and exit (for scripts and CI).
    #[arg(long)]
    pub exit_when_ready: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Seed load rows/s vs `psql \copy` of the same CSV into the same schema.
    Seed(BenchSeedArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchSeedArgs {
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    #[arg(long, default_value_t = 3)]
    pub tenants: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}
