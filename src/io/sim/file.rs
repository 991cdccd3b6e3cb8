//! Files and mappings of the simulated file system: writes land in the
//! inode's written bytes (and in every live mapping of it, as one page
//! cache would); `sync_data` makes them durable.

#![allow(
    unsafe_code,
    reason = "the simulated mapping hands out raw pointers into its memory; each block has a SAFETY comment"
)]

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::state::State;
use crate::io::{FileHandle, Mapping};

pub(super) struct SimFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) ino: usize,
}

impl FileHandle for SimFile {
    fn len(&self) -> io::Result<u64> {
        let mut s = self.state.lock();
        s.op()?;
        Ok(s.inodes[self.ino].data.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let mut s = self.state.lock();
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
        let mut s = self.state.lock();
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
        let mut s = self.state.lock();
        s.op()?;
        s.inodes[self.ino].data.resize(len as usize, 0);
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut s = self.state.lock();
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
        let mut s = self.state.lock();
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
        let mut s = self.state.lock();
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
            state: self.state.clone(),
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
    pub(super) state: Arc<Mutex<State>>,
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
        self.state.lock().maps.retain(|m| m.1 != addr);
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
        let mut s = self.state.lock();
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
