//! A partition directory as the read-only reader sees it: which files hold
//! batches, and batches read out of them with positioned reads.
//!
//! Never a mapping: the writer truncates (trims a sealed segment, cuts a
//! torn tail at open) and deletes files, and touching a mapping past a
//! file's new end raises SIGBUS. A positioned read past the end is a short
//! read instead, which the reader takes as "nothing there (yet)".

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{io_err, Error, Result};
use crate::format::batch::{
    decode_batch, peek_fixed_header, BatchHeader, DecodeError, MAX_HEADER_LEN,
};
use crate::io::{FileHandle, FileSystem, OpenMode};
use crate::storage::segment::{parse_segment_name, LOG_EXT};

/// How many times a reader lists a directory again when what it found
/// does not fit (a file renamed or deleted between the listing and the
/// open, a listing taken in the middle of a compaction swap), and how long
/// it pauses in between.
pub(super) const ATTEMPTS: u32 = 50;
pub(super) const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Lists the segment files of partition directory `dir` and gives them to
/// `f`, listing again while `f` finds one gone (`Ok(None)`), up to
/// [`ATTEMPTS`] times; `doing` names the work in the error that follows.
pub(super) fn with_listing<T>(
    fs: &dyn FileSystem,
    dir: &Path,
    doing: &'static str,
    mut f: impl FnMut(&[SegFile]) -> Result<Option<T>>,
) -> Result<T> {
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(RETRY_PAUSE);
        }
        if let Some(found) = f(&list_segments(fs, dir)?)? {
            return Ok(found);
        }
    }
    Err(Error::io(
        doing,
        dir,
        std::io::Error::other("segment files kept changing under the reader"),
    ))
}

/// Bytes read ahead at once when reading batches, and when walking headers.
const DATA_CHUNK: usize = 256 << 10;
const HEADER_CHUNK: usize = 4 << 10;

/// One segment file a reader may read: named by its base offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SegFile {
    pub base: u64,
    pub path: PathBuf,
}

/// A file name that holds a segment's batches, with its base offset and a
/// rank, best first: 0 the live `<base>.log`; 1 a compaction's cleaned copy
/// about to replace it (`.log.swap`, written whole before it got that
/// name); 2 an input compaction is replacing (`.log.deleted`, its data as
/// it was). During a swap (FORMAT.md §7) one of them always holds every
/// offset, so a listing taken mid-swap still covers the partition.
fn segment_name(name: &str) -> Option<(u64, u8)> {
    if let Some(b) = parse_segment_name(name, LOG_EXT) {
        return Some((b, 0));
    }
    let (stem, rank) = if let Some(s) = name.strip_suffix(".swap") {
        (s, 1)
    } else {
        (name.strip_suffix(".deleted")?, 2)
    };
    parse_segment_name(stem, LOG_EXT).map(|b| (b, rank))
}

/// The segment files of partition directory `dir`, by base offset, one per
/// base (the best ranked).
pub(super) fn list_segments(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<SegFile>> {
    let mut best: BTreeMap<u64, (u8, String)> = BTreeMap::new();
    for name in fs.read_dir(dir).map_err(io_err("list", dir))? {
        let Some((base, rank)) = segment_name(&name) else {
            continue;
        };
        if best.get(&base).is_none_or(|(r, _)| rank < *r) {
            best.insert(base, (rank, name));
        }
    }
    Ok(best
        .into_iter()
        .map(|(base, (_, name))| SegFile {
            base,
            path: dir.join(name),
        })
        .collect())
}

/// Why there is no (acceptable) batch at a position.
#[derive(Debug)]
pub(super) enum Stop {
    /// The file ends here.
    Eof,
    /// Zero bytes: preallocated space not written yet.
    Zeros,
    /// A batch that is cut off by the end of the file, or does not decode
    /// (bad length, magic or CRC), or (when walking headers) starts at an
    /// offset that does not continue the previous batch. At the end of the
    /// segment being written: a batch being written. Anywhere else: damage.
    Invalid(Error),
}

/// What lies at a position of a segment file.
#[derive(Debug)]
pub(super) enum At {
    /// A batch: whole and CRC-valid when read with [`SegReader::batch_at`],
    /// a plausible header of a batch the file holds whole when read with
    /// [`SegReader::header_at`].
    Batch(BatchHeader),
    /// No batch.
    Stop(Stop),
}

/// An open segment file and a window of its bytes read ahead.
pub(super) struct SegReader {
    pub seg: SegFile,
    file: Arc<dyn FileHandle>,
    /// Bytes of the file from `window_at`, as read then.
    window: Vec<u8>,
    window_at: u64,
    /// The file's length when the window was read.
    len_then: u64,
    /// Whether the last read found a batch: read ahead in large chunks
    /// while catching up, in small ones while waiting at the end.
    ahead: bool,
}

impl std::fmt::Debug for SegReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegReader")
            .field("path", &self.seg.path)
            .field("window_at", &self.window_at)
            .finish_non_exhaustive()
    }
}

