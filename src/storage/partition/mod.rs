//! A partition: an ordered list of segments, its offsets and its locks.
//! The work on it is split by phase: `append` (roll rules included),
//! `sync` (the sync policy and group commit) and `read` (fetch, timestamp
//! lookup, waiters).
//!
//! Locks, always taken in this order: `writer` (appends, rolls), then
//! `sync_lock` (every fdatasync of the partition's files), then `segments`.
//! A syncer never takes `writer`: it reads the end offset, then the active
//! segment from the segment list, so appends proceed while a sync is in
//! flight.
//!
//! Every fdatasync runs under `sync_lock`, and `durable` only advances under
//! it after checking that the log is not poisoned. Linux reports a writeback
//! error to only one fdatasync caller; serializing them, and poisoning
//! before the lock is released, means no later sync that "succeeds" can
//! acknowledge data the kernel already dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use super::cursor::IndexCursor;
use super::group_commit::GroupCommit;
use super::mapped::Appender;
use super::recovery::Loaded;
use super::segment::Segment;
use super::shared::Shared;
use crate::error::Error;
use crate::format::checkpoint::Checkpoint;
use crate::format::txn::AbortedTxn;
use crate::signal::Signal;
use crate::storage::producers::ProducerState;
use crate::topic::config::TopicConfig;

pub(crate) mod append;
pub(crate) mod read;
mod sync;
#[cfg(test)]
mod tests;
pub(crate) mod txn;

struct Writer {
    active: Arc<Segment>,
    /// The writer's hold on the active segment's log mapping; replaced
    /// with `active`, by [`Writer::activate`].
    appender: Appender,
    /// Small appends go through the file, not the mapping (the sync policy
    /// syncs after each); applied to every segment made active.
    small_writes_through_file: bool,
    cursor: IndexCursor,
    next_offset: u64,
    /// Producers and open transactions (`txn.rs`).
    producers: ProducerState,
    /// The offsets of the snapshots on disk, oldest first.
    snapshots: Vec<u64>,
    /// Bytes appended since the last snapshot.
    since_snapshot: u64,
    /// The active segment's `.txnindex` has entries not yet synced.
    txn_index_dirty: bool,
}

impl Writer {
    fn new(
        active: Arc<Segment>,
        cursor: IndexCursor,
        next_offset: u64,
        small_writes_through_file: bool,
    ) -> Self {
        active
            .log
            .set_small_writes_through_file(small_writes_through_file);
        Writer {
            small_writes_through_file,
            appender: active.log.appender(),
            active,
            cursor,
            next_offset,
            producers: ProducerState::default(),
            snapshots: Vec::new(),
            since_snapshot: 0,
            txn_index_dirty: false,
        }
    }

    /// Makes `seg` the segment appended to.
    fn activate(&mut self, seg: Arc<Segment>) {
        seg.log
            .set_small_writes_through_file(self.small_writes_through_file);
        self.appender = seg.log.appender();
        self.active = seg;
    }
}

pub(crate) struct Partition {
    pub topic: Arc<str>,
    pub id: u32,
    pub dir: PathBuf,
    /// Replaced whole by `set_config` (a topic's configs altered): readers
    /// take the current one per decision, as Kafka applies a changed config
    /// at the next roll or maintenance pass.
    cfg: RwLock<Arc<TopicConfig>>,
    /// The config's `segment_bytes` and `segment_age` (ms), copied out of
    /// `cfg` at each change: the append path reads them for every batch,
    /// and a read lock there cost two locked instructions per send.
    roll_bytes: AtomicU64,
    roll_age_ms: AtomicI64,
    shared: Arc<Shared>,
    /// Changed in place (a roll pushes one, O(1)); readers copy out under
    /// the read lock only the few segments a read needs
    /// ([`window`](Self::window)), never the whole list.
    segments: RwLock<Vec<Arc<Segment>>>,
    /// The bytes of every segment but the last (sealed, so their sizes no
    /// longer change), kept with each change of the list: the partition's
    /// size without a walk over it.
    sealed_bytes: AtomicU64,
    writer: Mutex<Writer>,
    start: AtomicU64,
    /// Compaction has cleaned everything below this offset.
    cleaner_point: AtomicU64,
    end: AtomicU64,
    durable: AtomicU64,
    /// The first offset of the earliest open transaction, `u64::MAX` for
    /// none: the last stable offset is this, capped by the end.
    first_unstable: AtomicU64,
    /// Aborted transactions by marker offset (every segment's
    /// `.txnindex`).
    aborted: RwLock<Vec<AbortedTxn>>,
    sync_lock: Mutex<()>,
    /// When the partition was last synced, in ns since `created`.
    last_sync_ns: AtomicU64,
    created: Instant,
    waiters: Mutex<Vec<Arc<Signal>>>,
    has_waiters: AtomicBool,
    deleted: AtomicBool,
    counters: AppendCounters,
    group_commit: GroupCommit,
    /// Runs after a read takes its snapshot of the segment list: lets a
    /// test remove segments in that window.
    #[cfg(test)]
    pub after_snapshot: Mutex<Option<Box<dyn FnMut() + Send>>>,
}

