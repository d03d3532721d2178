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
    /// Input the caller can fix (an unknown entity, an empty training set, …).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
