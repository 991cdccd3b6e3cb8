//! The durability settings a partition obeys: [`SyncPolicy`] for appends
//! and [`RecoveryMode`] for opening. Set through
//! [`LogOptions`](crate::LogOptions).

use std::time::Duration;

/// When appended data is forced to stable storage. See the durability
/// contract in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Never fsync on the append path. An acknowledged record is in the OS
    /// page cache: it survives a crash of the process, not a power cut. Data
    /// reaches disk when the kernel writes it back, on segment roll, on
    /// [`Log::flush`](crate::Log::flush) and on [`Log::close`](crate::Log::close). Default.
    #[default]
    OsBuffered,
    /// `send` returns only after the record is on stable storage
    /// (fdatasync). Concurrent senders share one fdatasync (group commit).
    EveryWrite,
    /// The send that brings a partition's unsynced record count to N
    /// performs an fdatasync covering everything appended before it.
    EveryRecords(u64),
    /// A send into a partition that has not been synced for at least this
    /// long performs an fdatasync. Checked inside calls; there is no timer
    /// thread, so an idle log does not sync until the next call.
    Interval(Duration),
}

impl SyncPolicy {
    /// Whether every append is followed by an fdatasync (`EveryWrite`, or
    /// a count of one): small appends then go through the file rather than
    /// into the mapping (`MappedFile::set_small_writes_through_file`).
    pub(crate) fn syncs_every_append(self) -> bool {
        matches!(
            self,
            SyncPolicy::EveryWrite | SyncPolicy::EveryRecords(0 | 1)
        )
    }
}

/// What `open` does when a partition's tail is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Truncate the log at the first invalid batch, delete any later
    /// segments, and report what was removed in [`Log::recovery_report`](crate::Log::recovery_report).
    /// Default.
    #[default]
    TolerateCorruptTail,
    /// Fail `open` with [`Error::Corrupted`](crate::Error::Corrupted) at the first invalid batch.
    /// The zero-filled tail that preallocation leaves after a crash is not
    /// damage and does not fail the open.
    AbsoluteConsistency,
}
