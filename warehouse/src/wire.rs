//! The SQL port: the lake over the PostgreSQL wire protocol (`orbas sql`), so psql, psycopg, JDBC
//! (DBeaver, Metabase) and other Postgres clients query the tenant's silver tables.
//!
//! What this module owns:
//! - **Authentication**: SCRAM-SHA-256 (RFC 5802/7677, as Postgres does it) against the verifiers an
//!   [`AuthSource`] provides — the trait is defined here and implemented where users live (the API
//!   crate). The user name is an e-mail or an API-key prefix, the database name the tenant's slug.
//!   Unknown users get a deterministic mock verifier so the exchange fails only at the proof and does
//!   not reveal who exists. Every attempt is reported back to the source (login history, lockout).
//!   TLS is offered when a certificate is configured and can be required.
//! - **One session per connection**, built after authentication for the login's tenant: every table
//!   is a [`crate::tenant::TenantScoped`] view (the engine filters every scan), the `pg_catalog`
//!   emulation of `datafusion-postgres` answers client introspection, and before each statement the
//!   session is brought up to the lake's latest snapshot.
//! - **Read-only**: only queries, `EXPLAIN`, `SHOW`, cursors and the session/transaction statements
//!   clients send on their own are run; DDL/DML answer `25006` (read-only transaction), engine
//!   settings (`SET datafusion.…`) `42501`. `statement_timeout` is honoured but never above the
//!   server's limit; each connection has its own memory pool.
//! - **Time travel**: `SET orbas.as_of = '2026-11-23T10:00:00Z'` reads every table as it was at that
//!   moment (each at its last Delta version committed by then) until `SET orbas.as_of = DEFAULT`.
//! - **Errors as Postgres SQLSTATEs**: syntax `42601`, unknown table `42P01`, unknown column `42703`,
//!   out of memory `53200`, cancelled by timeout `57014`, not supported `0A000`.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire;
use datafusion_postgres::{DfSessionService, Parser};
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, METADATA_DATABASE, METADATA_USER, PgWireConnectionState,
    PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore};
use tracing::{debug, info, warn};

use orbas_oltp::auth::scram::{ScramServer, ScramServerFirst, ScramVerifier};

use crate::error::{Error, Result};
use crate::sql::{Lake, Limits};

/// The SASL mechanism offered (no channel binding, as with Postgres without TLS binding).
const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// The statement-timeout metadata key `datafusion-postgres` reads before running a statement.
const METADATA_STATEMENT_TIMEOUT: &str = "statement_timeout_ms";
/// The catalog the session's tables live in (`current_database()` answers this).
const CATALOG: &str = "lake";

/// Who a login is, as the [`AuthSource`] knows it.
#[derive(Debug, Clone)]
pub struct Login<T> {
    /// The tenant whose rows the session may see (the lake's `tenant_id` value).
    pub tenant: String,
    /// The stored SCRAM-SHA-256 verifier (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`);
    /// `None` when this login has no SQL-port credential (then it cannot authenticate).
    pub verifier: Option<String>,
    /// Why the login is refused whatever the password (`"locked"`, `"disabled"`, `"revoked"`, …).
    pub refusal: Option<&'static str>,
    /// Whether the role may query the lake at all.
    pub may_query: bool,
    /// The source's own record of the login, handed back in [`AuthSource::record`].
    pub detail: T,
}

/// How an authentication attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated and allowed to query.
    Success,
    /// Unknown user or wrong password (indistinguishable to the client).
    BadCredentials,
    /// The source refused the login ([`Login::refusal`]).
    Refused(&'static str),
    /// Right credentials, but the role may not query the lake.
    Forbidden,
}

/// One attempt, for the source's login history.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub database: &'a str,
    pub user: &'a str,
    pub peer: SocketAddr,
    pub application: Option<&'a str>,
    pub outcome: Outcome,
}

/// Where users live: looks up a login's verifier and tenant, and records how attempts ended.
#[async_trait]
pub trait AuthSource: Send + Sync + 'static {
    type Detail: Send + Sync + 'static;

    /// The login named `user` (an e-mail or an API-key prefix) in `database` (a tenant slug), or
    /// `None` when there is no such tenant or user. Errors mean the source cannot answer now.
    async fn lookup(
        &self,
        database: &str,
        user: &str,
    ) -> std::result::Result<Option<Login<Self::Detail>>, Box<dyn std::error::Error + Send + Sync>>;

    /// Records an attempt (login history, lockout counters). `login` is `None` for unknown users.
    async fn record(&self, login: Option<&Login<Self::Detail>>, attempt: Attempt<'_>);
}

