//! [`Producer`]: partitioning, batch encoding and the sync policy.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use parking_lot::Mutex;

use crate::format::batch::{
    decode_batch, plain_body_len, record_body_len, write_plain_record, write_record, EncodeRecord,
    EncodedBatch, ProducerFields,
};
use crate::format::varint::{append_exact, varint_len};
use crate::log::state::LogInner;
use crate::record::{Record, RecordMetadata, TopicName};
use crate::storage::partition::Partition;
use crate::topic::config::Compression;
use crate::topic::Topic;

/// Appends records to topics. `Clone + Send + Sync`; clones share the log.
///
/// Every `send` writes straight into the partition's mapped active segment:
/// when it returns, the record is in the log and readable, and it survives a
/// crash of the process. Whether it also survives a power cut is the log's
/// [`SyncPolicy`](crate::SyncPolicy).
///
/// A producer remembers the first topic it sends to, so that sends to it
/// skip the log's topic table. It always sends to the topic as it is now
/// (deleted, recreated or grown, the topic is looked up again), but it
/// keeps a deleted topic's files open until the producer is dropped.
///
/// # Example
/// ```
/// use streamlog::{Log, Record, TopicConfig};
/// let log = Log::temporary()?;
/// log.create_topic("orders", TopicConfig::new().partitions(4))?;
/// let producer = log.producer();
/// let a = producer.send("orders", Record::new(b"v1").key(b"k1"))?;
/// let b = producer.send("orders", Record::new(b"v2").key(b"k1"))?;
/// assert_eq!(a.partition(), b.partition());
/// assert_eq!(b.offset(), a.offset() + 1);
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Clone)]
pub struct Producer {
    inner: Arc<LogInner>,
    /// The first topic this producer sent to. Sends to it skip the log's
    /// topic map (a reader lock and a reference count: four locked
    /// instructions, ~10 % of a small send) for as long as the map still
    /// holds that very object; after the topic is deleted or grown, every
    /// send looks it up again. A producer keeps the object, and so a
    /// deleted topic's open files, until it is dropped.
    first: OnceLock<Arc<Topic>>,
    /// The producer id, allocated at the first send; clones share it.
    id: Arc<OnceLock<i64>>,
    /// Appends whose outcome an error left unknown (see
    /// [`take_pending`](Producer::take_pending)).
    pending: Arc<Mutex<Vec<PendingAppend>>>,
}

/// An append whose outcome is unknown: the batch was written into the log,
/// but making it durable (or what followed) failed, so the log is poisoned
/// and may or may not hold it after a reopen. Re-send it with
/// [`Log::resend`](crate::Log::resend) on the reopened log: the batch
/// carries the producer's id and sequence numbers, so a log that kept it
/// answers with the original offsets, and one that lost it appends it.
/// Either way it is stored exactly once.
///
/// # Example
/// ```
/// use streamlog::{Log, Record};
/// let log = Log::temporary()?;
/// log.create_topic("t", Default::default())?;
/// let p = log.producer();
/// p.send("t", Record::new(b"x"))?;
/// // Nothing failed, so nothing is pending.
/// assert!(p.take_pending().is_empty());
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PendingAppend {
    pub(crate) topic: String,
    pub(crate) partition: u32,
    /// The batch as written: Kafka's bytes, producer fields included.
    pub(crate) bytes: Vec<u8>,
    pub(crate) timestamps: Vec<i64>,
}

