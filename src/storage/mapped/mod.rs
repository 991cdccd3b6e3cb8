//! A file read and appended through a shared mapping: the only place that
//! makes a slice from a mapping. (`unsafe` is also allowed in `io::std_fs`
//! and `io::sim::file`, which create and write mappings; it is denied
//! everywhere else.)
//!
//! One writer appends past the published length; any number of readers see
//! `[0, published)`, which never changes once published (until the file is
//! dropped). Publication is a release store, reading an acquire load, so a
//! reader that sees a length also sees the bytes below it.
//!
//! Readers take a [`View`]: the published bytes as of that moment, with a
//! counted reference to the mapping. A sealed file's mapping may be dropped
//! ([`unmap`](MappedFile::unmap)) and made again ([`remap`](MappedFile::remap))
//! while views of the old one are still held: the old mapping goes away
//! when the last of them does.

#![allow(
    unsafe_code,
    reason = "the one place that turns a mapping into slices; each block has a SAFETY comment"
)]

use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::io::{FileHandle, FileSystem, Mapping, OpenMode};

/// The smallest block of file space reserved at a time.
const MIN_ALLOCATION: u64 = 256 << 10;
/// The largest block of file space reserved at a time.
const MAX_ALLOCATION: u64 = 64 << 20;
/// Appends at least this large are written with `pwrite` rather than
/// copied into the mapping.
pub(crate) const WRITE_THROUGH_FILE: usize = 16 << 10;
/// How far ahead of small appends the mapping's pages are set up.
const PREFAULT_AHEAD: u64 = 256 << 10;
/// How far ahead of small appends a file whose appends go through it
/// ([`MappedFile::set_small_writes_through_file`]) has zeros written.
/// Measured with 16 writers of 1 KiB records on `EveryWrite`, two runs
/// each: 256 KiB 50.3-51.2 k records/s, 1 MiB 59.0-61.3 k, 4 MiB
/// 61.6-63.9 k, 16 MiB 63.5-65.1 k. Each stretch is written and synced
/// while appends wait, so a longer one stalls longer: p99.9 of a send
/// 1.6-1.7 ms with 1 MiB, 2.6 ms with 4 MiB (p99 about 1 ms either way).
/// Letting the next append's fdatasync carry the zeros instead of
/// syncing them at once changed neither (60.4-63.8 k).
const ZERO_AHEAD: u64 = 4 << 20;
const PAGE: u64 = 4096;

/// The single writer's hold on an appendable file's mapping, taken once
/// when the file becomes the one appended to and kept with the writer's
/// other state (the partition's append lock guards it). It keeps that
/// mapping alive; an appendable file is never unmapped anyway.
pub(crate) struct Appender {
    map: Option<Arc<dyn Mapping>>,
    /// The address of the file it was taken from.
    owner: usize,
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("mapped", &self.map.is_some())
            .finish_non_exhaustive()
    }
}

/// A reader's hold on a file's published bytes. It keeps the mapping
/// alive, so the bytes stay valid after the file is unmapped, sealed,
/// deleted or dropped.
#[derive(Clone)]
pub(crate) struct View {
    map: Option<Arc<dyn Mapping>>,
    /// The mapping's first byte, read once when the view is taken: a
    /// consumer looks at a view for every field of every record, and
    /// `Mapping::as_ptr` is a dynamic call.
    ptr: *const u8,
    len: usize,
}

// SAFETY: `ptr` points into the mapping that `map` holds, which is `Send`
// and `Sync`; the view only ever reads the published bytes through it.
unsafe impl Send for View {}
// SAFETY: as for `Send`.
unsafe impl Sync for View {}

impl Default for View {
    fn default() -> View {
        View {
            map: None,
            ptr: std::ptr::null(),
            len: 0,
        }
    }
}

impl View {
    fn of(map: Option<Arc<dyn Mapping>>, len: usize) -> View {
        let ptr = map.as_ref().map_or(std::ptr::null(), |m| m.as_ptr());
        View { map, ptr, len }
    }

    /// Whether `self` and `other` read the same mapping.
    pub fn same_mapping(&self, other: &View) -> bool {
        match (&self.map, &other.map) {
            (Some(a), Some(b)) => std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)),
            _ => false,
        }
    }
}

