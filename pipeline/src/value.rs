//! Postgres values → JSON, the way Debezium's PostgreSQL connector maps them (with
//! `decimal.handling.mode=string` and `interval.handling.mode=string`), from the types' text output as
//! pgoutput and `COPY … TO STDOUT` send it. Both sessions run with `DateStyle=ISO`, `TimeZone=UTC`,
//! `IntervalStyle=iso_8601`, `extra_float_digits=3` and `bytea_output=hex` (see [`SESSION_SETTINGS`]),
//! so the text forms parsed here are fixed.
//!
//! | Postgres | JSON | Kafka Connect schema |
//! |---|---|---|
//! | boolean | `true` | boolean |
//! | smallint, integer, bigint, oid | number | int16, int32, int64 |
//! | real, double precision | number (`"NaN"`, `"Infinity"` as strings) | float, double |
//! | numeric | string, exactly as stored (precision and scale kept) | string |
//! | text, varchar, char, enums, inet, … | string | string |
//! | uuid | string | string `io.debezium.data.Uuid` |
//! | json, jsonb | string holding the document | string `io.debezium.data.Json` |
//! | bytea | base64 string | bytes |
//! | date | days since 1970-01-01 | int32 `io.debezium.time.Date` |
//! | timestamp | microseconds since the epoch | int64 `io.debezium.time.MicroTimestamp` |
//! | timestamptz | ISO-8601 in UTC, `…Z` | string `io.debezium.time.ZonedTimestamp` |
//! | time | microseconds since midnight | int64 `io.debezium.time.MicroTime` |
//! | timetz | string | string `io.debezium.time.ZonedTime` |
//! | interval | ISO-8601 duration (`P1Y2M3DT4H`) | string `io.debezium.time.Interval` |
//! | arrays | JSON arrays of the element mapping (any dimension) | array |
//!
//! `infinity` dates and timestamps: `date` → ±2147483647, `timestamp` → ±i64::MAX, `timestamptz` →
//! `"infinity"` / `"-infinity"`.

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde_json::{Value, json};

/// The session settings that fix the text forms this module parses.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "iso_8601"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
];

/// How a column's values are mapped. Resolved once per column from its type OID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Numeric,
    Text,
    Uuid,
    Json,
    Bytea,
    Date,
    Timestamp,
    TimestampTz,
    Time,
    TimeTz,
    Interval,
    Array(Box<Kind>),
}

impl Kind {
    /// The mapping of a built-in type OID; unknown types (enums, domains, extensions) map as text,
    /// and `array_of_unknown` marks an unknown type whose name says it is an array (`_name`).
    pub fn from_oid(oid: u32, array_of_unknown: bool) -> Kind {
        use Kind::*;
        let arr = |k: Kind| Array(Box::new(k));
        match oid {
            16 => Bool,
            21 => Int16,
            23 => Int32,
            20 | 26 | 28 => Int64,
            700 => Float32,
            701 => Float64,
            1700 => Numeric,
            2950 => Uuid,
            114 | 3802 => Json,
            17 => Bytea,
            1082 => Date,
            1114 => Timestamp,
            1184 => TimestampTz,
            1083 => Time,
            1266 => TimeTz,
            1186 => Interval,
            1000 => arr(Bool),
            1005 => arr(Int16),
            1007 => arr(Int32),
            1016 | 1028 => arr(Int64),
            1021 => arr(Float32),
            1022 => arr(Float64),
            1231 => arr(Numeric),
            2951 => arr(Uuid),
            199 | 3807 => arr(Json),
            1001 => arr(Bytea),
            1182 => arr(Date),
            1115 => arr(Timestamp),
            1185 => arr(TimestampTz),
            1183 => arr(Time),
            1270 => arr(TimeTz),
            1187 => arr(Interval),
            // text, varchar, bpchar, name, char, inet, cidr, macaddr, xml, money arrays
            1009 | 1015 | 1014 | 1003 | 1002 | 1041 | 651 | 1040 | 143 | 791 => arr(Text),
            _ if array_of_unknown => arr(Text),
            _ => Text,
        }
    }

    /// The Kafka Connect schema of a field of this kind (JsonConverter with `schemas.enable=true`).
    pub fn connect_schema(&self, field: &str, optional: bool) -> Value {
        let mut s = self.connect_type();
        if let Some(o) = s.as_object_mut() {
            o.insert("optional".into(), Value::Bool(optional));
            if !field.is_empty() {
                o.insert("field".into(), Value::String(field.to_owned()));
            }
        }
        s
    }

