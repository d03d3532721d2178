//! SQL over the lake for one tenant: a DataFusion session whose catalog holds the silver tables (schema
//! `public`, the default) and the KPI tables (schema `gold`, see [`crate::gold`]), each
//! wrapped in [`TenantScoped`] so the engine returns only the session tenant's rows. Only queries run
//! (`SELECT`, `EXPLAIN`, `SHOW`, `information_schema`): DDL, DML and session statements are refused by
//! DataFusion's own [`SQLOptions`] before planning. Each statement runs under a time limit and a memory
//! limit of its own.
//!
//! [`Lake`] keeps one handle per silver table and refreshes them from the Delta log at most every
//! 200 ms ([`Lake::snapshot`]); a session installs one snapshot, so a query sees every batch the sink
//! committed before it started (and one consistent version per table for its whole run).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::catalog::TableProvider;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use deltalake::DeltaTable;
use futures::TryStreamExt as _;
use tokio::sync::Mutex;
use tracing::{debug, warn};
use url::Url;

use crate::error::{Error, Result};
use crate::gold;
use crate::sink::{schema_url, table_url};
use crate::tenant::TenantScoped;

/// The column every tenant-owned CRM table carries.
pub const TENANT_COLUMN: &str = "tenant_id";
/// The SQL schema of the silver tables (the CRM's own schema name; the session's default).
pub const SILVER_SCHEMA: &str = "public";

/// Per-statement limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_secs(30), memory_bytes: 512 * 1024 * 1024 }
    }
}

impl Limits {
    /// For the platform's own batch jobs over a whole tenant's history (features for every open
    /// record, scoring, forecasts): they sort and join far more than an interactive query, and the
    /// interactive pool (512 MiB) left a scale-1 tenant's next-best-action round failing in its
    /// external sort. Still bounded, so a runaway job spills or fails instead of taking the host.
    pub const BATCH: Limits = Limits { timeout: Duration::from_secs(600), memory_bytes: 4 * 1024 * 1024 * 1024 };
}

/// Why a statement did not run, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Not a query (DDL, DML, `SET`, …).
    #[error("only queries are allowed here (SELECT, EXPLAIN, SHOW): {0}")]
    NotAllowed(String),
    /// Syntax or planning errors: unknown table or column, type mismatch, …
    #[error("{0}")]
    Invalid(String),
    #[error("the statement ran longer than {0:?} and was cancelled")]
    Timeout(Duration),
    #[error("the statement needs more than its memory limit: {0}")]
    Memory(String),
    #[error(transparent)]
    Internal(#[from] Error),
}

/// How long a refreshed view of the lake is served before the Delta logs are read again. Bounds the
/// staleness a query can see (on top of the sink's micro-batch interval) and the log reads per second.
const FRESHNESS: Duration = Duration::from_millis(200);

/// The lake's silver tables, shared by every session (HTTP requests and SQL-port connections).
pub struct Lake {
    root: Url,
    freshness: Duration,
    state: Mutex<LakeState>,
}

struct LakeState {
    handles: BTreeMap<String, DeltaTable>,
    snapshot: Arc<Snapshot>,
    refreshed: Option<Instant>,
}

/// The tables at one moment: a table provider per silver table, each pinned to one Delta version.
#[derive(Default)]
pub struct Snapshot {
    /// Changes whenever a table's version or the set of tables changes.
    pub generation: u64,
    versions: BTreeMap<String, Option<u64>>,
    providers: BTreeMap<String, Arc<dyn TableProvider>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("generation", &self.generation).field("versions", &self.versions).finish()
    }
}

/// The silver tables' versions as [`Lake::moved`] saw them (empty: never).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions(BTreeMap<String, Option<u64>>);

/// Which tenants' silver rows changed between two reads of the lake ([`Lake::moved`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// Any of them may have.
    All,
    /// These (by id); none when nothing moved.
    Tenants(BTreeSet<String>),
}

impl Moved {
    pub fn includes(&self, tenant: &str) -> bool {
        match self {
            Moved::All => true,
            Moved::Tenants(t) => t.contains(tenant),
        }
    }
}

