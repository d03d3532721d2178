//! `orbas`: the one binary. Parses the command line and hands over to `orbas_api::commands`.

use clap::Parser;
use orbas_api::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    orbas_api::telemetry::init(cli.log_format);
    match orbas_api::commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
