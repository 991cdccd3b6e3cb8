//! Kafka → Log: [`MirrorFromKafka`] copies topics of a Kafka cluster into a
//! Log exactly once.
//!
//! It reads `read_committed` from the cluster (so aborted records and
//! markers never reach the Log) and appends each batch in one streamlog
//! transaction together with the next source offset of every partition it
//! read, as records of the Log's compacted topic `<id>.progress` (keys
//! `pos/<topic>/<partition>`, see [`crate::progress`]). A copy killed at
//! any byte recovers, at the Log's next open, to a state where the records
//! and the progress of each transaction are both there or both absent, so
//! it resumes with no duplicate and no gap. Offsets on the Log differ from
//! the cluster's (each transaction ends in a marker); partition numbers,
//! keys, values, headers and timestamps are the same.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use streamlog::{CleanupPolicy, IsolationLevel, Log, Record, TopicConfig, TopicPartition};

use crate::error::{Error, Result};
use crate::kafka;
use crate::progress::{self, Progress};
use crate::to_kafka::MIRRORED_CONFIGS;

/// How often a following copy looks for partitions added on the cluster.
const GROWTH_CHECK: Duration = Duration::from_millis(500);

/// Copies topics of a Kafka cluster into a Log exactly once (see the
/// module docs).
///
/// # Example
/// ```no_run
/// use streamlog_bridge::MirrorFromKafka;
/// let report = MirrorFromKafka::new("127.0.0.1:9092", "edge-copy")
///     .topics(["orders"])
///     .run()?;
/// println!("{} records copied", report.records);
/// # Ok::<(), streamlog_bridge::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MirrorFromKafka {
    bootstrap: String,
    dest: PathBuf,
    topics: Option<Vec<String>>,
    id: String,
    follow: bool,
    max_txn_records: usize,
    client: Vec<(String, String)>,
    stop: Option<Arc<AtomicBool>>,
    verbose: bool,
}

/// What a [`MirrorFromKafka`] run did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FromKafkaReport {
    /// Records copied by this run.
    pub records: u64,
    /// Log transactions committed.
    pub transactions: u64,
    /// Topics this run created on the Log.
    pub topics_created: Vec<String>,
    /// Where each partition's copy resumed (the next offset on the cluster).
    pub resumed_from: BTreeMap<TopicPartition, u64>,
    /// Where each partition's copy stands now.
    pub copied_to: BTreeMap<TopicPartition, u64>,
}

impl MirrorFromKafka {
    /// A copy of the cluster at `bootstrap` into the Log in `dest`
    /// (created if missing): every topic that is not internal, until what
    /// is readable now is copied.
    pub fn new(bootstrap: impl Into<String>, dest: impl Into<PathBuf>) -> Self {
        MirrorFromKafka {
            bootstrap: bootstrap.into(),
            dest: dest.into(),
            topics: None,
            id: "streamlog-mirror".into(),
            follow: false,
            max_txn_records: 20_000,
            client: Vec::new(),
            stop: None,
            verbose: false,
        }
    }

    /// Copies only these topics.
    pub fn topics<S: Into<String>>(mut self, topics: impl IntoIterator<Item = S>) -> Self {
        self.topics = Some(topics.into_iter().map(Into::into).collect());
        self
    }

    /// The copy's id (default `streamlog-mirror`): its streamlog
    /// transactional id, and its progress topic on the Log is
    /// `<id>.progress`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Keeps copying new records until the stop flag is set.
    pub fn follow(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// At most this many records per Log transaction (default 20,000).
    pub fn max_transaction_records(mut self, n: usize) -> Self {
        self.max_txn_records = n.max(1);
        self
    }

    /// A librdkafka setting for the consumers it makes.
    pub fn client_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.client.push((key.into(), value.into()));
        self
    }

