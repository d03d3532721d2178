//! Writes change events as bytes: the Debezium envelope of [`crate::event`] serialised straight from
//! decoded tuples (no intermediate maps), the primary-key message key, and — when asked — the Kafka
//! Connect JsonConverter wrapping `{"schema": …, "payload": …}`. Masked columns are replaced by a keyed
//! hash here, so a masked value never reaches Kafka.

use std::borrow::Cow;
use std::io::Write as _;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::event::{CONNECTOR, Op, SnapshotMark};
use crate::lsn::Lsn;
use crate::value::{Kind, write_str};

/// What Debezium publishes for an unchanged TOAST value it could not read.
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

/// One column as the encoder sees it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub nullable: bool,
    /// Replace values with a keyed hash.
    pub masked: bool,
    /// `"name":` pre-escaped.
    json_name: Vec<u8>,
}

impl Column {
    pub fn new(name: &str, kind: Kind, nullable: bool, masked: bool) -> Self {
        let mut json_name = Vec::with_capacity(name.len() + 3);
        write_str(name, &mut json_name);
        json_name.push(b':');
        Column { name: name.to_owned(), kind, nullable, masked, json_name }
    }
}

/// A published table: its columns, its key, its topic, and the pieces of JSON every event repeats.
#[derive(Debug, Clone)]
pub struct Relation {
    pub schema: String,
    pub table: String,
    pub topic: String,
    pub columns: Vec<Column>,
    /// Indexes of the primary-key columns (the message key).
    pub key: Vec<usize>,
    /// `"schema":"…","table":"…"` for `source`.
    source_names: Vec<u8>,
    /// `{"schema":…,"payload":` for the value and the key, when schemas are on.
    value_schema_prefix: Option<Vec<u8>>,
    key_schema_prefix: Option<Vec<u8>>,
}

/// Settings that shape every event.
#[derive(Debug, Clone)]
pub struct EncoderSettings {
    /// `source.name`: the logical server name (Debezium's topic prefix).
    pub server_name: String,
    /// `source.db`.
    pub database: String,
    /// `source.version`.
    pub version: String,
    /// Wrap keys and values as Kafka Connect's JsonConverter with `schemas.enable=true` does.
    pub with_schemas: bool,
    /// Key of the masking hash (HMAC-SHA-256); masked columns need one.
    pub mask_key: Option<Vec<u8>>,
}

impl Relation {
    pub fn new(
        settings: &EncoderSettings,
        schema: &str,
        table: &str,
        topic: String,
        columns: Vec<Column>,
        key: Vec<usize>,
    ) -> Self {
        let mut source_names = Vec::new();
        source_names.extend_from_slice(b"\"schema\":");
        write_str(schema, &mut source_names);
        source_names.extend_from_slice(b",\"table\":");
        write_str(table, &mut source_names);
        let mut rel = Relation {
            schema: schema.to_owned(),
            table: table.to_owned(),
            topic,
            columns,
            key,
            source_names,
            value_schema_prefix: None,
            key_schema_prefix: None,
        };
        if settings.with_schemas {
            let prefix = |schema: Value| {
                let mut p = b"{\"schema\":".to_vec();
                p.extend_from_slice(schema.to_string().as_bytes());
                p.extend_from_slice(b",\"payload\":");
                p
            };
            rel.value_schema_prefix = Some(prefix(rel.envelope_schema(settings)));
            rel.key_schema_prefix = Some(prefix(rel.key_schema(settings)));
        }
        rel
    }

    fn row_schema(&self, settings: &EncoderSettings, name: &str, cols: &[&Column]) -> Value {
        json!({
            "type": "struct",
            "optional": true,
            "name": format!("{}.{}.{}.{name}", settings.server_name, self.schema, self.table),
            "fields": cols.iter().map(|c| {
                if c.masked { json!({"type": "string", "optional": c.nullable, "field": c.name}) }
                else { c.kind.connect_schema(&c.name, c.nullable) }
            }).collect::<Vec<_>>(),
        })
    }

