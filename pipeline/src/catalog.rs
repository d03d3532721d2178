//! What the source database says about the published tables: which tables the publication holds,
//! their columns, types, nullability and primary keys. Read over a regular SQL connection. Also the
//! stream's own bookkeeping row (`orbas.cdc_snapshots`: did the slot's initial snapshot finish?).

use sqlx::{PgConnection, PgPool};

use crate::encode::{Column, EncoderSettings, Relation};
use crate::error::Result;
use crate::event::topic_for;
use crate::lsn::Lsn;
use crate::value::Kind;

/// A table of the publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedTable {
    pub oid: u32,
    pub schema: String,
    pub table: String,
}

impl PublishedTable {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// Which tables and columns the stream carries, and which columns it masks.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `schema.table` or `table`; empty = every table of the publication.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// `schema.table.column` or `table.column`.
    pub masked: Vec<String>,
}

fn matches(list: &[String], schema: &str, table: &str) -> bool {
    list.iter().any(|t| match t.split_once('.') {
        Some((s, n)) => s == schema && n == table,
        None => t == table,
    })
}

impl Selection {
    pub fn carries(&self, schema: &str, table: &str) -> bool {
        (self.include.is_empty() || matches(&self.include, schema, table)) && !matches(&self.exclude, schema, table)
    }

    pub fn masks(&self, schema: &str, table: &str, column: &str) -> bool {
        self.masked.iter().any(|m| {
            let parts: Vec<&str> = m.split('.').collect();
            match parts.as_slice() {
                [s, t, c] => *s == schema && *t == table && *c == column,
                [t, c] => *t == table && *c == column,
                _ => false,
            }
        })
    }
}

/// The tables of `publication`.
pub async fn published_tables(pool: &PgPool, publication: &str) -> Result<Vec<PublishedTable>> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT c.oid::int8, pt.schemaname::text, pt.tablename::text
           FROM pg_publication_tables pt
           JOIN pg_namespace n ON n.nspname = pt.schemaname
           JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
          WHERE pt.pubname = $1
          ORDER BY 2, 3",
    )
    .bind(publication)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(oid, schema, table)| PublishedTable { oid: u32::try_from(oid).unwrap_or(0), schema, table })
        .collect())
}

/// One column as the catalog describes it.
#[derive(Debug, Clone)]
pub struct CatalogColumn {
    pub name: String,
    pub type_oid: u32,
    pub not_null: bool,
    pub is_array: bool,
    /// Position in the primary key, from 1.
    pub key_position: Option<i32>,
}

/// The live columns of a relation, in order.
pub async fn columns(conn: &mut PgConnection, oid: u32) -> Result<Vec<CatalogColumn>> {
    let rows: Vec<(String, i64, bool, bool, Option<i32>)> = sqlx::query_as(
        "SELECT a.attname::text, a.atttypid::int8, a.attnotnull, t.typcategory = 'A',
                array_position(i.indkey::int2[], a.attnum)
           FROM pg_attribute a
           JOIN pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
          WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
    )
    .bind(i64::from(oid))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, type_oid, not_null, is_array, key_position)| CatalogColumn {
            name,
            type_oid: u32::try_from(type_oid).unwrap_or(0),
            not_null,
            is_array,
            key_position,
        })
        .collect())
}

/// Builds the encoder's view of a table. `wire` is the column list the stream's Relation message
/// sent (names and type OIDs as of that point in the WAL); the catalog adds nullability, array-ness of
/// non-builtin types and the primary key. Without `wire` (snapshots) the catalog is the column list.
pub fn relation(
    settings: &EncoderSettings,
    selection: &Selection,
    schema: &str,
    table: &str,
    catalog: &[CatalogColumn],
    wire: Option<&[(String, u32)]>,
) -> Relation {
    let list: Vec<(String, u32)> = match wire {
        Some(w) => w.to_vec(),
        None => catalog.iter().map(|c| (c.name.clone(), c.type_oid)).collect(),
    };
    let mut key: Vec<(i32, usize)> = Vec::new();
    let columns = list
        .iter()
        .enumerate()
        .map(|(i, (name, oid))| {
            let cat = catalog.iter().find(|c| &c.name == name);
            if let Some(p) = cat.and_then(|c| c.key_position) {
                key.push((p, i));
            }
            let is_array = cat.is_some_and(|c| c.is_array && c.type_oid == *oid);
            Column::new(
                name,
                Kind::from_oid(*oid, is_array),
                !cat.is_some_and(|c| c.not_null),
                selection.masks(schema, table, name),
            )
        })
        .collect();
    key.sort_unstable();
    Relation::new(settings, schema, table, topic_for(schema, table), columns, key.into_iter().map(|(_, i)| i).collect())
}

/// The slot's initial snapshot as recorded: `None` = never started (or the record was removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub consistent_point: Lsn,
    pub completed: bool,
}

pub async fn snapshot_record(pool: &PgPool, slot: &str) -> Result<Option<SnapshotRecord>> {
    let row: Option<(String, bool)> = sqlx::query_as(
        "SELECT consistent_point::text, completed_at IS NOT NULL FROM orbas.cdc_snapshots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(lsn, completed)| SnapshotRecord { consistent_point: lsn.parse().unwrap_or_default(), completed }))
}

pub async fn record_snapshot_started(pool: &PgPool, slot: &str, at: Lsn) -> Result<()> {
    sqlx::query(
        "INSERT INTO orbas.cdc_snapshots (slot_name, consistent_point) VALUES ($1, $2::text::pg_lsn)
         ON CONFLICT (slot_name) DO UPDATE
            SET consistent_point = EXCLUDED.consistent_point, started_at = now(), completed_at = NULL,
                tables = NULL, rows = NULL",
    )
    .bind(slot)
    .bind(at.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn record_snapshot_completed(pool: &PgPool, slot: &str, tables: i32, rows: i64) -> Result<()> {
    sqlx::query("UPDATE orbas.cdc_snapshots SET completed_at = now(), tables = $2, rows = $3 WHERE slot_name = $1")
        .bind(slot)
        .bind(tables)
        .bind(rows)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn forget_snapshot(pool: &PgPool, slot: &str) -> Result<()> {
    sqlx::query("DELETE FROM orbas.cdc_snapshots WHERE slot_name = $1").bind(slot).execute(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_and_masks_tables() {
        let s = Selection {
            include: vec![],
            exclude: vec!["public.audit_log".into(), "sessions".into()],
            masked: vec!["contacts.email".into(), "public.leads.phone".into()],
        };
        assert!(s.carries("public", "accounts"));
        assert!(!s.carries("public", "audit_log"));
        assert!(!s.carries("other", "sessions"));
        assert!(s.masks("public", "contacts", "email"));
        assert!(s.masks("public", "leads", "phone"));
        assert!(!s.masks("other", "leads", "phone"));
        let only = Selection { include: vec!["accounts".into()], ..Selection::default() };
        assert!(only.carries("public", "accounts"));
        assert!(!only.carries("public", "contacts"));
    }
}