/// How the port runs.
#[derive(Clone)]
pub struct WireConfig {
    /// Per-statement limits: the longest a statement may run (clients may ask for less with
    /// `SET statement_timeout`) and the memory each connection's queries may use.
    pub limits: Limits,
    /// TLS, offered to clients that ask for it (`sslmode=prefer/require`).
    pub tls: Option<pgwire::tokio::TlsAcceptor>,
    /// Refuse connections that did not negotiate TLS.
    pub require_tls: bool,
    /// At most this many connections at once (further ones are refused with `53300`).
    pub max_connections: usize,
    /// Secret for the mock verifiers of unknown users (stable per deployment, so repeated attempts
    /// for one unknown name see the same salt).
    pub mock_secret: Vec<u8>,
}

impl Debug for WireConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireConfig")
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .field("require_tls", &self.require_tls)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig {
            limits: Limits::default(),
            tls: None,
            require_tls: false,
            max_connections: 64,
            mock_secret: b"orbas-sql-port".to_vec(),
        }
    }
}

/// A TLS acceptor from PEM files (a certificate chain and a PKCS#8, PKCS#1 or SEC1 private key).
/// The `ring` provider is passed explicitly, so no process-wide rustls provider is needed.
pub fn tls_from_pem(cert: &Path, key: &Path) -> Result<pgwire::tokio::TlsAcceptor> {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::Config(format!("TLS {what}: {e}"));
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| bad(&format!("certificate {}", cert.display()), &e))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("TLS certificate {}: no certificate in the file", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(&format!("key {}", key.display()), &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| bad("configuration", &e))?;
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}

/// Serves the lake on `listener` until the task is dropped.
pub async fn serve<A: AuthSource>(
    listener: TcpListener,
    lake: Arc<Lake>,
    auth: Arc<A>,
    config: WireConfig,
) -> Result<()> {
    let shared =
        Arc::new(Shared { lake, auth, config, pids: RandomPidSecretKeyGenerator::default(), slots: Semaphore::new(0) });
    shared.slots.add_permits(shared.config.max_connections.max(1));
    info!(addr = %listener.local_addr().map_err(|e| Error::Config(e.to_string()))?, tls = shared.config.tls.is_some(),
          "SQL port listening");
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accepting a SQL connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let permit = shared.slots.try_acquire().ok();
            let conn = Arc::new(Conn {
                shared: shared.clone(),
                peer,
                full: permit.is_none(),
                auth: Mutex::new(Phase::Start),
                session: OnceLock::new(),
            });
            metrics::gauge!("orbas_sql_port_connections").increment(1.0);
            let tls = shared.config.tls.clone();
            if let Err(e) = pgwire::tokio::process_socket(socket, tls, Handlers::new(conn)).await {
                debug!(%peer, error = %e, "SQL connection ended with an error");
            }
            drop(permit);
            metrics::gauge!("orbas_sql_port_connections").decrement(1.0);
        });
    }
}

struct Shared<A: AuthSource> {
    lake: Arc<Lake>,
    auth: Arc<A>,
    config: WireConfig,
    pids: RandomPidSecretKeyGenerator,
    slots: Semaphore,
}

/// One connection: its authentication state, then its session.
struct Conn<A: AuthSource> {
    shared: Arc<Shared<A>>,
    peer: SocketAddr,
    /// Over the connection limit: refused at startup.
    full: bool,
    auth: Mutex<Phase<A::Detail>>,
    session: OnceLock<Session>,
}

impl<A: AuthSource> Conn<A> {
    fn session(&self) -> PgWireResult<&Session> {
        self.session.get().ok_or_else(|| fatal("28000", "the connection is not authenticated"))
    }
}

enum Phase<T> {
    Start,
    /// `AuthenticationSASL` sent; the login (if the user exists) is known.
    Offered {
        login: Option<Login<T>>,
    },
    /// `server-first` sent.
    Challenged {
        login: Option<Login<T>>,
        scram: Box<ScramServerFirst>,
    },
    Done,
}