/// Delta operations that leave every row as it was.
fn changes_no_rows(operation: &str) -> bool {
    matches!(
        operation,
        "CREATE TABLE"
            | "ADD COLUMN"
            | "OPTIMIZE"
            | "VACUUM START"
            | "VACUUM END"
            | "SET TBLPROPERTIES"
            | "UPDATE FIELD METADATA"
            | "UPDATE TABLE METADATA"
            | "ADD CONSTRAINT"
            | "DROP CONSTRAINT"
            | "ADD FEATURE"
    )
}

/// A lake table's latest version (see [`Lake::commits`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TableCommit {
    /// `schema.table` as SQL names it.
    pub key: String,
    pub version: Option<u64>,
    /// When that version was committed.
    pub committed_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TableCommit {
    /// Whether the table is a gold (aggregate) table rather than a silver (current-state) one.
    pub fn is_gold(&self) -> bool {
        self.key.strip_prefix(crate::gold::SQL_SCHEMA).is_some_and(|rest| rest.starts_with('.'))
    }

    /// The newest commit among the gold tables (`gold`) or the silver ones.
    pub fn newest(commits: &[TableCommit], gold: bool) -> Option<chrono::DateTime<chrono::Utc>> {
        commits.iter().filter(|c| c.is_gold() == gold).filter_map(|c| c.committed_at).max()
    }
}

/// How much of a table a session sees beyond its tenant's rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Every row of the tenant.
    All,
    /// Not the table at all (queries naming it fail as for a table that does not exist).
    Hidden,
    /// Only the rows whose `column` is one of `values` (a viewer's own records, or their team's).
    Rows { column: String, values: Vec<String> },
}

impl Snapshot {
    /// The tables of the snapshot (`schema.table`) with their columns.
    pub fn tables(&self) -> impl Iterator<Item = (&str, SchemaRef)> {
        self.providers.iter().map(|(k, p)| (k.as_str(), p.schema()))
    }

    /// Registers every table of the snapshot in `ctx`'s default schema, restricted to `tenant` (tables
    /// without a tenant column are not exposed), replacing earlier registrations and dropping tables
    /// that are gone.
    pub fn install(&self, ctx: &SessionContext, tenant: &str) -> Result<()> {
        self.install_scoped(ctx, tenant, |_, _| Access::All)
    }

