//! Re-snapshotting single tables while the stream runs (`orbas pipeline resnapshot TABLE`), after
//! DBLog's watermark idea, with one change that makes it exact on Postgres.
//!
//! A request is a row in `orbas.cdc_resnapshots` plus a transactional logical message
//! ([`SIGNAL_PREFIX`]) in the same transaction, so the service learns of it at its place in the
//! stream (and from the table on start, for requests made while it was down). The service then
//! copies the table in primary-key order, one chunk at a time, between stream frames:
//!
//! 1. in a repeatable-read transaction, note the snapshot (`pg_current_snapshot()`) and `COPY` the
//!    next `chunk_size` rows after the last key into memory;
//! 2. write a non-transactional logical message, the *high watermark*, into the WAL;
//! 3. keep streaming. A change to a key of the chunk made by a transaction the chunk's snapshot
//!    does **not** see is newer than the copied row, so the row is dropped from the chunk;
//! 4. when the watermark arrives, every transaction the snapshot saw has already been streamed
//!    (it committed before the snapshot, hence before the watermark), so the rows still in the
//!    chunk go out as `op: r`, `snapshot: incremental` events, at the watermark's LSN.
//!
//! DBLog decides by a low watermark written before the read, which on Postgres has a race: a
//! transaction whose commit record precedes the low watermark may still be invisible to the read
//! (the commit record is written, then flushed, before the transaction becomes visible). Deciding by
//! the read's own snapshot has no such window and needs no low watermark.
//!
//! Progress (the last key of each chunk) is recorded once Kafka acknowledged the chunk, so a crash
//! repeats at most the unacknowledged chunks — as more `r` events, which readers treat as upserts.
//! Watermarks carry a unique id: a watermark replayed after a restart matches no chunk and is ignored.

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use sqlx::PgPool;
use tracing::{info, warn};

use crate::catalog::{self, Selection};
use crate::copy_text::{LineBuffer, split_row};
use crate::encode::{Encoder, Relation};
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::replication::quote_ident;
use crate::snapshot::begin_read;

/// Logical-message prefix of re-snapshot requests.
pub const SIGNAL_PREFIX: &str = "orbas.signal";
/// Logical-message prefix of chunk watermarks.
pub const WATERMARK_PREFIX: &str = "orbas.watermark";
/// Rows per chunk unless the request says otherwise (Debezium's default).
pub const DEFAULT_CHUNK_SIZE: i32 = 1024;

/// Asks the service reading `slot` to re-snapshot `schema.table`; returns the request's id.
/// The table must be in `publication` and have a primary key (chunks are key ranges).
pub async fn request(
    pool: &PgPool,
    publication: &str,
    slot: &str,
    schema: &str,
    table: &str,
    chunk_size: i32,
) -> Result<i64> {
    if !(1..=1_000_000).contains(&chunk_size) {
        return Err(Error::Config(format!("chunk size {chunk_size} is outside 1..=1000000")));
    }
    let oid = published_oid(pool, publication, schema, table).await?;
    let mut conn = pool.acquire().await?;
    let cols = catalog::columns(&mut conn, oid).await?;
    if !cols.iter().any(|c| c.key_position.is_some()) {
        return Err(Error::Config(format!("{schema}.{table} has no primary key: it cannot be copied in key order")));
    }
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO orbas.cdc_resnapshots (slot_name, schema_name, table_name, chunk_size)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(slot)
    .bind(schema)
    .bind(table)
    .bind(chunk_size)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_logical_emit_message(true, $1, $2)")
        .bind(SIGNAL_PREFIX)
        .bind(serde_json::json!({ "resnapshot": id, "slot": slot }).to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// A request as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestStatus {
    pub schema: String,
    pub table: String,
    pub chunks: i32,
    pub rows: i64,
    pub completed: bool,
    pub error: Option<String>,
}

pub async fn status(pool: &PgPool, id: i64) -> Result<Option<RequestStatus>> {
    let row: Option<(String, String, i32, i64, bool, Option<String>)> = sqlx::query_as(
        "SELECT schema_name, table_name, chunks, rows, completed_at IS NOT NULL, error
           FROM orbas.cdc_resnapshots WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(schema, table, chunks, rows, completed, error)| RequestStatus {
        schema,
        table,
        chunks,
        rows,
        completed,
        error,
    }))
}

