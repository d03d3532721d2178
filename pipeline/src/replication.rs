//! A Postgres client for the streaming replication protocol (a connection started with
//! `replication=database`): authentication (trust, password, MD5, SCRAM-SHA-256), replication commands
//! over the simple query protocol (`IDENTIFY_SYSTEM`, `CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')`,
//! `DROP_REPLICATION_SLOT`), and `START_REPLICATION … LOGICAL` in CopyBoth mode: XLogData and keepalive
//! frames in, standby status updates out.
//!
//! Mainline tokio-postgres and sqlx have no replication mode, so this speaks the protocol directly;
//! message framing and SCRAM come from `postgres-protocol` (the codec under tokio-postgres).
//! A reader task owns the socket's read half and hands frames over a bounded channel, so decoding
//! runs beside the socket reads and a slow consumer applies back-pressure to the walsender.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::value::SESSION_SETTINGS;

/// Microseconds between the Unix epoch and the Postgres epoch (2000-01-01).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Where and as whom to connect, from a `postgres://user:password@host:port/db` URL.
///
/// As in libpq, a host that starts with `/` is the directory of a Unix-domain socket
/// (`…/.s.PGSQL.<port>`); it is given percent-encoded in the authority
/// (`postgres://user@%2Fvar%2Frun%2Fpostgresql/db`) or as a `host` query parameter
/// (`postgres:///db?host=/var/run/postgresql`), and the `port` parameter overrides the URL's port.
/// On the database host a socket streams several times faster than loopback TCP (see
/// docs/BENCHMARKS.md).
#[derive(Clone)]
pub struct ConnectParams {
    /// A host name or address, or a socket directory when it starts with `/`.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
}

impl std::fmt::Debug for ConnectParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectParams")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl ConnectParams {
    pub fn from_url(s: &str) -> Result<Self> {
        let url = url::Url::parse(s).map_err(|e| Error::Url(e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(Error::Url(format!("scheme must be postgres://, got {}://", url.scheme())));
        }
        let decode = |v: &str| {
            percent_decode(v).ok_or_else(|| Error::Url("invalid percent-encoding in user or password".into()))
        };
        let user = if url.username().is_empty() { "postgres".to_owned() } else { decode(url.username())? };
        let password = url.password().map(decode).transpose()?;
        let database = url.path().trim_start_matches('/');
        let mut host = match url.host_str() {
            Some(h) if !h.is_empty() => {
                percent_decode(h).ok_or_else(|| Error::Url("invalid percent-encoding in host".into()))?
            }
            _ => "localhost".to_owned(),
        };
        let mut port = url.port().unwrap_or(5432);
        for (key, value) in url.query_pairs() {
            match &*key {
                "host" if !value.is_empty() => host = value.into_owned(),
                "port" => {
                    port = value.parse().map_err(|_| Error::Url(format!("port must be a number, got {value:?}")))?;
                }
                _ => {}
            }
        }
        Ok(ConnectParams {
            host,
            port,
            database: if database.is_empty() { user.clone() } else { decode(database)? },
            user,
            password,
        })
    }

    /// The Unix-domain socket path when the host names a socket directory.
    pub fn socket_path(&self) -> Option<std::path::PathBuf> {
        self.host.starts_with('/').then(|| std::path::Path::new(&self.host).join(format!(".s.PGSQL.{}", self.port)))
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A simple-query result: column names and text values.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Rows {
    /// The value of `column` in the first row.
    pub fn first(&self, column: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.rows.first()?.get(i)?.as_deref()
    }
}

/// The result of creating a slot with an exported snapshot.
#[derive(Debug, Clone)]
pub struct CreatedSlot {
    /// The LSN the snapshot is taken at; streaming from here continues it with no gap and no overlap.
    pub consistent_point: Lsn,
    /// Import with `SET TRANSACTION SNAPSHOT` — valid until this connection runs its next command.
    pub snapshot_name: String,
}

/// The read half of the connection (TCP or Unix-domain socket).
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of the connection (TCP or Unix-domain socket).
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// A replication connection before streaming.
pub struct ReplicationClient {
    reader: BufReader<ReadHalf>,
    writer: WriteHalf,
    pub server_version: u32,
}

impl std::fmt::Debug for ReplicationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationClient").field("server_version", &self.server_version).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ReplicationStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationStream").field("pending_frames", &self.frames.len()).finish_non_exhaustive()
    }
}

