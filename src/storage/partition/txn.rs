//! A partition's side of exactly-once: producer state (rebuilt at open
//! from the newest snapshot and the batches after it), snapshots at roll
//! and close, the aborted-transaction index (`.txnindex` per segment, and
//! all of it in memory), transaction markers, and the last stable offset.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::{Partition, Writer};
use crate::error::{io_err, CorruptionKind, Error, Result};
use crate::format::batch::v2::{parse_control_key, ControlType};
use crate::format::batch::{records_section, BatchHeader, EncodedBatch, RecordIter};
use crate::format::txn::{decode_snapshot, encode_snapshot, AbortedTxn, ABORTED_TXN_LEN};
use crate::io::OpenMode;
use crate::storage::partition::read::FetchedBatch;
use crate::storage::producers::{Check, Completed, ProducerState};
use crate::storage::segment::{parse_segment_name, segment_path, SNAPSHOT_EXT, TXN_INDEX_EXT};
/// Appended bytes between snapshots of the active segment (besides the
/// ones at roll and close): bounds what an open after a crash replays.
const SNAPSHOT_EVERY_BYTES: u64 = 16 << 20;
/// How many snapshots a partition keeps (the newest; older ones are only
/// needed if a newer one is torn).
const SNAPSHOTS_KEPT: usize = 3;
/// Producers idle longer than this are forgotten (Kafka's
/// `producer.id.expiration.ms`, one day), unless a transaction is open.
pub(crate) const PRODUCER_EXPIRATION_MS: i64 = 24 * 3600 * 1000;

/// What rebuilding producer state at open found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rebuilt {
    /// Batches replayed after the snapshot.
    pub replayed: u64,
    /// Snapshots that failed their checks and were removed.
    pub bad_snapshots: u64,
}

impl Partition {
    fn snapshot_path(&self, offset: u64) -> PathBuf {
        segment_path(&self.dir, offset, SNAPSHOT_EXT)
    }

    /// The last stable offset: no record at or above it belongs to an open
    /// transaction. Never below the log start (retention may delete an
    /// open transaction's first batches) nor above the end.
    #[inline]
    pub fn last_stable_offset(&self) -> u64 {
        let end = self.end_offset();
        let fu = self.first_unstable.load(Ordering::Acquire);
        fu.min(end).max(self.start_offset()).min(end)
    }

    /// Publishes the first unstable offset after producer state changed.
    pub(super) fn publish_unstable(&self, w: &Writer) {
        let fu = w.producers.first_unstable().unwrap_or(u64::MAX);
        self.first_unstable.store(fu, Ordering::Release);
    }