    fn key_schema(&self, settings: &EncoderSettings) -> Value {
        let cols: Vec<&Column> = self.key.iter().filter_map(|&i| self.columns.get(i)).collect();
        let mut s = self.row_schema(settings, "Key", &cols);
        s["optional"] = Value::Bool(false);
        s
    }

    /// The envelope's Connect schema, as Debezium's PostgreSQL connector declares it.
    fn envelope_schema(&self, settings: &EncoderSettings) -> Value {
        let cols: Vec<&Column> = self.columns.iter().collect();
        let mut before = self.row_schema(settings, "Value", &cols);
        before["field"] = json!("before");
        let mut after = before.clone();
        after["field"] = json!("after");
        let f = |t: &str, field: &str, optional: bool| json!({"type": t, "optional": optional, "field": field});
        json!({
            "type": "struct",
            "optional": false,
            "name": format!("{}.{}.{}.Envelope", settings.server_name, self.schema, self.table),
            "version": 1,
            "fields": [
                before,
                after,
                {
                    "type": "struct", "optional": false, "field": "source",
                    "name": "io.debezium.connector.postgresql.Source",
                    "fields": [
                        f("string", "version", false), f("string", "connector", false), f("string", "name", false),
                        f("int64", "ts_ms", false),
                        {"type": "string", "optional": true, "field": "snapshot", "name": "io.debezium.data.Enum",
                         "version": 1, "parameters": {"allowed": "true,last_in_data_collection,false,incremental"},
                         "default": "false"},
                        f("string", "db", false), f("string", "schema", false), f("string", "table", false),
                        f("int64", "txId", true), f("int64", "lsn", true), f("int64", "commit_lsn", true),
                    ],
                },
                f("string", "op", false),
                f("int64", "ts_ms", true),
                {
                    "type": "struct", "optional": true, "field": "transaction",
                    "name": "event.block", "version": 1,
                    "fields": [f("string", "id", false), f("int64", "total_order", false), f("int64", "data_collection_order", false)],
                },
            ],
        })
    }
}

/// A row's values as decoded (text output per column; `None` = NULL).
pub trait Row {
    /// `Err(())` = unchanged TOAST value that was not sent.
    #[allow(clippy::result_unit_err)]
    fn get(&self, i: usize) -> Result<Option<Cow<'_, [u8]>>, ()>;
}

impl Row for Vec<crate::pgoutput::Datum<'_>> {
    fn get(&self, i: usize) -> Result<Option<Cow<'_, [u8]>>, ()> {
        use crate::pgoutput::Datum;
        match self.as_slice().get(i) {
            None | Some(Datum::Null) => Ok(None),
            Some(Datum::UnchangedToast) => Err(()),
            Some(Datum::Text(b) | Datum::Binary(b)) => Ok(Some(Cow::Borrowed(b))),
        }
    }
}

impl Row for Vec<Option<Cow<'_, [u8]>>> {
    fn get(&self, i: usize) -> Result<Option<Cow<'_, [u8]>>, ()> {
        Ok(self.as_slice().get(i).and_then(|v| v.as_deref().map(Cow::Borrowed)))
    }
}

/// Where an event sits: the values of `source` and `transaction` that are not per-table.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    pub snapshot: SnapshotMark,
    pub ts_ms: i64,
    pub tx_id: Option<i64>,
    pub lsn: Lsn,
    pub commit_lsn: Lsn,
    /// `(transaction id, total_order, data_collection_order)`.
    pub transaction: Option<(&'a str, u64, u64)>,
}

/// Reusable buffers and settings for writing events.
#[derive(Debug)]
pub struct Encoder {
    pub settings: EncoderSettings,
    mask: Option<Hmac<Sha256>>,
}

impl Encoder {
    pub fn new(settings: EncoderSettings) -> Self {
        let mask = settings.mask_key.as_deref().and_then(|k| Hmac::<Sha256>::new_from_slice(k).ok());
        Encoder { settings, mask }
    }

    fn write_value(&self, col: &Column, v: &[u8], out: &mut Vec<u8>) {
        match (&self.mask, col.masked) {
            (Some(mac), true) => {
                let mut mac = mac.clone();
                mac.update(v);
                out.push(b'"');
                out.extend_from_slice(hex::encode(mac.finalize().into_bytes()).as_bytes());
                out.push(b'"');
            }
            _ => col.kind.write_json(v, out),
        }
    }

