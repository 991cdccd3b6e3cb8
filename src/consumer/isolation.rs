//! Reading committed records only (Kafka's `read_committed` on the
//! consumer's side): the end a consumer sees. The filter that steps over
//! aborted transactions' batches is storage's `AbortedFilter`, which
//! compaction uses too.

use super::config::IsolationLevel;
use crate::storage::partition::Partition;

/// The offset reads stop at: the last stable offset for `ReadCommitted`,
/// the end for `ReadUncommitted`.
#[inline]
pub(crate) fn visible_end(part: &Partition, level: IsolationLevel) -> u64 {
    match level {
        IsolationLevel::ReadCommitted => part.last_stable_offset(),
        IsolationLevel::ReadUncommitted => part.end_offset(),
    }
}
