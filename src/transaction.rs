//! Transactions: [`TransactionalProducer`] (one per transactional id, Kafka's
//! `initTransactions()` fences older handles) and [`Transaction`], whose
//! sends, offsets and commit are all or nothing. The protocol is in
//! `log/transactions.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::group::offsets::{ConsumerGroupMetadata, OffsetAndMetadata};
use crate::log::state::LogInner;
use crate::log::transactions::HandleId;
use crate::record::{Record, RecordMetadata, TopicName, TopicPartition};
use crate::topic::Topic;
use crate::txn::{TxnOffsets, TxnSlot, DEFAULT_TXN_TIMEOUT, MAX_TXN_TIMEOUT};

/// A producer of transactions under one transactional id (Kafka's
/// transactional `KafkaProducer`). Made by
/// [`Log::transactional_producer`](crate::Log::transactional_producer),
/// which fences every older handle with the same id: their calls fail with
/// [`Error::ProducerFenced`] from then on, and the transaction one of them
/// left open is aborted.
///
/// # Example
/// ```
/// use streamlog::{ConsumerConfig, IsolationLevel, Log, OffsetReset, Record, TopicConfig, TopicPartition};
/// use std::time::Duration;
/// let log = Log::temporary()?;
/// log.create_topic("out", TopicConfig::new())?;
/// let mut tp = log.transactional_producer("copier-1")?;
/// let mut txn = tp.begin_transaction()?;
/// txn.send("out", Record::new(b"x").key(b"k"))?;
/// // Not visible to committed reads until the commit.
/// let mut reader = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
/// reader.assign(&[TopicPartition::new("out", 0)])?;
/// assert!(reader.poll(Duration::ZERO)?.is_empty());
/// txn.commit()?;
/// assert_eq!(reader.poll(Duration::from_secs(1))?.len(), 1);
/// # Ok::<(), streamlog::Error>(())
/// ```
pub struct TransactionalProducer {
    inner: Arc<LogInner>,
    slot: Arc<TxnSlot>,
    handle: HandleId,
    timeout: Duration,
}

impl std::fmt::Debug for TransactionalProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalProducer")
            .field("transactional_id", &self.slot.id)
            .field("producer_id", &self.handle.producer_id)
            .field("epoch", &self.handle.epoch)
            .finish_non_exhaustive()
    }
}

impl TransactionalProducer {
    pub(crate) fn new(inner: Arc<LogInner>, id: &str) -> Result<Self> {
        let (slot, handle) = inner.init_transactional(id, None, None)?;
        Ok(TransactionalProducer {
            inner,
            slot,
            handle,
            timeout: DEFAULT_TXN_TIMEOUT,
        })
    }

    /// The transactional id.
    pub fn transactional_id(&self) -> &str {
        &self.slot.id
    }

    /// The producer id the transactions' batches carry.
    pub fn producer_id(&self) -> i64 {
        self.handle.producer_id
    }

    /// The epoch this handle was given: a newer handle of the same id gets
    /// a higher one. (Each transaction's end moves the id to the next
    /// epoch, as Kafka's transaction version 2 does.)
    pub fn epoch(&self) -> i16 {
        self.handle.epoch
    }

    /// Sets how long a transaction begun from now on may stay open (by the
    /// log's clock). Default 60 s, at most 15 minutes (Kafka's defaults).
    /// A transaction open longer is aborted by the next call that meets
    /// it: a call on it, the next `transactional_producer` of the same id,
    /// [`Log::maintain`](crate::Log::maintain), or a `ReadCommitted` poll
    /// waiting behind it.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero or more than 15 minutes.
    pub fn set_transaction_timeout(&mut self, timeout: Duration) -> Result<()> {
        if timeout.is_zero() || timeout > MAX_TXN_TIMEOUT {
            return Err(Error::InvalidConfig {
                what: format!("transaction timeout {timeout:?} is not within 1 ms..=15 min"),
            });
        }
        self.timeout = timeout;
        Ok(())
    }

    /// Begins a transaction. One at a time: the [`Transaction`] borrows
    /// the producer until it is committed, aborted or dropped.
    ///
    /// # Errors
    /// [`Error::ProducerFenced`], [`Error::Poisoned`], [`Error::Closed`].
    pub fn begin_transaction(&mut self) -> Result<Transaction<'_>> {
        let seq = self
            .inner
            .txn_begin(&self.slot, self.handle, self.timeout)?;
        Ok(Transaction {
            producer: self,
            seq,
            done: false,
        })
    }
}

/// An open transaction: records sent through it, and offsets sent to it,
/// become visible to `ReadCommitted` consumers all at once at
/// [`commit`](Self::commit), or never (an [`abort`](Self::abort), a drop,
/// a timeout, a crash before the commit decision was durable).
pub struct Transaction<'a> {
    producer: &'a mut TransactionalProducer,
    seq: u64,
    done: bool,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("transactional_id", &self.producer.slot.id)
            .finish_non_exhaustive()
    }
}