/// A tenant's session on one connection.
struct Session {
    tenant: String,
    ctx: Arc<SessionContext>,
    service: Arc<DfSessionService>,
    /// The lake snapshot generation installed in `ctx` (`u64::MAX`: none, or a past one).
    generation: AtomicU64,
    /// Time travel: `SET orbas.as_of = '<RFC 3339 time>'` pins the session's tables to that moment.
    as_of: Arc<std::sync::Mutex<AsOf>>,
}

/// The moment a session reads the lake at, as asked and as installed; `None`: the latest commit.
#[derive(Debug, Default)]
struct AsOf {
    wanted: Option<DateTime<Utc>>,
    installed: Option<DateTime<Utc>>,
}

/// The session setting for time travel.
const AS_OF_SETTING: &str = "orbas.as_of";

impl Session {
    /// Brings the session's tables up to the lake's latest snapshot, or to the moment `orbas.as_of`
    /// names (installed once per moment: the past does not change).
    async fn refresh(&self, lake: &Lake) -> PgWireResult<()> {
        let unreadable = |e: &dyn std::fmt::Display| {
            warn!(error = %e, "reading the lake for a SQL session");
            user_error("58030", "the lake cannot be read right now")
        };
        let (wanted, installed) = match self.as_of.lock() {
            Ok(a) => (a.wanted, a.installed),
            Err(_) => return Err(user_error("58030", "the session's state is unusable; reconnect")),
        };
        if let Some(at) = wanted {
            if installed != Some(at) {
                let snapshot = lake.snapshot_at(at).await.map_err(|e| unreadable(&e))?;
                snapshot.install(&self.ctx, &self.tenant).map_err(|e| unreadable(&e))?;
                self.generation.store(u64::MAX, Ordering::Release);
                if let Ok(mut a) = self.as_of.lock() {
                    a.installed = Some(at);
                }
            }
            return Ok(());
        }
        if installed.is_some()
            && let Ok(mut a) = self.as_of.lock()
        {
            a.installed = None;
        }
        let snapshot = lake.snapshot().await.map_err(|e| unreadable(&e))?;
        if self.generation.swap(snapshot.generation, Ordering::AcqRel) != snapshot.generation {
            snapshot.install(&self.ctx, &self.tenant).map_err(|e| {
                warn!(error = %e, "installing lake tables");
                user_error("58030", "the lake cannot be read right now")
            })?;
        }
        Ok(())
    }
}

fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message.into())))
}

fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".into(), code.into(), message.into())))
}

/// Engine errors as Postgres SQLSTATEs, so clients can tell a typo from an outage.
fn pg_error(e: PgWireError) -> PgWireError {
    let PgWireError::ApiError(inner) = e else { return e };
    if inner.downcast_ref::<ParserError>().is_some() {
        return user_error("42601", inner.to_string());
    }
    let Some(df) = inner.downcast_ref::<DataFusionError>() else {
        return user_error("XX000", inner.to_string());
    };
    user_error(sqlstate(df), df.to_string())
}

/// The SQLSTATE of a DataFusion error.
pub fn sqlstate(e: &DataFusionError) -> &'static str {
    use datafusion::common::SchemaError;
    match e.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::SchemaError(err, _) => match err.as_ref() {
            SchemaError::FieldNotFound { .. } => "42703",
            SchemaError::AmbiguousReference { .. } => "42702",
            SchemaError::DuplicateQualifiedField { .. } | SchemaError::DuplicateUnqualifiedField { .. } => "42701",
        },
        DataFusionError::Plan(m) if m.contains("not found") && m.contains("table") => "42P01",
        DataFusionError::Plan(m) if m.contains("Invalid function") || m.contains("not found") => "42883",
        DataFusionError::Plan(_) => "42000",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::Execution(m) if m.to_lowercase().contains("divide by zero") => "22012",
        DataFusionError::ArrowError(err, _)
            if matches!(err.as_ref(), datafusion::arrow::error::ArrowError::DivideByZero) =>
        {
            "22012"
        }
        DataFusionError::ArrowError(..) | DataFusionError::Execution(_) => "22000",
        _ => "XX000",
    }
}