/// What a partition has appended since the log was opened.
#[derive(Debug, Default)]
pub(crate) struct AppendCounters {
    pub records: AtomicU64,
    pub batches: AtomicU64,
    pub bytes: AtomicU64,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("topic", &self.topic)
            .field("id", &self.id)
            .field("end", &self.end_offset())
            .finish_non_exhaustive()
    }
}

impl Partition {
    pub fn new(
        topic: Arc<str>,
        id: u32,
        dir: PathBuf,
        cfg: Arc<TopicConfig>,
        shared: Arc<Shared>,
        loaded: Loaded,
        cp: Checkpoint,
    ) -> Partition {
        let active = loaded
            .segments
            .last()
            .cloned()
            .expect("a loaded partition has a segment");
        let end = active.next_offset();
        let first_base = loaded.segments.first().map_or(end, |s| s.base);
        for sealed in &loaded.segments[..loaded.segments.len() - 1] {
            sealed.make_lazy(&shared.maps, false);
        }
        // Recovery synced everything it loaded, unless it left the active
        // segment's tail to the next sync (a same-boot recovery): then only
        // what lies below `loaded.durable` is known to be durable, and the
        // next `sync_to` (flush, sync policy, group commit) or roll syncs
        // the active segment, which holds all the rest.
        let durable = loaded.durable.map_or(end, |d| d.min(end));
        let through_file = shared.sync.syncs_every_append() && !shared.no_sync;
        Partition {
            topic,
            id,
            dir,
            roll_bytes: AtomicU64::new(cfg.segment_bytes),
            roll_age_ms: AtomicI64::new(age_ms(&cfg)),
            cfg: RwLock::new(cfg),
            shared,
            sealed_bytes: AtomicU64::new(
                loaded.segments[..loaded.segments.len() - 1]
                    .iter()
                    .map(|s| s.size_bytes())
                    .sum(),
            ),
            segments: RwLock::new(loaded.segments),
            writer: Mutex::new(Writer::new(active, loaded.cursor, end, through_file)),
            start: AtomicU64::new(cp.log_start.max(first_base).min(end)),
            cleaner_point: AtomicU64::new(cp.cleaner_point),
            end: AtomicU64::new(end),
            durable: AtomicU64::new(durable),
            first_unstable: AtomicU64::new(u64::MAX),
            aborted: RwLock::new(Vec::new()),
            sync_lock: Mutex::new(()),
            last_sync_ns: AtomicU64::new(0),
            created: Instant::now(),
            waiters: Mutex::new(Vec::new()),
            has_waiters: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            counters: AppendCounters::default(),
            group_commit: GroupCommit::default(),
            #[cfg(test)]
            after_snapshot: Mutex::new(None),
        }
    }

    /// The log start offset: the earliest readable offset.
    #[inline]
    pub fn start_offset(&self) -> u64 {
        self.start.load(Ordering::Acquire)
    }

    /// Compaction has cleaned everything below this offset.
    pub fn cleaner_point(&self) -> u64 {
        self.cleaner_point.load(Ordering::Acquire)
    }

    pub fn set_cleaner_point(&self, offset: u64) {
        self.cleaner_point.fetch_max(offset, Ordering::AcqRel);
    }

    /// Moves the log start offset forward (retention). Never backwards.
    pub fn advance_start(&self, offset: u64) {
        self.start.fetch_max(offset, Ordering::AcqRel);
    }

    /// The partition's current config.
    pub fn config(&self) -> Arc<TopicConfig> {
        self.cfg.read().clone()
    }

    /// Replaces the partition's config (the topic's configs were altered).
    pub fn set_config(&self, cfg: Arc<TopicConfig>) {
        let mut current = self.cfg.write();
        self.roll_bytes.store(cfg.segment_bytes, Ordering::Relaxed);
        self.roll_age_ms.store(age_ms(&cfg), Ordering::Relaxed);
        *current = cfg;
    }

    pub fn fs(&self) -> Arc<dyn crate::io::FileSystem> {
        self.shared.fs.clone()
    }

    /// Whether this log performs fsyncs (temporary logs do not).
    pub fn syncs(&self) -> bool {
        !self.shared.no_sync
    }

    /// Poisons the log with `err` (maintenance failed half-way).
    pub fn poison_with(&self, err: &Error) {
        self.shared.poison(err);
    }

