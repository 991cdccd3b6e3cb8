//! [`ConsumerConfig`]: a consumer's settings, and [`OffsetReset`].

use std::time::Duration;

use crate::group::assignor::Assignor;

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
    /// Fail with [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange).
    None,
}

/// Which records of transactions a consumer returns (Kafka's
/// `isolation.level`). No consumer ever returns a control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// Only committed records: reads stop at the last stable offset (the
    /// first record of the earliest open transaction) and skip the
    /// records of aborted transactions. Default (Kafka's default is
    /// `read_uncommitted`; an in-process log has no reason to show
    /// uncommitted data unless asked).
    #[default]
    ReadCommitted,
    /// Every record up to the end of the log, including those of open and
    /// aborted transactions.
    ReadUncommitted,
}

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
    pub(crate) isolation_level: IsolationLevel,
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
            isolation_level: IsolationLevel::ReadCommitted,
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
        /// Which records of transactions to return. Default:
        /// [`IsolationLevel::ReadCommitted`]. `lag`, `seek_to_end`, the
        /// `Latest` reset and `offsets_for_times` follow it: under
        /// `ReadCommitted` the end is the last stable offset.
        isolation_level: IsolationLevel, "IsolationLevel::ReadUncommitted"
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
        /// while records have been arriving less than this far apart on
        /// average (one late record does not stop it), so a slow stream
        /// never costs CPU and a stream that stops costs at most one spin
        /// per `poll` call. `Duration::ZERO` never spins.
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