impl Transaction<'_> {
    fn send_records(&self, t: &Topic, partition: u32, records: &[&Record<'_>]) -> Result<u64> {
        let p = &self.producer;
        p.inner
            .txn_send(&p.slot, p.handle, self.seq, t, partition, records)
    }

    fn metadata(
        &self,
        topic: &Arc<str>,
        partition: u32,
        offset: u64,
        r: &Record<'_>,
    ) -> RecordMetadata {
        RecordMetadata {
            topic: TopicName::new(topic),
            partition,
            offset,
            timestamp: r
                .timestamp
                .unwrap_or_else(|| self.producer.inner.shared.clock.now_ms()),
        }
    }

    /// Sends one record in the transaction, partitioned as
    /// [`Producer::send`](crate::Producer::send) does.
    ///
    /// # Errors
    /// As `Producer::send`, plus [`Error::ProducerFenced`],
    /// [`Error::TransactionTimedOut`].
    pub fn send(&mut self, topic: &str, record: Record<'_>) -> Result<RecordMetadata> {
        let t = self.producer.inner.topic(topic)?;
        let p = t.choose(record.key.as_deref());
        let offset = self.send_records(&t, p, &[&record])?;
        Ok(self.metadata(&t.name, p, offset, &record))
    }

    /// Sends one record to an explicit partition.
    ///
    /// # Errors
    /// As [`send`](Self::send), plus [`Error::UnknownPartition`].
    pub fn send_to(
        &mut self,
        topic: &str,
        partition: u32,
        record: Record<'_>,
    ) -> Result<RecordMetadata> {
        let t = self.producer.inner.topic(topic)?;
        let offset = self.send_records(&t, partition, &[&record])?;
        Ok(self.metadata(&t.name, partition, offset, &record))
    }

    /// Sends many records: those bound for one partition as one batch.
    /// Returns one metadata per record, in the order given.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_batch(
        &mut self,
        topic: &str,
        records: Vec<Record<'_>>,
    ) -> Result<Vec<RecordMetadata>> {
        let t = self.producer.inner.topic(topic)?;
        let keyless = t.choose(None);
        let parts: Vec<u32> = records
            .iter()
            .map(|r| match r.key.as_deref() {
                Some(k) => t.choose(Some(k)),
                None => keyless,
            })
            .collect();
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_by_key(|&i| parts[i]);
        let mut offsets = vec![0u64; records.len()];
        for run in order.chunk_by(|&a, &b| parts[a] == parts[b]) {
            let refs: Vec<&Record<'_>> = run.iter().map(|&i| &records[i]).collect();
            let base = self.send_records(&t, parts[run[0]], &refs)?;
            for (k, &i) in run.iter().enumerate() {
                offsets[i] = base + k as u64;
            }
        }
        Ok(records
            .iter()
            .enumerate()
            .map(|(i, r)| self.metadata(&t.name, parts[i], offsets[i], r))
            .collect())
    }

    /// Commits `offsets` for the consumer's group together with the
    /// transaction (Kafka's `sendOffsetsToTransaction`): each offset is the
    /// next one to read, the last processed + 1. At commit the consumer
    /// must still be a member of its group and own these partitions; if it
    /// is not (a rebalance moved them, it was evicted), the commit fails
    /// with [`Error::CommitFailed`] and nothing of the transaction becomes
    /// visible. The consumer should not commit offsets itself (turn
    /// auto-commit off).
    ///
    /// # Errors
    /// [`Error::NoGroup`] for a consumer without a group,
    /// [`Error::OffsetOutOfRange`] for an offset past a partition's end,
    /// [`Error::UnknownTopic`], as [`send`](Self::send) otherwise.
    pub fn send_offsets_to_transaction(
        &mut self,
        offsets: &HashMap<TopicPartition, OffsetAndMetadata>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let mut list: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), o.clone()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let p = &self.producer;
        p.inner.txn_offsets(
            &p.slot,
            p.handle,
            self.seq,
            TxnOffsets {
                group: group.clone(),
                offsets: list,
            },
        )
    }

    /// Commits: every record and offset of the transaction becomes visible
    /// at once. When it returns, the commit decision and all the
    /// transaction's records are on stable storage, whatever the log's
    /// [`SyncPolicy`](crate::SyncPolicy) (a temporary log aside).
    ///
    /// # Errors
    /// [`Error::CommitFailed`] (group fencing; the transaction was
    /// aborted), [`Error::ProducerFenced`], [`Error::TransactionTimedOut`]
    /// (aborted), [`Error::Io`] (if it happened before the decision was
    /// durable, the transaction is aborted, now or at the next open; after
    /// it, the next open completes the commit).
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        let p = &self.producer;
        p.inner.txn_commit(&p.slot, p.handle, self.seq)
    }

    /// Aborts: nothing of the transaction becomes visible to `ReadCommitted`
    /// readers, and its offsets are never committed.
    ///
    /// # Example
    /// ```
    /// use streamlog::{ConsumerConfig, Log, OffsetReset, Record, TopicConfig, TopicPartition};
    /// use std::time::Duration;
    /// let log = Log::temporary()?;
    /// log.create_topic("out", TopicConfig::new())?;
    /// let mut tp = log.transactional_producer("t")?;
    /// let mut txn = tp.begin_transaction()?;
    /// txn.send_batch("out", vec![Record::new(b"a"), Record::new(b"b")])?;
    /// txn.abort()?;
    /// let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
    /// c.assign(&[TopicPartition::new("out", 0)])?;
    /// assert!(c.poll(Duration::ZERO)?.is_empty()); // two records and a marker, none shown
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ProducerFenced`] (an older handle's transaction was already
    /// aborted by the newer one), [`Error::TransactionTimedOut`] (already
    /// aborted), [`Error::Io`].
    pub fn abort(mut self) -> Result<()> {
        self.done = true;
        let p = &self.producer;
        p.inner.txn_abort(&p.slot, p.handle, self.seq)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let p = &self.producer;
            // Best effort: a failure leaves it open, and the next open (or
            // its timeout) aborts it.
            let _ = p.inner.txn_abort(&p.slot, p.handle, self.seq);
        }
    }
}
