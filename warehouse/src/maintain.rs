//! Lake maintenance (`orbas lake …`): compaction sorted by tenant, vacuum, checkpoints, and erasure
//! of a person (GDPR) from every bronze and silver table.
//!
//! - **Optimize** rewrites a table's small files into large ones, Z-ordered on `tenant_id` (with one
//!   column that is a sort by tenant, so a tenant's rows sit in few files and file statistics prune
//!   the rest), then checkpoints.
//! - **Vacuum** deletes files no version younger than the retention still references.
//! - **Erase** deletes the rows of one person of one tenant — the rows whose `id` is the subject and
//!   the rows that reference them (`contact_id`, `lead_id`) — from silver and bronze, then leaves no
//!   copy behind: every file that held such a row is vacuumed at once (retention zero), a checkpoint
//!   is written and every log version before it is expired, so neither data files nor the log hold
//!   the person any more. PII columns were never in file statistics (see the sink), but the `id`
//!   column's are: expiring the old log removes those too. Time travel to before the erasure is
//!   gone for the tables it touched — that is the point.
//!
//! Erase the person in the CRM first: the lake follows the CRM, and a later change to a row that
//! still exists in Postgres would bring it back.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::time::Duration;

use datafusion::prelude::{Expr, col, lit};
use deltalake::DeltaTable;
use deltalake::operations::optimize::OptimizeType;
use deltalake::protocol::checkpoints::{cleanup_expired_logs_for, create_checkpoint};
use serde::Serialize;
use tracing::info;
use url::Url;

use crate::error::{Error, Result};
use crate::sink::schema_url;
use crate::sql::TENANT_COLUMN;

/// Columns through which a row refers to a person; with `id`, what erasure matches.
pub const PERSON_REFERENCES: [&str; 2] = ["contact_id", "lead_id"];

/// One Delta table of the lake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LakeTable {
    /// `bronze` or `silver`.
    pub layer: String,
    pub name: String,
    #[serde(skip)]
    pub url: Url,
}

/// The bronze, silver and gold tables of a local lake.
pub async fn tables(lake: &Url) -> Result<Vec<LakeTable>> {
    let mut out = Vec::new();
    for (layer, dir) in [("bronze", "public"), ("silver", "public"), ("gold", crate::gold::DIR)] {
        let base = schema_url(lake, layer, dir)?;
        let Ok(dir) = base.to_file_path() else {
            return Err(Error::Config(format!("lake maintenance needs a local lake, not {lake}")));
        };
        for name in crate::lake::local_tables(&dir).await {
            let url = base.join(&format!("{name}/")).map_err(|e| Error::Config(format!("lake URL: {e}")))?;
            out.push(LakeTable { layer: layer.to_owned(), name, url });
        }
    }
    Ok(out)
}

/// What [`verify`] found of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCheck {
    pub layer: String,
    pub name: String,
    /// The latest version, when the log could be read.
    pub version: Option<u64>,
    /// Data files the latest version references.
    pub files: usize,
    /// Of those, the ones that are not on disk (at most the first ten).
    pub missing: Vec<String>,
    /// How many are missing in all.
    pub missing_count: usize,
    /// Why the table could not be read at all.
    pub error: Option<String>,
}

impl TableCheck {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.missing_count == 0
    }
}

/// Lake integrity (`orbas doctor`): every table's log reads and every data file its latest version
/// references exists. A local lake only.
pub async fn verify(lake: &Url) -> Result<Vec<TableCheck>> {
    let mut out = Vec::new();
    for t in tables(lake).await? {
        let mut check = TableCheck {
            layer: t.layer.clone(),
            name: t.name.clone(),
            version: None,
            files: 0,
            missing: Vec::new(),
            missing_count: 0,
            error: None,
        };
        match deltalake::open_table(t.url.clone()).await {
            Err(e) => check.error = Some(e.to_string()),
            Ok(table) => {
                check.version = table.version();
                match table.get_file_uris() {
                    Err(e) => check.error = Some(e.to_string()),
                    Ok(uris) => {
                        for uri in uris {
                            check.files += 1;
                            let path = Url::parse(&uri).ok().and_then(|u| u.to_file_path().ok());
                            let present = match &path {
                                Some(p) => tokio::fs::try_exists(p).await.unwrap_or(false),
                                None => tokio::fs::try_exists(&uri).await.unwrap_or(false),
                            };
                            if !present {
                                check.missing_count += 1;
                                if check.missing.len() < 10 {
                                    check.missing.push(uri);
                                }
                            }
                        }
                    }
                }
            }
        }
        out.push(check);
    }
    Ok(out)
}

