//! Records on the way in: what a producer sends ([`Record`]), what it gets
//! back ([`RecordMetadata`]), and where records live ([`TopicPartition`]).
//! What a consumer reads is in `consumer::records`.

use std::borrow::Cow;
use std::sync::Arc;

/// A header as sent: a name and a value, `None` for a null value.
pub(crate) type Header<'a> = (Cow<'a, str>, Option<Cow<'a, [u8]>>);

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
    pub(crate) headers: Vec<Header<'a>>,
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

    /// A record whose value is `value`, null when `None` (with a
    /// [`key`](Self::key), a null value is a tombstone; without one, Kafka
    /// allows it too). For copying records from elsewhere, whose value may
    /// be null either way.
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", Record::from_value(None::<Vec<u8>>))?;
    /// log.producer().send("t", Record::from_value(Some(b"v".to_vec())))?;
    /// let reader = Log::open_read_only(log.dir())?;
    /// let mut p = reader.partition_reader(&TopicPartition::new("t", 0), 0, Default::default())?;
    /// let values: Vec<_> = p.read(10)?.into_iter().map(|r| r.value).collect();
    /// assert_eq!(values, vec![None, Some(b"v".to_vec())]);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn from_value(value: Option<impl Into<Cow<'a, [u8]>>>) -> Self {
        Record {
            key: None,
            value: value.map(Into::into),
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
        self.headers.push((name.into(), Some(value.into())));
        self
    }

    /// Adds a header whose value is null (Kafka's `null`, distinct from an
    /// empty value). A consumer sees it through
    /// [`ConsumerRecord::nullable_headers`](crate::ConsumerRecord::nullable_headers).
    ///
    /// # Example
    /// ```
    /// let r = streamlog::Record::new(b"v").null_header("deleted-by");
    /// ```
    pub fn null_header(mut self, name: impl Into<Cow<'a, str>>) -> Self {
        self.headers.push((name.into(), None));
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
