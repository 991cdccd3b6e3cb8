//! [`LogOptions`]: how a [`Log`](crate::Log) is opened. The opening
//! itself (`LogOptions::open`, `LogOptions::temporary`) is in `open`.

use std::fmt;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::storage::policy::{RecoveryMode, SyncPolicy};

/// Options for opening a [`Log`](crate::Log).
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
pub(crate) const DEFAULT_MAX_MAPPED_SEGMENTS: usize = 1024;

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
    /// 1024.
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
}
