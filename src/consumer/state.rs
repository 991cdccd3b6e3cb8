//! The consumer's state: [`Consumer`] with its assignment and group
//! membership, and the [`RebalanceListener`] it calls. Its methods are split
//! by concern: positions, seeks and the long poll in `consumer`, group
//! membership and commits in `consumer::group`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::ConsumerConfig;
use super::records::Carry;
use crate::group::coordinator::Group;
use crate::log::state::LogInner;
use crate::record::TopicPartition;
use crate::signal::Signal;
use crate::storage::partition::read::FetchedBatch;
use crate::storage::partition::Partition;

pub(crate) struct Assigned {
    pub(super) tp: TopicPartition,
    pub(super) topic: Arc<str>,
    pub(super) part: Arc<Partition>,
    /// The next offset to return; `None` until resolved by the reset
    /// policy.
    pub(super) position: Option<u64>,
    pub(super) paused: bool,
    /// The last offset this consumer committed (or found committed) here.
    pub(super) committed: Option<u64>,
    /// The rest of the batch the last poll stopped inside; used while
    /// `position` is its next offset.
    pub(super) carry: Option<Carry>,
}

/// Reads records from partitions.
///
/// Without a group, [`assign`](Self::assign) names the partitions to read.
/// Positions start from [`ConsumerConfig::auto_offset_reset`] and move as
/// `poll` returns records.
///
/// # Example
/// ```
/// use streamlog::{Log, ConsumerConfig, OffsetReset, Record, TopicPartition};
/// use std::time::Duration;
/// let log = Log::temporary()?;
/// log.create_topic("orders", Default::default())?;
/// log.producer().send("orders", Record::new(b"o-1"))?;
/// let mut reader = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
/// reader.assign(&[TopicPartition::new("orders", 0)])?;
/// let records = reader.poll(Duration::from_millis(100))?;
/// assert_eq!(records.len(), 1);
/// assert_eq!(reader.position(&TopicPartition::new("orders", 0))?, 1);
/// # Ok::<(), streamlog::Error>(())
/// ```
pub struct Consumer {
    pub(super) inner: Arc<LogInner>,
    pub(super) config: ConsumerConfig,
    pub(super) assigned: Vec<Assigned>,
    pub(super) signal: Arc<Signal>,
    /// Where the next poll starts, so that busy partitions cannot starve
    /// the others.
    pub(super) rr: usize,
    pub(super) batches: Vec<FetchedBatch>,
    pub(super) membership: Option<Membership>,
    pub(super) listener: Option<Box<dyn RebalanceListener>>,
    pub(super) in_listener: bool,
    pub(super) last_auto_commit: i64,
    /// When a poll last returned records, and a moving average of the gaps
    /// between such polls: `spin` runs only while records arrive faster
    /// than `max_spin` on average.
    pub(super) last_records_at: Option<Instant>,
    pub(super) gap_average: Option<Duration>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("config", &self.config)
            .field("assignment", &self.assignment())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    pub(crate) fn new(inner: Arc<LogInner>, config: ConsumerConfig) -> Self {
        Consumer {
            inner,
            config,
            assigned: Vec::new(),
            signal: Arc::new(Signal::default()),
            rr: 0,
            batches: Vec::new(),
            membership: None,
            listener: None,
            in_listener: false,
            last_auto_commit: i64::MIN,
            last_records_at: None,
            gap_average: None,
        }
    }
}

/// Called inside `poll` when the group moves partitions, so the consumer can
/// commit or clean up before a partition changes hands.
///
/// Each method gets the consumer itself, so it may call
/// [`Consumer::commit`], [`Consumer::position`] and the like (but not
/// `poll`). A revoked partition is handed to its new owner only after
/// `on_partitions_revoked` returns.
///
/// # Example
/// ```
/// use streamlog::{Consumer, RebalanceListener, TopicPartition};
/// struct CommitOnRevoke;
/// impl RebalanceListener for CommitOnRevoke {
///     fn on_partitions_revoked(&mut self, consumer: &mut Consumer, _: &[TopicPartition]) {
///         let _ = consumer.commit();
///     }
/// }
/// ```
pub trait RebalanceListener: Send {
    /// These partitions are about to be taken away. Commit what you have
    /// processed now; no record from them is returned after this.
    fn on_partitions_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }
    /// These partitions were just assigned to this consumer.
    fn on_partitions_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }
    /// This consumer was evicted (it did not poll within
    /// `max_poll_interval`): these partitions already belong to others and
    /// commits for them fail. It rejoins the group right after.
    fn on_partitions_lost(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }
}

/// A subscribed consumer's place in its group.
pub(crate) struct Membership {
    pub group: Arc<Group>,
    pub topics: BTreeSet<String>,
    /// `None` after an eviction, until the next call rejoins.
    pub member: Option<u64>,
    pub generation: u64,
    pub version: u64,
}