    /// A flag that stops a following copy at its next transaction
    /// boundary when set.
    pub fn stop_flag(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Prints to stderr when it is ready and after each transaction.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Opens the Log (it must not be open elsewhere) and runs the copy;
    /// closes the Log at the end.
    ///
    /// # Errors
    /// As [`run_on`](Self::run_on); [`Error::Log`] if the Log cannot be
    /// opened (`Locked` while another process has it).
    pub fn run(self) -> Result<FromKafkaReport> {
        let log = Log::open(&self.dest)?;
        let report = self.run_on(&log)?;
        log.close()?;
        Ok(report)
    }

    /// Runs the copy into `log`, a Log the caller has open.
    ///
    /// # Errors
    /// [`Error::TargetMismatch`] if a topic exists on the Log with another
    /// partition count or cleanup policy; [`Error::Kafka`] for the
    /// cluster; [`Error::Log`], also [`streamlog::Error::ProducerFenced`]
    /// when another copy with the same id took over.
    pub fn run_on(self, log: &Log) -> Result<FromKafkaReport> {
        let t0 = Instant::now();
        let mut report = FromKafkaReport::default();
        let meta = kafka::plain_consumer(&self.bootstrap, &self.client)?;
        let admin = kafka::admin(&self.bootstrap, &self.client)?;
        let topics = match &self.topics {
            Some(t) => t.clone(),
            None => kafka::topic_names(&meta)?,
        };
        let counts = kafka::partition_counts(&meta, &topics)?;
        let progress_topic = format!("{}.progress", self.id);
        // A Log topic this copy has progress for is its own: partitions
        // added on the cluster since are added to it too.
        let ours: HashSet<String> = match read_progress(log, &progress_topic) {
            Ok(p) => p.into_keys().map(|tp| tp.topic).collect(),
            Err(Error::Log(streamlog::Error::UnknownTopic { .. })) => HashSet::new(),
            Err(e) => return Err(e),
        };
        let mut problems = Vec::new();
        for t in &topics {
            let Some(&parts) = counts.get(t) else {
                return Err(Error::Invalid {
                    what: format!("topic {t} does not exist on the cluster"),
                });
            };
            let theirs = kafka::describe_topic(&admin, t)?;
            let mut cfg = TopicConfig::new().partitions(parts);
            for name in MIRRORED_CONFIGS {
                let Some(v) = theirs.get(*name) else { continue };
                // Codecs streamlog does not store (gzip, snappy, lz4) are
                // stored uncompressed.
                let v = match (*name, v.as_str()) {
                    ("compression.type", "gzip" | "snappy" | "lz4") => "uncompressed",
                    _ => v.as_str(),
                };
                cfg = cfg.set_kafka_config(name, v)?;
            }
            match log.topic_config(t) {
                Ok(have) => {
                    if have.partition_count() < parts && ours.contains(t) {
                        log.create_partitions(t, parts)?;
                    } else if have.partition_count() != parts {
                        problems.push(format!(
                            "topic {t} has {} partitions on the Log, {parts} on the cluster",
                            have.partition_count()
                        ));
                    }
                    let policy = |c: &TopicConfig| c.kafka_config("cleanup.policy");
                    if policy(&have) != policy(&cfg) {
                        problems.push(format!(
                            "topic {t} has cleanup.policy={} on the Log, {} on the cluster",
                            policy(&have).unwrap_or_default(),
                            policy(&cfg).unwrap_or_default()
                        ));
                    }
                }
                Err(streamlog::Error::UnknownTopic { .. }) => {
                    log.create_topic(t, cfg)?;
                    report.topics_created.push(t.clone());
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !problems.is_empty() {
            return Err(Error::TargetMismatch { problems });
        }
        match log.create_topic(
            &progress_topic,
            TopicConfig::new().cleanup_policy(CleanupPolicy::Compact),
        ) {
            Ok(()) | Err(streamlog::Error::TopicExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }

        // Fences an older copy with this id; `Log::open` already decided
        // every transaction a crashed one left, so the progress is final.
        let mut producer = log.transactional_producer(&self.id)?;
        let mut next = read_progress(log, &progress_topic)?;
        report.resumed_from = next.clone();

        // One consumer per topic: librdkafka reports a partition's end by
        // its number alone.
        let mut consumers = Vec::new();
        // A record deleted on the cluster before it was copied is an error,
        // never a silent jump to the earliest offset.
        let mut strict = self.client.clone();
        strict.push(("auto.offset.reset".into(), "error".into()));
        for t in &topics {
            let c = self.consumer(&strict, t, counts[t], &next)?;
            consumers.push((t.clone(), counts[t], c, HashSet::new()));
        }
        let mut last_check = Instant::now();
        if self.verbose {
            eprintln!(
                "mirror {} from Kafka: ready in {} ms",
                self.id,
                t0.elapsed().as_millis()
            );
        }

        loop {
            let mut batch: Vec<(TopicPartition, Record<'static>, u64)> = Vec::new();
            let mut idle_rounds = 0;
            while batch.len() < self.max_txn_records && idle_rounds < 2 {
                let mut got = false;
                for (topic, _, c, eof) in &mut consumers {
                    while batch.len() < self.max_txn_records {
                        match c.poll(Duration::from_millis(if got { 0 } else { 20 })) {
                            None => break,
                            Some(Err(KafkaError::PartitionEOF(p))) => {
                                eof.insert(p as u32);
                            }
                            Some(Err(e)) if kafka::transient(&e) => break,
                            Some(Err(e)) => return Err(Error::kafka(&format!("read {topic}"), e)),
                            Some(Ok(m)) => {
                                got = true;
                                let p = m.partition() as u32;
                                eof.remove(&p);
                                batch.push((
                                    TopicPartition::new(topic.as_str(), p),
                                    copy_of(&m),
                                    m.offset() as u64,
                                ));
                            }
                        }
                    }
                }
                idle_rounds = if got { 0 } else { idle_rounds + 1 };
            }
            if !batch.is_empty() {
                let mut txn = producer.begin_transaction()?;
                let mut touched = BTreeMap::new();
                let records = batch.len() as u64;
                for (tp, rec, offset) in batch.drain(..) {
                    txn.send_to(&tp.topic, tp.partition, rec)?;
                    touched.insert(tp, offset + 1);
                }
                for (tp, o) in &touched {
                    txn.send_to(
                        &progress_topic,
                        0,
                        Record::new(o.to_string().into_bytes())
                            .key(progress::position_key(tp).into_bytes()),
                    )?;
                }
                txn.commit()?;
                report.transactions += 1;
                report.records += records;
                if self.verbose {
                    eprintln!(
                        "mirror {} from Kafka: transaction {} committed {records} records ({} in all)",
                        self.id, report.transactions, report.records
                    );
                }
                next.extend(touched);
                if self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
                    break;
                }
                continue;
            }
            let all_at_end = consumers
                .iter()
                .all(|(_, parts, _, eof)| eof.len() as u32 >= *parts);
            let stopped = self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
            if stopped || (!self.follow && all_at_end) {
                break;
            }
            // Following, between transactions: partitions added on the
            // cluster are added to the Log and read from their start.
            if self.follow && last_check.elapsed() >= GROWTH_CHECK {
                last_check = Instant::now();
                let counts = match kafka::partition_counts(&meta, &topics) {
                    Ok(c) => c,
                    Err(e) if e.is_transient() => continue,
                    Err(e) => return Err(e),
                };
                for (topic, parts, c, eof) in &mut consumers {
                    let now = counts.get(topic.as_str()).copied().unwrap_or(*parts);
                    if now > *parts {
                        log.create_partitions(topic, now)?;
                        // A new client: librdkafka's would not see the new
                        // partitions for minutes.
                        *c = self.consumer(&strict, topic, now, &next)?;
                        *parts = now;
                        eof.clear();
                        if self.verbose {
                            eprintln!(
                                "mirror {} from Kafka: {topic} grew to {now} partitions",
                                self.id
                            );
                        }
                    }
                }
            }
        }
        report.copied_to = next;
        Ok(report)
    }
}

impl MirrorFromKafka {
    /// A consumer of partitions `0..parts` of `topic`, each at its next
    /// offset to copy (the beginning for one never copied).
    fn consumer(
        &self,
        config: &[(String, String)],
        topic: &str,
        parts: u32,
        next: &BTreeMap<TopicPartition, u64>,
    ) -> Result<BaseConsumer> {
        let c = kafka::plain_consumer(&self.bootstrap, config)?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..parts {
            let at = next
                .get(&TopicPartition::new(topic, p))
                .map_or(Offset::Beginning, |&o| Offset::Offset(o as i64));
            tpl.add_partition_offset(topic, p as i32, at)
                .map_err(|e| Error::kafka("build an assignment", e))?;
        }
        c.assign(&tpl)
            .map_err(|e| Error::kafka(&format!("assign {topic}"), e))?;
        Ok(c)
    }
}

/// The Log record that copies Kafka message `m`.
fn copy_of(m: &rdkafka::message::BorrowedMessage<'_>) -> Record<'static> {
    let mut r = Record::from_value(m.payload().map(<[u8]>::to_vec));
    if let Some(k) = m.key() {
        r = r.key(k.to_vec());
    }
    if let Some(ts) = m.timestamp().to_millis() {
        r = r.timestamp(ts);
    }
    if let Some(h) = m.headers() {
        for x in h.iter() {
            r = match x.value {
                Some(v) => r.header(x.key.to_owned(), v.to_vec()),
                None => r.null_header(x.key.to_owned()),
            };
        }
    }
    r
}

/// The next cluster offset of each partition, from the Log's progress
/// topic (committed records only).
fn read_progress(log: &Log, topic: &str) -> Result<BTreeMap<TopicPartition, u64>> {
    let reader = Log::open_read_only(log.dir())?;
    let mut r = reader.partition_reader(
        &TopicPartition::new(topic, 0),
        0,
        IsolationLevel::ReadCommitted,
    )?;
    let mut next = BTreeMap::new();
    loop {
        let f = r.read(10_000)?;
        if f.is_empty() {
            return Ok(next);
        }
        for rec in f {
            if let Some(Progress::Position(tp, o)) =
                progress::decode(rec.key.as_deref().unwrap_or_default(), rec.value.as_deref())
            {
                next.insert(tp, o);
            }
        }
    }
}
