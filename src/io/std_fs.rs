//! The real file system: std, memmap2 and (on Linux) `posix_fallocate`.

#![allow(
    unsafe_code,
    reason = "memory maps and libc calls (fallocate, lseek, madvise); each block has a SAFETY comment"
)]

use std::any::Any;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::{FileHandle, FileSystem, Mapping, OpenMode};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StdFs;

impl FileSystem for StdFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(path)? {
            let e = e?;
            if let Ok(name) = e.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::ReadWrite => o.read(true).write(true),
            OpenMode::CreateTruncate => o.read(true).write(true).create(true).truncate(true),
        };
        Ok(Arc::new(StdFile(o.open(path)?)))
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Box::new(f)),
            Err(fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Linux draws a random UUID at every boot. Elsewhere (or if /proc is
    /// not mounted) there is no id, and every unclean open takes the slow,
    /// power-cut-safe recovery path.
    fn boot_id(&self) -> Option<String> {
        let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (!id.is_empty()).then(|| id.to_owned())
    }
}

struct StdFile(File);

impl FileHandle for StdFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, pos)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.0.write_all_at(buf, pos)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    #[cfg(target_os = "linux")]
    fn allocate(&self, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let current = self.len()?;
        if len <= current {
            return Ok(());
        }
        let len = libc::off_t::try_from(len).map_err(io::Error::other)?;
        // SAFETY: a plain syscall on a file descriptor we own.
        let rc = unsafe { libc::posix_fallocate(self.0.as_raw_fd(), 0, len) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn allocate(&self, len: u64) -> io::Result<()> {
        if len > self.len()? {
            self.0.set_len(len)?;
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    /// `SEEK_DATA`/`SEEK_HOLE`: preallocated (unwritten) extents without
    /// cached pages are holes, read as zeros. Both only move this handle's
    /// file position, which nothing uses (all I/O is positioned).
    #[cfg(target_os = "linux")]
    fn data_after(&self, pos: u64) -> io::Result<Option<(u64, u64)>> {
        use std::os::fd::AsRawFd;
        let fd = self.0.as_raw_fd();
        let at = libc::off_t::try_from(pos).map_err(io::Error::other)?;
        // SAFETY: plain syscalls on a file descriptor we own.
        let start = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if start < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                // Nothing but holes from `pos` to the end.
                Some(libc::ENXIO) => Ok(None),
                // The file system cannot tell: say it may all be data.
                Some(libc::EINVAL | libc::EOPNOTSUPP) => Ok(Some((pos, u64::MAX))),
                _ => Err(e),
            };
        }
        // SAFETY: as above.
        let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        if end < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some((start as u64, end as u64)))
    }

    fn map(&self, capacity: usize) -> io::Result<Box<dyn Mapping>> {
        // SAFETY: the mapping is shared with the file; streamlog only reads
        // ranges that it wrote and published itself, and nothing else is
        // expected to modify files inside a locked log directory.
        let raw = memmap2::MmapOptions::new().len(capacity).map_raw(&self.0)?;
        Ok(Box::new(StdMap(raw)))
    }
}

struct StdMap(memmap2::MmapRaw);

impl Mapping for StdMap {
    fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    fn capacity(&self) -> usize {
        self.0.len()
    }

    unsafe fn write(&self, pos: usize, data: &[u8]) {
        // SAFETY: the caller guarantees the range is inside the mapping and
        // the file, and that nobody else touches it meanwhile.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.0.as_mut_ptr().add(pos), data.len());
        }
    }

    #[inline]
    fn prefetch_for_write(&self, pos: usize, len: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            // `ET0` compiles to `prefetchw` where the target has it and to
            // `prefetcht0` otherwise (the default x86-64 target).
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
            if pos.saturating_add(len) > self.0.len() {
                return;
            }
            let p = self.0.as_ptr().wrapping_add(pos);
            for i in (0..len).step_by(64) {
                // SAFETY: a prefetch is a hint: it reads and writes nothing
                // and never faults, whatever the address (here one inside
                // the mapping's address range).
                unsafe { _mm_prefetch::<_MM_HINT_ET0>(p.wrapping_add(i).cast()) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (pos, len);
    }

    #[cfg(target_os = "linux")]
    fn prefault(&self, pos: usize, len: usize) -> io::Result<()> {
        self.0
            .advise_range(memmap2::Advice::PopulateWrite, pos, len)
    }
}
