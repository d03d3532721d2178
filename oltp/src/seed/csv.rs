//! CSV encoding in the dialect Postgres' `COPY … WITH (FORMAT csv)` reads, and the [`Emitter`] that
//! cuts a table's rows into chunks of about [`CHUNK_BYTES`] for a [`Sink`].
//!
//! Encoding rules: fields separated by `,`, rows end with `\n`; NULL is an empty unquoted field; a text
//! value is quoted (with `""` for a quote) when it is empty or contains `,` `"` `\r` `\n` or `\` (the
//! backslash rule also covers the `\.` end-of-data marker); arrays are Postgres array literals
//! (`{a,"b c"}`); jsonb is JSON text; timestamps are RFC 3339 in UTC with milliseconds.

use chrono::{Datelike, NaiveDate};
use uuid::Uuid;

use super::schema::TABLES;
use super::time::Ms;
use crate::{Error, Result};

/// Chunks handed to a sink are cut at the first row end past this size.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// Receives the encoded rows, table segment by table segment.
///
/// Contract: `begin_table(t)`, one or more `data(t, chunk)` (each chunk holds whole rows), then
/// `end_table(t, rows)`; segments of different tables never interleave. A table may have several
/// segments per tenant (one per shard). `begin_tenant`/`end_tenant` bracket all segments of a tenant.
pub(crate) trait Sink {
    fn begin_tenant(&mut self, _id: Uuid, _slug: &str) -> Result<()> {
        Ok(())
    }
    fn begin_table(&mut self, table: usize) -> Result<()>;
    fn data(&mut self, table: usize, chunk: Vec<u8>) -> Result<()>;
    fn end_table(&mut self, table: usize, rows: u64) -> Result<()>;
    fn end_tenant(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Row and byte counts per table, in [`TABLES`] order.
pub(crate) type Counts = Vec<(u64, u64)>;

/// Encodes rows of one table at a time and hands full chunks to the sink.
pub(crate) struct Emitter<'s> {
    sink: &'s mut dyn Sink,
    table: usize,
    buf: Vec<u8>,
    segment_open: bool,
    segment_rows: u64,
    counts: Counts,
}

impl std::fmt::Debug for Emitter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").field("table", &self.table).finish_non_exhaustive()
    }
}

impl<'s> Emitter<'s> {
    pub fn new(sink: &'s mut dyn Sink) -> Self {
        Emitter {
            sink,
            table: 0,
            buf: Vec::with_capacity(CHUNK_BYTES + 64 * 1024),
            segment_open: false,
            segment_rows: 0,
            counts: vec![(0, 0); TABLES.len()],
        }
    }

    pub fn sink(&mut self) -> &mut dyn Sink {
        self.sink
    }

    /// Starts a segment of `table`; rows written until [`Emitter::finish`] belong to it.
    pub fn begin(&mut self, table: usize) {
        self.table = table;
        self.segment_rows = 0;
        self.segment_open = false;
        self.buf.clear();
    }

    /// A new row of the current table.
    pub fn row(&mut self) -> Row<'_, 's> {
        Row { em: self, fields: 0 }
    }

    /// Flushes the segment's last chunk and closes it (nothing is sent for an empty segment).
    pub fn finish(&mut self) -> Result<()> {
        self.flush()?;
        if self.segment_open {
            self.sink.end_table(self.table, self.segment_rows)?;
            self.segment_open = false;
        }
        Ok(())
    }

    pub fn into_counts(self) -> Counts {
        self.counts
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if !self.segment_open {
            self.sink.begin_table(self.table)?;
            self.segment_open = true;
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + 64 * 1024));
        self.counts[self.table].1 += chunk.len() as u64;
        self.sink.data(self.table, chunk)
    }
}

/// One row being written; fields are appended in column order, [`Row::end`] checks the count.
pub(crate) struct Row<'e, 's> {
    em: &'e mut Emitter<'s>,
    fields: usize,
}

impl Row<'_, '_> {
    fn sep(&mut self) -> &mut Vec<u8> {
        if self.fields > 0 {
            self.em.buf.push(b',');
        }
        self.fields += 1;
        &mut self.em.buf
    }

    pub fn null(mut self) -> Self {
        self.sep();
        self
    }

    pub fn uuid(mut self, id: Uuid) -> Self {
        let buf = self.sep();
        let mut tmp = [0u8; uuid::fmt::Hyphenated::LENGTH];
        buf.extend_from_slice(id.hyphenated().encode_lower(&mut tmp).as_bytes());
        self
    }

    pub fn opt_uuid(self, id: Option<Uuid>) -> Self {
        match id {
            Some(id) => self.uuid(id),
            None => self.null(),
        }
    }

    pub fn text(mut self, s: &str) -> Self {
        push_text(self.sep(), s);
        self
    }