fn has_column(table: &DeltaTable, name: &str) -> Result<bool> {
    Ok(table.snapshot()?.schema().fields().any(|f| f.name() == name))
}

/// What optimizing one table did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Optimized {
    pub files_removed: u64,
    pub files_added: u64,
    pub sorted_by_tenant: bool,
    pub version: Option<u64>,
}

/// Compacts `url`'s files into files of about `target_bytes`, sorted by tenant where the table has
/// one, and checkpoints the result.
pub async fn optimize(url: &Url, target_bytes: NonZeroU64) -> Result<Optimized> {
    let table = deltalake::open_table(url.clone()).await?;
    let by_tenant = has_column(&table, TENANT_COLUMN)?;
    let kind = if by_tenant { OptimizeType::ZOrder(vec![TENANT_COLUMN.to_owned()]) } else { OptimizeType::Compact };
    let (table, metrics) = table.optimize().with_type(kind).with_target_size(target_bytes).await?;
    if metrics.num_files_added > 0 {
        create_checkpoint(&table, None).await?;
    }
    info!(table = %url, removed = metrics.num_files_removed, added = metrics.num_files_added, "optimized");
    Ok(Optimized {
        files_removed: metrics.num_files_removed,
        files_added: metrics.num_files_added,
        sorted_by_tenant: by_tenant,
        version: table.version(),
    })
}

/// Deletes the files of `url` that no version younger than `retention` references; returns how many.
pub async fn vacuum(url: &Url, retention: Duration) -> Result<usize> {
    let table = deltalake::open_table(url.clone()).await?;
    let retention = chrono::Duration::from_std(retention).map_err(|e| Error::Config(format!("retention: {e}")))?;
    let (_, metrics) = table.vacuum().with_retention_period(retention).with_enforce_retention_duration(false).await?;
    Ok(metrics.files_deleted.len())
}

/// What erasing a person did to one table.
#[derive(Debug, Clone, Serialize)]
pub struct Erased {
    pub layer: String,
    pub table: String,
    pub rows_deleted: usize,
    pub files_rewritten: usize,
    pub files_vacuumed: usize,
    pub log_versions_expired: usize,
}

/// The erasure report: every table that held the person, and what was done.
#[derive(Debug, Clone, Serialize)]
pub struct ErasureReport {
    pub tenant: String,
    pub subject: String,
    pub tables: Vec<Erased>,
    pub rows_deleted: usize,
}

fn matches(table: &DeltaTable, tenant: &str, subject: &str, ids: &[String]) -> Result<Option<Expr>> {
    if !has_column(table, TENANT_COLUMN)? {
        return Ok(None);
    }
    let mut person: Option<Expr> = None;
    let mut or = |one: Expr| {
        person = Some(match person.take() {
            Some(p) => p.or(one),
            None => one,
        });
    };
    for column in std::iter::once("id").chain(PERSON_REFERENCES) {
        if has_column(table, column)? {
            or(col(column).eq(lit(subject)));
        }
    }
    if !ids.is_empty() && has_column(table, "id")? {
        or(col("id").in_list(ids.iter().map(|id| lit(id.as_str())).collect(), false));
    }
    Ok(person.map(|p| col(TENANT_COLUMN).eq(lit(tenant)).and(p)))
}

/// Removes every row of `subject` of `tenant` from the lake's bronze and silver tables and every
/// copy of them (old files, old log versions).
pub async fn erase(lake: &Url, tenant: &str, subject: &str) -> Result<ErasureReport> {
    erase_rows(lake, tenant, subject, &BTreeMap::new()).await
}

