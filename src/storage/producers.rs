//! Producer state of one partition, with Kafka's rules
//! (`ProducerStateManager`, `ProducerAppendInfo`): each producer's epoch and
//! last batches (to answer a retried batch with its original offsets), its
//! open transaction, and the partition's open transactions by first offset
//! (which bound the last stable offset).
//!
//! Pure state: the partition keeps it under its append lock, checks each
//! producer batch against it before the batch is written, and applies the
//! batch after. Snapshots go through [`crate::format::txn`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::format::batch::{BatchHeader, NO_PRODUCER_ID};
use crate::format::txn::{AbortedTxn, SnapshotEntry};

/// How many of a producer's last batches are kept for duplicate detection
/// (Kafka's `NUM_BATCHES_TO_RETAIN`, matching `max.in.flight` ≤ 5).
pub(crate) const BATCHES_TO_RETAIN: usize = 5;

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: u64,
    pub last_offset: u64,
}

/// What a partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    /// The last batches, oldest first; empty after a new epoch's marker.
    pub batches: VecDeque<BatchMeta>,
    pub coordinator_epoch: i32,
    /// The first offset of the producer's open transaction here.
    pub txn_first: Option<u64>,
    /// When the producer last appended here, by the log's clock (for
    /// expiry; batches replayed at open count as appended then). Record
    /// timestamps are not used: a producer re-sending old records is not
    /// idle.
    pub last_timestamp: i64,
}

/// Why a producer batch is refused. Nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The batch's epoch is older than the producer's current one.
    Fenced {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    /// The sequence does not follow the producer's last one.
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// A plain batch while the producer's transaction is open.
    InvalidTxnState { producer_id: i64 },
}

/// The outcome of checking a producer batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// New: append it.
    Append,
    /// Already appended (a retry): these were its offsets.
    Duplicate { first_offset: u64, last_offset: u64 },
}

/// A transaction that a marker ended in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Completed {
    pub producer_id: i64,
    pub first_offset: u64,
    pub marker_offset: u64,
    /// The last stable offset once it ended: the first offset of the next
    /// open transaction, else the marker's offset + 1.
    pub last_stable_offset: u64,
}

impl Completed {
    pub fn aborted(&self) -> AbortedTxn {
        AbortedTxn {
            producer_id: self.producer_id,
            first_offset: self.first_offset,
            last_offset: self.marker_offset,
            last_stable_offset: self.last_stable_offset,
        }
    }
}

fn next_seq(s: i32) -> i32 {
    if s == i32::MAX {
        0
    } else {
        s + 1
    }
}

/// The sequence of the last record of a batch starting at `first` with
/// `delta` more records, wrapping at `i32::MAX` as Kafka's does.
pub(crate) fn last_seq(first: i32, delta: u32) -> i32 {
    ((i64::from(first) + i64::from(delta)) % (i64::from(i32::MAX) + 1)) as i32
}

/// A hasher for producer ids, which are small sequential integers handed
/// out by the log (or chosen by a Kafka client): one multiplication, no
/// SipHash, on every producer append.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_i64(&mut self, n: i64) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Producers = HashMap<i64, ProducerEntry, BuildHasherDefault<IdHasher>>;

/// A partition's producers and open transactions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerState {
    producers: Producers,
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<u64, i64>,
}

impl ProducerState {
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Adds a copy of another state's entry (to check batches ahead).
    pub fn insert_entry(&mut self, producer_id: i64, entry: ProducerEntry) {
        self.producers.insert(producer_id, entry);
    }

    /// The first offset of the earliest open transaction.
    pub fn first_unstable(&self) -> Option<u64> {
        self.ongoing.keys().next().copied()
    }

    /// The open transactions: (producer id, its epoch, first offset).
    pub fn ongoing(&self) -> Vec<(i64, i16, u64)> {
        self.ongoing
            .iter()
            .map(|(&first, &pid)| (pid, self.producers.get(&pid).map_or(0, |e| e.epoch), first))
            .collect()
    }

