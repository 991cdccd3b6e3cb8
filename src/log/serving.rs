//! What a server in front of a [`Log`] needs beyond the client API: a
//! partition's fetch with its watermarks and aborted transactions in one
//! call, a wait for appends across partitions, producer ids for remote
//! producers, and group commits on behalf of members this crate does not
//! manage. The Kafka server crate (`streamlog-server`) is built on these.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fetch::StoredBatches;
use super::state::Log;
use crate::consumer::config::IsolationLevel;
use crate::consumer::isolation::visible_end;
use crate::error::{Error, Result};
use crate::format::batch::{records_section, RecordIter, Version};
use crate::group::coordinator::Group;
use crate::group::offsets::OffsetAndMetadata;
use crate::record::TopicPartition;
use crate::signal::Signal;
use crate::storage::partition::read::FetchedBatch;

/// One partition's answer to a Kafka fetch, read in one go: the batches
/// and the offsets a client needs to interpret them.
///
/// Returned by [`Log::fetch_partition`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PartitionFetch {
    /// The stored batches from the fetch offset on (see
    /// [`Log::fetch_batches`]); under `ReadCommitted`, none at or above
    /// the last stable offset.
    pub batches: StoredBatches,
    /// The partition's end offset (Kafka's high watermark: a single-copy
    /// log has no replicas to wait for).
    pub high_watermark: u64,
    /// The last stable offset: no record below it belongs to an open
    /// transaction.
    pub last_stable_offset: u64,
    /// The first offset still stored.
    pub log_start_offset: u64,
    /// Under `ReadCommitted`, the aborted transactions that overlap the
    /// batches returned, in order: a client drops their records.
    pub aborted: Vec<AbortedTransaction>,
}

/// An aborted transaction as a Kafka fetch reports it: the producer and
/// the first offset of its records in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    /// The transaction's producer id.
    pub producer_id: i64,
    /// The offset of its first record in the partition.
    pub first_offset: u64,
}