/// What may run on the port. `Ok` for queries and the harmless session statements clients send.
fn allowed(statement: &Statement) -> PgWireResult<()> {
    use Statement as S;
    match statement {
        S::Query(_)
        | S::ShowVariable { .. }
        | S::ShowVariables { .. }
        | S::ShowStatus { .. }
        | S::ShowCatalogs { .. }
        | S::ShowTables { .. }
        | S::ShowColumns { .. }
        | S::ShowSchemas { .. }
        | S::ShowDatabases { .. }
        | S::ShowFunctions { .. }
        | S::ExplainTable { .. }
        | S::StartTransaction { .. }
        | S::Commit { .. }
        | S::Rollback { .. }
        | S::Declare { .. }
        | S::Fetch { .. }
        | S::Close { .. }
        | S::Discard { .. }
        | S::Deallocate { .. } => Ok(()),
        S::Explain { statement, .. } => match statement.as_ref() {
            S::Query(_) => Ok(()),
            inner => allowed(inner).and(Err(user_error("0A000", "only queries can be explained here"))),
        },
        S::Set(set) => {
            let text = set.to_string().to_lowercase();
            if text.contains("datafusion.") {
                Err(user_error("42501", "the engine's settings are fixed by the server"))
            } else if matches!(set, Set::SetRole { .. } | Set::SetSessionAuthorization(_)) {
                Err(user_error("42501", "the session's role is the login's and cannot be changed"))
            } else {
                Ok(())
            }
        }
        S::Insert(_)
        | S::Update(_)
        | S::Delete(_)
        | S::Merge(_)
        | S::Truncate(_)
        | S::Copy { .. }
        | S::CreateTable(_)
        | S::CreateView(_)
        | S::CreateIndex(_)
        | S::CreateSchema { .. }
        | S::CreateDatabase { .. }
        | S::CreateFunction(_)
        | S::CreateExtension(_)
        | S::AlterTable(_)
        | S::AlterSchema(_)
        | S::AlterView { .. }
        | S::Drop { .. }
        | S::DropFunction(_)
        | S::Grant(_)
        | S::Revoke(_)
        | S::Comment { .. }
        | S::Vacuum(_)
        | S::Analyze(_)
        | S::Lock(_) => {
            let verb = statement.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_uppercase();
            Err(user_error("25006", format!("cannot execute {verb} in a read-only transaction")))
        }
        _ => Err(user_error("0A000", "this statement is not supported on the SQL port (queries only)")),
    }
}

/// Refuses what may not run, caps `statement_timeout` at the server's limit, and takes the session's
/// time-travel setting.
struct ReadOnly {
    max_timeout: Duration,
    as_of: Arc<std::sync::Mutex<AsOf>>,
}

/// The moment `SET orbas.as_of = …` names: an RFC 3339 time (a space may separate date and time),
/// `DEFAULT`/`latest` for the latest commit. A future moment is refused.
fn parse_as_of(raw: &str, now: DateTime<Utc>) -> PgWireResult<Option<DateTime<Utc>>> {
    let value = raw.trim().trim_matches(|c| c == '\'' || c == '"').trim();
    if value.eq_ignore_ascii_case("default") || value.eq_ignore_ascii_case("latest") || value.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        user_error(
            "22023",
            format!(
                "invalid value for {AS_OF_SETTING}: {value} (an RFC 3339 time such as 2026-11-23T10:00:00Z, or DEFAULT)"
            ),
        )
    };
    let at = DateTime::parse_from_rfc3339(value)
        .or_else(|_| DateTime::parse_from_rfc3339(&value.replacen(' ', "T", 1)))
        .map_err(|_| invalid())?
        .with_timezone(&Utc);
    if at > now {
        return Err(user_error("22023", format!("{AS_OF_SETTING} is in the future: {value}")));
    }
    Ok(Some(at))
}

