//! Maintenance of one partition: retention (`retention`) and compaction
//! (`compaction`), and the opt-in helper thread (`thread`). What runs them
//! across a log's partitions, with its checkpoint, is `log::maintenance`.
//! No hidden threads: [`Log::spawn_maintenance`](crate::Log::spawn_maintenance)
//! is the only one, and only when asked for.

use std::time::Duration;

pub(crate) mod compaction;
pub(crate) mod retention;
pub(crate) mod thread;

/// What one [`Log::maintain`](crate::Log::maintain) call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// Segments deleted by retention, or merged away by compaction.
    pub segments_deleted: u64,
    /// Bytes of segment and index files freed.
    pub bytes_reclaimed: u64,
    /// Records removed by compaction (retention removes whole segments and
    /// is counted in `segments_deleted`).
    pub records_removed: u64,
    /// Partitions compacted.
    pub partitions_compacted: u64,
    /// Transactions aborted because they were open longer than their
    /// timeout.
    pub transactions_timed_out: u64,
    /// Wall time the call took.
    pub duration: Duration,
}