    /// The aborted transactions that overlap `[from, to)`, ordered by their
    /// markers' offsets.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        let list = self.aborted.read();
        let at = list.partition_point(|a| a.last_offset < from);
        let mut out = Vec::new();
        for a in &list[at..] {
            if a.first_offset < to {
                out.push(*a);
            }
            // Every later entry's transaction started at or after this one's
            // last stable offset.
            if a.last_stable_offset >= to {
                break;
            }
        }
        out
    }

    /// Whether any transaction ever aborted here is still indexed.
    pub fn has_aborted(&self) -> bool {
        !self.aborted.read().is_empty()
    }

    /// Checks producer batches from outside against the producers' state
    /// as if appended one after the other, before any is: a retry, a gap
    /// or a stale epoch in a later batch then refuses the whole input.
    /// (An append of the same producer from elsewhere in between can
    /// still refuse a later batch at its own append.)
    pub fn precheck_producer_batches(&self, headers: &[BatchHeader]) -> Result<()> {
        let w = self.writer.lock();
        let mut sim = ProducerState::default();
        for h in headers.iter().filter(|h| h.producer_id >= 0) {
            if sim.get(h.producer_id).is_none() {
                if let Some(e) = w.producers.get(h.producer_id) {
                    sim.insert_entry(h.producer_id, e.clone());
                }
            }
        }
        let mut next = w.next_offset;
        drop(w);
        for h in headers.iter().filter(|h| h.producer_id >= 0) {
            let mut h = *h;
            h.base_offset = next;
            match sim.check(&h) {
                Ok(Check::Append) => {
                    sim.apply_batch(&h, 0);
                    next = next.saturating_add(u64::from(h.last_offset_delta) + 1);
                }
                Ok(Check::Duplicate { .. }) => {}
                Err(r) => return Err(self.refused(r)),
            }
        }
        Ok(())
    }

    /// The open transactions: (producer id, epoch, first offset).
    pub fn open_transactions(&self) -> Vec<(i64, i16, u64)> {
        self.writer.lock().producers.ongoing()
    }

    /// The next sequence of `producer_id` at `epoch` here, and whether
    /// the producer's state here knows its epoch as current.
    pub fn producer_epoch(&self, producer_id: i64) -> Option<i16> {
        self.writer
            .lock()
            .producers
            .get(producer_id)
            .map(|e| e.epoch)
    }

    /// Appends a COMMIT or ABORT marker for `producer_id` at `epoch`, if
    /// the producer has a transaction open here (a marker written again
    /// after a crash changes nothing). Returns whether one was written.
    pub fn append_marker(&self, producer_id: i64, epoch: i16, kind: ControlType) -> Result<bool> {
        let now = self.shared.clock.now_ms();
        let mut batch = EncodedBatch::marker(producer_id, epoch, kind, now)
            .map_err(|e| self.poison("encode a marker for", &self.dir, e))?;
        let appended = self.append_checked(&mut batch, Some(kind))?;
        Ok(!appended.duplicate)
    }

    /// Records what a marker ended: the transaction's end moves the LSO,
    /// and an aborted one goes into the index (file and memory).
    /// Returns whether an entry went into the `.txnindex` of the segment
    /// based at `base` (the active one).
    pub(super) fn on_completed(&self, base: u64, c: Completed, kind: ControlType) -> Result<bool> {
        if kind != ControlType::Abort {
            return Ok(false);
        }
        let entry = c.aborted();
        let path = segment_path(&self.dir, base, TXN_INDEX_EXT);
        append_txn_entry(self, &path, &entry)?;
        self.aborted.write().push(entry);
        Ok(true)
    }

    /// After an append of `len` bytes ending at `next`: every
    /// [`SNAPSHOT_EVERY_BYTES`] (or quarter segment, if less) a snapshot, so that an open after a crash
    /// replays at most that much, whatever the segment size. Not synced
    /// (if a power cut loses it, an older one is used); the active
    /// segment's `.txnindex` is synced first, since the replay from it
    /// will not rebuild the entries below it.
    pub(super) fn maybe_snapshot(&self, w: &mut Writer, len: u64, next: u64) -> Result<()> {
        w.since_snapshot += len;
        // A quarter segment, for small segments.
        let every = SNAPSHOT_EVERY_BYTES.min(self.roll_bytes.load(Ordering::Relaxed) / 4);
        if w.since_snapshot < every || self.shared.no_sync {
            return Ok(());
        }
        if w.txn_index_dirty {
            self.sync_txn_index(w.active.base)?;
            w.txn_index_dirty = false;
        }
        self.write_snapshot(w, next, false)
    }

    /// Writes a producer-state snapshot at `offset` (the state as of that
    /// offset), syncing it if `sync` (and the log syncs at all), and
    /// removes the oldest beyond the few kept. Called under the append
    /// lock.
    pub(super) fn write_snapshot(&self, w: &mut Writer, offset: u64, sync: bool) -> Result<()> {
        w.since_snapshot = 0;
        if self.shared.no_sync {
            // A log that does not sync (a temporary one) is never reopened.
            return Ok(());
        }
        let now = self.shared.clock.now_ms();
        w.producers
            .expire(now.saturating_sub(PRODUCER_EXPIRATION_MS));
        let bytes = encode_snapshot(&w.producers.snapshot());
        let path = self.snapshot_path(offset);
        let fs = &*self.shared.fs;
        let f = fs
            .open(&path, OpenMode::CreateTruncate)
            .map_err(|e| self.poison("create", &path, e))?;
        f.write_at(&bytes, 0)
            .map_err(|e| self.poison("write", &path, e))?;
        if sync {
            f.sync_data()
                .map_err(|e| self.poison("fdatasync", &path, e))?;
        }
        if w.snapshots.last() != Some(&offset) {
            w.snapshots.push(offset);
        }
        while w.snapshots.len() > SNAPSHOTS_KEPT {
            let old = w.snapshots.remove(0);
            let p = self.snapshot_path(old);
            if fs.exists(&p) {
                fs.remove_file(&p)
                    .map_err(|e| self.poison("remove", &p, e))?;
            }
        }
        Ok(())
    }

    /// Syncs the `.txnindex` of the segment based at `base`, if it has one
    /// (at roll, with the rest of the sealed segment).
    pub(super) fn sync_txn_index(&self, base: u64) -> Result<()> {
        if self.shared.no_sync {
            return Ok(());
        }
        let path = segment_path(&self.dir, base, TXN_INDEX_EXT);
        let fs = &*self.shared.fs;
        if !fs.exists(&path) {
            return Ok(());
        }
        let f = fs
            .open(&path, OpenMode::ReadWrite)
            .map_err(|e| self.poison("open", &path, e))?;
        f.sync_data()
            .map_err(|e| self.poison("fdatasync", &path, e))?;
        // It may be new: its directory entry too.
        fs.sync_dir(&self.dir)
            .map_err(|e| self.poison("sync directory", &self.dir, e))
    }

    /// Forgets index entries and snapshots below the log start (after
    /// retention deleted segments).
    pub fn prune_below_start(&self) {
        let start = self.start_offset();
        self.aborted.write().retain(|a| a.last_offset >= start);
    }

    /// Rebuilds producer state and the aborted-transaction index at open:
    /// loads the newest valid snapshot at or below the end (a damaged one
    /// is removed and the next older tried), reads every `.txnindex` below
    /// it, and replays the batches from there to the end, rewriting the
    /// `.txnindex` files of the replayed segments. Without any snapshot it
    /// replays from the log start, except after a clean shutdown, which
    /// Kafka also trusts: the log then never had producers (a log written
    /// before producer state existed).
    pub fn rebuild_producer_state(&self, clean: bool) -> Result<Rebuilt> {
        let fs = &*self.shared.fs;
        let mut out = Rebuilt::default();
        let end = self.end_offset();
        let start = self.start_offset();
        let names = fs.read_dir(&self.dir).map_err(io_err("list", &self.dir))?;
        let mut snaps: Vec<u64> = names
            .iter()
            .filter_map(|n| parse_segment_name(n, SNAPSHOT_EXT))
            .collect();
        snaps.sort_unstable();
        let mut txn_files: Vec<u64> = names
            .iter()
            .filter_map(|n| parse_segment_name(n, TXN_INDEX_EXT))
            .collect();
        txn_files.sort_unstable();
        // Snapshots past the end describe offsets this log no longer has.
        while snaps.last().is_some_and(|&s| s > end) {
            let s = snaps.pop().expect("checked");
            remove_quietly(self, &self.snapshot_path(s))?;
        }
        let mut state = None;
        while let Some(&s) = snaps.last() {
            let path = self.snapshot_path(s);
            let bytes = fs.read(&path).map_err(io_err("read", &path))?;
            match decode_snapshot(&bytes) {
                Ok(entries) => {
                    state = Some((s, ProducerState::from_snapshot(&entries)));
                    break;
                }
                Err(_) => {
                    out.bad_snapshots += 1;
                    snaps.pop();
                    remove_quietly(self, &path)?;
                }
            }
        }
        let (from, state) = match state {
            Some((s, st)) => (s.max(start), st),
            None if clean => (end, ProducerState::default()),
            None => (start, ProducerState::default()),
        };
        // The index below the replay start comes from the files; the rest
        // is rebuilt by the replay (entries at or past `from` are dropped
        // from the files first, so the replay does not add them twice).
        let keep_below = from.min(end);
        let mut aborted = Vec::new();
        for &base in &txn_files {
            let path = segment_path(&self.dir, base, TXN_INDEX_EXT);
            let bytes = fs.read(&path).map_err(io_err("read", &path))?;
            let mut entries = AbortedTxn::decode_all(&bytes);
            // An entry's marker lies in this file's segment: one that does
            // not (zeros a crash left, say) ends the file there.
            if let Some(bad) = entries.iter().position(|a| a.last_offset < base) {
                entries.truncate(bad);
            }
            entries.retain(|a| a.last_offset < keep_below);
            if entries.is_empty() {
                remove_quietly(self, &path)?;
                continue;
            }
            if entries.len() * ABORTED_TXN_LEN != bytes.len() {
                rewrite_txn_file(self, &path, &entries)?;
            }
            aborted.extend(entries);
        }
        aborted.sort_by_key(|a| a.last_offset);
        *self.aborted.write() = aborted;
        let mut w = self.writer.lock();
        w.producers = state;
        w.snapshots = snaps;
        drop(w);
        if from < end {
            out.replayed = self.replay(from, end)?;
        }
        let w = self.writer.lock();
        self.publish_unstable(&w);
        Ok(out)
    }

    /// Applies the batches of `[from, end)` to producer state.
    fn replay(&self, from: u64, end: u64) -> Result<u64> {
        let mut pos = from;
        let mut batches: Vec<FetchedBatch> = Vec::new();
        let mut n = 0;
        let now = self.shared.clock.now_ms();
        while pos < end {
            batches.clear();
            self.fetch(pos, 1 << 20, usize::MAX, &mut batches)?;
            if batches.is_empty() {
                break;
            }
            for b in &batches {
                let h = &b.header;
                pos = h.next_offset();
                n += 1;
                if h.producer_id < 0 {
                    continue;
                }
                let mut w = self.writer.lock();
                if !h.is_control() {
                    w.producers.apply_batch(h, now);
                    continue;
                }
                let kind = control_kind(b)?;
                if let Some(c) =
                    w.producers
                        .apply_marker(h.producer_id, h.producer_epoch, h.base_offset, now)
                {
                    if let Some(kind) = kind {
                        // The marker's segment is the one the index goes to.
                        if kind == ControlType::Abort {
                            let entry = c.aborted();
                            let path = segment_path(&self.dir, b.segment.base, TXN_INDEX_EXT);
                            append_txn_entry(self, &path, &entry)?;
                            self.aborted.write().push(entry);
                        }
                    }
                }
            }
        }
        Ok(n)
    }
}

