//! [`RecoveryReport`]: what opening a log found and repaired, for the
//! user to read.

use std::path::PathBuf;

/// What recovery did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Truncation {
    /// The segment file.
    pub path: PathBuf,
    /// The byte position it was cut at.
    pub position: u64,
    /// How many bytes were removed.
    pub bytes: u64,
    /// Why: the damage found there.
    pub reason: String,
}

/// A record of `__consumer_offsets` that replay could not read, and
/// skipped: the commits it held (if any) are lost, every other commit is
/// kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedRecord {
    /// The segment file holding it.
    pub path: PathBuf,
    /// Its offset in `__consumer_offsets`.
    pub offset: u64,
    /// Why it could not be read.
    pub reason: String,
}

/// A range of offsets that the checkpoint says were written, but that no
/// segment holds any more: lost, and never handed out again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingOffsets {
    /// The partition directory.
    pub dir: PathBuf,
    /// The first missing offset.
    pub from: u64,
    /// The offset after the last missing one.
    pub to: u64,
}

/// What opening the log found and repaired. See [`Log::recovery_report`].
///
/// [`Log::recovery_report`]: crate::Log::recovery_report
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Whether the previous shutdown was clean (a `close`).
    pub clean_shutdown: bool,
    /// Segments scanned batch by batch.
    pub segments_scanned: usize,
    /// Bytes of segment data validated batch by batch (CRC included).
    pub bytes_scanned: u64,
    /// Active segments whose scan resumed at one of their last index
    /// entries instead of their first byte: possible after a crash of the
    /// process (not of the machine), whose page cache still held every byte
    /// written before it.
    pub segments_resumed: usize,
    /// Damaged tails that were cut off.
    pub truncations: Vec<Truncation>,
    /// Segment files deleted because they followed a damaged one.
    pub segments_removed: Vec<PathBuf>,
    /// Index files that were rebuilt from their segment.
    pub indexes_rebuilt: Vec<PathBuf>,
    /// Why the partition checkpoint was ignored (it was damaged), in which
    /// case every segment was scanned.
    pub checkpoint_ignored: Option<String>,
    /// Compaction swaps that a crash interrupted and the open completed.
    pub swaps_completed: Vec<PathBuf>,
    /// Records of `__consumer_offsets` that could not be read and were
    /// skipped when the committed offsets were replayed. A damaged batch
    /// there ends the replay of that partition, and is listed too.
    pub offsets_skipped: Vec<SkippedRecord>,
    /// Partition directories (`<topic>-<n>`) that the topic registry does
    /// not name: kept as they are, never loaded or removed. A lost registry
    /// or a topic delete that crashed leaves them;
    /// [`Log::recover_topic`](crate::Log::recover_topic) registers a topic
    /// again from its directories.
    pub unregistered_partitions: Vec<PathBuf>,
    /// Segment files that do not fit the partition (empty or foreign files
    /// inside or past its offsets), renamed to `<name>.stray` and left
    /// alone: the end of a partition comes from what its segments hold,
    /// never from a file name.
    pub set_aside: Vec<PathBuf>,
    /// Offsets that were checkpointed but are in no segment (a deleted or
    /// cut-short segment). Offsets past them are never reused: appends go
    /// on after the last missing one, and consumers see a gap.
    /// [`RecoveryMode::AbsoluteConsistency`](crate::RecoveryMode::AbsoluteConsistency)
    /// refuses to open instead.
    pub missing_offsets: Vec<MissingOffsets>,
    /// Batches read to rebuild producer state after the newest snapshot
    /// of each partition (0 after a clean shutdown).
    pub producer_batches_replayed: u64,
    /// Producer-state snapshots that failed their checks (torn by a crash)
    /// and were removed; an older one, or the log itself, was used instead.
    pub producer_snapshots_discarded: u64,
    /// Transactions found open whose commit decision was durable: their
    /// COMMIT markers were written and their offsets applied.
    pub transactions_committed: u64,
    /// Transactions found open without a durable commit decision: aborted.
    pub transactions_aborted: u64,
}
