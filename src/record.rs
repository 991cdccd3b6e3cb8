//! Records: what a producer sends ([`Record`]), what it gets back
//! ([`RecordMetadata`]), and what a consumer reads ([`Records`],
//! [`ConsumerRecord`]).

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::{CorruptionKind, Error, Result};
use crate::format::batch::{records_section, HeaderIter, RecordIter, HEADER_LEN};
use crate::storage::mapped::View;
use crate::storage::partition::FetchedBatch;

/// A record to send: an optional key, an optional value, headers and an
/// optional timestamp. Borrows its bytes when it can.
///
/// A null value is distinct from an empty one: on a compacted topic a
/// keyed record with a null value ([`Record::tombstone`]) deletes the key.
///
/// # Example
/// ```
/// use streamlog::Record;
/// let r = Record::new(b"v1").key(b"k1").header("h", b"x").timestamp(1_700_000_000_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub(crate) key: Option<Cow<'a, [u8]>>,
    pub(crate) value: Option<Cow<'a, [u8]>>,
    pub(crate) headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)>,
    pub(crate) timestamp: Option<i64>,
}

impl<'a> Record<'a> {
    /// A record with this value, no key and no headers.
    ///
    /// # Example
    /// ```
    /// let r = streamlog::Record::new(b"hello");
    /// let owned = streamlog::Record::new(String::from("hi").into_bytes());
    /// ```
    pub fn new(value: impl Into<Cow<'a, [u8]>>) -> Self {
        Record {
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// A record with a key and a null value: a delete on compacted topics.
    ///
    /// # Example
    /// ```
    /// let r = streamlog::Record::tombstone(b"user-7");
    /// ```
    pub fn tombstone(key: impl Into<Cow<'a, [u8]>>) -> Self {
        Record {
            key: Some(key.into()),
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key. Keyed records always go to the same partition.
    ///
    /// # Example
    /// ```
    /// let r = streamlog::Record::new(b"v").key(b"k");
    /// ```
    pub fn key(mut self, key: impl Into<Cow<'a, [u8]>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header. Names need not be unique.
    ///
    /// # Example
    /// ```
    /// let r = streamlog::Record::new(b"v").header("trace-id", b"abc");
    /// ```
    pub fn header(
        mut self,
        name: impl Into<Cow<'a, str>>,
        value: impl Into<Cow<'a, [u8]>>,
    ) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the timestamp in ms since the epoch. Default: the log's clock
    /// when the record is sent.
    ///
    /// # Example
    /// ```
    /// let r = streamlog::Record::new(b"v").timestamp(1_700_000_000_000);
    /// ```
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// A topic name inside each [`RecordMetadata`]. Short names (almost all)
/// are held by value, so that making and dropping one metadata per record
/// of a large batch touches no shared reference count; longer names share
/// the topic's `Arc`.
#[derive(Clone)]
pub(crate) enum TopicName {
    Inline(InlineName),
    Shared(Arc<str>),
}

/// Names up to this many bytes are held inline.
const INLINE_NAME: usize = 23;

/// A short name by value: 24 bytes, 8-aligned and `Copy`, so that a clone
/// is three word moves. (As a `u8` and a 30-byte array it was copied in odd
/// pieces, and a batch's metadata stalled on store forwarding per record.)
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct InlineName {
    len: u8,
    bytes: [u8; INLINE_NAME],
}

impl TopicName {
    pub fn new(name: &Arc<str>) -> Self {
        if name.len() <= INLINE_NAME {
            let mut bytes = [0u8; INLINE_NAME];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            TopicName::Inline(InlineName {
                len: name.len() as u8,
                bytes,
            })
        } else {
            TopicName::Shared(name.clone())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Copied from a `str` whole, so always valid UTF-8.
            TopicName::Inline(n) => {
                std::str::from_utf8(&n.bytes[..usize::from(n.len)]).unwrap_or_default()
            }
            TopicName::Shared(s) => s,
        }
    }
}

impl PartialEq for TopicName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TopicName {}

impl std::fmt::Debug for TopicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Where a sent record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub(crate) topic: TopicName,
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
}

impl RecordMetadata {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.topic.as_str()
    }
    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }
    /// The record's offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// The record's timestamp (ms since the epoch).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

/// A topic and partition.
///
/// # Example
/// ```
/// let tp = streamlog::TopicPartition::new("orders", 0);
/// assert_eq!(tp.to_string(), "orders-0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
}

impl TopicPartition {
    /// A topic-partition pair.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

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
    /// Decompressed records sections.
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Segment(v) => v,
            Backing::Owned(v) => v,
        }
    }
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
    /// `limit` of them. Returns how many were added and the position after
    /// the last one taken (the batch's end when all were taken).
    pub(crate) fn push_batch(
        &mut self,
        topic: &Arc<str>,
        partition: u32,
        batch: &FetchedBatch,
        from: u64,
        limit: usize,
    ) -> Result<(usize, u64)> {
        let h = &batch.header;
        let bad = |k: CorruptionKind| {
            Error::corrupted(
                batch.segment.log.path(),
                batch.pos as u64,
                Some(h.base_offset),
                k,
            )
        };
        let tp = match self.tps.last() {
            Some((t, p)) if Arc::ptr_eq(t, topic) && *p == partition => self.tps.len() - 1,
            _ => {
                self.tps.push((topic.clone(), partition));
                self.tps.len() - 1
            }
        } as u32;
        let section = records_section(h, batch.bytes()).map_err(bad)?;
        let backing = match section {
            Cow::Borrowed(_) => Backing::Segment(batch.log.clone()),
            Cow::Owned(v) => Backing::Owned(v),
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
            (backing, _) => {
                self.backings.push(backing);
                self.backings.len() - 1
            }
        };
        let base = self.backings[idx].bytes();
        let section: &[u8] = match &self.backings[idx] {
            Backing::Segment(_) => &base[batch.pos + HEADER_LEN..batch.pos + h.total_len()],
            Backing::Owned(v) => v,
        };
        let start_len = self.metas.len();
        let mut next = h.next_offset();
        for r in RecordIter::new(h, section) {
            let r = r.map_err(bad)?;
            let offset = h.base_offset + u64::from(r.offset_delta);
            if offset < from {
                continue;
            }
            if self.metas.len() - start_len == limit {
                next = offset;
                break;
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
        }
        let added = self.metas.len() - start_len;
        self.bytes += h.total_len();
        Ok((added, next))
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
    fn base(&self) -> &'a [u8] {
        self.records
            .backings
            .get(self.meta.backing as usize)
            .map_or(&[], |b| b.bytes())
    }
    /// The topic.
    pub fn topic(&self) -> &'a str {
        self.records
            .tps
            .get(self.meta.tp as usize)
            .map_or("", |t| &t.0)
    }
    /// The partition.
    pub fn partition(&self) -> u32 {
        self.records
            .tps
            .get(self.meta.tp as usize)
            .map_or(0, |t| t.1)
    }
    /// The offset.
    pub fn offset(&self) -> u64 {
        self.meta.offset
    }
    /// The timestamp in ms since the epoch.
    pub fn timestamp(&self) -> i64 {
        self.meta.timestamp
    }
    /// The key, `None` when null.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.meta.key.get(self.base())
    }
    /// The value, `None` when null (a tombstone).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.meta.value.get(self.base())
    }
    /// The headers, in the order they were added.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            inner: HeaderIter {
                buf: self.meta.headers.get(self.base()).unwrap_or_default(),
                remaining: self.meta.header_count,
            },
        }
    }
    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// Iterator over a record's headers as `(name, value)`.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    inner: HeaderIter<'a>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        // Headers were validated when the batch was read.
        self.inner.next_checked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_inline_and_shared_read_back_and_compare_by_text() {
        // Exactly INLINE_NAME bytes, mostly two-byte chars.
        let limit = format!(
            "{}{}",
            "é".repeat(INLINE_NAME / 2),
            "a".repeat(INLINE_NAME % 2)
        );
        assert_eq!(limit.len(), INLINE_NAME);
        let longer = format!("{limit}x");
        for name in ["", "orders", limit.as_str(), longer.as_str()] {
            let arc: Arc<str> = Arc::from(name);
            let t = TopicName::new(&arc);
            assert_eq!(t.as_str(), name);
            assert_eq!(t.clone(), TopicName::Shared(arc.clone()));
            assert_eq!(format!("{t:?}"), format!("{name:?}"));
        }
        assert!(matches!(
            TopicName::new(&Arc::from(limit.as_str())),
            TopicName::Inline(_)
        ));
        assert!(matches!(
            TopicName::new(&Arc::from(longer.as_str())),
            TopicName::Shared(_)
        ));
        assert_ne!(
            TopicName::new(&Arc::from("a")),
            TopicName::new(&Arc::from("b"))
        );
        // The metadata returned per record stays at 56 bytes.
        assert_eq!(std::mem::size_of::<RecordMetadata>(), 56);
    }
}