/// Full re-snapshot: forgets the slot's initial snapshot and drops the slot, so the next start of the
/// service creates both anew. Refused while a service streams from the slot.
pub async fn reset_all(pool: &PgPool, slot: &str) -> Result<()> {
    if let Some(s) = crate::replication::slot_state(pool, slot).await?
        && let Some(pid) = s.active_pid
    {
        return Err(Error::Config(format!(
            "replication slot {slot:?} is in use by server process {pid}: stop `orbas pipeline cdc` first"
        )));
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NULL",
    )
    .bind(slot)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM orbas.cdc_snapshots WHERE slot_name = $1").bind(slot).execute(&mut *tx).await?;
    sqlx::query(
        "UPDATE orbas.cdc_resnapshots SET completed_at = now(), error = 'superseded by a full snapshot'
          WHERE slot_name = $1 AND completed_at IS NULL",
    )
    .bind(slot)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn published_oid(pool: &PgPool, publication: &str, schema: &str, table: &str) -> Result<u32> {
    catalog::published_tables(pool, publication)
        .await?
        .into_iter()
        .find(|t| t.schema == schema && t.table == table)
        .map(|t| t.oid)
        .ok_or_else(|| Error::Config(format!("{schema}.{table} is not a table of publication {publication:?}")))
}

/// A transaction snapshot (`pg_current_snapshot()`): which transactions a read saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxSnapshot {
    xmin: u64,
    xmax: u64,
    in_progress: Vec<u64>,
}

impl TxSnapshot {
    /// Parses `xmin:xmax:xip,…`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = parts.next()?;
        let in_progress = if xip.is_empty() {
            Vec::new()
        } else {
            xip.split(',').map(str::parse).collect::<std::result::Result<_, _>>().ok()?
        };
        Some(TxSnapshot { xmin, xmax, in_progress })
    }

    /// Did the read see the effects of transaction `xid` (the 32-bit id pgoutput sends)? The full id
    /// is the one nearest `xmax` with those low bits.
    pub fn sees(&self, xid: u32) -> bool {
        let low = self.xmax as u32;
        let delta = i64::from(xid.wrapping_sub(low) as i32);
        let full = (self.xmax as i64).saturating_add(delta);
        let Ok(full) = u64::try_from(full) else { return true };
        full < self.xmin || (full < self.xmax && !self.in_progress.contains(&full))
    }
}

/// An open request.
#[derive(Debug, Clone)]
struct Job {
    id: i64,
    schema: String,
    table: String,
    chunk_size: i32,
    last_key: Option<Vec<String>>,
    max_key: Option<Vec<String>>,
    chunks: i32,
}

/// A chunk read, waiting for its watermark.
#[derive(Debug)]
pub struct Chunk {
    job: i64,
    watermark: String,
    pub rel: Relation,
    snapshot: TxSnapshot,
    /// COPY lines in key order; `None` once a newer change to the key was streamed.
    lines: Vec<Option<Vec<u8>>>,
    index: HashMap<Vec<u8>, usize>,
    last_key: Option<Vec<String>>,
    complete: bool,
}

impl Chunk {
    /// Is a streamed change of `schema.table` by transaction `xid` newer than this chunk's read?
    fn superseded_by(&self, schema: &str, table: &str, xid: Option<u32>) -> bool {
        self.rel.schema == schema && self.rel.table == table && !xid.is_some_and(|x| self.snapshot.sees(x))
    }