    /// As [`Snapshot::install`], each table further restricted by `access(key, schema)`: hidden, or
    /// limited to rows whose column holds one of some values (a table without that column is hidden).
    pub fn install_scoped(
        &self,
        ctx: &SessionContext,
        tenant: &str,
        access: impl Fn(&str, &SchemaRef) -> Access,
    ) -> Result<()> {
        for schema_name in [SILVER_SCHEMA, gold::SQL_SCHEMA] {
            if let Some(schema) = ctx.catalog("lake").and_then(|c| c.schema(schema_name)) {
                for gone in schema.table_names() {
                    if !self.providers.contains_key(&format!("{schema_name}.{gone}")) {
                        ctx.deregister_table(TableReference::partial(schema_name, gone.as_str()))?;
                    }
                }
            }
        }
        for (key, provider) in &self.providers {
            let Some((schema, name)) = key.split_once('.') else { continue };
            let reference = TableReference::partial(schema, name);
            let scoped: Option<Arc<dyn TableProvider>> =
                match TenantScoped::new(provider.clone(), TENANT_COLUMN, ScalarValue::from(tenant)) {
                    None => {
                        debug!(table = %key, "no tenant column: not exposed to tenant sessions");
                        None
                    }
                    Some(t) => match access(key, &provider.schema()) {
                        Access::All => Some(Arc::new(t)),
                        Access::Hidden => None,
                        Access::Rows { column, values } => {
                            let values = values.into_iter().map(ScalarValue::from).collect();
                            TenantScoped::any_of(Arc::new(t), &column, values)
                                .map(|r| Arc::new(r) as Arc<dyn TableProvider>)
                        }
                    },
                };
            ctx.deregister_table(reference.clone())?;
            if let Some(scoped) = scoped {
                ctx.register_table(reference, scoped)?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("root", &self.root.as_str()).finish_non_exhaustive()
    }
}

impl Lake {
    pub fn new(root: Url) -> Self {
        let state = LakeState { handles: BTreeMap::new(), snapshot: Arc::default(), refreshed: None };
        Lake { root, freshness: FRESHNESS, state: Mutex::new(state) }
    }

    /// Reads the Delta logs again when the last read is older than `freshness` (default 200 ms).
    pub fn with_freshness(self, freshness: Duration) -> Self {
        Lake { freshness, ..self }
    }

    /// The tables found under the lake root as `(key, url)`, key = `schema.table` as SQL names it: the
    /// silver tables of the CRM's `public` schema and the gold KPI tables. Local lakes are listed; for
    /// object stores the tables already known are kept.
    async fn discover(&self, known: &BTreeMap<String, DeltaTable>) -> Result<Vec<(String, Url)>> {
        let layers = [("silver", "public", SILVER_SCHEMA), ("gold", gold::DIR, gold::SQL_SCHEMA)];
        let mut out = Vec::new();
        for (layer, dir, schema) in layers {
            let base = schema_url(&self.root, layer, dir)?;
            let names = match base.to_file_path() {
                Ok(path) => crate::lake::local_tables(&path).await,
                Err(()) => {
                    known.keys().filter_map(|k| k.strip_prefix(&format!("{schema}.")).map(str::to_owned)).collect()
                }
            };
            for name in names {
                out.push((format!("{schema}.{name}"), table_url(&self.root, layer, dir, &name)?));
            }
        }
        Ok(out)
    }

    /// The current tables: the Delta logs are read again when the last read is older than the
    /// freshness window, so a query sees every batch the sink committed before that.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        let mut state = self.state.lock().await;
        if state.refreshed.is_some_and(|t| t.elapsed() < self.freshness) {
            return Ok(state.snapshot.clone());
        }
        let tables = self.discover(&state.handles).await?;
        let mut versions = BTreeMap::new();
        let mut providers = BTreeMap::new();
        // Each handle is refreshed in place, so a caller that gives up half-way (a timeout drops this
        // future) leaves every table it has opened in the map, at the version last read.
        for (name, url) in tables {
            let table = match state.handles.entry(name.clone()) {
                Entry::Occupied(known) => {
                    let table = known.into_mut();
                    if let Err(e) = table.update_state().await {
                        warn!(table = %name, error = %e, "refreshing a lake table failed; serving the last version");
                    }
                    table
                }
                Entry::Vacant(slot) => match deltalake::open_table(url).await {
                    Ok(t) => slot.insert(t),
                    Err(e) => {
                        warn!(table = %name, error = %e, "a lake table cannot be opened; leaving it out");
                        continue;
                    }
                },
            };
            versions.insert(name.clone(), table.version());
            providers.insert(name, table.table_provider().await?);
        }
        let previous = &state.snapshot;
        let generation = if versions == previous.versions { previous.generation } else { previous.generation + 1 };
        if generation != previous.generation {
            state.snapshot = Arc::new(Snapshot { generation, versions, providers });
        }
        state.refreshed = Some(Instant::now());
        Ok(state.snapshot.clone())
    }

    /// Every table's latest version and when it was committed (from the Delta logs as last read, after
    /// the same refresh a query makes), by key (`public.accounts`, `gold.kpi_…`): what the status page
    /// shows of the lake.
    pub async fn commits(&self) -> Result<Vec<TableCommit>> {
        self.snapshot().await?;
        let state = self.state.lock().await;
        Ok(state
            .handles
            .iter()
            .map(|(key, table)| {
                let version = table.version();
                let committed_ms = version.and_then(|v| table.snapshot().ok()?.version_timestamp(v));
                TableCommit {
                    key: key.clone(),
                    version,
                    committed_at: committed_ms.and_then(chrono::DateTime::from_timestamp_millis),
                }
            })
            .collect())
    }

    /// What moved in the silver tables since `seen` (the versions an earlier call returned; empty the
    /// first time): the tenants the new commits name ([`crate::lake::TENANTS_KEY`]), or [`Moved::All`]
    /// when that cannot be told — the first call, a commit that names no tenants (a truncate, an
    /// erasure, a writer other than the sink), history no longer in the log. Commits that change no
    /// rows (table creation, added columns, compaction, vacuum) move nothing, nor do commits to the
    /// silver tables named in `ignore` (a job's own writes). Returns the versions to pass next time
    /// with what moved up to them.
    pub async fn moved(&self, seen: &Versions, ignore: &[&str]) -> Result<(Versions, Moved)> {
        self.snapshot().await?;
        let state = self.state.lock().await;
        let prefix = format!("{SILVER_SCHEMA}.");
        let now: BTreeMap<String, Option<u64>> = state
            .handles
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(key, table)| (key.clone(), table.version()))
            .collect();
        if seen.0.is_empty() {
            return Ok((Versions(now), Moved::All));
        }
        let mut tenants = BTreeSet::new();
        for (key, version) in &now {
            if key.strip_prefix(&prefix).is_some_and(|table| ignore.contains(&table)) {
                continue;
            }
            let Some(version) = *version else { continue };
            let new = match seen.0.get(key).copied().flatten() {
                Some(before) if before >= version => continue,
                Some(before) => version - before,
                None => version + 1,
            };
            let Some(table) = state.handles.get(key) else { continue };
            let limit = usize::try_from(new).unwrap_or(usize::MAX);
            let infos: Vec<deltalake::kernel::CommitInfo> = match table.history(Some(limit)).try_collect().await {
                Ok(infos) => infos,
                Err(e) => {
                    warn!(table = %key, error = %e, "reading the table's history failed; every tenant counts as moved");
                    return Ok((Versions(now), Moved::All));
                }
            };
            if infos.len() < limit {
                debug!(table = %key, new, found = infos.len(), "commits missing from the log");
                return Ok((Versions(now), Moved::All));
            }
            for info in infos {
                match info.info.get(crate::lake::TENANTS_KEY) {
                    Some(serde_json::Value::Array(ids)) => {
                        tenants.extend(ids.iter().filter_map(|id| id.as_str().map(str::to_owned)));
                    }
                    None if info.operation.as_deref().is_some_and(changes_no_rows) => {}
                    _ => {
                        debug!(table = %key, operation = ?info.operation, "a commit names no tenants");
                        return Ok((Versions(now), Moved::All));
                    }
                }
            }
        }
        Ok((Versions(now), Moved::Tenants(tenants)))
    }

