//! Records on the way out: [`Records`], what one `poll` returned, and
//! [`ConsumerRecord`], one record of it, borrowed from the mapped segment
//! (or from a decompressed copy). They sit above storage: a `Records`
//! holds the storage `View`s that keep its mappings alive.

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::{CorruptionKind, Error, Result};
use crate::format::batch::{records_section, verify_crc, HeaderIter, IterState, RecordIter};
use crate::storage::mapped::{prefetch, View};
use crate::storage::partition::read::FetchedBatch;

const NULL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn of(base: &[u8], part: Option<&[u8]>) -> Span {
        match part {
            None => Span {
                start: NULL,
                len: 0,
            },
            Some(p) => Span {
                start: (p.as_ptr() as usize - base.as_ptr() as usize) as u32,
                len: p.len() as u32,
            },
        }
    }

    #[inline]
    fn get(self, base: &[u8]) -> Option<&[u8]> {
        if self.start == NULL {
            return None;
        }
        base.get(self.start as usize..self.start as usize + self.len as usize)
    }
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    tp: u32,
    backing: u32,
    offset: u64,
    timestamp: i64,
    key: Span,
    value: Span,
    headers: Span,
    header_count: u32,
}

#[derive(Debug)]
enum Backing {
    /// Uncompressed batches are read in place from the mapped segment.
    Segment(View),
    /// Decompressed records sections, shared with the [`Carry`] that goes
    /// on reading one.
    Owned(Arc<Vec<u8>>),
}

impl Backing {
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Segment(v) => v,
            Backing::Owned(v) => v,
        }
    }
}

/// A batch a poll stopped inside: the rest of it, kept for the next poll
/// of the partition, with the decompressed records section (if the batch
/// was compressed) and the decoder's place in it.
#[derive(Debug, Clone)]
pub(crate) struct Carry {
    batch: FetchedBatch,
    owned: Option<Arc<Vec<u8>>>,
    state: IterState,
    /// The offset of the next record to return from it.
    next: u64,
}

impl Carry {
    /// The offset the carried records go on from.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next
    }
}

/// Checks the CRC of a batch the fetch handed over unchecked
/// ([`FetchedBatch::unverified`]), as the fetch would have: the error names
/// the batch's place and the offset read from (`from`).
pub(crate) fn check_deferred_crc(batch: &FetchedBatch, from: u64) -> Result<()> {
    if !batch.unverified {
        return Ok(());
    }
    #[cfg(test)]
    crate::storage::partition::read::VERIFIED
        .with(|v| v.set(v.get() + batch.header.total_len() as u64));
    verify_crc(&batch.header, batch.bytes())
        .map_err(|k| Error::corrupted(batch.segment.log.path(), batch.pos as u64, Some(from), k))
}

/// An unverified batch whose records average at most this many bytes is
/// decoded before its CRC is checked: decoding then touches every line of
/// it, and the check runs on bytes in cache. Of larger records decoding
/// touches one line in several, and checking first reads faster (1 KiB
/// records read 25 % slower decoded first).
const DECODE_FIRST_MAX_RECORD: usize = 256;

/// How far ahead of the record being decoded [`prefetch`] reaches: about
/// 20 records of 100 B, which take longer to decode than a line takes to
/// arrive from memory.
const PREFETCH_AHEAD: usize = 2048;

fn carry_error(batch: &FetchedBatch, k: CorruptionKind) -> Error {
    Error::corrupted(
        batch.segment.log.path(),
        batch.pos as u64,
        Some(batch.header.base_offset),
        k,
    )
}

/// The records one `poll` returned, in partition order. Uncompressed
/// records are borrowed from the mapped segments, not copied.
///
/// # Example
/// ```
/// use streamlog::{Log, ConsumerConfig, OffsetReset, Record, TopicPartition};
/// use std::time::Duration;
/// let log = Log::temporary()?;
/// log.create_topic("t", Default::default())?;
/// log.producer().send("t", Record::new(b"hello"))?;
/// let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
/// c.assign(&[TopicPartition::new("t", 0)])?;
/// let records = c.poll(Duration::from_secs(1))?;
/// for r in &records {
///     assert_eq!(r.value(), Some(&b"hello"[..]));
/// }
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Records {
    tps: Vec<(Arc<str>, u32)>,
    backings: Vec<Backing>,
    metas: Vec<Meta>,
    bytes: usize,
}