    /// The rows still to publish.
    pub fn rows(&self) -> impl Iterator<Item = &[u8]> {
        self.lines.iter().filter_map(|l| l.as_deref())
    }
}

/// A chunk published, to be recorded once acknowledged.
#[derive(Debug)]
struct Published {
    watermark_lsn: Lsn,
    job: i64,
    last_key: Option<Vec<String>>,
    rows: i64,
    complete: bool,
}

/// The service's re-snapshot state: open requests, the chunk in flight, chunks awaiting acks.
#[derive(Debug)]
pub struct Resnapshots {
    slot: String,
    publication: String,
    jobs: VecDeque<Job>,
    chunk: Option<Chunk>,
    published: VecDeque<Published>,
}

impl Resnapshots {
    /// The open requests of `slot`, oldest first.
    pub async fn load(pool: &PgPool, publication: &str, slot: &str) -> Result<Self> {
        let mut r = Resnapshots {
            slot: slot.to_owned(),
            publication: publication.to_owned(),
            jobs: VecDeque::new(),
            chunk: None,
            published: VecDeque::new(),
        };
        r.fetch(pool, None).await?;
        if !r.jobs.is_empty() {
            info!(open = r.jobs.len(), "resuming re-snapshot requests");
        }
        Ok(r)
    }

    async fn fetch(&mut self, pool: &PgPool, only: Option<i64>) -> Result<()> {
        type JobRow = (i64, String, String, i32, Option<Vec<String>>, Option<Vec<String>>, i32);
        let rows: Vec<JobRow> = sqlx::query_as(
            "SELECT id, schema_name, table_name, chunk_size, last_key, max_key, chunks FROM orbas.cdc_resnapshots
              WHERE slot_name = $1 AND completed_at IS NULL AND ($2::bigint IS NULL OR id = $2) ORDER BY id",
        )
        .bind(&self.slot)
        .bind(only)
        .fetch_all(pool)
        .await?;
        for (id, schema, table, chunk_size, last_key, max_key, chunks) in rows {
            if !self.jobs.iter().any(|j| j.id == id) {
                self.jobs.push_back(Job { id, schema, table, chunk_size, last_key, max_key, chunks });
            }
        }
        Ok(())
    }