impl Log {
    /// Reads a partition for a remote consumer: the stored batches from
    /// `offset` (at most `max_bytes` of them, but always at least one whole
    /// batch, as Kafka's fetch),
    /// the watermarks, and under `ReadCommitted` the aborted transactions
    /// the batches overlap. Reading at the visible end returns no batches.
    ///
    /// # Errors
    /// As [`fetch_batches`](Self::fetch_batches): [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange)
    /// below the log start or past the end.
    ///
    /// # Example
    /// ```
    /// use streamlog::{IsolationLevel, Log, Record, TopicConfig, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", TopicConfig::new())?;
    /// log.producer().send("t", Record::new(b"hello"))?;
    /// let tp = TopicPartition::new("t", 0);
    /// let f = log.fetch_partition(&tp, 0, 1 << 20, IsolationLevel::ReadCommitted)?;
    /// assert_eq!((f.batches.len(), f.high_watermark, f.last_stable_offset), (1, 1, 1));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn fetch_partition(
        &self,
        tp: &TopicPartition,
        offset: u64,
        max_bytes: usize,
        isolation: IsolationLevel,
    ) -> Result<PartitionFetch> {
        let p = self.inner.partition(&tp.topic, tp.partition)?;
        // Watermarks first: the batches read next are then at least as new,
        // and anything a read-committed fetch returns is below this LSO.
        let last_stable_offset = p.last_stable_offset();
        let visible = visible_end(&p, isolation);
        let mut fetch = PartitionFetch {
            high_watermark: p.end_offset(),
            last_stable_offset,
            log_start_offset: p.start_offset(),
            ..PartitionFetch::default()
        };
        if offset >= visible && offset <= fetch.high_watermark {
            return Ok(fetch);
        }
        let mut batches = self.fetch_batches(tp, offset, max_bytes)?;
        batches.retain_below(visible);
        batches.limit_bytes(max_bytes);
        if isolation == IsolationLevel::ReadCommitted {
            if let Some(end) = batches.next_offset() {
                fetch.aborted = p
                    .aborted_between(offset, end)
                    .into_iter()
                    .map(|a| AbortedTransaction {
                        producer_id: a.producer_id,
                        first_offset: a.first_offset,
                    })
                    .collect();
            }
        }
        fetch.log_start_offset = fetch.log_start_offset.min(offset);
        fetch.batches = batches;
        Ok(fetch)
    }

    /// Waits until one of `positions`' partitions holds a record at or past
    /// its position that `isolation` lets a reader see, or `timeout`
    /// passes. Returns whether records arrived. An unknown partition, a
    /// deleted topic and a closed log end the wait at once (the next read
    /// reports them). This is how a server parks a long-poll fetch.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{IsolationLevel, Log, Record, TopicConfig, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", TopicConfig::new())?;
    /// let at = [(TopicPartition::new("t", 0), 0)];
    /// let ready = IsolationLevel::ReadCommitted;
    /// assert!(!log.wait_for_records(&at, ready, Duration::from_millis(1)));
    /// log.producer().send("t", Record::new(b"x"))?;
    /// assert!(log.wait_for_records(&at, ready, Duration::from_secs(5)));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn wait_for_records(
        &self,
        positions: &[(TopicPartition, u64)],
        isolation: IsolationLevel,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut parts = Vec::with_capacity(positions.len());
        for (tp, at) in positions {
            match self.inner.partition(&tp.topic, tp.partition) {
                Ok(p) => parts.push((p, *at)),
                Err(_) => return true,
            }
        }
        let ready = |parts: &[(Arc<crate::storage::partition::Partition>, u64)]| {
            self.inner.shared.is_closed()
                || parts
                    .iter()
                    .any(|(p, at)| p.is_deleted() || visible_end(p, isolation) > *at)
        };
        if ready(&parts) {
            return true;
        }
        let signal = Arc::new(Signal::default());
        let shared = &self.inner.shared;
        shared.add_parked(&signal);
        for (p, _) in &parts {
            p.add_waiter(&signal);
        }
        let mut arrived = false;
        while Instant::now() < deadline {
            signal.reset();
            // Checked after registering and after each reset: an append in
            // between would otherwise be missed.
            if ready(&parts) {
                arrived = true;
                break;
            }
            signal.wait_until(deadline);
        }
        for (p, _) in &parts {
            p.remove_waiter(&signal);
        }
        shared.remove_parked(&signal);
        arrived || ready(&parts)
    }

    /// A new producer id, never handed out before in this log (ids are
    /// reserved in durable blocks), for a remote idempotent producer (Kafka's
    /// `InitProducerId`). Its batches are then checked by sequence like an
    /// in-process [`Producer`](crate::Producer)'s.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the next block cannot be recorded.
    ///
    /// # Example
    /// ```
    /// let log = streamlog::Log::temporary()?;
    /// let (a, b) = (log.allocate_producer_id()?, log.allocate_producer_id()?);
    /// assert_ne!(a, b);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn allocate_producer_id(&self) -> Result<i64> {
        self.inner.allocate_producer_id()
    }

    /// Aborts every transaction open longer than its timeout (Kafka's
    /// coordinator does this on a timer; [`maintain`](Self::maintain) does it
    /// too, and in-process reads of a partition such a transaction holds
    /// back). A server whose remote clients may vanish mid-transaction calls
    /// it regularly, so that `ReadCommitted` readers are not held back by
    /// an abandoned transaction. Returns how many were aborted.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if a marker cannot be written.
    ///
    /// # Example
    /// ```
    /// let log = streamlog::Log::temporary()?;
    /// assert_eq!(log.abort_timed_out_transactions()?, 0);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn abort_timed_out_transactions(&self) -> Result<usize> {
        self.inner.abort_timed_out()
    }

    /// Commits offsets for `group` from outside a consumer: what a Kafka
    /// client's commit with no group membership (`assign()`, generation −1)
    /// does, and how a server commits for the remote members it
    /// coordinates itself. Refused while in-process consumers are members of
    /// the group, as [`Consumer::commit_offsets`](crate::Consumer::commit_offsets)
    /// of a consumer using `assign` is.
    ///
    /// # Errors
    /// [`Error::CommitFailed`](crate::Error::CommitFailed) while the group
    /// has in-process members, [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange)
    /// for an offset past a partition's end, [`Error::InvalidGroupId`](crate::Error::InvalidGroupId),
    /// [`Error::Io`](crate::Error::Io).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, OffsetAndMetadata, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", Record::new(b"x"))?;
    /// let tp = TopicPartition::new("t", 0);
    /// log.commit_offsets("g", &[(tp.clone(), OffsetAndMetadata::new(1))])?;
    /// assert_eq!(log.committed_offsets("g")[0].1.offset(), 1);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn commit_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        crate::group::offsets::validate_group_id(group)?;
        let g = self.inner.groups.group(group);
        self.inner.commit(&g, None, offsets)
    }
}

/// A consumer group held by a coordinator outside this crate (the Kafka
/// server's, for remote members): while it is held, in-process consumers
/// cannot join the group ([`Error::GroupInUse`]). Dropping it lets them.
///
/// Returned by [`Log::claim_group`].
pub struct GroupClaim {
    group: Arc<Group>,
}

impl std::fmt::Debug for GroupClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupClaim")
            .field("group", &self.group.id)
            .finish()
    }
}