/// One backend message: its tag and body.
struct Backend {
    tag: u8,
    body: Bytes,
}

async fn read_message(r: &mut BufReader<ReadHalf>) -> Result<Backend> {
    let tag = r.read_u8().await?;
    let len = r.read_i32().await?;
    let len = usize::try_from(len - 4).map_err(|_| Error::Protocol(format!("bad message length {len}")))?;
    let mut body = BytesMut::zeroed(len);
    r.read_exact(&mut body).await?;
    Ok(Backend { tag, body: body.freeze() })
}

fn server_error(body: &[u8]) -> Error {
    let mut code = String::new();
    let mut message = String::new();
    let mut detail = String::new();
    for field in body.split(|&b| b == 0) {
        let Some((&kind, value)) = field.split_first() else { continue };
        let value = String::from_utf8_lossy(value).into_owned();
        match kind {
            b'C' => code = value,
            b'M' => message = value,
            b'D' => detail = value,
            _ => {}
        }
    }
    if !detail.is_empty() {
        message = format!("{message}: {detail}");
    }
    Error::Server { code, message }
}

fn cstr(buf: &mut Bytes) -> Result<String> {
    let end = buf.iter().position(|&b| b == 0).ok_or_else(|| Error::Protocol("unterminated string".into()))?;
    let s = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.advance(end + 1);
    Ok(s)
}

fn need(buf: &Bytes, n: usize, what: &str) -> Result<()> {
    if buf.remaining() < n { Err(Error::Protocol(format!("short {what} message"))) } else { Ok(()) }
}

impl ReplicationClient {
    /// Connects and authenticates a `replication=database` session.
    pub async fn connect(params: &ConnectParams, application_name: &str) -> Result<Self> {
        let (read, writer): (ReadHalf, WriteHalf) = match params.socket_path() {
            Some(path) => {
                let (read, write) = UnixStream::connect(&path).await?.into_split();
                (Box::new(read), Box::new(write))
            }
            None => {
                let stream = TcpStream::connect((params.host.as_str(), params.port)).await?;
                stream.set_nodelay(true)?;
                let (read, write) = stream.into_split();
                (Box::new(read), Box::new(write))
            }
        };
        let mut client =
            ReplicationClient { reader: BufReader::with_capacity(256 * 1024, read), writer, server_version: 0 };
        let options: String = SESSION_SETTINGS.iter().map(|(k, v)| format!("-c {k}={v} ")).collect();
        let startup = [
            ("user", params.user.as_str()),
            ("database", params.database.as_str()),
            ("replication", "database"),
            ("application_name", application_name),
            ("options", options.trim_end()),
        ];
        let mut buf = BytesMut::new();
        frontend::startup_message(startup.iter().copied(), &mut buf)?;
        client.send(&buf).await?;
        client.authenticate(params).await?;
        // Wait for ReadyForQuery, collecting the server version.
        loop {
            let m = client.read().await?;
            match m.tag {
                b'Z' => break,
                b'S' => {
                    let mut body = m.body;
                    let name = cstr(&mut body)?;
                    let value = cstr(&mut body)?;
                    if name == "server_version" {
                        client.server_version = parse_server_version(&value);
                    }
                }
                b'K' | b'N' => {}
                b'E' => return Err(server_error(&m.body)),
                t => return Err(Error::Protocol(format!("unexpected message {:?} during start-up", char::from(t)))),
            }
        }
        debug!(server_version = client.server_version, "replication connection ready");
        Ok(client)
    }

    async fn send(&mut self, buf: &[u8]) -> Result<()> {
        self.writer.write_all(buf).await?;
        Ok(())
    }

    async fn read(&mut self) -> Result<Backend> {
        read_message(&mut self.reader).await
    }

