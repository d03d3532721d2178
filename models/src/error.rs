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
    /// The language model did not answer within the configured time.
    #[error("the language model did not answer within {after:?}")]
    LlmTimeout { after: std::time::Duration },
    /// The language model refused the API key (401/403): the key is missing, wrong or revoked.
    #[error("the language model refused the API key (HTTP {status}); check the configured key")]
    LlmAuth { status: u16 },
    /// The language model kept answering 429 after every retry.
    #[error("the language model is rate-limiting (HTTP 429 after {attempts} attempts); try again later")]
    LlmRateLimited { attempts: u32 },
    /// Any other non-success status (after retries for 5xx); `body` is the start of the server's reply.
    #[error("the language model answered HTTP {status}: {body}")]
    LlmStatus { status: u16, body: String },
    /// The server's reply is not the OpenAI chat-completions format.
    #[error("malformed answer from the language model: {what}")]
    LlmMalformed { what: String },
    /// The request could not be sent or the reply not read (connection refused, reset, …).
    #[error("language model: {what}")]
    LlmHttp {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// A blocking task (CPU work moved off the async executor) panicked or was cancelled.
    #[error("the {what} task failed")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// One tenant's turn of a background job ran past its deadline and was abandoned.
    #[error("one tenant's {job} did not finish within {after:?} and was abandoned")]
    Overran { job: &'static str, after: std::time::Duration },
    /// Input the caller can fix (an unknown entity, an empty training set, …).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Whether trying again later may succeed (timeouts, rate limits, server and connection errors).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::LlmTimeout { .. } | Error::LlmRateLimited { .. } | Error::LlmHttp { .. } => true,
            Error::LlmStatus { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use orbas_oltp::Chain;

    #[test]
    fn a_chain_names_the_root_cause_once() {
        let root = sqlx::Error::Protocol("the database is busy".into());
        let e = Error::from(orbas_oltp::Error::from(root));
        assert_eq!(e.to_string(), "CRM database: database error", "the message alone hides the cause");
        assert_eq!(
            Chain(&e).to_string(),
            "CRM database: database error: encountered unexpected or invalid data: the database is busy"
        );
        let plain = Error::Invalid("no outcomes".into());
        assert_eq!(Chain(&plain).to_string(), "no outcomes");
    }
}
