//! `orbas serve`: the HTTP API on ORBAS_HTTP_ADDR, with `POST /v1/sql` over the lake at ORBAS_LAKE
//! when that is set — and then also the intelligence jobs (`orbas models run`: retraining, sentiment,
//! next-best actions, forecasts) unless `--without-models` leaves them to a process of their own — and
//! `GET /v1/search` over the index at ORBAS_SEARCH_DIR (read-only, following the commits of
//! `orbas search index`) when that is set, and — with a lake and ORBAS_SMTP_URL (and ORBAS_MAIL_FROM) —
//! the sender of scheduled reports.

use std::sync::Arc;

use anyhow::Context as _;
use orbas_models::service::Service;
use orbas_oltp::db::{self, Db};
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::server::{Extras, Server};
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: &ServeArgs) -> anyhow::Result<()> {
    let app_pool = db::connect(&settings.database.app_url()?, settings.database.max_connections).await?;
    // Only a configured lake (`ORBAS_LAKE`, `--lake-url`, `lake.url`): without one the server runs
    // without SQL, dashboards and the intelligence jobs.
    let lake = match settings.lake_url.as_deref() {
        Some(l) if !l.is_empty() => Some(super::pipeline::lake_url(l)?),
        _ => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let jobs = match (&lake, args.without_models) {
        (Some(url), false) => {
            let admin =
                db::connect(settings.database.admin_url().context("the models list tenants as admin")?, 2).await?;
            let lake = Arc::new(orbas_warehouse::sql::Lake::new(url.clone()));
            let service = Service { admin, db: Db::new(app_pool.clone()), lake };
            println!("models: retraining, sentiment, next-best actions and forecasts over {url}");
            Some(service.spawn(args.schedule.schedule(), stop_rx.clone()))
        }
        _ => None,
    };
    // Headless Chromium prints PDF reports and the charts of HTML mails (started on first use).
    let renderer = orbas_dashboards::render::Renderer::from_env()?.map(Arc::new);
    match &renderer {
        Some(r) => println!("reports: PDFs and mail charts rendered by {}", r.path().display()),
        None => println!("reports: no Chromium found (ORBAS_CHROMIUM): PDF reports are refused, mails carry tables"),
    }
    let reports = match (&lake, std::env::var("ORBAS_SMTP_URL")) {
        (Some(url), Ok(smtp)) if !smtp.is_empty() => {
            let from = std::env::var("ORBAS_MAIL_FROM").unwrap_or_else(|_| "Orbas <reports@localhost>".into());
            let mailer = orbas_dashboards::report::Mailer::new(&smtp, &from)?;
            let admin =
                db::connect(settings.database.admin_url().context("the report sender lists tenants as admin")?, 2)
                    .await?;
            let engine =
                Arc::new(orbas_dashboards::engine::Engine::new(Arc::new(orbas_warehouse::sql::Lake::new(url.clone()))));
            let sender = orbas_dashboards::scheduler::Scheduler::new(
                admin,
                Db::new(app_pool.clone()),
                engine,
                Arc::new(mailer),
                orbas_dashboards::scheduler::SchedulerConfig::default(),
            )
            .with_renderer(renderer.clone());
            println!("reports: scheduled reports mailed through {}", redact(&smtp));
            Some(tokio::spawn(sender.run(stop_rx.clone())))
        }
        _ => None,
    };
    let search = match std::env::var("ORBAS_SEARCH_DIR") {
        Ok(d) if !d.is_empty() => super::search::follower_slot(std::path::Path::new(&d)).await?,
        _ => Default::default(),
    };
    let extras = Extras {
        lake,
        search,
        secrets: settings.secrets_key()?.map(Arc::new),
        default_llm: orbas_models::LlmConfig::from_env(),
        renderer: renderer.clone(),
    };
    let server = Server::build_with(settings.http_addr, app_pool, settings.jwt_secret()?, extras).await?;
    println!("listening on http://{}", server.local_addr()?);
    let served = server.run_until_stopped(super::shutdown_signal()).await;
    let _ = stop_tx.send(true);
    drop(jobs);
    if let Some(r) = reports {
        let _ = r.await;
    }
    if let Some(r) = renderer {
        r.close().await;
    }
    served
}

/// An SMTP URL without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(an unparsable URL)".into(),
    }
}
