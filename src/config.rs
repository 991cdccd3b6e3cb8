//! Configuration: [`LogOptions`], [`TopicConfig`], [`ConsumerConfig`] and
//! the small enums they use.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::log::Log;

/// When appended data is forced to stable storage. See the durability
/// contract in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Never fsync on the append path. An acknowledged record is in the OS
    /// page cache: it survives a crash of the process, not a power cut. Data
    /// reaches disk when the kernel writes it back, on segment roll, on
    /// [`Log::flush`] and on [`Log::close`]. Default.
    #[default]
    OsBuffered,
    /// `send` returns only after the record is on stable storage
    /// (fdatasync). Concurrent senders share one fdatasync (group commit).
    EveryWrite,
    /// The send that brings a partition's unsynced record count to N
    /// performs an fdatasync covering everything appended before it.
    EveryRecords(u64),
    /// A send into a partition that has not been synced for at least this
    /// long performs an fdatasync. Checked inside calls; there is no timer
    /// thread, so an idle log does not sync until the next call.
    Interval(Duration),
}

/// What `open` does when a partition's tail is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Truncate the log at the first invalid batch, delete any later
    /// segments, and report what was removed in [`Log::recovery_report`].
    /// Default.
    #[default]
    TolerateCorruptTail,
    /// Fail `open` with [`Error::Corrupted`] at the first invalid batch.
    /// The zero-filled tail that preallocation leaves after a crash is not
    /// damage and does not fail the open.
    AbsoluteConsistency,
}

/// What happens to old data in a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CleanupPolicy {
    /// Delete whole old segments by time and size retention. Default.
    #[default]
    Delete,
    /// Keep the latest record per key (log compaction).
    Compact,
    /// Both compact and delete by retention.
    CompactAndDelete,
}

/// Per-batch compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Store batches as they are. Default.
    #[default]
    None,
    /// zstd at the given level (1–22; negative levels are faster).
    Zstd(i32),
}

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// Record timestamps, segment age and retention read it, so tests can
/// inject a [`ManualClock`] and be deterministic.
pub trait Clock: Send + Sync + 'static {
    /// The current time in ms since the epoch.
    fn now_ms(&self) -> i64;
}

/// The system's real-time clock. The default [`Clock`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        // Seconds and milliseconds apart: `as_millis` is a u128 product.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| {
                d.as_secs() as i64 * 1000 + i64::from(d.subsec_millis())
            })
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// # Example
/// ```
/// use streamlog::ManualClock;
/// use std::time::Duration;
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(clock.now(), 2_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }
    /// The current reading.
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    /// Sets the reading.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    /// Moves the reading forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now()
    }
}

/// Options for opening a [`Log`].
///
/// # Example
/// ```
/// use streamlog::{LogOptions, SyncPolicy};
/// let log = LogOptions::new().sync(SyncPolicy::EveryWrite).temporary()?;
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Clone)]
pub struct LogOptions {
    pub(crate) sync: SyncPolicy,
    pub(crate) recovery: RecoveryMode,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) max_mapped_segments: usize,
}

/// The default of [`LogOptions::max_mapped_segments`].
///
/// # Example
/// ```
/// use streamlog::{LogOptions, DEFAULT_MAX_MAPPED_SEGMENTS};
/// // Twice the default, for a log of many small segments read all over.
/// let opts = LogOptions::new().max_mapped_segments(2 * DEFAULT_MAX_MAPPED_SEGMENTS);
/// ```
pub const DEFAULT_MAX_MAPPED_SEGMENTS: usize = 1024;

impl fmt::Debug for LogOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogOptions")
            .field("sync", &self.sync)
            .field("recovery", &self.recovery)
            .field("max_mapped_segments", &self.max_mapped_segments)
            .finish_non_exhaustive()
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            sync: SyncPolicy::default(),
            recovery: RecoveryMode::default(),
            clock: Arc::new(SystemClock),
            max_mapped_segments: DEFAULT_MAX_MAPPED_SEGMENTS,
        }
    }
}

