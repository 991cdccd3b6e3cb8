//! One segment: a `.log` file of batches with its sparse `.index` and
//! `.timeindex`, all three mapped.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::mapped::MappedFile;
use crate::format::batch::peek_header;
use crate::format::index::{
    lookup_offset, lookup_time, OffsetEntry, TimeEntry, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN,
};
use crate::io::FileSystem;

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";

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

#[derive(Debug)]
pub(crate) struct Segment {
    pub base: u64,
    pub log: MappedFile,
    pub offsets: MappedFile,
    pub times: MappedFile,
    /// One past the last offset stored in this segment.
    next_offset: AtomicU64,
    /// The largest record timestamp in the segment (`i64::MIN` if empty).
    max_ts: AtomicI64,
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
            log: MappedFile::create(fs, &segment_path(dir, base, LOG_EXT), log_capacity)?,
            offsets: MappedFile::create(fs, &segment_path(dir, base, INDEX_EXT), oc)?,
            times: MappedFile::create(fs, &segment_path(dir, base, TIME_INDEX_EXT), tc)?,
            next_offset: AtomicU64::new(base),
            max_ts: AtomicI64::new(i64::MIN),
        })
    }

    /// Assembles a segment from files already validated by recovery.
    pub fn from_parts(
        base: u64,
        log: MappedFile,
        offsets: MappedFile,
        times: MappedFile,
        next_offset: u64,
        max_ts: i64,
    ) -> Segment {
        Segment {
            base,
            log,
            offsets,
            times,
            next_offset: AtomicU64::new(next_offset),
            max_ts: AtomicI64::new(max_ts),
        }
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

    pub fn offset_entries(&self) -> usize {
        self.offsets.len() as usize / OFFSET_ENTRY_LEN
    }

    pub fn time_entries(&self) -> usize {
        self.times.len() as usize / TIME_ENTRY_LEN
    }

    /// Whether the offset index has room for another entry.
    pub fn index_has_room(&self) -> bool {
        self.offsets.len() + OFFSET_ENTRY_LEN as u64 <= self.offsets.capacity()
            && self.times.len() + 2 * TIME_ENTRY_LEN as u64 <= self.times.capacity()
    }

    pub fn last_time_entry(&self) -> Option<TimeEntry> {
        let n = self.time_entries();
        n.checked_sub(1)
            .and_then(|i| crate::format::index::time_entry(self.times.bytes(), i))
    }

    /// Appends index entries. Writer only.
    pub fn push_offset_entry(&self, e: OffsetEntry) -> io::Result<()> {
        let end = self.offsets.write_unpublished(&e.encode())?;
        self.offsets.publish(end);
        Ok(())
    }

    pub fn push_time_entry(&self, e: TimeEntry) -> io::Result<()> {
        let end = self.times.write_unpublished(&e.encode())?;
        self.times.publish(end);
        Ok(())
    }

    /// Byte position from which to scan for `offset`: the indexed batch at
    /// or before it, or the segment start.
    pub fn position_for(&self, offset: u64) -> u64 {
        let rel = u32::try_from(offset.saturating_sub(self.base)).unwrap_or(u32::MAX);
        match lookup_offset(self.offsets.bytes(), self.offset_entries(), rel) {
            Some(e) if self.entry_points_at_batch(e) => u64::from(e.pos),
            // An entry that disagrees with the log is ignored; the scan from
            // the start is slower but correct. Recovery rebuilds such an
            // index on the next open.
            _ => 0,
        }
    }

    fn entry_points_at_batch(&self, e: OffsetEntry) -> bool {
        let bytes = self.log.bytes();
        match bytes.get(e.pos as usize..).map(peek_header) {
            Some(Ok(h)) => h.base_offset == self.base + u64::from(e.rel),
            _ => false,
        }
    }

    /// The offset from which a scan for the first record with timestamp
    /// `>= ts` may start.
    pub fn time_scan_start(&self, ts: i64) -> u64 {
        match lookup_time(self.times.bytes(), self.time_entries(), ts) {
            Some(e) => self.base + u64::from(e.rel),
            None => self.base,
        }
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

    /// Seals the segment: the final time entry, then every file cut to its
    /// real size and synced. Writer only.
    pub fn seal(&self, sync: bool) -> io::Result<()> {
        let next = self.next_offset();
        let max_ts = self.max_timestamp();
        let rel = u32::try_from(next - self.base).map_err(io::Error::other)?;
        if next > self.base && self.last_time_entry().is_none_or(|e| e.rel < rel) {
            self.push_time_entry(TimeEntry { ts: max_ts, rel })?;
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