impl PendingAppend {
    /// The topic the batch was sent to.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The partition the batch was sent to.
    pub fn partition(&self) -> u32 {
        self.partition
    }
    /// How many records the batch holds.
    pub fn record_count(&self) -> usize {
        self.timestamps.len()
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    pub(crate) fn new(inner: Arc<LogInner>) -> Self {
        Producer {
            inner,
            first: OnceLock::new(),
            id: Arc::new(OnceLock::new()),
            pending: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// This producer's identity in batch headers: its id (allocated at the
    /// first send), epoch 0, not transactional.
    fn fields(&self) -> Result<ProducerFields> {
        let id = match self.id.get() {
            Some(&id) => id,
            None => {
                let id = self.inner.allocate_producer_id()?;
                *self.id.get_or_init(|| id)
            }
        };
        Ok(ProducerFields {
            id,
            epoch: 0,
            transactional: false,
        })
    }

    /// The producer id its batches carry (allocated now if it has not
    /// sent yet).
    ///
    /// # Errors
    /// [`Error::Io`] if a new block of ids cannot be recorded.
    pub fn producer_id(&self) -> Result<i64> {
        Ok(self.fields()?.id)
    }

    /// Takes the appends whose outcome an error left unknown (the error
    /// was returned by the send; see [`PendingAppend`]). Shared by clones.
    pub fn take_pending(&self) -> Vec<PendingAppend> {
        std::mem::take(&mut *self.pending.lock())
    }

    /// Appends `batch` to partition `p` of `t` and applies the sync
    /// policy; a failure after the batch was written leaves it pending.
    fn append(&self, t: &Topic, p: u32, batch: &mut EncodedBatch) -> Result<u64> {
        let part: &Arc<Partition> = t.partition(p)?;
        let appended = part.append(batch)?;
        let after = (|| {
            if appended.rolled {
                self.inner.on_roll(part)?;
            }
            part.sync_after_append(appended.base_offset + u64::from(batch.header.record_count))
        })();
        if let Err(e) = after {
            if !appended.duplicate {
                self.pending.lock().push(pending_of(&t.name, p, batch));
            }
            return Err(e);
        }
        Ok(appended.base_offset)
    }

    /// The topic named `name`: the remembered first one while it is still
    /// the log's current object for that name, otherwise from the log.
    #[inline]
    fn topic(&self, name: &str) -> Result<Cow<'_, Arc<Topic>>> {
        match self.first.get() {
            Some(t) if *t.name == *name && t.is_current() => Ok(Cow::Borrowed(t)),
            Some(_) => self.inner.topic(name).map(Cow::Owned),
            None => {
                let t = self.inner.topic(name)?;
                let _ = self.first.set(t.clone());
                Ok(Cow::Owned(t))
            }
        }
    }

    /// Appends one record. A keyed record goes to the partition Kafka's
    /// default partitioner picks (murmur2); a keyless one round-robins.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::RecordTooLarge`] (nothing is
    /// written), [`Error::Io`] (the log is then poisoned),
    /// [`Error::Poisoned`], [`Error::Closed`].
    pub fn send(&self, topic: &str, record: Record<'_>) -> Result<RecordMetadata> {
        let t = self.topic(topic)?;
        let p = t.choose(record.key.as_deref());
        self.send_one(&t, p, &record)
    }

    /// Appends one record to an explicit partition.
    ///
    /// # Errors
    /// As [`send`](Self::send), plus [`Error::UnknownPartition`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicConfig};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", TopicConfig::new().partitions(3))?;
    /// assert_eq!(log.producer().send_to("t", 2, Record::new(b"x"))?.partition(), 2);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn send_to(
        &self,
        topic: &str,
        partition: u32,
        record: Record<'_>,
    ) -> Result<RecordMetadata> {
        let t = self.topic(topic)?;
        t.partition(partition)?;
        self.send_one(&t, partition, &record)
    }

    /// Appends Kafka record batches exactly as a Kafka client sends them
    /// in a produce request: one or more whole batches of Kafka's format
    /// (magic 2), back to back. Each is validated completely first (CRC,
    /// lengths, attributes, record count and offset deltas, timestamps,
    /// every record, the topic's record size limit, a zstd section's
    /// decompressed size) and then appended with the partition's next
    /// offsets, its records unchanged: only the base offset and the leader
    /// epoch, which Kafka's CRC leaves out, are set. Returns each batch's
    /// base offset. Accepted are the batches a Kafka producer writes:
    /// uncompressed or zstd, create time, idempotent fields or none, not
    /// transactional (for now), not control batches.
    ///
    /// The batches are checked before any is appended, against the
    /// producers' state too: a batch the partition already holds (the same
    /// producer id, epoch and sequences, an idempotent producer's retry) is
    /// answered with its original base offset and not appended again; a
    /// sequence gap or a stale epoch refuses the input. Each is appended
    /// atomically, like a [`send_batch`](Self::send_batch) batch, and the
    /// sync policy applies as to any append.
    ///
    /// # Errors
    /// [`Error::InvalidKafkaBatch`] (nothing appended),
    /// [`Error::RecordTooLarge`] (nothing appended),
    /// [`Error::OutOfOrderSequence`], [`Error::ProducerFenced`],
    /// [`Error::InvalidTxnState`] (nothing appended),
    /// [`Error::InvalidTopicName`] for an internal topic, as
    /// [`send_to`](Self::send_to) otherwise.
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicConfig, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("a", TopicConfig::new())?;
    /// log.create_topic("b", TopicConfig::new())?;
    /// let p = log.producer();
    /// p.send("a", Record::new(b"hello").key(b"k"))?;
    /// // A Kafka batch as stored is a Kafka batch as sent: copy one over.
    /// let dir = log.dir().join("a-0");
    /// let seg = std::fs::read(dir.join("00000000000000000000.log"))?;
    /// let len = u32::from_be_bytes(seg[8..12].try_into().unwrap()) as usize + 12;
    /// assert_eq!(p.append_kafka_batches("b", 0, &seg[..len])?, [0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append_kafka_batches(
        &self,
        topic: &str,
        partition: u32,
        batches: &[u8],
    ) -> Result<Vec<u64>> {
        let t = self.topic(topic)?;
        let checked = t.validate_foreign(partition, batches, false)?;
        let headers: Vec<_> = checked.iter().map(|c| c.header).collect();
        t.partition(partition)?
            .precheck_producer_batches(&headers)?;
        let mut offsets = Vec::with_capacity(checked.len());
        for c in checked {
            let mut batch = EncodedBatch::from_foreign(&batches[c.range], c.header);
            offsets.push(self.append(&t, partition, &mut batch)?);
        }
        Ok(offsets)
    }

