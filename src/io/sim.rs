//! A simulated file system for power-cut and fault tests.
//!
//! It keeps what was *written* apart from what was *made durable*: file
//! contents become durable with `sync_data`, directory entries (creations,
//! renames, removals) with `sync_dir` of their parent. A power cut, at a
//! chosen operation number, takes an image of the durable state in which
//! each file's unsynced tail may survive torn at any byte, or whole but for
//! one lost page (writeback reaches the disk page by page, in any order);
//! from then on every
//! operation fails, as if the machine were off. The image opens as a fresh
//! file system, on which recovery runs.
//!
//! A process kill is the other kind of crash: at a chosen operation the
//! writing process dies, its last write torn (a prefix of it lands), and
//! every later call of that process fails. The page cache survives: a
//! [`SimFs::restart`] sees every byte written so far, synced or not, under
//! the same boot id, with the synced state kept apart so that a power cut
//! can still follow. [`SimFs::from_image`] is a reboot and gets a new boot id.

#![allow(
    unsafe_code,
    reason = "the simulated mapping owns a raw buffer; each block has a SAFETY comment"
)]

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileHandle, FileSystem, Mapping, OpenMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Dir,
    File(usize),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

/// The unit in which unsynced data reaches the disk, in any order.
const PAGE: usize = 4096;

/// The durable state at a power cut: what a reboot finds.
#[derive(Debug, Clone)]
pub struct Image {
    inodes: Vec<Inode>,
    entries: BTreeMap<PathBuf, Entry>,
    lost_pages: usize,
}

impl Image {
    /// Unsynced pages this cut lost while later ones of the same file
    /// reached the disk (out-of-order writeback).
    pub fn lost_pages(&self) -> usize {
        self.lost_pages
    }
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    live: BTreeMap<PathBuf, Entry>,
    durable: BTreeMap<PathBuf, Entry>,
    ops: u64,
    cut_at: Option<u64>,
    image: Option<Image>,
    /// The operation at which the process is killed.
    kill_at: Option<u64>,
    killed: bool,
    /// Which boot of the simulated machine this is.
    boot: u64,
    rng: u64,
    /// Bytes that allocations may still add (ENOSPC beyond).
    space_left: Option<u64>,
    fail_sync_at: Option<u64>,
    syncs: u64,
    locks: HashSet<PathBuf>,
    /// Live mappings as (inode, buffer address, capacity): a write through
    /// the file reaches them too, as one page cache would.
    maps: Vec<(usize, usize, usize)>,
}

/// The simulated file system. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn dead() -> io::Error {
    io::Error::other("power cut: the machine is off")
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", p.display()),
    )
}

impl State {
    fn xorshift(&mut self) -> u64 {
        let mut x = self.rng.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Counts an operation; at the cut, takes the image. Errors once the
    /// power is off.
    fn op(&mut self) -> io::Result<()> {
        if self.image.is_some() || self.killed {
            return Err(dead());
        }
        self.ops += 1;
        if self.cut_at == Some(self.ops) {
            self.take_image();
            return Err(dead());
        }
        if self.kill_at == Some(self.ops) {
            self.killed = true;
            return Err(dead());
        }
        Ok(())
    }

    /// Like [`op`](Self::op) for a write of `data` at `pos` of inode `ino`:
    /// if the process dies at this very write, a random prefix of it lands
    /// in the page cache first, as when a copy is interrupted.
    fn write_op(&mut self, ino: usize, pos: usize, data: &[u8]) -> io::Result<()> {
        if self.image.is_none() && !self.killed && self.kill_at == Some(self.ops + 1) {
            let keep = (self.xorshift() % (data.len() as u64 + 1)) as usize;
            let d = &mut self.inodes[ino].data;
            if d.len() < pos + keep {
                d.resize(pos + keep, 0);
            }
            d[pos..pos + keep].copy_from_slice(&data[..keep]);
        }
        self.op()
    }

    fn take_image(&mut self) {
        let mut inodes = Vec::with_capacity(self.inodes.len());
        let mut lost_pages = 0;
        for i in 0..self.inodes.len() {
            let (r1, r2) = (self.xorshift(), self.xorshift());
            let ino = &self.inodes[i];
            let mut content = ino.synced.clone();
            // Unsynced bytes appended after the synced content may have
            // reached the disk, in part: a torn write. Or, as writeback
            // goes page by page in any order, later pages may have reached
            // it while an earlier one did not (it reads as zeros).
            if ino.data.len() > content.len() && ino.data.starts_with(&content) {
                let from = content.len();
                let extra = &ino.data[from..];
                match r2 % 3 {
                    0 => {
                        let keep = (r1 % (extra.len() as u64 + 1)) as usize;
                        content.extend_from_slice(&extra[..keep]);
                    }
                    1 if extra.len() > PAGE => {
                        content.extend_from_slice(extra);
                        // A page of the unsynced stretch, lost.
                        let first = from.div_ceil(PAGE);
                        let pages = (ino.data.len() / PAGE).saturating_sub(first).max(1);
                        let lost = (first + (r1 as usize % pages)) * PAGE;
                        let end = (lost + PAGE).min(content.len());
                        if lost < end {
                            content[lost..end].fill(0);
                            lost_pages += 1;
                        }
                    }
                    _ => {}
                }
            }
            inodes.push(Inode {
                data: content.clone(),
                synced: content,
            });
        }
        self.image = Some(Image {
            inodes,
            entries: self.durable.clone(),
            lost_pages,
        });
    }

    fn file(&self, p: &Path) -> io::Result<usize> {
        match self.live.get(p) {
            Some(Entry::File(i)) => Ok(*i),
            _ => Err(not_found(p)),
        }
    }

    fn parent_exists(&self, p: &Path) -> bool {
        match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => self.live.get(d) == Some(&Entry::Dir),
            _ => true,
        }
    }
}