    pub fn opt_text(self, s: Option<&str>) -> Self {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    pub fn int(mut self, v: i64) -> Self {
        let buf = self.sep();
        push_int(buf, v);
        self
    }

    pub fn opt_int(self, v: Option<i64>) -> Self {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    /// A fixed-point decimal `units / 10^scale` (money in cents: scale 2).
    pub fn dec(mut self, units: i64, scale: u32) -> Self {
        push_decimal(self.sep(), units, scale);
        self
    }

    pub fn money(self, cents: i64) -> Self {
        self.dec(cents, 2)
    }

    pub fn opt_money(self, cents: Option<i64>) -> Self {
        match cents {
            Some(c) => self.money(c),
            None => self.null(),
        }
    }

    pub fn float(mut self, v: f64) -> Self {
        let buf = self.sep();
        buf.extend_from_slice(format!("{v}").as_bytes());
        self
    }

    pub fn boolean(mut self, v: bool) -> Self {
        self.sep().push(if v { b't' } else { b'f' });
        self
    }

    pub fn ts(mut self, t: Ms) -> Self {
        push_timestamp(self.sep(), t);
        self
    }

    pub fn opt_ts(self, t: Option<Ms>) -> Self {
        match t {
            Some(t) => self.ts(t),
            None => self.null(),
        }
    }

    pub fn date(mut self, d: NaiveDate) -> Self {
        push_date(self.sep(), d);
        self
    }

    /// jsonb: the value's JSON text.
    pub fn json(self, v: &serde_json::Value) -> Self {
        self.text(&v.to_string())
    }

    /// text[]: a Postgres array literal.
    pub fn text_array<S: AsRef<str>>(self, items: &[S]) -> Self {
        self.text(&array_literal(items))
    }

    /// Ends the row; an error means a generator bug (wrong number of fields).
    pub fn end(self) -> Result<()> {
        let table = &TABLES[self.em.table];
        if self.fields != table.columns.len() {
            return Err(Error::Seed {
                message: format!(
                    "row of {} has {} fields, the table has {} columns",
                    table.name,
                    self.fields,
                    table.columns.len()
                ),
            });
        }
        self.em.buf.push(b'\n');
        self.em.segment_rows += 1;
        self.em.counts[self.em.table].0 += 1;
        if self.em.buf.len() >= CHUNK_BYTES {
            self.em.flush()?;
        }
        Ok(())
    }
}

/// Appends `s` as one CSV field, quoted when needed.
pub(crate) fn push_text(buf: &mut Vec<u8>, s: &str) {
    let needs_quotes = s.is_empty() || s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r' | b'\\'));
    if !needs_quotes {
        buf.extend_from_slice(s.as_bytes());
        return;
    }
    buf.push(b'"');
    for b in s.bytes() {
        if b == b'"' {
            buf.push(b'"');
        }
        buf.push(b);
    }
    buf.push(b'"');
}

/// A Postgres array literal of text elements: `{a,"b c","say \"hi\""}`.
pub(crate) fn array_literal<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let s = item.as_ref();
        let plain = !s.is_empty()
            && !s.eq_ignore_ascii_case("null")
            && !s.chars().any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
        if plain {
            out.push_str(s);
            continue;
        }
        out.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

fn push_int(buf: &mut Vec<u8>, v: i64) {
    let mut tmp = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        buf.push(b'-');
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_decimal(buf: &mut Vec<u8>, units: i64, scale: u32) {
    let pow = 10u64.pow(scale);
    if units < 0 {
        buf.push(b'-');
    }
    let abs = units.unsigned_abs();
    push_int(buf, (abs / pow) as i64);
    if scale > 0 {
        buf.push(b'.');
        let frac = abs % pow;
        let digits = format!("{frac:0width$}", width = scale as usize);
        buf.extend_from_slice(digits.as_bytes());
    }
}

fn push_2(buf: &mut Vec<u8>, v: u32) {
    buf.push(b'0' + (v / 10 % 10) as u8);
    buf.push(b'0' + (v % 10) as u8);
}

fn push_date(buf: &mut Vec<u8>, d: NaiveDate) {
    let y = d.year();
    buf.extend_from_slice(format!("{y:04}").as_bytes());
    buf.push(b'-');
    push_2(buf, d.month());
    buf.push(b'-');
    push_2(buf, d.day());
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn push_timestamp(buf: &mut Vec<u8>, t: Ms) {
    let days = t.div_euclid(86_400_000);
    let in_day = t.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    buf.extend_from_slice(format!("{y:04}").as_bytes());
    buf.push(b'-');
    push_2(buf, m);
    buf.push(b'-');
    push_2(buf, d);
    buf.push(b'T');
    let secs = (in_day / 1000) as u32;
    push_2(buf, secs / 3600);
    buf.push(b':');
    push_2(buf, secs / 60 % 60);
    buf.push(b':');
    push_2(buf, secs % 60);
    buf.push(b'.');
    let ms = (in_day % 1000) as u32;
    buf.push(b'0' + (ms / 100) as u8);
    push_2(buf, ms % 100);
    buf.push(b'Z');
}

/// Proleptic Gregorian (year, month, day) of a count of days since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Parses Postgres-dialect CSV: `None` for an empty unquoted field (NULL), `Some("")` for `""`.
    pub(crate) fn parse_csv(data: &str) -> Vec<Vec<Option<String>>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let (mut quoted, mut in_quotes, mut chars) = (false, false, data.chars().peekable());
        while let Some(c) = chars.next() {
            if in_quotes {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        field.push('"');
                        chars.next();
                    }
                    '"' => in_quotes = false,
                    _ => field.push(c),
                }
                continue;
            }
            match c {
                '"' => (in_quotes, quoted) = (true, true),
                ',' | '\n' => {
                    let value = std::mem::take(&mut field);
                    row.push(if value.is_empty() && !quoted { None } else { Some(value) });
                    quoted = false;
                    if c == '\n' {
                        rows.push(std::mem::take(&mut row));
                    }
                }
                _ => field.push(c),
            }
        }
        rows
    }

