//! Storage: segments, indexes, partitions and recovery. Storage never
//! calls up into the log, consumer or group code.

pub(crate) mod cursor;
pub(crate) mod group_commit;
pub(crate) mod mapped;
pub(crate) mod partition;
pub(crate) mod policy;
pub(crate) mod producers;
pub(crate) mod recovery;
pub(crate) mod segment;
pub(crate) mod shared;
