//! A partition: an ordered list of segments, the append path with its roll
//! rules, group commit, and the read path.
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::mapped::{Appender, View};
use super::recovery::{remove_segment_files, IndexCursor, Loaded};
use super::segment::{Part, Segment};
use super::{Checkpoint, Shared};
use crate::config::{CleanupPolicy, SyncPolicy, TopicConfig};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::batch::{
    decode_batch, records_section, BatchHeader, DecodeError, EncodedBatch, RecordIter, VERSION,
};

/// Wakes a consumer parked in `poll`.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    fired: Mutex<bool>,
    cond: Condvar,
}

impl Signal {
    pub fn fire(&self) {
        let mut f = self.fired.lock();
        *f = true;
        self.cond.notify_all();
    }

    pub fn reset(&self) {
        *self.fired.lock() = false;
    }

    /// Waits until fired or `deadline`; returns whether it fired.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let mut f = self.fired.lock();
        while !*f {
            if self.cond.wait_until(&mut f, deadline).timed_out() {
                break;
            }
        }
        *f
    }
}

struct Writer {
    active: Arc<Segment>,
    /// The writer's hold on the active segment's log mapping; replaced
    /// with `active`, by [`Writer::activate`].
    appender: Appender,
    cursor: IndexCursor,
    next_offset: u64,
}

impl Writer {
    fn new(active: Arc<Segment>, cursor: IndexCursor, next_offset: u64) -> Self {
        Writer {
            appender: active.log.appender(),
            active,
            cursor,
            next_offset,
        }
    }

    /// Makes `seg` the segment appended to.
    fn activate(&mut self, seg: Arc<Segment>) {
        self.appender = seg.log.appender();
        self.active = seg;
    }
}

/// A validated batch returned by a fetch: the view keeps the segment's
/// mapping alive for as long as the caller holds it.
#[derive(Debug, Clone)]
pub(crate) struct FetchedBatch {
    pub segment: Arc<Segment>,
    /// The segment's log, of which the batch is `[pos, pos + total_len)`.
    pub log: View,
    pub pos: usize,
    pub header: BatchHeader,
}

impl FetchedBatch {
    pub fn bytes(&self) -> &[u8] {
        &self.log[self.pos..self.pos + self.header.total_len()]
    }
}

/// The end of one read over a snapshot of the segment list.
enum Read<T> {
    Done(T),
    /// A sealed segment of the snapshot could not be mapped.
    Unmappable(Arc<Segment>, std::io::Error),
}

/// What an append did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    pub base_offset: u64,
    pub rolled: bool,
}

pub(crate) struct Partition {
    pub topic: Arc<str>,
    pub id: u32,
    pub dir: PathBuf,
    cfg: Arc<TopicConfig>,
    shared: Arc<Shared>,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    writer: Mutex<Writer>,
    start: AtomicU64,
    /// Compaction has cleaned everything below this offset.
    cleaner_point: AtomicU64,
    end: AtomicU64,
    durable: AtomicU64,
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

/// Group-commit state: who leads the current sync, and who waits for it.
#[derive(Debug, Default)]
struct GroupCommit {
    leading: AtomicBool,
    /// Bumped by each leader when its turn ends; followers wait for it to
    /// move. One condition variable, so that ending a turn wakes every
    /// follower with one system call rather than one each.
    round: std::sync::Mutex<u64>,
    ended: std::sync::Condvar,
    /// Followers waiting for the current turn to end.
    waiting: AtomicUsize,
    /// How many followers the last leader woke.
    last_woken: AtomicUsize,
    /// How long the last leader's sync took, in nanoseconds.
    last_sync_ns: AtomicU64,
}

impl GroupCommit {
    /// Called by a new leader before it syncs. The writers the previous
    /// leader woke are about to append again; syncing before they have
    /// would leave them all for the sync after, halving the records per
    /// fdatasync. So the leader yields the CPU until they have joined the
    /// waiting list, for at most as long as the last fdatasync took (each
    /// of them waits that long for the next one anyway) and never more than
    /// 1 ms. A single writer never waits.
    fn gather(&self) {
        let expect = self.last_woken.load(Ordering::Relaxed);
        if expect == 0 {
            return;
        }
        let budget = Duration::from_nanos(self.last_sync_ns.load(Ordering::Relaxed))
            .min(Duration::from_millis(1));
        let start = Instant::now();
        while self.waiting.load(Ordering::Acquire) < expect && start.elapsed() < budget {
            std::thread::yield_now();
        }
    }

