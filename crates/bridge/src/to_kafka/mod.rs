//! Log → Kafka: [`MirrorToKafka`] copies a Log's committed records into a
//! Kafka cluster exactly once, and translates its groups' offsets.
//!
//! The loop: read up to a transaction's worth of committed records from
//! every mirrored partition (a read-only [`LogReader`], so the application
//! that owns the Log keeps running); in one Kafka transaction, produce
//! them to the same partition numbers with their keys, values, headers and
//! timestamps, wait for their offsets, then produce the progress records
//! (the next source offset of each partition and the runs that map source
//! offsets to target offsets, see [`crate::progress`]); commit. A mirror
//! killed at any moment left either a committed transaction, records and
//! progress together, or an aborted one; its successor's
//! `init_transactions` (same transactional id) aborts what was open and
//! fences the old one, and it resumes from the progress it reads back.

mod groups;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use std::sync::Mutex;
use streamlog::{IsolationLevel, Log, LogReader, PartitionReader, ReadRecord, TopicPartition};

use crate::error::{Error, Result};
use crate::kafka::{self, WantedTopic, CALL_TIMEOUT};
use crate::progress::{self, OffsetMap, Progress};

pub use groups::GroupTranslation;

/// The topic configs the mirror gives a target topic, under Kafka's
/// names, from the source topic's.
pub const MIRRORED_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "compression.type",
    "max.message.bytes",
];

/// How many transactions in a row may fail before the mirror gives up
/// with the last error (a broker restarting fails a few; a record the
/// cluster refuses fails every one).
const MAX_FAILURES: u32 = 30;

/// Room for a record batch's framing on top of the largest record, in a
/// target topic's `max.message.bytes` (Kafka limits batches, streamlog
/// records): the 61-byte batch header and a record's own varint framing.
pub const BATCH_FRAMING: u64 = 1024;

/// The configs a target topic gets from its source topic `cfg`, under
/// Kafka's names: [`MIRRORED_CONFIGS`], with `max.message.bytes` raised by
/// [`BATCH_FRAMING`].
///
/// # Example
/// ```
/// use streamlog::{CleanupPolicy, TopicConfig};
/// let configs = streamlog_bridge::to_kafka::target_configs(
///     &TopicConfig::new().cleanup_policy(CleanupPolicy::Compact),
/// );
/// assert!(configs.contains(&("cleanup.policy".into(), "compact".into())));
/// assert!(configs.contains(&("retention.ms".into(), "-1".into())));
/// ```
pub fn target_configs(cfg: &streamlog::TopicConfig) -> Vec<(String, String)> {
    MIRRORED_CONFIGS
        .iter()
        .map(|name| {
            let mut v = cfg.kafka_config(name).unwrap_or_default();
            if *name == "max.message.bytes" {
                v = (v.parse::<u64>().unwrap_or(1 << 20) + BATCH_FRAMING).to_string();
            }
            ((*name).to_owned(), v)
        })
        .collect()
}

/// Copies a Log's topics into a Kafka cluster exactly once. See the
/// module docs for how, and README "Outgrowing one machine" for the
/// migration it serves.
///
/// # Example
/// ```no_run
/// use streamlog_bridge::MirrorToKafka;
/// let report = MirrorToKafka::new("data", "127.0.0.1:9092")
///     .topics(["orders"])
///     .groups(["billing"])
///     .run()?;
/// println!("{} records copied", report.records);
/// # Ok::<(), streamlog_bridge::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MirrorToKafka {
    source: PathBuf,
    bootstrap: String,
    topics: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    id: String,
    follow: bool,
    cutover: bool,
    max_txn_records: usize,
    max_txn_bytes: usize,
    replication: Option<i32>,
    client: Vec<(String, String)>,
    stop: Option<Arc<AtomicBool>>,
    idle: Duration,
    group_interval: Duration,
    verbose: bool,
}

/// What a mirror run did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MirrorReport {
    /// Records copied by this run (in committed transactions).
    pub records: u64,
    /// Kafka transactions committed.
    pub transactions: u64,
    /// Transactions aborted and retried (a broker failed mid-way, say).
    pub retried: u64,
    /// Target topics this run created.
    pub topics_created: Vec<String>,
    /// Where each partition's copy resumed (its next source offset).
    pub resumed_from: BTreeMap<TopicPartition, u64>,
    /// Where each partition's copy stands now.
    pub copied_to: BTreeMap<TopicPartition, u64>,
    /// Source offsets retention deleted before the mirror copied them.
    pub lost_to_retention: u64,
    /// The last translation of each group's offsets.
    pub groups: Vec<GroupTranslation>,
    /// With `cutover`: every writer of the Log is gone, the tail is
    /// copied and every group's offsets are on the cluster.
    pub cut_over: bool,
}

