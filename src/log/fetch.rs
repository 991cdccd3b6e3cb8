//! [`Log::fetch_batches`]: stored record batches handed out as they are,
//! for a caller that ships them on (the Kafka server sends them to its
//! clients unchanged).

use std::borrow::Cow;

use super::state::Log;
use crate::error::{Error, Result};
use crate::format::batch::{rebuild_v2, records_section, RecordIter, Version, CODEC_MASK};
use crate::record::TopicPartition;
use crate::storage::partition::read::FetchedBatch;

/// Record batches as a fetch found them in a partition's segments: Kafka's
/// record batches (magic 2) byte for byte, borrowed from the segments'
/// mappings (no copy), each CRC-checked once by the fetch. Holding it keeps
/// those mappings alive, even if retention deletes the files meanwhile.
///
/// Returned by [`Log::fetch_batches`].
#[derive(Debug, Clone, Default)]
pub struct StoredBatches {
    batches: Vec<FetchedBatch>,
}

/// One batch of [`StoredBatches`].
#[derive(Debug, Clone, Copy)]
pub struct StoredBatch<'a> {
    batch: &'a FetchedBatch,
}

impl StoredBatches {
    /// The batches, in offset order.
    pub fn iter(&self) -> impl Iterator<Item = StoredBatch<'_>> {
        self.batches.iter().map(|batch| StoredBatch { batch })
    }

    /// How many batches there are.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Whether the fetch found nothing (the offset was the end).
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Their size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.batches.iter().map(|b| b.header.total_len()).sum()
    }

    /// Drops the batches that start at or after `end` (a fetch bounded by
    /// the last stable offset).
    pub(crate) fn retain_below(&mut self, end: u64) {
        self.batches.retain(|b| b.header.base_offset < end);
    }

    /// Keeps the batches that fit in `max_bytes` together, and always the
    /// first (Kafka's fetch limit: never more than asked for, but at least
    /// one batch).
    pub(crate) fn limit_bytes(&mut self, max_bytes: usize) {
        let mut total = 0usize;
        let keep = self
            .batches
            .iter()
            .take_while(|b| {
                total += b.header.total_len();
                total <= max_bytes
            })
            .count()
            .max(1);
        self.batches.truncate(keep);
    }

    /// The offset after the last batch: where the next fetch continues.
    pub fn next_offset(&self) -> Option<u64> {
        self.batches.last().map(|b| b.header.next_offset())
    }
}

impl<'a> StoredBatch<'a> {
    /// The batch's bytes exactly as stored. For a batch of Kafka's layout
    /// ([`is_kafka_format`](Self::is_kafka_format)), these are a Kafka
    /// record batch a Kafka client reads as it is.
    pub fn bytes(&self) -> &'a [u8] {
        self.batch.bytes()
    }

    /// Whether the batch is Kafka's record batch (magic 2). Only a segment
    /// written by a streamlog older than format version 2 holds others.
    pub fn is_kafka_format(&self) -> bool {
        self.batch.header.version == Version::V2
    }

    /// The batch in Kafka's layout: its stored bytes, or for an older
    /// streamlog batch, the same records re-encoded (same offsets,
    /// timestamps, keys, values and headers).
    ///
    /// # Errors
    /// [`Error::Corrupted`] if an older batch's records do not decode;
    /// [`Error::Io`] if re-compressing it fails.
    pub fn to_kafka_format(&self) -> Result<Cow<'a, [u8]>> {
        let b = self.batch;
        if b.header.version == Version::V2 {
            return Ok(Cow::Borrowed(b.bytes()));
        }
        let bad = |k| {
            Error::corrupted(
                b.segment.log.path(),
                b.pos as u64,
                Some(b.header.base_offset),
                k,
            )
        };
        let section = records_section(&b.header, b.bytes()).map_err(bad)?;
        let views = RecordIter::new(&b.header, &section)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(bad)?;
        let zstd = (b.header.attributes & CODEC_MASK != 0).then_some(3);
        let rebuilt = rebuild_v2(&b.header, &views, zstd)
            .map_err(|e| Error::io("re-encode a batch of", b.segment.log.path(), e))?;
        Ok(Cow::Owned(rebuilt.bytes().to_vec()))
    }

    /// The offset of the batch's first record.
    pub fn base_offset(&self) -> u64 {
        self.batch.header.base_offset
    }

    /// The offset of the batch's last record (kept even when compaction
    /// removed that record).
    pub fn last_offset(&self) -> u64 {
        self.batch.header.last_offset()
    }

    /// How many records the batch holds.
    pub fn record_count(&self) -> u32 {
        self.batch.header.record_count
    }

    /// Whether it is a control batch (a transaction marker).
    pub fn is_control(&self) -> bool {
        self.batch.header.is_control()
    }
}

impl Log {
    /// The stored batches of a partition holding offsets from `offset` on,
    /// up to about `max_bytes` (always at least one whole batch, as a Kafka
    /// fetch returns), without decoding or copying their records: what a
    /// Kafka server sends to a fetching client. The first batch may start
    /// before `offset` (a batch is never split); a consumer of the bytes
    /// skips the records below it, as Kafka clients do.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`],
    /// [`Error::OffsetOutOfRange`] outside the log start and end,
    /// [`Error::Corrupted`] if the first batch is damaged (later damage ends
    /// the fetch early and is reported by the next one).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicConfig, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", TopicConfig::new())?;
    /// log.producer().send("t", Record::new(b"hello"))?;
    /// let batches = log.fetch_batches(&TopicPartition::new("t", 0), 0, 1 << 20)?;
    /// let first = batches.iter().next().unwrap();
    /// assert!(first.is_kafka_format());
    /// assert_eq!(first.bytes()[16], 2); // Kafka's magic byte
    /// assert_eq!(batches.next_offset(), Some(1));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn fetch_batches(
        &self,
        tp: &TopicPartition,
        offset: u64,
        max_bytes: usize,
    ) -> Result<StoredBatches> {
        let p = self.inner.partition(&tp.topic, tp.partition)?;
        let mut batches = Vec::new();
        p.fetch(offset, max_bytes.max(1), usize::MAX, &mut batches)?;
        Ok(StoredBatches { batches })
    }
}
