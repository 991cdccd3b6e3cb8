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

use std::any::Any;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileHandle, FileSystem, OpenMode};

mod file;
mod state;
mod tree;

use file::SimFile;
pub use state::Image;
use state::{not_found, Inode, State};
use tree::Entry;

/// The simulated file system. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
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
                None => s.live.insert(&p, Entry::Dir),
            }
        }
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut s = self.state.lock();
        s.op()?;
        if s.live.get(path) != Some(Entry::Dir) {
            return Err(not_found(path));
        }
        Ok(s.live
            .children(path)
            .filter_map(|(k, _)| k.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect())
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.state.lock().live.get(path) == Some(Entry::Dir)
    }

    fn exists(&self, path: &Path) -> bool {
        self.state.lock().live.contains(path)
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
        if !s.live.contains(path) {
            return Err(not_found(path));
        }
        s.live.remove_all(path);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.op()?;
        let e = s.live.remove(from).ok_or_else(|| not_found(from))?;
        s.live.insert(to, e);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.op()?;
        if s.live.get(path) != Some(Entry::Dir) {
            return Err(not_found(path));
        }
        // The durable entries directly inside `path` become the live ones;
        // only those that differ are touched. A child directory whose
        // removal becomes durable takes everything durable below it along:
        // nothing under a removed directory can come back at a reboot.
        let live: Vec<(PathBuf, Entry)> = s.live.children(path).collect();
        let durable: Vec<(PathBuf, Entry)> = s.durable.children(path).collect();
        let (mut i, mut j) = (0, 0);
        while i < live.len() || j < durable.len() {
            // Both lists are in the tree's order, which is `Path`'s.
            let order = match (live.get(i), durable.get(j)) {
                (Some((l, _)), Some((d, _))) => l.cmp(d),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, _) => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    s.durable.insert(&live[i].0, live[i].1);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let (k, e) = &durable[j];
                    if *e == Entry::Dir {
                        s.durable.remove_all(k);
                    } else {
                        s.durable.remove(k);
                    }
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let ((k, l), (_, d)) = (&live[i], &durable[j]);
                    if l != d {
                        if *d == Entry::Dir {
                            s.durable.remove_all(k);
                        }
                        s.durable.insert(k, *l);
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut s = self.state.lock();
        s.op()?;
        let ino = match (mode, s.live.get(path)) {
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
                s.live.insert(path, Entry::File(i));
                i
            }
            (_, Some(Entry::File(i))) => i,
            (_, None) => return Err(not_found(path)),
        };
        Ok(Arc::new(SimFile {
            state: self.state.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `sync_dir` makes exactly the directory's own entries durable: new
    /// ones, removed ones (with everything durable below a removed
    /// directory), and an entry whose kind changed; unsynced changes in
    /// other directories are not touched.
    #[test]
    fn sync_dir_makes_a_directory_s_entries_durable() {
        let fs = SimFs::new(None, 1);
        let p = Path::new;
        for d in ["/l/a", "/l/b", "/l/d"] {
            fs.create_dir_all(p(d)).unwrap();
        }
        fs.sync_dir(p("/")).unwrap();
        fs.sync_dir(p("/l")).unwrap();
        for f in ["/l/a/x", "/l/b/y", "/l/d/z"] {
            let h = fs.open(p(f), OpenMode::CreateTruncate).unwrap();
            h.write_at(b"data", 0).unwrap();
            h.sync_data().unwrap();
            fs.sync_dir(p(f).parent().unwrap()).unwrap();
        }
        fs.remove_dir_all(p("/l/b")).unwrap();
        fs.remove_dir_all(p("/l/d")).unwrap();
        fs.open(p("/l/d"), OpenMode::CreateTruncate).unwrap();
        fs.open(p("/l/c"), OpenMode::CreateTruncate).unwrap();
        fs.remove_file(p("/l/a/x")).unwrap(); // not synced: comes back
        fs.sync_dir(p("/l")).unwrap();
        fs.open(p("/l/e"), OpenMode::CreateTruncate).unwrap(); // not synced: lost

        let img = fs.cut_now();
        let fs = SimFs::from_image(&img, None, 1);
        assert_eq!(fs.read_dir(p("/l")).unwrap(), ["a", "c", "d"]);
        assert_eq!(fs.read_dir(p("/l/a")).unwrap(), ["x"]);
        assert_eq!(fs.read(p("/l/a/x")).unwrap(), b"data");
        assert!(!fs.is_dir(p("/l/d")) && fs.exists(p("/l/d")));
        assert!(!fs.exists(p("/l/d/z")) && !fs.exists(p("/l/b/y")));
    }
}
