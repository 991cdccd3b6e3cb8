//! The simulated machine's state: inodes with their written and synced
//! bytes, the live and durable directory entries, the operation counter
//! that decides where a cut or a kill lands, and the image a cut takes.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use super::tree::{Entry, Tree};

#[derive(Debug, Clone, Default)]
pub(super) struct Inode {
    pub(super) data: Vec<u8>,
    pub(super) synced: Vec<u8>,
}

/// The unit in which unsynced data reaches the disk, in any order.
pub(super) const PAGE: usize = 4096;

/// The durable state at a power cut: what a reboot finds.
#[derive(Debug, Clone)]
pub struct Image {
    pub(super) inodes: Vec<Inode>,
    pub(super) entries: Tree,
    pub(super) lost_pages: usize,
}

impl Image {
    /// Unsynced pages this cut lost while later ones of the same file
    /// reached the disk (out-of-order writeback).
    pub fn lost_pages(&self) -> usize {
        self.lost_pages
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) inodes: Vec<Inode>,
    pub(super) live: Tree,
    pub(super) durable: Tree,
    pub(super) ops: u64,
    pub(super) cut_at: Option<u64>,
    pub(super) image: Option<Image>,
    /// The operation at which the process is killed.
    pub(super) kill_at: Option<u64>,
    pub(super) killed: bool,
    /// Which boot of the simulated machine this is.
    pub(super) boot: u64,
    pub(super) rng: u64,
    /// Bytes that allocations may still add (ENOSPC beyond).
    pub(super) space_left: Option<u64>,
    pub(super) fail_sync_at: Option<u64>,
    pub(super) syncs: u64,
    pub(super) locks: HashSet<PathBuf>,
    /// Live mappings as (inode, buffer address, capacity): a write through
    /// the file reaches them too, as one page cache would.
    pub(super) maps: Vec<(usize, usize, usize)>,
}

pub(super) fn dead() -> io::Error {
    io::Error::other("power cut: the machine is off")
}

pub(super) fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", p.display()),
    )
}

impl State {
    pub(super) fn xorshift(&mut self) -> u64 {
        let mut x = self.rng.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Counts an operation; at the cut, takes the image. Errors once the
    /// power is off.
    pub(super) fn op(&mut self) -> io::Result<()> {
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
    pub(super) fn write_op(&mut self, ino: usize, pos: usize, data: &[u8]) -> io::Result<()> {
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

    pub(super) fn take_image(&mut self) {
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

    pub(super) fn file(&self, p: &Path) -> io::Result<usize> {
        match self.live.get(p) {
            Some(Entry::File(i)) => Ok(i),
            _ => Err(not_found(p)),
        }
    }

    pub(super) fn parent_exists(&self, p: &Path) -> bool {
        match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => self.live.get(d) == Some(Entry::Dir),
            _ => true,
        }
    }
}
