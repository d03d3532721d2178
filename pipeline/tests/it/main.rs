//! Change data capture against a real Postgres (testkit) and a real Kafka-protocol broker (tansu):
//! the service runs in-process, a plain librdkafka consumer reads what it published.

mod cdc;
mod resnapshot;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orbas_pipeline::broker::{Broker, BrokerOptions};
use orbas_pipeline::catalog::Selection;
use orbas_pipeline::cdc::CdcConfig;
use orbas_pipeline::encode::EncoderSettings;
use orbas_pipeline::kafka::KafkaSettings;
use orbas_testkit::TestDb;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub fn broker() -> Broker {
    Broker::start(BrokerOptions::default()).expect("start tansu (run ./setup.sh to install it)")
}

pub fn config(db: &TestDb, broker: &Broker) -> CdcConfig {
    CdcConfig {
        database_url: db.admin_url.clone(),
        publication: "orbas_cdc".into(),
        slot: format!("s_{}", &db.name[2..18]),
        kafka: KafkaSettings {
            brokers: broker.bootstrap(),
            partitions: 1,
            replication_factor: 1,
            extra: vec![],
            topic_config: vec![],
        },
        encoder: EncoderSettings {
            server_name: "orbas".into(),
            database: db.name.clone(),
            version: "test".into(),
            with_schemas: false,
            mask_key: None,
        },
        selection: Selection::default(),
        tombstones: true,
        snapshot_parallelism: 2,
        status_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::ZERO,
    }
}

/// The service running in this process.
#[derive(Debug)]
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<orbas_pipeline::Result<()>>,
}

pub fn start(cfg: CdcConfig) -> Running {
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(orbas_pipeline::cdc::run(cfg, async move {
        let _ = rx.await;
    }));
    Running { stop, task }
}

impl Running {
    /// Graceful stop; returns what the service returned.
    pub async fn stop(self) -> orbas_pipeline::Result<()> {
        let _ = self.stop.send(());
        self.task.await.expect("cdc task")
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub offset: i64,
    pub key: Option<Value>,
    pub value: Option<Value>,
}

impl Msg {
    pub fn op(&self) -> Option<&str> {
        self.value.as_ref()?.get("op")?.as_str()
    }
    pub fn after(&self, col: &str) -> Option<&Value> {
        self.value.as_ref()?.get("after")?.get(col)
    }
    pub fn before(&self, col: &str) -> Option<&Value> {
        self.value.as_ref()?.get("before")?.get(col)
    }
    pub fn source(&self, field: &str) -> Option<&Value> {
        self.value.as_ref()?.get("source")?.get(field)
    }
}

/// Reads `topics` (partition 0, from the beginning) until `done` says so or `timeout` passes.
pub async fn consume(
    brokers: &str,
    topics: &[String],
    timeout: Duration,
    done: impl Fn(&[Msg]) -> bool + Send + 'static,
) -> Vec<Msg> {
    let brokers = brokers.to_owned();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("test-{}", uuid::Uuid::now_v7()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for t in &topics {
            tpl.add_partition_offset(t, 0, Offset::Beginning).expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while Instant::now() < deadline && !done(&out) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let parse = |b: Option<&[u8]>| b.map(|b| serde_json::from_slice(b).expect("JSON message"));
                out.push(Msg {
                    topic: m.topic().to_owned(),
                    offset: m.offset(),
                    key: parse(m.key()),
                    value: parse(m.payload()),
                });
            }
        }
        out
    })
    .await
    .expect("consumer thread")
}

/// Messages per topic.
pub fn by_topic(msgs: &[Msg]) -> BTreeMap<String, Vec<Msg>> {
    let mut out: BTreeMap<String, Vec<Msg>> = BTreeMap::new();
    for m in msgs {
        out.entry(m.topic.clone()).or_default().push(m.clone());
    }
    out
}

pub use orbas_testkit::eventually;