impl Deref for View {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.map {
            // SAFETY: `len` was published when the view was taken, so
            // `[0, len)` lies inside the mapping and the file (the writer
            // allocates before it writes and publishes after). Published
            // bytes are never written again, and a file is only cut below
            // its published length by recovery, before anyone reads it.
            // The `Arc` keeps the mapping alive for as long as this view,
            // and `ptr` is its first byte.
            Some(_) if self.len > 0 => unsafe { std::slice::from_raw_parts(self.ptr, self.len) },
            _ => &[],
        }
    }
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("len", &self.len).finish()
    }
}

pub(crate) struct MappedFile {
    path: PathBuf,
    /// The open file, until [`release_handle`](Self::release_handle): a
    /// sealed file is only read, through its mapping, which stays valid
    /// without a descriptor. Releasing keeps a log's open descriptors to
    /// the active segments, however many sealed ones it has.
    file: Mutex<Option<Arc<dyn FileHandle>>>,
    /// The mapping; `None` once [`unmap`](Self::unmap)ped, and for a file
    /// with no capacity.
    map: RwLock<Option<Arc<dyn Mapping>>>,
    /// The capacity the file was mapped with.
    capacity: u64,
    published: AtomicU64,
    /// Bytes of file space reserved. Only the writer changes it.
    allocated: AtomicU64,
    /// The mapping's pages below this were prefaulted (or are known to be
    /// set up). Only the writer uses it; `u64::MAX` turns prefaulting off
    /// (the kernel refused it once).
    prefaulted: AtomicU64,
    /// Small appends go through the file too
    /// ([`set_small_writes_through_file`](Self::set_small_writes_through_file)).
    small_through_file: AtomicBool,
    /// The file's bytes from the published length up to this were written
    /// with zeros by [`prepare_ahead`](Self::prepare_ahead) (files whose
    /// small appends go through the file). Only the writer uses it.
    zeroed: AtomicU64,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("published", &self.published.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl MappedFile {
    /// Creates (truncating) a file with room for `capacity` bytes of
    /// appends.
    pub fn create(fs: &dyn FileSystem, path: &Path, capacity: u64) -> io::Result<Self> {
        let file = fs.open(path, OpenMode::CreateTruncate)?;
        Self::with_file(path, file, capacity, 0)
    }

    /// Opens an existing file whose first `valid` bytes are published and
    /// whose appends may reach `capacity`. Bytes past `valid` are treated as
    /// free space.
    pub fn open(fs: &dyn FileSystem, path: &Path, capacity: u64, valid: u64) -> io::Result<Self> {
        let file = fs.open(path, OpenMode::ReadWrite)?;
        Self::with_file(path, file, capacity, valid)
    }

    /// Opens an existing file and maps all of it, published: a sealed
    /// file, or one recovery is about to scan.
    pub fn open_whole(fs: &dyn FileSystem, path: &Path) -> io::Result<Self> {
        let file = fs.open(path, OpenMode::ReadWrite)?;
        let len = file.len()?;
        Self::with_file(path, file, len, len)
    }

    fn with_file(
        path: &Path,
        file: Arc<dyn FileHandle>,
        capacity: u64,
        valid: u64,
    ) -> io::Result<Self> {
        let len = file.len()?;
        let capacity = capacity.max(valid);
        let map = if capacity == 0 {
            None
        } else {
            Some(Arc::from(
                file.map(usize::try_from(capacity).map_err(io::Error::other)?)?,
            ))
        };
        Ok(MappedFile {
            path: path.to_owned(),
            file: Mutex::new(Some(file)),
            map: RwLock::new(map),
            capacity,
            published: AtomicU64::new(valid),
            allocated: AtomicU64::new(len.min(capacity)),
            prefaulted: AtomicU64::new(valid),
            small_through_file: AtomicBool::new(false),
            zeroed: AtomicU64::new(valid),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The published length.
    #[inline]
    pub fn len(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// The largest size appends may reach.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The published bytes, or `None` if the file is unmapped (see
    /// [`remap`](Self::remap)).
    #[inline]
    pub fn try_view(&self) -> Option<View> {
        let map = self.map.read();
        let len = self.len() as usize;
        match &*map {
            Some(m) => Some(View::of(Some(m.clone()), len)),
            None if self.capacity == 0 || len == 0 => Some(View::default()),
            None => None,
        }
    }

    /// The published bytes of a file that is never unmapped: one being
    /// recovered, built, or appended to.
    ///
    /// # Errors
    /// If the file was unmapped after all.
    #[inline]
    pub fn view(&self) -> io::Result<View> {
        self.try_view()
            .ok_or_else(|| io::Error::other(format!("{} is not mapped", self.path.display())))
    }

    /// Maps a sealed file again after [`unmap`](Self::unmap): opens it,
    /// maps its published bytes and closes it. Returns the view (also when
    /// someone else mapped it first).
    pub fn remap(&self, fs: &dyn FileSystem) -> io::Result<View> {
        let mut map = self.map.write();
        let len = self.len();
        if map.is_none() && len > 0 {
            let file = fs.open(&self.path, OpenMode::ReadWrite)?;
            if file.len()? < len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} is shorter than the {len} bytes it had",
                        self.path.display()
                    ),
                ));
            }
            let cap = usize::try_from(len).map_err(io::Error::other)?;
            *map = Some(Arc::from(file.map(cap)?));
        }
        Ok(View::of(map.clone(), len as usize))
    }

    /// Drops this file's mapping (views already taken keep theirs). Only
    /// for sealed files, which are never written again; a later reader
    /// calls [`remap`](Self::remap).
    pub fn unmap(&self) {
        let old = self.map.write().take();
        drop(old);
    }

    /// Whether the file currently holds a mapping.
    pub fn is_mapped(&self) -> bool {
        self.map.read().is_some()
    }

    /// Writes `data` at the published length without publishing it. Only
    /// the single writer (the partition's append lock holder) calls this.
    ///
    /// Small writes are copied into the mapping: no system call. Writes of
    /// at least [`WRITE_THROUGH_FILE`] bytes go through the file instead
    /// (`pwrite`, same page cache, so readers of the mapping see them):
    /// copying into fresh mapped pages makes the kernel zero each page
    /// first, which halves the bandwidth of large appends. So do small
    /// ones of a file set by
    /// [`set_small_writes_through_file`](Self::set_small_writes_through_file). Either way the
    /// bytes are in the page cache on return and survive a process crash.
    ///
    /// The file space and the mapped pages a small write needs (or, for a
    /// file written through, the zeroed blocks) are normally made ready by
    /// [`prepare_ahead`](Self::prepare_ahead) after the previous append. A
    /// write that outruns it reserves space itself and takes ordinary page
    /// faults (or writes into unwritten blocks).
    pub fn write_unpublished(&self, data: &[u8]) -> io::Result<u64> {
        let map = self.map.read();
        self.write_into(map.as_deref(), data)
    }

    /// The writer's own hold on this file's mapping, for
    /// [`write_with`](Self::write_with).
    pub fn appender(&self) -> Appender {
        Appender {
            map: self.map.read().clone(),
            owner: self as *const Self as usize,
        }
    }

    /// [`write_unpublished`](Self::write_unpublished) through the writer's
    /// own hold on the mapping: no reader lock to take and release on every
    /// append (two locked instructions, on a line readers share).
    ///
    /// # Panics
    /// If `app` was taken from another file.
    #[inline]
    pub fn write_with(&self, app: &Appender, data: &[u8]) -> io::Result<u64> {
        assert_eq!(
            app.owner, self as *const Self as usize,
            "an appender writes only to the file it was taken from"
        );
        self.write_into(app.map.as_deref(), data)
    }

    /// Makes small appends go through the file (`pwrite`) as large ones
    /// do, for a partition that syncs after every append. Each fdatasync
    /// leaves the pages it wrote clean and write-protected, so copying the
    /// next records into the mapping takes a write-protect fault per page
    /// under the append lock, while the writeback's TLB shootdowns
    /// interrupt the other writers' CPUs. Instead of setting up pages,
    /// [`prepare_ahead`](Self::prepare_ahead) then writes zeros ahead, so
    /// that the appends' syncs find written blocks. Measured on
    /// `EveryWrite` against the mapping (before the zeros, when pages were
    /// still set up ahead), three alternating runs each: 16 writers of
    /// 1 KiB 42.3-42.7 k against 30.4-39.2 k records/s, of 100 B
    /// 72.1-74.2 k against 71.1-72.9 k; one writer 7.5-7.7 k against
    /// 7.2-7.3 k. Without syncs the mapping stays faster: no system call
    /// per append.
    pub fn set_small_writes_through_file(&self, on: bool) {
        self.small_through_file.store(on, Ordering::Relaxed);
    }

    /// Whether small appends go through the file (tests).
    #[cfg(test)]
    pub fn small_writes_through_file(&self) -> bool {
        self.small_through_file.load(Ordering::Relaxed)
    }

    fn write_into(&self, map: Option<&dyn Mapping>, data: &[u8]) -> io::Result<u64> {
        let start = self.len();
        let end = start + data.len() as u64;
        let Some(map) = map else {
            return Err(io::Error::other("file is not mapped for appends"));
        };
        if end > map.capacity() as u64 {
            return Err(io::Error::other("append beyond the mapped capacity"));
        }
        self.reserve(end)?;
        if data.len() >= WRITE_THROUGH_FILE || self.small_through_file.load(Ordering::Relaxed) {
            self.handle()?.write_at(data, start)?;
        } else {
            // SAFETY: `[start, end)` is within capacity (checked above) and
            // within the allocated file (reserve). It lies past the
            // published length, so no reader looks at it, and only the
            // append-lock holder writes.
            unsafe { map.write(start as usize, data) };
            // The next append usually has the same size: get its lines
            // ready (see `Mapping::prefetch_for_write`).
            map.prefetch_for_write(
                end as usize,
                data.len().saturating_add(128).clamp(128, 2048),
            );
        }
        Ok(end)
    }

    /// After an append of `written` bytes ending at `end` has been
    /// published: gets the file ready for the next small appends, so that
    /// the system calls this takes (`fallocate`, `madvise`, `pwrite`) are
    /// not paid between a record's timestamp and its publication. The
    /// distance ahead is as long as the file, at least a page and at most
    /// [`PREFAULT_AHEAD`]. It reserves file space when less than that is
    /// left, and sets up the mapping's pages once fewer than 3/4 of the
    /// distance are ready. Writer only.
    ///
    /// A file whose small appends go through it
    /// ([`set_small_writes_through_file`](Self::set_small_writes_through_file))
    /// instead has zeros written up to [`ZERO_AHEAD`] past `end` (as far as
    /// the file is long) once fewer than half of that are written, and
    /// this returns `true`: the caller must then fdatasync the file (and
    /// treat a failure as it treats any failed fdatasync of it). The
    /// reserved space is made of unwritten blocks, and an fdatasync that
    /// is the first to write one of them also writes the file's block map
    /// to mark it written (a journal commit on a journaling ext4, the
    /// inode's extent blocks written in place on one without a journal,
    /// as on the development machine); one fdatasync of a zeroed stretch
    /// does that for megabytes of appends, and the syncs of the appends in
    /// it write only their data (as databases zero their write-ahead log
    /// files). Measured with `benches/compare`'s `blocks` on ext4: 16
    /// writers of 1 KiB records 61.6-67.8 k records/s with a stretch of
    /// 256 KiB to 2 MiB, as with blocks written before the run (59.5-66.8
    /// k), against 42.7 k on unwritten blocks.
    ///
    /// Best effort: a failure to reserve or write is left for the next
    /// write, which reserves for itself and reports the error then.
    /// Nothing is done after large appends, which go through the file.
    pub fn prepare_ahead(&self, end: u64, written: usize) -> bool {
        if !self.prepare_due(end, written) {
            return false;
        }
        if self.small_through_file.load(Ordering::Relaxed) {
            return self.zero_ahead(end);
        }
        let ahead = Self::ahead(end);
        if self.reserve_due(end, ahead) {
            let _ = self.reserve((end + ahead).min(self.capacity));
        }
        let done = self.prefaulted.load(Ordering::Relaxed);
        if done >= end + ahead / 4 * 3 || done >= self.allocated.load(Ordering::Relaxed) {
            return false;
        }
        let map = self.map.read();
        if let Some(map) = &*map {
            self.prefault(&**map, end, end + ahead);
        }
        false
    }

    /// How far ahead of `end` to get ready: as far as the file is long, up
    /// to [`PREFAULT_AHEAD`]. A file that gets one record (a test's
    /// temporary log, a quiet partition) sets up one page, not 64, and a
    /// busy one reaches the full distance after a few calls.
    fn ahead(end: u64) -> u64 {
        end.clamp(PAGE, PREFAULT_AHEAD)
    }

    /// How far ahead of `end` to write zeros: as far as the file is long,
    /// up to [`ZERO_AHEAD`], for the reason [`ahead`](Self::ahead) gives.
    fn zero_distance(end: u64) -> u64 {
        end.clamp(PAGE, ZERO_AHEAD)
    }

    fn reserve_due(&self, end: u64, ahead: u64) -> bool {
        let allocated = self.allocated.load(Ordering::Relaxed);
        allocated < self.capacity && allocated.saturating_sub(end) < ahead
    }

    /// Whether [`prepare_ahead`](Self::prepare_ahead) has system calls to
    /// make after this append. Writer only.
    pub fn prepare_due(&self, end: u64, written: usize) -> bool {
        if written >= WRITE_THROUGH_FILE {
            return false;
        }
        if self.small_through_file.load(Ordering::Relaxed) {
            let want = (end + Self::zero_distance(end) / 2).min(self.capacity);
            return self.zeroed.load(Ordering::Relaxed) < want;
        }
        let ahead = Self::ahead(end);
        let done = self.prefaulted.load(Ordering::Relaxed);
        self.reserve_due(end, ahead)
            || (done < end + ahead / 4 * 3 && done < self.allocated.load(Ordering::Relaxed))
    }

    /// Writes zeros from the zeroed mark (or `end`) to
    /// [`zero_distance`](Self::zero_distance) past `end`, within the
    /// reserved space. Returns whether any were written. Writer only.
    fn zero_ahead(&self, end: u64) -> bool {
        /// Zeros to write from, a piece at a time.
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let to = (end + Self::zero_distance(end)).div_ceil(PAGE) * PAGE;
        let to = to.min(self.capacity);
        // On a disk too full for the whole stretch, what is reserved.
        let _ = self.reserve(to);
        let to = to.min(self.allocated.load(Ordering::Relaxed));
        let from = self.zeroed.load(Ordering::Relaxed).max(end);
        if to <= from {
            // Nothing more can be zeroed: do not ask again before `end`
            // moves on.
            self.zeroed.store(from, Ordering::Relaxed);
            return false;
        }
        let Ok(file) = self.handle() else {
            return false;
        };
        let mut at = from;
        while at < to {
            let n = (to - at).min(ZEROS.len() as u64);
            if file.write_at(&ZEROS[..n as usize], at).is_err() {
                break;
            }
            at += n;
        }
        self.zeroed.store(at, Ordering::Relaxed);
        at > from
    }

    /// Sets up the mapping's pages from the prefault mark (or `end`) up to
    /// `to`, within the reserved file space, in one call: copying into a
    /// page the process never touched takes a page fault, and small
    /// appends touch a new page every few dozen records; one call per
    /// stretch replaces a fault per page. The mark never falls below `end`.
    /// A kernel that refuses turns prefaulting off. Writer only.
    fn prefault(&self, map: &dyn Mapping, end: u64, to: u64) {
        debug_assert!(to >= end);
        let done = self.prefaulted.load(Ordering::Relaxed);
        let from = (done.max(self.len()) / PAGE) * PAGE;
        let allocated = self.allocated.load(Ordering::Relaxed);
        // Whole pages, never past the reservation (madvise refuses pages
        // past the end of the file).
        let to = (to.div_ceil(PAGE) * PAGE).min(allocated);
        if to <= from {
            self.prefaulted.store(done.max(end), Ordering::Relaxed);
            return;
        }
        let next = match map.prefault(from as usize, (to - from) as usize) {
            Ok(()) => to,
            Err(_) => u64::MAX,
        };
        self.prefaulted.store(next.max(end), Ordering::Relaxed);
    }

    /// Makes `[0, len)` visible to readers.
    #[inline]
    pub fn publish(&self, len: u64) {
        self.published.store(len, Ordering::Release);
    }

    /// Reserves file space up to at least `end`: a chunk that grows with
    /// the file (so that small appends rarely need a system call), or, when
    /// the disk has no room for the chunk, exactly `end`. Only an `end`
    /// that does not fit is an error, so a nearly full disk takes appends
    /// until it is really full.
    fn reserve(&self, end: u64) -> io::Result<()> {
        let allocated = self.allocated.load(Ordering::Relaxed);
        if end <= allocated {
            return Ok(());
        }
        let step = allocated.clamp(MIN_ALLOCATION, MAX_ALLOCATION);
        let target = end.max(allocated + step).min(self.capacity()).max(end);
        let file = self.handle()?;
        let reserved = match file.allocate(target) {
            Err(e) if e.kind() == io::ErrorKind::StorageFull && target > end => {
                file.allocate(end)?;
                end
            }
            r => r.map(|()| target)?,
        };
        self.allocated.store(reserved, Ordering::Relaxed);
        Ok(())
    }

    /// Cuts the file to the published length, returning reserved space.
    pub fn trim(&self) -> io::Result<()> {
        let len = self.len();
        let file = self.handle()?;
        if file.len()? != len {
            file.set_len(len)?;
        }
        self.allocated.store(len, Ordering::Relaxed);
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.handle()?.sync_data()
    }

    /// Whether every published byte from `pos` on is zero. Asks the file
    /// system where data may be and reads only those stretches, so a long
    /// never-written preallocated tail costs a syscall, not a zero-filled
    /// page fault per page. Without a handle (released), reads everything.
    pub fn zeros_from(&self, pos: u64) -> bool {
        let Some(bytes) = self.try_view() else {
            return false;
        };
        let Some(file) = self.file.lock().clone() else {
            return bytes.get(pos as usize..).is_none_or(all_zero);
        };
        let end = bytes.len() as u64;
        let mut at = pos;
        while at < end {
            match file.data_after(at) {
                Ok(None) => return true,
                Ok(Some((start, stop))) => {
                    let (start, stop) = (start.max(at), stop.min(end));
                    if start >= end {
                        return true;
                    }
                    if !all_zero(&bytes[start as usize..stop as usize]) {
                        return false;
                    }
                    at = stop.max(start + 1);
                }
                Err(_) => return all_zero(&bytes[at as usize..]),
            }
        }
        true
    }

    fn handle(&self) -> io::Result<Arc<dyn FileHandle>> {
        self.file.lock().clone().ok_or_else(|| {
            io::Error::other(format!(
                "{} is sealed: its handle was released",
                self.path.display()
            ))
        })
    }

    /// Closes the file's descriptor; the mapping stays. For sealed files,
    /// which are never written, trimmed or synced again.
    pub fn release_handle(&self) {
        *self.file.lock() = None;
    }
}

/// Whether every byte of `bytes` is zero, a 64-byte block at a time:
/// recovery asks it of whole preallocated tails (megabytes) where the file
/// system cannot say where its data ends.
pub(crate) fn all_zero(bytes: &[u8]) -> bool {
    let word = |w: &[u8]| u128::from_ne_bytes(w.try_into().expect("16 bytes"));
    let mut blocks = bytes.chunks_exact(64);
    blocks
        .by_ref()
        .all(|b| b.chunks_exact(16).fold(0, |acc, w| acc | word(w)) == 0)
        && blocks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests;

/// Asks the CPU to start loading the cache line of `bytes[at]` (nothing if
/// `at` is past the end). A consumer decoding a batch it has not touched
/// yet calls it for the bytes a few records ahead, so that the memory's
/// latency overlaps the decoding instead of stalling each record's first
/// load. A hint: it reads nothing and cannot fault.
#[inline(always)]
pub(crate) fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bytes.get(at) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE, which `_mm_prefetch` needs, is part of x86_64; a
        // prefetch of a valid address (a byte of `bytes`) has no effect
        // but on the caches.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(b).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}
