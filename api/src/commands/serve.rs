//! `orbas serve`: the HTTP API on ORBAS_HTTP_ADDR (with `POST /v1/sql` over the lake at ORBAS_LAKE
//! when that is set, and `GET /v1/search` over the index at ORBAS_SEARCH_DIR — read-only, following
//! the commits of `orbas search index` — when that is set).

use orbas_oltp::db;

use crate::server::Server;
use crate::settings::Settings;

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let app_pool = db::connect(&settings.database.app_url()?, settings.database.max_connections).await?;
    let lake = match std::env::var("ORBAS_LAKE") {
        Ok(l) if !l.is_empty() => Some(super::pipeline::lake_url(&l)?),
        _ => None,
    };
    let search = match std::env::var("ORBAS_SEARCH_DIR") {
        Ok(d) if !d.is_empty() => Some(super::search::open_follower(std::path::Path::new(&d)).await?),
        _ => None,
    };
    let server = Server::build_with_search(settings.http_addr, app_pool, settings.jwt_secret()?, lake, search).await?;
    println!("listening on http://{}", server.local_addr()?);
    server.run_until_stopped(super::shutdown_signal()).await
}