    async fn authenticate(&mut self, params: &ConnectParams) -> Result<()> {
        let password = || params.password.clone().ok_or_else(|| Error::Auth("the server asks for a password".into()));
        loop {
            let m = self.read().await?;
            match m.tag {
                b'E' => return Err(server_error(&m.body)),
                b'R' => {}
                t => {
                    return Err(Error::Protocol(format!(
                        "unexpected message {:?} during authentication",
                        char::from(t)
                    )));
                }
            }
            let mut body = m.body;
            need(&body, 4, "authentication")?;
            let mut buf = BytesMut::new();
            match body.get_i32() {
                0 => return Ok(()),
                3 => frontend::password_message(password()?.as_bytes(), &mut buf)?,
                5 => {
                    need(&body, 4, "MD5 salt")?;
                    let mut salt = [0u8; 4];
                    body.copy_to_slice(&mut salt);
                    let hash = postgres_protocol::authentication::md5_hash(
                        params.user.as_bytes(),
                        password()?.as_bytes(),
                        salt,
                    );
                    frontend::password_message(hash.as_bytes(), &mut buf)?;
                }
                10 => {
                    let mut mechanisms = Vec::new();
                    while body.first().is_some_and(|&b| b != 0) {
                        mechanisms.push(cstr(&mut body)?);
                    }
                    if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                        return Err(Error::Auth(format!("no supported SASL mechanism in {mechanisms:?}")));
                    }
                    self.scram(password()?).await?;
                    continue;
                }
                other => return Err(Error::Auth(format!("unsupported authentication method {other}"))),
            }
            self.send(&buf).await?;
        }
    }

    async fn scram(&mut self, password: String) -> Result<()> {
        let mut scram = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let mut buf = BytesMut::new();
        frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), &mut buf)?;
        self.send(&buf).await?;
        for step in [11, 12] {
            let m = self.read().await?;
            if m.tag == b'E' {
                return Err(server_error(&m.body));
            }
            let mut body = m.body;
            need(&body, 4, "SASL")?;
            if m.tag != b'R' || body.get_i32() != step {
                return Err(Error::Auth("unexpected SASL exchange".into()));
            }
            if step == 11 {
                scram.update(&body).map_err(|e| Error::Auth(e.to_string()))?;
                let mut buf = BytesMut::new();
                frontend::sasl_response(scram.message(), &mut buf)?;
                self.send(&buf).await?;
            } else {
                scram.finish(&body).map_err(|e| Error::Auth(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Runs one command with the simple query protocol.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Rows> {
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf)?;
        self.send(&buf).await?;
        let mut rows = Rows::default();
        let mut error = None;
        loop {
            let m = self.read().await?;
            match m.tag {
                b'T' => {
                    let mut body = m.body;
                    need(&body, 2, "RowDescription")?;
                    let n = body.get_i16();
                    rows.columns.clear();
                    for _ in 0..n {
                        rows.columns.push(cstr(&mut body)?);
                        need(&body, 18, "RowDescription")?;
                        body.advance(18);
                    }
                }
                b'D' => {
                    let mut body = m.body;
                    need(&body, 2, "DataRow")?;
                    let n = body.get_i16();
                    let mut row = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
                    for _ in 0..n {
                        need(&body, 4, "DataRow")?;
                        let len = body.get_i32();
                        if len < 0 {
                            row.push(None);
                        } else {
                            let len = usize::try_from(len).unwrap_or(0);
                            need(&body, len, "DataRow")?;
                            row.push(Some(String::from_utf8_lossy(&body.split_to(len)).into_owned()));
                        }
                    }
                    rows.rows.push(row);
                }
                b'E' => error = Some(server_error(&m.body)),
                b'Z' => break,
                b'C' | b'I' | b'N' | b'S' => {}
                t => return Err(Error::Protocol(format!("unexpected message {:?} in a query result", char::from(t)))),
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// `CREATE_REPLICATION_SLOT … LOGICAL pgoutput (SNAPSHOT 'export')`.
    pub async fn create_slot_exporting_snapshot(&mut self, slot: &str) -> Result<CreatedSlot> {
        let rows = self
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
                quote_ident(slot)
            ))
            .await?;
        let consistent_point = rows
            .first("consistent_point")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Protocol("CREATE_REPLICATION_SLOT returned no consistent point".into()))?;
        let snapshot_name = rows
            .first("snapshot_name")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Protocol("CREATE_REPLICATION_SLOT exported no snapshot".into()))?
            .to_owned();
        info!(slot, %consistent_point, snapshot = %snapshot_name, "created replication slot");
        Ok(CreatedSlot { consistent_point, snapshot_name })
    }

    /// `START_REPLICATION SLOT … LOGICAL` with pgoutput options: the connection becomes a stream.
    pub async fn start_logical(mut self, slot: &str, from: Lsn, options: &[(&str, &str)]) -> Result<ReplicationStream> {
        let opts: Vec<String> = options.iter().map(|(k, v)| format!("\"{k}\" '{}'", v.replace('\'', "''"))).collect();
        let sql = format!("START_REPLICATION SLOT {} LOGICAL {from} ({})", quote_ident(slot), opts.join(", "));
        let mut buf = BytesMut::new();
        frontend::query(&sql, &mut buf)?;
        self.send(&buf).await?;
        loop {
            let m = self.read().await?;
            match m.tag {
                b'W' => break,
                b'N' | b'S' => {}
                b'E' => return Err(server_error(&m.body)),
                t => {
                    return Err(Error::Protocol(format!(
                        "unexpected message {:?} starting replication",
                        char::from(t)
                    )));
                }
            }
        }
        info!(slot, %from, "replication started");
        let (tx, rx) = mpsc::channel(4096);
        let reader = tokio::spawn(read_frames(self.reader, tx));
        Ok(ReplicationStream { frames: rx, writer: self.writer, reader })
    }
}

/// Postgres' `server_version` ("15.18 (Debian …)") as 150018.
fn parse_server_version(v: &str) -> u32 {
    let mut parts = v.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    major * 10_000 + minor
}

/// Quotes an identifier for a replication command.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// What the walsender sends while streaming.
#[derive(Debug, Clone)]
pub enum Frame {
    /// One pgoutput message; `start` is the LSN of the WAL record it comes from.
    XLogData { start: Lsn, end: Lsn, data: Bytes },
    /// The server's position; `reply` asks for a status update now.
    Keepalive { end: Lsn, reply: bool },
}

async fn read_frames(mut reader: BufReader<ReadHalf>, tx: mpsc::Sender<Result<Frame>>) {
    loop {
        let frame = next_frame(&mut reader).await;
        let stop = !matches!(frame, Ok(Some(_)));
        let item = match frame {
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err(Error::Protocol("the server ended the replication stream".into())),
            Err(e) => Err(e),
        };
        if tx.send(item).await.is_err() || stop {
            return;
        }
    }
}

async fn next_frame(reader: &mut BufReader<ReadHalf>) -> Result<Option<Frame>> {
    loop {
        let m = read_message(reader).await?;
        match m.tag {
            b'd' => {
                let mut body = m.body;
                need(&body, 1, "CopyData")?;
                match body.get_u8() {
                    b'w' => {
                        need(&body, 24, "XLogData")?;
                        let start = Lsn(body.get_u64());
                        let end = Lsn(body.get_u64());
                        let _clock = body.get_i64();
                        return Ok(Some(Frame::XLogData { start, end, data: body }));
                    }
                    b'k' => {
                        need(&body, 17, "keepalive")?;
                        let end = Lsn(body.get_u64());
                        let _clock = body.get_i64();
                        return Ok(Some(Frame::Keepalive { end, reply: body.get_u8() == 1 }));
                    }
                    t => debug!(tag = %char::from(t), "ignoring unknown CopyData message"),
                }
            }
            b'c' | b'C' | b'Z' => return Ok(None),
            b'E' => return Err(server_error(&m.body)),
            b'N' | b'S' => {}
            t => return Err(Error::Protocol(format!("unexpected message {:?} while streaming", char::from(t)))),
        }
    }
}

/// A logical replication stream in CopyBoth mode.
pub struct ReplicationStream {
    frames: mpsc::Receiver<Result<Frame>>,
    writer: WriteHalf,
    reader: tokio::task::JoinHandle<()>,
}

impl ReplicationStream {
    /// The next frame, or `None` after `timeout` without one.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<Frame>> {
        match tokio::time::timeout(timeout, self.frames.recv()).await {
            Err(_) => Ok(None),
            Ok(Some(frame)) => frame.map(Some),
            Ok(None) => Err(Error::Protocol("the replication reader stopped".into())),
        }
    }

    /// Frames already received, without waiting.
    pub fn try_next(&mut self) -> Option<Result<Frame>> {
        self.frames.try_recv().ok()
    }

    /// Standby status update: `written` = received, `flushed` = durable downstream (the slot's
    /// `confirmed_flush_lsn` follows it), applied = flushed.
    pub async fn send_status(&mut self, written: Lsn, flushed: Lsn, reply: bool) -> Result<()> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
        let clock = i64::try_from(now).unwrap_or(i64::MAX) - PG_EPOCH_OFFSET_MICROS;
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(written.0);
        payload.put_u64(flushed.0);
        payload.put_u64(flushed.0);
        payload.put_i64(clock);
        payload.put_u8(u8::from(reply));
        let mut buf = BytesMut::new();
        frontend::CopyData::new(payload.freeze())?.write(&mut buf);
        self.writer.write_all(&buf).await?;
        Ok(())
    }

    /// Ends the stream politely (CopyDone, Terminate).
    pub async fn close(mut self) -> Result<()> {
        let mut buf = BytesMut::new();
        frontend::copy_done(&mut buf);
        frontend::terminate(&mut buf);
        let _ = self.writer.write_all(&buf).await;
        let _ = self.writer.shutdown().await;
        self.reader.abort();
        Ok(())
    }
}