    /// A request arrived through the stream.
    pub async fn on_signal(&mut self, pool: &PgPool, content: &[u8]) -> Result<()> {
        let v: serde_json::Value = match serde_json::from_slice(content) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "ignoring a malformed signal");
                return Ok(());
            }
        };
        if v.get("slot").and_then(|s| s.as_str()).is_some_and(|s| s != self.slot) {
            return Ok(());
        }
        if let Some(id) = v.get("resnapshot").and_then(serde_json::Value::as_i64) {
            self.fetch(pool, Some(id)).await?;
            info!(request = id, "re-snapshot requested");
        }
        Ok(())
    }

    /// A request waits and no chunk is in flight.
    pub fn wants_chunk(&self) -> bool {
        self.chunk.is_none() && !self.jobs.is_empty()
    }

    /// Reads the next chunk of the oldest request and writes its watermark.
    pub async fn take_chunk(&mut self, pool: &PgPool, encoder: &Encoder, selection: &Selection) -> Result<()> {
        let Some(job) = self.jobs.front().cloned() else { return Ok(()) };
        if !selection.carries(&job.schema, &job.table) {
            return self.fail(pool, job.id, "the service does not carry this table (--include/--exclude)").await;
        }
        let oid = match published_oid(pool, &self.publication, &job.schema, &job.table).await {
            Ok(oid) => oid,
            Err(Error::Config(why)) => return self.fail(pool, job.id, &why).await,
            Err(e) => return Err(e),
        };
        let mut conn = pool.acquire().await?;
        begin_read(&mut conn, None, &format!("{}.{}", job.schema, job.table)).await?;
        let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text").fetch_one(&mut *conn).await?;
        let snapshot = TxSnapshot::parse(&snapshot)
            .ok_or_else(|| Error::Protocol(format!("cannot parse the snapshot {snapshot:?}")))?;
        let cols = catalog::columns(&mut conn, oid).await?;
        let rel = catalog::relation(&encoder.settings, selection, &job.schema, &job.table, &cols, None);
        if rel.key.is_empty() {
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
            return self.fail(pool, job.id, "the table has no primary key").await;
        }
        let max_key = match &job.max_key {
            Some(k) => k.clone(),
            None => {
                let top = copy_lines(&mut conn, &max_key_query(&rel)).await?;
                let Some(line) = top.first().and_then(Option::as_deref) else {
                    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
                    return self.finish_empty(pool, job.id).await;
                };
                // The query selects the key columns only, in key order.
                let key = key_text(&rel, line, 0..rel.key.len())?;
                sqlx::query("UPDATE orbas.cdc_resnapshots SET max_key = $2 WHERE id = $1")
                    .bind(job.id)
                    .bind(&key)
                    .execute(pool)
                    .await?;
                if let Some(j) = self.jobs.front_mut() {
                    j.max_key = Some(key.clone());
                }
                key
            }
        };
        let sql = chunk_query(&rel, job.last_key.as_deref(), &max_key, job.chunk_size);
        let lines = copy_lines(&mut conn, &sql).await?;
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        drop(conn);

        let mut index = HashMap::with_capacity(lines.len());
        let mut key = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let Some(line) = line else { continue };
            key.clear();
            encoder.write_key(&rel, &split_row(line), &mut key);
            index.insert(key.clone(), i);
        }
        let last_key = match lines.last().and_then(Option::as_deref) {
            Some(line) => Some(key_text(&rel, line, rel.key.iter().copied())?),
            None => job.last_key.clone(),
        };
        let complete = lines.len() < usize::try_from(job.chunk_size).unwrap_or(usize::MAX);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let watermark = format!("{}.{}.{nanos}", job.id, job.chunks + 1);
        sqlx::query("SELECT pg_logical_emit_message(false, $1, $2)")
            .bind(WATERMARK_PREFIX)
            .bind(&watermark)
            .execute(pool)
            .await?;
        self.chunk = Some(Chunk { job: job.id, watermark, rel, snapshot, lines, index, last_key, complete });
        Ok(())
    }

    /// Nothing to copy: the table was empty when the work began.
    async fn finish_empty(&mut self, pool: &PgPool, id: i64) -> Result<()> {
        sqlx::query("UPDATE orbas.cdc_resnapshots SET completed_at = now() WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        self.jobs.retain(|j| j.id != id);
        info!(request = id, "re-snapshot complete: the table is empty");
        Ok(())
    }

    async fn fail(&mut self, pool: &PgPool, id: i64, why: &str) -> Result<()> {
        warn!(request = id, why, "re-snapshot request failed");
        sqlx::query("UPDATE orbas.cdc_resnapshots SET completed_at = now(), error = $2 WHERE id = $1")
            .bind(id)
            .bind(why)
            .execute(pool)
            .await?;
        self.jobs.retain(|j| j.id != id);
        Ok(())
    }

    /// A streamed change of `schema.table` by transaction `xid` with message key `key`: if the chunk
    /// in flight holds that key and its snapshot did not see `xid`, the streamed change is newer.
    pub fn on_change(&mut self, schema: &str, table: &str, xid: Option<u32>, key: &[u8]) {
        let Some(c) = self.chunk.as_mut().filter(|c| c.superseded_by(schema, table, xid)) else { return };
        if let Some(i) = c.index.remove(key) {
            c.lines[i] = None;
        }
    }

    /// A streamed truncate of `schema.table`: unseen by the chunk's read, it empties the chunk.
    pub fn on_truncate(&mut self, schema: &str, table: &str, xid: Option<u32>) {
        let Some(c) = self.chunk.as_mut().filter(|c| c.superseded_by(schema, table, xid)) else { return };
        c.lines.iter_mut().for_each(|l| *l = None);
        c.index.clear();
    }

    /// A watermark arrived at `lsn`: the chunk it closes, if it is ours, to publish now.
    pub fn on_watermark(&mut self, content: &[u8]) -> Option<Chunk> {
        let matches = self.chunk.as_ref().is_some_and(|c| c.watermark.as_bytes() == content);
        if matches { self.chunk.take() } else { None }
    }

    /// The chunk's rows were handed to Kafka, closed at `lsn`.
    pub fn published(&mut self, chunk: &Chunk, lsn: Lsn, rows: i64) {
        if let Some(job) = self.jobs.iter_mut().find(|j| j.id == chunk.job) {
            job.last_key.clone_from(&chunk.last_key);
            job.chunks += 1;
        }
        if chunk.complete {
            self.jobs.retain(|j| j.id != chunk.job);
        }
        self.published.push_back(Published {
            watermark_lsn: lsn,
            job: chunk.job,
            last_key: chunk.last_key.clone(),
            rows,
            complete: chunk.complete,
        });
    }

    /// Records the progress of every chunk Kafka acknowledged up to `acked`.
    pub async fn record(&mut self, pool: &PgPool, acked: Lsn) -> Result<()> {
        while self.published.front().is_some_and(|p| p.watermark_lsn <= acked) {
            let Some(p) = self.published.pop_front() else { break };
            sqlx::query(
                "UPDATE orbas.cdc_resnapshots
                    SET last_key = $2, chunks = chunks + 1, rows = rows + $3,
                        completed_at = CASE WHEN $4 THEN now() END
                  WHERE id = $1 AND completed_at IS NULL",
            )
            .bind(p.job)
            .bind(&p.last_key)
            .bind(p.rows)
            .bind(p.complete)
            .execute(pool)
            .await?;
            if p.complete {
                info!(request = p.job, "re-snapshot complete");
            }
        }
        Ok(())
    }
}