impl MirrorToKafka {
    /// A mirror of the Log in `source` into the cluster at `bootstrap`
    /// (`host:port[,host:port...]`): every user topic and every group,
    /// until the records there now are copied.
    pub fn new(source: impl Into<PathBuf>, bootstrap: impl Into<String>) -> Self {
        MirrorToKafka {
            source: source.into(),
            bootstrap: bootstrap.into(),
            topics: None,
            groups: None,
            id: "streamlog-mirror".into(),
            follow: false,
            cutover: false,
            max_txn_records: 20_000,
            max_txn_bytes: 8 << 20,
            replication: None,
            client: Vec::new(),
            stop: None,
            idle: Duration::from_millis(5),
            group_interval: Duration::from_millis(500),
            verbose: false,
        }
    }

    /// Mirrors only these topics.
    pub fn topics<S: Into<String>>(mut self, topics: impl IntoIterator<Item = S>) -> Self {
        self.topics = Some(topics.into_iter().map(Into::into).collect());
        self
    }

    /// Translates only these groups' offsets (default: every group that
    /// committed offsets of a mirrored topic).
    pub fn groups<S: Into<String>>(mut self, groups: impl IntoIterator<Item = S>) -> Self {
        self.groups = Some(groups.into_iter().map(Into::into).collect());
        self
    }

    /// The mirror's id (default `streamlog-mirror`): its Kafka
    /// transactional id, and its progress topic is `<id>.progress`. Two
    /// mirrors of different Logs into one cluster need different ids; a
    /// second mirror with the same id fences the first.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Keeps copying new records until [`stop`](Self::stop_flag) is set
    /// (or, with `cutover`, until the cut-over is done).
    pub fn follow(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// Follows until the Log has no writer (its owner closed it), then
    /// keeps writers out, copies the tail, translates every group's
    /// offsets and returns with [`MirrorReport::cut_over`] set.
    pub fn cutover(mut self, cutover: bool) -> Self {
        self.cutover = cutover;
        self
    }

    /// At most this many records per Kafka transaction (default 20,000).
    pub fn max_transaction_records(mut self, n: usize) -> Self {
        self.max_txn_records = n.max(1);
        self
    }

    /// At most about this many bytes per Kafka transaction (default 8 MiB).
    pub fn max_transaction_bytes(mut self, n: usize) -> Self {
        self.max_txn_bytes = n.max(1);
        self
    }

    /// The replication factor of the topics it creates (default: the
    /// cluster's `default.replication.factor`).
    pub fn replication_factor(mut self, n: i32) -> Self {
        self.replication = Some(n);
        self
    }

    /// A librdkafka setting for every client the mirror makes (security
    /// settings, say).
    pub fn client_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.client.push((key.into(), value.into()));
        self
    }

    /// A flag that stops a following mirror at its next transaction
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

    /// The name of the progress topic on the cluster.
    pub fn progress_topic(&self) -> String {
        format!("{}.progress", self.id)
    }

