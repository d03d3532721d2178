//! Change events (the Debezium JSON the CDC topics carry) → Arrow record batches for bronze and silver.
//!
//! Values arrive in the mapping `orbas_pipeline::value` documents (numeric as exact decimal text, dates as
//! epoch days, timestamptz as ISO-8601 UTC, bytea as base64, …) and are turned into the lake types of
//! [`crate::schema`]. A value that does not fit its column (a numeric with more decimals than the column's
//! scale, text in an integer column) is an error naming the column: the sink stops rather than store a
//! changed value.

use std::sync::Arc;

use base64::Engine as _;
use deltalake::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, ListArray, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::buffer::{NullBuffer, OffsetBuffer};
use deltalake::arrow::datatypes::{Field, SchemaRef};
use orbas_pipeline::event::Op;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::schema::{LakeType, TableLayout};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The parts of a change event the lake keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub op: Op,
    /// `after`, or `before` for deletes; `None` for truncates.
    pub row: Option<Map<String, Value>>,
    pub lsn: i64,
    pub commit_lsn: i64,
    /// Commit time, microseconds since the epoch.
    pub commit_us: i64,
    pub tx_id: Option<i64>,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Deserialize)]
struct RawSource {
    ts_ms: i64,
    #[serde(rename = "txId")]
    tx_id: Option<i64>,
    lsn: Option<i64>,
    commit_lsn: Option<i64>,
}

/// A plain envelope, or one wrapped as Kafka Connect's JsonConverter writes it (`{schema, payload}`).
#[derive(Deserialize)]
struct RawEvent {
    payload: Option<Box<RawEvent>>,
    before: Option<Map<String, Value>>,
    after: Option<Map<String, Value>>,
    source: Option<RawSource>,
    op: Option<Op>,
}

/// Parses one message value. `Ok(None)` for a tombstone (no value).
pub fn parse(value: Option<&[u8]>, partition: i32, offset: i64) -> Result<Option<Change>, String> {
    let Some(bytes) = value else { return Ok(None) };
    let mut raw: RawEvent = serde_json::from_slice(bytes).map_err(|e| format!("not a change event: {e}"))?;
    if let Some(inner) = raw.payload.take() {
        raw = *inner;
    }
    let op = raw.op.ok_or("change event without `op`")?;
    let source = raw.source.ok_or("change event without `source`")?;
    let lsn = source.lsn.ok_or("change event without `source.lsn`")?;
    let row = match op {
        Op::Delete => raw.before,
        Op::Truncate => None,
        Op::Create | Op::Update | Op::Read => raw.after,
    };
    if row.is_none() && op != Op::Truncate {
        return Err(format!("`{}` event without its row", op_str(op)));
    }
    Ok(Some(Change {
        op,
        row,
        lsn,
        commit_lsn: source.commit_lsn.unwrap_or(lsn),
        commit_us: source.ts_ms.saturating_mul(1000),
        tx_id: source.tx_id,
        partition,
        offset,
    }))
}

pub fn op_str(op: Op) -> &'static str {
    match op {
        Op::Create => "c",
        Op::Update => "u",
        Op::Delete => "d",
        Op::Read => "r",
        Op::Truncate => "t",
    }
}

/// Bronze rows for `changes`, in `layout.bronze_schema()`.
pub fn bronze_batch(layout: &TableLayout, changes: &[&Change]) -> Result<RecordBatch, String> {
    let schema = layout.bronze_schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let mut op = StringBuilder::with_capacity(changes.len(), changes.len());
    let mut lsn = Int64Builder::with_capacity(changes.len());
    let mut commit_lsn = Int64Builder::with_capacity(changes.len());
    let mut ts = TimestampMicrosecondBuilder::with_capacity(changes.len()).with_timezone("UTC");
    let mut day = Date32Builder::with_capacity(changes.len());
    let mut tx = Int64Builder::with_capacity(changes.len());
    let mut partition = Int32Builder::with_capacity(changes.len());
    let mut offset = Int64Builder::with_capacity(changes.len());
    for c in changes {
        op.append_value(op_str(c.op));
        lsn.append_value(c.lsn);
        commit_lsn.append_value(c.commit_lsn);
        ts.append_value(c.commit_us);
        day.append_value(i32::try_from(c.commit_us.div_euclid(MICROS_PER_DAY)).unwrap_or(i32::MAX));
        tx.append_option(c.tx_id);
        partition.append_value(c.partition);
        offset.append_value(c.offset);
    }
    columns.push(Arc::new(op.finish()));
    columns.push(Arc::new(lsn.finish()));
    columns.push(Arc::new(commit_lsn.finish()));
    columns.push(Arc::new(ts.finish()));
    columns.push(Arc::new(day.finish()));
    columns.push(Arc::new(tx.finish()));
    columns.push(Arc::new(partition.finish()));
    columns.push(Arc::new(offset.finish()));
    push_row_columns(layout, changes, &mut columns)?;
    RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())
}