    /// Runs a leader's fdatasync, remembering how long it took.
    fn timed<T>(&self, sync: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let r = sync();
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_sync_ns.store(ns, Ordering::Relaxed);
        r
    }

    fn round(&self) -> std::sync::MutexGuard<'_, u64> {
        // Nothing panics while holding it; a poisoned lock is still usable.
        self.round.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks a follower until the current leader's turn ends. `still` is
    /// checked under the round lock: false means there is nothing to wait
    /// for (no leader, or the target is already durable).
    fn follow(&self, still: impl Fn() -> bool) {
        let mut round = self.round();
        // A leader clears `leading` before it takes the round lock, so
        // either `still` sees it cleared (and the caller retries) or the
        // leader bumps the round after this follower waits (and wakes it).
        if !still() {
            return;
        }
        let mine = *round;
        self.waiting.fetch_add(1, Ordering::AcqRel);
        while *round == mine {
            round = self.ended.wait(round).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Ends a leader's turn, even if its sync panics: clears `leading`, then
/// wakes every follower so that one of them can lead the next sync.
struct Leading<'a>(&'a GroupCommit);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let gc = self.0;
        gc.leading.store(false, Ordering::Release);
        let mut round = gc.round();
        *round += 1;
        let woken = gc.waiting.swap(0, Ordering::AcqRel);
        drop(round);
        gc.last_woken.store(woken, Ordering::Relaxed);
        gc.ended.notify_all();
    }
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
        Partition {
            topic,
            id,
            dir,
            cfg,
            shared,
            segments: RwLock::new(Arc::new(loaded.segments)),
            writer: Mutex::new(Writer::new(active, loaded.cursor, end)),
            start: AtomicU64::new(cp.log_start.max(first_base).min(end)),
            cleaner_point: AtomicU64::new(cp.cleaner_point),
            end: AtomicU64::new(end),
            durable: AtomicU64::new(durable),
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

    pub fn config(&self) -> &TopicConfig {
        &self.cfg
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
        let mut list = Vec::with_capacity(segs.len());
        list.extend_from_slice(&segs[..at]);
        list.extend(new);
        list.extend_from_slice(&segs[at + old.len()..]);
        *segs = Arc::new(list);
        true
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

    pub fn segments(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().clone()
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments().iter().map(|s| s.size_bytes()).sum()
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

    /// Appends one encoded batch, rolling first if a rule says so.
    pub fn append(&self, batch: &mut EncodedBatch) -> Result<Appended> {
        let len = batch.total_len() as u64;
        let mut w = self.writer.lock();
        // Checked under the append lock, so that nothing is appended after
        // a poison, a close or a delete has been decided.
        self.shared.check_writable()?;
        if self.deleted.load(Ordering::SeqCst) {
            return Err(Error::UnknownTopic {
                topic: self.topic.to_string(),
            });
        }
        let base_offset = w.next_offset;
        let Some(next) = base_offset.checked_add(u64::from(batch.header.last_offset_delta) + 1)
        else {
            return Err(Error::InvalidConfig {
                what: format!(
                    "partition {}-{} has exhausted the u64 offset space",
                    self.topic, self.id
                ),
            });
        };
        let mut rolled = false;
        let seg_len = w.active.log.len();
        if seg_len == 0 && len > w.active.log.capacity() {
            self.replace_empty_active(&mut w, len)?;
        } else if seg_len > 0 && self.should_roll(&w, len, next, batch.header.max_timestamp) {
            self.roll(&mut w, len)?;
            rolled = true;
        }
        // Split borrows: the active segment and the cursor side by side.
        let wr = &mut *w;
        let seg = &wr.active;
        let pos = seg.log.len();
        let rel = (base_offset - seg.base) as u32;
        let (o, t) = wr.cursor.before_batch(pos, rel);
        let indexed = (o.is_some(), t.is_some());
        if let Some(o) = o {
            seg.push_offset_entry(o)
                .map_err(|e| self.poison("write index", seg.offsets.path(), e))?;
        }
        if let Some(t) = t {
            seg.push_time_entry(t)
                .map_err(|e| self.poison("write time index", seg.times.path(), e))?;
        }
        let end = seg
            .log
            .write_with(&wr.appender, batch.seal(base_offset))
            .map_err(|e| self.poison("append to", seg.log.path(), e))?;
        seg.log.publish(end);
        let h = &batch.header;
        seg.note_append(next, h.max_timestamp);
        wr.cursor.after_batch(h.base_timestamp, h.max_timestamp);
        wr.next_offset = next;
        self.end.store(next, Ordering::SeqCst);
        if self.shared.no_sync {
            self.durable.store(next, Ordering::Release);
        }
        // Only the writer-lock holder changes the counters: a load and a
        // store, no locked read-modify-write on a line all partitions share.
        let add = |c: &AtomicU64, n: u64| c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        add(&self.counters.records, u64::from(h.record_count));
        add(&self.counters.batches, 1);
        add(&self.counters.bytes, len);
        // Readers learn of the batch before the writer gets the file ready
        // for the next one: that may take system calls, and they belong to
        // no record's latency.
        let woke = self.wake();
        seg.prepare_ahead(len as usize, indexed.0, indexed.1, woke);
        drop(w);
        Ok(Appended {
            base_offset,
            rolled,
        })
    }

    /// Whether to roll before appending a batch of `len` bytes ending at
    /// `next` whose newest record has timestamp `ts`. Age is measured, as in
    /// Kafka, from the segment's first record to the incoming one, so that
    /// records carrying their own (old) timestamps do not roll every time.
    fn should_roll(&self, w: &Writer, len: u64, next: u64, ts: i64) -> bool {
        let seg = &w.active;
        let age_ms = self.cfg.segment_age.as_millis().min(i64::MAX as u128) as i64;
        seg.log.len() + len > self.cfg.segment_bytes
            || seg.log.len() + len > seg.log.capacity()
            || w.cursor
                .first_ts
                .is_some_and(|t| ts.saturating_sub(t) >= age_ms)
            || !seg.index_has_room()
            || next - seg.base > u64::from(u32::MAX)
    }

    fn create_segment(&self, base: u64, capacity: u64) -> Result<Arc<Segment>> {
        let fs = &*self.shared.fs;
        let seg = Segment::create(fs, &self.dir, base, capacity, self.cfg.segment_index_bytes)
            .map_err(|e| self.poison("create segment in", &self.dir, e))?;
        if !self.shared.no_sync {
            fs.sync_dir(&self.dir)
                .map_err(|e| self.poison("sync directory", &self.dir, e))?;
        }
        Ok(Arc::new(seg))
    }

    /// Seals the active segment (synced) and starts a new one.
    fn roll(&self, w: &mut Writer, batch_len: u64) -> Result<()> {
        let old = w.active.clone();
        {
            let _s = self.sync_lock.lock();
            old.seal(!self.shared.no_sync)
                .map_err(|e| self.poison("seal segment", old.log.path(), e))?;
            self.advance_durable(old.next_offset())?;
        }
        let new = self.create_segment(w.next_offset, self.cfg.segment_bytes.max(batch_len))?;
        let mut segs = self.segments.write();
        let mut list = Vec::clone(&segs);
        list.push(new.clone());
        *segs = Arc::new(list);
        drop(segs);
        // Only now: a syncer picks the last segment of the list.
        old.make_lazy(&self.shared.maps, true);
        w.activate(new);
        w.cursor = IndexCursor::new(self.cfg.index_interval_bytes);
        self.shared
            .metrics
            .segments_rolled
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// An empty active segment too small for one oversized batch is
    /// replaced by a larger one with the same base offset.
    fn replace_empty_active(&self, w: &mut Writer, batch_len: u64) -> Result<()> {
        let base = w.active.base;
        remove_segment_files(&*self.shared.fs, &self.dir, base).inspect_err(|e| {
            self.shared.poison(e);
        })?;
        let new = self.create_segment(base, batch_len)?;
        let mut segs = self.segments.write();
        let mut list = Vec::clone(&segs);
        if let Some(last) = list.last_mut() {
            *last = new.clone();
        }
        *segs = Arc::new(list);
        drop(segs);
        w.activate(new);
        Ok(())
    }

    /// Applies the sync policy after an append ending at `next`.
    pub fn sync_after_append(&self, next: u64) -> Result<()> {
        let due = match self.shared.sync {
            SyncPolicy::OsBuffered => false,
            SyncPolicy::EveryWrite => true,
            SyncPolicy::EveryRecords(n) => next.saturating_sub(self.durable_offset()) >= n.max(1),
            SyncPolicy::Interval(d) => {
                let since = self.created.elapsed().as_nanos() as u64;
                since.saturating_sub(self.last_sync_ns.load(Ordering::Relaxed))
                    >= d.as_nanos() as u64
            }
        };
        if due {
            self.sync_to(next)
        } else {
            Ok(())
        }
    }

    /// Moves the durable offset forward after a successful sync, unless
    /// the log was poisoned meanwhile. Called under `sync_lock`.
    fn advance_durable(&self, to: u64) -> Result<()> {
        self.shared.check_not_poisoned()?;
        self.durable.fetch_max(to, Ordering::AcqRel);
        self.last_sync_ns
            .store(self.created.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Makes every offset below `target` durable. Concurrent callers share
    /// fdatasyncs (group commit): one caller at a time leads and syncs
    /// everything appended so far; the others park until it finishes and
    /// are woken all at once. A follower whose record landed after the
    /// leader read the end offset leads the next sync, which covers every
    /// record appended meanwhile.
    ///
    /// Followers do not queue on a lock: handing a lock from one woken
    /// thread to the next costs a context switch each, and with many
    /// writers that chain, not the disk, set the pace.
    pub fn sync_to(&self, target: u64) -> Result<()> {
        if self.shared.no_sync || self.durable_offset() >= target {
            return Ok(());
        }
        loop {
            if self.durable_offset() >= target {
                return Ok(());
            }
            self.shared.check_not_poisoned()?;
            let gc = &self.group_commit;
            if gc
                .leading
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let _lead = Leading(gc);
                gc.gather();
                return gc.timed(|| self.sync_now(target));
            }
            gc.follow(|| gc.leading.load(Ordering::Acquire) && self.durable_offset() < target);
        }
    }

    /// One fdatasync of the active segment, under `sync_lock`, covering
    /// everything appended before it starts.
    fn sync_now(&self, target: u64) -> Result<()> {
        let _s = self.sync_lock.lock();
        if self.durable_offset() >= target {
            return Ok(());
        }
        self.shared.check_not_poisoned()?;
        // The end offset first, then the active segment: any record below
        // `end` is in that segment or in one sealed (and synced) before it.
        let end = self.end_offset();
        let Some(seg) = self.segments.read().last().cloned() else {
            return Ok(());
        };
        seg.log
            .sync()
            .map_err(|e| self.poison("fdatasync", seg.log.path(), e))?;
        self.advance_durable(end)?;
        self.shared.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Syncs everything appended so far.
    pub fn flush(&self) -> Result<()> {
        self.sync_to(self.end_offset())
    }

    /// Trims the active segment's preallocated space and syncs it, for a
    /// clean shutdown. Waits for appends in flight; the caller has already
    /// marked the log closed, so none start after.
    pub fn close(&self) -> Result<()> {
        let w = self.writer.lock();
        let _s = self.sync_lock.lock();
        let seg = &w.active;
        for f in [&seg.log, &seg.offsets, &seg.times] {
            f.trim().map_err(|e| self.poison("trim", f.path(), e))?;
        }
        if !self.shared.no_sync {
            for f in [&seg.log, &seg.offsets, &seg.times] {
                f.sync()
                    .map_err(|e| self.poison("fdatasync", f.path(), e))?;
            }
        }
        self.advance_durable(w.next_offset)
    }

    fn out_of_range(&self, requested: u64) -> Error {
        Error::OffsetOutOfRange {
            requested,
            earliest: self.start_offset(),
            latest: self.end_offset(),
        }
    }

    fn corrupted(&self, seg: &Segment, pos: usize, offset: u64, e: DecodeError) -> Error {
        let path = seg.log.path().to_owned();
        let available = seg.log.len().saturating_sub(pos as u64);
        match e {
            DecodeError::UnsupportedVersion(v) => Error::UnsupportedVersion {
                path,
                position: pos as u64,
                found: u32::from(v),
                supported: u32::from(VERSION),
            },
            DecodeError::Corrupt(kind) => Error::corrupted(path, pos as u64, Some(offset), kind),
            DecodeError::Incomplete { needed } => Error::corrupted(
                path,
                pos as u64,
                Some(offset),
                CorruptionKind::Truncated {
                    needed: needed as u64,
                    available,
                },
            ),
        }
    }

    /// Collects validated batches holding offsets from `offset` on, up to
    /// `max_bytes` of batch data (at least one batch) and enough batches to
    /// cover `max_records` records.
    ///
    /// # Errors
    /// `OffsetOutOfRange` outside `start..=end`; `Corrupted` if a batch
    /// fails validation (its bytes are not returned).
    pub fn fetch(
        &self,
        offset: u64,
        max_bytes: usize,
        max_records: usize,
        out: &mut Vec<FetchedBatch>,
    ) -> Result<()> {
        self.retry_if_removed(|| self.fetch_once(offset, max_bytes, max_records, out))
    }

    /// Runs a read over a snapshot of the segment list again, with a fresh
    /// snapshot, when it failed because one of the snapshot's segments was
    /// removed meanwhile (retention, compaction): a sealed segment is mapped
    /// on demand, and its files may be gone by then. The next run sees the
    /// new list, or a log start past the offset asked for.
    fn retry_if_removed<T>(&self, mut read: impl FnMut() -> Result<Read<T>>) -> Result<T> {
        let mut attempts = 0;
        loop {
            match read()? {
                Read::Done(t) => return Ok(t),
                Read::Unmappable(seg, e) => {
                    let removed = !self.segments().iter().any(|s| Arc::ptr_eq(s, &seg));
                    attempts += 1;
                    if !removed || attempts >= 8 {
                        return Err(Error::io("map", seg.log.path(), e));
                    }
                }
            }
        }
    }

    fn fetch_once(
        &self,
        offset: u64,
        max_bytes: usize,
        max_records: usize,
        out: &mut Vec<FetchedBatch>,
    ) -> Result<Read<()>> {
        let end = self.end_offset();
        if offset < self.start_offset() || offset > end {
            return Err(self.out_of_range(offset));
        }
        if offset == end {
            return Ok(Read::Done(()));
        }
        let segs = self.segments();
        #[cfg(test)]
        if let Some(f) = self.after_snapshot.lock().as_mut() {
            f();
        }
        let first = segs.partition_point(|s| s.base <= offset).saturating_sub(1);
        let compacted = self.cfg.cleanup_policy != CleanupPolicy::Delete;
        let (mut bytes, mut records, mut want) = (0usize, 0usize, offset);
        // Where the previous segment's batches ended, to check that the next
        // segment starts exactly there.
        let mut prev: Option<(&Arc<Segment>, usize, u64)> = None;
        // Damage ends the fetch: what came before it is returned, and the
        // next fetch, starting at the damage, reports it.
        macro_rules! damaged {
            ($err:expr) => {{
                if !out.is_empty() {
                    return Ok(Read::Done(()));
                }
                return Err($err);
            }};
        }
        // A segment that cannot be mapped ends the fetch the same way; the
        // caller decides whether it was removed meanwhile.
        macro_rules! mapped {
            ($seg:expr, $part:expr) => {
                match $seg.view($part) {
                    Ok(v) => v,
                    Err(_) if !out.is_empty() => return Ok(Read::Done(())),
                    Err(e) => return Ok(Read::Unmappable($seg.clone(), e)),
                }
            };
        }
        for (i, seg) in segs.iter().enumerate().skip(first) {
            if let Some((p, ppos, reached)) = prev {
                if reached != seg.base {
                    let kind = CorruptionKind::OffsetOutOfOrder {
                        expected: reached,
                        found: seg.base,
                    };
                    damaged!(Error::corrupted(
                        p.log.path(),
                        ppos as u64,
                        Some(reached),
                        kind
                    ));
                }
            }
            let data = mapped!(seg, Part::Log);
            let mut pos = if i == first {
                match seg.position_for(&data, offset) {
                    Ok(p) => p as usize,
                    Err(e) if out.is_empty() => return Ok(Read::Unmappable(seg.clone(), e)),
                    Err(_) => return Ok(Read::Done(())),
                }
            } else {
                0
            };
            // The base offset the next batch must have: exact, unless
            // compaction may have removed whole batches. Unknown for a
            // batch found through the index (the index check vouches for it).
            let mut expected = (pos == 0).then_some(seg.base);
            let mut reached = seg.base;
            while pos < data.len() {
                // Every batch walked over is validated, CRC included, so that
                // a damaged header can never make records silently vanish.
                let h = match decode_batch(&data[pos..]) {
                    Ok(h) => h,
                    Err(e) => damaged!(self.corrupted(seg, pos, want, e)),
                };
                // A batch's bytes are published before the end offset moves
                // past it: never return more than the end read above, so
                // that a reader's position can never pass the end offset.
                if h.base_offset >= end {
                    return Ok(Read::Done(()));
                }
                let in_order = match expected {
                    Some(e) if compacted => h.base_offset >= e,
                    Some(e) => h.base_offset == e,
                    None => h.base_offset >= seg.base,
                };
                if !in_order || h.next_offset() - seg.base > u64::from(u32::MAX) + 1 {
                    let kind = CorruptionKind::OffsetOutOfOrder {
                        expected: expected.unwrap_or(seg.base),
                        found: h.base_offset,
                    };
                    damaged!(Error::corrupted(
                        seg.log.path(),
                        pos as u64,
                        Some(want),
                        kind
                    ));
                }
                expected = Some(h.next_offset());
                reached = h.next_offset();
                let at = pos;
                pos += h.total_len();
                if h.next_offset() <= want {
                    continue;
                }
                out.push(FetchedBatch {
                    segment: seg.clone(),
                    log: data.clone(),
                    pos: at,
                    header: h,
                });
                bytes += h.total_len();
                records += h.record_count as usize;
                want = h.next_offset();
                if bytes >= max_bytes || records >= max_records {
                    return Ok(Read::Done(()));
                }
            }
            prev = Some((seg, pos, reached));
        }
        Ok(Read::Done(()))
    }

    /// The first offset at or after the log start whose record timestamp is
    /// `>= ts`, if any (Kafka's `offsetsForTimes`).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<u64>> {
        self.retry_if_removed(|| self.offset_for_timestamp_once(ts))
    }

    fn offset_for_timestamp_once(&self, ts: i64) -> Result<Read<Option<u64>>> {
        let start = self.start_offset();
        for seg in self.segments().iter() {
            if seg.max_timestamp() < ts || seg.next_offset() <= start {
                continue;
            }
            let mapped = |r: std::io::Result<u64>| r.map_err(|e| Read::Unmappable(seg.clone(), e));
            let data = match seg.view(Part::Log) {
                Ok(v) => v,
                Err(e) => return Ok(Read::Unmappable(seg.clone(), e)),
            };
            let located = mapped(seg.time_scan_start(ts)).and_then(|from| {
                let from = from.max(start);
                mapped(seg.position_for(&data, from)).map(|pos| (from, pos as usize))
            });
            let (from, mut pos) = match located {
                Ok(l) => l,
                Err(r) => return Ok(r),
            };
            while pos < data.len() {
                let h =
                    decode_batch(&data[pos..]).map_err(|e| self.corrupted(seg, pos, from, e))?;
                if h.next_offset() > from && h.max_timestamp >= ts {
                    let bad =
                        |k| Error::corrupted(seg.log.path(), pos as u64, Some(h.base_offset), k);
                    let batch = &data[pos..pos + h.total_len()];
                    let section = records_section(&h, batch).map_err(bad)?;
                    for r in RecordIter::new(&h, &section) {
                        let r = r.map_err(bad)?;
                        let off = h.base_offset + u64::from(r.offset_delta);
                        if off >= from && h.base_timestamp.wrapping_add(r.timestamp_delta) >= ts {
                            return Ok(Read::Done(Some(off)));
                        }
                    }
                }
                pos += h.total_len();
            }
        }
        Ok(Read::Done(None))
    }

    /// Registers a signal fired by the next append (or deletion).
    pub fn add_waiter(&self, s: &Arc<Signal>) {
        let mut w = self.waiters.lock();
        w.push(s.clone());
        self.has_waiters.store(true, Ordering::SeqCst);
    }

    pub fn remove_waiter(&self, s: &Arc<Signal>) {
        let mut w = self.waiters.lock();
        w.retain(|x| !Arc::ptr_eq(x, s));
        if w.is_empty() {
            self.has_waiters.store(false, Ordering::SeqCst);
        }
    }

    /// Fires every registered waiter; returns whether there was any.
    fn wake(&self) -> bool {
        // Pairs with `add_waiter`: the end offset is stored (SeqCst) before
        // this load, and a waiter re-reads the end offset after storing the
        // flag, so either it sees the data or we see it waiting.
        if self.has_waiters.load(Ordering::SeqCst) {
            let waiters = self.waiters.lock();
            for s in waiters.iter() {
                s.fire();
            }
            return !waiters.is_empty();
        }
        false
    }
}