impl Records {
    /// How many records.
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// The `i`th record.
    pub fn get(&self, i: usize) -> Option<ConsumerRecord<'_>> {
        self.metas.get(i).map(|m| ConsumerRecord {
            records: self,
            meta: m,
        })
    }

    /// Iterates the records in order.
    #[inline]
    pub fn iter(&self) -> RecordsIter<'_> {
        RecordsIter {
            records: self,
            inner: self.metas.iter(),
        }
    }

    /// The size of the batches the records came from.
    pub(crate) fn batch_bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn clear(&mut self) {
        self.tps.clear();
        self.backings.clear();
        self.metas.clear();
        self.bytes = 0;
    }

    /// Appends the records of `batch` with offsets `>= from`, at most
    /// `limit` of them. Returns how many were added, the position after
    /// the last one taken (the batch's end when all were taken), and, when
    /// the limit stopped it inside the batch, the [`Carry`] that goes on
    /// from there.
    pub(crate) fn push_batch(
        &mut self,
        topic: &Arc<str>,
        partition: u32,
        batch: &FetchedBatch,
        from: u64,
        limit: usize,
    ) -> Result<(usize, u64, Option<Carry>)> {
        let h = &batch.header;
        // Control batches (transaction markers) are never handed out; their
        // offsets are stepped over like a compaction gap.
        if h.is_control() {
            self.bytes += h.total_len();
            return Ok((0, h.next_offset(), None));
        }
        let section = records_section(h, batch.bytes()).map_err(|k| carry_error(batch, k))?;
        let carry = Carry {
            batch: batch.clone(),
            owned: match section {
                Cow::Borrowed(_) => None,
                Cow::Owned(v) => Some(Arc::new(v)),
            },
            state: RecordIter::new(h, &[]).state(),
            next: h.base_offset,
        };
        self.bytes += h.header_len();
        self.push_carried(topic, partition, carry, from, limit)
    }

    /// [`push_batch`](Self::push_batch) going on where an earlier call
    /// stopped inside a batch: no CRC check, decompression or decoding of
    /// the records before, so a poll loop reads a batch of any size in
    /// time linear in it (Kafka's consumer likewise keeps the rest of a
    /// fetched batch for the next poll).
    ///
    /// A batch whose CRC the fetch left unchecked
    /// ([`FetchedBatch::unverified`]) is checked here, before anything of it
    /// is handed out, with the fetch's error if it fails. A batch of small
    /// records ([`DECODE_FIRST_MAX_RECORD`]) is decoded first, with the
    /// bytes a few records ahead prefetched, and checked after, over bytes
    /// now in cache (on failure its records are taken back); one of larger
    /// records is checked just before it is decoded. The CRC pass had been
    /// the bytes' first touch, bound by the memory's bandwidth. For 100 B
    /// records on the 2-vCPU VM: 22.6 → 20.4 ns a record with default
    /// settings (a poll ends mid-batch, so the rest of the batch is still
    /// checked cold), 34.4 → 19.4 ns with 100,000 a poll.
    pub(crate) fn push_carried(
        &mut self,
        topic: &Arc<str>,
        partition: u32,
        mut carry: Carry,
        from: u64,
        limit: usize,
    ) -> Result<(usize, u64, Option<Carry>)> {
        if !carry.batch.unverified {
            return self.push_records(topic, partition, carry, from, limit, false);
        }
        let h = &carry.batch.header;
        if h.total_len() > DECODE_FIRST_MAX_RECORD * (h.record_count as usize).max(1) {
            // Large records: decoding touches one line of each, so the
            // check's own pass is the cheaper first touch. Still just
            // before the decoding, not for a whole fetch at once.
            check_deferred_crc(&carry.batch, from)?;
            carry.batch.unverified = false;
            return self.push_records(topic, partition, carry, from, limit, false);
        }
        let (metas, bytes) = (self.metas.len(), self.bytes);
        let batch = carry.batch.clone();
        carry.batch.unverified = false;
        let pushed = self.push_records(topic, partition, carry, from, limit, true);
        if let Err(e) = check_deferred_crc(&batch, from) {
            self.metas.truncate(metas);
            self.bytes = bytes;
            return Err(e);
        }
        pushed
    }

    /// [`push_carried`](Self::push_carried) without the CRC; `cold`: the
    /// batch's bytes have not been touched yet, so the lines ahead are
    /// prefetched.
    fn push_records(
        &mut self,
        topic: &Arc<str>,
        partition: u32,
        mut carry: Carry,
        from: u64,
        limit: usize,
        cold: bool,
    ) -> Result<(usize, u64, Option<Carry>)> {
        let batch = &carry.batch;
        let h = &batch.header;
        let bad = |k: CorruptionKind| carry_error(batch, k);
        let tp = match self.tps.last() {
            Some((t, p)) if Arc::ptr_eq(t, topic) && *p == partition => self.tps.len() - 1,
            _ => {
                self.tps.push((topic.clone(), partition));
                self.tps.len() - 1
            }
        } as u32;
        let backing = match &carry.owned {
            None => Backing::Segment(batch.log.clone()),
            Some(v) => Backing::Owned(v.clone()),
        };
        let idx = match (backing, self.backings.last_mut()) {
            // Views of one mapping differ only in how much of it was
            // published: keep the longest, of which the others are prefixes.
            (Backing::Segment(s), Some(Backing::Segment(l))) if s.same_mapping(l) => {
                if s.len() > l.len() {
                    *l = s;
                }
                self.backings.len() - 1
            }
            (Backing::Owned(v), Some(Backing::Owned(l))) if Arc::ptr_eq(&v, l) => {
                self.backings.len() - 1
            }
            (backing, _) => {
                self.backings.push(backing);
                self.backings.len() - 1
            }
        };
        let base = self.backings[idx].bytes();
        let section: &[u8] = match &self.backings[idx] {
            Backing::Segment(_) => &base[batch.pos + h.header_len()..batch.pos + h.total_len()],
            Backing::Owned(v) => v,
        };
        let start_len = self.metas.len();
        let mut it = RecordIter::resume(h, section, carry.state);
        let started = carry.state.consumed();
        let mut last = None;
        loop {
            let before = it.state();
            if cold {
                prefetch(section, before.consumed() + PREFETCH_AHEAD);
            }
            let r = if let Some(r) = it.next_common() {
                r
            } else {
                let Some(r) = it.next() else { break };
                match (r, last) {
                    (Ok(r), _) => r,
                    // Damage after records were taken: hand them out, and keep
                    // the place before the damage, where the next poll fails.
                    (Err(_), Some(last)) => {
                        self.bytes += before.consumed() - started;
                        carry.state = before;
                        carry.next = last + 1;
                        return Ok((self.metas.len() - start_len, last + 1, Some(carry)));
                    }
                    (Err(k), None) => {
                        self.metas.truncate(start_len);
                        return Err(bad(k));
                    }
                }
            };
            let offset = h.base_offset + u64::from(r.offset_delta);
            if offset < from {
                continue;
            }
            if self.metas.len() - start_len == limit {
                self.bytes += before.consumed() - started;
                carry.state = before;
                carry.next = offset;
                return Ok((limit, offset, Some(carry)));
            }
            self.metas.push(Meta {
                tp,
                backing: idx as u32,
                offset,
                timestamp: h.base_timestamp.wrapping_add(r.timestamp_delta),
                key: Span::of(base, r.key),
                value: Span::of(base, r.value),
                headers: Span::of(base, Some(r.headers)),
                header_count: r.header_count,
            });
            last = Some(offset);
        }
        self.bytes += section.len() - started;
        Ok((self.metas.len() - start_len, h.next_offset(), None))
    }
}