/// The silver merge source: the last change of each key among `changes` (ordered by `(commit_lsn, lsn)`),
/// with the row's columns, `_lsn`, `_commit_lsn`, `_commit_ts` and `_op`. Truncates are not rows and
/// must have been split off by the caller.
pub fn silver_source(layout: &TableLayout, changes: &[&Change]) -> Result<RecordBatch, String> {
    let mut last: std::collections::HashMap<Vec<String>, &Change> = std::collections::HashMap::new();
    for c in changes {
        let Some(row) = &c.row else { continue };
        let key: Vec<String> =
            layout.key.iter().map(|k| row.get(k).map(Value::to_string).unwrap_or_default()).collect();
        match last.get(&key) {
            Some(prev) if (prev.commit_lsn, prev.lsn) >= (c.commit_lsn, c.lsn) => {}
            _ => {
                last.insert(key, c);
            }
        }
    }
    let mut winners: Vec<&Change> = last.into_values().collect();
    winners.sort_by_key(|c| (c.commit_lsn, c.lsn));
    let silver = layout.silver_schema();
    let mut fields: Vec<Field> = silver.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("_op", deltalake::arrow::datatypes::DataType::Utf8, false));
    let schema: SchemaRef = Arc::new(deltalake::arrow::datatypes::Schema::new(fields));
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    push_row_columns(layout, &winners, &mut columns)?;
    let mut lsn = Int64Builder::with_capacity(winners.len());
    let mut commit_lsn = Int64Builder::with_capacity(winners.len());
    let mut ts = TimestampMicrosecondBuilder::with_capacity(winners.len()).with_timezone("UTC");
    let mut op = StringBuilder::with_capacity(winners.len(), winners.len());
    for c in &winners {
        lsn.append_value(c.lsn);
        commit_lsn.append_value(c.commit_lsn);
        ts.append_value(c.commit_us);
        op.append_value(op_str(c.op));
    }
    columns.push(Arc::new(lsn.finish()));
    columns.push(Arc::new(commit_lsn.finish()));
    columns.push(Arc::new(ts.finish()));
    columns.push(Arc::new(op.finish()));
    RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())
}

fn push_row_columns(layout: &TableLayout, changes: &[&Change], columns: &mut Vec<ArrayRef>) -> Result<(), String> {
    let mut values: Vec<Option<&Value>> = Vec::with_capacity(changes.len());
    for col in &layout.columns {
        values.clear();
        values.extend(changes.iter().map(|c| c.row.as_ref().and_then(|r| r.get(&col.name))));
        let array = build_array(&col.ty, &values).map_err(|e| format!("column {}: {e}", col.name))?;
        columns.push(array);
    }
    Ok(())
}

fn present<'a>(v: &Option<&'a Value>) -> Option<&'a Value> {
    v.filter(|v| !v.is_null())
}

