//! The Delta tables of one CRM table: bronze (append-only change log, partitioned by commit day) and
//! silver (current state, kept by MERGE on the primary key). Every commit carries Delta `txn` actions —
//! one per Kafka partition, version = the last offset the commit covers — so a replayed micro-batch is
//! recognised and skipped: exactly once in the lake over at-least-once delivery.
//!
//! Silver applies a change only when it is newer than the row's `(_commit_lsn, _lsn)`, so replays and
//! re-snapshots are harmless. A truncate deletes every row older than it and is remembered in the same
//! commit (two `txn` actions holding its position), so changes older than the truncate that arrive later
//! (from another partition, or replayed) are dropped instead of resurrecting rows.
//!
//! Every silver commit also names the tenants whose rows it changed (commit metadata [`TENANTS_KEY`]),
//! so a reader can redo per-tenant work for just the tenants that moved ([`crate::sql::Lake::moved`]).
//! A silver commit that conflicts with another writer's (`orbas lake optimize`, an erasure) is run
//! again on the latest version rather than stopping the sink.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deltalake::arrow::datatypes::Schema;
use deltalake::datafusion::prelude::{SessionContext, col, lit};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::transaction::TransactionError;
use deltalake::kernel::{StructField, StructType, Transaction};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use serde_json::{Map, Value};
use tracing::{debug, info, warn};
use url::Url;

use crate::convert::{self, Change};
use crate::error::{Error, Result};
use crate::schema::{TableLayout, meta};

/// `txn` app ids holding the position of the last applied truncate (silver).
const TRUNCATE_COMMIT_LSN_APP: &str = "orbas.truncate.commit_lsn";
const TRUNCATE_LSN_APP: &str = "orbas.truncate.lsn";

/// Commit-metadata key of a silver commit: the ids of the tenants whose rows it changed, or `"*"` when
/// some change did not name its tenant (a truncate).
pub const TENANTS_KEY: &str = "orbasTenants";

/// The tenants `rows` of CRM table `table` belong to; `None` when a row does not say (a truncate has
/// no row): every tenant may have changed.
pub fn tenants_of<'a>(
    table: &str,
    rows: impl IntoIterator<Item = Option<&'a Map<String, Value>>>,
) -> Option<BTreeSet<String>> {
    let column = if table == "tenants" { "id" } else { "tenant_id" };
    rows.into_iter().map(|row| row.and_then(|r| r.get(column)).and_then(Value::as_str).map(str::to_owned)).collect()
}

fn tenants_value(tenants: Option<BTreeSet<String>>) -> Value {
    tenants.map_or_else(|| Value::from("*"), |t| Value::from(t.into_iter().collect::<Vec<_>>()))
}

/// Table properties every lake table gets.
fn properties(extra: &[(&str, String)]) -> HashMap<String, Option<String>> {
    let mut p: HashMap<String, Option<String>> = [
        ("delta.checkpointInterval", "10".to_owned()),
        ("delta.logRetentionDuration", "interval 30 days".to_owned()),
        ("delta.deletedFileRetentionDuration", "interval 7 days".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Some(v)))
    .collect();
    p.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), Some(v.clone()))));
    p
}

/// Opens the table at `url`, creating it with `schema` when absent, and adds any column of `schema` the
/// table lacks (columns added in Postgres). Columns are never dropped: old files keep their values and
/// new rows carry null.
pub async fn ensure(
    url: &Url,
    name: &str,
    schema: &Schema,
    partitions: &[&str],
    extra_properties: &[(&str, String)],
) -> Result<DeltaTable> {
    if url.scheme() == "file"
        && let Ok(dir) = url.to_file_path()
    {
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::Table { table: name.to_owned(), why: format!("creating {}: {e}", dir.display()) })?;
    }
    // A local table known to be absent is not loaded first: the kernel logs a failed load as an error.
    let absent = url.scheme() == "file" && url.to_file_path().is_ok_and(|p| !is_local_table(&p));
    let mut table = if absent {
        deltalake::DeltaTableBuilder::from_url(url.clone())?.build()?
    } else {
        DeltaTable::try_from_url(url.clone()).await?
    };
    let wanted: StructType = schema
        .try_into_kernel()
        .map_err(|e| Error::Table { table: name.to_owned(), why: format!("schema has no Delta equivalent: {e}") })?;
    if table.version().is_none() {
        info!(table = name, %url, "creating Delta table");
        table
            .create()
            .with_table_name(name)
            .with_columns(wanted.fields().cloned())
            .with_partition_columns(partitions.iter().map(|p| (*p).to_owned()))
            .with_configuration(properties(extra_properties))
            .with_save_mode(SaveMode::Ignore)
            .await?;
        // Another writer may have created it first (SaveMode::Ignore): read what is there either way.
        table = DeltaTable::try_from_url(url.clone()).await?;
        table.load().await?;
    }
    add_missing_columns(table, name, &wanted).await
}

