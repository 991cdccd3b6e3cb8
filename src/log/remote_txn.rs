//! Transactions driven by a remote client over Kafka's protocol
//! (transaction version 1: `InitProducerId`, `AddPartitionsToTxn`,
//! `AddOffsetsToTxn`, `Produce`, `TxnOffsetCommit`, `EndTxn`), on the same
//! coordinator, commit protocol and recovery as [`TransactionalProducer`](crate::TransactionalProducer).
//!
//! What differs from an in-process handle: the client writes its own
//! batches (its producer id, epoch and sequences), a transaction begins
//! when its first partition or group is added, and the epoch stays the same
//! across the transactions the client ends itself. Because (producer id,
//! epoch) then names several transactions in turn, the first addition of
//! each transaction records `Ongoing` durably before the client may write:
//! recovery reads the latest state of the id, so a crash inside this
//! transaction can never be read as the previous one's commit.

use std::time::Duration;

use super::state::Log;
use crate::error::{Error, Result};
use crate::format::batch::EncodedBatch;
use crate::format::txn::TxnStatus;
use crate::group::offsets::{
    validate_group_id, ConsumerGroupMetadata, GroupMember, OffsetAndMetadata,
};
use crate::record::TopicPartition;
use crate::txn::{OpenTxn, TxnIdState, TxnOffsets, TxnSlot, DEFAULT_TXN_TIMEOUT, MAX_TXN_TIMEOUT};
use parking_lot::MutexGuard;
use std::sync::Arc;