impl Drop for GroupClaim {
    fn drop(&mut self) {
        self.group.unclaim();
    }
}

impl Log {
    /// Claims consumer group `group` for members this crate does not
    /// manage (remote Kafka clients), so that the two kinds of member
    /// never share a group: the claim fails while in-process consumers are
    /// members, and in-process consumers cannot join while it is held.
    ///
    /// # Errors
    /// [`Error::GroupInUse`] while in-process consumers are members,
    /// [`Error::InvalidGroupId`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{ConsumerConfig, Error, Log};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// let claim = log.claim_group("g")?;
    /// let mut c = log.consumer(ConsumerConfig::new().group("g"));
    /// assert!(matches!(c.subscribe(&["t"]), Err(Error::GroupInUse { .. })));
    /// drop(claim);
    /// c.subscribe(&["t"])?;
    /// assert!(matches!(log.claim_group("g"), Err(Error::GroupInUse { .. })));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn claim_group(&self, group: &str) -> Result<GroupClaim> {
        crate::group::offsets::validate_group_id(group)?;
        let g = self.inner.groups.group(group);
        g.claim().map_err(|_| Error::GroupInUse {
            group: group.to_owned(),
            by: "in-process consumers",
        })?;
        Ok(GroupClaim { group: g })
    }
}

/// `(offset, timestamp)` of each record of a stored batch.
fn record_times(b: &FetchedBatch) -> Result<Vec<(u64, i64)>> {
    let h = &b.header;
    let bad = |k| Error::corrupted(b.segment.log.path(), b.pos as u64, Some(h.base_offset), k);
    let section = records_section(h, b.bytes()).map_err(bad)?;
    let log_append_time = h.version == Version::V2 && h.attributes & 0x08 != 0;
    let mut out = Vec::with_capacity(h.record_count as usize);
    for r in RecordIter::new(h, &section) {
        let r = r.map_err(bad)?;
        let ts = if log_append_time {
            h.max_timestamp
        } else {
            h.base_timestamp.wrapping_add(r.timestamp_delta)
        };
        out.push((h.base_offset + u64::from(r.offset_delta), ts));
    }
    Ok(out)
}

impl Log {
    /// The timestamp of the record at `offset`, or of the first record
    /// after it if compaction removed it; `None` at the end.
    ///
    /// # Errors
    /// As [`fetch_batches`](Self::fetch_batches).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", Record::new(b"x").timestamp(1_700))?;
    /// assert_eq!(log.timestamp_at(&TopicPartition::new("t", 0), 0)?, Some(1_700));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn timestamp_at(&self, tp: &TopicPartition, offset: u64) -> Result<Option<i64>> {
        let p = self.inner.partition(&tp.topic, tp.partition)?;
        let mut at = offset;
        while at < p.end_offset() {
            let mut batches = Vec::new();
            p.fetch(at, 1, usize::MAX, &mut batches)?;
            for b in &batches {
                if let Some(&(_, ts)) = record_times(b)?.iter().find(|(o, _)| *o >= offset) {
                    return Ok(Some(ts));
                }
                at = b.header.next_offset();
            }
            if batches.is_empty() {
                break;
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp
    /// (the first such record), or `None` for an empty partition: Kafka's
    /// `ListOffsets` with `MAX_TIMESTAMP` (−3). It reads the partition's
    /// batch headers from start to end, so it costs a scan of the
    /// partition.
    ///
    /// # Errors
    /// As [`fetch_batches`](Self::fetch_batches).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// let p = log.producer();
    /// for ts in [5, 9, 7] {
    ///     p.send("t", Record::new(b"x").timestamp(ts))?;
    /// }
    /// assert_eq!(log.max_timestamp_offset(&TopicPartition::new("t", 0))?, Some((1, 9)));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn max_timestamp_offset(&self, tp: &TopicPartition) -> Result<Option<(u64, i64)>> {
        let p = self.inner.partition(&tp.topic, tp.partition)?;
        let mut best: Option<FetchedBatch> = None;
        let mut at = p.start_offset();
        while at < p.end_offset() {
            let mut batches = Vec::new();
            p.fetch(at, 1 << 20, usize::MAX, &mut batches)?;
            let Some(last) = batches.last() else { break };
            at = last.header.next_offset();
            for b in batches {
                if b.header.is_control() || b.header.record_count == 0 {
                    continue;
                }
                if best
                    .as_ref()
                    .is_none_or(|x| b.header.max_timestamp > x.header.max_timestamp)
                {
                    best = Some(b);
                }
            }
        }
        let Some(b) = best else { return Ok(None) };
        let times = record_times(&b)?;
        let max = times.iter().map(|t| t.1).max();
        Ok(times.into_iter().find(|t| Some(t.1) == max))
    }
}
