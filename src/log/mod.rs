//! The log: [`Log`], the handle users hold, and everything a log does
//! across its topics. Rooms: `state` (the shared state), `options`
//! ([`LogOptions`]), `open`, `admin` (topics, registry, checkpoint, close),
//! `groups` (committing and replaying group offsets), `maintenance`
//! (retention and compaction across partitions), `metrics`.

use std::path::Path;

use crate::consumer::config::ConsumerConfig;
use crate::consumer::state::Consumer;
use crate::error::Result;
use crate::group::offsets::OffsetAndMetadata;
use crate::producer::Producer;
use crate::record::TopicPartition;
use crate::storage::recovery::report::RecoveryReport;
use crate::topic::config::TopicConfig;
use crate::topic::name::validate_user_name;

mod admin;
pub(crate) mod fetch;
pub(crate) mod groups;
pub(crate) mod maintenance;
pub(crate) mod metrics;
pub(crate) mod open;
pub(crate) mod options;
pub(crate) mod producer_ids;
mod remote_txn;
pub(crate) mod serving;
pub(crate) mod state;
pub(crate) mod transactions;
mod txn_recovery;

use options::LogOptions;
use state::Log;

impl Log {
    /// Opens (creating if needed) the log in `dir` with default options.
    ///
    /// # Errors
    /// See [`LogOptions::open`].
    ///
    /// # Example
    /// ```no_run
    /// let log = streamlog::Log::open("data")?;
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Log> {
        LogOptions::new().open(dir)
    }

    /// A log in a fresh temporary directory, removed when the last handle
    /// drops. See [`LogOptions::temporary`].
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the directory cannot be created.
    ///
    /// # Example
    /// ```
    /// let log = streamlog::Log::temporary()?;
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn temporary() -> Result<Log> {
        LogOptions::new().temporary()
    }