/// The text of a COPY line's fields at `positions` (a key, for the next chunk's bounds).
fn key_text(rel: &Relation, line: &[u8], positions: impl Iterator<Item = usize>) -> Result<Vec<String>> {
    let row = split_row(line);
    positions
        .map(|i| row.get(i).and_then(|v| v.as_deref()).map(|b| String::from_utf8_lossy(b).into_owned()))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| Error::Snapshot {
            table: format!("{}.{}", rel.schema, rel.table),
            why: "a primary-key column is null".into(),
        })
}

/// Every line a `COPY … TO STDOUT` returns.
async fn copy_lines(conn: &mut sqlx::PgConnection, sql: &str) -> Result<Vec<Option<Vec<u8>>>> {
    let mut lines = Vec::new();
    let mut buf = LineBuffer::default();
    let mut stream = conn.copy_out_raw(sql).await?;
    while let Some(bytes) = stream.next().await {
        buf.push::<Error>(&bytes?, |line| {
            lines.push(Some(line.to_vec()));
            Ok(())
        })?;
    }
    Ok(lines)
}

fn key_columns(rel: &Relation) -> Vec<String> {
    rel.key.iter().filter_map(|&i| rel.columns.get(i)).map(|c| quote_ident(&c.name)).collect()
}

fn literals(values: &[String]) -> String {
    values.iter().map(|v| quote_literal(v)).collect::<Vec<_>>().join(", ")
}

/// The largest key now.
fn max_key_query(rel: &Relation) -> String {
    let key = key_columns(rel);
    let desc: Vec<String> = key.iter().map(|k| format!("{k} DESC")).collect();
    format!(
        "COPY (SELECT {} FROM {}.{} ORDER BY {} LIMIT 1) TO STDOUT",
        key.join(", "),
        quote_ident(&rel.schema),
        quote_ident(&rel.table),
        desc.join(", ")
    )
}

