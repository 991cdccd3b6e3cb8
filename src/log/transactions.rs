//! The log's side of transactions: the state records in
//! `__transaction_state`, fencing, sends inside a transaction, the commit
//! protocol, aborts (asked for, on drop, on timeout), and finishing every
//! transaction at open.
//!
//! The commit protocol, for a transaction of producer `pid` at `epoch`:
//! 1. under the group's lock, check that the consumer whose offsets the
//!    transaction carries still owns those partitions (else abort: steps
//!    2–6 never happen, and `commit` fails with `CommitFailed`);
//! 2. append the offsets to `__consumer_offsets` as a transactional batch;
//! 3. make every partition the transaction wrote to durable (fdatasync,
//!    whatever the sync policy);
//! 4. append `PrepareCommit` (with the partitions) to `__transaction_state`
//!    and make it durable: **the decision**;
//! 5. bump the epoch; append a COMMIT marker to every partition of the
//!    transaction (made durable before any later state record of the id
//!    is appended: `record_txn_state` settles them first);
//! 6. apply the offsets to the group's committed offsets.
//!
//! No `CompleteCommit` is written then: the kernel could make it durable
//! before the markers. The id's next record replaces the decision; `open`
//! completes an id it finds in `PrepareCommit`.
//!
//! A crash before 4 leaves open transactions that `open` aborts; a crash
//! after 4 leaves a durable decision that `open` rolls forward (markers
//! where the transaction is still open, offsets applied on the marker).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::MutexGuard;

use super::state::LogInner;
use crate::error::{Error, Result};
use crate::format::batch::v2::ControlType;
use crate::format::batch::{EncodedBatch, ProducerFields};
use crate::format::offsets::{encode_key, encode_value};
use crate::format::txn::{encode_txn_key, encode_txn_value};
use crate::format::txn::{TxnLogValue, TxnStatus};
use crate::group::coordinator::Fenced;
use crate::group::offsets::{GroupMember, OffsetAndMetadata, OFFSETS_TOPIC};
use crate::producer::encode;
use crate::record::{Record, TopicPartition};
use crate::storage::partition::Partition;
use crate::topic::config::{CleanupPolicy, TopicConfig};
use crate::topic::Topic;
use crate::txn::{OpenTxn, TxnIdState, TxnOffsets, TxnSlot, TXN_STATE_TOPIC};

/// Settings of the internal transaction-state topic.
fn txn_topic_config() -> TopicConfig {
    TopicConfig::new()
        .partitions(1)
        .segment_bytes(16 << 20)
        .cleanup_policy(CleanupPolicy::Compact)
}

/// What a handle knows of itself, checked against its slot on every call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandleId {
    /// The slot's handle generation this handle was made at.
    pub gen: u64,
    /// The producer id and epoch it was given (for errors and accessors;
    /// batches carry the slot's current ones).
    pub producer_id: i64,
    pub epoch: i16,
}

/// The producer id and epoch of the slot's current transaction.
fn fields_of(st: &TxnIdState) -> ProducerFields {
    ProducerFields {
        id: st.producer_id,
        epoch: st.epoch,
        transactional: true,
    }
}

impl LogInner {
    fn txn_state_topic(&self) -> Result<Arc<Topic>> {
        self.internal_topic(TXN_STATE_TOPIC, txn_topic_config)
    }

    /// Appends the state of `id` to `__transaction_state`; `durable`: and
    /// makes it durable, whatever the sync policy.
    pub(super) fn record_txn_state(
        &self,
        id: &str,
        st: &mut TxnIdState,
        status: TxnStatus,
        open: Option<&OpenTxn>,
        durable: bool,
    ) -> Result<()> {
        let now = self.shared.clock.now_ms();
        let mut partitions: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        if let Some(o) = open {
            for (t, p) in &o.partitions {
                partitions.entry(t).or_default().push(*p as i32);
            }
        }
        let value = TxnLogValue {
            producer_id: st.producer_id,
            producer_epoch: st.epoch,
            timeout_ms: open.map_or(0, |o| o.timeout_ms.min(i32::MAX as u64) as i32),
            status,
            partitions: partitions
                .into_iter()
                .map(|(t, p)| (t.to_owned(), p))
                .collect(),
            last_update_ms: now,
            start_ms: open.map_or(-1, |o| o.start_ms),
        };
        // The last commit's markers first, written and durable: once any
        // later record of this id is on disk (by its own sync, another
        // id's, a roll, compaction or the kernel's writeback), that
        // commit's decision is no longer what recovery reads.
        self.settle_markers(st)?;
        let key = encode_txn_key(id);
        let bytes = encode_txn_value(&value);
        let rec = Record::new(&bytes[..]).key(&key[..]).timestamp(now);
        let topic = self.txn_state_topic()?;
        let part = topic.partition(0)?.clone();
        // Not synced by the sync policy: only `durable` records need it.
        let mut batch = encode(&topic, [&rec].into_iter(), now, None)?;
        let appended = part.append(&mut batch)?;
        if appended.rolled {
            self.on_roll(&part)?;
        }
        if durable {
            part.sync_to(part.end_offset())?;
        }
        st.status = status;
        st.partitions = value.partitions;
        Ok(())
    }

