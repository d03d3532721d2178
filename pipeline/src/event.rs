//! The change-event contract: what every message on the CDC topics looks like. The value is the
//! Debezium change-event envelope (`before`, `after`, `source`, `op`, `ts_ms`, `transaction`), so Kafka
//! Connect sinks and tools that read Debezium's PostgreSQL connector read our topics unchanged; the key
//! is the row's primary key; a delete is followed by a tombstone (null value, same key) for compaction.
//! Transaction boundaries go to their own topic as Debezium's BEGIN/END events with per-table counts.
//!
//! This module is the schema only — no I/O. Values inside `before`/`after` are already-mapped JSON
//! (numeric as decimal strings with their scale, timestamps as ISO-8601, …).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Debezium's name for the connector, in `source.connector`.
pub const CONNECTOR: &str = "postgresql";
/// Topic prefix of the per-table topics (`orbas.cdc.<schema>.<table>`).
pub const TOPIC_PREFIX: &str = "orbas.cdc";
/// The transaction-metadata topic.
pub const TRANSACTION_TOPIC: &str = "orbas.cdc.transaction";
/// Domain events the application emits with `pg_logical_emit_message(true, 'orbas', …)`.
pub const EVENTS_TOPIC: &str = "orbas.events";

/// The topic of one table's changes.
pub fn topic_for(schema: &str, table: &str) -> String {
    format!("{TOPIC_PREFIX}.{schema}.{table}")
}

/// What happened to the row (`op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "c")]
    Create,
    #[serde(rename = "u")]
    Update,
    #[serde(rename = "d")]
    Delete,
    /// Read during a snapshot.
    #[serde(rename = "r")]
    Read,
    #[serde(rename = "t")]
    Truncate,
}

/// Whether an event comes from a snapshot (`source.snapshot`), with Debezium 2's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMark {
    /// Streamed from the replication slot.
    False,
    /// Read by the snapshot.
    True,
    /// The last row the snapshot read from its table.
    LastInDataCollection,
    /// Read by an on-demand re-snapshot of one table while streaming.
    Incremental,
}

impl SnapshotMark {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMark::False => "false",
            SnapshotMark::True => "true",
            SnapshotMark::LastInDataCollection => "last_in_data_collection",
            SnapshotMark::Incremental => "incremental",
        }
    }
}

/// Where the change came from (`source`), as Debezium's PostgreSQL connector writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The producer's version.
    pub version: String,
    pub connector: String,
    /// The logical server name (the topic prefix).
    pub name: String,
    /// Commit time of the transaction, milliseconds since the epoch.
    pub ts_ms: i64,
    pub snapshot: SnapshotMark,
    pub db: String,
    pub schema: String,
    pub table: String,
    #[serde(rename = "txId")]
    pub tx_id: Option<i64>,
    /// LSN of the change (of the snapshot's consistent point for snapshot reads).
    pub lsn: Option<i64>,
    /// LSN of the transaction's commit: with `lsn`, the order consumers de-duplicate by after a
    /// restart replays a transaction (events with `(commit_lsn, lsn)` at or below the last one seen
    /// are repeats).
    #[serde(default)]
    pub commit_lsn: Option<i64>,
}

/// The event's place in its transaction (`transaction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxPosition {
    /// `"<txid>:<commit lsn>"`, the id the BEGIN/END events carry.
    pub id: String,
    /// Position among all events of the transaction, from 1.
    pub total_order: u64,
    /// Position among the events of the same table in the transaction, from 1.
    pub data_collection_order: u64,
}

/// One change of one row: the message value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub before: Option<Map<String, Value>>,
    pub after: Option<Map<String, Value>>,
    pub source: Source,
    pub op: Op,
    /// When the producer processed the event, milliseconds since the epoch.
    pub ts_ms: i64,
    pub transaction: Option<TxPosition>,
}

impl ChangeEvent {
    /// The message key: the primary-key columns of the row (from `after`, or `before` for deletes).
    pub fn key(&self, primary_key: &[&str]) -> Option<Map<String, Value>> {
        let row = self.after.as_ref().or(self.before.as_ref())?;
        primary_key.iter().map(|c| Some(((*c).to_owned(), row.get(*c)?.clone()))).collect()
    }
}

