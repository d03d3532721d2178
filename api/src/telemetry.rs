//! Logging setup: human-readable by default, JSON lines with `--log-format json`; `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    // delta-rs 1.1 warns on every MERGE that a file-skipping metric is missing and was derived: noise
    // at one line per sink batch, so the default keeps only its errors. Its kernel logs every snapshot
    // it builds and every scan at info (several lines per lake query): the default keeps its warnings.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,deltalake_core::operations::merge=error,buoyant_kernel=warn")
    });
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A subscriber may already be installed (tests); that is fine.
    drop(result);
}
