//! The lakehouse's errors.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Delta Lake: {0}")]
    Delta(#[from] deltalake::DeltaTableError),
    #[error("DataFusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("Arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    #[error("SQL: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("table {table}: {why}")]
    Table { table: String, why: String },
    /// An event the sink cannot store without losing or changing data; the sink stops rather than skip it.
    #[error("{topic} partition {partition} offset {offset}: {why}")]
    Event { topic: String, partition: i32, offset: i64, why: String },
    /// The broker's offsets went backwards or the topic is not the one the lake was built from.
    #[error(
        "{topic} partition {partition}: {why}. The lake holds offsets up to {stored} from this topic; \
         continuing would skip or repeat data. If the topic was deliberately re-created, start the sink with \
         `--new-incarnation {topic}` (rows are then re-applied under a new incarnation; silver ignores \
         events that are not newer than its rows)"
    )]
    OffsetsWentBack { topic: String, partition: i32, stored: i64, why: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