impl ReadOnly {
    /// `SET statement_timeout = …` in Postgres units (`0` = the server's limit). `None`: another statement.
    fn statement_timeout(&self, statement: &Statement) -> Option<PgWireResult<Duration>> {
        let Statement::Set(Set::SingleAssignment { variable, values, .. }) = statement else { return None };
        if !variable.to_string().eq_ignore_ascii_case("statement_timeout") {
            return None;
        }
        let raw = values.first().map(|v| v.to_string()).unwrap_or_default();
        let raw = raw.trim_matches(|c| c == '\'' || c == '"').trim().to_lowercase();
        let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
        let (number, unit) = raw.split_at(split);
        let scale = match unit.trim() {
            "" | "ms" => 1,
            "s" => 1_000,
            "min" => 60_000,
            "h" => 3_600_000,
            _ => return Some(Err(user_error("22023", format!("invalid value for statement_timeout: {raw}")))),
        };
        let Ok(n) = number.parse::<u64>() else {
            return Some(Err(user_error("22023", format!("invalid value for statement_timeout: {raw}"))));
        };
        let asked = Duration::from_millis(n.saturating_mul(scale));
        Some(Ok(if asked.is_zero() { self.max_timeout } else { asked.min(self.max_timeout) }))
    }

    /// `SET orbas.as_of = …`; `None`: another statement.
    fn as_of(&self, statement: &Statement) -> Option<PgWireResult<Response>> {
        let Statement::Set(Set::SingleAssignment { variable, values, .. }) = statement else { return None };
        if !variable.to_string().eq_ignore_ascii_case(AS_OF_SETTING) {
            return None;
        }
        let raw = values.first().map(|v| v.to_string()).unwrap_or_default();
        Some(parse_as_of(&raw, Utc::now()).and_then(|at| {
            let mut state = self.as_of.lock().map_err(|_| user_error("58030", "the session's state is unusable"))?;
            state.wanted = at;
            Ok(Response::Execution(Tag::new("SET")))
        }))
    }

    /// Refuses what may not run, answers `SET statement_timeout` and `SET orbas.as_of` itself, and lets
    /// the rest through.
    fn respond(&self, statement: &Statement, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        if let Err(e) = allowed(statement) {
            return Some(Err(e));
        }
        if let Some(r) = self.as_of(statement) {
            return Some(r);
        }
        self.statement_timeout(statement).map(|t| {
            t.map(|t| {
                client.metadata_mut().insert(METADATA_STATEMENT_TIMEOUT.into(), t.as_millis().to_string());
                Response::Execution(Tag::new("SET"))
            })
        })
    }
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.respond(statement, client)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        allowed(statement).err().map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.respond(statement, client)
    }
}

/// The handlers of one connection.
struct Handlers<A: AuthSource> {
    startup: Arc<Startup<A>>,
    queries: Arc<Queries<A>>,
}

impl<A: AuthSource> Handlers<A> {
    fn new(conn: Arc<Conn<A>>) -> Self {
        let parser = Arc::new(TenantParser { conn: conn.clone() });
        Handlers { startup: Arc::new(Startup { conn: conn.clone() }), queries: Arc::new(Queries { conn, parser }) }
    }
}

impl<A: AuthSource> PgWireServerHandlers for Handlers<A> {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }
}

struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        debug!(peer = %client.socket_addr(), error = %error, "SQL port error sent to the client");
    }
}

/// Authentication: SCRAM-SHA-256 against the [`AuthSource`], then the tenant's session.
struct Startup<A: AuthSource> {
    conn: Arc<Conn<A>>,
}

impl<A: AuthSource> Startup<A> {
    fn verifier(&self, user: &str, login: Option<&Login<A::Detail>>) -> ScramVerifier {
        let real = login
            .filter(|l| l.refusal.is_none())
            .and_then(|l| l.verifier.as_deref())
            .and_then(|v| ScramVerifier::parse(v).ok());
        real.unwrap_or_else(|| ScramVerifier::mock(user, &self.conn.shared.config.mock_secret))
    }

    async fn record(&self, client: &impl ClientInfo, login: Option<&Login<A::Detail>>, outcome: Outcome) {
        let meta = client.metadata();
        let attempt = Attempt {
            database: meta.get(METADATA_DATABASE).map(String::as_str).unwrap_or_default(),
            user: meta.get(METADATA_USER).map(String::as_str).unwrap_or_default(),
            peer: self.conn.peer,
            application: meta.get("application_name").map(String::as_str),
            outcome,
        };
        self.conn.shared.auth.record(login, attempt).await;
        metrics::counter!("orbas_sql_port_logins_total", "outcome" => outcome_label(outcome)).increment(1);
    }