impl<'a> IntoIterator for &'a Records {
    type Item = ConsumerRecord<'a>;
    type IntoIter = RecordsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`Records`].
#[derive(Debug)]
pub struct RecordsIter<'a> {
    records: &'a Records,
    inner: std::slice::Iter<'a, Meta>,
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = ConsumerRecord<'a>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|m| ConsumerRecord {
            records: self.records,
            meta: m,
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for RecordsIter<'_> {}

/// One record read by a consumer, borrowed from its [`Records`].
#[derive(Clone, Copy)]
pub struct ConsumerRecord<'a> {
    records: &'a Records,
    meta: &'a Meta,
}

impl std::fmt::Debug for ConsumerRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerRecord")
            .field("topic", &self.topic())
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .field("timestamp", &self.timestamp())
            .field("key", &self.key())
            .field("value", &self.value())
            .finish()
    }
}

impl<'a> ConsumerRecord<'a> {
    #[inline]
    fn base(&self) -> &'a [u8] {
        self.records
            .backings
            .get(self.meta.backing as usize)
            .map_or(&[], |b| b.bytes())
    }
    /// The topic.
    #[inline]
    pub fn topic(&self) -> &'a str {
        self.records
            .tps
            .get(self.meta.tp as usize)
            .map_or("", |t| &t.0)
    }
    /// The partition.
    #[inline]
    pub fn partition(&self) -> u32 {
        self.records
            .tps
            .get(self.meta.tp as usize)
            .map_or(0, |t| t.1)
    }
    /// The offset.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.meta.offset
    }
    /// The timestamp in ms since the epoch.
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.meta.timestamp
    }
    /// The key, `None` when null.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.meta.key.get(self.base())
    }
    /// The value, `None` when null (a tombstone).
    #[inline]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.meta.value.get(self.base())
    }
    /// The headers, in the order they were added. A header whose value is
    /// null (Kafka's `null`, see [`Record::null_header`](crate::Record::null_header))
    /// shows an empty value here; [`nullable_headers`](Self::nullable_headers)
    /// tells the two apart.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            inner: self.nullable_headers(),
        }
    }
    /// The headers, in the order they were added, with `None` for a null
    /// value.
    ///
    /// # Example
    /// ```
    /// # fn main() -> streamlog::Result<()> {
    /// use streamlog::{ConsumerConfig, Log, OffsetReset, Record, TopicConfig, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", TopicConfig::default())?;
    /// log.producer().send("t", Record::new(b"v").header("a", b"").null_header("b"))?;
    /// let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
    /// c.assign(&[TopicPartition::new("t", 0)])?;
    /// let batch = c.poll(std::time::Duration::from_secs(1))?;
    /// let r = batch.iter().next().unwrap();
    /// let h: Vec<_> = r.nullable_headers().collect();
    /// assert_eq!(h, [("a", Some(&b""[..])), ("b", None)]);
    /// # Ok(()) }
    /// ```
    pub fn nullable_headers(&self) -> NullableHeaders<'a> {
        NullableHeaders {
            inner: HeaderIter::unpack(
                self.meta.headers.get(self.base()).unwrap_or_default(),
                self.meta.header_count,
            ),
        }
    }
    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// Iterator over a record's headers as `(name, value)`; a null value
/// reads as empty.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    inner: NullableHeaders<'a>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(k, v)| (k, v.unwrap_or_default()))
    }
}

/// Iterator over a record's headers as `(name, value)`, `None` for a null
/// value.
#[derive(Debug, Clone)]
pub struct NullableHeaders<'a> {
    inner: HeaderIter<'a>,
}

impl<'a> Iterator for NullableHeaders<'a> {
    type Item = (&'a str, Option<&'a [u8]>);
    fn next(&mut self) -> Option<Self::Item> {
        // Headers were validated when the batch was read.
        self.inner.next_checked()
    }
}
