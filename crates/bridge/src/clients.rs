//! The same application code on a Log and on a Kafka cluster: the traits
//! [`Produce`] and [`Consume`], in Kafka's vocabulary, implemented by
//! streamlog's [`Producer`](streamlog::Producer) and
//! [`Consumer`](streamlog::Consumer) and by [`KafkaProducer`] and
//! [`KafkaConsumer`] (librdkafka).
//!
//! What differs between the two sides (README "Outgrowing one machine"):
//! - **Durability.** On a Log, `send` returns once the record is in the log
//!   and the `SyncPolicy` says when it is on disk. On Kafka, `send`
//!   returns once the partition's in-sync replicas have it (`acks=all`,
//!   idempotent), in their page caches: Kafka's durability is replication.
//! - **Partitions of keyed records** are the same: both use murmur2 of the
//!   key, as Kafka's Java client does ([`KafkaProducer`] sets librdkafka's
//!   `partitioner` to `murmur2_random`).
//! - **Rebalances** on a Log happen inside `poll` of the members of one
//!   process, at once; on Kafka they go through the group coordinator and
//!   take a round trip per member, and a member that dies is noticed only
//!   after `session.timeout.ms`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use streamlog::{Record, TopicPartition};

use crate::error::{Error, Result};
use crate::kafka::{self, CALL_TIMEOUT};

/// A record to send: Kafka's `ProducerRecord` without its topic.
///
/// # Example
/// ```
/// use streamlog_bridge::ProducerRecord;
/// let r = ProducerRecord::new(b"v".to_vec()).key(b"k".to_vec()).header("h", b"x".to_vec());
/// assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The key; `None` for none.
    pub key: Option<Vec<u8>>,
    /// The value; `None` for null.
    pub value: Option<Vec<u8>>,
    /// Headers, in order; a `None` value is null.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The timestamp in ms; `None` for now.
    pub timestamp: Option<i64>,
    /// The partition; `None` lets the key choose (murmur2, as Kafka).
    pub partition: Option<u32>,
}

impl ProducerRecord {
    /// A record with this value.
    pub fn new(value: Vec<u8>) -> Self {
        ProducerRecord {
            value: Some(value),
            ..Default::default()
        }
    }

    /// With this key.
    pub fn key(mut self, key: Vec<u8>) -> Self {
        self.key = Some(key);
        self
    }

    /// With one more header.
    pub fn header(mut self, name: impl Into<String>, value: Vec<u8>) -> Self {
        self.headers.push((name.into(), Some(value)));
        self
    }

    /// To this partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// With this timestamp (ms since the epoch).
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    fn to_log(&self) -> Record<'_> {
        let mut r = Record::from_value(self.value.as_deref());
        if let Some(k) = &self.key {
            r = r.key(k.as_slice());
        }
        if let Some(t) = self.timestamp {
            r = r.timestamp(t);
        }
        for (k, v) in &self.headers {
            r = match v {
                Some(v) => r.header(k.as_str(), v.as_slice()),
                None => r.null_header(k.as_str()),
            };
        }
        r
    }
}

/// A record received: Kafka's `ConsumerRecord`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset.
    pub offset: u64,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value; `None` for null.
    pub value: Option<Vec<u8>>,
    /// The timestamp in ms.
    pub timestamp: i64,
    /// The headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Where a sent record landed: its partition and offset.
pub type RecordPosition = (u32, u64);

/// Sending records, on a Log or on Kafka.
pub trait Produce {
    /// Sends one record and returns once it is stored (see the module docs
    /// for what stored means on each side).
    fn send(&self, topic: &str, record: ProducerRecord) -> Result<RecordPosition>;
    /// Sends records, in order, and returns once all are stored.
    fn send_batch(&self, topic: &str, records: Vec<ProducerRecord>) -> Result<Vec<RecordPosition>>;
    /// Returns once everything sent so far is as durable as the side
    /// makes it.
    fn flush(&self) -> Result<()>;
}

