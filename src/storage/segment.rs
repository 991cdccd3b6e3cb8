//! One segment: a `.log` file of batches with its sparse `.index` and
//! `.timeindex`, read through mappings.
//!
//! The active segment's files stay mapped. Once sealed, a segment's
//! mappings are made on demand and may be dropped again: the log's
//! [`MapCache`] keeps at most a set number of sealed segments mapped and
//! unmaps the least recently read ones beyond it. Readers hold [`View`]s,
//! which keep the mapping they read alive.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use super::mapped::{MappedFile, View};
use crate::error::{io_err, Result};
use crate::format::batch::{peek_header, BatchHeader, Version};
use crate::format::index::{
    lookup_offset, lookup_time, OffsetEntry, TimeEntry, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN,
};
use crate::io::FileSystem;
use crate::storage::cursor::IndexCursor;

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";
/// A segment's aborted-transaction index (Kafka's `.txnindex`), present
/// only once a transaction was aborted in the segment.
pub(crate) const TXN_INDEX_EXT: &str = "txnindex";
/// A producer-state snapshot, named by the offset it describes.
pub(crate) const SNAPSHOT_EXT: &str = "snapshot";

/// `<dir>/<20-digit base offset>.<ext>`.
pub(crate) fn segment_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// Parses a segment file name into its base offset, if it is one.
pub(crate) fn parse_segment_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Index capacities for a segment, from the topic's `segment_index_bytes`.
pub(crate) fn index_capacities(segment_index_bytes: u64) -> (u64, u64) {
    let entries = segment_index_bytes / OFFSET_ENTRY_LEN as u64;
    // One more time entry than offset entries: the seal entry.
    (
        entries * OFFSET_ENTRY_LEN as u64,
        (entries + 1) * TIME_ENTRY_LEN as u64,
    )
}

/// One of a segment's three files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Log,
    Offsets,
    Times,
}

/// Bounds how many sealed segments a log keeps mapped. Each mapped segment
/// costs three entries of the process's memory map (Linux allows 65,530 by
/// default) and keeps the pages read through it counted in the resident
/// set; unmapping the least recently read ones keeps both bounded however
/// many segments the log holds.
pub(crate) struct MapCache {
    fs: Arc<dyn FileSystem>,
    limit: usize,
    /// Advanced at each admission; a read stamps its segment with it.
    clock: AtomicU64,
    /// Sealed segments holding mappings, in no particular order.
    mapped: Mutex<Vec<Weak<Segment>>>,
}

impl std::fmt::Debug for MapCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapCache")
            .field("limit", &self.limit)
            .field("mapped", &self.mapped.lock().len())
            .finish_non_exhaustive()
    }
}

impl MapCache {
    /// A cache keeping at most `limit` sealed segments mapped (at least 1).
    pub fn new(fs: Arc<dyn FileSystem>, limit: usize) -> MapCache {
        MapCache {
            fs,
            limit: limit.max(1),
            clock: AtomicU64::new(1),
            mapped: Mutex::new(Vec::new()),
        }
    }

    /// How many sealed segments are registered as mapped.
    pub fn mapped_segments(&self) -> usize {
        let mut m = self.mapped.lock();
        m.retain(|w| w.strong_count() > 0);
        m.len()
    }

    /// Registers a segment that has just been mapped, unmapping the least
    /// recently read ones if that puts the cache over its limit. Evicts
    /// down to seven eighths of the limit, so that a reader sweeping over
    /// many segments pays for the sort once every `limit / 8` admissions.
    fn admit(&self, seg: Weak<Segment>) {
        self.clock.fetch_add(1, Ordering::Relaxed);
        let mut m = self.mapped.lock();
        m.push(seg);
        if m.len() <= self.limit {
            return;
        }
        let mut live: Vec<(u64, Arc<Segment>)> = m
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| (s.last_used.load(Ordering::Relaxed), s))
            .collect();
        if live.len() > self.limit {
            let keep = self.limit - self.limit / 8;
            live.sort_by_key(|(t, _)| *t);
            let evict = live.len() - keep.max(1);
            for (_, s) in live.drain(..evict) {
                s.unmap();
            }
        }
        *m = live.iter().map(|(_, s)| Arc::downgrade(s)).collect();
    }
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base: u64,
    /// The layout of the segment's batches and indexes: v2 for every
    /// segment this build creates, v1 for one written by an older build.
    pub version: Version,
    pub log: MappedFile,
    pub offsets: MappedFile,
    pub times: MappedFile,
    /// One past the last offset stored in this segment.
    next_offset: AtomicU64,
    /// The largest record timestamp in the segment (`i64::MIN` if empty).
    max_ts: AtomicI64,
    /// Set when the segment is sealed: from then on its mappings are made
    /// on demand, through this cache.
    cache: OnceLock<Arc<MapCache>>,
    /// The cache's clock at the last read.
    last_used: AtomicU64,
    /// Whether the cache counts this segment as mapped. Its lock also
    /// serializes mapping against unmapping.
    registered: Mutex<bool>,
}