    fn open_session(&self, tenant: &str) -> PgWireResult<Session> {
        let shared = &self.conn.shared;
        let unavailable = |e: &dyn std::fmt::Display| {
            warn!(error = %e, "opening a SQL session");
            fatal("58030", "the lake cannot be read right now")
        };
        let ctx = Lake::context(shared.config.limits).map_err(|e| unavailable(&e))?;
        setup_pg_catalog(&ctx, CATALOG, EmptyContextProvider).map_err(|e| unavailable(&e))?;
        let ctx = Arc::new(ctx);
        let as_of = Arc::new(std::sync::Mutex::new(AsOf::default()));
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(ReadOnly { max_timeout: shared.config.limits.timeout, as_of: as_of.clone() }),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let service = Arc::new(DfSessionService::new_with_hooks(ctx.clone(), hooks));
        Ok(Session { tenant: tenant.to_owned(), ctx, service, generation: AtomicU64::new(u64::MAX), as_of })
    }
}

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::BadCredentials => "bad_credentials",
        Outcome::Refused(_) => "refused",
        Outcome::Forbidden => "forbidden",
    }
}

#[async_trait]
impl<A: AuthSource> StartupHandler for Startup<A> {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut phase = self.conn.auth.lock().await;
        match (std::mem::replace(&mut *phase, Phase::Done), message) {
            (Phase::Start, PgWireFrontendMessage::Startup(startup)) => {
                if self.conn.full {
                    return Err(fatal("53300", "sorry, too many clients already"));
                }
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                if self.conn.shared.config.require_tls && !client.is_secure() {
                    return Err(fatal("28000", "this server accepts only TLS connections (use sslmode=require)"));
                }
                let meta = client.metadata();
                let user = meta.get(METADATA_USER).cloned().unwrap_or_default();
                let database = meta.get(METADATA_DATABASE).cloned().unwrap_or_else(|| user.clone());
                let login = self.conn.shared.auth.lookup(&database, &user).await.map_err(|e| {
                    warn!(error = %e, "looking up a SQL login");
                    fatal("57P03", "the server cannot check credentials right now; try again")
                })?;
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(vec![SCRAM_SHA_256.into()])))
                    .await?;
                *phase = Phase::Offered { login };
                Ok(())
            }
            (Phase::Offered { login }, PgWireFrontendMessage::PasswordMessageFamily(msg)) => {
                let initial = msg.into_sasl_initial_response()?;
                if initial.auth_method != SCRAM_SHA_256 {
                    return Err(fatal("28000", format!("SASL mechanism {} is not supported", initial.auth_method)));
                }
                let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
                let data = initial.data.unwrap_or_default();
                let first = std::str::from_utf8(&data)
                    .ok()
                    .and_then(|m| ScramServer::new(self.verifier(&user, login.as_ref())).client_first(m).ok())
                    .ok_or_else(|| fatal("08P01", "malformed SCRAM client-first message"))?;
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASLContinue(
                        first.message().as_bytes().to_vec().into(),
                    )))
                    .await?;
                *phase = Phase::Challenged { login, scram: Box::new(first) };
                Ok(())
            }
            (Phase::Challenged { login, scram }, PgWireFrontendMessage::PasswordMessageFamily(msg)) => {
                let response = msg.into_sasl_response()?;
                let proof = std::str::from_utf8(&response.data).ok().map(|m| scram.client_final(m));
                let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
                let outcome = match (&login, &proof) {
                    (None, _) | (_, None | Some(Err(_))) => Outcome::BadCredentials,
                    (Some(l), _) if l.refusal.is_some() => Outcome::Refused(l.refusal.unwrap_or("refused")),
                    (Some(l), Some(Ok(_))) if !l.may_query => Outcome::Forbidden,
                    (Some(_), Some(Ok(_))) => Outcome::Success,
                };
                self.record(client, login.as_ref(), outcome).await;
                match (outcome, login, proof) {
                    (Outcome::Success, Some(login), Some(Ok(success))) => {
                        let session = self.open_session(&login.tenant)?;
                        session.refresh(&self.conn.shared.lake).await?;
                        let _ = self.conn.session.set(session);
                        let timeout = self.conn.shared.config.limits.timeout.as_millis().to_string();
                        client.metadata_mut().insert(METADATA_STATEMENT_TIMEOUT.into(), timeout);
                        client
                            .send(PgWireBackendMessage::Authentication(Authentication::SASLFinal(
                                success.message().as_bytes().to_vec().into(),
                            )))
                            .await?;
                        let (pid, key) = self.conn.shared.pids.generate(client);
                        client.set_pid_and_secret_key(pid, key);
                        let mut params = DefaultServerParameterProvider::default();
                        params.is_superuser = false;
                        params.default_transaction_read_only = true;
                        params.server_version = format!("16.6 (orbas {})", env!("CARGO_PKG_VERSION"));
                        finish_authentication(client, &params).await?;
                        info!(peer = %self.conn.peer, tenant = %login.tenant, "SQL session opened");
                        Ok(())
                    }
                    (Outcome::Forbidden, ..) => {
                        Err(fatal("42501", format!("role of \"{user}\" may not query the lake (needs lake_sql)")))
                    }
                    _ => Err(fatal("28P01", format!("password authentication failed for user \"{user}\""))),
                }
            }
            (_, PgWireFrontendMessage::Startup(_) | PgWireFrontendMessage::PasswordMessageFamily(_)) => {
                Err(fatal("08P01", "unexpected message during authentication"))
            }
            (previous, _) => {
                *phase = previous;
                Ok(())
            }
        }
    }
}