impl Drop for ReplicationStream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads the slot's state through a regular SQL connection.
#[derive(Debug, Clone)]
pub struct SlotState {
    pub confirmed_flush: Option<Lsn>,
    pub wal_status: Option<String>,
    pub active_pid: Option<i32>,
}

/// The slot as `pg_replication_slots` shows it, if it exists.
pub async fn slot_state(pool: &sqlx::PgPool, slot: &str) -> Result<Option<SlotState>> {
    let row: Option<(Option<String>, Option<String>, Option<i32>)> = sqlx::query_as(
        "SELECT confirmed_flush_lsn::text, wal_status, active_pid FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(lsn, wal_status, active_pid)| SlotState {
        confirmed_flush: lsn.and_then(|l| l.parse().ok()),
        wal_status,
        active_pid,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connection_urls() {
        let p = ConnectParams::from_url("postgres://cdc:p%40ss@127.0.0.1:5544/orbas?sslmode=disable").ok();
        let p = p.as_ref();
        assert_eq!(p.map(|p| p.user.as_str()), Some("cdc"));
        assert_eq!(p.and_then(|p| p.password.as_deref()), Some("p@ss"));
        assert_eq!(p.map(|p| p.port), Some(5544));
        assert_eq!(p.map(|p| p.database.as_str()), Some("orbas"));
        assert!(ConnectParams::from_url("mysql://x@y/z").is_err());
        assert!(!format!("{p:?}").contains("p@ss"), "Debug hides the password");
    }

    #[test]
    fn socket_directories_as_in_libpq() {
        let encoded = ConnectParams::from_url("postgres://cdc@%2Fvar%2Frun%2Fpostgresql:5433/orbas").ok();
        assert_eq!(
            encoded.and_then(|p| p.socket_path()),
            Some("/var/run/postgresql/.s.PGSQL.5433".into()),
            "a percent-encoded path in the authority"
        );
        let query = ConnectParams::from_url("postgres://cdc@localhost/orbas?host=/tmp/pg&port=6000").ok();
        assert_eq!(query.and_then(|p| p.socket_path()), Some("/tmp/pg/.s.PGSQL.6000".into()), "host/port parameters");
        let tcp = ConnectParams::from_url("postgres://cdc@db.internal/orbas").ok();
        assert_eq!(tcp.as_ref().map(|p| p.host.as_str()), Some("db.internal"));
        assert_eq!(tcp.and_then(|p| p.socket_path()), None);
        assert!(ConnectParams::from_url("postgres://cdc@localhost/orbas?port=x").is_err());
    }

    #[test]
    fn reads_server_versions() {
        assert_eq!(parse_server_version("15.18 (Debian 15.18-0+deb12u1)"), 150_018);
        assert_eq!(parse_server_version("16devel"), 160_000);
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }
}