impl Segment {
    /// Creates the three empty files of a new active segment.
    pub fn create(
        fs: &dyn FileSystem,
        dir: &Path,
        base: u64,
        log_capacity: u64,
        segment_index_bytes: u64,
    ) -> io::Result<Segment> {
        let (oc, tc) = index_capacities(segment_index_bytes);
        Ok(Segment {
            base,
            version: Version::V2,
            log: MappedFile::create(fs, &segment_path(dir, base, LOG_EXT), log_capacity)?,
            offsets: MappedFile::create(fs, &segment_path(dir, base, INDEX_EXT), oc)?,
            times: MappedFile::create(fs, &segment_path(dir, base, TIME_INDEX_EXT), tc)?,
            next_offset: AtomicU64::new(base),
            max_ts: AtomicI64::new(i64::MIN),
            cache: OnceLock::new(),
            last_used: AtomicU64::new(0),
            registered: Mutex::new(false),
        })
    }

    /// Assembles a segment from files already validated by recovery.
    pub fn from_parts(
        base: u64,
        version: Version,
        log: MappedFile,
        offsets: MappedFile,
        times: MappedFile,
        next_offset: u64,
        max_ts: i64,
    ) -> Segment {
        Segment {
            base,
            version,
            log,
            offsets,
            times,
            next_offset: AtomicU64::new(next_offset),
            max_ts: AtomicI64::new(max_ts),
            cache: OnceLock::new(),
            last_used: AtomicU64::new(0),
            registered: Mutex::new(false),
        }
    }

    fn file(&self, part: Part) -> &MappedFile {
        match part {
            Part::Log => &self.log,
            Part::Offsets => &self.offsets,
            Part::Times => &self.times,
        }
    }