/// `COPY (SELECT … WHERE key > last AND key <= max ORDER BY key LIMIT n) TO STDOUT`. Key values are
/// the text form COPY produced; as untyped literals in a row comparison Postgres reads them back as
/// the key columns' own types (the session's DateStyle/TimeZone are pinned, so they round-trip).
fn chunk_query(rel: &Relation, last_key: Option<&[String]>, max_key: &[String], limit: i32) -> String {
    let cols: Vec<String> = rel.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let key = key_columns(rel).join(", ");
    let mut filter = format!(" WHERE ({key}) <= ({})", literals(max_key));
    if let Some(last) = last_key {
        filter.push_str(&format!(" AND ({key}) > ({})", literals(last)));
    }
    format!(
        "COPY (SELECT {} FROM {}.{}{filter} ORDER BY {key} LIMIT {limit}) TO STDOUT",
        cols.join(", "),
        quote_ident(&rel.schema),
        quote_ident(&rel.table),
    )
}

/// A standard-conforming string literal.
fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{Column, EncoderSettings};
    use crate::value::Kind;

    #[test]
    fn snapshot_visibility() {
        let s = TxSnapshot::parse("100:110:102,105").expect("parse");
        assert!(s.sees(99) && s.sees(100) && s.sees(101) && s.sees(109));
        assert!(!s.sees(102) && !s.sees(105) && !s.sees(110) && !s.sees(200));
        let empty = TxSnapshot::parse("7:7:").expect("parse");
        assert!(empty.sees(6) && !empty.sees(7));
        assert_eq!(TxSnapshot::parse("1:2"), None);
        assert_eq!(TxSnapshot::parse("a:2:"), None);
    }

    #[test]
    fn visibility_across_the_32_bit_wraparound() {
        // Epoch 1: full ids 2^32 + n; pgoutput sends only the low 32 bits.
        let base = 1u64 << 32;
        let s = TxSnapshot::parse(&format!("{}:{}:", base - 10, base + 5)).expect("parse");
        assert!(s.sees(u32::MAX - 2), "epoch 0 tail, before xmax");
        assert!(s.sees(3), "epoch 1 head, before xmax");
        assert!(!s.sees(5) && !s.sees(6), "at or after xmax");
    }

    #[test]
    fn chunk_queries_page_by_key() {
        let settings = EncoderSettings {
            server_name: "s".into(),
            database: "d".into(),
            version: "v".into(),
            with_schemas: false,
            mask_key: None,
        };
        let cols = vec![
            Column::new("tenant_id", Kind::Text, false, false),
            Column::new("note", Kind::Text, true, false),
            Column::new("id", Kind::Text, false, false),
        ];
        let rel = Relation::new(&settings, "public", "Odd\"Name", "t".into(), cols, vec![0, 2]);
        let max = ["z".to_owned(), "9".to_owned()];
        assert_eq!(
            chunk_query(&rel, None, &max, 10),
            "COPY (SELECT \"tenant_id\", \"note\", \"id\" FROM \"public\".\"Odd\"\"Name\" \
             WHERE (\"tenant_id\", \"id\") <= ('z', '9') ORDER BY \"tenant_id\", \"id\" LIMIT 10) TO STDOUT"
        );
        let last = ["a".to_owned(), "it's".to_owned()];
        assert!(
            chunk_query(&rel, Some(&last), &max, 5)
                .contains("<= ('z', '9') AND (\"tenant_id\", \"id\") > ('a', 'it''s') ORDER BY")
        );
        assert_eq!(
            max_key_query(&rel),
            "COPY (SELECT \"tenant_id\", \"id\" FROM \"public\".\"Odd\"\"Name\" ORDER BY \"tenant_id\" DESC, \"id\" DESC LIMIT 1) TO STDOUT"
        );
    }
}