/// Transaction boundary events on [`TRANSACTION_TOPIC`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "UPPERCASE")]
pub enum TransactionEvent {
    Begin { id: String, ts_ms: i64 },
    End { id: String, ts_ms: i64, event_count: u64, data_collections: Vec<CollectionCount> },
}

/// How many events of one table (`"<schema>.<table>"`) a transaction produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionCount {
    pub data_collection: String,
    pub event_count: u64,
}

/// The transaction id Debezium uses: `"<txid>:<commit lsn>"`.
pub fn transaction_id(tx_id: i64, commit_lsn: i64) -> String {
    format!("{tx_id}:{commit_lsn}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn update() -> ChangeEvent {
        let row = |name: &str| json!({"id": "0190b3c4-0000-7000-8000-000000000001", "name": name});
        ChangeEvent {
            before: row("Acme").as_object().cloned(),
            after: row("Acme Corp").as_object().cloned(),
            source: Source {
                version: "0.1.0".into(),
                connector: CONNECTOR.into(),
                name: "orbas".into(),
                ts_ms: 1_764_000_000_000,
                snapshot: SnapshotMark::False,
                db: "orbas".into(),
                schema: "public".into(),
                table: "accounts".into(),
                tx_id: Some(571),
                lsn: Some(53_195_832),
                commit_lsn: Some(53_195_900),
            },
            op: Op::Update,
            ts_ms: 1_764_000_000_123,
            transaction: Some(TxPosition {
                id: transaction_id(571, 53_195_832),
                total_order: 1,
                data_collection_order: 1,
            }),
        }
    }

    /// The shape Debezium documents for its PostgreSQL connector (field names, op codes, txId casing).
    #[test]
    fn serialises_as_debezium_does() {
        let v = serde_json::to_value(update()).unwrap_or_default();
        assert_eq!(v["op"], "u");
        assert_eq!(v["source"]["connector"], "postgresql");
        assert_eq!(v["source"]["snapshot"], "false");
        assert_eq!(v["source"]["txId"], 571);
        assert_eq!(v["transaction"]["id"], "571:53195832");
        assert_eq!(v["before"]["name"], "Acme");
        assert_eq!(v["after"]["name"], "Acme Corp");
        let end = TransactionEvent::End {
            id: "571:53195832".into(),
            ts_ms: 1,
            event_count: 2,
            data_collections: vec![CollectionCount { data_collection: "public.accounts".into(), event_count: 2 }],
        };
        let e = serde_json::to_value(end).unwrap_or_default();
        assert_eq!(e["status"], "END");
        assert_eq!(e["data_collections"][0]["event_count"], 2);
        assert_eq!(topic_for("public", "accounts"), "orbas.cdc.public.accounts");
    }

    #[test]
    fn keys_come_from_after_or_before() {
        let mut e = update();
        assert_eq!(
            e.key(&["id"]).and_then(|k| k.get("id").cloned()),
            Some(json!("0190b3c4-0000-7000-8000-000000000001"))
        );
        e.after = None;
        e.op = Op::Delete;
        assert!(e.key(&["id"]).is_some(), "deletes are keyed by the old row");
        assert!(e.key(&["missing"]).is_none());
    }

    proptest! {
        #[test]
        fn events_round_trip(name in ".{0,30}", total in 1u64..1000, lsn in 0i64..i64::MAX, op in 0usize..5) {
            let mut e = update();
            if let Some(m) = e.after.as_mut() {
                m.insert("name".into(), json!(name));
            }
            e.op = [Op::Create, Op::Update, Op::Delete, Op::Read, Op::Truncate][op];
            e.source.lsn = Some(lsn);
            if let Some(t) = e.transaction.as_mut() {
                t.total_order = total;
            }
            let text = serde_json::to_string(&e).map_err(|x| TestCaseError::fail(x.to_string()))?;
            let back: ChangeEvent = serde_json::from_str(&text).map_err(|x| TestCaseError::fail(x.to_string()))?;
            prop_assert_eq!(back, e);
        }
    }
}