async fn add_missing_columns(table: DeltaTable, name: &str, wanted: &StructType) -> Result<DeltaTable> {
    let current = table.snapshot()?.schema();
    let missing: Vec<StructField> = wanted
        .fields()
        .filter(|f| current.field(f.name()).is_none())
        .map(|f| StructField::new(f.name().clone(), f.data_type().clone(), true))
        .collect();
    if missing.is_empty() {
        return Ok(table);
    }
    info!(table = name, columns = ?missing.iter().map(|f| f.name().clone()).collect::<Vec<_>>(), "adding columns");
    Ok(table.add_columns().with_fields(missing).await?)
}

/// Whether a Delta table exists at `url`.
pub async fn exists(url: &Url) -> bool {
    if url.scheme() == "file" {
        return url.to_file_path().is_ok_and(|p| is_local_table(&p));
    }
    DeltaTable::try_from_url(url.clone()).await.is_ok_and(|t| t.version().is_some())
}

/// Whether the directory `dir` holds a Delta table.
/// Names of the Delta tables directly under the local directory `dir`, sorted (none when it is missing).
pub async fn local_tables(dir: &std::path::Path) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            if is_local_table(&e.path())
                && let Some(name) = e.file_name().to_str()
            {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    names
}

pub fn is_local_table(dir: &std::path::Path) -> bool {
    dir.join("_delta_log").is_dir()
}

/// The last offset of `partition` this table holds, from its `txn` action.
pub async fn position(table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    let state = table.snapshot()?;
    Ok(state.transaction_version(table.log_store().as_ref(), app_id).await?)
}

/// The `txn` app id of one topic partition.
pub fn app_id(group: &str, topic: &str, partition: i32) -> String {
    format!("orbas-lake/{group}/{topic}/{partition}")
}

/// Appends `changes` to bronze in one commit that records `positions` (app id → last offset).
pub async fn append_bronze(
    table: DeltaTable,
    layout: &TableLayout,
    changes: &[&Change],
    positions: &BTreeMap<String, i64>,
) -> Result<DeltaTable> {
    let batch =
        convert::bronze_batch(layout, changes).map_err(|why| Error::Table { table: layout.qualified(), why })?;
    let version = table.version();
    let table = table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .with_schema_mode(SchemaMode::Merge)
        .with_partition_columns([meta::COMMIT_DATE])
        .with_commit_properties(commit(positions, &[], None))
        .await?;
    debug!(table = %layout.qualified(), rows = changes.len(), from = ?version, to = ?table.version(), "bronze append");
    Ok(table)
}

/// A commit's properties: the positions it covers, and for silver the tenants it touched.
fn commit(positions: &BTreeMap<String, i64>, extra: &[Transaction], tenants: Option<Value>) -> CommitProperties {
    let mut txns: Vec<Transaction> = positions.iter().map(|(app, v)| Transaction::new(app, *v)).collect();
    txns.extend(extra.iter().cloned());
    let properties = CommitProperties::default().with_application_transactions(txns);
    match tenants {
        Some(t) => properties.with_metadata([(TENANTS_KEY.to_owned(), t)]),
        None => properties,
    }
}

/// The position of the last truncate silver applied.
pub async fn truncated_at(table: &DeltaTable) -> Result<Option<(i64, i64)>> {
    let commit_lsn = position(table, TRUNCATE_COMMIT_LSN_APP).await?;
    let lsn = position(table, TRUNCATE_LSN_APP).await?;
    Ok(commit_lsn.zip(lsn))
}

/// Deletes every silver row older than the truncate at `at` and records `at` in the same commit.
pub async fn truncate_silver(table: DeltaTable, layout: &TableLayout, at: (i64, i64)) -> Result<DeltaTable> {
    on_latest(table, layout, |t| truncate_silver_once(t, layout, at)).await
}

async fn truncate_silver_once(table: DeltaTable, layout: &TableLayout, at: (i64, i64)) -> Result<DeltaTable> {
    let older =
        col(meta::COMMIT_LSN).lt(lit(at.0)).or(col(meta::COMMIT_LSN).eq(lit(at.0)).and(col(meta::LSN).lt(lit(at.1))));
    let marks = [Transaction::new(TRUNCATE_COMMIT_LSN_APP, at.0), Transaction::new(TRUNCATE_LSN_APP, at.1)];
    let (table, metrics) = table
        .delete()
        .with_predicate(older)
        .with_commit_properties(commit(&BTreeMap::new(), &marks, Some(tenants_value(None))))
        .await?;
    info!(table = %layout.qualified(), deleted = metrics.num_deleted_rows, "silver truncated");
    Ok(table)
}