    /// The published bytes of one of the segment's files, mapping it again
    /// if the cache had unmapped it.
    ///
    /// # Errors
    /// If a sealed file cannot be opened and mapped (for instance because
    /// retention deleted it after the caller took the segment list).
    #[inline]
    pub fn view(self: &Arc<Self>, part: Part) -> io::Result<View> {
        let cache = self.cache.get();
        if let Some(c) = cache {
            self.last_used
                .store(c.clock.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let file = self.file(part);
        if let Some(v) = file.try_view() {
            return Ok(v);
        }
        // Looked up again: a roll may have handed this segment to the
        // cache since the first look, and the cache unmapped it.
        let Some(cache) = self.cache.get() else {
            return file.view();
        };
        let (view, newly_registered) = {
            let mut registered = self.registered.lock();
            let view = file.remap(&*cache.fs)?;
            (view, !std::mem::replace(&mut *registered, true))
        };
        // Outside the segment's lock: the cache may unmap other segments.
        if newly_registered {
            cache.admit(Arc::downgrade(self));
        }
        Ok(view)
    }

    /// Hands a sealed segment to the map cache: its descriptors are closed
    /// and its mappings are made on demand from now on. `keep_mapped`
    /// leaves the current mappings in place (counted by the cache): right
    /// after a roll, readers are likely still reading the segment.
    pub fn make_lazy(self: &Arc<Self>, cache: &Arc<MapCache>, keep_mapped: bool) {
        self.release_handles();
        if self.cache.set(cache.clone()).is_err() {
            return;
        }
        if keep_mapped {
            let mut registered = self.registered.lock();
            if [&self.log, &self.offsets, &self.times]
                .iter()
                .any(|f| f.is_mapped())
            {
                *registered = true;
                drop(registered);
                cache.admit(Arc::downgrade(self));
            }
        } else {
            self.unmap();
        }
    }

    /// Drops the three mappings (views keep theirs). Sealed segments only.
    pub fn unmap(&self) {
        let mut registered = self.registered.lock();
        for f in [&self.log, &self.offsets, &self.times] {
            f.unmap();
        }
        *registered = false;
    }

    /// Whether any of the three files holds a mapping.
    #[cfg(test)]
    pub fn is_mapped(&self) -> bool {
        [&self.log, &self.offsets, &self.times]
            .iter()
            .any(|f| f.is_mapped())
    }

    #[inline]
    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    #[inline]
    pub fn max_timestamp(&self) -> i64 {
        self.max_ts.load(Ordering::Acquire)
    }

    /// Bytes on disk across the three files.
    pub fn size_bytes(&self) -> u64 {
        self.log.len() + self.offsets.len() + self.times.len()
    }

    /// Records an appended batch. Writer only; call after publishing the
    /// batch's bytes.
    pub fn note_append(&self, next_offset: u64, max_ts: i64) {
        if max_ts > self.max_ts.load(Ordering::Relaxed) {
            self.max_ts.store(max_ts, Ordering::Release);
        }
        self.next_offset.store(next_offset, Ordering::Release);
    }

    /// Whether the offset index has room for another entry.
    pub fn index_has_room(&self) -> bool {
        self.offsets.len() + OFFSET_ENTRY_LEN as u64 <= self.offsets.capacity()
            && self.times.len() + 2 * TIME_ENTRY_LEN as u64 <= self.times.capacity()
    }

    /// The last time entry of a segment whose files are mapped (the active
    /// one).
    pub fn last_time_entry(&self) -> io::Result<Option<TimeEntry>> {
        let times = self.times.view()?;
        let n = times.len() / TIME_ENTRY_LEN;
        Ok(n.checked_sub(1)
            .and_then(|i| crate::format::index::time_entry(&times, i, self.version)))
    }

    /// Appends index entries. Writer only.
    pub fn push_offset_entry(&self, e: OffsetEntry) -> io::Result<()> {
        let end = self.offsets.write_unpublished(&e.encode(self.version))?;
        self.offsets.publish(end);
        Ok(())
    }

    pub fn push_time_entry(&self, e: TimeEntry) -> io::Result<()> {
        let end = self.times.write_unpublished(&e.encode(self.version))?;
        self.times.publish(end);
        Ok(())
    }

    /// After an append of `written` bytes has been published: gets the log
    /// and both indexes ready for the next appends (see
    /// [`MappedFile::prepare_ahead`]). An index takes an entry every few
    /// KiB of log, so without this its next page would be faulted in
    /// between some record's timestamp and its publication. Writer only.
    /// An index is looked at only after an append that wrote to it.
    ///
    /// When this append woke a reader and there is slow work to do, the
    /// writer first yields its CPU: the scheduler often puts the woken
    /// reader on the writer's CPU, where it would otherwise wait out the
    /// `madvise` (hundreds of µs to ms) before it can read the record.
    ///
    /// Returns whether zeros were written ahead in the log, which the
    /// caller must then fdatasync.
    #[must_use = "zeros written ahead must be synced"]
    pub fn prepare_ahead(
        &self,
        written: usize,
        offset_entry: bool,
        time_entry: bool,
        woke: bool,
    ) -> bool {
        if woke && self.log.prepare_due(self.log.len(), written) {
            std::thread::yield_now();
        }
        let zeroed = self.log.prepare_ahead(self.log.len(), written);
        if offset_entry {
            let _ = self
                .offsets
                .prepare_ahead(self.offsets.len(), OFFSET_ENTRY_LEN);
        }
        if time_entry {
            let _ = self.times.prepare_ahead(self.times.len(), TIME_ENTRY_LEN);
        }
        zeroed
    }

    /// Byte position in `log` (this segment's log, as viewed) from which
    /// to scan for `offset`: the batch that may hold it, found through the
    /// index, or the segment start.
    ///
    /// v1 entries name a batch's first offset: the last entry at or below
    /// `offset` is a batch to start at. v2 entries (Kafka's) name a batch's
    /// last offset: the last entry *below* `offset` names a batch that ends
    /// before it, so the scan starts right after that batch (its header
    /// read, not its records) instead of walking, and CRC-checking, a
    /// whole batch the reader does not want.
    pub fn position_for(self: &Arc<Self>, log: &[u8], offset: u64) -> io::Result<u64> {
        self.start_for(log, offset).map(|(pos, _)| pos)
    }

    /// [`position_for`](Self::position_for), with the offset the batch at
    /// that position must start at when the index tells it: the segment's
    /// base at position 0, and for v2 the next offset of the batch the
    /// entry named (so a damaged base offset there is caught, not read as
    /// a batch still being appended).
    pub fn start_for(self: &Arc<Self>, log: &[u8], offset: u64) -> io::Result<(u64, Option<u64>)> {
        let rel = u32::try_from(offset.saturating_sub(self.base)).unwrap_or(u32::MAX);
        let offsets = self.view(Part::Offsets)?;
        let n = offsets.len() / OFFSET_ENTRY_LEN;
        let found = match self.version {
            Version::V1 => lookup_offset(&offsets, n, rel, self.version),
            Version::V2 => match rel.checked_sub(1) {
                Some(below) => lookup_offset(&offsets, n, below, self.version),
                None => None,
            },
        };
        let start = (0, Some(self.base));
        let Some(e) = found else {
            return Ok(start);
        };
        Ok(match log.get(e.pos as usize..).map(peek_header) {
            // An entry that disagrees with the log is ignored; the scan from
            // the start is slower but correct. Recovery rebuilds such an
            // index on the next open.
            Some(Ok(h)) if entry_matches(self.version, &h, self.base, e) => match self.version {
                // The entry vouches for the batch it names.
                Version::V1 => (u64::from(e.pos), None),
                Version::V2 => (
                    u64::from(e.pos) + h.total_len() as u64,
                    Some(h.next_offset()),
                ),
            },
            _ => start,
        })
    }

    /// The offset from which a scan for the first record with timestamp
    /// `>= ts` may start.
    pub fn time_scan_start(self: &Arc<Self>, ts: i64) -> io::Result<u64> {
        let times = self.view(Part::Times)?;
        let n = times.len() / TIME_ENTRY_LEN;
        Ok(match lookup_time(&times, n, ts, self.version) {
            Some(e) => self.base + u64::from(e.rel),
            None => self.base,
        })
    }

    /// Closes the three files' descriptors, keeping their mappings: the
    /// segment is sealed and from now on only read.
    pub fn release_handles(&self) {
        for f in [&self.log, &self.offsets, &self.times] {
            f.release_handle();
        }
    }

    /// Paths of the three files.
    pub fn paths(&self) -> [PathBuf; 3] {
        [
            self.log.path().to_owned(),
            self.offsets.path().to_owned(),
            self.times.path().to_owned(),
        ]
    }

    /// Seals the segment: the final time entry (the cursor's, FORMAT.md
    /// §4.2), then every file cut to its real size and synced. Writer only.
    pub fn seal(&self, sync: bool, cursor: &mut IndexCursor) -> io::Result<()> {
        let rel = u32::try_from(self.next_offset() - self.base).map_err(io::Error::other)?;
        if let Some(e) = cursor.seal_entry(rel) {
            if self.last_time_entry()?.is_none_or(|last| last.rel < e.rel) {
                self.push_time_entry(e)?;
            }
        }
        for f in [&self.log, &self.offsets, &self.times] {
            f.trim()?;
            if sync {
                f.sync()?;
            }
        }
        Ok(())
    }
}

/// Whether offset entry `e` of a segment with base `base` names the batch
/// whose header is `h`: v1 entries hold a batch's first offset, v2 entries
/// (Kafka's) its last.
pub(crate) fn entry_matches(version: Version, h: &BatchHeader, base: u64, e: OffsetEntry) -> bool {
    let want = base + u64::from(e.rel);
    h.version == version
        && match version {
            Version::V1 => h.base_offset == want,
            Version::V2 => h.last_offset() == want,
        }
}

/// Removes a segment's files, those that exist: the log, its indexes and
/// its aborted-transaction index.
pub(crate) fn remove_segment_files(fs: &dyn FileSystem, dir: &Path, base: u64) -> Result<()> {
    for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT] {
        let p = segment_path(dir, base, ext);
        if fs.exists(&p) {
            fs.remove_file(&p).map_err(io_err("remove", &p))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twenty_digits() {
        let p = segment_path(Path::new("/x"), 42, LOG_EXT);
        assert_eq!(p, Path::new("/x/00000000000000000042.log"));
        assert_eq!(
            parse_segment_name("00000000000000000042.log", LOG_EXT),
            Some(42)
        );
        assert_eq!(parse_segment_name("42.log", LOG_EXT), None);
        assert_eq!(
            parse_segment_name("00000000000000000042.index", LOG_EXT),
            None
        );
        assert_eq!(
            parse_segment_name("0000000000000000004x.log", LOG_EXT),
            None
        );
    }
}
