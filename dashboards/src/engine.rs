//! Runs KPI and widget queries over the lake for one tenant, with a result cache that is dropped
//! whenever the lake commits.
//!
//! Every query runs on one lake snapshot (each table pinned to a Delta version), as its viewer may see
//! the lake ([`Viewer`]: the tenant, and the rows their permissions reach); the cache is keyed by the
//! viewer's view and the query text and holds results of the current snapshot generation only, so a
//! commit by the sink (which moves the generation) invalidates everything at once and no result of an
//! older lake is ever served after a newer one was seen. Results are small (aggregates, capped tables):
//! the cache is bounded by entry count.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use orbas_warehouse::sql::{self, Lake, Limits, QueryError};
use serde::Serialize;
use tokio::sync::Mutex;
use tracing::debug;

use crate::error::{Error, FieldError, Result};
use crate::kpi::{Compiled, KpiDefinition, KpiQuery};
use crate::viewer::Viewer;

/// Most cached results per lake generation.
const CACHE_ENTRIES: usize = 4096;
/// Most rows a widget or preview returns (a table widget pages through the SQL port or `/v1/sql`).
pub const MAX_ROWS: usize = 5000;

/// A query's result as JSON-ready rows: numbers are numbers (decimals as doubles), dates and times
/// ISO 8601 strings.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Table {
    pub columns: Vec<String>,
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// More rows than [`MAX_ROWS`] matched; the rest were cut.
    pub truncated: bool,
    /// The lake snapshot generation the result was computed on.
    pub generation: u64,
}

/// A result and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct Answer {
    pub table: Arc<Table>,
    pub cached: bool,
}

#[derive(Default)]
struct Cache {
    generation: u64,
    entries: HashMap<(String, String), Arc<Table>>,
}

/// Hit and miss counts since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