    struct Collect(Vec<u8>);
    impl Sink for Collect {
        fn begin_table(&mut self, _: usize) -> Result<()> {
            Ok(())
        }
        fn data(&mut self, _: usize, chunk: Vec<u8>) -> Result<()> {
            self.0.extend_from_slice(&chunk);
            Ok(())
        }
        fn end_table(&mut self, _: usize, _: u64) -> Result<()> {
            Ok(())
        }
    }

    fn encode_tags_row(values: &[Option<String>]) -> String {
        let mut sink = Collect(Vec::new());
        let mut em = Emitter::new(&mut sink);
        em.begin(crate::seed::schema::TAGS);
        let mut row = em.row();
        for v in values {
            row = row.opt_text(v.as_deref());
        }
        assert!(row.end().is_ok());
        assert!(em.finish().is_ok());
        String::from_utf8(sink.0).unwrap_or_default()
    }

    #[test]
    fn tricky_strings_are_quoted() {
        let vals = ["a,b", "say \"hi\"", "two\nlines", "", "\\.", "plain"].map(|s| Some(s.to_owned()));
        let csv = encode_tags_row(&vals);
        assert_eq!(csv, "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"\",\"\\.\",plain\n");
        assert_eq!(parse_csv(&csv), vec![vals.to_vec()]);
    }

    #[test]
    fn wrong_field_count_is_an_error() {
        let mut sink = Collect(Vec::new());
        let mut em = Emitter::new(&mut sink);
        em.begin(crate::seed::schema::TAGS);
        let err = em.row().text("only one").end();
        assert!(matches!(err, Err(Error::Seed { .. })));
    }

    #[test]
    fn timestamps_and_decimals() {
        let mut buf = Vec::new();
        push_timestamp(&mut buf, 1_790_812_800_123); // 2026-10-01T00:00:00.123Z
        assert_eq!(String::from_utf8_lossy(&buf), "2026-10-01T00:00:00.123Z");
        buf.clear();
        push_timestamp(&mut buf, 951_782_400_000 + 86_399_999); // leap day 2000
        assert_eq!(String::from_utf8_lossy(&buf), "2000-02-29T23:59:59.999Z");
        buf.clear();
        push_decimal(&mut buf, 123_456, 2);
        push_decimal(&mut buf, 5, 2);
        push_decimal(&mut buf, 12_345_678_901, 10);
        assert_eq!(String::from_utf8_lossy(&buf), "1234.560.051.2345678901");
    }

    #[test]
    fn array_literals() {
        assert_eq!(array_literal(&["a", "b"]), "{a,b}");
        assert_eq!(array_literal::<&str>(&[]), "{}");
        assert_eq!(array_literal(&["x y", "NULL", "q\"\\", ""]), r#"{"x y","NULL","q\"\\",""}"#);
    }

    proptest! {
        #[test]
        fn csv_roundtrips_any_text(values in proptest::collection::vec(proptest::option::of(".*"), 6)) {
            let csv = encode_tags_row(&values);
            let parsed = parse_csv(&csv);
            prop_assert_eq!(parsed, vec![values]);
        }

        #[test]
        fn timestamps_match_chrono(ms in 0i64..4_102_444_800_000) {
            let mut buf = Vec::new();
            push_timestamp(&mut buf, ms);
            let expected = chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default();
            prop_assert_eq!(String::from_utf8_lossy(&buf), expected);
        }
    }
}
