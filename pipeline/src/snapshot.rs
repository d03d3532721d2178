//! The initial snapshot: every published table copied inside the snapshot the replication slot
//! exported when it was created, so the snapshot plus the stream from the slot's consistent point is
//! every row exactly once. Tables are copied in parallel (`COPY … TO STDOUT`, one read-only
//! repeatable-read transaction per table importing the snapshot); rows stream through a line buffer
//! into the producer, whose bounded queue is the only buffer — memory does not grow with table size.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt as _, TryStreamExt as _};
use sqlx::{PgConnection, PgPool};
use tracing::info;

use crate::catalog::{self, PublishedTable, Selection};
use crate::copy_text::{LineBuffer, split_row};
use crate::encode::{Encoder, Position, Relation};
use crate::error::{Error, Result};
use crate::event::{Op, SnapshotMark};
use crate::kafka::Output;
use crate::lsn::Lsn;
use crate::replication::quote_ident;
use crate::value::SESSION_SETTINGS;

/// What a snapshot copies and where it sends it.
#[derive(Debug)]
pub struct Snapshot<'a> {
    pub pool: &'a PgPool,
    /// `None`: read the current state (a re-snapshot outside the slot's creation).
    pub snapshot_name: Option<&'a str>,
    pub lsn: Lsn,
    pub mark: SnapshotMark,
    pub encoder: &'a Encoder,
    pub selection: &'a Selection,
    pub output: &'a Output,
    pub parallelism: usize,
}

/// Rows copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStats {
    pub tables: usize,
    pub rows: u64,
}

impl Snapshot<'_> {
    /// Copies `tables`; returns when every row is queued (not yet acknowledged: drain the output).
    pub async fn run(&self, tables: &[PublishedTable]) -> Result<SnapshotStats> {
        let rows = AtomicU64::new(0);
        let started = std::time::Instant::now();
        futures::stream::iter(tables.iter().map(Ok::<_, Error>))
            .try_for_each_concurrent(self.parallelism.max(1), |t| {
                let rows = &rows;
                async move {
                    let n = self.copy_table(t).await?;
                    rows.fetch_add(n, Ordering::Relaxed);
                    Ok(())
                }
            })
            .await?;
        let stats = SnapshotStats { tables: tables.len(), rows: rows.load(Ordering::Relaxed) };
        info!(tables = stats.tables, rows = stats.rows, elapsed_ms = started.elapsed().as_millis(), "snapshot copied");
        Ok(stats)
    }

    async fn copy_table(&self, t: &PublishedTable) -> Result<u64> {
        let fail = |why: String| Error::Snapshot { table: t.qualified(), why };
        let mut conn = self.pool.acquire().await?;
        begin_read(&mut conn, self.snapshot_name, &t.qualified()).await?;
        let cols = catalog::columns(&mut conn, t.oid).await?;
        let rel = catalog::relation(&self.encoder.settings, self.selection, &t.schema, &t.table, &cols, None);
        let list: Vec<String> = rel.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let sql = format!(
            "COPY (SELECT {} FROM {}.{}) TO STDOUT",
            list.join(", "),
            quote_ident(&t.schema),
            quote_ident(&t.table)
        );
        let seq = self.output.tracker.open();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let base = Position {
            snapshot: self.mark,
            ts_ms: now_ms,
            tx_id: None,
            lsn: self.lsn,
            commit_lsn: self.lsn,
            transaction: None,
        };
        let mut lines = LineBuffer::default();
        let mut pending: Option<Vec<u8>> = None;
        let mut rows = 0u64;
        let (mut key, mut value) = (Vec::new(), Vec::new());
        {
            let mut stream = conn.copy_out_raw(&sql).await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                let mut complete: Vec<Vec<u8>> = Vec::new();
                lines.push::<Error>(&chunk, |line| {
                    if let Some(prev) = pending.replace(line.to_vec()) {
                        complete.push(prev);
                    }
                    Ok(())
                })?;
                for line in complete {
                    send_read(self.encoder, self.output, &rel, seq, &line, &base, now_ms, &mut key, &mut value).await?;
                    rows += 1;
                }
            }
        }
        if lines.leftover() > 0 {
            return Err(fail("COPY ended inside a row".into()));
        }
        if let Some(last) = pending {
            let pos = Position {
                snapshot: if self.mark == SnapshotMark::True { SnapshotMark::LastInDataCollection } else { self.mark },
                ..base
            };
            send_read(self.encoder, self.output, &rel, seq, &last, &pos, now_ms, &mut key, &mut value).await?;
            rows += 1;
        }
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        self.output.tracker.close(seq, Lsn::ZERO);
        info!(table = %t.qualified(), rows, "table copied");
        Ok(rows)
    }
}

/// Opens a read-only repeatable-read transaction on `conn` — inside the exported snapshot
/// `snapshot_name` if given — with the session settings that fix the text form of every value.
pub(crate) async fn begin_read(conn: &mut PgConnection, snapshot_name: Option<&str>, table: &str) -> Result<()> {
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *conn).await?;
    if let Some(name) = snapshot_name {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET TRANSACTION SNAPSHOT '{}'", name.replace('\'', "''"))))
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::Snapshot {
                table: table.to_owned(),
                why: format!("cannot import the exported snapshot: {e}"),
            })?;
    }
    for (k, v) in SESSION_SETTINGS {
        sqlx::query("SELECT set_config($1, $2, true)").bind(k).bind(v).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Publishes one COPY row of `rel` as an `op: r` event at `pos`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_read(
    encoder: &Encoder,
    output: &Output,
    rel: &Relation,
    seq: u64,
    line: &[u8],
    pos: &Position<'_>,
    now_ms: i64,
    key: &mut Vec<u8>,
    value: &mut Vec<u8>,
) -> Result<()> {
    let row: Vec<Option<Cow<'_, [u8]>>> = split_row(line);
    if row.len() != rel.columns.len() {
        return Err(Error::Snapshot {
            table: format!("{}.{}", rel.schema, rel.table),
            why: format!("COPY row has {} columns, expected {}", row.len(), rel.columns.len()),
        });
    }
    key.clear();
    value.clear();
    let has_key = encoder.write_key(rel, &row, key);
    encoder.write_event(rel, Op::Read, None, Some(&row), pos, now_ms, value);
    output.send(seq, &rel.topic, None, has_key.then_some(key.as_slice()), Some(value)).await
}
