//! Kafka output: an idempotent producer (librdkafka), topic creation, and the acknowledgement
//! tracker that decides how far the replication slot may be confirmed.
//!
//! Every source transaction gets a sequence number; each message carries it as its delivery opaque.
//! A transaction is done when it is closed (its commit was read) and the broker acknowledged all its
//! messages. The confirmed LSN is the end LSN of the last transaction of the longest done prefix, so
//! the slot never moves past an event Kafka does not hold. A delivery that fails after librdkafka's
//! retries poisons the tracker and the service stops: restarting from the slot re-sends, never skips.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message as _};
use rdkafka::producer::{BaseRecord, Producer as _, ProducerContext, ThreadedProducer};
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::lsn::Lsn;

#[derive(Debug, Default)]
struct Txn {
    seq: u64,
    outstanding: u64,
    closed: bool,
    end_lsn: Lsn,
}

#[derive(Debug, Default)]
struct TrackerState {
    next_seq: u64,
    /// Open and unacknowledged transactions, in commit order.
    queue: VecDeque<Txn>,
    failure: Option<String>,
}

/// Which events the broker holds; see the module docs.
#[derive(Debug, Default)]
pub struct AckTracker {
    state: Mutex<TrackerState>,
    acked: AtomicU64,
    delivered: AtomicU64,
}

impl AckTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a transaction; returns its sequence number (the messages' opaque).
    pub fn open(&self) -> u64 {
        let mut s = self.lock();
        let seq = s.next_seq;
        s.next_seq += 1;
        s.queue.push_back(Txn { seq, ..Txn::default() });
        seq
    }

    /// One more message of `seq` handed to the producer.
    pub fn sent(&self, seq: u64) {
        let mut s = self.lock();
        if let Some(t) = s.queue.iter_mut().rev().find(|t| t.seq == seq) {
            t.outstanding += 1;
        }
    }

    /// The transaction's last message was sent; confirming `end_lsn` is safe once all are acked.
    pub fn close(&self, seq: u64, end_lsn: Lsn) {
        let mut s = self.lock();
        if let Some(t) = s.queue.iter_mut().rev().find(|t| t.seq == seq) {
            t.closed = true;
            t.end_lsn = end_lsn;
        }
        self.advance(&mut s);
    }

    fn acked_one(&self, seq: u64) {
        let mut s = self.lock();
        if let Some(t) = s.queue.iter_mut().find(|t| t.seq == seq) {
            t.outstanding = t.outstanding.saturating_sub(1);
        }
        self.advance(&mut s);
    }

    fn advance(&self, s: &mut TrackerState) {
        while s.queue.front().is_some_and(|t| t.closed && t.outstanding == 0) {
            if let Some(t) = s.queue.pop_front() {
                self.acked.fetch_max(t.end_lsn.0, Ordering::AcqRel);
            }
        }
    }

    fn failed(&self, why: String) {
        let mut s = self.lock();
        if s.failure.is_none() {
            s.failure = Some(why);
        }
    }

    /// The LSN up to which every event is in Kafka.
    pub fn acked(&self) -> Lsn {
        Lsn(self.acked.load(Ordering::Acquire))
    }

    /// Messages the broker acknowledged since start.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Nothing in flight and nothing open: everything read so far is in Kafka. Then a position the
    /// server reports (a keepalive's end of WAL) can be confirmed as is.
    pub fn confirm_if_idle(&self, lsn: Lsn) -> bool {
        let s = self.lock();
        if s.queue.is_empty() {
            self.acked.fetch_max(lsn.0, Ordering::AcqRel);
            true
        } else {
            false
        }
    }

    /// Transactions not yet fully acknowledged.
    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    /// The first delivery failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }
}

/// Routes delivery reports to the tracker.
#[derive(Debug, Clone)]
pub struct AckContext {
    pub tracker: Arc<AckTracker>,
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let seq = seq as u64;
        match result {
            Ok(_) => {
                self.tracker.delivered.fetch_add(1, Ordering::Relaxed);
                self.tracker.acked_one(seq);
            }
            Err((e, msg)) => {
                warn!(error = %e, topic = msg.topic(), "Kafka did not accept an event");
                self.tracker.failed(format!("{e} (topic {})", msg.topic()));
            }
        }
    }
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    /// Partitions of topics this service creates.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Extra librdkafka properties (`key=value`), applied last.
    pub extra: Vec<(String, String)>,
    /// Topic-level configuration of the topics this service creates (e.g. `cleanup.policy` =
    /// `compact,delete`, so compaction drops an erased key's history after its tombstone).
    pub topic_config: Vec<(String, String)>,
}

