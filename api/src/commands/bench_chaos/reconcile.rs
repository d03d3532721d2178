//! Postgres ↔ silver, table by table, for every table of the CDC publication: row counts, keys
//! missing from silver, keys silver holds more than once (silver is current state: one row per
//! primary key), keys silver holds that Postgres does not, and an order-independent checksum — the
//! wrapping sum of a per-row hash of the key and the values of every column both sides share,
//! rendered the same way on both sides (SQL on Postgres, DataFusion SQL on the Delta table).
//!
//! Columns are rendered as text where both sides print the same text (booleans, integers, exact
//! numerics, strings, uuids, enums, JSON, addresses), as whole days (`date`) or microseconds since the epoch
//! (timestamps); floating-point, time, interval, binary and array columns are left out of the
//! checksum (their text forms differ between the engines) and listed as such.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use deltalake::arrow::array::{Array as _, AsArray as _};
use deltalake::arrow::datatypes::DataType;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// How a column is rendered on both sides; `None`: not compared.
fn render(name: &str, pg_type: &str) -> Option<(String, String)> {
    let c = format!("\"{}\"", name.replace('"', "\"\""));
    let text = (format!("{c}::text"), format!("CAST({c} AS VARCHAR)"));
    match pg_type {
        "boolean" | "smallint" | "integer" | "bigint" | "oid" | "text" | "character varying" | "character" | "name"
        | "uuid" | "json" | "jsonb" | "numeric" => Some(text),
        // The change event carries the output function's text (`10.0.0.1`); `::text` adds the mask.
        "inet" | "cidr" => Some((format!("CASE WHEN {c} IS NOT NULL THEN format('%s', {c}) END"), text.1)),
        t if t.starts_with("numeric(") || t.starts_with("character varying(") || t.starts_with("character(") => {
            Some(text)
        }
        "date" => Some((format!("({c} - DATE '1970-01-01')::text"), format!("CAST(CAST({c} AS INT) AS VARCHAR)"))),
        "timestamp with time zone" | "timestamp without time zone" => Some((
            format!("CASE WHEN isfinite({c}) THEN (extract(epoch FROM {c}) * 1000000)::bigint::text END"),
            format!("CAST(CAST({c} AS BIGINT) AS VARCHAR)"),
        )),
        "USER-DEFINED-ENUM" => Some(text),
        _ => None,
    }
}

/// One table's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TableCheck {
    pub(super) table: String,
    pub(super) pg_rows: usize,
    pub(super) silver_rows: usize,
    /// Keys in Postgres, not in silver.
    pub(super) missing: usize,
    /// Extra copies of keys silver holds more than once.
    pub(super) duplicated: usize,
    /// Keys in silver, not in Postgres (deleted rows silver kept).
    pub(super) extra: usize,
    /// Keys on both sides whose values differ.
    pub(super) differing: usize,
    pub(super) pg_checksum: u64,
    pub(super) silver_checksum: u64,
    pub(super) columns: usize,
    pub(super) skipped: Vec<String>,
}

impl TableCheck {
    pub(super) fn ok(&self) -> bool {
        self.missing == 0
            && self.duplicated == 0
            && self.extra == 0
            && self.differing == 0
            && self.pg_rows == self.silver_rows
            && self.pg_checksum == self.silver_checksum
    }
}

/// Every published table, reconciled.
pub(super) async fn all(admin: &PgPool, lake: &Path) -> anyhow::Result<Vec<TableCheck>> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = 'orbas_cdc' ORDER BY 1, 2",
    )
    .fetch_all(admin)
    .await?;
    let mut out = Vec::new();
    for (schema, table) in tables {
        out.push(one(admin, lake, &schema, &table).await.with_context(|| format!("reconciling {schema}.{table}"))?);
    }
    Ok(out)
}

async fn one(admin: &PgPool, lake: &Path, schema: &str, table: &str) -> anyhow::Result<TableCheck> {
    let qualified = format!("\"{schema}\".\"{table}\"");
    let columns: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT a.attname::text,
                CASE WHEN t.typtype = 'e' THEN 'USER-DEFINED-ENUM' ELSE format_type(a.atttypid, a.atttypmod) END,
                coalesce(a.attnum = ANY (i.indkey), false)
           FROM pg_attribute a
           JOIN pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
          WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
          ORDER BY a.attnum",
    )
    .bind(&qualified)
    .fetch_all(admin)
    .await?;
    let silver = silver_context(lake, schema, table).await?;
    let silver_names: Vec<String> = match &silver {
        Some(ctx) => ctx.table_provider("t").await?.schema().fields().iter().map(|f| f.name().clone()).collect(),
        None => columns.iter().map(|c| c.0.clone()).collect(),
    };
    let (mut keys, mut values, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (name, ty, is_key) in &columns {
        match render(name, ty).filter(|_| silver_names.contains(name)) {
            Some(r) if *is_key => keys.push(r),
            Some(r) => values.push(r),
            None => skipped.push(format!("{name} ({ty})")),
        }
    }
    anyhow::ensure!(!keys.is_empty(), "{qualified} has no comparable primary key");
    let select = |side: fn(&(String, String)) -> &String, from: &str| {
        let list = |v: &[(String, String)]| {
            v.iter().map(|r| format!("coalesce({}, '∅')", side(r))).collect::<Vec<_>>().join(", ")
        };
        let vals = if values.is_empty() { "''".to_owned() } else { format!("concat_ws('~', {})", list(&values)) };
        format!("SELECT concat_ws('|', {}), {vals} FROM {from}", list(&keys))
    };
    let pg: Vec<(String, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(select(|r| &r.0, &qualified))).fetch_all(admin).await?;
    let lake_rows = match &silver {
        Some(ctx) => datafusion_pairs(ctx, &select(|r| &r.1, "t")).await?,
        None => Vec::new(),
    };
    Ok(compare(format!("{schema}.{table}"), &pg, &lake_rows, keys.len() + values.len(), skipped))
}