/// Queries of an authenticated connection, run by `datafusion-postgres` on the tenant's session.
struct Queries<A: AuthSource> {
    conn: Arc<Conn<A>>,
    parser: Arc<TenantParser<A>>,
}

type DfStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

#[async_trait]
impl<A: AuthSource> SimpleQueryHandler for Queries<A> {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.conn.session()?;
        session.refresh(&self.conn.shared.lake).await?;
        metrics::counter!("orbas_sql_port_statements_total", "protocol" => "simple").increment(1);
        let started = std::time::Instant::now();
        let result = SimpleQueryHandler::do_query(session.service.as_ref(), client, query).await.map_err(pg_error);
        statement_time("simple", started, result.is_ok());
        result
    }
}

#[async_trait]
impl<A: AuthSource> ExtendedQueryHandler for Queries<A> {
    type Statement = DfStatement;
    type QueryParser = TenantParser<A>;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.conn.session()?;
        metrics::counter!("orbas_sql_port_statements_total", "protocol" => "extended").increment(1);
        let started = std::time::Instant::now();
        let result =
            ExtendedQueryHandler::do_query(session.service.as_ref(), client, portal, max_rows).await.map_err(pg_error);
        statement_time("extended", started, result.is_ok());
        result
    }
}

/// Histogram (labels `protocol`, `outcome`: ok or error): time from a statement's arrival to its
/// answer being ready to stream (rows still in flight to the client are not included).
pub const METRIC_STATEMENT_SECONDS: &str = "orbas_sql_port_statement_seconds";

fn statement_time(protocol: &'static str, started: std::time::Instant, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::histogram!(METRIC_STATEMENT_SECONDS, "protocol" => protocol, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
}

/// Parses (and plans) extended-protocol statements on the connection's session, after bringing it up
/// to the latest lake snapshot (a prepared statement reads the tables as of its preparation).
struct TenantParser<A: AuthSource> {
    conn: Arc<Conn<A>>,
}

impl<A: AuthSource> TenantParser<A> {
    fn inner(&self) -> PgWireResult<Arc<Parser>> {
        Ok(self.conn.session()?.service.query_parser())
    }
}

#[async_trait]
impl<A: AuthSource> QueryParser for TenantParser<A> {
    type Statement = DfStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = self.conn.session()?;
        session.refresh(&self.conn.shared.lake).await?;
        self.inner()?.parse_sql(client, sql, types).await.map_err(pg_error)
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner()?.get_parameter_types(stmt).map_err(pg_error)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner()?.get_result_schema(stmt, column_format).map_err(pg_error)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser as SqlParser;

    use super::*;