    fn connect_type(&self) -> Value {
        let named = |t: &str, n: &str| json!({"type": t, "name": n, "version": 1});
        match self {
            Kind::Bool => json!({"type": "boolean"}),
            Kind::Int16 => json!({"type": "int16"}),
            Kind::Int32 => json!({"type": "int32"}),
            Kind::Int64 => json!({"type": "int64"}),
            Kind::Float32 => json!({"type": "float"}),
            Kind::Float64 => json!({"type": "double"}),
            Kind::Numeric | Kind::Text => json!({"type": "string"}),
            Kind::Uuid => named("string", "io.debezium.data.Uuid"),
            Kind::Json => named("string", "io.debezium.data.Json"),
            Kind::Bytea => json!({"type": "bytes"}),
            Kind::Date => named("int32", "io.debezium.time.Date"),
            Kind::Timestamp => named("int64", "io.debezium.time.MicroTimestamp"),
            Kind::TimestampTz => named("string", "io.debezium.time.ZonedTimestamp"),
            Kind::Time => named("int64", "io.debezium.time.MicroTime"),
            Kind::TimeTz => named("string", "io.debezium.time.ZonedTime"),
            Kind::Interval => named("string", "io.debezium.time.Interval"),
            Kind::Array(item) => json!({"type": "array", "items": item.connect_schema("", true)}),
        }
    }

    /// Writes the JSON of one non-null value given its text output. Text that does not parse as the
    /// kind promises (which Postgres never sends) is written as a JSON string rather than dropped.
    pub fn write_json(&self, text: &[u8], out: &mut Vec<u8>) {
        let s = match std::str::from_utf8(text) {
            Ok(s) => s,
            Err(_) => return write_str(&String::from_utf8_lossy(text), out),
        };
        match self {
            Kind::Bool => out.extend_from_slice(if s == "t" { b"true" } else { b"false" }),
            Kind::Int16 | Kind::Int32 | Kind::Int64 => {
                if is_integer(s) {
                    out.extend_from_slice(s.as_bytes());
                } else {
                    write_str(s, out);
                }
            }
            Kind::Float32 | Kind::Float64 => {
                if s.parse::<f64>().is_ok_and(f64::is_finite) {
                    out.extend_from_slice(s.as_bytes());
                } else {
                    write_str(s, out);
                }
            }
            Kind::Numeric | Kind::Text | Kind::Uuid | Kind::Json | Kind::TimeTz | Kind::Interval => write_str(s, out),
            Kind::Bytea => {
                match s.strip_prefix("\\x").and_then(|h| hex::decode(h).ok()) {
                    Some(bytes) => {
                        out.push(b'"');
                        out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(bytes).as_bytes());
                        out.push(b'"');
                    }
                    None => write_str(s, out),
                };
            }
            Kind::Date => match date_days(s) {
                Some(d) => write_display(d, out),
                None => write_str(s, out),
            },
            Kind::Timestamp => match timestamp_micros(s) {
                Some(m) => write_display(m, out),
                None => write_str(s, out),
            },
            Kind::TimestampTz => write_str(&timestamptz_iso(s).unwrap_or_else(|| s.to_owned()), out),
            Kind::Time => match time_micros(s) {
                Some(m) => write_display(m, out),
                None => write_str(s, out),
            },
            Kind::Array(item) => match parse_array(s) {
                Some(elems) => write_array(item, &elems, out),
                None => write_str(s, out),
            },
        }
    }
}

fn write_display(v: impl std::fmt::Display, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = write!(out, "{v}");
}

fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Writes `s` as a JSON string.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                write_display(format_args!("\\u{b:04x}"), out);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn strip_bc(s: &str) -> (&str, bool) {
    match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    }
}

/// Years after 9999 and BC years: chrono reads a `+`-signed or negative year.
fn normalise_year(s: &str, bc: bool) -> String {
    let (year, rest) = s.split_once('-').unwrap_or((s, ""));
    let y: i64 = year.parse().unwrap_or(0);
    // 1 BC is year 0 in ISO-8601 / chrono.
    let y = if bc { 1 - y } else { y };
    format!("{y:+05}-{rest}")
}

