//! Loading a partition from disk: validating segments, truncating a damaged
//! tail, and rebuilding indexes.
//!
//! Segments wholly below the recovery point of a cleanly closed log are
//! trusted, with cheap checks of their indexes. Everything from the segment
//! holding the recovery point on (after an unclean shutdown), and always the
//! last segment, is scanned batch by batch with full CRC validation, and its
//! indexes are rebuilt from the scan. After a process crash on the same boot,
//! and after a clean close, the last segment's scan resumes near its end
//! instead (`tail`): both leave its files exactly as they were
//! stored.

//! Rooms: `load` (a partition's segments in order), `open` (one segment,
//! trusted or scanned), `scan` (the batch-by-batch walk), `tail` (the
//! same-boot resume), `swap` (finishing an interrupted compaction) and
//! `report` (what the user reads).

use std::path::Path;
use std::sync::Arc;

use crate::io::FileSystem;
use crate::storage::cursor::IndexCursor;
use crate::storage::policy::RecoveryMode;
use crate::storage::segment::Segment;

pub(crate) mod load;
mod open;
pub(crate) mod report;
pub(crate) mod scan;
mod stray;
mod swap;
mod tail;

/// What loading a partition needs to know.
pub(crate) struct LoadCtx<'a> {
    pub fs: &'a dyn FileSystem,
    pub dir: &'a Path,
    pub mode: RecoveryMode,
    pub clean: bool,
    /// The previous run had the directory open on this boot of the machine
    /// (the session marker says so): nothing it wrote can be lost or torn
    /// except by the process's own last store.
    pub same_boot: bool,
    pub recovery_point: u64,
    pub log_start: u64,
    /// The checkpoint file named this partition: its recovery point and
    /// log start are facts to check against, not defaults.
    pub checkpointed: bool,
    pub segment_bytes: u64,
    pub index_interval: u64,
    pub segment_index_bytes: u64,
    pub sync: bool,
    /// The topic is not compacted, so the active segment holds no gaps:
    /// each batch of it must start exactly where the one before ended
    /// (Kafka's CRC does not cover the base offset; this catches a damaged
    /// one). Compaction never touches the active segment, so only a topic
    /// that was compacted once and whose active segment file was then lost
    /// (its last segment a cleaned one) could trip over it; when a topic's
    /// cleanup policy becomes changeable, a once-compacted topic should keep
    /// this off.
    pub exact_offsets: bool,
}

/// A loaded partition: its segments (the last one active) and the append
/// state of the active segment.
pub(crate) struct Loaded {
    pub segments: Vec<Arc<Segment>>,
    pub cursor: IndexCursor,
    /// Everything below this offset is on stable storage; `None`: all that
    /// was loaded is (synced at the last close, or by this open).
    pub durable: Option<u64>,
    /// Checkpointed offsets from the active segment's end up to this one
    /// are missing: the partition must skip them before any append (see
    /// `Partition::skip_to`), so that they are never handed out again.
    pub skip_to: Option<u64>,
}

impl LoadCtx<'_> {
    /// Whether the last segment is left unsynced by this open: after a crash of
    /// the process on the same boot the page cache holds the segment, so
    /// syncing it now would only make the first poll wait for up to a whole
    /// segment of writeback. The partition starts with its durable offset at
    /// the recovery point (or the segment's base) instead of its end, and the
    /// next `flush`, sync-policy sync, group commit or roll syncs the segment.
    /// If the machine crashes first, the next open is on another boot and
    /// scans from the recovery point as after any power cut.
    fn unsynced_tail(&self) -> bool {
        !self.clean && self.same_boot && self.sync
    }
}