/// The type of a control batch's marker (`None`: a control record of
/// another kind, which ends nothing).
pub(crate) fn control_kind(b: &FetchedBatch) -> Result<Option<ControlType>> {
    let h = &b.header;
    let bad = |k: CorruptionKind| {
        Error::corrupted(b.segment.log.path(), b.pos as u64, Some(h.base_offset), k)
    };
    let section = records_section(h, b.bytes()).map_err(bad)?;
    let first = RecordIter::new(h, &section).next();
    match first {
        Some(Ok(r)) => Ok(r.key.and_then(parse_control_key)),
        Some(Err(k)) => Err(bad(k)),
        None => Ok(None),
    }
}

fn append_txn_entry(p: &Partition, path: &std::path::Path, entry: &AbortedTxn) -> Result<()> {
    let fs = &*p.shared.fs;
    let f = if fs.exists(path) {
        fs.open(path, OpenMode::ReadWrite)
    } else {
        fs.open(path, OpenMode::CreateTruncate)
    }
    .map_err(|e| p.poison("open", path, e))?;
    let len = f.len().map_err(|e| p.poison("stat", path, e))?;
    // A torn entry at the end (a crash mid-write) is overwritten.
    let at = len - len % ABORTED_TXN_LEN as u64;
    f.write_at(&entry.encode(), at)
        .map_err(|e| p.poison("write", path, e))
}

