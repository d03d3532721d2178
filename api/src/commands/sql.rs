//! `orbas sql`: the SQL port over the lake (see `orbas_warehouse::wire`), authenticated against the
//! CRM's users and API keys ([`crate::sql_port::CrmLogins`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use orbas_oltp::db::{self, Db};
use orbas_warehouse::sql::{Lake, Limits};
use orbas_warehouse::wire::{self, WireConfig};
use secrecy::{ExposeSecret, SecretString};

use crate::cli::SqlArgs;
use crate::settings::Settings;
use crate::sql_port::CrmLogins;

pub async fn run(settings: &Settings, args: &SqlArgs) -> anyhow::Result<()> {
    let pool = db::connect(&settings.database.app_url()?, settings.database.max_connections).await?;
    let lake = Arc::new(Lake::new(super::pipeline::lake_url(&settings.lake(args.lake.as_deref()))?));
    let addr = args.listen.unwrap_or(settings.sql_addr);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("bind the SQL port {addr}"))?;
    let config = config(settings, args)?;
    println!(
        "SQL port on postgres://{} (user = e-mail or API-key prefix, dbname = tenant slug)",
        listener.local_addr()?
    );
    let auth = Arc::new(CrmLogins::new(Db::new(pool)));
    let _metrics = match args.metrics_addr {
        Some(addr) => Some(crate::observe::serve_metrics(addr, "SQL port").await?),
        None => None,
    };
    tokio::select! {
        served = wire::serve(listener, lake, auth, config) => served.context("SQL port"),
        () = super::shutdown_signal() => Ok(()),
    }
}

/// The port's configuration from the flags: limits, TLS, and the mock-verifier secret (derived from
/// the access-token key when there is one, so it is stable across restarts).
pub(super) fn config(settings: &Settings, args: &SqlArgs) -> anyhow::Result<WireConfig> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(wire::tls_from_pem(cert, key)?),
        _ => None,
    };
    Ok(WireConfig {
        limits: Limits {
            timeout: Duration::from_millis(args.statement_timeout_ms),
            memory_bytes: usize::try_from(args.memory_mb).unwrap_or(512) * 1024 * 1024,
        },
        tls,
        require_tls: args.require_tls,
        max_connections: usize::try_from(args.max_connections).unwrap_or(64),
        mock_secret: mock_secret(settings.jwt_secret.as_ref()),
    })
}

/// The secret of the mock verifiers for unknown users: derived from the access-token key when there
/// is one (stable across restarts, so one unknown name always sees the same salt), else random.
pub(super) fn mock_secret(jwt_secret: Option<&SecretString>) -> Vec<u8> {
    match jwt_secret {
        Some(s) => format!("sql-port-mock:{}", s.expose_secret()).into_bytes(),
        None => uuid::Uuid::new_v4().as_bytes().to_vec(),
    }
}
