//! The intelligence stage's errors.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("DataFusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("Arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("CRM database: {0}")]
    Db(#[from] orbas_oltp::Error),
    #[error("lake: {0}")]
    Lake(#[from] orbas_warehouse::Error),
    /// A series could not be forecast (too short, a model that did not fit, an invalid setting).
    #[error("forecast: {0}")]
    Forecast(String),
    /// The embedding model's files are not where the configuration points.
    #[error(
        "no sentence-embedding model in {dir} (missing {files}): run scripts/setup.sh, or point \
         ORBAS_MODELS / --model-dir at a directory holding all-MiniLM-L6-v2"
    )]
    ModelMissing { dir: std::path::PathBuf, files: String },
    /// The model's files are there but could not be loaded or run.
    #[error("sentence-embedding model in {dir}: {what}")]
    Model {
        dir: std::path::PathBuf,
        what: String,
        #[source]
        source: Box<candle_core::Error>,
    },
    #[error("tokenizer: {what}")]
    Tokenizer {
        what: String,
        #[source]
        source: tokenizers::Error,
    },
    #[error("reading {path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}")]
    Json {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Input the caller can fix (an unknown entity, an empty training set, …).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