impl SimFs {
    /// A fresh, empty file system whose power is cut at operation `cut_at`
    /// (never if `None`); `seed` drives how unsynced writes are torn.
    pub fn new(cut_at: Option<u64>, seed: u64) -> SimFs {
        static BOOTS: AtomicU64 = AtomicU64::new(1);
        let fs = SimFs::default();
        {
            let mut s = fs.state.lock();
            s.cut_at = cut_at;
            s.rng = seed | 1;
            s.boot = BOOTS.fetch_add(1, Ordering::Relaxed);
        }
        fs
    }

    /// Holds back a pending power cut while `f` runs: its operations do not
    /// count toward it. For a test's own checks between workload steps
    /// (reads that map sealed segments open files), so that they neither
    /// trip the cut nor shift where it lands in the workload.
    pub fn without_cut<T>(&self, f: impl FnOnce() -> T) -> T {
        let remaining = {
            let mut s = self.state.lock();
            let ops = s.ops;
            s.cut_at.take().map(|c| c.saturating_sub(ops))
        };
        let t = f();
        let mut s = self.state.lock();
        if s.image.is_none() {
            s.cut_at = remaining.map(|r| s.ops + r);
        }
        t
    }

    /// Kills the process at its `n`th operation from now (1: the next).
    pub fn kill_after(&self, n: u64) {
        let mut s = self.state.lock();
        s.kill_at = Some(s.ops + n.max(1));
    }

    /// Kills the process now: every later call through this handle (and
    /// the files and mappings opened through it) fails, so a `Log` dropped
    /// afterwards cannot close cleanly.
    pub fn kill_now(&self) {
        self.state.lock().killed = true;
    }

    /// Whether the process was killed.
    pub fn was_killed(&self) -> bool {
        self.state.lock().killed
    }

    /// The same machine after a process kill: what was written is all
    /// there (synced or not), the boot id is unchanged, locks and
    /// mappings of the dead process are gone. The power may be cut at
    /// operation `cut_at` of the new process.
    pub fn restart(&self, cut_at: Option<u64>) -> SimFs {
        let s = self.state.lock();
        let fs = SimFs::default();
        {
            let mut n = fs.state.lock();
            n.inodes = s.inodes.clone();
            n.live = s.live.clone();
            n.durable = s.durable.clone();
            n.rng = s.rng;
            n.boot = s.boot;
            n.cut_at = cut_at;
        }
        fs
    }

    /// A file system booted from a power-cut image.
    pub fn from_image(image: &Image, cut_at: Option<u64>, seed: u64) -> SimFs {
        let fs = SimFs::new(cut_at, seed);
        {
            let mut s = fs.state.lock();
            s.inodes = image.inodes.clone();
            s.live = image.entries.clone();
            s.durable = image.entries.clone();
        }
        fs
    }