    fn send_one(&self, t: &Topic, p: u32, record: &Record<'_>) -> Result<RecordMetadata> {
        let now = self.inner.shared.clock.now_ms();
        let mut batch = encode(
            t,
            std::slice::from_ref(record).iter(),
            now,
            Some(self.fields()?),
        )?;
        let offset = self.append(t, p, &mut batch)?;
        Ok(RecordMetadata {
            topic: TopicName::new(&t.name),
            partition: p,
            offset,
            timestamp: record.timestamp.unwrap_or(now),
        })
    }

    /// Appends many records. The records bound for one partition are
    /// written as one batch: atomically, with one CRC, compressed together.
    /// Keyless records of one call all go to one partition. Returns one
    /// metadata per record, in the order given.
    ///
    /// If a later partition's append fails, earlier partitions' batches
    /// stay written; the error says which failed.
    ///
    /// # Errors
    /// As [`send`](Self::send). A too-large record fails the whole call
    /// before anything is written.
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// let mds = log.producer().send_batch("t", vec![Record::new(b"a"), Record::new(b"b")])?;
    /// assert_eq!((mds[0].offset(), mds[1].offset()), (0, 1));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn send_batch(&self, topic: &str, records: Vec<Record<'_>>) -> Result<Vec<RecordMetadata>> {
        let t = self.topic(topic)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let keyless = t.choose(None);
        // The usual batch has no keys: one partition, no per-record choice.
        let parts: Vec<u32> = if records.iter().all(|r| r.key.is_none()) {
            Vec::new()
        } else {
            records
                .iter()
                .map(|r| match r.key.as_deref() {
                    Some(k) => t.choose(Some(k)),
                    None => keyless,
                })
                .collect()
        };
        let now = self.inner.shared.clock.now_ms();
        let mut out = Vec::with_capacity(records.len());
        let name = TopicName::new(&t.name);
        let push = |out: &mut Vec<RecordMetadata>, p: u32, offset: u64, r: &Record<'_>| {
            out.push(RecordMetadata {
                topic: name.clone(),
                partition: p,
                offset,
                timestamp: r.timestamp.unwrap_or(now),
            });
        };
        let single = match parts.first() {
            None => Some(keyless),
            Some(&p) => parts.iter().all(|&q| q == p).then_some(p),
        };
        if let Some(p) = single {
            // One partition (always so for keyless records): one batch
            // straight from the caller's records.
            let mut batch = encode(&t, records.iter(), now, Some(self.fields()?))?;
            let base = self.append(&t, p, &mut batch)?;
            // Copies of one finished entry, then the two fields that differ
            // set in place: building each entry whole went through a stack
            // temporary that the copy into the vector read back before its
            // stores had landed (a store-forwarding stall per record, a
            // fifth of a batched append's user time at 100 B).
            let first = RecordMetadata {
                topic: name,
                partition: p,
                offset: base,
                timestamp: now,
            };
            out.resize(records.len(), first);
            for ((m, r), offset) in out.iter_mut().zip(&records).zip(base..) {
                m.offset = offset;
                m.timestamp = r.timestamp.unwrap_or(now);
            }
            return Ok(out);
        }
        // Several partitions: encode every batch first, so that a record
        // that is too large fails the call before anything is written.
        // Record indices grouped by partition, in partition order and, within
        // one, in the caller's order (a stable sort).
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_by_key(|&i| parts[i]);
        let mut batches = Vec::new();
        let fields = self.fields()?;
        for run in order.chunk_by(|&a, &b| parts[a] == parts[b]) {
            let batch = encode(&t, run.iter().map(|&i| &records[i]), now, Some(fields))?;
            batches.push((run, batch));
        }
        let mut offsets = vec![0u64; records.len()];
        for (run, batch) in &mut batches {
            let base = self.append(&t, parts[run[0]], batch)?;
            for (next, &i) in (base..).zip(run.iter()) {
                offsets[i] = next;
            }
        }
        for ((r, &p), &o) in records.iter().zip(&parts).zip(&offsets) {
            push(&mut out, p, o, r);
        }
        Ok(out)
    }

    /// Makes everything sent so far durable, whatever the sync policy.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Poisoned`].
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
}

