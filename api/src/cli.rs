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
    /// Run the HTTP API (and, with ORBAS_LAKE set, the intelligence jobs of `orbas models run`).
    Serve(ServeArgs),
    /// Check the environment and say what to fix: Postgres reachable, wal_level, schema current, roles
    /// safe, replication slot health, the broker reachable, the lake's tables whole.
    Doctor(DoctorArgs),
    /// The data pipeline's services.
    #[command(subcommand)]
    Pipeline(Box<PipelineCommand>),
    /// Lake maintenance: compaction sorted by tenant, vacuum, erasure of a person (GDPR).
    #[command(subcommand)]
    Lake(LakeCommand),
    /// The SQL port: the lake's tables over the PostgreSQL wire protocol (psql, psycopg, JDBC, DBeaver,
    /// Metabase), SCRAM-authenticated as CRM users (e-mail) or API keys (prefix), database = tenant slug.
    Sql(SqlArgs),
    /// Intelligence: features, scoring models, forecasts, next-best-actions.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Benchmarks that compare Orbas with a named peer in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Search: keep the full-text + vector index current from the CDC topics, rebuild it, query it.
    #[command(subcommand)]
    Search(SearchCommand),
    /// Erase a person (GDPR): their contact/lead and every row that is theirs from the CRM, then the
    /// history the change stream, Kafka, the lake and the search index keep of them; prints what each
    /// store did and fails if one could not be confirmed (rerun to finish).
    Erase(EraseArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct EraseArgs {
    /// The tenant: its id or its slug.
    #[arg(long)]
    pub tenant: String,
    /// The person: a contact or lead id (the lead or contact it was converted from or into goes too).
    #[arg(long)]
    pub subject: String,
    /// The lake (default: `lake.url` from the settings, else ./lake); skipped when it does not exist.
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Kafka bootstrap servers (default: kafka.brokers from the settings); skipped when neither is set.
    #[arg(long)]
    pub brokers: Option<String>,
    /// The search index directory; skipped when not given or empty.
    #[arg(long, env = "ORBAS_SEARCH_DIR")]
    pub search_dir: Option<PathBuf>,
    /// How long to wait for the change stream, the consumers and the index to pass the erasure.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Keep the intelligence stage running over the lake until Ctrl-C: retraining of every scoring
    /// model on a schedule, ticket/interaction sentiment and next-best actions whenever the lake moves
    /// on, forecast snapshots daily (what `orbas demo` and `orbas serve` with ORBAS_LAKE run inside).
    Run(ModelsRunArgs),
    /// Export one tenant's point-in-time feature rows as CSV (`train.csv`: monthly cut-offs from
    /// --from until --split, labelled as known at the split; `test.csv`: cut-offs from the split on,
    /// labelled as known now), for training elsewhere or inspection.
    Features(ModelsFeaturesArgs),
    /// Evaluate the lead, deal and churn scorers of one tenant on a time split, side by side with
    /// scikit-learn (LogisticRegression, HistGradientBoosting) trained on the exact same rows
    /// (`scripts/setup.sh --bench` installs it); and the next-best-action acceptance model against
    /// the rate on the latest quarter of the reps' verdicts.
    Eval(ModelsEvalArgs),
    /// Retrain the lead, deal and churn scorers of one tenant (or every active tenant): a candidate
    /// per model is compared with the version in service on the same held-out months, promoted only
    /// if better, and the serving model's scores of every open entity are written to `predictions`.
    /// Then the next-best-action acceptance model, from the reps' feedback.
    Train(ModelsTrainArgs),
    /// Forecast one tenant (or every active tenant): the fiscal quarter's weighted pipeline roll-up per
    /// tenant, territory and owner (commit, best case, pipeline, closed, quota attainment) and monthly
    /// bookings and MRR forecasts with 80 % intervals, written as today's `forecast_snapshots`; then
    /// the accuracy of past snapshots against what happened.
    Forecast(ModelsForecastArgs),
    /// Benchmark the bookings and MRR forecasts on each series' last months (held out) side by side
    /// with statsforecast AutoETS and SeasonalNaive on the exact same series and split
    /// (`scripts/setup.sh --bench` installs them): sMAPE and MASE per horizon.
    ForecastEval(ModelsForecastEvalArgs),
    /// Sentiment of customer text: train the classifier (sentence embeddings + softmax regression) on
    /// the committed hand-labelled set, register it per tenant, and score the tickets (and, with
    /// --subjects, customers' ticket messages and interaction notes) that lack a current score into
    /// `sentiment_scores`. With --eval, only print the evaluation (ours vs the lexicon baseline on the
    /// hand-labelled holdout and on the generator's planted labels) and the embedding throughput.
    Sentiment(ModelsSentimentArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelsSentimentArgs {
    /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Tenant id or slug (default: every active tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Evaluate and measure only; no database or lake needed.
    #[arg(long)]
    pub eval: bool,
    /// The all-MiniLM-L6-v2 directory (default: $ORBAS_MODELS/all-MiniLM-L6-v2).
    #[arg(long)]
    pub model_dir: Option<std::path::PathBuf>,
    /// Root of the local models (`scripts/setup.sh` fills it).
    #[arg(long, env = "ORBAS_MODELS")]
    pub models: Option<std::path::PathBuf>,
    /// What to score: ticket, ticket_message, interaction (comma-separated).
    #[arg(long, default_value = "ticket", value_delimiter = ',')]
    pub subjects: Vec<String>,
    /// Generator texts of each kind in the evaluation.
    #[arg(long, default_value_t = 600)]
    pub generator_rows: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelsForecastArgs {
    /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Tenant id or slug (default: every active tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Months forecast ahead.
    #[arg(long, default_value_t = 6)]
    pub horizon: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelsForecastEvalArgs {
    /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Tenant id or slug (default: every active tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Held-out months, one evaluation per value.
    #[arg(long, value_delimiter = ',', default_value = "3,6")]
    pub horizons: Vec<usize>,
    /// Keep the exported series (`series_h<H>.csv`) and the peers' forecasts here (default: a
    /// temporary directory).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Print the results as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelsRunArgs {
    /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Serve Prometheus metrics (each job's last success, failed rounds, round times) at http://ADDR/metrics.
    #[arg(long, env = "ORBAS_MODELS_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

/// When the intelligence jobs run (`orbas models run`, `orbas serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    /// Hours between retraining rounds of the scoring models (the first runs at start).
    #[arg(long, env = "ORBAS_RETRAIN_HOURS", default_value_t = 6.0, value_parser = positive_hours)]
    pub retrain_hours: f64,
    /// Hours between forecast snapshots (the first runs at start).
    #[arg(long, env = "ORBAS_FORECAST_HOURS", default_value_t = 24.0, value_parser = positive_hours)]
    pub forecast_hours: f64,
    /// Minutes one tenant's turn of a job (a model's training, a forecast, a refresh) may take before
    /// it is abandoned and retried.
    #[arg(long, env = "ORBAS_MODELS_TENANT_DEADLINE_MINUTES", default_value_t = 60.0, value_parser = positive_minutes)]
    pub tenant_deadline_minutes: f64,
    /// Directory holding the sentence encoder (default: $ORBAS_MODELS, else ~/.cache/orbas/models).
    #[arg(long, env = "ORBAS_MODELS")]
    pub models: Option<PathBuf>,
}

impl ScheduleArgs {
    pub fn schedule(&self) -> orbas_models::service::Schedule {
        let hours = |h: f64| std::time::Duration::from_secs_f64(h * 3600.0);
        orbas_models::service::Schedule {
            retrain_every: hours(self.retrain_hours),
            forecast_every: hours(self.forecast_hours),
            tenant_deadline: std::time::Duration::from_secs_f64(self.tenant_deadline_minutes * 60.0),
            model_dir: orbas_models::embed::model_dir(self.models.as_deref()),
            ..orbas_models::service::Schedule::default()
        }
    }
}

fn positive_minutes(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(m) if (1.0 / 60.0..=24.0 * 60.0).contains(&m) => Ok(m),
        Ok(_) => Err("minutes must be at least a second and at most a day".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn positive_hours(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(h) if h.is_finite() && h > 0.0 && h <= 24.0 * 366.0 => Ok(h),
        Ok(_) => Err("hours must be positive and at most a year".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// With ORBAS_LAKE set, `serve` also runs the intelligence jobs (`orbas models run`); this leaves
    /// them to a process of their own.
    #[arg(long, env = "ORBAS_WITHOUT_MODELS")]
    pub without_models: bool,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelsTrainArgs {
    /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Tenant id or slug (default: every active tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// lead, opportunity, account or acceptance (the next-best-action acceptance model; default: all four).
    #[arg(long)]
    pub entity: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelsEvalArgs {
    /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Tenant id or slug (a slug is looked up in the database).
    #[arg(long)]
    pub tenant: String,
    /// lead, opportunity, account or acceptance (the next-best-action acceptance model; default: all four).
    #[arg(long)]
    pub entity: Option<String>,
    /// First cut-off month (RFC 3339; default: two years before now).
    #[arg(long)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// The time split (RFC 3339; default: 180 days before now).
    #[arg(long)]
    pub split: Option<chrono::DateTime<chrono::Utc>>,
    /// Print the results as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelsFeaturesArgs {
    /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Tenant id or slug (a slug is looked up in the database).
    #[arg(long)]
    pub tenant: String,
    /// lead, opportunity or account.
    #[arg(long)]
    pub entity: String,
    /// First cut-off month (RFC 3339; default: two years before now).
    #[arg(long)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// The time split (RFC 3339; default: 180 days before now).
    #[arg(long)]
    pub split: Option<chrono::DateTime<chrono::Utc>>,
    /// Directory for train.csv and test.csv.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Change data capture: Postgres logical replication (publication `orbas_cdc`) → Kafka topics
    /// `orbas.cdc.<schema>.<table>`, Debezium-compatible, with an initial snapshot on first start.
    Cdc(Box<CdcArgs>),
    /// Re-snapshot tables while `orbas pipeline cdc` runs (in primary-key chunks between WAL
    /// watermarks, events `snapshot: incremental`); or, with --all, start over with a full initial
    /// snapshot and a new slot on the service's next start.
    Resnapshot(ResnapshotArgs),
    /// The lake: CDC topics → Delta Lake tables (bronze change log and silver current state per CRM
    /// table), exactly once; the lake holds the read positions.
    Sink(SinkArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Kafka bootstrap servers (default: kafka.brokers from the settings, else 127.0.0.1:9092).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Consumer group; part of every position the lake records.
    #[arg(long, default_value = "orbas-lake")]
    pub group: String,
    /// A micro-batch closes after this many milliseconds…
    #[arg(long, default_value_t = 1000)]
    pub batch_ms: u64,
    /// …or this many messages.
    #[arg(long, default_value_t = 50_000)]
    pub batch_rows: usize,
    /// Extra librdkafka consumer property `key=value` (repeatable).
    #[arg(long = "kafka-property")]
    pub kafka_property: Vec<String>,
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, default_value = "127.0.0.1:9465")]
    pub metrics_addr: std::net::SocketAddr,
}

#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Rewrite every table's small files into large ones, sorted (Z-ordered) by tenant, and checkpoint.
    Optimize {
        /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
        #[arg(long, env = "ORBAS_LAKE")]
        lake: Option<String>,
        /// Target file size in MiB.
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=4096))]
        target_mb: u64,
    },
    /// Delete the files no table version younger than the retention references (time travel reaches
    /// back as far as the retention).
    Vacuum {
        /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
        #[arg(long, env = "ORBAS_LAKE")]
        lake: Option<String>,
        #[arg(long, default_value_t = 168)]
        retention_hours: u64,
    },
    /// Erase a person (their rows, and rows referencing them through contact_id/lead_id) of one tenant
    /// from every bronze and silver table, with the files and log versions that held them; prints a
    /// report (JSON with --json). Erase them in the CRM first.
    Erase {
        /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
        #[arg(long, env = "ORBAS_LAKE")]
        lake: Option<String>,
        /// The tenant: its id, or its slug (looked up in DATABASE_URL).
        #[arg(long)]
        tenant: String,
        /// The person's id (a contact, lead or user id).
        #[arg(long)]
        subject: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// The lake to check (default: the settings' lake URL; unchecked when neither is set).
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Kafka bootstrap servers to reach (default: kafka.brokers from the settings; unchecked when
    /// neither is set).
    #[arg(long)]
    pub brokers: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SqlArgs {
    /// Root of the lake: a directory or a `file://` URL (default: `lake.url` from the settings, else ./lake).
    #[arg(long, env = "ORBAS_LAKE")]
    pub lake: Option<String>,
    /// Listen address (default: sql.addr from the settings / ORBAS_SQL_ADDR, else 127.0.0.1:5433).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// TLS certificate chain (PEM); with --tls-key, clients may use sslmode=require.
    #[arg(long, env = "ORBAS_SQL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ORBAS_SQL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Refuse connections that do not use TLS.
    #[arg(long, requires = "tls_cert")]
    pub require_tls: bool,
    /// Serve Prometheus metrics (connections, logins, statement times, lake query times) at http://ADDR/metrics.
    #[arg(long, env = "ORBAS_SQL_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The longest a statement may run, in milliseconds (clients may set a lower statement_timeout).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub statement_timeout_ms: u64,
    /// Memory each connection's queries may use, in MiB (beyond it sorts and joins spill or fail).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    pub memory_mb: u64,
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_connections: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ResnapshotArgs {
    /// Tables: `schema.table`, or `table` in `public`.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub tables: Vec<String>,
    /// Drop the slot and its snapshot record (the service must be stopped): the next start copies
    /// every table again. This is how to recover from a lost slot.
    #[arg(long)]
    pub all: bool,
    /// The slot of the service that should do the work.
    #[arg(long, env = "ORBAS_CDC_SLOT", default_value = "orbas_cdc")]
    pub slot: String,
    #[arg(long, default_value = "orbas_cdc")]
    pub publication: String,
    /// Rows per chunk.
    #[arg(long, default_value_t = 1024)]
    pub chunk_size: i32,
    /// Wait until every request is done, printing progress.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CdcArgs {
    /// Kafka bootstrap servers (default: kafka.brokers from the settings, else 127.0.0.1:9092).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Replication slot (created on first start).
    #[arg(long, env = "ORBAS_CDC_SLOT", default_value = "orbas_cdc")]
    pub slot: String,
    #[arg(long, default_value = "orbas_cdc")]
    pub publication: String,
    /// Logical server name in `source.name`.
    #[arg(long, default_value = "orbas")]
    pub server_name: String,
    /// Partitions of the topics this service creates.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i32,
    /// Topic configuration of the topics this service creates (`key=value`, repeatable), e.g.
    /// `cleanup.policy=compact,delete`: compaction then drops an erased person's old change events
    /// after their tombstones (`orbas erase`).
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    pub topic_config: Vec<String>,
    /// Do not follow deletes with a tombstone.
    #[arg(long)]
    pub no_tombstones: bool,
    /// Wrap keys and values as Kafka Connect's JsonConverter does with schemas enabled.
    #[arg(long)]
    pub schemas: bool,
    /// Only these tables (`schema.table` or `table`; repeatable).
    #[arg(long = "include")]
    pub include: Vec<String>,
    /// Never these tables.
    #[arg(long = "exclude")]
    pub exclude: Vec<String>,
    /// Replace this column's values by a keyed hash (`table.column` or `schema.table.column`; repeatable).
    #[arg(long = "mask")]
    pub mask: Vec<String>,
    /// Key of the masking hash (required with --mask).
    #[arg(long, env = "ORBAS_CDC_MASK_KEY", hide_env_values = true)]
    pub mask_key: Option<String>,
    /// Tables copied at once during the initial snapshot.
    #[arg(long, default_value_t = 2)]
    pub snapshot_parallelism: usize,
    /// Milliseconds between status updates to the server (slot confirmation).
    #[arg(long, default_value_t = 1000)]
    pub status_interval_ms: u64,
    /// Milliseconds between heartbeats (0: none).
    #[arg(long, default_value_t = 10_000)]
    pub heartbeat_interval_ms: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "ORBAS_CDC_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: std::net::SocketAddr,
    /// Extra librdkafka producer property `key=value` (repeatable).
    #[arg(long = "kafka-property")]
    pub kafka_property: Vec<String>,
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
    /// The simulation's "today" (YYYY-MM-DD): the history ends at its midnight UTC. `orbas seed`
    /// defaults to a fixed date (2026-10-01) so runs compare; `orbas demo` to today, so the data is
    /// current when reps log calls and the next-best actions react.
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
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
    /// CDC events/s vs Postgres' own decoding of the same WAL, and commit → consumer latency.
    Cdc(BenchCdcArgs),
    /// Lake sink rows/s (Kafka → bronze + silver, committed) vs the arrow-rs Parquet writer alone on
    /// the same rows.
    Sink(BenchSinkArgs),
    /// Commit → visible in SQL over the lake at a steady write rate, vs commit → Kafka consumer.
    Freshness(BenchFreshnessArgs),
    /// The gold KPI queries on our engine vs DuckDB over the same silver Parquet files.
    Kpi(BenchKpiArgs),
    /// TPC-H (tpchgen data) on our engine vs DuckDB over the same Parquet files.
    Tpch(BenchTpchArgs),
    /// Decision latency: a rep's logged call → their next-best actions updated in the API, on a
    /// running `orbas demo`, beside the call's own trip into the lake.
    Decisions(BenchDecisionsArgs),
    /// Search: indexing docs/s, QPS and latency at 1M documents vs Postgres full-text search
    /// (tsvector + GIN + ts_rank) on the same corpus and queries.
    Search(BenchSearchArgs),
    /// Sentence embeddings/s of our encoder vs sentence-transformers and onnxruntime with the same
    /// model on the same sentences, and how close the vectors are (`scripts/setup.sh --bench-embed`).
    Embed(BenchEmbedArgs),
    /// Dashboard data as `GET /v1/dashboards/{id}/data` computes it, cold and warm cache, for every
    /// role's default dashboard over a seeded lake.
    Dashboards(BenchDashboardsArgs),
    /// The reliability run of docs/RELIABILITY.md: an API write burst while the CDC and the sink are
    /// SIGKILLed and Postgres restarts, then Postgres ↔ silver reconciled; a pooled multi-tenant load
    /// with cancelled requests checked for foreign rows; schemathesis counted for 5xx.
    Chaos(BenchChaosArgs),
    /// The vector graph vs faiss's HNSW on the same vectors: build, queries/s and recall, save and
    /// load (a restart's cost) (`scripts/setup.sh --bench-embed`).
    Vectors(BenchVectorsArgs),
    /// Every benchmark above (and `scripts/bench-api.sh`, the models' evaluations) one after the other,
    /// each one's figures written into its block of docs/BENCHMARKS.md with the command, date, machine
    /// and commit as soon as it finishes; benches whose peers are not installed are skipped.
    All(BenchAllArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchAllArgs {
    /// Only these benches (comma-separated: seed, api, cdc, cdc-socket, sink, freshness, kpi, tpch,
    /// models-eval, forecast-eval, sentiment, decisions, search, embed, vectors, dashboards).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Not these benches (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
    /// The document whose generated blocks are rewritten.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    pub file: PathBuf,
    /// Small sizes: a smoke run of every code path in minutes, not figures to publish.
    #[arg(long)]
    pub quick: bool,
    /// Print the commands that would run (and what is skipped), run nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchVectorsArgs {
    /// Vectors in the graph.
    #[arg(long, default_value_t = 100_000)]
    pub points: usize,
    /// Queries (one at a time, on one thread).
    #[arg(long, default_value_t = 1_000)]
    pub queries: usize,
    /// Dimensions (all-MiniLM-L6-v2's: 384).
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The Python with faiss-cpu (default: the venv `scripts/setup.sh --bench-embed` makes,
    /// ~/.cache/orbas/venv-embed).
    #[arg(long, env = "ORBAS_EMBED_PYTHON")]
    pub python: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchSearchArgs {
    /// Documents in the corpus.
    #[arg(long, default_value_t = 1_000_000)]
    pub docs: u64,
    /// Tenants the documents spread over (each query runs as one tenant).
    #[arg(long, default_value_t = 20)]
    pub tenants: u32,
    /// Distinct queries (cycled through by the clients).
    #[arg(long, default_value_t = 5_000)]
    pub queries: usize,
    /// Concurrent clients per engine.
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    /// Length of each measured load run.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where our index is built (a temporary directory inside it; default the system temp dir).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchEmbedArgs {
    /// Sentences embedded (generated CRM-like texts of 5 to 120 words).
    #[arg(long, default_value_t = 2_000)]
    pub sentences: usize,
    /// Timed rounds per engine (the best is reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The all-MiniLM-L6-v2 directory (default: $ORBAS_MODELS/all-MiniLM-L6-v2).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// The Python with sentence-transformers and onnxruntime (default: the venv
    /// `scripts/setup.sh --bench-embed` makes, ~/.cache/orbas/venv-embed).
    #[arg(long, env = "ORBAS_EMBED_PYTHON")]
    pub python: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchDecisionsArgs {
    /// Tenants of the demo.
    #[arg(long, default_value_t = 3)]
    pub tenants: u32,
    /// Size of the demo's data (1.0 ≈ one million rows).
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Calls logged (one at a time), each answering a different hot-lead action.
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
    /// How often the rep's list and the lake are asked (bounds the measurement error).
    #[arg(long, default_value_t = 250)]
    pub poll_ms: u64,
    /// A trial fails when its action is still listed after this long.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Keep the demo's data directory (its lake) here, empty or new, rather than in a temporary one
    /// removed at the end — e.g. to evaluate the models on the same lake afterwards.
    #[arg(long)]
    pub keep: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchTpchArgs {
    /// Scale factor (1 ≈ 1 GB of raw data).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Where the generated Parquet files are kept (default `~/.cache/orbas/tpch/sf<scale>`).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Timed runs per query and engine.
    #[arg(long, default_value_t = 3)]
    pub runs: u64,
    /// A subset of the queries, e.g. `1,6,14`.
    #[arg(long)]
    pub queries: Option<String>,
    /// Our engine's memory pool.
    #[arg(long, default_value_t = 8192)]
    pub memory_mib: usize,
    /// A DataFusion option for our engine, `key=value` (repeatable), to compare settings side by side.
    #[arg(long = "datafusion-option")]
    pub datafusion_option: Vec<String>,
    /// Print the results as one JSON document instead of a markdown table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchDashboardsArgs {
    #[arg(long, default_value_t = 3)]
    pub tenants: u32,
    /// Seed scale (1 ≈ 1M rows in total).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Timed loads per dashboard and tenant (each cold, then warm).
    #[arg(long, default_value_t = 10)]
    pub runs: u64,
    /// Page loads per dashboard and tenant in headless Chromium (each cold, then warm); 0 skips them.
    #[arg(long, default_value_t = 5)]
    pub browser_runs: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchKpiArgs {
    #[arg(long, default_value_t = 3)]
    pub tenants: u32,
    /// Seed scale (1 ≈ 1M rows in total).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Timed runs per query and engine.
    #[arg(long, default_value_t = 5)]
    pub runs: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchChaosArgs {
    /// Accounts created through the API during the burst (every tenth also renamed).
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// SIGKILLs during the burst, alternating between the CDC and the sink process.
    #[arg(long, default_value_t = 20)]
    pub kills: u32,
    /// Postgres restarts (fast shutdown, start on the same data directory) during the burst.
    #[arg(long, default_value_t = 2)]
    pub pg_restarts: u32,
    /// Tenants seeded; all of them take part in the pooled load, the first four write the burst.
    #[arg(long, default_value_t = 200)]
    pub tenants: u32,
    /// Requests of the pooled load (about 10 % cancelled mid-flight).
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    /// Concurrent API clients of the burst.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seed of the data, the kill and restart schedule and the load.
    #[arg(long, default_value_t = 20_261_206)]
    pub seed: u64,
    /// Leave schemathesis out (CI runs it in a test of its own).
    #[arg(long)]
    pub no_schemathesis: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchFreshnessArgs {
    /// Changes per second committed (100 transactions a second).
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Length of the measured run in seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// How often the SQL reader asks (bounds the measurement error).
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchSinkArgs {
    /// Changes in the topic.
    #[arg(long, default_value_t = 500_000)]
    pub rows: u64,
    /// Runs measured (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchCdcArgs {
    /// Row changes in the burst.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Row changes per transaction in the burst.
    #[arg(long, default_value_t = 10_000)]
    pub tx_rows: u64,
    /// Bursts measured (medians are reported: this kind of host is noisy).
    #[arg(long, default_value_t = 3)]
    pub rounds: u64,
    /// Changes per second during the latency run.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Length of the latency run in seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Extra librdkafka producer property `key=value` for the service (repeatable).
    #[arg(long = "kafka-property")]
    pub kafka_property: Vec<String>,
    /// Reach the benchmark's own Postgres over its Unix-domain socket instead of loopback TCP (every
    /// client: the writer, pg_recvlogical, the drain and the service).
    #[arg(long)]
    pub socket: bool,
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

// ---------------------------------------------------------------------------------------------------
// orbas search

#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Keep the search index in --data-dir current from the CDC topics until Ctrl-C (the index holds
    /// its Kafka positions; a restart resumes where the last commit ended).
    Index(SearchIndexArgs),
    /// Clear the index and re-read the CDC topics from the beginning, until caught up.
    Rebuild(SearchIndexArgs),
    /// Query the index as an operator: one tenant, every type, no permission filter beyond the tenant.
    Query(SearchQueryArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SearchModelArgs {
    /// The all-MiniLM-L6-v2 directory (default: $ORBAS_MODELS/all-MiniLM-L6-v2); without the model,
    /// semantic and hybrid search are unavailable.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Root of the local models (`scripts/setup.sh` fills it).
    #[arg(long, env = "ORBAS_MODELS")]
    pub models: Option<PathBuf>,
    /// Index and search without embeddings (keyword search only).
    #[arg(long)]
    pub no_embeddings: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SearchIndexArgs {
    /// The index directory.
    #[arg(long, env = "ORBAS_SEARCH_DIR", default_value = "./search")]
    pub data_dir: PathBuf,
    /// Kafka bootstrap servers (default: kafka.brokers from the settings, else 127.0.0.1:9092).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Consumer group (offsets committed for lag monitoring; the index holds the positions).
    #[arg(long, default_value = "orbas-search")]
    pub group: String,
    /// A batch (one index commit) closes after this many milliseconds…
    #[arg(long, default_value_t = 500)]
    pub batch_ms: u64,
    /// …or this many messages.
    #[arg(long, default_value_t = 2000)]
    pub batch_rows: usize,
    /// Extra librdkafka consumer property `key=value` (repeatable).
    #[arg(long = "kafka-property")]
    pub kafka_property: Vec<String>,
    /// Serve Prometheus metrics (messages, batches, documents, last commit) at http://ADDR/metrics.
    #[arg(long, env = "ORBAS_SEARCH_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub model: SearchModelArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SearchQueryArgs {
    /// The index directory.
    #[arg(long, env = "ORBAS_SEARCH_DIR", default_value = "./search")]
    pub data_dir: PathBuf,
    /// Tenant id.
    #[arg(long)]
    pub tenant: String,
    /// keyword, semantic or hybrid.
    #[arg(long, default_value = "keyword")]
    pub mode: String,
    /// Only these types (comma-separated: account, contact, lead, opportunity, ticket, ticket_message,
    /// knowledge_article, document, employee).
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    /// How many results (1..=100).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub limit: u16,
    #[command(flatten)]
    pub model: SearchModelArgs,
    /// The query.
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_flags_take_sane_durations_only() {
        assert_eq!(positive_hours("6"), Ok(6.0));
        assert!(positive_hours("0").is_err() && positive_hours("-1").is_err() && positive_hours("NaN").is_err());
        assert!(positive_hours("9000").is_err(), "more than a year");
        assert_eq!(positive_minutes("0.5"), Ok(0.5));
        assert!(positive_minutes("0.001").is_err(), "less than a second");
        assert!(
            positive_minutes("1441").is_err() && positive_minutes("inf").is_err() && positive_minutes("x").is_err()
        );
    }
}