    /// Runs the mirror: creates or checks the target topics, resumes from
    /// the progress on the cluster, copies, translates group offsets.
    ///
    /// # Errors
    /// [`Error::TargetMismatch`] if a target topic exists with other
    /// partitions or configs (nothing is copied); [`Error::TargetNotEmpty`]
    /// if a target partition holds records this mirror did not write;
    /// [`Error::Fenced`] if a newer mirror with the same id took over;
    /// [`Error::Log`] for the source; [`Error::Kafka`] for what the cluster
    /// refused in a way that retrying cannot fix.
    pub fn run(self) -> Result<MirrorReport> {
        let mut attempt = 0;
        loop {
            match Run::start(self.clone()) {
                Ok(run) => return run.go(),
                // A broker restarting while the mirror starts.
                Err(e) if e.is_transient() && attempt < MAX_FAILURES => {
                    attempt += 1;
                    eprintln!("mirror {}: starting failed, retrying: {e}", self.id);
                    std::thread::sleep(Duration::from_millis(100 << attempt.min(5)));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Delivery reports of one transaction's records, by index.
#[derive(Default)]
struct Deliveries {
    results: Mutex<Vec<Option<Result<i64, KafkaError>>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let r = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.clone()),
        };
        if let Some(slot) = self
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(index)
        {
            *slot = Some(r);
        }
    }
}

/// A running mirror.
struct Run {
    opts: MirrorToKafka,
    reader: LogReader,
    producer: BaseProducer<Deliveries>,
    meta: BaseConsumer,
    topics: Vec<String>,
    /// The mirrored topics whose cleanup policy compacts.
    compacted: std::collections::HashSet<String>,
    readers: BTreeMap<TopicPartition, PartitionReader>,
    /// The committed next source offset of each partition.
    copied: BTreeMap<TopicPartition, u64>,
    /// Each partition's target high watermark before this mirror wrote
    /// to it (zero for a topic it created).
    target_start: HashMap<TopicPartition, u64>,
    map: OffsetMap,
    /// The runs of the transaction in flight, kept once it commits.
    pending_runs: Vec<(TopicPartition, progress::Run)>,
    groups: groups::Translator,
    report: MirrorReport,
}

/// What one transaction carries.
struct Batch {
    records: Vec<(TopicPartition, ReadRecord)>,
    /// Each read partition's position after what it read.
    positions: BTreeMap<TopicPartition, u64>,
}

impl Run {
    fn start(opts: MirrorToKafka) -> Result<Run> {
        let t0 = Instant::now();
        let reader = Log::open_read_only(&opts.source)?;
        let meta = kafka::plain_consumer(&opts.bootstrap, &opts.client)?;
        let admin = kafka::admin(&opts.bootstrap, &opts.client)?;
        let topics = match &opts.topics {
            Some(t) => t.clone(),
            None => reader.topics()?,
        };
        let mut wanted = Vec::new();
        let mut max_message = 1_000_000u64;
        for t in &topics {
            let cfg = reader.topic_config(t)?;
            let configs = target_configs(&cfg);
            for (k, v) in &configs {
                if k == "max.message.bytes" {
                    max_message = max_message.max(v.parse().unwrap_or(0));
                }
            }
            wanted.push(WantedTopic {
                name: t.clone(),
                partitions: cfg.partition_count(),
                configs,
            });
        }
        wanted.push(WantedTopic {
            name: opts.progress_topic(),
            partitions: 1,
            configs: vec![("cleanup.policy".into(), "compact".into())],
        });
        let created = kafka::ensure_topics(&admin, &meta, &wanted, opts.replication)?;

        let mut pc = kafka::config(&opts.bootstrap, &opts.client);
        pc.set("transactional.id", &opts.id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.max.bytes",
                max_message.min(1_000_000_000).to_string(),
            )
            .set("transaction.timeout.ms", "60000");
        let producer: BaseProducer<Deliveries> = pc
            .create_with_context(Deliveries::default())
            .map_err(|e| Error::kafka("create the transactional producer", e))?;
        // Fences any older mirror with this id and aborts what it left open,
        // so the progress read next is final.
        producer
            .init_transactions(CALL_TIMEOUT * 2)
            .map_err(|e| txn_error(&opts.id, "initialise transactions", e))?;

        let mut copied = BTreeMap::new();
        let mut map = OffsetMap::default();
        kafka::read_all(
            &meta,
            &opts.progress_topic(),
            |k, v| match progress::decode(k, v) {
                Some(Progress::Position(tp, next)) => {
                    copied.insert(tp, next);
                }
                Some(Progress::Sync(tp, run)) => map.insert(&tp, run),
                None => {}
            },
        )?;

        let groups = groups::Translator::new(&opts)?;
        let mut run = Run {
            reader,
            producer,
            meta,
            topics: Vec::new(),
            compacted: Default::default(),
            readers: BTreeMap::new(),
            copied,
            target_start: HashMap::new(),
            map,
            pending_runs: Vec::new(),
            groups,
            report: MirrorReport {
                topics_created: created,
                ..Default::default()
            },
            opts,
        };
        for t in topics {
            run.add_topic(&t)?;
        }
        run.report.resumed_from = run.copied.clone();
        if run.opts.verbose {
            eprintln!(
                "mirror {}: ready in {} ms; resuming {} partitions",
                run.opts.id,
                t0.elapsed().as_millis(),
                run.copied.len()
            );
        }
        Ok(run)
    }

    /// Starts following a topic: a reader per partition from its progress.
    /// A partition with no progress must be empty on the target.
    fn add_topic(&mut self, topic: &str) -> Result<()> {
        let cfg = self.reader.topic_config(topic)?;
        if cfg
            .kafka_config("cleanup.policy")
            .is_some_and(|p| p.contains("compact"))
        {
            self.compacted.insert(topic.to_owned());
        }
        let partitions = cfg.partition_count();
        let mut unclaimed = Vec::new();
        for p in 0..partitions {
            let tp = TopicPartition::new(topic, p);
            let (low, high) = self
                .meta
                .fetch_watermarks(topic, p as i32, CALL_TIMEOUT)
                .map_err(|e| Error::kafka(&format!("read the offsets of {tp}"), e))?;
            if !self.copied.contains_key(&tp) {
                if high > low.max(0) {
                    return Err(Error::TargetNotEmpty {
                        what: format!(
                            "target partition {tp} holds records (offsets {low}..{high}) but the \
                             progress topic {} has no position for it: it was not written by \
                             this mirror; use an empty topic or a new mirror id",
                            self.opts.progress_topic()
                        ),
                    });
                }
                unclaimed.push(tp.clone());
            }
            self.target_start.insert(tp, high.max(0) as u64);
        }
        if !unclaimed.is_empty() {
            self.claim(&unclaimed)?;
        }
        for p in 0..partitions {
            let tp = TopicPartition::new(topic, p);
            let r = self.reader.partition_reader(
                &tp,
                self.copied[&tp],
                IsolationLevel::ReadCommitted,
            )?;
            self.readers.insert(tp, r);
        }
        self.topics.push(topic.to_owned());
        Ok(())
    }

    /// Records position 0 for partitions the mirror has not written yet,
    /// in a transaction of its own, before it copies a record there. From
    /// then on a partition without a position is one nothing was copied
    /// to, even by a transaction that was aborted, so "holds records but
    /// has no position" reliably means records another writer put there.
    fn claim(&mut self, tps: &[TopicPartition]) -> Result<()> {
        let topic = self.opts.progress_topic();
        let id = self.opts.id.clone();
        let never = |what: &str, e: KafkaError| match classify(&id, what, e) {
            Retry::Later(e) | Retry::Never(e) => e,
        };
        self.producer
            .begin_transaction()
            .map_err(|e| never("begin a transaction", e))?;
        for tp in tps {
            let key = progress::position_key(tp);
            let r: BaseRecord<'_, str, str, usize> = BaseRecord::with_opaque_to(&topic, usize::MAX)
                .partition(0)
                .key(key.as_str())
                .payload("0");
            if let Err(e) = self.send(r) {
                self.abort();
                return Err(never("produce a progress record", e));
            }
        }
        if let Err(e) = self.producer.commit_transaction(CALL_TIMEOUT * 2) {
            self.abort();
            return Err(never("commit a transaction", e));
        }
        for tp in tps {
            self.copied.insert(tp.clone(), 0);
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst))
    }

    fn go(mut self) -> Result<MirrorReport> {
        let mut lock = None;
        let mut last_groups = Instant::now();
        let mut failures = 0u32;
        loop {
            let batch = self.gather()?;
            if !batch.records.is_empty()
                || batch.positions.iter().any(|(tp, p)| self.copied[tp] != *p)
            {
                match self.copy(&batch) {
                    Ok(()) => failures = 0,
                    Err(Retry::Later(e)) if failures >= MAX_FAILURES => return Err(e),
                    Err(Retry::Later(e)) => {
                        failures += 1;
                        self.report.retried += 1;
                        eprintln!("mirror: transaction aborted, retrying: {e}");
                        self.rewind()?;
                        std::thread::sleep(Duration::from_millis(100 << failures.min(5)));
                    }
                    Err(Retry::Never(e)) => return Err(e),
                }
                if last_groups.elapsed() >= self.opts.group_interval {
                    self.translate_groups()?;
                    last_groups = Instant::now();
                }
                continue;
            }
            // Caught up with what is readable now.
            if lock.is_some() {
                self.translate_groups()?;
                self.report.cut_over = self.report.groups.iter().all(|g| g.complete());
                break;
            }
            if self.opts.cutover {
                match self.reader.lock_out_writers() {
                    Ok(l) => {
                        // No writer now nor later: one more pass copies
                        // whatever the last one appended.
                        lock = Some(l);
                        continue;
                    }
                    Err(streamlog::Error::Locked { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if last_groups.elapsed() >= self.opts.group_interval || !self.opts.follow {
                self.translate_groups()?;
                last_groups = Instant::now();
            }
            if !(self.opts.follow || self.opts.cutover) || self.stopped() {
                break;
            }
            if self.opts.topics.is_none() {
                for t in self.reader.topics()? {
                    if !self.topics.contains(&t) {
                        self.add_topic(&t)?;
                    }
                }
            }
            std::thread::sleep(self.opts.idle);
        }
        drop(lock);
        self.report.copied_to = self.copied.clone();
        Ok(self.report)
    }

    /// Reads the next transaction's records, a share from each partition
    /// in turn.
    fn gather(&mut self) -> Result<Batch> {
        let mut batch = Batch {
            records: Vec::new(),
            positions: BTreeMap::new(),
        };
        let mut bytes = 0usize;
        let share = (self.opts.max_txn_records / self.readers.len().max(1)).max(1);
        let mut progressed = true;
        while progressed
            && batch.records.len() < self.opts.max_txn_records
            && bytes < self.opts.max_txn_bytes
        {
            progressed = false;
            for (tp, r) in &mut self.readers {
                let want = share.min(self.opts.max_txn_records - batch.records.len());
                if want == 0 {
                    break;
                }
                let fetched = r.read(want)?;
                if let Some(gap) = &fetched.skipped {
                    self.report.lost_to_retention += gap.end - gap.start;
                    eprintln!(
                        "mirror: {tp} offsets {}..{} were deleted by retention before they were copied",
                        gap.start, gap.end
                    );
                }
                progressed |= !fetched.is_empty();
                for rec in fetched {
                    if rec.key.is_none() && self.compacted.contains(&tp.topic) {
                        return Err(Error::Unmirrorable {
                            what: format!(
                                "record {tp}@{} has no key, and Kafka refuses keyless records in a \
                                 compacted topic (cleanup.policy compact); streamlog keeps them",
                                rec.offset
                            ),
                        });
                    }
                    bytes += rec.value.as_ref().map_or(0, Vec::len)
                        + rec.key.as_ref().map_or(0, Vec::len)
                        + 24;
                    batch.records.push((tp.clone(), rec));
                }
                batch.positions.insert(tp.clone(), r.position());
            }
        }
        Ok(batch)
    }

    /// Puts every reader back at its partition's committed position.
    fn rewind(&mut self) -> Result<()> {
        for (tp, r) in &mut self.readers {
            *r =
                self.reader
                    .partition_reader(tp, self.copied[tp], IsolationLevel::ReadCommitted)?;
        }
        Ok(())
    }

    /// Copies one batch in one Kafka transaction, with its progress.
    fn copy(&mut self, batch: &Batch) -> Result<(), Retry> {
        let id = self.opts.id.clone();
        let fail = |what: &str, e: KafkaError| classify(&id, what, e);
        self.pending_runs.clear();
        self.producer
            .begin_transaction()
            .map_err(|e| fail("begin a transaction", e))?;
        let result = self.copy_in_transaction(batch);
        match result {
            Ok(()) => {
                if let Err(e) = self.producer.commit_transaction(CALL_TIMEOUT * 2) {
                    let r = fail("commit a transaction", e);
                    self.abort();
                    return Err(r);
                }
            }
            Err(e) => {
                self.abort();
                return Err(e);
            }
        }
        for (tp, run) in self.pending_runs.drain(..) {
            self.map.insert(&tp, run);
        }
        self.report.transactions += 1;
        self.report.records += batch.records.len() as u64;
        if self.opts.verbose {
            eprintln!(
                "mirror {}: transaction {} committed {} records ({} in all)",
                self.opts.id,
                self.report.transactions,
                batch.records.len(),
                self.report.records
            );
        }
        for (tp, p) in &batch.positions {
            self.copied.insert(tp.clone(), *p);
        }
        Ok(())
    }

    fn abort(&self) {
        // A base producer aborts only once every delivery report is
        // served; records that failed report here too.
        let _ = self.producer.flush(CALL_TIMEOUT);
        if let Err(e) = self.producer.abort_transaction(CALL_TIMEOUT * 2) {
            eprintln!("mirror: aborting a transaction failed: {e}");
        }
    }

    fn copy_in_transaction(&mut self, batch: &Batch) -> Result<(), Retry> {
        let id = self.opts.id.clone();
        let fail = |what: &str, e: KafkaError| classify(&id, what, e);
        let n = batch.records.len();
        *self
            .producer
            .context()
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = vec![None; n];
        for (i, (tp, rec)) in batch.records.iter().enumerate() {
            let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
            for (k, v) in &rec.headers {
                headers = headers.insert(Header {
                    key: k.as_str(),
                    value: v.as_deref(),
                });
            }
            let mut r: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(&tp.topic, i)
                .partition(tp.partition as i32)
                .timestamp(rec.timestamp)
                .headers(headers);
            if let Some(k) = &rec.key {
                r = r.key(k.as_slice());
            }
            if let Some(v) = &rec.value {
                r = r.payload(v.as_slice());
            }
            self.send(r).map_err(|e| fail("produce a record", e))?;
        }
        self.producer
            .flush(CALL_TIMEOUT * 2)
            .map_err(|e| fail("deliver a transaction's records", e))?;
        let results = std::mem::take(
            &mut *self
                .producer
                .context()
                .results
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let mut pairs: BTreeMap<&TopicPartition, Vec<(u64, u64)>> = BTreeMap::new();
        for ((tp, rec), res) in batch.records.iter().zip(results) {
            let target = match res {
                Some(Ok(o)) if o >= 0 => o as u64,
                Some(Err(e)) => return Err(fail("deliver a record", e)),
                _ => {
                    return Err(Retry::Later(Error::Kafka {
                        doing: format!("learn the offset of {tp}@{} on the cluster", rec.offset),
                        source: KafkaError::MessageProduction(RDKafkaErrorCode::Fail),
                    }))
                }
            };
            pairs.entry(tp).or_default().push((rec.offset, target));
        }
        let topic = self.opts.progress_topic();
        let mut progress: Vec<(String, String)> = Vec::new();
        for (tp, pairs) in &pairs {
            for run in progress::runs_of(pairs) {
                progress.push((progress::sync_key(tp, run.source_first), run.value()));
            }
        }
        for (tp, p) in &batch.positions {
            if self.copied[tp] != *p || pairs.contains_key(tp) {
                progress.push((progress::position_key(tp), p.to_string()));
            }
        }
        for (k, v) in &progress {
            let r: BaseRecord<'_, str, str, usize> = BaseRecord::with_opaque_to(&topic, usize::MAX)
                .partition(0)
                .key(k.as_str())
                .payload(v.as_str());
            self.send(r)
                .map_err(|e| fail("produce a progress record", e))?;
        }
        // The runs are kept once the transaction commits (`copy`).
        for (tp, pairs) in pairs {
            for run in progress::runs_of(&pairs) {
                self.pending_runs.push((tp.clone(), run));
            }
        }
        Ok(())
    }

    /// Sends one record, waiting while librdkafka's queue is full.
    fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
        &self,
        mut r: BaseRecord<'_, K, P, usize>,
    ) -> Result<(), KafkaError> {
        loop {
            match self.producer.send(r) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.producer.poll(Duration::from_millis(10));
                    r = back;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn translate_groups(&mut self) -> Result<()> {
        let g = self.groups.translate(
            &self.reader,
            &self.readers,
            &self.copied,
            &self.target_start,
            &self.map,
        )?;
        self.report.groups = g;
        Ok(())
    }
}

/// How a failed transaction goes on.
enum Retry {
    /// Aborted; read the same records again and retry.
    Later(Error),
    /// The mirror cannot go on.
    Never(Error),
}

impl From<Error> for Retry {
    fn from(e: Error) -> Retry {
        Retry::Never(e)
    }
}

impl std::fmt::Display for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retry::Later(e) | Retry::Never(e) => e.fmt(f),
        }
    }
}

/// A transactional call's error: fenced, fatal, or abortable.
fn classify(id: &str, what: &str, e: KafkaError) -> Retry {
    match txn_error(id, what, e) {
        e @ Error::Fenced { .. } => Retry::Never(e),
        Error::Kafka { doing, source } => {
            let fatal = matches!(&source, KafkaError::Transaction(t) if t.is_fatal());
            let e = Error::Kafka { doing, source };
            if fatal {
                Retry::Never(e)
            } else {
                Retry::Later(e)
            }
        }
        e => Retry::Never(e),
    }
}

/// [`Error::Fenced`] for a fenced producer, else [`Error::Kafka`].
fn txn_error(id: &str, what: &str, e: KafkaError) -> Error {
    let code = e.rdkafka_error_code();
    if matches!(
        code,
        Some(RDKafkaErrorCode::ProducerFenced)
            | Some(RDKafkaErrorCode::InvalidProducerEpoch)
            | Some(RDKafkaErrorCode::Fenced)
            | Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed)
    ) {
        return Error::Fenced { id: id.to_owned() };
    }
    Error::kafka(what, e)
}