/// The producer with its tracker.
pub struct Output {
    producer: ThreadedProducer<AckContext>,
    pub tracker: Arc<AckTracker>,
    settings: KafkaSettings,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("brokers", &self.settings.brokers).finish_non_exhaustive()
    }
}

impl Output {
    pub fn new(settings: KafkaSettings) -> Result<Self> {
        let tracker = Arc::new(AckTracker::default());
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &settings.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "500000")
            .set("queue.buffering.max.kbytes", "524288")
            .set("message.timeout.ms", "300000")
            .set("client.id", "orbas-cdc");
        for (k, v) in &settings.extra {
            cfg.set(k, v);
        }
        let producer: ThreadedProducer<AckContext> =
            cfg.create_with_context(AckContext { tracker: Arc::clone(&tracker) })?;
        Ok(Output { producer, tracker, settings })
    }

    /// Creates the topics that do not exist yet.
    pub async fn ensure_topics(&self, topics: &[String]) -> Result<()> {
        if topics.is_empty() {
            return Ok(());
        }
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.settings.brokers);
        let admin: AdminClient<DefaultClientContext> = cfg.create()?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                let topic = NewTopic::new(
                    t,
                    self.settings.partitions,
                    TopicReplication::Fixed(self.settings.replication_factor),
                );
                self.settings.topic_config.iter().fold(topic, |topic, (k, v)| topic.set(k, v))
            })
            .collect();
        let results =
            admin.create_topics(&new, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))).await?;
        for r in results {
            match r {
                Ok(t) => debug!(topic = %t, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => {
                    return Err(Error::Kafka(KafkaError::AdminOp(e)))
                        .inspect_err(|_| warn!(topic = %t, "cannot create topic"));
                }
            }
        }
        Ok(())
    }

    /// Partitions of `topic`, as the broker reports them. librdkafka's metadata request blocks its
    /// caller (up to 10 s with the broker away), so it runs on the blocking pool, never on an async
    /// worker.
    pub async fn partitions(&self, topic: &str) -> Result<i32> {
        let producer = self.producer.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let md = producer.client().fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            let n = md.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len());
            Ok(i32::try_from(n).unwrap_or(i32::MAX).max(1))
        })
        .await?
    }

    /// Queues one message of transaction `seq`; waits while librdkafka's queue is full.
    pub async fn send(
        &self,
        seq: u64,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<()> {
        self.tracker.sent(seq);
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, usize::try_from(seq).unwrap_or(usize::MAX));
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => {
                    self.tracker.acked_one(seq);
                    return Err(e.into());
                }
            }
        }
    }

    /// Waits until everything queued is acknowledged (or `timeout`). librdkafka's flush blocks its
    /// caller for as long as the broker is away, so it runs on the blocking pool: a stop with the
    /// broker gone must not hold an async worker (and every task queued behind it) for `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(timeout)).await??;
        Ok(())
    }

    /// Waits until every opened transaction is acknowledged or a delivery failed.
    pub async fn drain(&self) -> Result<()> {
        loop {
            if let Some(f) = self.tracker.failure() {
                return Err(Error::Delivery(f));
            }
            if self.tracker.pending() == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_only_fully_acknowledged_prefixes() {
        let t = AckTracker::default();
        let a = t.open();
        t.sent(a);
        t.sent(a);
        t.close(a, Lsn(100));
        let b = t.open();
        t.sent(b);
        t.close(b, Lsn(200));
        assert_eq!(t.acked(), Lsn::ZERO);
        t.acked_one(b);
        assert_eq!(t.acked(), Lsn::ZERO, "b is done but a is not: the slot must not pass a");
        t.acked_one(a);
        assert_eq!(t.acked(), Lsn::ZERO);
        t.acked_one(a);
        assert_eq!(t.acked(), Lsn(200));
        let c = t.open();
        assert!(!t.confirm_if_idle(Lsn(300)), "an open transaction blocks keepalive confirmation");
        t.close(c, Lsn(250));
        assert_eq!(t.acked(), Lsn(250), "a transaction without events is done at once");
        assert!(t.confirm_if_idle(Lsn(300)));
        assert_eq!(t.acked(), Lsn(300));
        t.failed("boom".into());
        assert_eq!(t.failure().as_deref(), Some("boom"));
    }
}