impl SegReader {
    /// Opens `seg` read-only; `None` if it is gone (renamed or deleted
    /// since it was listed).
    pub fn open(fs: &dyn FileSystem, seg: &SegFile) -> Result<Option<SegReader>> {
        match fs.open(&seg.path, OpenMode::Read) {
            Ok(file) => Ok(Some(SegReader {
                seg: seg.clone(),
                file,
                window: Vec::new(),
                window_at: 0,
                len_then: 0,
                ahead: false,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("open", &seg.path, e)),
        }
    }

    /// The file's current length.
    pub fn len(&self) -> Result<u64> {
        self.file.len().map_err(io_err("stat", &self.seg.path))
    }

    /// Reads the window anew: at least `need` bytes from `pos` (fewer at
    /// the end of the file), `chunk` if the file has them.
    fn fill(&mut self, pos: u64, need: usize, chunk: usize) -> Result<()> {
        let len = self.len()?;
        let avail = len.saturating_sub(pos);
        let n = (need.max(chunk) as u64).min(avail) as usize;
        self.window.clear();
        self.window.resize(n, 0);
        self.window_at = pos;
        self.len_then = len;
        match self.file.read_at(&mut self.window, pos) {
            Ok(()) => Ok(()),
            // Truncated since the length was read: a short read.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.window.clear();
                Ok(())
            }
            Err(e) => Err(Error::io("read", &self.seg.path, e)),
        }
    }

    /// The window's bytes from `pos` on (empty if it does not hold `pos`).
    fn from(&self, pos: u64) -> &[u8] {
        match pos.checked_sub(self.window_at) {
            Some(off) if off <= self.window.len() as u64 => &self.window[off as usize..],
            _ => &[],
        }
    }

    /// What the window says lies at `pos` (`whole`: a whole, CRC-valid
    /// batch; otherwise a header whose batch the file holds); `Err` with
    /// the bytes needed when the window is too short to tell.
    fn look(&self, pos: u64, whole: bool) -> std::result::Result<At, usize> {
        let bytes = self.from(pos);
        let avail = bytes.len() as u64;
        let stop = |e: DecodeError, offset| {
            let zeros = bytes.iter().take(MAX_HEADER_LEN).all(|&b| b == 0);
            At::Stop(if bytes.is_empty() {
                Stop::Eof
            } else if zeros {
                Stop::Zeros
            } else {
                Stop::Invalid(e.into_error(&self.seg.path, pos, offset, avail))
            })
        };
        let h = match peek_fixed_header(bytes) {
            Ok(h) => h,
            Err(DecodeError::Incomplete { needed }) if needed > bytes.len() => {
                return Err(needed);
            }
            Err(e) => return Ok(stop(e, None)),
        };
        let total = h.total_len();
        if !whole {
            // The header alone: the file must hold the whole batch.
            return if pos + total as u64 <= self.len_then {
                Ok(At::Batch(h))
            } else {
                let cut = DecodeError::Incomplete { needed: total };
                Ok(stop(cut, Some(h.base_offset)))
            };
        }
        if bytes.len() < total {
            return Err(total);
        }
        match decode_batch(&bytes[..total]) {
            Ok(h) => Ok(At::Batch(h)),
            Err(e) => Ok(stop(e, Some(h.base_offset))),
        }
    }

    /// What lies at `pos`: from the window read ahead if it shows a batch
    /// there (bytes once valid never change: the writer only appends),
    /// otherwise from the file, read anew.
    fn at(&mut self, pos: u64, whole: bool, chunk: usize) -> Result<At> {
        if let Ok(at @ At::Batch(_)) = self.look(pos, whole) {
            return Ok(at);
        }
        let chunk = if self.ahead { chunk } else { HEADER_CHUNK };
        let mut need = MAX_HEADER_LEN;
        loop {
            self.fill(pos, need, chunk)?;
            let asked = need.max(chunk);
            match self.look(pos, whole) {
                Ok(at) => {
                    self.ahead = matches!(at, At::Batch(_));
                    return Ok(at);
                }
                Err(n) if self.from(pos).len() >= asked && n > need => need = n,
                // The file ends before the `n` bytes the batch needs.
                Err(n) => {
                    self.ahead = false;
                    let bytes = self.from(pos);
                    let cut = DecodeError::Incomplete { needed: n };
                    return Ok(At::Stop(if bytes.is_empty() {
                        Stop::Eof
                    } else if bytes.iter().take(MAX_HEADER_LEN).all(|&b| b == 0) {
                        Stop::Zeros
                    } else {
                        let avail = bytes.len() as u64;
                        Stop::Invalid(cut.into_error(&self.seg.path, pos, None, avail))
                    }));
                }
            }
        }
    }

    /// The whole, CRC-valid batch at `pos`, or why there is none.
    pub fn batch_at(&mut self, pos: u64) -> Result<At> {
        self.at(pos, true, DATA_CHUNK)
    }

    /// The header of the batch at `pos`, if the file holds a batch there
    /// whole (its length and magic checked, not its CRC: for walking over
    /// batches without reading them), or why there is none.
    pub fn header_at(&mut self, pos: u64) -> Result<At> {
        self.at(pos, false, HEADER_CHUNK)
    }

    /// The bytes of the batch [`batch_at`](Self::batch_at) just returned
    /// for `pos`.
    pub fn bytes(&self, pos: u64, h: &BatchHeader) -> &[u8] {
        let b = self.from(pos);
        &b[..h.total_len().min(b.len())]
    }

    /// Walks the headers from the start of the file to the batch holding
    /// `wanted` (the first whose last offset is `>= wanted`) without
    /// reading batch bodies. Each batch must start exactly where the one
    /// before it ends (`strict`: the segment being written, where the
    /// writer only appends and a batch whose base offset does not continue
    /// may be half copied) or at least there (a finished segment, which
    /// compaction may have rewritten with gaps). Returns the batch's byte
    /// position and the offset it must start at, or where the batches end
    /// and why.
    pub fn walk_to(&mut self, wanted: u64, strict: bool) -> Result<Walk> {
        let mut pos = 0;
        let mut next = self.seg.base;
        loop {
            match self.header_at(pos)? {
                At::Batch(h) if fits(&h, next, strict) => {
                    if h.last_offset() >= wanted {
                        return Ok(Walk::Found { pos, next });
                    }
                    pos += h.total_len() as u64;
                    next = h.next_offset();
                }
                At::Batch(h) => {
                    let kind = crate::error::CorruptionKind::OffsetOutOfOrder {
                        expected: next,
                        found: h.base_offset,
                    };
                    let e = Error::corrupted(&self.seg.path, pos, Some(h.base_offset), kind);
                    return Ok(Walk::End {
                        pos,
                        next,
                        stop: Stop::Invalid(e),
                    });
                }
                At::Stop(stop) => return Ok(Walk::End { pos, next, stop }),
            }
        }
    }
}

/// Whether a batch starting at `h.base_offset` may follow one ending
/// before `next`.
pub(super) fn fits(h: &BatchHeader, next: u64, strict: bool) -> bool {
    if strict {
        h.base_offset == next
    } else {
        h.base_offset >= next
    }
}

/// Where [`SegReader::walk_to`] stopped.
#[derive(Debug)]
pub(super) enum Walk {
    /// The batch holding the wanted offset (or the first after it) is at
    /// byte `pos` and must start at offset `next`.
    Found { pos: u64, next: u64 },
    /// The batches end at byte `pos`, offset `next`, for this reason.
    End { pos: u64, next: u64, stop: Stop },
}
