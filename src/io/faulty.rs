//! A file system that fails on demand, for poisoning tests. It wraps
//! [`StdFs`] and fails the Nth allocation (ENOSPC) or the Nth sync (EIO).

use std::any::Any;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::std_fs::StdFs;
use super::{FileHandle, FileSystem, Mapping, OpenMode};

/// Counts down across all files; the operation that takes it to zero fails.
#[derive(Debug)]
pub struct FaultyFs {
    /// Remaining successful allocations (negative: never fail).
    pub allocs_left: AtomicI64,
    /// Remaining successful syncs (negative: never fail).
    pub syncs_left: AtomicI64,
}

impl FaultyFs {
    /// A wrapper over the real file system that fails nothing until told.
    pub fn new() -> Arc<Self> {
        Arc::new(FaultyFs {
            allocs_left: AtomicI64::new(-1),
            syncs_left: AtomicI64::new(-1),
        })
    }
}

fn take(counter: &AtomicI64, err: io::ErrorKind) -> io::Result<()> {
    let left = counter.load(Ordering::SeqCst);
    if left < 0 {
        return Ok(());
    }
    if left == 0 {
        return Err(io::Error::new(err, "injected failure"));
    }
    counter.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

impl FileSystem for Arc<FaultyFs> {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFs.read_dir(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        StdFs.is_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        StdFs.exists(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdFs.sync_dir(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        Ok(Arc::new(FaultyFile {
            inner: StdFs.open(path, mode)?,
            fs: self.clone(),
        }))
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        StdFs.lock(path)
    }
    fn boot_id(&self) -> Option<String> {
        StdFs.boot_id()
    }
}

struct FaultyFile {
    inner: Arc<dyn FileHandle>,
    fs: Arc<FaultyFs>,
}

impl FileHandle for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn data_after(&self, pos: u64) -> io::Result<Option<(u64, u64)>> {
        self.inner.data_after(pos)
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.inner.read_at(buf, pos)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.inner.write_at(buf, pos)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        take(&self.fs.allocs_left, io::ErrorKind::StorageFull)?;
        self.inner.allocate(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        take(&self.fs.syncs_left, io::ErrorKind::Other)?;
        self.inner.sync_data()
    }
    fn map(&self, capacity: usize) -> io::Result<Box<dyn Mapping>> {
        self.inner.map(capacity)
    }
}
