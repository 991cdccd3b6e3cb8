//! [`Producer`]: partitioning, batch encoding and the sync policy.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::batch::{encode_record, record_encoded_len, EncodeRecord, EncodedBatch};
use crate::log::LogInner;
use crate::record::{Record, RecordMetadata};
use crate::storage::partition::Partition;
use crate::topic::Topic;
use crate::Compression;

/// Appends records to topics. `Clone + Send + Sync`; clones share the log.
///
/// Every `send` writes straight into the partition's mapped active segment:
/// when it returns, the record is in the log and readable, and it survives a
/// crash of the process. Whether it also survives a power cut is the log's
/// [`SyncPolicy`](crate::SyncPolicy).
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
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    pub(crate) fn new(inner: Arc<LogInner>) -> Self {
        Producer { inner }
    }

    /// Appends one record. A keyed record goes to the partition Kafka's
    /// default partitioner picks (murmur2); a keyless one round-robins.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::RecordTooLarge`] (nothing is
    /// written), [`Error::Io`] (the log is then poisoned),
    /// [`Error::Poisoned`], [`Error::Closed`].
    pub fn send(&self, topic: &str, record: Record<'_>) -> Result<RecordMetadata> {
        let t = self.inner.topic(topic)?;
        let p = t.choose(record.key.as_deref());
        let mut mds = self.append(&t, p, &[&record])?;
        Ok(mds.swap_remove(0))
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
        let t = self.inner.topic(topic)?;
        t.partition(partition)?;
        let mut mds = self.append(&t, partition, &[&record])?;
        Ok(mds.swap_remove(0))
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
        let t = self.inner.topic(topic)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let keyless = t.choose(None);
        let n = t.partitions.len();
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, r) in records.iter().enumerate() {
            let p = match r.key.as_deref() {
                Some(k) => t.choose(Some(k)),
                None => keyless,
            };
            groups[p as usize].push(i);
        }
        // Validate sizes for every record before writing any batch.
        for r in &records {
            check_size(&t, r)?;
        }
        let mut out: Vec<Option<RecordMetadata>> = vec![None; records.len()];
        for (p, idx) in groups.iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let batch: Vec<&Record<'_>> = idx.iter().map(|&i| &records[i]).collect();
            let mds = self.append(&t, p as u32, &batch)?;
            for (&i, md) in idx.iter().zip(mds) {
                out[i] = Some(md);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Makes everything sent so far durable, whatever the sync policy.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Poisoned`].
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    fn append(&self, t: &Topic, p: u32, records: &[&Record<'_>]) -> Result<Vec<RecordMetadata>> {
        append_records(&self.inner, t, p, records)
    }
}

/// Appends records to one partition as one batch, then applies the sync
/// policy. Shared by the producer and the offsets store.
pub(crate) fn append_records(
    inner: &LogInner,
    t: &Topic,
    p: u32,
    records: &[&Record<'_>],
) -> Result<Vec<RecordMetadata>> {
    let part: &Arc<Partition> = t.partition(p)?;
    let now = inner.shared.clock.now_ms();
    let mut batch = encode(t, records, now)?;
    let appended = part.append(&mut batch)?;
    let next = appended.base_offset + records.len() as u64;
    if appended.rolled {
        inner.on_roll(part)?;
    }
    part.sync_after_append(next)?;
    Ok(records
        .iter()
        .enumerate()
        .map(|(i, r)| RecordMetadata {
            topic: t.name.clone(),
            partition: p,
            offset: appended.base_offset + i as u64,
            timestamp: r.timestamp.unwrap_or(now),
        })
        .collect())
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

fn check_size(t: &Topic, r: &Record<'_>) -> Result<()> {
    let v = view(r, 0, 0);
    let size = record_encoded_len(&v, v.timestamp) as u64;
    if size > t.config.max_record_bytes {
        return Err(Error::RecordTooLarge {
            size,
            max: t.config.max_record_bytes,
        });
    }
    Ok(())
}

/// Encodes records as one batch for topic `t`.
fn encode(t: &Topic, records: &[&Record<'_>], now: i64) -> Result<EncodedBatch> {
    let count = u32::try_from(records.len()).map_err(|_| Error::InvalidConfig {
        what: "a batch holds at most 4 billion records".into(),
    })?;
    let base_ts = records.first().and_then(|r| r.timestamp).unwrap_or(now);
    let mut max_ts = i64::MIN;
    let mut size = 0usize;
    for r in records {
        check_size(t, r)?;
        let v = view(r, 0, now);
        size += record_encoded_len(&v, base_ts) + 5;
        max_ts = max_ts.max(v.timestamp);
    }
    let mut section = Vec::with_capacity(size);
    for (i, r) in records.iter().enumerate() {
        encode_record(&mut section, &view(r, i as u32, now), base_ts);
    }
    let level = match t.config.compression {
        Compression::Zstd(l) => Some(l),
        Compression::None => None,
    };
    EncodedBatch::new(section, count, count - 1, base_ts, max_ts, level).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            Error::RecordTooLarge {
                size: size as u64,
                max: crate::format::batch::MAX_BATCH_BYTES as u64,
            }
        } else {
            Error::io("compress a batch for", format!("topic {}", t.name), e)
        }
    })
}
