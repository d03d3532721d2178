//! `orbas serve`: the HTTP API on ORBAS_HTTP_ADDR (with `POST /v1/sql` over the lake at ORBAS_LAKE
//! when that is set).

use orbas_oltp::db;

use crate::server::Server;
use crate::settings::Settings;

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let app_pool = db::connect(&settings.database.app_url()?, settings.database.max_connections).await?;
    let lake = match std::env::var("ORBAS_LAKE") {
        Ok(l) if !l.is_empty() => Some(super::pipeline::lake_url(&l)?),
        _ => None,
    };
    let server = Server::build_with_lake(settings.http_addr, app_pool, settings.jwt_secret()?, lake).await?;
    println!("listening on http://{}", server.local_addr()?);
    server.run_until_stopped(super::shutdown_signal()).await
}
