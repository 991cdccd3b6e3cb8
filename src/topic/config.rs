//! [`TopicConfig`]: per-topic settings, fixed at creation, and the small
//! enums it uses ([`CleanupPolicy`], [`Compression`]).

use std::time::Duration;

use crate::error::{Error, Result};

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
