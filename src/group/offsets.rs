//! Committed offsets: [`OffsetAndMetadata`] and the key of the in-memory
//! image. Every commit is appended to the internal `__consumer_offsets`
//! topic through the normal append path, so it is exactly as durable as the
//! log's sync policy; its records' codec is in `format::offsets`.

use crate::error::Error;

/// The internal topic holding committed offsets.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The longest group id: Kafka's offsets key gives it an i16 length.
pub(crate) const MAX_GROUP_ID_BYTES: usize = i16::MAX as usize;

/// Checks that a group id can be stored: 1 to [`MAX_GROUP_ID_BYTES`] bytes.
pub(crate) fn validate_group_id(id: &str) -> Result<(), Error> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_GROUP_ID_BYTES {
        "it is longer than 32,767 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidGroupId {
        len: id.len(),
        reason,
    })
}

/// A committed offset: the next offset the group will read, an optional
/// metadata string, and when it was committed.
///
/// # Example
/// ```
/// use streamlog::OffsetAndMetadata;
/// let o = OffsetAndMetadata::new(42).metadata("batch 7");
/// assert_eq!((o.offset(), o.metadata_str()), (42, "batch 7"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub(crate) offset: u64,
    pub(crate) metadata: String,
    pub(crate) commit_timestamp: i64,
}

impl OffsetAndMetadata {
    /// An offset to commit: the next record to read, i.e. last processed + 1.
    pub fn new(offset: u64) -> Self {
        OffsetAndMetadata {
            offset,
            metadata: String::new(),
            commit_timestamp: 0,
        }
    }

    /// Attaches a metadata string (stored with the offset). Default: empty.
    ///
    /// # Example
    /// ```
    /// let o = streamlog::OffsetAndMetadata::new(1).metadata("checkpoint-3");
    /// ```
    pub fn metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = metadata.into();
        self
    }

    /// The committed offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The metadata string.
    pub fn metadata_str(&self) -> &str {
        &self.metadata
    }

    /// When the commit was made (ms since the epoch, by the log's clock);
    /// 0 for an offset not yet committed.
    pub fn commit_timestamp(&self) -> i64 {
        self.commit_timestamp
    }
}

/// `(group, topic, partition)`.
pub(crate) type OffsetKey = (String, String, u32);

/// Who a consumer is in its group, for offsets committed inside a
/// transaction ([`Transaction::send_offsets_to_transaction`]): the
/// transaction's commit checks, under the group's lock, that this member
/// still belongs to the group and owns those partitions (Kafka's KIP-447
/// fencing). From [`Consumer::group_metadata`].
///
/// [`Transaction::send_offsets_to_transaction`]: crate::Transaction::send_offsets_to_transaction
/// [`Consumer::group_metadata`]: crate::Consumer::group_metadata
///
/// # Example
/// ```
/// use streamlog::{ConsumerConfig, Log};
/// let log = Log::temporary()?;
/// let c = log.consumer(ConsumerConfig::new().group("billing"));
/// assert_eq!(c.group_metadata().group_id(), "billing");
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub(crate) group_id: String,
    pub(crate) generation: u64,
    pub(crate) member: GroupMember,
}

/// Whether, and as whom, a consumer is in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupMember {
    /// A consumer using `assign`: it commits only while the group has no
    /// members.
    Outside,
    /// A subscribed member with this id.
    Member(u64),
    /// A subscribed consumer that was evicted and has not rejoined.
    Evicted,
}

impl ConsumerGroupMetadata {
    /// The group id (empty for a consumer without a group).
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The group generation the consumer last joined (0 outside a group).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}