    fn code(sql: &str) -> Option<String> {
        let statements = SqlParser::parse_sql(&PostgreSqlDialect {}, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let statement = statements.first().unwrap_or_else(|| panic!("{sql}: no statement"));
        match allowed(statement) {
            Ok(()) => None,
            Err(PgWireError::UserError(info)) => Some(info.code.clone()),
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    #[test]
    fn only_queries_and_session_statements_run() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "EXPLAIN SELECT * FROM accounts",
            "EXPLAIN ANALYZE SELECT * FROM accounts",
            "SHOW search_path",
            "SET search_path = public",
            "SET statement_timeout = 1000",
            "SET TIME ZONE 'UTC'",
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "DECLARE c CURSOR FOR SELECT 1",
            "FETCH 10 FROM c",
            "CLOSE c",
        ] {
            assert_eq!(code(ok), None, "{ok}");
        }
        for (sql, expected) in [
            ("INSERT INTO accounts VALUES (1)", "25006"),
            ("UPDATE accounts SET name = 'x'", "25006"),
            ("DELETE FROM accounts", "25006"),
            ("CREATE TABLE x (a int)", "25006"),
            ("CREATE VIEW v AS SELECT 1", "25006"),
            ("DROP TABLE accounts", "25006"),
            ("ALTER TABLE accounts ADD COLUMN x int", "25006"),
            ("TRUNCATE accounts", "25006"),
            ("COPY accounts TO '/tmp/x'", "25006"),
            ("EXPLAIN ANALYZE INSERT INTO accounts VALUES (1)", "25006"),
            ("SET datafusion.execution.batch_size = 1", "42501"),
            ("SET ROLE admin", "42501"),
            ("PREPARE p AS INSERT INTO accounts VALUES (1)", "0A000"),
            ("LISTEN x", "0A000"),
        ] {
            assert_eq!(code(sql).as_deref(), Some(expected), "{sql}");
        }
    }

    #[test]
    fn as_of_takes_rfc3339_times_and_default() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z").map(|t| t.with_timezone(&Utc));
        let Ok(now) = now else { panic!("now") };
        let at = |raw: &str| parse_as_of(raw, now).map(|t| t.map(|t| t.to_rfc3339())).map_err(|e| e.to_string());
        assert_eq!(at("'2026-11-23T10:00:00Z'"), Ok(Some("2026-11-23T10:00:00+00:00".into())));
        assert_eq!(at("'2026-11-23 11:30:00+01:00'"), Ok(Some("2026-11-23T10:30:00+00:00".into())));
        assert_eq!(at("DEFAULT"), Ok(None));
        assert_eq!(at("'latest'"), Ok(None));
        assert!(at("'yesterday'").is_err_and(|e| e.contains("22023") || e.contains("RFC 3339")));
        assert!(at("'2026-11-24T00:00:00Z'").is_err_and(|e| e.contains("future")));
    }

    #[test]
    fn statement_timeout_is_capped_at_the_servers_limit() {
        let hook = ReadOnly { max_timeout: Duration::from_secs(30), as_of: Arc::default() };
        let timeout = |sql: &str| {
            let statements = SqlParser::parse_sql(&PostgreSqlDialect {}, sql).unwrap_or_else(|e| panic!("{e}"));
            hook.statement_timeout(&statements[0]).map(|r| r.map_err(|e| e.to_string()))
        };
        assert_eq!(timeout("SET statement_timeout = 500"), Some(Ok(Duration::from_millis(500))));
        assert_eq!(timeout("SET statement_timeout = '2s'"), Some(Ok(Duration::from_secs(2))));
        assert_eq!(timeout("SET statement_timeout = '1min'"), Some(Ok(Duration::from_secs(30))));
        assert_eq!(timeout("SET statement_timeout = 0"), Some(Ok(Duration::from_secs(30))));
        assert!(matches!(timeout("SET statement_timeout = 'soon'"), Some(Err(_))));
        assert_eq!(timeout("SET search_path = public"), None);
    }

    #[test]
    fn engine_errors_map_to_sqlstates() {
        let ctx = SessionContext::new();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("{e}"));
        let state = |sql: &str| rt.block_on(async { ctx.sql(sql).await.err().map(|e| sqlstate(&e)) });
        assert_eq!(state("SELEC 1"), Some("42601"));
        assert_eq!(state("SELECT * FROM nowhere"), Some("42P01"));
        assert_eq!(state("SELECT nope FROM (SELECT 1 AS a)"), Some("42703"));
        assert_eq!(state("SELECT 1"), None);
    }
}
