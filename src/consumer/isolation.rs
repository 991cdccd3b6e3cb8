//! Reading committed records only (Kafka's `read_committed` on the
//! consumer's side): the end a consumer sees, and the filter that steps
//! over aborted transactions' batches with the partition's aborted index,
//! as Kafka's client does (`CompletedFetch`).

use std::collections::HashSet;

use super::config::IsolationLevel;
use crate::error::Result;
use crate::format::batch::v2::ControlType;
use crate::format::txn::AbortedTxn;
use crate::storage::partition::read::FetchedBatch;
use crate::storage::partition::txn::control_kind;
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

/// Steps over the batches of aborted transactions, in offset order.
pub(crate) struct AbortedFilter {
    /// The aborted transactions overlapping the read, by first offset.
    upcoming: Vec<AbortedTxn>,
    next: usize,
    /// Producers whose aborted transaction the read is inside.
    active: HashSet<i64>,
}

impl AbortedFilter {
    /// A filter for reading `[from, to)` of `part`, or `None` when no
    /// aborted transaction overlaps it.
    pub fn new(part: &Partition, from: u64, to: u64) -> Option<AbortedFilter> {
        if !part.has_aborted() {
            return None;
        }
        let mut upcoming = part.aborted_between(from, to);
        if upcoming.is_empty() {
            return None;
        }
        upcoming.sort_by_key(|a| a.first_offset);
        Some(AbortedFilter {
            upcoming,
            next: 0,
            active: HashSet::new(),
        })
    }

    /// Whether `b` belongs to an aborted transaction and is skipped. Must
    /// be called for every batch, in order (markers end a transaction).
    pub fn skip(&mut self, b: &FetchedBatch) -> Result<bool> {
        let h = &b.header;
        while let Some(a) = self.upcoming.get(self.next) {
            if a.first_offset > h.last_offset() {
                break;
            }
            self.active.insert(a.producer_id);
            self.next += 1;
        }
        if h.is_control() {
            if self.active.contains(&h.producer_id) && control_kind(b)? == Some(ControlType::Abort)
            {
                self.active.remove(&h.producer_id);
            }
            return Ok(false);
        }
        Ok(h.is_transactional() && self.active.contains(&h.producer_id))
    }
}