/// Appends records to one partition as one batch, then applies the sync
/// policy. Used by the offsets store.
pub(crate) fn append_records(
    inner: &LogInner,
    t: &Topic,
    p: u32,
    records: &[&Record<'_>],
) -> Result<Vec<RecordMetadata>> {
    let now = inner.shared.clock.now_ms();
    let mut batch = encode(t, records.iter().copied(), now, None)?;
    let base = append_encoded(inner, t, p, &mut batch)?;
    let name = TopicName::new(&t.name);
    Ok(records
        .iter()
        .enumerate()
        .map(|(i, r)| RecordMetadata {
            topic: name.clone(),
            partition: p,
            offset: base + i as u64,
            timestamp: r.timestamp.unwrap_or(now),
        })
        .collect())
}

/// Appends an encoded batch to partition `p` of `t` and applies the sync
/// policy. Returns the batch's base offset.
fn append_encoded(inner: &LogInner, t: &Topic, p: u32, batch: &mut EncodedBatch) -> Result<u64> {
    let part: &Arc<Partition> = t.partition(p)?;
    let appended = part.append(batch)?;
    if appended.rolled {
        inner.on_roll(part)?;
    }
    part.sync_after_append(appended.base_offset + u64::from(batch.header.record_count))?;
    Ok(appended.base_offset)
}

fn view<'r>(r: &'r Record<'_>, offset_delta: u32, now: i64) -> EncodeRecord<'r> {
    EncodeRecord {
        offset_delta,
        timestamp: r.timestamp.unwrap_or(now),
        key: r.key.as_deref(),
        value: r.value.as_deref(),
        headers: &r.headers,
    }
}

/// A record's body length at offset delta `i`, and its timestamp delta.
#[inline(always)]
fn body_of(r: &Record<'_>, i: usize, now: i64, base_ts: i64) -> (usize, i64) {
    let timestamp = r.timestamp.unwrap_or(now);
    let ts_delta = timestamp.wrapping_sub(base_ts);
    let body = if r.headers.is_empty() {
        plain_body_len(ts_delta, i as u32, r.key.as_deref(), r.value.as_deref())
    } else {
        record_body_len(&view(r, i as u32, now), base_ts)
    };
    (body, ts_delta)
}

/// Encodes records as one batch for topic `t`, in two passes: the first
/// computes each record's size, checks it against the topic's limit and
/// adds up the section's; the second writes the records into room made
/// once. Fails with `RecordTooLarge` before anything is written.
pub(crate) fn encode<'a, 'r: 'a>(
    t: &Topic,
    records: impl Iterator<Item = &'a Record<'r>> + Clone,
    now: i64,
    producer: Option<ProducerFields>,
) -> Result<EncodedBatch> {
    let n = records.clone().count();
    // A match, not `ok_or`, which builds the error on every call and drops
    // it again (callgrind: a 100 B send 1,907 instructions with it, 1,895
    // without).
    let count = match u32::try_from(n) {
        Ok(count) if count > 0 => count,
        _ => return Err(Error::InvalidBatch { records: n as u64 }),
    };
    let base_ts = records
        .clone()
        .next()
        .and_then(|r| r.timestamp)
        .unwrap_or(now);
    let max = t.config.max_record_bytes;
    // First the section's exact size, checking each record against the
    // limit; then the records, written into room made once.
    let mut size = 0usize;
    for (i, r) in records.clone().enumerate() {
        let (body, ts_delta) = body_of(r, i, now, base_ts);
        let total = varint_len(body as i64) + body;
        // The limit applies to the record on its own (timestamp delta 0,
        // offset delta 0), whatever batch it travels in: never larger than
        // here, so only a record over the limit here needs its size alone.
        if total as u64 > max {
            let alone = body - varint_len(ts_delta) + 1 - varint_len(i as i64) + 1;
            let alone = (varint_len(alone as i64) + alone) as u64;
            if alone > max {
                return Err(Error::RecordTooLarge { size: alone, max });
            }
        }
        size += total;
    }
    // Nor is room made for a batch the format cannot hold (compressed or
    // not: a reader decompresses no section larger than that either).
    if size > crate::format::batch::MAX_BATCH_BYTES {
        return Err(Error::RecordTooLarge {
            size: size as u64,
            max: crate::format::batch::MAX_BATCH_BYTES as u64,
        });
    }
    let mut section = EncodedBatch::section_buffer(size);
    let mut max_ts = i64::MIN;
    append_exact(&mut section, size, |mut w| {
        for (i, r) in records.enumerate() {
            let (body, ts_delta) = body_of(r, i, now, base_ts);
            if r.headers.is_empty() {
                let (key, value) = (r.key.as_deref(), r.value.as_deref());
                write_plain_record(&mut w, ts_delta, i as u32, key, value, body);
            } else {
                write_record(&mut w, &view(r, i as u32, now), base_ts, body);
            }
            max_ts = max_ts.max(base_ts.wrapping_add(ts_delta));
        }
        w
    });
    let level = match t.config.compression {
        Compression::Zstd(l) => Some(l),
        Compression::None => None,
    };
    let size = section.len() as u64;
    let built = match producer {
        Some(p) => EncodedBatch::for_producer(section, count, base_ts, max_ts, level, p),
        None => EncodedBatch::new(section, count, count - 1, base_ts, max_ts, level),
    };
    built
        .map(|mut b| {
            b.now_ms = now;
            b
        })
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidInput {
                Error::RecordTooLarge {
                    size,
                    max: crate::format::batch::MAX_BATCH_BYTES as u64,
                }
            } else {
                Error::io("compress a batch for", format!("topic {}", t.name), e)
            }
        })
}