/// One column's values (JSON null and absent are both null).
pub fn build_array(ty: &LakeType, values: &[Option<&Value>]) -> Result<ArrayRef, String> {
    macro_rules! simple {
        ($builder:expr, $convert:expr) => {{
            let mut b = $builder;
            for v in values {
                match present(v) {
                    None => b.append_null(),
                    Some(v) => b.append_value($convert(v)?),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match ty {
        LakeType::Boolean => simple!(BooleanBuilder::with_capacity(values.len()), |v: &Value| v
            .as_bool()
            .ok_or_else(|| mismatch("a boolean", v))),
        LakeType::Int16 => simple!(Int16Builder::with_capacity(values.len()), |v: &Value| integer(v)
            .and_then(|i| i16::try_from(i).ok())
            .ok_or_else(|| mismatch("a smallint", v))),
        LakeType::Int32 => simple!(Int32Builder::with_capacity(values.len()), |v: &Value| integer(v)
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| mismatch("an integer", v))),
        LakeType::Int64 => simple!(Int64Builder::with_capacity(values.len()), |v: &Value| integer(v)
            .ok_or_else(|| mismatch("a bigint", v))),
        LakeType::Float32 => simple!(Float32Builder::with_capacity(values.len()), |v: &Value| float(v)
            .map(|f| f as f32)
            .ok_or_else(|| mismatch("a real", v))),
        LakeType::Float64 => simple!(Float64Builder::with_capacity(values.len()), |v: &Value| float(v)
            .ok_or_else(|| mismatch("a double", v))),
        LakeType::Decimal { precision, scale } => {
            let b = Decimal128Builder::with_capacity(values.len())
                .with_precision_and_scale(*precision, *scale)
                .map_err(|e| e.to_string())?;
            simple!(b, |v: &Value| v
                .as_str()
                .ok_or_else(|| mismatch("a decimal string", v))
                .and_then(|s| decimal(s, *precision, *scale)))
        }
        LakeType::Text => {
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 16);
            for v in values {
                match present(v) {
                    None => b.append_null(),
                    Some(Value::String(s)) => b.append_value(s),
                    // Nested arrays (a multi-dimensional text array's rows) and other JSON stay JSON text.
                    Some(other) => b.append_value(other.to_string()),
                }
            }
            Arc::new(b.finish())
        }
        LakeType::Time => simple!(StringBuilder::with_capacity(values.len(), values.len() * 15), |v: &Value| {
            integer(v).map(time_text).ok_or_else(|| mismatch("microseconds since midnight", v))
        }),
        LakeType::Date => simple!(Date32Builder::with_capacity(values.len()), |v: &Value| integer(v)
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| mismatch("days since 1970-01-01", v))),
        LakeType::Timestamp => simple!(TimestampMicrosecondBuilder::with_capacity(values.len()), |v: &Value| {
            integer(v).ok_or_else(|| mismatch("microseconds since the epoch", v))
        }),
        LakeType::TimestampTz => {
            simple!(TimestampMicrosecondBuilder::with_capacity(values.len()).with_timezone("UTC"), |v: &Value| v
                .as_str()
                .and_then(timestamptz)
                .ok_or_else(|| mismatch("an ISO-8601 timestamp", v)))
        }
        LakeType::Binary => simple!(BinaryBuilder::with_capacity(values.len(), values.len() * 16), |v: &Value| v
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .ok_or_else(|| mismatch("base64 bytes", v))),
        LakeType::List(item) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            let mut valid = Vec::with_capacity(values.len());
            let mut children: Vec<Option<&Value>> = Vec::new();
            offsets.push(0i32);
            for v in values {
                match present(v) {
                    None => valid.push(false),
                    Some(Value::Array(items)) => {
                        valid.push(true);
                        children.extend(items.iter().map(Some));
                    }
                    Some(other) => return Err(mismatch("an array", other)),
                }
                offsets.push(i32::try_from(children.len()).map_err(|_| "array column too large".to_owned())?);
            }
            let child = build_array(item, &children)?;
            let field = Arc::new(Field::new("element", item.arrow(), true));
            let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
            Arc::new(
                ListArray::try_new(field, OffsetBuffer::new(offsets.into()), child, nulls)
                    .map_err(|e| e.to_string())?,
            )
        }
    })
}

