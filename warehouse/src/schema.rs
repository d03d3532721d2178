//! What a CRM table looks like in the lake: its columns with their Postgres types (read from the
//! catalog, with type modifiers, so `numeric(18,2)` becomes `decimal(18,2)`), the Arrow/Delta type each
//! maps to, the primary key and the tenant column, plus the bookkeeping columns the bronze and silver
//! tables add.
//!
//! | Postgres | Arrow / Delta | note |
//! |---|---|---|
//! | boolean | Boolean / boolean | |
//! | smallint, integer, bigint (oid) | Int16, Int32, Int64 / short, integer, long | |
//! | real, double precision | Float32, Float64 / float, double | NaN and ±Infinity kept |
//! | numeric(p,s), p ≤ 38 | Decimal128(p,s) / decimal(p,s) | exact |
//! | numeric without (or beyond 38 digits of) precision | Utf8 / string | exact text, never rounded |
//! | date | Date32 / date | |
//! | timestamptz | Timestamp(µs, UTC) / timestamp | ±infinity → the extreme values |
//! | timestamp | Timestamp(µs) / timestamp_ntz | |
//! | bytea | Binary / binary | |
//! | arrays | List of the element's type / array | |
//! | text, varchar, uuid, json(b), enums, inet, time, interval, … | Utf8 / string | Delta has no uuid, json or time types |

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use sqlx::PgPool;

use crate::error::{Error, Result};

/// The largest precision a Decimal128 holds.
const MAX_DECIMAL_PRECISION: u8 = 38;

/// How a column's values are stored in the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeType {
    Boolean,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// Text of any kind: the JSON string as the change event carries it.
    Text,
    /// `time`: the event carries microseconds since midnight; stored as `HH:MM:SS[.ffffff]`.
    Time,
    Date,
    Timestamp,
    TimestampTz,
    Binary,
    List(Box<LakeType>),
}

impl LakeType {
    /// The mapping of a (domain-resolved) type OID with its modifier; `element` is the element type of an
    /// array type, with its own category.
    pub fn from_catalog(oid: u32, typmod: i32, element: Option<u32>) -> LakeType {
        if let Some(elem) = element {
            return LakeType::List(Box::new(LakeType::from_catalog(elem, typmod, None)));
        }
        match oid {
            16 => LakeType::Boolean,
            21 => LakeType::Int16,
            23 => LakeType::Int32,
            20 | 26 | 28 => LakeType::Int64,
            700 => LakeType::Float32,
            701 => LakeType::Float64,
            1700 => numeric(typmod),
            1082 => LakeType::Date,
            1114 => LakeType::Timestamp,
            1184 => LakeType::TimestampTz,
            1083 => LakeType::Time,
            17 => LakeType::Binary,
            _ => LakeType::Text,
        }
    }

    pub fn arrow(&self) -> DataType {
        match self {
            LakeType::Boolean => DataType::Boolean,
            LakeType::Int16 => DataType::Int16,
            LakeType::Int32 => DataType::Int32,
            LakeType::Int64 => DataType::Int64,
            LakeType::Float32 => DataType::Float32,
            LakeType::Float64 => DataType::Float64,
            LakeType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            LakeType::Text | LakeType::Time => DataType::Utf8,
            LakeType::Date => DataType::Date32,
            LakeType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            LakeType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            LakeType::Binary => DataType::Binary,
            LakeType::List(item) => DataType::List(Arc::new(Field::new("element", item.arrow(), true))),
        }
    }
}

/// `numeric(p,s)`: the modifier is `((p << 16) | s) + 4`; -1 when unconstrained.
fn numeric(typmod: i32) -> LakeType {
    if typmod < 4 {
        return LakeType::Text;
    }
    let m = typmod - 4;
    let precision = (m >> 16) & 0xffff;
    let scale = m & 0xffff;
    match (u8::try_from(precision), i8::try_from(scale)) {
        (Ok(p), Ok(s)) if p <= MAX_DECIMAL_PRECISION && p > 0 && i16::from(s) <= i16::from(p) => {
            LakeType::Decimal { precision: p, scale: s }
        }
        _ => LakeType::Text,
    }
}

/// One column of a CRM table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeColumn {
    pub name: String,
    pub ty: LakeType,
}

/// A CRM table as the lake stores it.
#[derive(Debug, Clone)]
pub struct TableLayout {
    pub schema: String,
    pub table: String,
    pub columns: Vec<LakeColumn>,
    /// Primary-key column names, in key order.
    pub key: Vec<String>,
}