    /// The sequence the next batch of `producer_id` at `epoch` must carry.
    #[cfg(test)]
    pub fn next_sequence(&self, producer_id: i64, epoch: i16) -> i32 {
        match self.producers.get(&producer_id) {
            Some(e) if e.epoch == epoch => e.batches.back().map_or(0, |b| next_seq(b.last_seq)),
            _ => 0,
        }
    }

    /// Assigns the sequence a batch of this producer must carry (see
    /// [`next_sequence`](Self::next_sequence)) with `assign` and checks
    /// it, with one lookup: a batch numbered here is always in order, so
    /// only the epoch and the transaction state can refuse it.
    #[inline]
    pub fn assign_and_check(
        &self,
        h: &BatchHeader,
        assign: impl FnOnce(i32),
    ) -> Result<Check, Refusal> {
        let Some(e) = self.producers.get(&h.producer_id) else {
            assign(0);
            return Ok(Check::Append);
        };
        if h.producer_epoch < e.epoch {
            return Err(Refusal::Fenced {
                producer_id: h.producer_id,
                current: e.epoch,
                got: h.producer_epoch,
            });
        }
        if !h.is_transactional() && e.txn_first.is_some() {
            return Err(Refusal::InvalidTxnState {
                producer_id: h.producer_id,
            });
        }
        let seq = match e.batches.back() {
            Some(b) if h.producer_epoch == e.epoch => next_seq(b.last_seq),
            _ => 0,
        };
        assign(seq);
        Ok(Check::Append)
    }

