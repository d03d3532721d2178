//! `orbas serve`: the HTTP API on ORBAS_HTTP_ADDR.

use orbas_oltp::db;

use crate::server::Server;
use crate::settings::Settings;

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let app_pool = db::connect(&settings.database.app_url()?, settings.database.max_connections).await?;
    let server = Server::build(settings.http_addr, app_pool, settings.jwt_secret()?).await?;
    println!("listening on http://{}", server.local_addr()?);
    server.run_until_stopped(super::shutdown_signal()).await
}
