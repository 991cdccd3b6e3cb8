//! The I/O seam: every file and directory operation streamlog performs goes
//! through [`FileSystem`] and [`FileHandle`]. The real implementation
//! (`std_fs::StdFs`) uses std and memmap2; a simulated one that keeps written and
//! synced bytes apart plugs in here for power-cut and fault tests.

use std::any::Any;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "internals")]
pub(crate) mod faulty;
#[cfg(feature = "internals")]
pub(crate) mod sim;
pub(crate) mod std_fs;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; create the file, truncating any existing one.
    CreateTruncate,
}

/// A directory-level file system.
pub(crate) trait FileSystem: Send + Sync + fmt::Debug {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries in a directory, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn is_dir(&self, path: &Path) -> bool;
    fn exists(&self, path: &Path) -> bool;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>>;
    /// Takes an exclusive advisory lock on `path` (created if missing),
    /// held until the returned guard drops. Fails with
    /// `io::ErrorKind::WouldBlock` when someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>>;
    /// Identifies the running kernel instance: the same string for as long
    /// as the machine stays up, a different one after any reboot. Two
    /// opens that see the same id share one page cache, so every byte the
    /// first wrote is still there for the second, synced or not. `None`
    /// when the platform cannot tell; recovery then assumes the worst.
    fn boot_id(&self) -> Option<String>;

    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let f = self.open(path, OpenMode::Read)?;
        let len = usize::try_from(f.len()?).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        f.read_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// An open file.
pub(crate) trait FileHandle: Send + Sync {
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from `pos`; fails with `UnexpectedEof` past the end.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Grows the file to at least `len` bytes with the blocks reserved, so
    /// that writing through a mapping can never hit a full disk.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// fdatasync: makes the file's data, and the metadata needed to read it
    /// back, durable. Covers bytes written through a [`Mapping`].
    fn sync_data(&self) -> io::Result<()>;
    /// The first stretch at or after `pos` that may hold non-zero bytes, as
    /// `(start, end)`, or `None` if every byte from `pos` to the end of the
    /// file reads as zero. Lets recovery recognize a never-written
    /// preallocated tail without reading it (reading it through the mapping
    /// would make the kernel zero-fill every page of it). The default
    /// claims everything from `pos` on may be data, so callers check it all.
    fn data_after(&self, pos: u64) -> io::Result<Option<(u64, u64)>> {
        Ok(Some((pos, u64::MAX)))
    }
    /// Maps `capacity` bytes of address space over the file, shared and
    /// writable. Only the part below the file's length may be touched.
    fn map(&self, capacity: usize) -> io::Result<Box<dyn Mapping>>;
}

/// A shared mapping of a file.
pub(crate) trait Mapping: Send + Sync {
    /// The first mapped byte. Valid for `capacity()` bytes of address space.
    fn as_ptr(&self) -> *const u8;
    fn capacity(&self) -> usize;
    /// Copies `data` into the mapping at `pos`.
    ///
    /// # Safety
    /// `pos + data.len()` must be within both the capacity and the file's
    /// allocated length, and no other thread may read or write that range
    /// while this runs.
    #[allow(unsafe_code, reason = "the contract a mapping's writer must keep")]
    unsafe fn write(&self, pos: usize, data: &[u8]);
    /// Asks the kernel to set up, in one call, the writable pages of
    /// `[pos, pos + len)` that later copies will touch, instead of one page
    /// fault per page. A hint: failure (an old kernel) changes nothing but
    /// speed. The range must be within the capacity and the file's
    /// allocated length; nothing there may be published yet.
    fn prefault(&self, _pos: usize, _len: usize) -> io::Result<()> {
        Ok(())
    }
    /// Asks the CPU to bring into its cache the lines of `[pos, pos + len)`
    /// that the next small append will copy into (for writing where the
    /// build targets CPUs with `prefetchw`; the default x86-64 target gets
    /// `prefetcht0`, which is what was measured). The pages ahead were set
    /// up (and zeroed by the kernel) well before an append reaches them, so
    /// their lines are no longer in the nearer caches: without this, the
    /// copy into the mapping missed on every line, and the append path's
    /// locked instructions (the lock, the end offset's store, the unlock)
    /// waited for those misses to drain. One send at a time, alternating builds:
    /// 100 B 222-226 against 212-216 ns, 1 KiB 604-638 against 535-544 ns.
    /// A hint: it never faults and changes no memory, and a range past the
    /// capacity is ignored.
    fn prefetch_for_write(&self, _pos: usize, _len: usize) {}
}