/// Merges the newest change of each key into silver, recording `positions` in the same commit.
pub async fn merge_silver(
    table: DeltaTable,
    layout: &TableLayout,
    changes: &[&Change],
    positions: &BTreeMap<String, i64>,
) -> Result<DeltaTable> {
    on_latest(table, layout, |t| merge_silver_once(t, layout, changes, positions)).await
}

/// Commits that conflict with another writer's are retried this many times.
const CONFLICT_RETRIES: u32 = 5;

/// Runs `op` on `table`. When its commit conflicts with another writer's (compaction or an erasure
/// committed since the table was read), reloads the table and runs `op` again: a silver operation is
/// idempotent (it applies only what is newer than the rows, and records its positions in the same
/// commit), so running it on the latest version is exactly what it would have done.
async fn on_latest<F, Fut>(mut table: DeltaTable, layout: &TableLayout, mut op: F) -> Result<DeltaTable>
where
    F: FnMut(DeltaTable) -> Fut,
    Fut: std::future::Future<Output = Result<DeltaTable>>,
{
    let mut attempt = 0;
    loop {
        match op(table.clone()).await {
            Err(Error::Delta(DeltaTableError::Transaction { source: TransactionError::CommitConflict(e) }))
                if attempt < CONFLICT_RETRIES =>
            {
                attempt += 1;
                warn!(table = %layout.qualified(), error = %e, attempt, "the commit conflicted with another writer's; again on the latest version");
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                table.update_state().await?;
            }
            done => return done,
        }
    }
}

async fn merge_silver_once(
    table: DeltaTable,
    layout: &TableLayout,
    changes: &[&Change],
    positions: &BTreeMap<String, i64>,
) -> Result<DeltaTable> {
    let source =
        convert::silver_source(layout, changes).map_err(|why| Error::Table { table: layout.qualified(), why })?;
    let ctx = SessionContext::new();
    let df = ctx.read_batch(source)?;
    let on = layout
        .key
        .iter()
        .map(|k| col(format!("t.{}", quoted(k))).eq(col(format!("s.{}", quoted(k)))))
        .reduce(|a, b| a.and(b))
        .ok_or_else(|| Error::Table { table: layout.qualified(), why: "no primary key".into() })?;
    let newer = col("s._commit_lsn")
        .gt(col("t._commit_lsn"))
        .or(col("s._commit_lsn").eq(col("t._commit_lsn")).and(col("s._lsn").gt(col("t._lsn"))));
    let deleted = col("s._op").eq(lit("d"));
    let mut assignments: Vec<(String, String)> =
        layout.columns.iter().map(|c| (quoted(&c.name), format!("s.{}", quoted(&c.name)))).collect();
    for m in [meta::LSN, meta::COMMIT_LSN, meta::COMMIT_TS] {
        assignments.push((m.to_owned(), format!("s.{m}")));
    }
    let update_set = assignments.clone();
    let (table, metrics) = table
        .merge(df, on)
        .with_source_alias("s")
        .with_target_alias("t")
        .with_commit_properties(commit(
            positions,
            &[],
            Some(tenants_value(tenants_of(&layout.table, changes.iter().map(|c| c.row.as_ref())))),
        ))
        .when_matched_delete(|d| d.predicate(newer.clone().and(deleted.clone())))?
        .when_matched_update(|mut u| {
            u = u.predicate(newer.clone());
            for (c, v) in &update_set {
                u = u.update(c.as_str(), col(v.as_str()));
            }
            u
        })?
        .when_not_matched_insert(|mut i| {
            i = i.predicate(col("s._op").not_eq(lit("d")));
            for (c, v) in &assignments {
                i = i.set(c.as_str(), col(v.as_str()));
            }
            i
        })?
        .await?;
    debug!(
        table = %layout.qualified(),
        inserted = metrics.num_target_rows_inserted,
        updated = metrics.num_target_rows_updated,
        deleted = metrics.num_target_rows_deleted,
        "silver merge"
    );
    Ok(table)
}

/// The number of rows of the table at `url`; `None` when there is no table there (yet).
pub async fn row_count(url: &Url) -> Result<Option<i64>> {
    if !exists(url).await {
        return Ok(None);
    }
    let table = deltalake::open_table(url.clone()).await?;
    let ctx = SessionContext::new();
    ctx.register_table("t", table.table_provider().await?)?;
    let n = ctx.table("t").await?.count().await?;
    Ok(Some(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// Identifiers as the merge expressions read them.
fn quoted(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}