    /// Opens the log in `dir` read-only, for reading it while another
    /// process (or another `Log` in this one) has it open and writes:
    /// nothing is written or created, and no lock is taken. See
    /// [`LogReader`](crate::LogReader) and
    /// [`PartitionReader`](crate::PartitionReader), and ARCHITECTURE.md
    /// "Reading a live log" for what it can and cannot see.
    ///
    /// # Errors
    /// [`Error::NotALog`](crate::Error::NotALog) for a path that does not
    /// exist, is not a directory, or has neither a topic registry
    /// (`topics.registry`) nor a `.lock` (a log that never had a topic
    /// reads as one with no topics); [`Error::Corrupted`](crate::Error::Corrupted)
    /// naming the registry if it is damaged;
    /// [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion);
    /// [`Error::Io`](crate::Error::Io).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Error, Log, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", Record::new(b"x"))?;
    /// let reader = Log::open_read_only(log.dir())?; // `log` holds the lock
    /// assert_eq!(reader.partition_info(&TopicPartition::new("t", 0))?.end_offset, 1);
    /// let missing = Log::open_read_only(log.dir().join("nope"));
    /// assert!(matches!(missing, Err(Error::NotALog { .. })));
    /// assert!(!log.dir().join("nope").exists());
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<crate::reader::LogReader> {
        crate::reader::LogReader::open(dir.as_ref())
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates a topic.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`](crate::Error::InvalidTopicName) (nothing is created on disk),
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig), [`Error::TopicExists`](crate::Error::TopicExists),
    /// [`Error::UnregisteredData`](crate::Error::UnregisteredData) if a
    /// directory of that name holds data the registry does not know (see
    /// [`recover_topic`](Self::recover_topic)), [`Error::Io`](crate::Error::Io).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, TopicConfig, Error};
    /// let log = Log::temporary()?;
    /// log.create_topic("orders", TopicConfig::new().partitions(4))?;
    /// assert!(matches!(log.create_topic("orders", TopicConfig::new()), Err(Error::TopicExists { .. })));
    /// assert!(matches!(log.create_topic("../x", TopicConfig::new()), Err(Error::InvalidTopicName { .. })));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        validate_user_name(name)?;
        self.inner.create_topic(name, config)
    }

    /// Deletes a topic and its data. Readers holding records from it keep
    /// them; later reads and writes get [`Error::UnknownTopic`](crate::Error::UnknownTopic).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`](crate::Error::UnknownTopic), [`Error::Io`](crate::Error::Io).
    ///
    /// # Example
    /// ```
    /// let log = streamlog::Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.delete_topic("t")?;
    /// assert!(log.topics().is_empty());
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.inner.delete_topic(name)
    }

    /// Grows a topic to `total` partitions (Kafka's `CreatePartitions`).
    /// Existing partitions keep their data. Groups subscribed to the topic
    /// rebalance. Keyed records may map to other partitions from now on.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`](crate::Error::UnknownTopic), [`Error::InvalidConfig`](crate::Error::InvalidConfig) unless `total` is
    /// larger than the current count, [`Error::Io`](crate::Error::Io).
    ///
    /// # Example
    /// ```
    /// let log = streamlog::Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.create_partitions("t", 3)?;
    /// assert_eq!(log.topic_config("t")?.partition_count(), 3);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn create_partitions(&self, topic: &str, total: u32) -> Result<()> {
        self.inner.create_partitions(topic, total)
    }

    /// Replaces the configs of an existing topic (Kafka's
    /// `IncrementalAlterConfigs`; the CLI's `topics alter`). As in Kafka, a
    /// changed setting applies from the next decision that reads it:
    /// `segment_bytes` and `segment_age` at the next roll, the index sizes
    /// for new segments, retention and compaction settings at the next
    /// maintenance pass, compression and the record size limit to the next
    /// send. The new config is durable (the topic registry) before this
    /// returns.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`](crate::Error::UnknownTopic);
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an invalid
    /// config or a partition count other than the topic's (grow a topic
    /// with [`create_partitions`](Log::create_partitions));
    /// [`Error::InvalidTopicName`](crate::Error::InvalidTopicName) for an
    /// internal topic; [`Error::Io`](crate::Error::Io).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{Log, TopicConfig};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", TopicConfig::new().partitions(2))?;
    /// let cfg = log.topic_config("t")?.retention(Duration::from_secs(3600));
    /// log.alter_topic_config("t", cfg.clone())?;
    /// assert_eq!(log.topic_config("t")?, cfg);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn alter_topic_config(&self, topic: &str, config: TopicConfig) -> Result<()> {
        self.inner.alter_topic_config(topic, config)
    }

    /// Registers topic `name` again from its partition directories, which
    /// the topic registry does not name: after the registry was lost or
    /// damaged, or a topic delete crashed half-way. Such directories are
    /// listed in [`RecoveryReport::unregistered_partitions`] at open, and
    /// are never removed by [`create_topic`](Self::create_topic). Every
    /// segment is scanned as after a crash; the topic gets `config` with
    /// as many partitions as there are directories (`name-0`,
    /// `name-1`, ...). Returns that number.
    ///
    /// # Errors
    /// [`Error::TopicExists`](crate::Error::TopicExists) if the registry
    /// names it, [`Error::UnknownTopic`](crate::Error::UnknownTopic) if no
    /// directory is found, [`Error::Corrupted`](crate::Error::Corrupted)
    /// naming a missing directory when the numbers have a gap,
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig), and as
    /// [`LogOptions::open`] for damage in the segments.
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicConfig};
    /// let dir = std::env::temp_dir().join(format!("recover-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let log = Log::open(&dir)?;
    /// log.create_topic("orders", TopicConfig::new())?;
    /// log.producer().send("orders", Record::new(b"o-1"))?;
    /// log.close()?;
    /// std::fs::remove_file(dir.join("topics.registry")).unwrap(); // lost
    /// let log = Log::open(&dir)?;
    /// assert_eq!(log.recovery_report().unregistered_partitions, vec![dir.join("orders-0")]);
    /// assert_eq!(log.recover_topic("orders", TopicConfig::new())?, 1);
    /// assert_eq!(log.partition_info(&streamlog::TopicPartition::new("orders", 0))?.end_offset, 1);
    /// # drop(log); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn recover_topic(&self, name: &str, config: TopicConfig) -> Result<u32> {
        validate_user_name(name)?;
        self.inner.recover_topic(name, config)
    }

    /// User topics, sorted. Internal topics are hidden.
    pub fn topics(&self) -> Vec<String> {
        self.inner
            .topics
            .read()
            .values()
            .filter(|t| !t.is_internal())
            .map(|t| t.name.to_string())
            .collect()
    }

    /// A topic's configuration.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`](crate::Error::UnknownTopic).
    pub fn topic_config(&self, name: &str) -> Result<TopicConfig> {
        Ok((*self.inner.topic(name)?.config).clone())
    }

    /// Appends a batch whose outcome an error left unknown, on this
    /// (reopened) log: see [`PendingAppend`](crate::PendingAppend). A log
    /// that holds the batch answers with its original offsets; one that
    /// lost it appends it now. Either way, the records are stored once.
    ///
    /// # Errors
    /// [`Error::OutOfOrderSequence`](crate::Error::OutOfOrderSequence) if the
    /// producer appended other batches after it; as
    /// [`Producer::send`](crate::Producer::send) otherwise.
    ///
    /// # Example
    /// ```no_run
    /// use streamlog::{Log, LogOptions, Record, SyncPolicy};
    /// let log = LogOptions::new().sync(SyncPolicy::EveryWrite).open("data")?;
    /// let producer = log.producer();
    /// if producer.send("orders", Record::new(b"v")).is_err() {
    ///     let pending = producer.take_pending(); // written, fate unknown
    ///     drop(producer);
    ///     drop(log);
    ///     let log = Log::open("data")?; // recovery
    ///     for p in &pending {
    ///         log.resend(p)?; // stored exactly once
    ///     }
    /// }
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn resend(
        &self,
        pending: &crate::producer::PendingAppend,
    ) -> Result<Vec<crate::record::RecordMetadata>> {
        crate::producer::resend(&self.inner, pending)
    }

    /// A producer of transactions under `transactional_id` (Kafka's
    /// `initTransactions()`): registers the id, fences every older handle
    /// with the same id (their calls fail with
    /// [`Error::ProducerFenced`](crate::Error::ProducerFenced)), and aborts
    /// the transaction an older handle left open. See
    /// [`TransactionalProducer`](crate::TransactionalProducer).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an empty id
    /// or one over 32,767 bytes, [`Error::Io`](crate::Error::Io),
    /// [`Error::Poisoned`](crate::Error::Poisoned).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Error, Log, Record, TopicConfig};
    /// let log = Log::temporary()?;
    /// log.create_topic("out", TopicConfig::new())?;
    /// let mut old = log.transactional_producer("worker-7")?;
    /// let mut new = log.transactional_producer("worker-7")?; // fences `old`
    /// assert!(matches!(old.begin_transaction(), Err(Error::ProducerFenced { .. })));
    /// let mut txn = new.begin_transaction()?;
    /// txn.send("out", Record::new(b"x"))?;
    /// txn.commit()?;
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn transactional_producer(
        &self,
        transactional_id: &str,
    ) -> Result<crate::transaction::TransactionalProducer> {
        crate::transaction::TransactionalProducer::new(self.inner.clone(), transactional_id)
    }

    /// A producer. Producers are `Clone + Send + Sync`; each gets its own
    /// producer id (at its first send), which its clones share.
    pub fn producer(&self) -> Producer {
        Producer::new(self.inner.clone())
    }

    /// A consumer. Without a group it reads the partitions given to
    /// [`Consumer::assign`].
    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.inner.clone(), config)
    }

    /// Makes everything appended so far durable (fdatasync of every
    /// partition with unsynced data), then checkpoints the recovery points.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) (which also poisons the log), [`Error::Poisoned`](crate::Error::Poisoned).
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    /// Closes the log cleanly: syncs everything, trims preallocated space,
    /// writes the checkpoint and the clean-shutdown marker, and releases the
    /// directory lock. Other handles (producers, consumers) get
    /// [`Error::Closed`](crate::Error::Closed) afterwards. Dropping the last handle without
    /// `close` is allowed: it does the same on a best-effort basis.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io), [`Error::Poisoned`](crate::Error::Poisoned).
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }

    /// What opening the log found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Every offset committed by consumer group `group`, sorted by
    /// partition.
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, ConsumerConfig, OffsetAndMetadata, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", streamlog::Record::new(b"x"))?;
    /// let mut c = log.consumer(ConsumerConfig::new().group("g"));
    /// let tp = TopicPartition::new("t", 0);
    /// c.assign(&[tp.clone()])?;
    /// c.commit_offsets(&[(tp.clone(), OffsetAndMetadata::new(1))].into_iter().collect())?;
    /// assert_eq!(log.committed_offsets("g")[0].1.offset(), 1);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn committed_offsets(&self, group: &str) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        self.inner.groups.group_offsets(group)
    }

    /// The consumer groups that have committed offsets, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.inner.groups.group_ids()
    }

    /// The first offset whose timestamp is `>= timestamp_ms`, or `None` if
    /// every record is older (Kafka's `offsetsForTimes`).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`](crate::Error::UnknownTopic), [`Error::UnknownPartition`](crate::Error::UnknownPartition),
    /// [`Error::Corrupted`](crate::Error::Corrupted).
    pub fn offset_for_timestamp(
        &self,
        tp: &TopicPartition,
        timestamp_ms: i64,
    ) -> Result<Option<u64>> {
        self.inner
            .partition(&tp.topic, tp.partition)?
            .offset_for_timestamp(timestamp_ms)
    }
}
