//! The crate's one error type.

use std::io;
use std::path::{Path, PathBuf};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in streamlog.
///
/// Messages say what happened, where, and what to do next. Corruption errors
/// name the file, the byte position and (when known) the record offset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another `Log` (in this process or another) holds the directory's lock.
    #[error(
        "log directory {path} is already open in another Log or process; close that one first"
    )]
    Locked {
        /// The log directory.
        path: PathBuf,
    },

    /// `create_topic` was called for a name that already exists.
    #[error("topic {topic:?} already exists; pick another name or delete it first")]
    TopicExists {
        /// The topic name.
        topic: String,
    },

    /// The topic does not exist.
    #[error("topic {topic:?} does not exist; create it with Log::create_topic")]
    UnknownTopic {
        /// The topic name.
        topic: String,
    },

    /// The topic exists but has no such partition.
    #[error(
        "topic {topic:?} has {partitions} partitions, so partition {partition} does not exist"
    )]
    UnknownPartition {
        /// The topic name.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },

    /// A topic name breaks Kafka's naming rules or uses a reserved name.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// A configuration value is out of its allowed range.
    #[error("invalid configuration: {what}")]
    InvalidConfig {
        /// What is wrong and the allowed range.
        what: String,
    },

    /// A batch of more records than its 32-bit count can hold
    /// (4,294,967,295); split it.
    #[error("a batch holds at most 4,294,967,295 records, not {records}; split it")]
    InvalidBatch {
        /// How many records were given.
        records: u64,
    },

    /// Kafka record batches handed to
    /// [`Producer::append_kafka_batches`](crate::Producer::append_kafka_batches)
    /// were refused; nothing of the input was appended.
    #[error("the Kafka record batch at byte {position} of the input for {topic}-{partition} was refused: {kind}")]
    InvalidKafkaBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Byte position of the refused batch in the input.
        position: u64,
        /// What is wrong with it.
        kind: CorruptionKind,
    },

    /// A partition has handed out every offset a `u64` can hold.
    #[error(
        "partition {topic}-{partition} has exhausted the u64 offset space; no more records fit"
    )]
    OffsetSpaceExhausted {
        /// The topic name.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// A consumer group id that cannot be stored: empty, or longer than
    /// the 32,767 bytes Kafka's offsets key allows.
    #[error("invalid consumer group id of {len} bytes: {reason}")]
    InvalidGroupId {
        /// The id's length in bytes.
        len: usize,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A partition directory holds data, but the topic registry does not
    /// name its topic (a lost registry, or a delete that crashed): it is
    /// never removed to make room for a new topic.
    #[error("{} holds data of a topic the registry does not name; register it again with Log::recover_topic, or move the directory away", path.display())]
    UnregisteredData {
        /// The partition directory.
        path: PathBuf,
    },

    /// A call that needs a consumer group, on a consumer without one.
    #[error("this needs a consumer group: set ConsumerConfig::group")]
    NoGroup,

    /// A call made in a state that does not allow it (Kafka's
    /// `IllegalStateException`): `poll` inside a rebalance listener,
    /// `subscribe` after `assign` or the other way round.
    #[error("{what}")]
    IllegalState {
        /// What was called, and what to do instead.
        what: &'static str,
    },

    /// The opt-in maintenance thread could not be started.
    #[error("could not start the maintenance thread")]
    ThreadSpawn {
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A record's encoded size exceeds the topic's `max_record_bytes`.
    #[error("record of {size} bytes exceeds the topic's max_record_bytes of {max}; raise TopicConfig::max_record_bytes or split the record")]
    RecordTooLarge {
        /// The record's encoded size.
        size: u64,
        /// The topic's limit.
        max: u64,
    },

    /// An offset outside `earliest..=latest` was requested.
    #[error("offset {requested} is out of range: the partition holds offsets {earliest}..{latest} (end exclusive); seek to a valid offset")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// The log start offset: the earliest readable offset.
        earliest: u64,
        /// The end offset: the offset the next record will get.
        latest: u64,
    },

    /// Bytes on disk are damaged. Nothing from the damaged range is returned.
    #[error("corrupted data in {path} at byte {position}{}: {kind}", offset.map(|o| format!(" (near offset {o})")).unwrap_or_default())]
    Corrupted {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage within the file.
        position: u64,
        /// The record offset the damaged bytes belong to, when known.
        offset: Option<u64>,
        /// What exactly is wrong.
        kind: CorruptionKind,
    },

    /// Data written by a newer streamlog (or Kafka) whose format this build
    /// cannot read: an unknown batch magic or version byte, or a batch with
    /// an attribute bit this build does not know.
    #[error("{path} at byte {position} uses format version {found} (or a feature of it) that this build cannot read; it reads versions up to {supported}; upgrade streamlog")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Byte position of the unknown item.
        position: u64,
        /// The version found on disk.
        found: u32,
        /// The version this build supports.
        supported: u32,
    },

    /// A valid batch compressed with a codec this build cannot decompress
    /// (streamlog reads and writes none and zstd; Kafka's gzip, snappy and
    /// lz4 are refused with this error).
    #[error("{path} at byte {position} holds a batch compressed with {codec}, which this build cannot decompress (it reads none and zstd)")]
    UnsupportedCompression {
        /// The file (or the source of the bytes).
        path: PathBuf,
        /// Byte position of the batch.
        position: u64,
        /// The codec's name.
        codec: &'static str,
    },

    /// A write or fsync failed earlier, so the log refuses writes until it is
    /// reopened (reopening runs recovery).
    #[error(
        "the log refuses writes after an earlier I/O failure ({reason}); reopen it to recover"
    )]
    Poisoned {
        /// The original failure.
        reason: String,
    },

    /// A consumer-group commit was rejected: the member was evicted or its
    /// generation is stale. Rejoin (poll again) and retry.
    #[error("commit rejected for group {group:?}: {reason}")]
    CommitFailed {
        /// The group id.
        group: String,
        /// Why the commit was fenced.
        reason: String,
    },

    /// A consumer group is in use through the other door: in-process
    /// consumers are members while remote (Kafka protocol) members try to
    /// join, or the other way round. Nothing was changed; use another group
    /// id, or stop the other members first.
    #[error("consumer group {group:?} is in use by {by}; a group is run either by in-process consumers or by remote Kafka clients, not both at once: use another group id or stop those members")]
    GroupInUse {
        /// The group id.
        group: String,
        /// Who holds it: "in-process consumers" or "remote Kafka clients".
        by: &'static str,
    },

    /// An operator's change to a consumer group (deleting it, resetting
    /// its offsets) was refused because the group has live members, as
    /// Kafka refuses it for a group that is not empty. Nothing was changed.
    #[error("consumer group {group:?} has live members; stop them (or wait until they leave) before deleting the group or resetting its offsets")]
    GroupNotEmpty {
        /// The group id.
        group: String,
    },

    /// No consumer group with this id has committed offsets.
    #[error("consumer group {group:?} has no committed offsets")]
    UnknownGroup {
        /// The group id.
        group: String,
    },

    /// A producer handle was fenced: a newer handle with the same
    /// transactional id ([`Log::transactional_producer`](crate::Log::transactional_producer))
    /// exists, or a partition already holds a newer epoch of the producer.
    /// Nothing was written; the handle stays fenced. Drop it.
    #[error("producer {producer_id} at epoch {epoch} is fenced by epoch {current_epoch}{}; a newer handle took over, drop this one", transactional_id.as_ref().map(|t| format!(" (transactional id {t:?})")).unwrap_or_default())]
    ProducerFenced {
        /// The transactional id, for a transactional producer.
        transactional_id: Option<String>,
        /// The producer id.
        producer_id: i64,
        /// The handle's (stale) epoch.
        epoch: i16,
        /// The current epoch.
        current_epoch: i16,
    },

    /// A producer batch's sequence number does not follow the producer's
    /// last one in that partition (a batch is missing before it). Nothing
    /// was written.
    #[error("producer {producer_id} sent sequence {got} to {topic}-{partition} where {expected} was expected; a batch before it is missing")]
    OutOfOrderSequence {
        /// The topic name.
        topic: String,
        /// The partition.
        partition: u32,
        /// The producer id.
        producer_id: i64,
        /// The sequence the partition expected.
        expected: i32,
        /// The sequence the batch carried.
        got: i32,
    },

    /// A transactional operation in the wrong state: a plain batch of a
    /// producer whose transaction is open, a second open transaction, or a
    /// transaction already ended. Nothing was written.
    #[error("invalid transaction state: {what}")]
    InvalidTxnState {
        /// What was wrong.
        what: String,
    },

    /// The transaction was open longer than its timeout and has been
    /// aborted: none of it is visible to `ReadCommitted` readers. The
    /// producer handle can begin a new transaction.
    #[error("the transaction of {transactional_id:?} was open longer than its timeout of {timeout_ms} ms and was aborted; begin a new one")]
    TransactionTimedOut {
        /// The transactional id.
        transactional_id: String,
        /// The timeout.
        timeout_ms: u64,
    },

    /// A consumer has no position for a partition and its reset policy is
    /// [`OffsetReset::None`](crate::OffsetReset::None).
    #[error("no position for {topic}-{partition} and auto_offset_reset is None; seek first or choose Earliest or Latest")]
    NoOffset {
        /// The topic name.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// The consumer is not assigned the partition it was asked about.
    #[error(
        "partition {topic}-{partition} is not assigned to this consumer; assign or subscribe first"
    )]
    NotAssigned {
        /// The topic name.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// [`Log::open_read_only`](crate::Log::open_read_only) was given a path
    /// that is not a log directory: it does not exist, is not a directory,
    /// or has neither a topic registry (`topics.registry`, which a log
    /// writes when its first topic is created) nor a `.lock` (which
    /// `Log::open` writes). Nothing was created.
    #[error("{} is not a streamlog log directory: {reason}", path.display())]
    NotALog {
        /// The path given.
        path: PathBuf,
        /// Why it is not a log.
        reason: &'static str,
    },

    /// The log was closed with [`Log::close`](crate::Log::close).
    #[error("the log is closed")]
    Closed,

    /// An operating-system I/O error.
    #[error("I/O error while trying to {op} {}: {source}", path.display())]
    Io {
        /// What streamlog was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// What exactly is damaged, for [`Error::Corrupted`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The stored CRC does not match the bytes.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The CRC in the file.
        stored: u32,
        /// The CRC of the bytes as read.
        computed: u32,
    },
    /// A batch length field is outside the valid bounds.
    #[error("batch length {length} is out of bounds")]
    BadLength {
        /// The length field as read.
        length: u32,
    },
    /// The batch magic number is wrong: these bytes are not a batch.
    #[error("bad magic {found:#06x}, expected the bytes \"SL\"")]
    BadMagic {
        /// The magic as read.
        found: u16,
    },
    /// A batch ends past the end of the file.
    #[error("batch of {needed} bytes is cut off after {available} bytes")]
    Truncated {
        /// The batch's declared size.
        needed: u64,
        /// The bytes that exist.
        available: u64,
    },
    /// A record or header inside a CRC-valid batch is malformed.
    #[error("malformed batch: {reason}")]
    BadRecord {
        /// What is malformed.
        reason: &'static str,
    },
    /// A zstd payload does not decompress.
    #[error("bad compressed payload: {reason}")]
    BadCompression {
        /// What went wrong.
        reason: &'static str,
    },
    /// A batch's offsets are out of order with its neighbours.
    #[error("batch base offset {found} where at least {expected} was expected")]
    OffsetOutOfOrder {
        /// The smallest acceptable base offset.
        expected: u64,
        /// The base offset found.
        found: u64,
    },
    /// A metadata file (registry or checkpoint) is damaged.
    #[error("metadata file is damaged: {reason}")]
    BadMetadata {
        /// What is wrong.
        reason: String,
    },
    /// A partition directory the registry names is missing.
    #[error("partition directory is missing")]
    MissingPartition,
    /// Offsets that the checkpoint records as written (below its recovery
    /// point, at or above its log start) are in no segment file: a segment
    /// was deleted or cut short.
    #[error("offsets {from}..{to} were checkpointed but no segment holds them; a segment file is missing or was cut short")]
    MissingRecords {
        /// The first missing offset.
        from: u64,
        /// The offset after the last missing one.
        to: u64,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupted(
        path: impl Into<PathBuf>,
        position: u64,
        offset: Option<u64>,
        kind: CorruptionKind,
    ) -> Self {
        Error::Corrupted {
            path: path.into(),
            position,
            offset,
            kind,
        }
    }
}

/// Maps an `io::Error` to [`Error::Io`] naming the operation and path.
pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |e| Error::io(op, path, e)
}