/// `YYYY-MM-DD` (years 1..9999, what Postgres prints for AD dates) without a format parser.
fn plain_date(s: &[u8]) -> Option<NaiveDate> {
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        s[r].iter().try_fold(0u32, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
    };
    NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` without a format parser.
fn plain_timestamp(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() < 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let micros = match &b[19..] {
        [] => 0,
        [b'.', frac @ ..] if (1..=6).contains(&frac.len()) => {
            let n = num(20..b.len())?;
            n * 10u32.pow(u32::try_from(6 - frac.len()).ok()?)
        }
        _ => return None,
    };
    let time = NaiveTime::from_hms_micro_opt(num(11..13)?, num(14..16)?, num(17..19)?, micros)?;
    Some(plain_date(&b[..10])?.and_time(time))
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    if let Some(d) = plain_date(s.as_bytes()) {
        return Some(d);
    }
    let (s, bc) = strip_bc(s);
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|_| !bc)
        .or_else(|| NaiveDate::parse_from_str(&normalise_year(s, bc), "%Y-%m-%d").ok())
}

fn date_days(s: &str) -> Option<i64> {
    match s {
        "infinity" => return Some(i64::from(i32::MAX)),
        "-infinity" => return Some(i64::from(i32::MIN)),
        _ => {}
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some(parse_date(s)?.signed_duration_since(epoch).num_days())
}

fn parse_naive_timestamp(s: &str) -> Option<NaiveDateTime> {
    if let Some(t) = plain_timestamp(s) {
        return Some(t);
    }
    let (s, bc) = strip_bc(s);
    let fmt = "%Y-%m-%d %H:%M:%S%.f";
    NaiveDateTime::parse_from_str(s, fmt)
        .ok()
        .filter(|_| !bc)
        .or_else(|| NaiveDateTime::parse_from_str(&normalise_year(s, bc), fmt).ok())
}

fn timestamp_micros(s: &str) -> Option<i64> {
    match s {
        "infinity" => Some(i64::MAX),
        "-infinity" => Some(i64::MIN),
        _ => Some(parse_naive_timestamp(s)?.and_utc().timestamp_micros()),
    }
}

/// `2026-11-23 10:00:00.5+00` → `2026-11-23T10:00:00.5Z`.
fn timestamptz_iso(s: &str) -> Option<String> {
    if s == "infinity" || s == "-infinity" {
        return None;
    }
    // Fast path: the fixed shape Postgres prints in UTC for years 1..9999.
    if let Some(body) = s.strip_suffix("+00")
        && body.len() >= 19
        && body.as_bytes()[10] == b' '
        && body.as_bytes()[4] == b'-'
        && !body[11..].contains(' ')
    {
        let mut iso = String::with_capacity(body.len() + 1);
        iso.push_str(&body[..10]);
        iso.push('T');
        iso.push_str(&body[11..]);
        iso.push('Z');
        return Some(iso);
    }
    let (s, bc) = strip_bc(s);
    let with_minutes = |s: &str| -> String {
        // `+05` / `+05:30` offsets: chrono's %:z wants minutes.
        let cut = s.rfind(['+', '-']).filter(|&i| i > 10);
        match cut {
            Some(i) if s[i..].len() == 3 => format!("{s}:00"),
            _ => s.to_owned(),
        }
    };
    let long_year = s.find('-').is_some_and(|i| i > 4);
    let s = if bc || long_year { normalise_year(s, bc) } else { s.to_owned() };
    let dt = DateTime::parse_from_str(&with_minutes(&s), "%Y-%m-%d %H:%M:%S%.f%:z").ok()?;
    Some(dt.to_utc().format("%Y-%m-%dT%H:%M:%S%.fZ").to_string())
}

fn time_micros(s: &str) -> Option<i64> {
    if s == "24:00:00" {
        return Some(86_400_000_000);
    }
    let t = NaiveTime::parse_from_str(s, "%H:%M:%S%.f").ok()?;
    Some(i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000))
}

/// One element of a parsed array literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    Null,
    Value(String),
    Nested(Vec<Element>),
}

/// Parses an array's text output (`{1,2}`, `{{a,"b c"},{NULL,"\""}}`, `[0:1]={x,y}`).
pub fn parse_array(s: &str) -> Option<Vec<Element>> {
    let s = match s.find("={") {
        Some(i) if s.starts_with('[') => &s[i + 1..],
        _ => s,
    };
    let mut chars = s.chars().peekable();
    let out = parse_level(&mut chars)?;
    chars.next().is_none().then_some(out)
}

fn parse_level(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Vec<Element>> {
    if chars.next()? != '{' {
        return None;
    }
    let mut elems = Vec::new();
    if chars.peek() == Some(&'}') {
        chars.next();
        return Some(elems);
    }
    loop {
        match chars.peek()? {
            '{' => elems.push(Element::Nested(parse_level(chars)?)),
            '"' => {
                chars.next();
                let mut v = String::new();
                loop {
                    match chars.next()? {
                        '\\' => v.push(chars.next()?),
                        '"' => break,
                        c => v.push(c),
                    }
                }
                elems.push(Element::Value(v));
            }
            _ => {
                let mut v = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '}' {
                        break;
                    }
                    if c == '\\' {
                        chars.next();
                        v.push(chars.next()?);
                    } else {
                        v.push(c);
                        chars.next();
                    }
                }
                let v = v.trim().to_owned();
                elems.push(if v.eq_ignore_ascii_case("NULL") { Element::Null } else { Element::Value(v) });
            }
        }
        match chars.next()? {
            ',' => continue,
            '}' => return Some(elems),
            _ => return None,
        }
    }
}

fn write_array(item: &Kind, elems: &[Element], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, e) in elems.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match e {
            Element::Null => out.extend_from_slice(b"null"),
            Element::Value(v) => item.write_json(v.as_bytes(), out),
            Element::Nested(inner) => write_array(item, inner, out),
        }
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_of(kind: &Kind, text: &str) -> Value {
        let mut out = Vec::new();
        kind.write_json(text.as_bytes(), &mut out);
        serde_json::from_slice(&out).unwrap_or_else(|e| Value::String(format!("INVALID JSON {e}: {out:?}")))
    }

    #[test]
    fn maps_scalars_as_debezium() {
        assert_eq!(json_of(&Kind::Bool, "t"), json!(true));
        assert_eq!(json_of(&Kind::Bool, "f"), json!(false));
        assert_eq!(json_of(&Kind::Int64, "-9223372036854775808"), json!(i64::MIN));
        assert_eq!(json_of(&Kind::Float64, "0.30000000000000004"), json!(0.300_000_000_000_000_04));
        assert_eq!(json_of(&Kind::Float64, "NaN"), json!("NaN"));
        assert_eq!(json_of(&Kind::Float32, "-Infinity"), json!("-Infinity"));
        assert_eq!(json_of(&Kind::Numeric, "12345678901234567.890"), json!("12345678901234567.890"));
        assert_eq!(json_of(&Kind::Numeric, "NaN"), json!("NaN"));
        assert_eq!(json_of(&Kind::Bytea, "\\x00ff10"), json!("AP8Q"));
        assert_eq!(json_of(&Kind::Json, r#"{"a": [1, "x\"y"]}"#), json!(r#"{"a": [1, "x\"y"]}"#));
        assert_eq!(json_of(&Kind::Text, "tab\there\nnew \u{1} é"), json!("tab\there\nnew \u{1} é"));
    }

    #[test]
    fn maps_times() {
        assert_eq!(json_of(&Kind::Date, "1970-01-02"), json!(1));
        assert_eq!(json_of(&Kind::Date, "1969-12-31"), json!(-1));
        assert_eq!(json_of(&Kind::Date, "infinity"), json!(i32::MAX));
        assert_eq!(json_of(&Kind::Date, "0001-01-01 BC"), json!(-719_528));
        assert_eq!(json_of(&Kind::Timestamp, "1970-01-01 00:00:01.000001"), json!(1_000_001));
        assert_eq!(json_of(&Kind::Timestamp, "-infinity"), json!(i64::MIN));
        assert_eq!(json_of(&Kind::TimestampTz, "2026-11-23 10:00:00.123456+00"), json!("2026-11-23T10:00:00.123456Z"));
        assert_eq!(json_of(&Kind::TimestampTz, "2026-11-23 10:00:00+00"), json!("2026-11-23T10:00:00Z"));
        assert_eq!(json_of(&Kind::TimestampTz, "2026-11-23 15:30:00+05:30"), json!("2026-11-23T10:00:00Z"));
        assert_eq!(json_of(&Kind::TimestampTz, "12026-11-23 10:00:00+00"), json!("+12026-11-23T10:00:00Z"));
        assert_eq!(json_of(&Kind::TimestampTz, "infinity"), json!("infinity"));
        assert_eq!(json_of(&Kind::Time, "00:00:01.5"), json!(1_500_000));
        assert_eq!(json_of(&Kind::Time, "24:00:00"), json!(86_400_000_000_i64));
        assert_eq!(json_of(&Kind::Interval, "P1Y2M3DT4H5M6S"), json!("P1Y2M3DT4H5M6S"));
    }

    #[test]
    fn maps_arrays() {
        let text = Kind::from_oid(1009, false);
        assert_eq!(
            json_of(&text, r#"{a,"b c",NULL,"\"q\"","NULL",""}"#),
            json!(["a", "b c", null, "\"q\"", "NULL", ""])
        );
        assert_eq!(json_of(&Kind::from_oid(1007, false), "{{1,2},{3,4}}"), json!([[1, 2], [3, 4]]));
        assert_eq!(json_of(&Kind::from_oid(1231, false), "{1.50,NaN}"), json!(["1.50", "NaN"]));
        assert_eq!(json_of(&Kind::from_oid(1007, false), "[0:1]={7,8}"), json!([7, 8]));
        assert_eq!(json_of(&text, "{}"), json!([]));
        assert_eq!(json_of(&Kind::from_oid(99_999, true), "{x,y}"), json!(["x", "y"]));
        assert_eq!(Kind::from_oid(99_999, false), Kind::Text, "enums and domains map as text");
    }

    #[test]
    fn connect_schemas_name_debezium_semantic_types() {
        let s = Kind::TimestampTz.connect_schema("created_at", false);
        assert_eq!(s["name"], "io.debezium.time.ZonedTimestamp");
        assert_eq!(s["type"], "string");
        assert_eq!(s["optional"], false);
        assert_eq!(Kind::from_oid(1009, false).connect_schema("tags", true)["items"]["type"], "string");
    }

    /// Postgres' array output quoting, for the property test.
    fn pg_array_literal(items: &[Option<String>]) -> String {
        let quoted: Vec<String> = items
            .iter()
            .map(|i| match i {
                None => "NULL".to_owned(),
                Some(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
            })
            .collect();
        format!("{{{}}}", quoted.join(","))
    }

    proptest! {
        #[test]
        fn strings_are_escaped_losslessly(s in any::<String>()) {
            let mut out = Vec::new();
            write_str(&s, &mut out);
            prop_assert_eq!(serde_json::from_slice::<String>(&out).ok(), Some(s));
        }

        #[test]
        fn text_arrays_round_trip(items in proptest::collection::vec(proptest::option::of(any::<String>()), 0..8)) {
            let lit = pg_array_literal(&items);
            let expect: Vec<Element> = items.iter().map(|i| match i {
                None => Element::Null,
                Some(s) => Element::Value(s.clone()),
            }).collect();
            prop_assert_eq!(parse_array(&lit), Some(expect));
        }

        #[test]
        fn timestamptz_matches_chrono(micros in -62_135_596_800_000_000_i64..253_402_300_799_000_000) {
            let dt = DateTime::from_timestamp_micros(micros).unwrap_or_default();
            let pg = dt.format("%Y-%m-%d %H:%M:%S%.f+00").to_string();
            let expect = dt.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string();
            prop_assert_eq!(timestamptz_iso(&pg), Some(expect));
            let naive = dt.format("%Y-%m-%d %H:%M:%S%.f").to_string();
            prop_assert_eq!(timestamp_micros(&naive), Some(micros));
        }

        #[test]
        fn dates_match_chrono(days in -719_162_i64..2_932_896) {
            let d = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default() + chrono::Duration::days(days);
            prop_assert_eq!(date_days(&d.format("%Y-%m-%d").to_string()), Some(days));
        }

        #[test]
        fn malformed_dates_and_timestamps_are_refused_not_misread(s in "[0-9: .-]{0,26}") {
            let chrono_ts = NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f").ok();
            if let Some(fast) = plain_timestamp(&s) {
                prop_assert_eq!(Some(fast), chrono_ts);
            }
            let chrono_date = NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok();
            if let Some(fast) = plain_date(s.as_bytes()) {
                prop_assert_eq!(Some(fast), chrono_date);
            }
        }
    }
}