    /// Makes the last committed transaction's markers durable, writing
    /// first any a failure left unwritten (`unwritten_markers`). Until this
    /// succeeds, no later state record of the id may be appended.
    fn settle_markers(&self, st: &mut TxnIdState) -> Result<()> {
        self.settle_markers_unsynced(st)?;
        while let Some((t, p)) = st.unsynced_markers.last().cloned() {
            if let Ok(part) = self.partition(&t, p) {
                part.sync_to(part.end_offset())?;
            }
            st.unsynced_markers.pop();
        }
        Ok(())
    }

    /// Kafka's `initTransactions()`: the slot of `id` with a new epoch (a
    /// new producer id once the epoch is exhausted), recorded durably. An
    /// open transaction of an older handle is aborted first; every older
    /// handle is fenced from now on.
    ///
    /// `remote`: a remote client's transaction timeout (see
    /// `TxnIdState::remote`), set under the same lock so that concurrent
    /// calls each get their own epoch. `expected`: the producer id and
    /// epoch a remote client says it holds (Kafka's InitProducerId v3+); a
    /// mismatch is `ProducerFenced`.
    pub(crate) fn init_transactional(
        &self,
        id: &str,
        remote: Option<Duration>,
        expected: Option<(i64, i16)>,
    ) -> Result<(Arc<TxnSlot>, HandleId)> {
        if id.is_empty() || id.len() > i16::MAX as usize {
            return Err(Error::InvalidConfig {
                what: format!("a transactional id has 1 to 32,767 bytes, not {}", id.len()),
            });
        }
        self.shared.check_writable()?;
        let slot = match self.txns.get(id) {
            Some(s) => s,
            None => {
                let pid = self.allocate_producer_id()?;
                self.txns.get_or_insert(id, || {
                    TxnIdState::new(pid, -1, TxnStatus::Empty, Vec::new())
                })
            }
        };
        let mut st = slot.state.lock();
        if let Some((pid, epoch)) = expected.filter(|e| e.0 >= 0) {
            if pid != st.producer_id || epoch != st.epoch {
                return Err(Error::ProducerFenced {
                    transactional_id: Some(id.to_owned()),
                    producer_id: pid,
                    epoch,
                    current_epoch: st.epoch,
                });
            }
        }
        if st.open.is_some() {
            self.abort_locked(&slot.id, &mut st, true)?;
        }
        st.remote = remote;
        self.bump_epoch(&mut st)?;
        st.handle_gen += 1;
        self.record_txn_state(id, &mut st, TxnStatus::Empty, None, true)?;
        let h = HandleId {
            gen: st.handle_gen,
            producer_id: st.producer_id,
            epoch: st.epoch,
        };
        drop(st);
        Ok((slot, h))
    }

    /// Moves the slot to the next epoch (a new producer id once epochs
    /// run out).
    fn bump_epoch(&self, st: &mut TxnIdState) -> Result<()> {
        if st.epoch >= i16::MAX - 1 {
            st.producer_id = self.allocate_producer_id()?;
            st.epoch = 0;
        } else {
            st.epoch += 1;
        }
        Ok(())
    }