/// Consuming records in a group, on a Log or on Kafka.
pub trait Consume {
    /// Joins the group for these topics.
    fn subscribe(&mut self, topics: &[&str]) -> Result<()>;
    /// The next records, waiting up to `timeout` for some.
    fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>>;
    /// Commits the positions after the records `poll` returned, for the
    /// partitions the consumer owns.
    ///
    /// On a Log a rebalance happens only inside `poll`, so a commit never
    /// meets one. On Kafka the group may be rebalancing when the commit
    /// arrives (the coordinator answers "rebalance in progress" or "illegal
    /// generation"): that is not an error; the next `poll` commits again,
    /// and the positions of partitions the rebalance takes away are
    /// committed before they go.
    fn commit(&mut self) -> Result<()>;
    /// The group's committed offset of `tp`: the next record to read.
    fn committed(&mut self, tp: &TopicPartition) -> Result<Option<u64>>;
    /// The partitions the consumer owns now.
    fn assignment(&self) -> Vec<TopicPartition>;
    /// Leaves the group without committing.
    fn close(&mut self) -> Result<()>;
}

impl Produce for streamlog::Producer {
    fn send(&self, topic: &str, record: ProducerRecord) -> Result<RecordPosition> {
        let md = match record.partition {
            Some(p) => self.send_to(topic, p, record.to_log())?,
            None => streamlog::Producer::send(self, topic, record.to_log())?,
        };
        Ok((md.partition(), md.offset()))
    }

    fn send_batch(&self, topic: &str, records: Vec<ProducerRecord>) -> Result<Vec<RecordPosition>> {
        if records.iter().any(|r| r.partition.is_some()) {
            return records
                .into_iter()
                .map(|r| Produce::send(self, topic, r))
                .collect();
        }
        let mds = streamlog::Producer::send_batch(
            self,
            topic,
            records.iter().map(ProducerRecord::to_log).collect(),
        )?;
        Ok(mds.iter().map(|m| (m.partition(), m.offset())).collect())
    }

    fn flush(&self) -> Result<()> {
        Ok(streamlog::Producer::flush(self)?)
    }
}

impl Consume for streamlog::Consumer {
    fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        Ok(streamlog::Consumer::subscribe(self, topics)?)
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let records = streamlog::Consumer::poll(self, timeout)?;
        Ok(records
            .iter()
            .map(|r| ConsumerRecord {
                topic: r.topic().to_owned(),
                partition: r.partition(),
                offset: r.offset(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                timestamp: r.timestamp(),
                headers: r
                    .nullable_headers()
                    .map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                    .collect(),
            })
            .collect())
    }

    fn commit(&mut self) -> Result<()> {
        Ok(streamlog::Consumer::commit(self)?)
    }

    fn committed(&mut self, tp: &TopicPartition) -> Result<Option<u64>> {
        Ok(streamlog::Consumer::committed(self, tp)?)
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        streamlog::Consumer::assignment(self)
    }

    fn close(&mut self) -> Result<()> {
        Ok(self.unsubscribe()?)
    }
}

/// Delivery reports by send number.
#[derive(Default)]
struct Delivered {
    results: Mutex<HashMap<usize, Result<RecordPosition, KafkaError>>>,
}

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, n: usize) {
        let r = match result {
            Ok(m) => Ok((m.partition() as u32, m.offset() as u64)),
            Err((e, _)) => Err(e.clone()),
        };
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(n, r);
    }
}

/// A [`Produce`] on a Kafka cluster: idempotent, `acks=all`, keyed records
/// partitioned by murmur2 as Kafka's Java client and streamlog do.
///
/// # Example
/// ```no_run
/// use streamlog_bridge::{KafkaProducer, Produce, ProducerRecord};
/// let p = KafkaProducer::new("127.0.0.1:9092")?;
/// let (partition, offset) = p.send("orders", ProducerRecord::new(b"o-1".to_vec()))?;
/// # Ok::<(), streamlog_bridge::Error>(())
/// ```
pub struct KafkaProducer {
    inner: BaseProducer<Delivered>,
    next: Mutex<usize>,
}

