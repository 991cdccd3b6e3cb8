//! [`Consumer`]: positions, seeks, pause/resume and the long poll; group
//! membership and commits live in `group.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::record::TopicPartition;
use crate::storage::partition::txn::{control_kind, AbortedFilter};
use config::{ConsumerConfig, IsolationLevel, OffsetReset};
use isolation::visible_end;
use records::{Carry, Records};
use state::{Assigned, Consumer};

#[cfg(test)]
mod tests;

pub(crate) mod config;
pub(crate) mod group;
pub(crate) mod isolation;
pub(crate) mod records;
pub(crate) mod state;

impl Consumer {
    /// The consumer's configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Reads exactly these partitions from now on. Partitions that stay
    /// assigned keep their positions.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`],
    /// [`Error::IllegalState`] on a subscribed consumer; the assignment is
    /// unchanged on error.
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        if self.is_subscribed() {
            return Err(Error::IllegalState {
                what: "assign() on a subscribed consumer; unsubscribe() first",
            });
        }
        let mut next = Vec::with_capacity(partitions.len());
        for tp in partitions {
            if next.iter().any(|a: &Assigned| &a.tp == tp) {
                continue;
            }
            let topic = self.inner.topic(&tp.topic)?;
            let part = topic.partition(tp.partition)?.clone();
            let old = self.assigned.iter().find(|a| &a.tp == tp);
            // Only of this very partition: not of a deleted topic's
            // partition of the same name.
            let carry = old
                .filter(|a| Arc::ptr_eq(&a.part, &part))
                .and_then(|a| a.carry.clone());
            next.push(Assigned {
                tp: tp.clone(),
                topic: topic.name.clone(),
                part,
                position: old.and_then(|a| a.position),
                paused: old.is_some_and(|a| a.paused),
                committed: old.and_then(|a| a.committed),
                carry,
            });
            if old.is_none() {
                self.adopt_committed(next.last_mut().expect("just pushed"));
            }
        }
        self.assigned = next;
        self.rr = 0;
        Ok(())
    }

    /// The assigned partitions, in assignment order.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.iter().map(|a| a.tp.clone()).collect()
    }

    fn slot(&mut self, tp: &TopicPartition) -> Result<&mut Assigned> {
        self.assigned
            .iter_mut()
            .find(|a| &a.tp == tp)
            .ok_or_else(|| Error::NotAssigned {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })
    }

    /// Sets the next offset `poll` returns for `tp`.
    ///
    /// # Errors
    /// [`Error::NotAssigned`], or [`Error::OffsetOutOfRange`] unless
    /// `start <= offset <= end`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<()> {
        let a = self.slot(tp)?;
        let (start, end) = (a.part.start_offset(), a.part.end_offset());
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                earliest: start,
                latest: end,
            });
        }
        a.position = Some(offset);
        a.carry = None;
        Ok(())
    }

    /// Moves to the log start offset of each partition.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            let a = self.slot(tp)?;
            a.position = Some(a.part.start_offset());
            a.carry = None;
        }
        Ok(())
    }

    /// Moves to the end of each partition: only records appended later are
    /// returned. Under `ReadCommitted` the end is the last stable offset.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let level = self.config.isolation_level;
        for tp in partitions {
            let a = self.slot(tp)?;
            a.position = Some(visible_end(&a.part, level));
            a.carry = None;
        }
        Ok(())
    }

    /// For each `(partition, timestamp)`, the first offset whose timestamp
    /// is `>= timestamp`, or `None` when all records are older (Kafka's
    /// `offsetsForTimes`). The partitions need not be assigned. Under
    /// `ReadCommitted`, an offset at or past the last stable offset is
    /// `None` too.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`],
    /// [`Error::Corrupted`].
    pub fn offsets_for_times(
        &self,
        times: &[(TopicPartition, i64)],
    ) -> Result<HashMap<TopicPartition, Option<u64>>> {
        let mut out = HashMap::with_capacity(times.len());
        for (tp, ts) in times {
            let p = self.inner.partition(&tp.topic, tp.partition)?;
            let end = visible_end(&p, self.config.isolation_level);
            let found = p.offset_for_timestamp(*ts)?.filter(|&o| o < end);
            out.insert(tp.clone(), found);
        }
        Ok(out)
    }

    /// The next offset `poll` will return for `tp`, resolving the reset
    /// policy if no position is set yet.
    ///
    /// # Errors
    /// [`Error::NotAssigned`], or [`Error::NoOffset`] under
    /// [`OffsetReset::None`] when no position is set.
    pub fn position(&mut self, tp: &TopicPartition) -> Result<u64> {
        let reset = self.config.auto_offset_reset;
        let level = self.config.isolation_level;
        let a = self.slot(tp)?;
        resolve(a, reset, level)
    }

    /// Stops returning records from these partitions until resumed.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.slot(tp)?.paused = true;
        }
        Ok(())
    }

    /// Resumes paused partitions.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.slot(tp)?.paused = false;
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.assigned
            .iter()
            .filter(|a| a.paused)
            .map(|a| a.tp.clone())
            .collect()
    }

    /// End offset minus position: how many offsets are left to read (the
    /// last stable offset is the end under `ReadCommitted`). `None` when
    /// `tp` is not assigned or has no position yet.
    pub fn lag(&self, tp: &TopicPartition) -> Option<u64> {
        let a = self.assigned.iter().find(|a| &a.tp == tp)?;
        let end = visible_end(&a.part, self.config.isolation_level);
        a.position.map(|p| end.saturating_sub(p))
    }

    /// Returns the next records from the assigned, unpaused partitions,
    /// waiting up to `timeout` for at least `fetch_min_bytes` of them. While
    /// records have lately been arriving less than
    /// [`max_spin`](ConsumerConfig::max_spin) apart, the calling thread first
    /// busy-waits up to that long; then it parks and is woken by appends.
    ///
    /// # Errors
    /// [`Error::NoOffset`] or [`Error::OffsetOutOfRange`] under
    /// [`OffsetReset::None`], [`Error::UnknownTopic`] if a topic was
    /// deleted, [`Error::Corrupted`] if a batch fails its CRC (its bytes
    /// are never returned), [`Error::IllegalState`] inside a rebalance
    /// listener, [`Error::Closed`] once the log is closed (a `poll` parked
    /// when it closes returns at once).
    pub fn poll(&mut self, timeout: Duration) -> Result<Records> {
        if self.in_listener {
            return Err(Error::IllegalState {
                what: "poll() called from inside a rebalance listener; return from it first",
            });
        }
        let deadline = Instant::now().checked_add(timeout);
        self.maybe_auto_commit()?;
        let mut out = Records::default();
        loop {
            if self.inner.shared.is_closed() {
                return Err(Error::Closed);
            }
            self.group_sync()?;
            out.clear();
            let (advances, ends) = self.fill(&mut out)?;
            let now = Instant::now();
            let timed_out = deadline.is_some_and(|d| now >= d);
            if (!out.is_empty() && out.batch_bytes() >= self.config.fetch_min_bytes) || timed_out {
                for (i, pos, carry) in advances {
                    self.assigned[i].position = Some(pos);
                    self.assigned[i].carry = carry;
                }
                if !self.assigned.is_empty() {
                    self.rr = (self.rr + 1) % self.assigned.len();
                }
                if !out.is_empty() {
                    self.note_arrival(now);
                }
                return Ok(out);
            }
            if !self.spin(&ends, deadline) {
                self.park(&ends, deadline);
            }
        }
    }

    /// Notes that a poll returns records at `now`, for [`spin`](Self::spin).
    fn note_arrival(&mut self, now: Instant) {
        if let Some(at) = self.last_records_at {
            let gap = now.duration_since(at);
            self.gap_average = Some(fold_gap(self.gap_average, gap, self.config.max_spin));
        }
        self.last_records_at = Some(now);
    }

    /// Busy-waits, up to `max_spin` and never past the deadline, for an
    /// assigned partition's end offset to move past `ends` or the group to
    /// change. Only while records have been arriving less than `max_spin`
    /// apart on average (see [`fold_gap`]): then the next one most likely
    /// comes before the spin ends, and
    /// the consumer skips the scheduler's wake-up latency. Returns whether
    /// something moved.
    fn spin(&self, ends: &[u64], deadline: Option<Instant>) -> bool {
        let budget = self.config.max_spin;
        if budget.is_zero() || self.gap_average.is_none_or(|g| g > budget) {
            return false;
        }
        let version = self.membership.as_ref().map(|m| m.group.version());
        let start = Instant::now();
        let until = deadline.map_or(start + budget, |d| d.min(start + budget));
        loop {
            for _ in 0..64 {
                let moved = self
                    .assigned
                    .iter()
                    .zip(ends)
                    .any(|(a, &e)| a.part.end_offset() != e);
                if moved {
                    return true;
                }
                std::hint::spin_loop();
            }
            // The group version sits behind the group's lock: checked once
            // a round, not once a load.
            let regrouped = self
                .membership
                .as_ref()
                .is_some_and(|m| Some(m.group.version()) != version);
            if regrouped {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            // Let whatever else is runnable on this CPU (a kernel worker,
            // the producer) have it now rather than preempt us later.
            std::thread::yield_now();
        }
    }

    /// Waits until an assigned partition's end offset moves past `ends`, the
    /// group changes, or the deadline passes.
    fn park(&self, ends: &[u64], deadline: Option<Instant>) {
        self.signal.reset();
        let shared = &self.inner.shared;
        shared.add_parked(&self.signal);
        for a in &self.assigned {
            a.part.add_waiter(&self.signal);
        }
        let group_seen = self
            .membership
            .as_ref()
            .map(|m| (m.group.clone(), m.member, m.version));
        if let Some((g, Some(id), _)) = &group_seen {
            g.set_parked(*id, true, self.inner.shared.clock.now_ms());
        }
        // Re-check after registering: an append (or a group change) between
        // the fetch and the registration would otherwise be missed.
        let moved = self
            .assigned
            .iter()
            .zip(ends)
            .any(|(a, &e)| a.part.end_offset() != e)
            || group_seen
                .as_ref()
                .is_some_and(|(g, _, v)| g.version() != *v)
            || shared.is_closed();
        if !moved {
            match deadline {
                Some(d) => {
                    self.signal.wait_until(d);
                }
                None => {
                    while !self
                        .signal
                        .wait_until(Instant::now() + Duration::from_secs(3600))
                    {
                    }
                }
            }
        }
        for a in &self.assigned {
            a.part.remove_waiter(&self.signal);
        }
        shared.remove_parked(&self.signal);
        if let Some((g, Some(id), _)) = &group_seen {
            g.set_parked(*id, false, shared.clock.now_ms());
        }
    }

    /// Fetches from each unpaused partition in turn. Returns the positions
    /// to adopt if these records are handed out, and the end offsets seen.
    fn fill(&mut self, out: &mut Records) -> Result<Filled> {
        let n = self.assigned.len();
        let reset = self.config.auto_offset_reset;
        let level = self.config.isolation_level;
        let mut blocked = false;
        let mut ends = vec![0; n];
        let mut advances = Vec::new();
        let mut records_left = self.config.max_poll_records.max(1);
        let mut bytes_left = self.config.max_poll_bytes.max(1);
        for k in 0..n {
            let i = (self.rr + k) % n;
            let a = &mut self.assigned[i];
            ends[i] = a.part.end_offset();
            if a.part.is_deleted() {
                return Err(Error::UnknownTopic {
                    topic: a.tp.topic.clone(),
                });
            }
            if a.paused || records_left == 0 || bytes_left == 0 {
                continue;
            }
            let mut pos = resolve(a, reset, level)?;
            let bound = visible_end(&a.part, level);
            if pos >= bound && pos < ends[i] {
                // Behind an open transaction.
                blocked = true;
                continue;
            }
            let mut p = pos;
            // The rest of a batch the last poll stopped inside: no fetch, no
            // second CRC check or decompression of it. Not below the log
            // start: what retention deleted is out of range, as for a fetch.
            let carried = a
                .carry
                .as_ref()
                .filter(|c| c.next_offset() == pos && pos >= a.part.start_offset())
                .cloned();
            if let Some(c) = carried {
                let bytes_before = out.batch_bytes();
                match out.push_carried(&a.topic, a.tp.partition, c, pos, records_left) {
                    Ok((added, next, rest)) => {
                        records_left -= added;
                        bytes_left = bytes_left.saturating_sub(out.batch_bytes() - bytes_before);
                        p = next;
                        if rest.is_some() || records_left == 0 || bytes_left == 0 {
                            advances.push((i, p, rest));
                            continue;
                        }
                    }
                    // A damaged record inside: as for damage found by the
                    // fetch, what came before is handed out first.
                    Err(_) if !out.is_empty() => continue,
                    Err(e) => return Err(e),
                }
            }
            let from_carry = p != pos;
            pos = p;
            let max_bytes = self.config.max_partition_fetch_bytes.min(bytes_left).max(1);
            self.batches.clear();
            match a
                .part
                .fetch_deferring_crc(pos, max_bytes, records_left, &mut self.batches)
            {
                Ok(()) => {}
                // The carried records go out now; the next poll fetches
                // again from after them and meets the error itself.
                Err(_) if from_carry => {
                    advances.push((i, pos, None));
                    continue;
                }
                Err(Error::OffsetOutOfRange { .. }) if reset != OffsetReset::None => {
                    // Retention moved the start past our position (or the
                    // position is past the end): apply the reset policy.
                    pos = match reset {
                        OffsetReset::Earliest => a.part.start_offset(),
                        _ => visible_end(&a.part, level),
                    };
                    a.position = Some(pos);
                    self.batches.clear();
                    a.part
                        .fetch_deferring_crc(pos, max_bytes, records_left, &mut self.batches)?;
                }
                Err(e) => return Err(e),
            }
            p = pos;
            let mut carry = None;
            let mut aborted = match level {
                IsolationLevel::ReadCommitted => AbortedFilter::new(&a.part, pos, bound),
                IsolationLevel::ReadUncommitted => None,
            };
            for b in &self.batches {
                if records_left == 0 || b.header.base_offset >= bound {
                    break;
                }
                if let Some(f) = aborted.as_mut() {
                    if f.skip(&b.header, || control_kind(b))? {
                        // Skipped on its header's word: only once the CRC
                        // vouches for the header.
                        match records::check_deferred_crc(b, p) {
                            Ok(()) => {}
                            Err(_) if !out.is_empty() => break,
                            Err(e) => return Err(e),
                        }
                        p = b.header.next_offset();
                        continue;
                    }
                }
                let (added, next, rest) =
                    match out.push_batch(&a.topic, a.tp.partition, b, p, records_left) {
                        Ok(x) => x,
                        // As with damage found by the fetch: hand out what came
                        // before; the next poll starts here and reports it.
                        Err(_) if !out.is_empty() => break,
                        Err(e) => return Err(e),
                    };
                records_left -= added;
                bytes_left = bytes_left.saturating_sub(b.header.total_len());
                p = next;
                if rest.is_some() {
                    carry = rest;
                    break;
                }
            }
            if p != pos || from_carry {
                advances.push((i, p, carry));
            }
        }
        if blocked && out.is_empty() {
            // A transaction holds these reads back: abort it if it is past
            // its timeout (no thread does).
            self.inner.abort_timed_out()?;
        }
        Ok((advances, ends))
    }
}