    /// A fresh session context (information_schema on, catalog `lake`, schema `public`) whose memory
    /// pool is limited to `limits`; no tables yet.
    pub fn context(limits: Limits) -> Result<SessionContext> {
        let runtime =
            RuntimeEnvBuilder::new().with_memory_pool(Arc::new(FairSpillPool::new(limits.memory_bytes))).build_arc()?;
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("lake", "public")
            .with_create_default_catalog_and_schema(true);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        if let Some(catalog) = ctx.catalog("lake") {
            catalog.register_schema(gold::SQL_SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
        }
        Ok(ctx)
    }

    /// The silver tables as they were at `at` (Delta time travel: each table at its latest version
    /// committed at or before `at`; tables created later are left out). Reaches back as far as vacuum
    /// and log retention allow; an erasure cuts it at the erasure for the tables it touched.
    pub async fn snapshot_at(&self, at: chrono::DateTime<chrono::Utc>) -> Result<Snapshot> {
        let tables = {
            let state = self.state.lock().await;
            self.discover(&state.handles).await?
        };
        let mut versions = BTreeMap::new();
        let mut providers = BTreeMap::new();
        for (name, url) in tables {
            let mut table = match DeltaTable::try_from_url(url).await {
                Ok(t) => t,
                Err(e) => {
                    warn!(table = %name, error = %e, "a lake table cannot be opened; leaving it out");
                    continue;
                }
            };
            if let Err(e) = table.load_with_datetime(at).await {
                debug!(table = %name, error = %e, "no version of the table at that time");
                continue;
            }
            // Before its first commit the table did not exist (time travel would give version 0).
            let committed = table.version().and_then(|v| table.snapshot().ok()?.version_timestamp(v));
            if committed.is_some_and(|ms| ms > at.timestamp_millis()) {
                continue;
            }
            versions.insert(name.clone(), table.version());
            providers.insert(name, table.table_provider().await?);
        }
        Ok(Snapshot { generation: 0, versions, providers })
    }

    /// A session for `tenant` over the silver tables as they were at `at`.
    pub async fn session_at(
        &self,
        tenant: &str,
        limits: Limits,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<SessionContext> {
        let ctx = Self::context(limits)?;
        self.snapshot_at(at).await?.install(&ctx, tenant)?;
        Ok(ctx)
    }

    /// A session for `tenant` over every silver and gold table that has a tenant column.
    pub async fn session(&self, tenant: &str, limits: Limits) -> Result<SessionContext> {
        let ctx = Self::context(limits)?;
        self.snapshot().await?.install(&ctx, tenant)?;
        Ok(ctx)
    }
}

/// What may run: queries only.
pub fn read_only() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

/// Plans and runs one statement within `limits`, collecting the result.
pub async fn query(
    ctx: &SessionContext,
    sql: &str,
    limits: Limits,
) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let run = async {
        let df = ctx.sql_with_options(sql, read_only()).await.map_err(classify)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(classify)?;
        Ok::<_, QueryError>((schema, batches))
    };
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(limits.timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(QueryError::Timeout(limits.timeout)),
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    };
    metrics::histogram!(METRIC_QUERY_SECONDS, "outcome" => outcome).record(started.elapsed().as_secs_f64());
    result
}

/// Histogram (label `outcome`: ok, refused, invalid, timeout, memory, error): how long queries over
/// the lake take — `POST /v1/sql`, the SQL page, dashboard widgets and KPIs.
pub const METRIC_QUERY_SECONDS: &str = "orbas_lake_query_seconds";

impl QueryError {
    /// The metric label of this error.
    pub fn outcome(&self) -> &'static str {
        match self {
            QueryError::NotAllowed(_) => "refused",
            QueryError::Invalid(_) => "invalid",
            QueryError::Timeout(_) => "timeout",
            QueryError::Memory(_) => "memory",
            QueryError::Internal(_) => "error",
        }
    }
}