    /// Replaces the consecutive segments `old` (matched by identity) with
    /// `new` (nothing: deletion). Returns false, changing nothing, if `old`
    /// is not a run of the current list or would include the active segment.
    pub fn replace_segments(&self, old: &[Arc<Segment>], new: Option<Arc<Segment>>) -> bool {
        let mut segs = self.segments.write();
        let Some(first) = old.first() else {
            return false;
        };
        let Some(at) = segs.iter().position(|s| Arc::ptr_eq(s, first)) else {
            return false;
        };
        let run = segs.get(at..at + old.len());
        let matches = run.is_some_and(|r| r.iter().zip(old).all(|(a, b)| Arc::ptr_eq(a, b)));
        if !matches || at + old.len() >= segs.len() {
            return false;
        }
        if let Some(n) = &new {
            n.make_lazy(&self.shared.maps, true);
        }
        let added = new.as_ref().map_or(0, |n| n.size_bytes());
        let removed: u64 = old.iter().map(|s| s.size_bytes()).sum();
        segs.splice(at..at + old.len(), new);
        self.sealed_bytes.fetch_add(added, Ordering::Relaxed);
        self.sealed_bytes.fetch_sub(removed, Ordering::Relaxed);
        true
    }

    /// Appends `new` (the new active segment) after `sealed`, the last one
    /// until now, sealed and trimmed.
    pub(super) fn push_segment(&self, sealed: &Segment, new: Arc<Segment>) {
        let mut segs = self.segments.write();
        self.sealed_bytes
            .fetch_add(sealed.size_bytes(), Ordering::Relaxed);
        segs.push(new);
    }

    /// Runs `f` on the segment list, under its read lock: for a short look
    /// that must not copy the list (`f` must not take the partition's
    /// other locks).
    pub fn with_segments<R>(&self, f: impl FnOnce(&[Arc<Segment>]) -> R) -> R {
        f(&self.segments.read())
    }

    /// The offset the next appended record will get.
    #[inline]
    pub fn end_offset(&self) -> u64 {
        self.end.load(Ordering::SeqCst)
    }

    /// Everything below this offset is on stable storage.
    pub fn durable_offset(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// A copy of the whole list, O(segments): for maintenance passes and
    /// reports, not for reads (see [`window`](Self::window)).
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.segments.read().clone()
    }

    /// How many segments there are.
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// The segments a read from `offset` of up to `max_bytes` starts with:
    /// the one holding `offset` (the last whose base is at or below it) and
    /// the next ones, at least two, until their sizes reach `max_bytes`;
    /// and whether more follow. Cost: a binary search and the copies
    /// returned, whatever the number of segments.
    pub fn window(&self, offset: u64, max_bytes: usize) -> (Vec<Arc<Segment>>, bool) {
        let segs = self.segments.read();
        let first = segs.partition_point(|s| s.base <= offset).saturating_sub(1);
        let mut out = Vec::with_capacity(2);
        let mut bytes = 0u64;
        for s in &segs[first..] {
            if out.len() >= 2 && bytes >= max_bytes as u64 {
                return (out, true);
            }
            bytes += s.size_bytes();
            out.push(s.clone());
        }
        (out, false)
    }

    /// Whether `seg` is (still) one of the partition's segments.
    pub fn holds_segment(&self, seg: &Arc<Segment>) -> bool {
        let segs = self.segments.read();
        let at = segs.partition_point(|s| s.base < seg.base);
        segs[at..]
            .iter()
            .take_while(|s| s.base == seg.base)
            .any(|s| Arc::ptr_eq(s, seg))
    }

    /// The bytes of all the partition's files, without a walk over its
    /// segments.
    pub fn size_bytes(&self) -> u64 {
        let segs = self.segments.read();
        let active = segs.last().map_or(0, |s| s.size_bytes());
        self.sealed_bytes.load(Ordering::Relaxed) + active
    }

    /// What this partition has appended since the log was opened.
    pub fn counters(&self) -> &AppendCounters {
        &self.counters
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }

    /// Refuses further appends. Waits for an append in flight, so that
    /// nothing is written into the directory after it is removed.
    pub fn mark_deleted(&self) {
        let _w = self.writer.lock();
        self.deleted.store(true, Ordering::SeqCst);
        drop(_w);
        self.wake();
    }

    fn poison(&self, op: &'static str, path: &Path, e: std::io::Error) -> Error {
        let err = Error::io(op, path, e);
        self.shared.poison(&err);
        err
    }
}

/// A config's segment age in milliseconds, saturated to `i64`.
fn age_ms(cfg: &TopicConfig) -> i64 {
    cfg.segment_age.as_millis().min(i64::MAX as u128) as i64
}