impl KafkaProducer {
    /// A producer for the cluster at `bootstrap`.
    ///
    /// # Errors
    /// [`Error::Kafka`] if librdkafka refuses the configuration.
    pub fn new(bootstrap: &str) -> Result<KafkaProducer> {
        Self::with_config(bootstrap, &[])
    }

    /// As [`new`](Self::new), with librdkafka settings on top.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_config(bootstrap: &str, extra: &[(String, String)]) -> Result<KafkaProducer> {
        let mut c = kafka::config(bootstrap, &[]);
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("partitioner", "murmur2_random");
        for (k, v) in extra {
            c.set(k, v);
        }
        let inner = c
            .create_with_context(Delivered::default())
            .map_err(|e| Error::kafka("create a producer", e))?;
        Ok(KafkaProducer {
            inner,
            next: Mutex::new(0),
        })
    }

    fn enqueue(&self, topic: &str, r: &ProducerRecord) -> Result<usize> {
        let n = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k.as_str(),
                value: v.as_deref(),
            });
        }
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, n).headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(p) = r.partition {
            rec = rec.partition(p as i32);
        }
        if let Some(t) = r.timestamp {
            rec = rec.timestamp(t);
        }
        loop {
            match self.inner.send(rec) {
                Ok(()) => return Ok(n),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.inner.poll(Duration::from_millis(10));
                    rec = back;
                }
                Err((e, _)) => return Err(Error::kafka(&format!("send to {topic}"), e)),
            }
        }
    }

    fn wait(&self, ns: &[usize]) -> Result<Vec<RecordPosition>> {
        let deadline = Instant::now() + CALL_TIMEOUT * 4;
        loop {
            {
                let mut done = self
                    .inner
                    .context()
                    .results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if ns.iter().all(|n| done.contains_key(n)) {
                    return ns
                        .iter()
                        .map(|n| {
                            done.remove(n)
                                .unwrap_or(Err(KafkaError::MessageProduction(
                                    RDKafkaErrorCode::Fail,
                                )))
                                .map_err(|e| Error::kafka("deliver a record", e))
                        })
                        .collect();
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: "waiting for the cluster to acknowledge records".into(),
                });
            }
            self.inner.poll(Duration::from_millis(5));
        }
    }
}

impl Produce for KafkaProducer {
    fn send(&self, topic: &str, record: ProducerRecord) -> Result<RecordPosition> {
        let n = self.enqueue(topic, &record)?;
        Ok(self.wait(&[n])?[0])
    }

    fn send_batch(&self, topic: &str, records: Vec<ProducerRecord>) -> Result<Vec<RecordPosition>> {
        let ns = records
            .iter()
            .map(|r| self.enqueue(topic, r))
            .collect::<Result<Vec<_>>>()?;
        self.wait(&ns)
    }

    fn flush(&self) -> Result<()> {
        kafka::drain(&self.inner, CALL_TIMEOUT * 4).map_err(|e| Error::kafka("flush", e))
    }
}

/// A [`Consume`] on a Kafka cluster: a member of a consumer group that
/// reads `read_committed` and commits only when told.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use streamlog_bridge::{Consume, KafkaConsumer};
/// let mut c = KafkaConsumer::new("127.0.0.1:9092", "billing")?;
/// c.subscribe(&["orders"])?;
/// for r in c.poll(Duration::from_millis(100))? {
///     println!("{}@{}", r.partition, r.offset);
/// }
/// c.commit()?;
/// # Ok::<(), streamlog_bridge::Error>(())
/// ```
pub struct KafkaConsumer {
    inner: BaseConsumer<GroupContext>,
    max_poll_records: usize,
    /// A commit met a rebalance: the next `poll` commits again.
    commit_again: bool,
}

/// The consumer's positions, shared with librdkafka's rebalance callback:
/// before partitions are taken away, their positions are committed. One
/// `poll` gathers many messages from librdkafka, which may revoke
/// partitions in the middle of it; without this, what the member was
/// handed of them just before would be delivered again to their next
/// owner.
#[derive(Default)]
struct GroupContext {
    /// The next offset of each partition after what `poll` returned.
    positions: Mutex<HashMap<(String, u32), u64>>,
    /// Set by `close`, which leaves without committing.
    closing: std::sync::atomic::AtomicBool,
}