fn rewrite_txn_file(p: &Partition, path: &std::path::Path, entries: &[AbortedTxn]) -> Result<()> {
    let f = p
        .shared
        .fs
        .open(path, OpenMode::ReadWrite)
        .map_err(io_err("open", path))?;
    f.set_len((entries.len() * ABORTED_TXN_LEN) as u64)
        .map_err(io_err("truncate", path))
}

fn remove_quietly(p: &Partition, path: &std::path::Path) -> Result<()> {
    let fs = &*p.shared.fs;
    if fs.exists(path) {
        fs.remove_file(path).map_err(io_err("remove", path))?;
    }
    Ok(())
}

/// Steps over the batches of aborted transactions, in offset order, with
/// the partition's aborted index, as Kafka's client does (`CompletedFetch`):
/// for `ReadCommitted` reads and for compaction, which drops them.
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

    /// Whether the batch `h` belongs to an aborted transaction and is
    /// skipped. Must be called for every batch, in order (markers end a
    /// transaction); `kind` reads a control batch's marker type.
    pub fn skip(
        &mut self,
        h: &BatchHeader,
        kind: impl FnOnce() -> Result<Option<ControlType>>,
    ) -> Result<bool> {
        while let Some(a) = self.upcoming.get(self.next) {
            if a.first_offset > h.last_offset() {
                break;
            }
            self.active.insert(a.producer_id);
            self.next += 1;
        }
        if h.is_control() {
            if self.active.contains(&h.producer_id) && kind()? == Some(ControlType::Abort) {
                self.active.remove(&h.producer_id);
            }
            return Ok(false);
        }
        Ok(h.is_transactional() && self.active.contains(&h.producer_id))
    }
}