/// Result encodings offered over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"columns": [{"name", "type"}], "rows": [{column: value}], "row_count": n}`.
    Json,
    /// RFC 4180 with a header line.
    Csv,
    /// The Arrow IPC stream format (`application/vnd.apache.arrow.stream`).
    Arrow,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Encodes a result in `format`.
pub fn encode(format: Format, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    use datafusion::arrow::{csv, ipc, json};
    let mut out = Vec::new();
    match format {
        Format::Json => {
            let mut rows = json::ArrayWriter::new(Vec::new());
            for b in batches {
                rows.write(b)?;
            }
            rows.finish()?;
            let rows = rows.into_inner();
            let columns: Vec<serde_json::Value> = schema
                .fields()
                .iter()
                .map(|f| serde_json::json!({"name": f.name(), "type": sql_type(f.data_type())}))
                .collect();
            let count: usize = batches.iter().map(RecordBatch::num_rows).sum();
            out.extend_from_slice(b"{\"columns\":");
            out.extend_from_slice(serde_json::to_string(&columns).unwrap_or_else(|_| "[]".into()).as_bytes());
            out.extend_from_slice(b",\"rows\":");
            out.extend_from_slice(if rows.is_empty() { b"[]" } else { &rows });
            out.extend_from_slice(format!(",\"row_count\":{count}}}").as_bytes());
        }
        Format::Csv => {
            let mut w = csv::WriterBuilder::new().with_header(true).build(&mut out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Arrow => {
            let mut w = ipc::writer::StreamWriter::try_new(&mut out, schema)?;
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(out)
}

/// The SQL (Postgres) name of an Arrow type, as clients expect column types to read.
pub fn sql_type(t: &datafusion::arrow::datatypes::DataType) -> String {
    use datafusion::arrow::datatypes::DataType as T;
    match t {
        T::Boolean => "boolean".into(),
        T::Int8 | T::Int16 | T::UInt8 => "smallint".into(),
        T::Int32 | T::UInt16 => "integer".into(),
        T::Int64 | T::UInt32 | T::UInt64 => "bigint".into(),
        T::Float16 | T::Float32 => "real".into(),
        T::Float64 => "double precision".into(),
        T::Decimal128(p, s) | T::Decimal256(p, s) => format!("numeric({p},{s})"),
        T::Utf8 | T::LargeUtf8 | T::Utf8View => "text".into(),
        T::Binary | T::LargeBinary | T::BinaryView | T::FixedSizeBinary(_) => "bytea".into(),
        T::Date32 | T::Date64 => "date".into(),
        T::Timestamp(_, Some(_)) => "timestamptz".into(),
        T::Timestamp(_, None) => "timestamp".into(),
        T::Time32(_) | T::Time64(_) => "time".into(),
        T::Interval(_) | T::Duration(_) => "interval".into(),
        T::List(f) | T::LargeList(f) | T::ListView(f) | T::FixedSizeList(f, _) => {
            format!("{}[]", sql_type(f.data_type()))
        }
        T::Null => "unknown".into(),
        other => other.to_string(),
    }
}

fn classify(e: datafusion::error::DataFusionError) -> QueryError {
    use datafusion::error::DataFusionError as E;
    match e.find_root() {
        E::ResourcesExhausted(m) => QueryError::Memory(m.clone()),
        E::Plan(m) if m.contains("not supported") || m.contains("Unsupported") => QueryError::NotAllowed(m.clone()),
        E::SQL(..) | E::Plan(_) | E::SchemaError(..) | E::NotImplemented(_) => QueryError::Invalid(e.to_string()),
        _ if e.to_string().contains("is not supported") => QueryError::NotAllowed(e.to_string()),
        _ => QueryError::Invalid(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use deltalake::protocol::SaveMode;

    use super::*;

    #[test]
    fn the_newest_commit_is_taken_per_layer() {
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0);
        let c = |key: &str, s| TableCommit { key: key.into(), version: Some(1), committed_at: at(s) };
        let commits =
            vec![c("contacts", 10), c("gold.pipeline_daily", 30), c("goldfish", 20), c("gold.kpi", 5), c("leads", 15)];
        assert!(commits[1].is_gold() && !commits[2].is_gold() && !commits[0].is_gold());
        assert_eq!(TableCommit::newest(&commits, false), at(20));
        assert_eq!(TableCommit::newest(&commits, true), at(30));
        assert_eq!(TableCommit::newest(&[], true), None);
    }

    async fn write(root: &Url, table: &str, ids: Vec<i64>, tenants: Vec<&str>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(TENANT_COLUMN, DataType::Utf8, false),
        ]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(tenants))])
                .unwrap_or_else(|e| panic!("{e}"));
        let url = table_url(root, "silver", "public", table).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(url.to_file_path().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        let t = DeltaTable::try_from_url(url).await.unwrap_or_else(|e| panic!("{e}"));
        t.write(vec![batch]).with_save_mode(SaveMode::Append).await.unwrap_or_else(|e| panic!("{e}"));
    }

    fn ints(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let a =
                    datafusion::arrow::compute::cast(b.column(0), &DataType::Int64).unwrap_or_else(|e| panic!("{e}"));
                datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(&a)
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn sessions_see_their_tenant_and_only_query() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Url::from_directory_path(dir.path()).unwrap_or_else(|()| panic!("url"));
        write(&root, "accounts", vec![1, 2, 3], vec!["A", "A", "B"]).await;
        let lake = Lake::new(root.clone()).with_freshness(Duration::ZERO);
        let limits = Limits::default();
        let a = lake.session("A", limits).await.unwrap_or_else(|e| panic!("{e}"));
        let (_, rows) =
            query(&a, "SELECT id FROM accounts ORDER BY id", limits).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ints(&rows), [1, 2]);
        // A later commit is visible to the next session.
        write(&root, "accounts", vec![4], vec!["A"]).await;
        let a = lake.session("A", limits).await.unwrap_or_else(|e| panic!("{e}"));
        let (_, rows) = query(&a, "SELECT count(*) FROM accounts", limits).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ints(&rows), [3]);
        let (_, rows) =
            query(&a, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'accounts'", limits)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ints(&rows), [1]);

        for refused in [
            "CREATE TABLE x (a int)",
            "DROP TABLE accounts",
            "INSERT INTO accounts VALUES (9, 'A')",
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc'",
            "SET datafusion.execution.batch_size = 1",
            "COPY accounts TO '/tmp/x.parquet'",
        ] {
            let e = query(&a, refused, limits).await.err();
            assert!(matches!(e, Some(QueryError::NotAllowed(_))), "{refused}: {e:?}");
        }
        let e = query(&a, "SELECT nope FROM accounts", limits).await.err();
        assert!(matches!(e, Some(QueryError::Invalid(_))), "{e:?}");
        let e = query(&a, "SELECT * FROM '/etc/passwd'", limits).await.err();
        assert!(matches!(e, Some(QueryError::Invalid(_) | QueryError::NotAllowed(_))), "no file access: {e:?}");

        // The three encodings of one result.
        let (schema, rows) = query(&a, "SELECT id, tenant_id AS t FROM accounts WHERE id < 3 ORDER BY id", limits)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let json: serde_json::Value =
            encode(Format::Json, &schema, &rows).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"columns": [{"name": "id", "type": "bigint"}, {"name": "t", "type": "text"}],
                               "rows": [{"id": 1, "t": "A"}, {"id": 2, "t": "A"}], "row_count": 2})
        );
        let csv = encode(Format::Csv, &schema, &rows).map(|b| String::from_utf8_lossy(&b).into_owned()).ok();
        assert_eq!(csv.as_deref(), Some("id,t\n1,A\n2,A\n"));
        let ipc = encode(Format::Arrow, &schema, &rows).unwrap_or_default();
        let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let back: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ints(&back), [1, 2]);
        let (schema, none) =
            query(&a, "SELECT id FROM accounts WHERE id > 100", limits).await.unwrap_or_else(|e| panic!("{e}"));
        let empty = encode(Format::Json, &schema, &none)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        assert_eq!(empty.map(|v| v["rows"].clone()), Some(serde_json::json!([])));

        // Time travel: the table as it was before the second commit.
        let (_, rows) = query(&a, "SELECT count(*) FROM accounts", limits).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ints(&rows), [3]);
        let between = chrono::Utc::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        write(&root, "accounts", vec![5, 6], vec!["A", "A"]).await;
        let now = lake.session("A", limits).await.unwrap_or_else(|e| panic!("{e}"));
        let then = lake.session_at("A", limits, between).await.unwrap_or_else(|e| panic!("{e}"));
        let count = |ctx: SessionContext| async move {
            ints(&query(&ctx, "SELECT count(*) FROM accounts", limits).await.unwrap_or_else(|e| panic!("{e}")).1)
        };
        assert_eq!((count(now).await, count(then).await), (vec![5], vec![3]));
        let before_all =
            lake.session_at("A", limits, between - chrono::Duration::days(1)).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(query(&before_all, "SELECT 1 FROM accounts", limits).await, Err(QueryError::Invalid(_))));

        let tight = Limits { timeout: Duration::from_millis(1), ..limits };
        let e = query(&a, "SELECT count(*) FROM range(100000000) a, range(100) b", tight).await.err();
        assert!(matches!(e, Some(QueryError::Timeout(_))), "{e:?}");
    }
}
