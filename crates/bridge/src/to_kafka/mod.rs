//! Log → Kafka: [`MirrorToKafka`] copies a Log's committed records into a
//! Kafka cluster exactly once, and translates its groups' offsets.
//!
//! The loop: read up to a transaction's worth of committed records from
//! every mirrored partition (a read-only [`LogReader`](streamlog::LogReader), so the application
//! that owns the Log keeps running); in one Kafka transaction, produce
//! them to the same partition numbers with their keys, values, headers and
//! timestamps, wait for their offsets, then produce the progress records
//! (the next source offset of each partition and the runs that map source
//! offsets to target offsets, see [`crate::progress`]); commit. A mirror
//! killed at any moment left either a committed transaction, records and
//! progress together, or an aborted one; its successor's
//! `init_transactions` (same transactional id) aborts what was open and
//! fences the old one, and it resumes from the progress it reads back.

mod copy;
mod groups;
mod run;
mod txn;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use streamlog::TopicPartition;

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use run::Run;

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

/// Kafka's default `max.message.bytes` (1 MiB plus a batch header's 12
/// bytes of log overhead).
pub const KAFKA_MAX_MESSAGE_BYTES: u64 = 1_048_588;

/// Room for a record batch's framing on top of the largest record, in a
/// target topic's `max.message.bytes` (Kafka limits batches, streamlog
/// records): the 61-byte batch header and a record's own varint framing.
pub const BATCH_FRAMING: u64 = 1024;

/// The configs a target topic gets from its source topic `cfg`, under
/// Kafka's names: [`MIRRORED_CONFIGS`], with `max.message.bytes` the
/// source's largest record plus [`BATCH_FRAMING`], and never below Kafka's
/// default ([`KAFKA_MAX_MESSAGE_BYTES`]): the mirror's client packs records
/// into batches of up to a megabyte, and a batch must fit.
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
                let largest = v.parse::<u64>().unwrap_or(1 << 20) + BATCH_FRAMING;
                v = largest.max(KAFKA_MAX_MESSAGE_BYTES).to_string();
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
    /// From the first read of the Log to the commit of the last
    /// transaction that copied records: the run less its start-up
    /// (connecting, checking and creating topics, `init_transactions`,
    /// reading the progress topic). It is what `kafka-producer-perf-test`
    /// times (from its first send to its last commit), so for a run over
    /// records already in the Log, `records / copying` compares with that
    /// tool's rate; with `follow`, it includes the waits for new records.
    /// Zero when nothing was copied.
    pub copying: Duration,
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
            max_txn_records: 100_000,
            max_txn_bytes: 64 << 20,
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

    /// At most this many records per Kafka transaction (default 100,000).
    ///
    /// Each transaction waits for its records' acknowledgements, then
    /// writes its progress and commits, with nothing in flight meanwhile;
    /// a larger one spends less of its time waiting. Copying 1,000,000
    /// records of 100 B into a three-broker cluster, transactions of
    /// 100,000 records went 1.4–2.1× as fast as transactions of 20,000
    /// (README, "Outgrowing one machine"). When the mirror has caught up
    /// (`follow`), a transaction takes what is there, so the size does not
    /// add lag. A transaction's records are read from the Log a chunk at
    /// a time and held in memory once, queued in the producer.
    pub fn max_transaction_records(mut self, n: usize) -> Self {
        self.max_txn_records = n.max(1);
        self
    }

    /// At most about this many bytes per Kafka transaction (default 64 MiB;
    /// see [`max_transaction_records`](Self::max_transaction_records)).
    /// With 1 KiB records, transactions of 16 MiB (about 300 ms on the
    /// bench's cluster) copied at 0.67–0.79× of `kafka-producer-perf-test`
    /// (medians 0.69–0.74); with 64 MiB, 0.72–1.13× (medians 0.81–0.88):
    /// each transaction's fixed cost (the last acknowledgements, the
    /// progress, the commit) weighs less.
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
        // Topics created by an attempt that failed later are still this
        // run's.
        let mut created = Vec::new();
        loop {
            match Run::start(self.clone(), &mut created) {
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