    /// The image taken at the power cut, once it happened.
    pub fn image(&self) -> Option<Image> {
        self.state.lock().image.clone()
    }

    /// Cuts the power now.
    pub fn cut_now(&self) -> Image {
        let mut s = self.state.lock();
        if s.image.is_none() {
            s.take_image();
        }
        s.image.clone().expect("image just taken")
    }

    /// Allocations beyond `bytes` more fail with ENOSPC.
    pub fn set_space_left(&self, bytes: Option<u64>) {
        self.state.lock().space_left = bytes;
    }

    /// Bytes that can still be allocated (`None`: no limit).
    pub fn space_left(&self) -> Option<u64> {
        self.state.lock().space_left
    }

    /// The `n`th fdatasync from now fails with EIO.
    pub fn fail_sync_after(&self, n: u64) {
        let mut s = self.state.lock();
        s.fail_sync_at = Some(s.syncs + n + 1);
    }
}

struct LockGuard(SimFs, PathBuf);

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.0.state.lock().locks.remove(&self.1);
    }
}

impl FileSystem for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.op()?;
        let mut p = PathBuf::new();
        for c in path.components() {
            p.push(c);
            match s.live.get(&p) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => return Err(io::Error::other("a file is in the way")),
                None => {
                    s.live.insert(p.clone(), Entry::Dir);
                }
            }
        }
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut s = self.state.lock();
        s.op()?;
        if s.live.get(path) != Some(&Entry::Dir) {
            return Err(not_found(path));
        }
        Ok(s.live
            .keys()
            .filter(|k| k.parent() == Some(path))
            .filter_map(|k| k.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect())
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.state.lock().live.get(path) == Some(&Entry::Dir)
    }

    fn exists(&self, path: &Path) -> bool {
        self.state.lock().live.contains_key(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.op()?;
        s.file(path)?;
        s.live.remove(path);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.op()?;
        if !s.live.contains_key(path) {
            return Err(not_found(path));
        }
        s.live.retain(|k, _| !k.starts_with(path));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.op()?;
        let e = s.live.remove(from).ok_or_else(|| not_found(from))?;
        s.live.insert(to.to_owned(), e);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.op()?;
        if s.live.get(path) != Some(&Entry::Dir) {
            return Err(not_found(path));
        }
        let children: Vec<(PathBuf, Entry)> = s
            .live
            .iter()
            .filter(|(k, _)| k.parent() == Some(path))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        // A child directory whose removal becomes durable takes everything
        // durable below it along: nothing under a removed directory can
        // come back at a reboot.
        let gone: Vec<PathBuf> = s
            .durable
            .iter()
            .filter(|(k, e)| {
                k.parent() == Some(path)
                    && **e == Entry::Dir
                    && !children.iter().any(|(c, ce)| c == *k && *ce == Entry::Dir)
            })
            .map(|(k, _)| k.clone())
            .collect();
        s.durable
            .retain(|k, _| k.parent() != Some(path) && !gone.iter().any(|g| k.starts_with(g)));
        s.durable.extend(children);
        Ok(())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut s = self.state.lock();
        s.op()?;
        let ino = match (mode, s.live.get(path).copied()) {
            (_, Some(Entry::Dir)) => return Err(io::Error::other("is a directory")),
            (OpenMode::CreateTruncate, Some(Entry::File(i))) => {
                s.inodes[i].data.clear();
                i
            }
            (OpenMode::CreateTruncate, None) => {
                if !s.parent_exists(path) {
                    return Err(not_found(path));
                }
                s.inodes.push(Inode::default());
                let i = s.inodes.len() - 1;
                s.live.insert(path.to_owned(), Entry::File(i));
                i
            }
            (_, Some(Entry::File(i))) => i,
            (_, None) => return Err(not_found(path)),
        };
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            ino,
        }))
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        {
            let mut s = self.state.lock();
            s.op()?;
            if s.locks.contains(path) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            s.locks.insert(path.to_owned());
        }
        if !self.exists(path) {
            self.open(path, OpenMode::CreateTruncate)?;
        }
        Ok(Box::new(LockGuard(self.clone(), path.to_owned())))
    }

    /// Stable for one machine; a reboot from an image is another boot.
    fn boot_id(&self) -> Option<String> {
        Some(format!("sim-boot-{}", self.state.lock().boot))
    }
}