impl LogOptions {
    /// The defaults: [`SyncPolicy::OsBuffered`],
    /// [`RecoveryMode::TolerateCorruptTail`] and the [`SystemClock`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the sync policy. Default: [`SyncPolicy::OsBuffered`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{LogOptions, SyncPolicy};
    /// use std::time::Duration;
    /// let opts = LogOptions::new().sync(SyncPolicy::Interval(Duration::from_millis(50)));
    /// ```
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    /// Sets what recovery does with a damaged tail. Default:
    /// [`RecoveryMode::TolerateCorruptTail`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{LogOptions, RecoveryMode};
    /// let opts = LogOptions::new().recovery(RecoveryMode::AbsoluteConsistency);
    /// ```
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }

    /// Injects the clock used for record timestamps, segment age and
    /// retention. Default: [`SystemClock`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{LogOptions, ManualClock, Record};
    /// let clock = ManualClock::new(5_000);
    /// let log = LogOptions::new().clock(clock.clone()).temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// let md = log.producer().send("t", Record::new(b"x"))?;
    /// assert_eq!(md.timestamp(), 5_000);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets how many sealed segments the log keeps mapped at once. Default:
    /// [`DEFAULT_MAX_MAPPED_SEGMENTS`] (1024).
    ///
    /// Every partition's active segment is always mapped. A sealed segment
    /// is mapped when it is first read and stays mapped until more than
    /// this many sealed segments are; then the least recently read ones are
    /// unmapped, and mapped again if read again. Each mapped segment uses
    /// three entries of the process's memory map, of which Linux allows
    /// 65,530 by default (`vm.max_map_count`), and the pages read through
    /// it count toward the resident set until the kernel reclaims them. A
    /// value below 1 is taken as 1. Records returned by a poll keep their
    /// segment's mapping alive however long they are held.
    ///
    /// # Example
    /// ```
    /// use streamlog::{LogOptions, Record, TopicConfig};
    /// let log = LogOptions::new().max_mapped_segments(2).temporary()?;
    /// log.create_topic("t", TopicConfig::new().segment_bytes(1024))?;
    /// let p = log.producer();
    /// for i in 0..100u32 {
    ///     p.send("t", Record::new(&i.to_be_bytes()[..]))?;
    /// }
    /// // Reading every sealed segment back maps them in turn.
    /// let mut c = log.consumer(Default::default());
    /// c.assign(&[streamlog::TopicPartition::new("t", 0)])?;
    /// c.seek(&streamlog::TopicPartition::new("t", 0), 0)?;
    /// let mut seen = 0;
    /// while seen < 100 {
    ///     seen += c.poll(std::time::Duration::from_secs(1))?.len();
    /// }
    /// assert_eq!(seen, 100);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn max_mapped_segments(mut self, segments: usize) -> Self {
        self.max_mapped_segments = segments;
        self
    }

    /// Opens (creating if needed) the log in `dir`.
    ///
    /// # Errors
    /// [`Error::Locked`] if another `Log` holds the directory,
    /// [`Error::Corrupted`] or [`Error::UnsupportedVersion`] for metadata it
    /// cannot trust, and [`Error::Io`].
    pub fn open(self, dir: impl AsRef<Path>) -> Result<Log> {
        Log::open_with(dir.as_ref(), self, false)
    }

    /// Opens a log in a fresh temporary directory that is removed when the
    /// last handle drops. It skips every fsync: the data cannot outlive the
    /// process anyway. Everything else behaves exactly as on disk.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be created.
    pub fn temporary(self) -> Result<Log> {
        Log::open_temporary(self)
    }
}

