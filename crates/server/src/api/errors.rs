//! Kafka's error codes, and which one answers each of streamlog's errors.

use streamlog::Error;

pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const NOT_COORDINATOR: i16 = 16;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;

/// The Kafka error code that tells a client what `e` means.
pub fn code(e: &Error) -> i16 {
    match e {
        Error::UnknownTopic { .. } | Error::UnknownPartition { .. } => UNKNOWN_TOPIC_OR_PARTITION,
        Error::TopicExists { .. } => TOPIC_ALREADY_EXISTS,
        Error::InvalidTopicName { .. } => INVALID_TOPIC_EXCEPTION,
        Error::InvalidConfig { .. } => INVALID_CONFIG,
        Error::InvalidKafkaBatch { .. } | Error::InvalidBatch { .. } => CORRUPT_MESSAGE,
        Error::RecordTooLarge { .. } => MESSAGE_TOO_LARGE,
        Error::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        Error::InvalidGroupId { .. } => INVALID_GROUP_ID,
        Error::OutOfOrderSequence { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
        Error::ProducerFenced { .. } => INVALID_PRODUCER_EPOCH,
        Error::InvalidTxnState { .. } => INVALID_TXN_STATE,
        Error::CommitFailed { .. } => ILLEGAL_GENERATION,
        Error::Corrupted { .. } | Error::Io { .. } | Error::Poisoned { .. } => KAFKA_STORAGE_ERROR,
        _ => UNKNOWN_SERVER_ERROR,
    }
}