async fn silver_context(
    lake: &Path,
    schema: &str,
    table: &str,
) -> anyhow::Result<Option<deltalake::datafusion::prelude::SessionContext>> {
    let dir = lake.join("silver").join(schema).join(table);
    if !dir.join("_delta_log").exists() {
        return Ok(None);
    }
    let url = url::Url::from_directory_path(&dir).map_err(|()| anyhow::anyhow!("silver path {}", dir.display()))?;
    let t = deltalake::open_table(url).await?;
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    ctx.register_table("t", t.table_provider().await?)?;
    Ok(Some(ctx))
}

async fn datafusion_pairs(
    ctx: &deltalake::datafusion::prelude::SessionContext,
    sql: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let text = |i: usize| deltalake::arrow::compute::cast(b.column(i), &DataType::Utf8);
        let (k, v) = (text(0)?, text(1)?);
        let (k, v) = (k.as_string::<i32>(), v.as_string::<i32>());
        out.extend((0..b.num_rows()).map(|i| {
            let s = |a: &deltalake::arrow::array::StringArray| {
                if a.is_null(i) { String::new() } else { a.value(i).to_owned() }
            };
            (s(k), s(v))
        }));
    }
    Ok(out)
}

/// The first 8 bytes of SHA-256 over key and values.
fn row_hash(key: &str, values: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0]);
    h.update(values.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn compare(
    table: String,
    pg: &[(String, String)],
    silver: &[(String, String)],
    columns: usize,
    skipped: Vec<String>,
) -> TableCheck {
    let checksum = |rows: &[(String, String)]| rows.iter().fold(0u64, |acc, (k, v)| acc.wrapping_add(row_hash(k, v)));
    let want: HashMap<&str, &str> = pg.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut got: HashMap<&str, (usize, &str)> = HashMap::new();
    for (k, v) in silver {
        got.entry(k.as_str()).or_insert((0, v.as_str())).0 += 1;
    }
    let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
    let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
    let duplicated = got.values().map(|(n, _)| n - 1).sum::<usize>();
    let differing = got.iter().filter(|(k, (_, v))| want.get(*k).is_some_and(|w| w != v)).count();
    TableCheck {
        table,
        pg_rows: pg.len(),
        silver_rows: silver.len(),
        missing,
        duplicated,
        extra,
        differing,
        pg_checksum: checksum(pg),
        silver_checksum: checksum(silver),
        columns,
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn equal_sets_in_any_order_reconcile() {
        let pg = rows(&[("1", "a"), ("2", "b"), ("3", "c")]);
        let silver = rows(&[("3", "c"), ("1", "a"), ("2", "b")]);
        assert!(compare("t".into(), &pg, &silver, 2, Vec::new()).ok());
    }

    #[test]
    fn a_lost_a_duplicated_and_a_changed_row_are_each_seen() {
        let pg = rows(&[("1", "a"), ("2", "b"), ("3", "c")]);
        let lost = compare("t".into(), &pg, &rows(&[("1", "a"), ("2", "b")]), 2, Vec::new());
        assert_eq!((lost.missing, lost.ok()), (1, false));
        let dup = compare("t".into(), &pg, &rows(&[("1", "a"), ("2", "b"), ("3", "c"), ("3", "c")]), 2, Vec::new());
        assert_eq!((dup.duplicated, dup.ok()), (1, false));
        let changed = compare("t".into(), &pg, &rows(&[("1", "a"), ("2", "b"), ("3", "x")]), 2, Vec::new());
        assert_eq!((changed.differing, changed.pg_checksum == changed.silver_checksum), (1, false));
        // Values swapped between keys keep the multiset of values but not the checksum.
        let swapped = compare("t".into(), &pg, &rows(&[("1", "b"), ("2", "a"), ("3", "c")]), 2, Vec::new());
        assert_ne!(swapped.pg_checksum, swapped.silver_checksum);
    }
}