/// Per-topic settings, fixed at creation.
///
/// # Example
/// ```
/// use streamlog::{TopicConfig, Compression};
/// let cfg = TopicConfig::new().partitions(4).compression(Compression::Zstd(3));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub(crate) partitions: u32,
    pub(crate) segment_bytes: u64,
    pub(crate) segment_age: Duration,
    pub(crate) index_interval_bytes: u64,
    pub(crate) segment_index_bytes: u64,
    pub(crate) retention: Option<Duration>,
    pub(crate) retention_bytes: Option<u64>,
    pub(crate) cleanup_policy: CleanupPolicy,
    pub(crate) compression: Compression,
    pub(crate) max_record_bytes: u64,
    pub(crate) delete_retention: Duration,
    pub(crate) min_compaction_lag: Duration,
    pub(crate) min_cleanable_dirty_ratio: f64,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            segment_bytes: 1 << 30,
            segment_age: Duration::from_secs(7 * 24 * 3600),
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
            retention: None,
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::Delete,
            compression: Compression::None,
            max_record_bytes: 1 << 20,
            delete_retention: Duration::from_secs(24 * 3600),
            min_compaction_lag: Duration::ZERO,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

/// Generates a documented builder setter.
macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty, $example:literal) => {
        $(#[$doc])*
        ///
        /// # Example
        /// ```
        /// use streamlog::*;
        /// use std::time::Duration;
        #[doc = concat!("let cfg = TopicConfig::new().", stringify!($name), "(", $example, ");")]
        /// ```
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl TopicConfig {
    /// The defaults, listed on each setter.
    pub fn new() -> Self {
        Self::default()
    }

    setter!(
        /// Number of partitions, 1 to 10,000. Default: 1.
        partitions: u32, "4"
    );
    setter!(
        /// Size at which the active segment rolls, 1 KiB to 1 GiB. A single
        /// batch larger than this gets a segment of its own. Default: 1 GiB.
        segment_bytes: u64, "64 << 20"
    );
    setter!(
        /// Age at which the active segment rolls: a record whose timestamp is
        /// this much newer than the segment's first record starts a new
        /// segment (as Kafka's `segment.ms`). Default: 7 days.
        segment_age: Duration, "Duration::from_secs(3600)"
    );
    setter!(
        /// Bytes appended between two offset-index entries. Default: 4096.
        index_interval_bytes: u64, "4096"
    );
    setter!(
        /// Maximum size of a segment's offset index; a full index rolls the
        /// segment. At least 64 bytes. Default: 10 MiB.
        segment_index_bytes: u64, "1 << 20"
    );
    setter!(
        /// Compression applied to each batch. Default: [`Compression::None`].
        compression: Compression, "Compression::Zstd(3)"
    );
    setter!(
        /// Largest encoded record accepted; larger ones fail with
        /// [`Error::RecordTooLarge`]. Default: 1 MiB.
        max_record_bytes: u64, "1 << 20"
    );
    setter!(
        /// Cleanup policy. Default: [`CleanupPolicy::Delete`].
        cleanup_policy: CleanupPolicy, "CleanupPolicy::Compact"
    );
    setter!(
        /// How long tombstones survive compaction. Default: 24 hours.
        delete_retention: Duration, "Duration::from_secs(3600)"
    );
    setter!(
        /// Minimum age of a record before compaction may remove it.
        /// Default: 0.
        min_compaction_lag: Duration, "Duration::from_secs(60)"
    );
    setter!(
        /// `maintain()` compacts a partition when the share of its
        /// cleanable bytes not yet compacted exceeds this (0.0 to 1.0).
        /// Default: 0.5.
        min_cleanable_dirty_ratio: f64, "0.3"
    );

    /// Deletes segments whose newest record is older than this. Default:
    /// none (kept forever), unlike Kafka's 7 days: an embedded log should
    /// not delete data nobody asked it to.
    ///
    /// # Example
    /// ```
    /// use streamlog::TopicConfig;
    /// use std::time::Duration;
    /// let cfg = TopicConfig::new().retention(Duration::from_secs(7 * 24 * 3600));
    /// ```
    pub fn retention(mut self, age: Duration) -> Self {
        self.retention = Some(age);
        self
    }

    /// Keeps each partition's size near this many bytes by deleting its
    /// oldest segments. Default: none.
    ///
    /// # Example
    /// ```
    /// use streamlog::TopicConfig;
    /// let cfg = TopicConfig::new().retention_bytes(10 << 30);
    /// ```
    pub fn retention_bytes(mut self, bytes: u64) -> Self {
        self.retention_bytes = Some(bytes);
        self
    }

    /// The number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.partitions
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidConfig { what });
        if !(1..=10_000).contains(&self.partitions) {
            return bad(format!(
                "partitions is {}, allowed 1..=10000",
                self.partitions
            ));
        }
        if !(1024..=1 << 30).contains(&self.segment_bytes) {
            return bad(format!(
                "segment_bytes is {}, allowed 1 KiB..=1 GiB",
                self.segment_bytes
            ));
        }
        if self.segment_age.is_zero() {
            return bad("segment_age must be positive".into());
        }
        if !(1..=u32::MAX as u64).contains(&self.index_interval_bytes) {
            return bad("index_interval_bytes must be between 1 and 4 GiB".into());
        }
        if !(64..=1 << 30).contains(&self.segment_index_bytes) {
            return bad("segment_index_bytes must be between 64 B and 1 GiB".into());
        }
        if self.max_record_bytes == 0
            || self.max_record_bytes > crate::format::batch::MAX_BATCH_BYTES as u64 / 2
        {
            return bad("max_record_bytes must be between 1 B and 512 MiB".into());
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return bad(format!(
                "min_cleanable_dirty_ratio is {}, allowed 0.0..=1.0",
                self.min_cleanable_dirty_ratio
            ));
        }
        if let Compression::Zstd(level) = self.compression {
            if !zstd::compression_level_range().contains(&level) {
                return bad(format!(
                    "zstd level {level} is outside {:?}",
                    zstd::compression_level_range()
                ));
            }
        }
        Ok(())
    }
}