/// Bookkeeping columns, prefixed so they never collide with a CRM column.
pub mod meta {
    /// `c`, `u`, `d`, `r` or `t` (bronze).
    pub const OP: &str = "_op";
    /// LSN of the change.
    pub const LSN: &str = "_lsn";
    /// LSN of the transaction's commit; `(commit_lsn, lsn)` orders every change of a row.
    pub const COMMIT_LSN: &str = "_commit_lsn";
    /// Commit time of the transaction.
    pub const COMMIT_TS: &str = "_commit_ts";
    /// The day of `_commit_ts` (UTC): bronze's partition column.
    pub const COMMIT_DATE: &str = "_commit_date";
    /// Postgres transaction id (bronze).
    pub const TX_ID: &str = "_tx_id";
    /// Kafka partition and offset the event was read from (bronze): lineage, and how a restarted sink
    /// proves the topic is still the one it read.
    pub const PARTITION: &str = "_kafka_partition";
    pub const OFFSET: &str = "_kafka_offset";
}

impl TableLayout {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    pub fn column(&self, name: &str) -> Option<&LakeColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn row_fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.columns.iter().map(|c| Field::new(&c.name, c.ty.arrow(), !self.key.contains(&c.name)))
    }

    /// Bronze: the change log — bookkeeping columns, then the row's columns (`after`, or `before` for
    /// deletes).
    pub fn bronze_schema(&self) -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let mut fields = vec![
            Field::new(meta::OP, DataType::Utf8, false),
            Field::new(meta::LSN, DataType::Int64, false),
            Field::new(meta::COMMIT_LSN, DataType::Int64, false),
            Field::new(meta::COMMIT_TS, ts, false),
            Field::new(meta::COMMIT_DATE, DataType::Date32, false),
            Field::new(meta::TX_ID, DataType::Int64, true),
            Field::new(meta::PARTITION, DataType::Int32, false),
            Field::new(meta::OFFSET, DataType::Int64, false),
        ];
        // Truncate events carry no row, so in bronze every row column may be null.
        fields.extend(self.columns.iter().map(|c| Field::new(&c.name, c.ty.arrow(), true)));
        Arc::new(Schema::new(fields))
    }

    /// Silver: the current state — the row's columns plus the position of the change that wrote it.
    pub fn silver_schema(&self) -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let mut fields: Vec<Field> = self.row_fields().collect();
        fields.push(Field::new(meta::LSN, DataType::Int64, false));
        fields.push(Field::new(meta::COMMIT_LSN, DataType::Int64, false));
        fields.push(Field::new(meta::COMMIT_TS, ts, false));
        Arc::new(Schema::new(fields))
    }
}

/// Reads a table's live columns and primary key from the catalog (domains resolved to their base type).
/// `None` when the table does not exist (any more).
pub async fn resolve(pool: &PgPool, schema: &str, table: &str) -> Result<Option<TableLayout>> {
    /// name, type OID, type modifier, array element OID, position in the primary key
    type CatalogRow = (String, i64, i32, Option<i64>, Option<i32>);
    let rows: Vec<CatalogRow> = sqlx::query_as(
        "SELECT a.attname::text,
                (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END)::int8,
                CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
                CASE WHEN bt.typcategory = 'A' THEN NULLIF(bt.typelem, 0)::int8 END,
                array_position(i.indkey::int2[], a.attnum)
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_type t ON t.oid = a.atttypid
           JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
           LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
          WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut key: Vec<(i32, String)> = Vec::new();
    let mut columns = Vec::with_capacity(rows.len());
    for (name, oid, typmod, element, key_position) in rows {
        let oid = u32::try_from(oid).unwrap_or(0);
        let element = element.and_then(|e| u32::try_from(e).ok());
        // Element types of arrays of domains or enums are resolved like the base: unknown → text.
        if let Some(p) = key_position {
            key.push((p, name.clone()));
        }
        columns.push(LakeColumn { ty: LakeType::from_catalog(oid, typmod, element), name });
    }
    key.sort();
    let layout = TableLayout {
        schema: schema.to_owned(),
        table: table.to_owned(),
        columns,
        key: key.into_iter().map(|(_, n)| n).collect(),
    };
    if layout.key.is_empty() {
        return Err(Error::Table {
            table: layout.qualified(),
            why: "has no primary key; silver keeps rows by primary key".into(),
        });
    }
    Ok(Some(layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_modifiers_become_decimals() {
        // numeric(18,2): ((18 << 16) | 2) + 4
        assert_eq!(numeric((18 << 16 | 2) + 4), LakeType::Decimal { precision: 18, scale: 2 });
        assert_eq!(numeric((20 << 16 | 10) + 4), LakeType::Decimal { precision: 20, scale: 10 });
        assert_eq!(numeric(-1), LakeType::Text, "unconstrained numeric stays exact text");
        assert_eq!(numeric((60 << 16 | 2) + 4), LakeType::Text, "beyond Decimal128");
    }

    #[test]
    fn arrays_map_their_elements() {
        assert_eq!(LakeType::from_catalog(1009, -1, Some(25)), LakeType::List(Box::new(LakeType::Text)));
        let decimals = LakeType::from_catalog(1231, (12 << 16 | 2) + 4, Some(1700));
        assert_eq!(decimals, LakeType::List(Box::new(LakeType::Decimal { precision: 12, scale: 2 })));
        assert_eq!(LakeType::from_catalog(2950, -1, None).arrow(), DataType::Utf8, "uuid");
    }
}