/// [`erase`], and also the rows `rows` names (CRM table → ids): the rows the CRM's erasure deleted
/// because they were the person's without naming them in a column of their own — a ticket's
/// messages, the audit entries of the person's records, predictions about them.
pub async fn erase_rows(
    lake: &Url,
    tenant: &str,
    subject: &str,
    rows: &BTreeMap<String, Vec<String>>,
) -> Result<ErasureReport> {
    let mut report =
        ErasureReport { tenant: tenant.to_owned(), subject: subject.to_owned(), tables: Vec::new(), rows_deleted: 0 };
    let none = Vec::new();
    for t in tables(lake).await? {
        let ids = if t.layer == "gold" { &none } else { rows.get(&t.name).unwrap_or(&none) };
        let mut attempt = 0;
        let (table, metrics) = loop {
            // The sink may commit to the table meanwhile; a conflicting delete is retried on the
            // newer version.
            let table = deltalake::open_table(t.url.clone()).await?;
            let Some(predicate) = matches(&table, tenant, subject, ids)? else { break (table, None) };
            match table.delete().with_predicate(predicate).await {
                Ok((table, metrics)) => break (table, Some(metrics)),
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(table = %t.url, error = %e, attempt, "erasure delete failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let (rows, rewritten) =
            metrics.map_or((0, 0), |m| (m.num_deleted_rows.unwrap_or_default(), m.num_removed_files));
        // A table the CRM's erasure named held the person even when no row is left to delete: the
        // sink applied the CRM's deletes to silver, and the files it rewrote still hold them.
        if rewritten == 0 && ids.is_empty() {
            continue;
        }
        // No older version may keep the person: drop the files they were in now (lite vacuum: only
        // files a commit removed, never a concurrent writer's new ones), and expire the log up to a
        // fresh checkpoint.
        let (table, vacuumed) = table
            .vacuum()
            .with_mode(deltalake::operations::vacuum::VacuumMode::Lite)
            .with_retention_period(chrono::Duration::zero())
            .with_enforce_retention_duration(false)
            .await?;
        create_checkpoint(&table, None).await?;
        let version = table.version().unwrap_or_default();
        let now = chrono::Utc::now().timestamp_millis() + 1;
        let expired = cleanup_expired_logs_for(version, table.log_store().as_ref(), now, None).await?;
        info!(table = %t.url, rows, files = rewritten, expired, "erased a subject");
        report.rows_deleted += rows;
        report.tables.push(Erased {
            layer: t.layer,
            table: t.name,
            rows_deleted: rows,
            files_rewritten: rewritten,
            files_vacuumed: vacuumed.files_deleted.len(),
            log_versions_expired: expired,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use deltalake::protocol::SaveMode;

    use super::*;
    use crate::sink::table_url;

    const ALICE: &str = "0199aaaa-0000-7000-8000-00000000a11c";
    const ALICE_EMAIL: &str = "alice.erasable@example.com";

    fn schema(refs: bool) -> Arc<Schema> {
        let mut fields = vec![
            Field::new("id", DataType::Utf8, false),
            Field::new(TENANT_COLUMN, DataType::Utf8, false),
            Field::new("email", DataType::Utf8, true),
        ];
        if refs {
            fields.push(Field::new("contact_id", DataType::Utf8, true));
        }
        Arc::new(Schema::new(fields))
    }

    /// (id, tenant, email, contact_id)
    type Row<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

    fn batch(refs: bool, rows: &[Row<'_>]) -> RecordBatch {
        let s = |f: fn(&Row<'_>) -> Option<String>| -> Arc<dyn Array> {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        let mut cols = vec![s(|r| Some(r.0.to_owned())), s(|r| Some(r.1.to_owned())), s(|r| Some(r.2.to_owned()))];
        if refs {
            cols.push(s(|r| r.3.map(str::to_owned)));
        }
        RecordBatch::try_new(schema(refs), cols).unwrap_or_else(|e| panic!("{e}"))
    }

    async fn append(root: &Url, layer: &str, table: &str, refs: bool, rows: &[Row<'_>]) {
        let url = table_url(root, layer, "public", table).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(url.to_file_path().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        let t = DeltaTable::try_from_url(url).await.unwrap_or_else(|e| panic!("{e}"));
        t.write(vec![batch(refs, rows)]).with_save_mode(SaveMode::Append).await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Every string value of every Parquet file under `dir` (data and checkpoints), and the text of
    /// every other file.
    fn everything_under(dir: &std::path::Path) -> String {
        use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let mut text = String::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{e}")).flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    let file = std::fs::File::open(&p).unwrap_or_else(|e| panic!("{e}"));
                    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                        .and_then(|b| b.build())
                        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    for b in reader {
                        let b = b.unwrap_or_else(|e| panic!("{e}"));
                        text.push_str(
                            &datafusion::arrow::util::pretty::pretty_format_batches(&[b])
                                .map(|t| t.to_string())
                                .unwrap_or_default(),
                        );
                    }
                } else {
                    text.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()));
                }
            }
        }
        text
    }

    async fn count(url: &Url) -> usize {
        let t = deltalake::open_table(url.clone()).await.unwrap_or_else(|e| panic!("{e}"));
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_table("t", t.table_provider().await.unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = ctx
            .sql("SELECT count(*) FROM t")
            .await
            .and_then(|d| futures::executor::block_on(d.collect()))
            .unwrap_or_else(|e| panic!("{e}"));
        datafusion::arrow::compute::cast(b[0].column(0), &DataType::Int64)
            .ok()
            .and_then(|a| {
                datafusion::arrow::array::AsArray::as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>(&a)
                    .map(|a| a.value(0))
            })
            .map_or(0, |n| usize::try_from(n).unwrap_or(0))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn erasure_leaves_no_trace_and_keeps_everyone_else() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Url::from_directory_path(dir.path()).unwrap_or_else(|()| panic!("url"));
        // Several commits, so old files and old log versions hold Alice too.
        for round in 0..3 {
            let bob = format!("bob-{round}");
            append(
                &root,
                "silver",
                "contacts",
                false,
                &[(ALICE, "T1", ALICE_EMAIL, None), (&bob, "T1", "bob@x", None)],
            )
            .await;
            append(
                &root,
                "bronze",
                "contacts",
                false,
                &[(ALICE, "T1", ALICE_EMAIL, None), (&bob, "T1", "bob@x", None)],
            )
            .await;
            let activity = format!("act-{round}");
            let other = format!("act-other-{round}");
            append(
                &root,
                "silver",
                "activities",
                true,
                &[
                    (&activity, "T1", "met-alice-at-the-fair", Some(ALICE)),
                    (&other, "T1", "call", Some("someone-else")),
                ],
            )
            .await;
        }
        // The same id in another tenant is another person and stays.
        append(&root, "silver", "contacts", false, &[(ALICE, "T2", "not-alice@t2", None)]).await;
        let before = everything_under(dir.path());
        assert!(
            before.contains(ALICE_EMAIL) && before.contains("met-alice-at-the-fair"),
            "the probe sees what is there"
        );

        let report = erase(&root, "T1", ALICE).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.rows_deleted, 9, "{report:?}");
        let per: Vec<(String, String, usize)> =
            report.tables.iter().map(|t| (t.layer.clone(), t.table.clone(), t.rows_deleted)).collect();
        assert_eq!(
            per,
            [
                ("bronze".into(), "contacts".into(), 3),
                ("silver".into(), "activities".into(), 3),
                ("silver".into(), "contacts".into(), 3)
            ]
        );
        assert!(report.tables.iter().all(|t| t.files_vacuumed > 0 && t.log_versions_expired > 0), "{report:?}");

        let left = everything_under(dir.path());
        assert!(!left.contains(ALICE_EMAIL), "no file holds Alice's e-mail");
        assert!(!left.contains("met-alice-at-the-fair"), "no file holds the activity that referenced her");
        // Her id remains only as T2's (different person) row.
        let silver_contacts = table_url(&root, "silver", "public", "contacts").unwrap_or_else(|e| panic!("{e}"));
        let bronze_contacts = table_url(&root, "bronze", "public", "contacts").unwrap_or_else(|e| panic!("{e}"));
        let activities = table_url(&root, "silver", "public", "activities").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count(&silver_contacts).await, 4, "3 Bobs + T2's row");
        assert_eq!(count(&bronze_contacts).await, 3);
        assert_eq!(count(&activities).await, 3);
        assert!(left.contains("not-alice@t2") && left.contains("bob@x"));

        // A second erasure finds nothing.
        let again = erase(&root, "T1", ALICE).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((again.rows_deleted, again.tables.len()), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn optimize_compacts_sorted_by_tenant_and_vacuum_removes_old_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Url::from_directory_path(dir.path()).unwrap_or_else(|()| panic!("url"));
        for i in 0..12 {
            let (a, b) = (format!("a{i}"), format!("b{i}"));
            append(&root, "silver", "accounts", false, &[(&a, "TA", "x", None), (&b, "TB", "y", None)]).await;
        }
        let url = table_url(&root, "silver", "public", "accounts").unwrap_or_else(|e| panic!("{e}"));
        let done = optimize(&url, NonZeroU64::MIN.saturating_add(64 * 1024 * 1024 - 1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(done.sorted_by_tenant);
        assert_eq!((done.files_removed, done.files_added), (12, 1), "{done:?}");
        assert_eq!(count(&url).await, 24);
        // The one file's rows come tenant by tenant.
        let t = deltalake::open_table(url.clone()).await.unwrap_or_else(|e| panic!("{e}"));
        let rows = t.snapshot().map(|s| s.log_data().num_files()).unwrap_or_default();
        assert_eq!(rows, 1);
        let path = dir.path().join("silver/public/accounts");
        let parquet: Vec<_> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
            .collect();
        assert_eq!(parquet.len(), 13, "12 old files wait for vacuum, 1 new");
        let deleted = vacuum(&url, Duration::ZERO).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(deleted, 12);
        assert_eq!(count(&url).await, 24);
        let text = everything_under(&path);
        let tenants: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split('|').nth(2))
            .map(str::trim)
            .filter(|t| t.starts_with('T') && t.len() == 2)
            .collect();
        let first_b = tenants.iter().position(|t| *t == "TB").unwrap_or(0);
        assert!(first_b > 0 && tenants[first_b..].iter().all(|t| *t == "TB"), "sorted by tenant: {tenants:?}");
    }
}