impl GroupContext {
    fn positions(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), u64>> {
        self.positions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let mut positions = self.positions();
        let mut tpl = TopicPartitionList::new();
        for e in revoked.elements() {
            if let Some(o) = positions.remove(&(e.topic().to_owned(), e.partition() as u32)) {
                let _ =
                    tpl.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o as i64));
            }
        }
        if tpl.count() > 0 && !self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = consumer.commit(&tpl, CommitMode::Sync);
        }
    }
}

impl KafkaConsumer {
    /// A member of `group` on the cluster at `bootstrap`; a partition with
    /// no committed offset is read from its start.
    ///
    /// # Errors
    /// [`Error::Kafka`] if librdkafka refuses the configuration.
    pub fn new(bootstrap: &str, group: &str) -> Result<KafkaConsumer> {
        Self::with_config(bootstrap, group, &[])
    }

    /// As [`new`](Self::new), with librdkafka settings on top (e.g.
    /// `partition.assignment.strategy`).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_config(
        bootstrap: &str,
        group: &str,
        extra: &[(String, String)],
    ) -> Result<KafkaConsumer> {
        let mut c = kafka::config(bootstrap, &[]);
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest");
        for (k, v) in extra {
            c.set(k, v);
        }
        let inner = c
            .create_with_context(GroupContext::default())
            .map_err(|e| Error::kafka("create a consumer", e))?;
        Ok(KafkaConsumer {
            inner,
            max_poll_records: 500,
            commit_again: false,
        })
    }
}

impl Consume for KafkaConsumer {
    fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        self.inner
            .subscribe(topics)
            .map_err(|e| Error::kafka("subscribe", e))
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if self.commit_again {
            self.commit()?;
        }
        let mut out = Vec::new();
        let mut wait = timeout;
        while out.len() < self.max_poll_records {
            match self.inner.poll(wait) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => return Err(Error::kafka("poll", e)),
                Some(Ok(m)) => {
                    let r = ConsumerRecord {
                        topic: m.topic().to_owned(),
                        partition: m.partition() as u32,
                        offset: m.offset() as u64,
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        timestamp: m.timestamp().to_millis().unwrap_or(-1),
                        headers: m
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|x| (x.key.to_owned(), x.value.map(<[u8]>::to_vec)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    };
                    self.inner
                        .context()
                        .positions()
                        .insert((r.topic.clone(), r.partition), r.offset + 1);
                    out.push(r);
                }
            }
            wait = Duration::ZERO;
        }
        Ok(out)
    }

    fn commit(&mut self) -> Result<()> {
        let owned = self.assignment();
        let mut positions = self.inner.context().positions();
        positions.retain(|(t, p), _| owned.iter().any(|tp| &tp.topic == t && tp.partition == *p));
        self.commit_again = false;
        if positions.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in positions.iter() {
            tpl.add_partition_offset(t, *p as i32, Offset::Offset(*o as i64))
                .map_err(|e| Error::kafka("build an offset list", e))?;
        }
        drop(positions);
        match self.inner.commit(&tpl, CommitMode::Sync) {
            Ok(()) => Ok(()),
            Err(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::RebalanceInProgress | RDKafkaErrorCode::IllegalGeneration,
            )) => {
                self.commit_again = true;
                Ok(())
            }
            Err(e) => Err(Error::kafka("commit", e)),
        }
    }

    fn committed(&mut self, tp: &TopicPartition) -> Result<Option<u64>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&tp.topic, tp.partition as i32);
        let got = self
            .inner
            .committed_offsets(tpl, CALL_TIMEOUT)
            .map_err(|e| Error::kafka("read committed offsets", e))?;
        Ok(got.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(o as u64),
            _ => None,
        }))
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.inner
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| TopicPartition::new(e.topic(), e.partition() as u32))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn close(&mut self) -> Result<()> {
        self.inner
            .context()
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.unsubscribe();
        // librdkafka leaves the group as the unsubscribe is served.
        let _ = self.inner.poll(Duration::from_millis(100));
        Ok(())
    }
}