impl Log {
    /// Kafka's `InitProducerId` for a transactional id: fences every
    /// earlier holder of `transactional_id` (in-process handles too),
    /// aborts what they left open, and returns the producer id and epoch
    /// the remote client writes with. `timeout` bounds each of its
    /// transactions (at most 15 minutes). `current`: the producer id and
    /// epoch the client already holds, if it says so (Kafka's InitProducerId
    /// v3+, after an abortable error): a client that is no longer the
    /// current holder is refused.
    ///
    /// After a restart of the log, a client that goes on with the producer
    /// id and epoch it had is accepted again (with a 60 s transaction
    /// timeout) until anyone initializes the id anew.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty id or a timeout over 15
    /// minutes; [`Error::ProducerFenced`] when `current` is not the id's
    /// current producer id and epoch; [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let log = streamlog::Log::temporary()?;
    /// let (pid, epoch) = log.init_producer_id("copier", Duration::from_secs(60), None)?;
    /// let (pid2, epoch2) = log.init_producer_id("copier", Duration::from_secs(60), None)?;
    /// assert_eq!((pid2, epoch2), (pid, epoch + 1));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout: Duration,
        current: Option<(i64, i16)>,
    ) -> Result<(i64, i16)> {
        if timeout.is_zero() || timeout > MAX_TXN_TIMEOUT {
            return Err(Error::InvalidConfig {
                what: format!("a transaction timeout of {timeout:?}: allowed 1 ms to 15 minutes"),
            });
        }
        let (_, h) = self
            .inner
            .init_transactional(transactional_id, Some(timeout), current)?;
        Ok((h.producer_id, h.epoch))
    }

    /// Locks the slot of `id` for a remote call at `(producer_id, epoch)`.
    fn remote_slot(&self, id: &str, producer_id: i64, epoch: i16) -> Result<Arc<TxnSlot>> {
        let fenced = |current| Error::ProducerFenced {
            transactional_id: Some(id.to_owned()),
            producer_id,
            epoch,
            current_epoch: current,
        };
        let slot = self.inner.txns.get(id).ok_or_else(|| fenced(-1))?;
        {
            let mut st = slot.state.lock();
            if st.producer_id != producer_id || st.epoch != epoch {
                return Err(fenced(st.epoch));
            }
            if st.remote.is_none() {
                // Nobody initialized the id since the log was opened (no
                // handle generation yet): a remote client carrying on
                // across a restart, adopted. Otherwise the id belongs to an
                // in-process handle.
                if st.handle_gen != 0 {
                    return Err(fenced(st.epoch));
                }
                st.remote = Some(DEFAULT_TXN_TIMEOUT);
            }
        }
        Ok(slot)
    }

    /// The slot's open transaction, begun now if none is: the timed-out
    /// one is aborted first (and the client fenced).
    fn remote_open<'a>(
        &self,
        slot: &'a TxnSlot,
        producer_id: i64,
        epoch: i16,
    ) -> Result<MutexGuard<'a, TxnIdState>> {
        let inner = &self.inner;
        inner.shared.check_writable()?;
        let mut st = slot.state.lock();
        if st.producer_id != producer_id || st.epoch != epoch {
            return Err(Error::ProducerFenced {
                transactional_id: Some(slot.id.clone()),
                producer_id,
                epoch,
                current_epoch: st.epoch,
            });
        }
        let now = inner.shared.clock.now_ms();
        if st.open.as_ref().is_some_and(|o| o.expired(now)) {
            let t = st.open.as_ref().map(|o| (o.seq, o.timeout_ms));
            st.timed_out = t;
            inner.abort_locked(&slot.id, &mut st, true)?;
            return Err(Error::TransactionTimedOut {
                transactional_id: slot.id.clone(),
                timeout_ms: t.map_or(0, |t| t.1),
            });
        }
        Ok(st)
    }

    /// Adds partitions (and, for `add_offsets_to_txn`, the offsets topic) to
    /// the open transaction, beginning it if needed.
    fn remote_add(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        tps: &[(String, u32)],
    ) -> Result<()> {
        let inner = &self.inner;
        for (t, p) in tps {
            if inner.topic(t)?.is_internal() {
                return Err(Error::InvalidTopicName {
                    name: t.clone(),
                    reason: "internal topics are written by the log only",
                });
            }
            inner.partition(t, *p)?;
        }
        let slot = self.remote_slot(id, producer_id, epoch)?;
        let mut st = self.remote_open(&slot, producer_id, epoch)?;
        let began = st.open.is_none();
        if began {
            st.begun += 1;
            let timeout = st.remote.unwrap_or(MAX_TXN_TIMEOUT);
            st.open = Some(OpenTxn {
                seq: st.begun,
                start_ms: inner.shared.clock.now_ms(),
                timeout_ms: timeout.as_millis().min(u64::MAX as u128) as u64,
                partitions: Default::default(),
                offsets: Vec::new(),
            });
        }
        let open = st.open.as_mut().expect("opened above");
        let before = open.partitions.len();
        open.partitions.extend(tps.iter().cloned());
        if began || open.partitions.len() != before {
            // Durable before the client writes (this module's docs). The
            // partitions listed are for tools; recovery finds them itself.
            let open = st.open.take().expect("open");
            let recorded =
                inner.record_txn_state(id, &mut st, TxnStatus::Ongoing, Some(&open), began);
            st.open = Some(open);
            recorded?;
        }
        Ok(())
    }

    /// Kafka's `AddPartitionsToTxn`: the remote client will write to these
    /// partitions in its open transaction (begun now if none is). Returns
    /// once the transaction's start is durable.
    ///
    /// # Errors
    /// [`Error::ProducerFenced`] for a stale producer id or epoch,
    /// [`Error::TransactionTimedOut`], [`Error::UnknownTopic`],
    /// [`Error::UnknownPartition`], [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{Log, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// let (pid, epoch) = log.init_producer_id("tx", Duration::from_secs(60), None)?;
    /// log.add_partitions_to_txn("tx", pid, epoch, &[TopicPartition::new("t", 0)])?;
    /// log.end_txn("tx", pid, epoch, false)?;
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn add_partitions_to_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let tps: Vec<(String, u32)> = partitions
            .iter()
            .map(|tp| (tp.topic.to_string(), tp.partition))
            .collect();
        self.remote_add(transactional_id, producer_id, epoch, &tps)
    }

    /// Kafka's `AddOffsetsToTxn`: the transaction will commit offsets of a
    /// consumer group (see [`txn_offset_commit`](Self::txn_offset_commit)).
    ///
    /// # Errors
    /// As [`add_partitions_to_txn`](Self::add_partitions_to_txn), and
    /// [`Error::InvalidGroupId`].
    pub fn add_offsets_to_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> Result<()> {
        validate_group_id(group)?;
        self.remote_add(transactional_id, producer_id, epoch, &[])
    }

    /// Appends a remote transactional producer's record batches (Kafka's
    /// bytes, as [`Producer::append_kafka_batches`](crate::Producer::append_kafka_batches)
    /// takes them) to a partition added to its open transaction. Returns
    /// each batch's base offset (a retried batch gets its original ones).
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] if the partition was not added or no
    /// transaction is open, [`Error::ProducerFenced`] for a stale epoch or
    /// a batch of another producer, and the errors of `append_kafka_batches`.
    pub fn append_transactional_batches(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: u32,
        batches: &[u8],
    ) -> Result<Vec<u64>> {
        let inner = &self.inner;
        let t = inner.topic(topic)?;
        let part = t.partition(partition)?.clone();
        let checked = t.validate_foreign(partition, batches, true)?;
        let slot = self.remote_slot(transactional_id, producer_id, epoch)?;
        let st = self.remote_open(&slot, producer_id, epoch)?;
        let added = st
            .open
            .as_ref()
            .is_some_and(|o| o.partitions.contains(&(topic.to_owned(), partition)));
        if !added {
            return Err(Error::InvalidTxnState {
                what: format!("{topic}-{partition} was not added to the transaction of {transactional_id:?} (AddPartitionsToTxn)"),
            });
        }
        for c in &checked {
            let h = &c.header;
            if h.producer_id != producer_id || h.producer_epoch != epoch || !h.is_transactional() {
                return Err(Error::ProducerFenced {
                    transactional_id: Some(transactional_id.to_owned()),
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                    current_epoch: epoch,
                });
            }
        }
        let headers: Vec<_> = checked.iter().map(|c| c.header).collect();
        part.precheck_producer_batches(&headers)?;
        let mut offsets = Vec::with_capacity(checked.len());
        // Appended under the slot's lock: an abort cannot slip in between.
        for c in checked {
            let mut batch = EncodedBatch::from_foreign(&batches[c.range], c.header);
            let appended = part.append(&mut batch)?;
            if appended.rolled {
                inner.on_roll(&part)?;
            }
            part.sync_after_append(part.end_offset())?;
            offsets.push(appended.base_offset);
        }
        drop(st);
        Ok(offsets)
    }

    /// Kafka's `TxnOffsetCommit`: offsets of `group` to commit with the
    /// open transaction (applied only if it commits). The caller checks the
    /// member's generation in a group it coordinates itself.
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] if no transaction is open (call
    /// [`add_offsets_to_txn`](Self::add_offsets_to_txn) first),
    /// [`Error::OffsetOutOfRange`] past a partition's end, and as
    /// [`add_partitions_to_txn`](Self::add_partitions_to_txn).
    pub fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        validate_group_id(group)?;
        let inner = &self.inner;
        let slot = self.remote_slot(transactional_id, producer_id, epoch)?;
        let mut st = self.remote_open(&slot, producer_id, epoch)?;
        let Some(open) = st.open.as_mut() else {
            return Err(Error::InvalidTxnState {
                what: format!(
                    "no open transaction of {transactional_id:?} (AddOffsetsToTxn first)"
                ),
            });
        };
        for (tp, o) in offsets {
            let part = inner.partition(&tp.topic, tp.partition)?;
            if o.offset > part.end_offset() {
                return Err(Error::OffsetOutOfRange {
                    requested: o.offset,
                    earliest: part.start_offset(),
                    latest: part.end_offset(),
                });
            }
        }
        open.offsets.push(TxnOffsets {
            group: ConsumerGroupMetadata {
                group_id: group.to_owned(),
                generation: 0,
                member: GroupMember::Outside,
            },
            offsets: offsets.to_vec(),
        });
        Ok(())
    }

    /// Kafka's `EndTxn`: commits (`commit`) or aborts the remote client's
    /// open transaction, with the same protocol and durability as
    /// [`Transaction::commit`](crate::Transaction::commit). Ending a
    /// transaction that already ended the same way succeeds (a client's
    /// retry).
    ///
    /// # Errors
    /// [`Error::InvalidTxnState`] with nothing to end,
    /// [`Error::TransactionTimedOut`], [`Error::ProducerFenced`],
    /// [`Error::CommitFailed`], [`Error::Io`].
    pub fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<()> {
        let inner = &self.inner;
        let slot = self.remote_slot(transactional_id, producer_id, epoch)?;
        let mut st = self.remote_open(&slot, producer_id, epoch)?;
        if st.open.is_none() {
            let same = match st.status {
                TxnStatus::PrepareCommit | TxnStatus::CompleteCommit => commit,
                TxnStatus::CompleteAbort | TxnStatus::PrepareAbort | TxnStatus::Empty => !commit,
                _ => false,
            };
            return if same {
                Ok(())
            } else {
                Err(Error::InvalidTxnState {
                    what: format!(
                        "{transactional_id:?} has no open transaction to {}",
                        if commit { "commit" } else { "abort" }
                    ),
                })
            };
        }
        if commit {
            inner.commit_locked(transactional_id, &mut st)
        } else {
            // The ABORT markers are made durable before this returns: the
            // epoch stays, so a later commit decision of the same producer
            // and epoch would otherwise cover a batch whose marker a power
            // cut lost, and commit it.
            let written: Vec<(String, u32)> = st
                .open
                .as_ref()
                .map(|o| o.partitions.iter().cloned().collect())
                .unwrap_or_default();
            inner.abort_locked(transactional_id, &mut st, false)?;
            for (t, p) in &written {
                if let Ok(part) = inner.partition(t, *p) {
                    part.sync_to(part.end_offset())?;
                }
            }
            if st.status != TxnStatus::CompleteAbort {
                // Nothing was written (no partition added): record the end
                // so that a retried abort is answered as done.
                inner.record_txn_state(
                    transactional_id,
                    &mut st,
                    TxnStatus::CompleteAbort,
                    None,
                    false,
                )?;
            }
            Ok(())
        }
    }
}