    /// Checks a producer's batch (not a marker) before it is appended.
    pub fn check(&self, h: &BatchHeader) -> Result<Check, Refusal> {
        let pid = h.producer_id;
        if pid == NO_PRODUCER_ID {
            return Ok(Check::Append);
        }
        let Some(e) = self.producers.get(&pid) else {
            // An unknown producer (new, or expired) may start anywhere.
            return Ok(Check::Append);
        };
        if h.producer_epoch < e.epoch {
            return Err(Refusal::Fenced {
                producer_id: pid,
                current: e.epoch,
                got: h.producer_epoch,
            });
        }
        if h.is_control() {
            return Ok(Check::Append);
        }
        if !h.is_transactional() && e.txn_first.is_some() {
            return Err(Refusal::InvalidTxnState { producer_id: pid });
        }
        let first = h.base_sequence;
        let last = last_seq(first, h.last_offset_delta);
        if h.producer_epoch > e.epoch || e.batches.is_empty() {
            // A new epoch starts its sequences at 0.
            if first != 0 && h.producer_epoch > e.epoch {
                return Err(Refusal::OutOfOrder {
                    producer_id: pid,
                    expected: 0,
                    got: first,
                });
            }
            return Ok(Check::Append);
        }
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(Check::Duplicate {
                first_offset: b.first_offset,
                last_offset: b.last_offset,
            });
        }
        let expected = e.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if first != expected {
            return Err(Refusal::OutOfOrder {
                producer_id: pid,
                expected,
                got: first,
            });
        }
        Ok(Check::Append)
    }

    /// Applies an appended data batch (its base offset set), appended at
    /// `now` by the log's clock.
    pub fn apply_batch(&mut self, h: &BatchHeader, now: i64) {
        let pid = h.producer_id;
        if pid == NO_PRODUCER_ID || h.is_control() {
            return;
        }
        let e = self.producers.entry(pid).or_insert_with(|| ProducerEntry {
            epoch: h.producer_epoch,
            batches: VecDeque::new(),
            coordinator_epoch: 0,
            txn_first: None,
            last_timestamp: now,
        });
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        if e.batches.len() == BATCHES_TO_RETAIN {
            e.batches.pop_front();
        }
        e.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_seq(h.base_sequence, h.last_offset_delta),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        e.last_timestamp = e.last_timestamp.max(now);
        if h.is_transactional() && e.txn_first.is_none() {
            e.txn_first = Some(h.base_offset);
            self.ongoing.insert(h.base_offset, pid);
        }
    }

    /// Applies a marker of `producer_id` at `epoch` appended at `offset`
    /// at `timestamp` (the log's clock).
    /// Returns the transaction it ended here, if one was open.
    pub fn apply_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        offset: u64,
        timestamp: i64,
    ) -> Option<Completed> {
        let e = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                coordinator_epoch: 0,
                txn_first: None,
                last_timestamp: timestamp,
            });
        if epoch > e.epoch {
            e.epoch = epoch;
            e.batches.clear();
        }
        e.last_timestamp = e.last_timestamp.max(timestamp);
        let first = e.txn_first.take()?;
        self.ongoing.remove(&first);
        let lso = self.first_unstable().unwrap_or(offset + 1);
        Some(Completed {
            producer_id,
            first_offset: first,
            marker_offset: offset,
            last_stable_offset: lso,
        })
    }

    /// Forgets producers idle since before `cutoff` (the log's clock)
    /// that have no open transaction (Kafka's `producer.id.expiration.ms`).
    pub fn expire(&mut self, cutoff: i64) {
        self.producers
            .retain(|_, e| e.txn_first.is_some() || e.last_timestamp >= cutoff);
    }

    /// The state as snapshot entries (each producer's last batch), sorted
    /// by producer id so that equal states give equal files.
    pub fn snapshot(&self) -> Vec<SnapshotEntry> {
        let mut out: Vec<SnapshotEntry> = self
            .producers
            .iter()
            .map(|(&pid, e)| {
                let last = e.batches.back();
                SnapshotEntry {
                    producer_id: pid,
                    epoch: e.epoch,
                    last_sequence: last.map_or(-1, |b| b.last_seq),
                    last_offset: last.map_or(-1, |b| b.last_offset as i64),
                    offset_delta: last.map_or(0, |b| (b.last_offset - b.first_offset) as i32),
                    timestamp: e.last_timestamp,
                    coordinator_epoch: e.coordinator_epoch,
                    current_txn_first_offset: e.txn_first.map_or(-1, |o| o as i64),
                }
            })
            .collect();
        out.sort_by_key(|e| e.producer_id);
        out
    }

    /// The state a snapshot holds. Entries that contradict themselves
    /// (negative offsets other than −1) are left out.
    pub fn from_snapshot(entries: &[SnapshotEntry]) -> ProducerState {
        let mut s = ProducerState::default();
        s.producers.reserve(entries.len());
        for e in entries {
            let mut batches = VecDeque::new();
            if e.last_sequence >= 0 && e.last_offset >= 0 && e.offset_delta >= 0 {
                let last_offset = e.last_offset as u64;
                let first_offset = last_offset.saturating_sub(e.offset_delta as u64);
                batches.push_back(BatchMeta {
                    first_seq: first_seq_of(e.last_sequence, e.offset_delta),
                    last_seq: e.last_sequence,
                    first_offset,
                    last_offset,
                });
            }
            let txn_first = u64::try_from(e.current_txn_first_offset).ok();
            if let Some(f) = txn_first {
                s.ongoing.insert(f, e.producer_id);
            }
            s.producers.insert(
                e.producer_id,
                ProducerEntry {
                    epoch: e.epoch,
                    batches,
                    coordinator_epoch: e.coordinator_epoch,
                    txn_first,
                    last_timestamp: e.timestamp,
                },
            );
        }
        s
    }
}

/// The first sequence of a batch whose last is `last`, `delta` records
/// earlier, wrapping below 0 to `i32::MAX` as sequences do.
fn first_seq_of(last: i32, delta: i32) -> i32 {
    let m = i64::from(i32::MAX) + 1;
    ((i64::from(last) - i64::from(delta)).rem_euclid(m)) as i32
}

#[cfg(test)]
mod tests;
