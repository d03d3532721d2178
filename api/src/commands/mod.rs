//! Subcommand implementations. Each builds what it needs from [`Settings`] and runs it.

mod bench_all;
mod bench_cdc;
mod bench_chaos;
mod bench_dashboards;
mod bench_decisions;
mod bench_embed;
mod bench_freshness;
mod bench_kpi;
mod bench_search;
mod bench_seed;
mod bench_sink;
mod bench_tpch;
mod bench_vectors;
mod demo;
mod doctor;
mod erase;
mod lake;
mod migrate;
mod models;
mod pipeline;
mod search;
mod seed;
mod sentiment;
mod serve;
mod sql;

use crate::cli::{BenchCommand, Cli, Command, PipelineCommand};
use crate::settings::Settings;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(&cli.settings)?;
    match cli.command {
        Command::Demo(args) => demo::run(settings, args).await,
        Command::Migrate => migrate::run(&settings).await,
        Command::Seed(args) => seed::run(&settings, &args).await,
        Command::Serve(args) => serve::run(&settings, &args).await,
        Command::Doctor(args) => doctor::run(&settings, &args).await,
        Command::Sql(args) => sql::run(&settings, &args).await,
        Command::Lake(cmd) => lake::run(&settings, cmd).await,
        Command::Models(cmd) => models::run(&settings, cmd).await,
        Command::Pipeline(p) => match *p {
            PipelineCommand::Cdc(args) => pipeline::cdc(&settings, *args).await,
            PipelineCommand::Resnapshot(args) => pipeline::resnapshot(&settings, &args).await,
            PipelineCommand::Sink(args) => pipeline::sink(&settings, &args).await,
        },
        Command::Bench(BenchCommand::Seed(args)) => bench_seed::run(&settings, &args).await,
        Command::Bench(BenchCommand::Cdc(args)) => bench_cdc::run(&settings, &args).await,
        Command::Bench(BenchCommand::Chaos(args)) => bench_chaos::run(&args).await,
        Command::Bench(BenchCommand::Sink(args)) => bench_sink::run(&settings, &args).await,
        Command::Bench(BenchCommand::Freshness(args)) => bench_freshness::run(&settings, &args).await,
        Command::Bench(BenchCommand::Kpi(args)) => bench_kpi::run(&settings, &args).await,
        Command::Bench(BenchCommand::Dashboards(args)) => bench_dashboards::run(&settings, &args).await,
        Command::Bench(BenchCommand::Tpch(args)) => bench_tpch::run(&args).await,
        Command::Bench(BenchCommand::Decisions(args)) => bench_decisions::run(&settings, &args).await,
        Command::Bench(BenchCommand::Search(args)) => bench_search::run(&settings, &args).await,
        Command::Bench(BenchCommand::Embed(args)) => bench_embed::run(&args).await,
        Command::Bench(BenchCommand::Vectors(args)) => bench_vectors::run(&args).await,
        Command::Bench(BenchCommand::All(args)) => bench_all::run(&args).await,
        Command::Search(cmd) => search::run(&settings, cmd).await,
        Command::Erase(args) => erase::run(&settings, &args).await,
    }
}

/// A peer's script in the repository, e.g. `bench/models/forecast_eval.py`: found from the working
/// directory up (a checkout the binary runs in), else in the checkout the binary was built from. The
/// build path alone breaks once a binary built in one clone (a shared target directory, CI) runs in
/// another.
pub(crate) fn repo_file(rel: &str) -> std::path::PathBuf {
    let from_cwd = std::env::current_dir().ok().and_then(|d| d.ancestors().map(|a| a.join(rel)).find(|p| p.is_file()));
    from_cwd.unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel))
}

/// The benchmark/test virtualenv (`ORBAS_VENV`, else `~/.cache/orbas/venv`; `scripts/setup.sh` makes it).
pub(crate) fn venv() -> std::path::PathBuf {
    std::env::var_os("ORBAS_VENV").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/orbas/venv")
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