/// Where a consumer starts when it has no valid position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The end of the log: only records appended from now on. Default, as
    /// in Kafka.
    #[default]
    Latest,
    /// Fail with [`Error::OffsetOutOfRange`].
    None,
}

/// How a consumer group splits partitions among its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Assignor {
    /// Contiguous ranges of each topic's partitions. Default, as in Kafka.
    #[default]
    Range,
    /// Partitions dealt out one at a time.
    RoundRobin,
    /// Balanced, moving as few partitions as possible on a rebalance.
    CooperativeSticky,
}

/// Settings for a [`Consumer`](crate::Consumer).
///
/// # Example
/// ```
/// use streamlog::{ConsumerConfig, OffsetReset};
/// let cfg = ConsumerConfig::new().group("billing").auto_offset_reset(OffsetReset::Earliest);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerConfig {
    pub(crate) group: Option<String>,
    pub(crate) auto_offset_reset: OffsetReset,
    pub(crate) max_poll_records: usize,
    pub(crate) max_poll_bytes: usize,
    pub(crate) max_partition_fetch_bytes: usize,
    pub(crate) fetch_min_bytes: usize,
    pub(crate) max_poll_interval: Duration,
    pub(crate) assignor: Assignor,
    pub(crate) enable_auto_commit: bool,
    pub(crate) auto_commit_interval: Duration,
    pub(crate) max_spin: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group: None,
            auto_offset_reset: OffsetReset::Latest,
            max_poll_records: 500,
            max_poll_bytes: 50 << 20,
            max_partition_fetch_bytes: 1 << 20,
            fetch_min_bytes: 1,
            max_poll_interval: Duration::from_secs(300),
            assignor: Assignor::Range,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            max_spin: Duration::from_micros(150),
        }
    }
}