/// New positions to adopt (assignment index, offset) and the end offsets
/// seen, from one pass over the assigned partitions.
type Filled = (Vec<(usize, u64, Option<Carry>)>, Vec<u64>);

fn resolve(a: &mut Assigned, reset: OffsetReset, level: IsolationLevel) -> Result<u64> {
    if let Some(p) = a.position {
        return Ok(p);
    }
    let p = match reset {
        OffsetReset::Earliest => a.part.start_offset(),
        OffsetReset::Latest => visible_end(&a.part, level),
        OffsetReset::None => {
            return Err(Error::NoOffset {
                topic: a.tp.topic.clone(),
                partition: a.tp.partition,
            })
        }
    };
    a.position = Some(p);
    Ok(p)
}

/// The moving average of the gaps between polls that return records, with
/// `gap` folded in: weight 1/8, each gap capped at twice `max_spin`.
///
/// An average rather than the last gap, because a producer that sleeps
/// between sends overshoots its sleep now and then: with the last gap
/// deciding, each overshoot turned the spin off for the next record, which
/// then paid the scheduler's wake-up. Those wake-ups were the whole p99 of
/// the e2e benchmark (25-31 us on a 2-vCPU VM; 9-14 us with the average).
/// The cap bounds what one long gap can do: it moves an average of short
/// gaps by at most `max_spin / 4`, while a stream whose gaps are mostly
/// longer than `max_spin` still converges above it within a dozen polls
/// and stops the spin.
fn fold_gap(average: Option<Duration>, gap: Duration, max_spin: Duration) -> Duration {
    let gap = gap.min(max_spin.saturating_mul(2));
    match average {
        Some(avg) => (avg * 7 + gap) / 8,
        None => gap,
    }
}