/// The query runner (one per server; cheap to share).
pub struct Engine {
    lake: Arc<Lake>,
    limits: Limits,
    cache: Mutex<Cache>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("lake", &self.lake).finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(lake: Arc<Lake>) -> Self {
        Engine {
            lake,
            limits: Limits::default(),
            cache: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn cache_stats(&self) -> CacheStats {
        CacheStats { hits: self.hits.load(Ordering::Relaxed), misses: self.misses.load(Ordering::Relaxed) }
    }

    /// Runs one read-only query as `viewer` sees the lake, from the cache when the lake has not moved
    /// since.
    pub async fn run_sql(&self, viewer: &Viewer, sql_text: &str) -> Result<Answer> {
        let snapshot = self.lake.snapshot().await?;
        let key = (viewer.key(), sql_text.to_owned());
        {
            let mut cache = self.cache.lock().await;
            if cache.generation != snapshot.generation {
                cache.entries.clear();
                cache.generation = snapshot.generation;
            }
            if let Some(t) = cache.entries.get(&key) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Answer { table: t.clone(), cached: true });
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let ctx = Lake::context(self.limits)?;
        snapshot.install_scoped(&ctx, &viewer.tenant().to_string(), |k, s| viewer.access(k, s))?;
        let (schema, batches) = sql::query(&ctx, sql_text, self.limits).await?;
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        let (rows, truncated) = json_rows(&batches, MAX_ROWS);
        let table = Arc::new(Table { columns, rows, truncated, generation: snapshot.generation });
        let mut cache = self.cache.lock().await;
        // A newer generation may have been seen meanwhile: then this result is already stale for the cache.
        if cache.generation == snapshot.generation {
            if cache.entries.len() >= CACHE_ENTRIES {
                cache.entries.clear();
            }
            cache.entries.insert(key, table.clone());
        }
        debug!(generation = snapshot.generation, rows = table.rows.len(), "dashboard query ran");
        Ok(Answer { table, cached: false })
    }

    /// Compiles and runs a KPI query.
    pub async fn run_kpi(&self, viewer: &Viewer, kpi: &KpiDefinition, q: &KpiQuery) -> Result<(Compiled, Answer)> {
        let compiled = kpi.compile(q)?;
        let answer = self.run_sql(viewer, &compiled.sql).await?;
        Ok((compiled, answer))
    }

    /// Plans `kpi` against the lake as `viewer` sees it, without running it: unknown tables or columns
    /// and type errors, each named by the field that holds them.
    pub async fn check(&self, viewer: &Viewer, kpi: &KpiDefinition) -> Result<Vec<FieldError>> {
        let problems = kpi.problems();
        if !problems.is_empty() {
            return Ok(problems);
        }
        let ctx = Lake::context(self.limits)?;
        let tenant = viewer.tenant().to_string();
        self.lake.snapshot().await?.install_scoped(&ctx, &tenant, |k, s| viewer.access(k, s))?;
        let plan = |sql_text: String| {
            let ctx = ctx.clone();
            async move { ctx.sql_with_options(&sql_text, sql::read_only()).await.map(|df| df.schema().clone()) }
        };
        let field = |field: &str, message: String| vec![FieldError { field: field.to_owned(), message }];
        let source = kpi.source_sql();
        let schema = match plan(format!("SELECT * FROM ({source}) AS orbas_source")).await {
            Ok(s) => s,
            Err(e) => return Ok(field("source", first_line(&e.to_string()))),
        };
        let has = |c: &str| schema.fields().iter().any(|f| f.name() == c);
        let mut out = Vec::new();
        if let Some(t) = &kpi.time
            && !has(t)
        {
            out.push(FieldError { field: "time".into(), message: format!("the source has no column {t:?}") });
        }
        for (i, d) in kpi.dimensions.iter().enumerate() {
            if !has(&d.column) {
                out.push(FieldError {
                    field: format!("dimensions[{i}].column"),
                    message: format!("the source has no column {:?}", d.column),
                });
            }
        }
        if kpi.drill.is_some() {
            match plan(format!("SELECT * FROM ({}) AS orbas_drill", kpi.drill_sql())).await {
                Err(e) => out.push(FieldError { field: "drill".into(), message: first_line(&e.to_string()) }),
                Ok(d) => {
                    let wanted = kpi.time.iter().chain(kpi.dimensions.iter().map(|d| &d.column));
                    let missing: Vec<&String> = wanted.filter(|c| !d.fields().iter().any(|f| f.name() == *c)).collect();
                    if !missing.is_empty() {
                        out.push(FieldError {
                            field: "drill".into(),
                            message: format!("the drill-down rows lack the source's column(s) {missing:?}"),
                        });
                    } else if let Some(f) = &kpi.filter
                        && let Err(e) =
                            plan(format!("SELECT 1 FROM ({}) AS orbas_drill WHERE {f}", kpi.drill_sql())).await
                    {
                        // The KPI's filter selects the drill-down rows too.
                        out.push(FieldError {
                            field: "drill".into(),
                            message: format!(
                                "the KPI's filter does not apply to the drill-down rows: {}",
                                first_line(&e.to_string())
                            ),
                        });
                    }
                }
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        if let Some(f) = &kpi.filter
            && let Err(e) = plan(format!("SELECT 1 FROM ({source}) AS orbas_source WHERE {f}")).await
        {
            return Ok(field("filter", first_line(&e.to_string())));
        }
        let compiled = kpi.compile(&KpiQuery::default())?;
        if let Err(e) = plan(compiled.sql).await {
            return Ok(field("measure", first_line(&e.to_string())));
        }
        Ok(Vec::new())
    }
}

impl Engine {
    /// The columns `sql_text` returns as `viewer` sees the lake, planned without running it; a query the
    /// lake refuses (unknown table or column, not read-only) is `Err` with the reason.
    pub async fn plan_columns(
        &self,
        viewer: &Viewer,
        sql_text: &str,
    ) -> Result<std::result::Result<Vec<String>, String>> {
        let ctx = Lake::context(self.limits)?;
        self.lake.snapshot().await?.install_scoped(&ctx, &viewer.tenant().to_string(), |k, s| viewer.access(k, s))?;
        Ok(match ctx.sql_with_options(sql_text, sql::read_only()).await {
            Ok(df) => Ok(df.schema().fields().iter().map(|f| f.name().clone()).collect()),
            Err(e) => Err(first_line(&e.to_string())),
        })
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().chars().take(500).collect()
}

impl From<Vec<FieldError>> for Error {
    fn from(v: Vec<FieldError>) -> Self {
        Error::Invalid(v)
    }
}

/// Whether an engine error is the caller's to fix (bad SQL, too slow, too big) rather than ours.
pub fn is_client_query_error(e: &QueryError) -> bool {
    !matches!(e, QueryError::Internal(_))
}

/// The first `max` rows of `batches` as JSON values, and whether there were more.
pub fn json_rows(batches: &[RecordBatch], max: usize) -> (Vec<Vec<serde_json::Value>>, bool) {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut rows = Vec::with_capacity(total.min(max));
    'batches: for b in batches {
        let columns: Vec<Column> = b.columns().iter().map(Column::new).collect();
        for r in 0..b.num_rows() {
            if rows.len() == max {
                break 'batches;
            }
            rows.push(columns.iter().map(|c| c.value(r)).collect());
        }
    }
    (rows, total > max)
}

/// One column, readied for JSON.
enum Column {
    Number(ArrayRef),
    Bool(ArrayRef),
    Text(ArrayRef),
    Formatted(ArrayRef),
}

impl Column {
    fn new(a: &ArrayRef) -> Self {
        match a.data_type() {
            t if t.is_numeric() => match cast(a, &DataType::Float64) {
                Ok(f) => Column::Number(f),
                Err(_) => Column::Formatted(a.clone()),
            },
            DataType::Boolean => Column::Bool(a.clone()),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => match cast(a, &DataType::Utf8) {
                Ok(s) => Column::Text(s),
                Err(_) => Column::Formatted(a.clone()),
            },
            _ => Column::Formatted(a.clone()),
        }
    }

    fn value(&self, row: usize) -> serde_json::Value {
        use serde_json::Value;
        let a = match self {
            Column::Number(a) | Column::Bool(a) | Column::Text(a) | Column::Formatted(a) => a,
        };
        if a.is_null(row) {
            return Value::Null;
        }
        match self {
            Column::Number(a) => {
                let v = a.as_primitive::<Float64Type>().value(row);
                serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
            }
            Column::Bool(a) => Value::Bool(a.as_boolean().value(row)),
            Column::Text(a) => Value::String(a.as_string::<i32>().value(row).to_owned()),
            Column::Formatted(a) => {
                let opts = FormatOptions::default();
                match ArrayFormatter::try_new(a.as_ref(), &opts) {
                    Ok(f) => Value::String(f.value(row).to_string()),
                    Err(_) => Value::Null,
                }
            }
        }
    }
}