struct SimFile {
    fs: SimFs,
    ino: usize,
}

impl FileHandle for SimFile {
    fn len(&self) -> io::Result<u64> {
        let mut s = self.fs.state.lock();
        s.op()?;
        Ok(s.inodes[self.ino].data.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let mut s = self.fs.state.lock();
        s.op()?;
        let d = &s.inodes[self.ino].data;
        let src = usize::try_from(pos)
            .ok()
            .and_then(|p| d.get(p..p.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut s = self.fs.state.lock();
        s.write_op(self.ino, pos as usize, buf)?;
        let d = &mut s.inodes[self.ino].data;
        let end = pos as usize + buf.len();
        if d.len() < end {
            d.resize(end, 0);
        }
        d[pos as usize..end].copy_from_slice(buf);
        for &(ino, addr, cap) in &s.maps {
            if ino == self.ino && (pos as usize) < cap {
                let n = buf.len().min(cap - pos as usize);
                // SAFETY: the buffer is live while registered (removed in
                // `SimMap::drop` under this lock), `[pos, pos + n)` is inside
                // it, and by the `Mapping` contract nobody reads a range
                // that is being appended.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        buf.as_ptr(),
                        (addr as *mut u8).add(pos as usize),
                        n,
                    )
                };
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.state.lock();
        s.op()?;
        s.inodes[self.ino].data.resize(len as usize, 0);
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.state.lock();
        s.op()?;
        let have = s.inodes[self.ino].data.len() as u64;
        if len <= have {
            return Ok(());
        }
        if let Some(left) = s.space_left {
            if len - have > left {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            s.space_left = Some(left - (len - have));
        }
        s.inodes[self.ino].data.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.fs.state.lock();
        s.op()?;
        s.syncs += 1;
        if s.fail_sync_at == Some(s.syncs) {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        let ino = &mut s.inodes[self.ino];
        ino.synced = ino.data.clone();
        Ok(())
    }

    fn map(&self, capacity: usize) -> io::Result<Box<dyn Mapping>> {
        let mut s = self.fs.state.lock();
        s.op()?;
        // Anonymous memory: pages are zero until touched, so a large
        // capacity costs nothing up front (as a real mapping's would not).
        let mut buf = memmap2::MmapMut::map_anon(capacity.max(1))?;
        let d = &s.inodes[self.ino].data;
        let n = d.len().min(capacity);
        buf[..n].copy_from_slice(&d[..n]);
        let cap = capacity;
        let ptr = buf.as_mut_ptr();
        s.maps.push((self.ino, ptr as usize, cap));
        Ok(Box::new(SimMap {
            fs: self.fs.clone(),
            ino: self.ino,
            ptr,
            cap,
            _buf: buf,
        }))
    }
}

/// A private buffer standing in for the mapping; writes also go to the
/// inode, as a shared mapping's would.
struct SimMap {
    fs: SimFs,
    ino: usize,
    ptr: *mut u8,
    cap: usize,
    /// Owns the memory `ptr` points into; unmapped when dropped.
    _buf: memmap2::MmapMut,
}

// SAFETY: the memory is owned by the SimMap (`_buf`) and only accessed through the
// `Mapping` contract (one writer per range, readers of published ranges).
unsafe impl Send for SimMap {}
// SAFETY: as above.
unsafe impl Sync for SimMap {}

impl Drop for SimMap {
    fn drop(&mut self) {
        let addr = self.ptr as usize;
        // Unregistered before `_buf` unmaps the memory, under the lock
        // that writes through the file take to reach it.
        self.fs.state.lock().maps.retain(|m| m.1 != addr);
    }
}

impl Mapping for SimMap {
    fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    fn capacity(&self) -> usize {
        self.cap
    }

    unsafe fn write(&self, pos: usize, data: &[u8]) {
        // SAFETY: the caller guarantees the range is inside the buffer and
        // not accessed concurrently.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(pos), data.len()) };
        let mut s = self.fs.state.lock();
        if s.write_op(self.ino, pos, data).is_err() {
            // The machine is off (the store never reaches the page cache
            // the image was taken from), or the process died during it.
            return;
        }
        let d = &mut s.inodes[self.ino].data;
        if d.len() < pos + data.len() {
            d.resize(pos + data.len(), 0);
        }
        d[pos..pos + data.len()].copy_from_slice(data);
    }
}