/// Generates a documented consumer setter.
macro_rules! consumer_setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty, $example:literal) => {
        $(#[$doc])*
        ///
        /// # Example
        /// ```
        /// use streamlog::*;
        /// use std::time::Duration;
        #[doc = concat!("let cfg = ConsumerConfig::new().", stringify!($name), "(", $example, ");")]
        /// ```
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl ConsumerConfig {
    /// The defaults, listed on each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Joins the consumer group `id`. Default: no group (manual
    /// assignment only).
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog::ConsumerConfig::new().group("billing");
    /// ```
    pub fn group(mut self, id: impl Into<String>) -> Self {
        self.group = Some(id.into());
        self
    }

    consumer_setter!(
        /// Where to start without a valid position. Default:
        /// [`OffsetReset::Latest`].
        auto_offset_reset: OffsetReset, "OffsetReset::Earliest"
    );
    consumer_setter!(
        /// Most records one `poll` returns. Default: 500.
        max_poll_records: usize, "100"
    );
    consumer_setter!(
        /// Most record bytes one `poll` returns, though at least one batch is
        /// always returned. Default: 50 MiB.
        max_poll_bytes: usize, "1 << 20"
    );
    consumer_setter!(
        /// Most bytes one `poll` takes from a single partition (at least one
        /// batch). Default: 1 MiB.
        max_partition_fetch_bytes: usize, "1 << 20"
    );
    consumer_setter!(
        /// `poll` waits until at least this many bytes are available, or its
        /// timeout passes. Default: 1.
        fetch_min_bytes: usize, "64 << 10"
    );
    consumer_setter!(
        /// A group member that does not poll for this long is evicted.
        /// Default: 5 minutes.
        max_poll_interval: Duration, "Duration::from_secs(60)"
    );
    consumer_setter!(
        /// How the group splits partitions. Default: [`Assignor::Range`].
        assignor: Assignor, "Assignor::CooperativeSticky"
    );
    consumer_setter!(
        /// Commit positions automatically inside `poll` and `close`.
        /// Default: true.
        enable_auto_commit: bool, "false"
    );
    consumer_setter!(
        /// Time between automatic commits. Default: 5 seconds.
        auto_commit_interval: Duration, "Duration::from_secs(1)"
    );
    consumer_setter!(
        /// How long a waiting `poll` may busy-wait for new records before it
        /// parks its thread. Waking a parked thread takes the scheduler tens
        /// of microseconds, and far more on a busy machine; a spinning
        /// consumer sees a record within a microsecond. `poll` spins only
        /// while records have been arriving less than this far apart, so an
        /// idle or slow stream never costs CPU. `Duration::ZERO` never spins.
        /// Default: 150 µs. A producer that sleeps between sends wakes late
        /// by Linux's default timer slack (50 µs) or more, so even at high
        /// rates its records come in small groups 50–100 µs apart; a budget
        /// below that gap would park before nearly every group.
        max_spin: Duration, "Duration::ZERO"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The consumer defaults are the ones the setters' docs state.
    #[test]
    fn consumer_defaults_match_their_docs() {
        let c = ConsumerConfig::new();
        assert_eq!(c.group, None);
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(c.max_poll_records, 500);
        assert_eq!(c.max_poll_bytes, 50 << 20);
        assert_eq!(c.max_partition_fetch_bytes, 1 << 20);
        assert_eq!(c.fetch_min_bytes, 1);
        assert_eq!(c.max_poll_interval, Duration::from_secs(300));
        assert_eq!(c.assignor, Assignor::Range);
        assert!(c.enable_auto_commit);
        assert_eq!(c.auto_commit_interval, Duration::from_secs(5));
        assert_eq!(c.max_spin, Duration::from_micros(150));
        assert_eq!(
            ConsumerConfig::new().max_spin(Duration::ZERO).max_spin,
            Duration::ZERO
        );
    }
}