/// A pending append of the batch just written to partition `p` of `topic`.
fn pending_of(topic: &str, p: u32, batch: &EncodedBatch) -> PendingAppend {
    let bytes = batch.bytes().to_vec();
    let h = &batch.header;
    let timestamps = crate::format::batch::records_section(h, &bytes)
        .ok()
        .map(|section| {
            crate::format::batch::RecordIter::new(h, &section)
                .filter_map(|r| r.ok())
                .map(|r| h.base_timestamp.wrapping_add(r.timestamp_delta))
                .collect()
        })
        .unwrap_or_default();
    PendingAppend {
        topic: topic.to_owned(),
        partition: p,
        bytes,
        timestamps,
    }
}

/// Appends a pending batch again (see [`PendingAppend`]): the partition
/// answers a batch it already holds with its original offsets.
pub(crate) fn resend(inner: &LogInner, pending: &PendingAppend) -> Result<Vec<RecordMetadata>> {
    let t = inner.topic(&pending.topic)?;
    let part = t.partition(pending.partition)?;
    let header = decode_batch(&pending.bytes).map_err(|_| Error::IllegalState {
        what: "a pending append no longer decodes",
    })?;
    let mut batch = EncodedBatch::from_foreign(&pending.bytes, header);
    let appended = part.append(&mut batch)?;
    if appended.rolled {
        inner.on_roll(part)?;
    }
    part.sync_after_append(part.end_offset())?;
    let name = TopicName::new(&t.name);
    Ok(pending
        .timestamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| RecordMetadata {
            topic: name.clone(),
            partition: pending.partition,
            offset: appended.base_offset + i as u64,
            timestamp: ts,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_no_records_is_an_invalid_batch() {
        let log = crate::Log::temporary().unwrap();
        log.create_topic("t", Default::default()).unwrap();
        let t = log.inner.topic("t").unwrap();
        let none: [Record<'_>; 0] = [];
        let err = encode(&t, none.iter(), 0, None).err().unwrap();
        assert!(matches!(err, Error::InvalidBatch { records: 0 }), "{err:?}");
        let one = [Record::new(b"v")];
        let batch = encode(&t, one.iter(), 0, None).unwrap();
        assert_eq!(batch.header.record_count, 1);
    }
}