fn mismatch(expected: &str, got: &Value) -> String {
    let mut shown = got.to_string();
    if shown.len() > 80 {
        let cut = (0..=80).rev().find(|&i| shown.is_char_boundary(i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    format!("expected {expected}, got {shown}")
}

fn integer(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Exact decimal text → the unscaled integer at `scale`. Fewer fractional digits are padded; more are an
/// error unless they are zeros (Postgres always prints exactly the column's scale).
pub fn decimal(s: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let bad = || format!("{s:?} is not a decimal({precision},{scale})");
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let scale_digits = usize::try_from(scale).map_err(|_| bad())?;
    let (kept, dropped) = frac_part.split_at(frac_part.len().min(scale_digits));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(format!("{s:?} has more than {scale} decimal places"));
    }
    let int_part = int_part.trim_start_matches('0');
    if int_part.len() + scale_digits > usize::from(precision) {
        return Err(format!("{s:?} does not fit decimal({precision},{scale})"));
    }
    let mut unscaled: i128 = 0;
    for b in int_part.bytes().chain(kept.bytes()).chain(std::iter::repeat_n(b'0', scale_digits - kept.len())) {
        unscaled = unscaled.checked_mul(10).and_then(|u| u.checked_add(i128::from(b - b'0'))).ok_or_else(bad)?;
    }
    Ok(if negative { -unscaled } else { unscaled })
}

/// ISO-8601 UTC (as the CDC writes timestamptz) → microseconds; `infinity` → the extremes.
pub fn timestamptz(s: &str) -> Option<i64> {
    match s {
        "infinity" => Some(i64::MAX),
        "-infinity" => Some(i64::MIN),
        _ => chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_micros()),
    }
}

/// Microseconds since midnight → `HH:MM:SS[.ffffff]`.
pub fn time_text(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 { format!("{h:02}:{m:02}:{s:02}") } else { format!("{h:02}:{m:02}:{s:02}.{frac:06}") }
}

/// Whether `array` holds exactly `values` (test helper for the conversions).
#[cfg(test)]
fn nulls_of(array: &dyn deltalake::arrow::array::Array) -> Vec<bool> {
    (0..array.len()).map(|i| array.is_null(i)).collect()
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::{AsArray, Decimal128Array};
    use deltalake::arrow::datatypes::{Int32Type, TimestampMicrosecondType};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal("123.45", 18, 2), Ok(12345));
        assert_eq!(decimal("-0.5", 5, 2), Ok(-50));
        assert_eq!(decimal("7", 5, 2), Ok(700));
        assert_eq!(decimal("1.230", 5, 2), Ok(123), "trailing zeros beyond the scale are harmless");
        assert!(decimal("1.235", 5, 2).is_err(), "never rounds");
        assert!(decimal("1234", 5, 2).is_err(), "too many integer digits");
        assert!(decimal("NaN", 5, 2).is_err());
        assert!(decimal("1e5", 5, 2).is_err());
        assert!(decimal(".", 5, 2).is_err());
        assert_eq!(decimal("99999999999999999999999999999999999999", 38, 0).map(|v| v.to_string().len()), Ok(38));
    }

    #[test]
    fn timestamps_and_times() {
        assert_eq!(timestamptz("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(timestamptz("infinity"), Some(i64::MAX));
        assert_eq!(timestamptz("yesterday"), None);
        assert_eq!(time_text(3_723_000_001), "01:02:03.000001");
        assert_eq!(time_text(0), "00:00:00");
    }

    #[test]
    fn arrays_keep_nulls_at_both_levels() {
        let rows = [json!([1, null, 3]), Value::Null, json!([])];
        let values: Vec<Option<&Value>> = rows.iter().map(Some).collect();
        let array = build_array(&LakeType::List(Box::new(LakeType::Int32)), &values).ok();
        let list = array.as_ref().map(|a| a.as_list::<i32>());
        assert_eq!(list.map(|l| nulls_of(l)), Some(vec![false, true, false]));
        let first = list.map(|l| l.value(0));
        let ints = first.as_ref().map(|f| f.as_primitive::<Int32Type>().iter().collect::<Vec<_>>());
        assert_eq!(ints, Some(vec![Some(1), None, Some(3)]));
        assert_eq!(list.map(|l| l.value_length(2)), Some(0));
    }

    #[test]
    fn wrapped_and_plain_envelopes_parse_alike() {
        let plain = json!({"before": null, "after": {"id": 1}, "op": "c", "ts_ms": 5,
            "source": {"ts_ms": 2, "txId": 7, "lsn": 100, "commit_lsn": 120}});
        let wrapped = json!({"schema": {"type": "struct"}, "payload": plain});
        let a = parse(Some(plain.to_string().as_bytes()), 0, 9);
        let b = parse(Some(wrapped.to_string().as_bytes()), 0, 9);
        assert_eq!(a, b);
        let c = a.ok().flatten();
        assert_eq!(c.as_ref().map(|c| (c.lsn, c.commit_lsn, c.commit_us, c.offset)), Some((100, 120, 2000, 9)));
        assert_eq!(parse(None, 0, 1), Ok(None), "tombstone");
        assert!(parse(Some(b"{\"op\":\"c\"}"), 0, 1).is_err());
        assert!(parse(Some(b"garbage"), 0, 1).is_err());
    }

    #[test]
    fn mismatches_name_what_was_expected() {
        let v = json!("abc");
        let err = build_array(&LakeType::Int32, &[Some(&v)]).err();
        assert_eq!(err.as_deref(), Some("expected an integer, got \"abc\""));
        let big = json!(40000);
        assert!(build_array(&LakeType::Int16, &[Some(&big)]).is_err(), "out of range");
    }

    proptest! {
        /// Any i64 unscaled value printed as Postgres prints numeric(38, s) reads back exactly.
        #[test]
        fn decimal_text_round_trips(unscaled in any::<i64>(), scale in 0i8..12) {
            let s = Decimal128Array::from(vec![i128::from(unscaled)])
                .with_precision_and_scale(38, scale)
                .map(|a| a.value_as_string(0));
            let s = s.unwrap_or_default();
            prop_assert_eq!(decimal(&s, 38, scale), Ok(i128::from(unscaled)));
        }

        /// Timestamps the CDC writes (RFC 3339 with microseconds, `Z`) read back to the same instant.
        #[test]
        fn timestamptz_round_trips(us in -62_000_000_000_000_000i64..250_000_000_000_000_000) {
            let t = chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            prop_assert_eq!(t.as_deref().and_then(timestamptz), Some(us));
            let array = build_array(&LakeType::TimestampTz, &[t.map(Value::String).as_ref()]).ok();
            let back = array.as_ref().map(|a| a.as_primitive::<TimestampMicrosecondType>().value(0));
            prop_assert_eq!(back, Some(us));
        }

        /// Garbage never panics the parser.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(Some(&bytes), 0, 0);
        }
    }
}