    /// Writes a row object. An unchanged TOAST value is taken from `fallback` (the old row, complete
    /// under REPLICA IDENTITY FULL); without one it is Debezium's placeholder, never null.
    pub fn write_row(&self, rel: &Relation, row: &dyn Row, fallback: Option<&dyn Row>, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, col) in rel.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&col.json_name);
            let value = match row.get(i) {
                Ok(v) => Ok(v),
                Err(()) => fallback.map_or(Err(()), |f| f.get(i)),
            };
            match value {
                Ok(None) => out.extend_from_slice(b"null"),
                Ok(Some(v)) => self.write_value(col, &v, out),
                Err(()) => write_str(UNAVAILABLE_VALUE, out),
            }
        }
        out.push(b'}');
    }

    /// The message key: `{"<pk>": value, …}` from the row. `None` when the table has no key.
    pub fn write_key(&self, rel: &Relation, row: &dyn Row, out: &mut Vec<u8>) -> bool {
        if rel.key.is_empty() {
            return false;
        }
        if let Some(p) = &rel.key_schema_prefix {
            out.extend_from_slice(p);
        }
        out.push(b'{');
        for (n, &i) in rel.key.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let Some(col) = rel.columns.get(i) else { continue };
            out.extend_from_slice(&col.json_name);
            match row.get(i) {
                Ok(Some(v)) => self.write_value(col, &v, out),
                _ => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        if rel.key_schema_prefix.is_some() {
            out.push(b'}');
        }
        true
    }

    /// Writes the whole envelope.
    #[allow(clippy::too_many_arguments)]
    pub fn write_event(
        &self,
        rel: &Relation,
        op: Op,
        before: Option<&dyn Row>,
        after: Option<&dyn Row>,
        pos: &Position<'_>,
        now_ms: i64,
        out: &mut Vec<u8>,
    ) {
        if let Some(p) = &rel.value_schema_prefix {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(b"{\"before\":");
        match before {
            Some(b) => self.write_row(rel, b, None, out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"after\":");
        match after {
            Some(a) => self.write_row(rel, a, before, out),
            None => out.extend_from_slice(b"null"),
        }
        let s = &self.settings;
        out.extend_from_slice(b",\"source\":{\"version\":");
        write_str(&s.version, out);
        let _ = write!(out, ",\"connector\":\"{CONNECTOR}\",\"name\":");
        write_str(&s.server_name, out);
        let _ = write!(out, ",\"ts_ms\":{},\"snapshot\":\"{}\",\"db\":", pos.ts_ms, pos.snapshot.as_str());
        write_str(&s.database, out);
        out.push(b',');
        out.extend_from_slice(&rel.source_names);
        match pos.tx_id {
            Some(x) => {
                let _ = write!(out, ",\"txId\":{x}");
            }
            None => out.extend_from_slice(b",\"txId\":null"),
        }
        let _ = write!(out, ",\"lsn\":{},\"commit_lsn\":{}}}", pos.lsn.as_i64(), pos.commit_lsn.as_i64());
        let op = match op {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        };
        let _ = write!(out, ",\"op\":\"{op}\",\"ts_ms\":{now_ms},\"transaction\":");
        match pos.transaction {
            Some((id, total, per_table)) => {
                out.extend_from_slice(b"{\"id\":");
                write_str(id, out);
                let _ = write!(out, ",\"total_order\":{total},\"data_collection_order\":{per_table}}}");
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        if rel.value_schema_prefix.is_some() {
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ChangeEvent;
    use crate::pgoutput::Datum;

    fn settings(with_schemas: bool) -> EncoderSettings {
        EncoderSettings {
            server_name: "orbas".into(),
            database: "crm".into(),
            version: "0.1.0".into(),
            with_schemas,
            mask_key: Some(b"k".to_vec()),
        }
    }

    fn accounts(s: &EncoderSettings) -> Relation {
        Relation::new(
            s,
            "public",
            "accounts",
            "orbas.cdc.public.accounts".into(),
            vec![
                Column::new("id", Kind::Uuid, false, false),
                Column::new("amount", Kind::Numeric, true, false),
                Column::new("notes", Kind::Text, true, false),
                Column::new("email", Kind::Text, true, true),
            ],
            vec![0],
        )
    }

    const ID: &[u8] = b"0190b3c4-0000-7000-8000-000000000001";

    #[test]
    fn writes_the_debezium_envelope() {
        let s = settings(false);
        let enc = Encoder::new(s.clone());
        let rel = accounts(&s);
        let old = vec![Datum::Text(ID), Datum::Text(b"10.50"), Datum::Text(b"long text"), Datum::Text(b"a@b.c")];
        let new = vec![Datum::Text(ID), Datum::Text(b"12.00"), Datum::UnchangedToast, Datum::Text(b"a@b.c")];
        let pos = Position {
            snapshot: SnapshotMark::False,
            ts_ms: 1_764_000_000_000,
            tx_id: Some(571),
            lsn: Lsn(100),
            commit_lsn: Lsn(200),
            transaction: Some(("571:200", 3, 2)),
        };
        let mut out = Vec::new();
        enc.write_event(&rel, Op::Update, Some(&old), Some(&new), &pos, 5, &mut out);
        let e: ChangeEvent = match serde_json::from_slice(&out) {
            Ok(e) => e,
            Err(err) => panic!("not an envelope: {err}: {}", String::from_utf8_lossy(&out)),
        };
        assert_eq!(e.op, Op::Update);
        let after = e.after.unwrap_or_default();
        assert_eq!(after["amount"], json!("12.00"), "numeric keeps its scale");
        assert_eq!(after["notes"], json!("long text"), "unchanged TOAST comes from the old row");
        assert_ne!(after["email"], json!("a@b.c"), "masked");
        assert_eq!(after["email"].as_str().map(str::len), Some(64));
        assert_eq!(e.source.lsn, Some(100));
        assert_eq!(e.source.commit_lsn, Some(200));
        assert_eq!(e.source.tx_id, Some(571));
        assert_eq!(e.transaction.map(|t| (t.total_order, t.data_collection_order)), Some((3, 2)));

        // Without an old row the placeholder stands in, never null.
        let mut out = Vec::new();
        enc.write_event(&rel, Op::Update, None, Some(&new), &pos, 5, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["after"]["notes"], json!(UNAVAILABLE_VALUE));

        let mut key = Vec::new();
        assert!(enc.write_key(&rel, &new, &mut key));
        assert_eq!(
            serde_json::from_slice::<Value>(&key).ok(),
            Some(json!({"id": "0190b3c4-0000-7000-8000-000000000001"}))
        );
    }

    #[test]
    fn wraps_with_connect_schemas() {
        let s = settings(true);
        let enc = Encoder::new(s.clone());
        let rel = accounts(&s);
        let row: Vec<Option<Cow<'_, [u8]>>> = vec![Some(Cow::Borrowed(ID)), None, None, None];
        let pos = Position {
            snapshot: SnapshotMark::True,
            ts_ms: 1,
            tx_id: None,
            lsn: Lsn(7),
            commit_lsn: Lsn(7),
            transaction: None,
        };
        let mut out = Vec::new();
        enc.write_event(&rel, Op::Read, None, Some(&row), &pos, 2, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["schema"]["name"], "orbas.public.accounts.Envelope");
        assert_eq!(v["schema"]["fields"][1]["fields"][0]["name"], "io.debezium.data.Uuid");
        assert_eq!(v["payload"]["op"], "r");
        assert_eq!(v["payload"]["source"]["snapshot"], "true");
        assert_eq!(v["payload"]["after"]["amount"], Value::Null);
        let mut key = Vec::new();
        enc.write_key(&rel, &row, &mut key);
        let k: Value = serde_json::from_slice(&key).unwrap_or_default();
        assert_eq!(k["schema"]["fields"][0]["field"], "id");
        assert_eq!(k["payload"]["id"], json!("0190b3c4-0000-7000-8000-000000000001"));
    }
}