    /// Locks the slot for a call of handle `h`: fenced handles get
    /// `ProducerFenced`; with `seq`, the transaction must still be open
    /// (one that timed out is aborted here and reported).
    pub(crate) fn txn_lock<'a>(
        &self,
        slot: &'a TxnSlot,
        h: HandleId,
        seq: Option<u64>,
    ) -> Result<MutexGuard<'a, TxnIdState>> {
        let mut st = slot.state.lock();
        if st.handle_gen != h.gen {
            return Err(Error::ProducerFenced {
                transactional_id: Some(slot.id.clone()),
                producer_id: h.producer_id,
                epoch: h.epoch,
                current_epoch: st.epoch,
            });
        }
        let Some(seq) = seq else {
            return Ok(st);
        };
        let now = self.shared.clock.now_ms();
        if let Some(o) = &st.open {
            if o.seq == seq && o.expired(now) {
                let timeout_ms = o.timeout_ms;
                st.timed_out = Some((seq, timeout_ms));
                self.abort_locked(&slot.id, &mut st, true)?;
            }
        }
        match (&st.open, st.timed_out) {
            (Some(o), _) if o.seq == seq => Ok(st),
            (_, Some((s, timeout_ms))) if s == seq => Err(Error::TransactionTimedOut {
                transactional_id: slot.id.clone(),
                timeout_ms,
            }),
            _ => Err(Error::InvalidTxnState {
                what: format!("the transaction of {:?} has already ended", slot.id),
            }),
        }
    }

    /// Begins a transaction on the slot; returns its `seq`.
    pub(crate) fn txn_begin(&self, slot: &TxnSlot, h: HandleId, timeout: Duration) -> Result<u64> {
        self.shared.check_writable()?;
        let mut st = self.txn_lock(slot, h, None)?;
        if st.open.is_some() {
            return Err(Error::InvalidTxnState {
                what: format!("{:?} already has an open transaction", slot.id),
            });
        }
        // The last commit's markers, where a failure left them unwritten,
        // before this transaction writes anywhere: its batches must not
        // join that transaction in a partition still missing its marker.
        self.settle_markers_unsynced(&mut st)?;
        st.begun += 1;
        let seq = st.begun;
        st.open = Some(OpenTxn {
            seq,
            start_ms: self.shared.clock.now_ms(),
            timeout_ms: timeout.as_millis().min(u64::MAX as u128) as u64,
            partitions: Default::default(),
            offsets: Vec::new(),
        });
        Ok(seq)
    }

    /// Appends records to partition `p` of `t` inside the transaction.
    /// Returns the batch's base offset.
    pub(crate) fn txn_send(
        &self,
        slot: &TxnSlot,
        h: HandleId,
        seq: u64,
        t: &Topic,
        p: u32,
        records: &[&Record<'_>],
    ) -> Result<u64> {
        let mut st = self.txn_lock(slot, h, Some(seq))?;
        let part = t.partition(p)?.clone();
        let now = self.shared.clock.now_ms();
        let fields = fields_of(&st);
        let mut batch = encode(t, records.iter().copied(), now, Some(fields))?;
        // Recorded first: whatever happens to the append, an abort or a
        // commit visits this partition.
        let open = st.open.as_mut().expect("checked by txn_lock");
        open.partitions.insert((t.name.to_string(), p));
        // Appended under the slot's lock: a newer handle or a timeout
        // abort cannot slip in between the check and the append.
        let base = self.append_with_policy(&part, &mut batch)?;
        drop(st);
        Ok(base)
    }

    /// Appends `batch` to `part`, then the roll's retention and the sync
    /// policy, as a producer's append does.
    fn append_with_policy(&self, part: &Arc<Partition>, batch: &mut EncodedBatch) -> Result<u64> {
        let appended = part.append(batch)?;
        if appended.rolled {
            self.on_roll(part)?;
        }
        part.sync_after_append(part.end_offset())?;
        Ok(appended.base_offset)
    }

    /// Appends a marker to `part` (if the producer's transaction is open
    /// there), with the roll's retention and the sync policy.
    fn marker_with_policy(
        &self,
        part: &Arc<Partition>,
        f: ProducerFields,
        kind: ControlType,
    ) -> Result<()> {
        if part.append_marker(f.id, f.epoch, kind)? {
            part.sync_after_append(part.end_offset())?;
        }
        Ok(())
    }

    /// Records offsets to commit with the transaction.
    pub(crate) fn txn_offsets(
        &self,
        slot: &TxnSlot,
        h: HandleId,
        seq: u64,
        offsets: TxnOffsets,
    ) -> Result<()> {
        if offsets.group.group_id.is_empty() {
            return Err(Error::NoGroup);
        }
        let mut st = self.txn_lock(slot, h, Some(seq))?;
        for (tp, o) in &offsets.offsets {
            let part = self.partition(&tp.topic, tp.partition)?;
            if o.offset > part.end_offset() {
                return Err(Error::OffsetOutOfRange {
                    requested: o.offset,
                    earliest: part.start_offset(),
                    latest: part.end_offset(),
                });
            }
        }
        st.open
            .as_mut()
            .expect("checked by txn_lock")
            .offsets
            .push(offsets);
        Ok(())
    }

    /// Commits the transaction (the protocol in this module's docs).
    pub(crate) fn txn_commit(&self, slot: &TxnSlot, h: HandleId, seq: u64) -> Result<()> {
        let mut st = self.txn_lock(slot, h, Some(seq))?;
        self.commit_locked(&slot.id, &mut st)
    }

    /// Commits the open transaction of a locked slot.
    pub(super) fn commit_locked(&self, id: &str, st: &mut TxnIdState) -> Result<()> {
        if let Err(e) = self.shared.check_writable() {
            // Nothing more can be written; the next open aborts it.
            st.open = None;
            return Err(e);
        }
        // 1. Group fencing, under the groups' locks (in id order), held
        // until the offsets are applied.
        let open = st.open.as_ref().expect("checked by txn_lock");
        let mut by_group: BTreeMap<String, Vec<&TxnOffsets>> = BTreeMap::new();
        for o in &open.offsets {
            by_group
                .entry(o.group.group_id.clone())
                .or_default()
                .push(o);
        }
        let groups: Vec<_> = by_group.keys().map(|g| self.groups.group(g)).collect();
        let guards: Vec<_> = groups.iter().map(|g| g.lock()).collect();
        let mut fenced = None;
        for ((gid, list), guard) in by_group.iter().zip(&guards) {
            for o in list {
                let tps: Vec<&TopicPartition> = o.offsets.iter().map(|(tp, _)| tp).collect();
                let member = match o.group.member {
                    GroupMember::Outside => None,
                    GroupMember::Member(id) => Some(id),
                    GroupMember::Evicted => {
                        fenced = Some((gid.clone(), Fenced::NotMember.to_string()));
                        break;
                    }
                };
                if let Err(f) = guard.check_commit(member, &tps) {
                    fenced = Some((gid.clone(), f.to_string()));
                    break;
                }
            }
        }
        if let Some((group, reason)) = fenced {
            drop(guards);
            self.abort_locked(id, st, true)?;
            return Err(Error::CommitFailed {
                group,
                reason: format!("{reason}; the transaction was aborted"),
            });
        }
        let mut decided = false;
        let result = self.commit_steps(id, st, &mut decided);
        drop(guards);
        if let Err(e) = result {
            // Before the decision: abort what can be aborted (the log may
            // be poisoned: the next open aborts it). After it: the markers
            // not written yet are written before anything else of the id,
            // or by the next open.
            if !decided {
                let _ = self.abort_locked(id, st, true);
            }
            st.open = None;
            return Err(e);
        }
        Ok(())
    }

    /// Steps 2–7 of the commit protocol.
    fn commit_steps(&self, id: &str, st: &mut TxnIdState, decided: &mut bool) -> Result<()> {
        let now = self.shared.clock.now_ms();
        let fields = fields_of(st);
        // 2. The offsets, as a transactional batch.
        let mut applied: Vec<(String, TopicPartition, OffsetAndMetadata)> = Vec::new();
        {
            let open = st.open.as_mut().expect("open");
            for o in &open.offsets {
                for (tp, om) in &o.offsets {
                    let om = OffsetAndMetadata {
                        commit_timestamp: now,
                        ..om.clone()
                    };
                    applied.push((o.group.group_id.clone(), tp.clone(), om));
                }
            }
            if !applied.is_empty() {
                let topic = self.offsets_topic()?;
                let keys: Vec<Vec<u8>> =
                    applied.iter().map(|(g, tp, _)| encode_key(g, tp)).collect();
                let values: Vec<Vec<u8>> =
                    applied.iter().map(|(_, _, o)| encode_value(o)).collect();
                let records: Vec<Record<'_>> = keys
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| Record::new(&v[..]).key(&k[..]).timestamp(now))
                    .collect();
                let refs: Vec<&Record<'_>> = records.iter().collect();
                let mut batch = encode(&topic, refs.iter().copied(), now, Some(fields))?;
                open.partitions.insert((OFFSETS_TOPIC.to_owned(), 0));
                let part = topic.partition(0)?.clone();
                self.append_with_policy(&part, &mut batch)?;
            }
        }
        let open = st.open.take().expect("open");
        let parts: Vec<Arc<Partition>> = open
            .partitions
            .iter()
            .filter_map(|(t, p)| self.partition(t, *p).ok())
            .collect();
        // 3. The data, durable.
        for part in &parts {
            part.sync_to(part.end_offset())?;
        }
        // 4. The decision, durable.
        let recorded = self.record_txn_state(id, st, TxnStatus::PrepareCommit, Some(&open), true);
        if let Err(e) = recorded {
            st.open = Some(open);
            return Err(e);
        }
        *decided = true;
        // 5. The markers. They must be durable before any later state
        // record of the id is appended (it would replace this decision, and
        // a COMMIT marker lost to a power cut could then never be written
        // again): `record_txn_state` settles them first, and the next
        // transaction's step 3 usually has already synced them. A marker
        // that fails here is written there, before anything else.
        st.committed = (fields.id, fields.epoch);
        st.unwritten_markers = open.partitions.iter().cloned().collect();
        // The next transaction gets the next epoch, whatever happens now
        // (a remote client keeps its epoch: see `TxnIdState::remote`).
        let bumped = match st.remote {
            None => self.bump_epoch(st),
            Some(_) => Ok(()),
        };
        let marked = self.settle_markers_unsynced(st);
        // 6. The offsets.
        if !applied.is_empty() {
            let mut map = self.groups.offsets();
            for (g, tp, o) in applied {
                map.insert((g, tp.topic, tp.partition), o);
            }
        }
        // No `CompleteCommit` here: written now, the kernel could make it
        // durable before the markers, and recovery would abort what was
        // acknowledged. The next record of the id (a commit's decision, an
        // abort's `CompleteAbort`, a new handle's `Empty`), appended once
        // the markers are durable, completes it; `open` writes it for an
        // id it finds in `PrepareCommit`.
        let _ = id;
        bumped.and(marked)
    }

    /// Writes the markers of `unwritten_markers` (not synced), moving each
    /// to `unsynced_markers`; a failure leaves the rest for
    /// `settle_markers`.
    fn settle_markers_unsynced(&self, st: &mut TxnIdState) -> Result<()> {
        let f = ProducerFields {
            id: st.committed.0,
            epoch: st.committed.1,
            transactional: true,
        };
        while let Some((t, p)) = st.unwritten_markers.last().cloned() {
            match self.partition(&t, p) {
                Err(Error::UnknownTopic { .. } | Error::UnknownPartition { .. }) => {}
                Err(e) => return Err(e),
                Ok(part) => self.marker_with_policy(&part, f, ControlType::Commit)?,
            }
            st.unwritten_markers.pop();
            st.unsynced_markers.push((t, p));
        }
        Ok(())
    }

    /// Aborts the transaction of handle `h` (asked for, or on drop).
    pub(crate) fn txn_abort(&self, slot: &TxnSlot, h: HandleId, seq: u64) -> Result<()> {
        let mut st = self.txn_lock(slot, h, Some(seq))?;
        self.abort_locked(&slot.id, &mut st, true)
    }

    /// Aborts the slot's open transaction: ABORT markers where it wrote,
    /// `CompleteAbort` recorded. Its offsets are never applied. `bump`:
    /// the epoch moves on (it fences a remote client's handle; an
    /// in-process handle's next transaction gets it).
    pub(super) fn abort_locked(&self, id: &str, st: &mut TxnIdState, bump: bool) -> Result<()> {
        let Some(open) = st.open.take() else {
            return Ok(());
        };
        let f = fields_of(st);
        for (t, p) in &open.partitions {
            if let Ok(part) = self.partition(t, *p) {
                self.marker_with_policy(&part, f, ControlType::Abort)?;
            }
        }
        if !open.partitions.is_empty() {
            if bump || st.remote.is_none() {
                self.bump_epoch(st)?;
            }
            self.record_txn_state(id, st, TxnStatus::CompleteAbort, None, false)?;
        }
        Ok(())
    }

    /// Aborts every transaction open longer than its timeout whose slot is
    /// free now; their handles learn it at their next call. Returns how
    /// many were aborted.
    pub(crate) fn abort_timed_out(&self) -> Result<usize> {
        let now = self.shared.clock.now_ms();
        let mut n = 0;
        for slot in self.txns.slots() {
            let Some(mut st) = slot.state.try_lock() else {
                continue;
            };
            let expired = st
                .open
                .as_ref()
                .filter(|o| o.expired(now))
                .map(|o| (o.seq, o.timeout_ms));
            if let Some(t) = expired {
                st.timed_out = Some(t);
                self.abort_locked(&slot.id, &mut st, true)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
