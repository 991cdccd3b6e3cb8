//! [`Cursor`]: the batches of one partition in offset order, read from its
//! segment files while a writer may append, roll, and run retention and
//! compaction.
//!
//! The cursor holds its current segment file open and a byte position in
//! it. An open file stays readable when the writer deletes it (retention)
//! or renames another file over its name (compaction), and what was valid
//! in it stays valid, so the cursor reads on from the handle it has.
//!
//! - **The valid end.** A batch counts once it is whole and CRC-valid and
//!   its base offset continues the previous batch: exactly in the segment
//!   being written (the CRC does not cover the base offset, so this guards
//!   a batch half copied), at least in a finished one (compaction leaves
//!   gaps). Zeros, a short read, a bad length or CRC end the segment being
//!   written *for now*.
//! - **Moving on.** At the end of its segment the cursor lists the
//!   directory. Only when a newer segment exists is the current one
//!   finished (the writer seals and trims a segment before it creates the
//!   next): the cursor reads its position once more with the finished
//!   rules, then opens the segment with the greatest base offset at or
//!   below the next offset it needs, walking its headers to that offset.
//! - **Gone segments.** A segment deleted or renamed before the cursor
//!   opened it is found again by listing anew. An offset below the first
//!   segment (retention deleted it) moves the cursor to the first segment,
//!   and the offsets stepped over are reported ([`Step::skipped`]),
//!   but only when two listings agree, since a listing taken during a
//!   compaction swap may miss a file being renamed.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::files::{fits, list_segments, At, SegReader, Stop, Walk, ATTEMPTS, RETRY_PAUSE};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::batch::BatchHeader;
use crate::io::FileSystem;

/// The segment a cursor reads.
#[derive(Debug)]
struct Current {
    file: SegReader,
    /// Whether a newer segment exists: this one is finished.
    finished: bool,
}

/// What [`Cursor::next_batch`] found.
pub(super) struct Step<'a> {
    /// Offsets stepped over before `batch` (deleted by retention).
    pub skipped: Option<Range<u64>>,
    /// The next batch; `None` at the end of the partition for now.
    pub batch: Option<Batch<'a>>,
}

/// One batch the cursor read: valid, whole, in offset order.
pub(super) struct Batch<'a> {
    pub header: BatchHeader,
    pub bytes: &'a [u8],
    /// The file and byte position it was read from.
    pub path: &'a Path,
    pub pos: u64,
}

/// Reads a partition directory's batches in order (see the module docs).
#[derive(Debug)]
pub(super) struct Cursor {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    cur: Option<Current>,
    /// The byte position of the next batch in the current file.
    pos: u64,
    /// The offset the next batch starts at: exactly, in the segment being
    /// written; at least, in a finished one.
    next: u64,
    /// Offsets stepped over (deleted by retention) not yet reported.
    skipped: Option<Range<u64>>,
}

impl Cursor {
    /// A cursor on partition directory `dir`, positioned at the batch
    /// holding `offset` (or the first after it). With `seek`, an offset
    /// past the end is [`Error::OffsetOutOfRange`]; without it, the cursor
    /// waits at the end. An offset below the first segment moves it to the
    /// first segment, reporting the offsets skipped.
    pub fn new(fs: Arc<dyn FileSystem>, dir: PathBuf, offset: u64, seek: bool) -> Result<Cursor> {
        let mut c = Cursor {
            fs,
            dir,
            cur: None,
            pos: 0,
            next: offset,
            skipped: None,
        };
        c.locate(offset, seek)?;
        Ok(c)
    }

    fn skip(&mut self, r: Range<u64>) {
        self.skipped = Some(match self.skipped.take() {
            Some(s) => s.start.min(r.start)..s.end.max(r.end),
            None => r,
        });
    }

    /// Opens the segment holding `wanted` and walks to it (see the module
    /// docs). Leaves the cursor at the batch holding `wanted`, or at the
    /// end of the last segment.
    fn locate(&mut self, wanted: u64, seek: bool) -> Result<()> {
        self.cur = None;
        let mut first_seen = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(RETRY_PAUSE);
            }
            let segs = list_segments(&*self.fs, &self.dir)?;
            let Some(first) = segs.first() else {
                continue;
            };
            let mut want = wanted;
            if want < first.base {
                // Retention moved the start past `wanted`; believe it when
                // two listings agree.
                if first_seen != Some(first.base) {
                    first_seen = Some(first.base);
                    continue;
                }
                want = first.base;
            }
            let i = segs.partition_point(|s| s.base <= want) - 1;
            let last = i + 1 == segs.len();
            let Some(mut file) = SegReader::open(&*self.fs, &segs[i])? else {
                continue;
            };
            let (pos, next) = match file.walk_to(want, last)? {
                // A seek into the batch being written: only once it is
                // whole and valid is `want` below the end.
                Walk::Found { pos, next } if seek && last && want > next => {
                    match file.batch_at(pos)? {
                        At::Batch(h) if h.base_offset == next => (pos, next),
                        _ if attempt + 1 < ATTEMPTS => continue,
                        _ => {
                            return Err(Error::OffsetOutOfRange {
                                requested: wanted,
                                earliest: first.base,
                                latest: next,
                            })
                        }
                    }
                }
                Walk::Found { pos, next } => (pos, next),
                Walk::End { pos, next, stop } if last => {
                    // A batch in the way may be one being written, or a
                    // listing may have missed the newest segment: look
                    // again before taking this as the end.
                    if matches!(stop, Stop::Invalid(_)) && want > next && attempt + 1 < ATTEMPTS {
                        continue;
                    }
                    if seek && want > next {
                        return Err(Error::OffsetOutOfRange {
                            requested: wanted,
                            earliest: first.base,
                            latest: next,
                        });
                    }
                    (pos, next)
                }
                Walk::End { stop, pos, next } => {
                    // A finished segment ends before `want`, yet the next
                    // one starts after it: a listing that missed a file
                    // being renamed, or damage.
                    if attempt + 1 < ATTEMPTS {
                        continue;
                    }
                    match stop {
                        Stop::Invalid(e) => return Err(e),
                        Stop::Zeros => return Err(zeros(&segs[i].path, pos, next)),
                        Stop::Eof => {}
                    }
                    let to = segs[i + 1].base;
                    self.skip(want..to);
                    return self.locate(to, false);
                }
            };
            if want > wanted {
                self.skip(wanted..want);
            }
            self.pos = pos;
            self.next = next;
            self.cur = Some(Current {
                file,
                finished: !last,
            });
            return Ok(());
        }
        Err(Error::io(
            "find the segment holding the next offset in",
            &self.dir,
            std::io::Error::other(format!(
                "offset {wanted}: no segment file held it in {ATTEMPTS} listings"
            )),
        ))
    }

    /// Puts the cursor back before the batch at `pos` with base offset
    /// `base`, which [`next_batch`](Self::next_batch) just returned: its
    /// reader could not take it, and the next call returns it again.
    pub fn rewind(&mut self, pos: u64, base: u64) {
        self.pos = pos;
        self.next = base;
    }

    /// The next batch, or `None` at the end of the partition for now, and
    /// the offsets skipped since the last call (as one range, from the
    /// start of the first gap to the end of the last).
    pub fn next_batch(&mut self) -> Result<Step<'_>> {
        let mut reopened = false;
        loop {
            if self.cur.is_none() {
                self.locate(self.next, false)?;
            }
            let cur = self.cur.as_mut().expect("located");
            let strict = !cur.finished;
            let at = cur.file.batch_at(self.pos)?;
            let stop = match at {
                At::Batch(h) if fits(&h, self.next, strict) => {
                    let pos = self.pos;
                    self.pos += h.total_len() as u64;
                    self.next = h.next_offset();
                    let cur = self.cur.as_ref().expect("located");
                    return Ok(Step {
                        skipped: self.skipped.take(),
                        batch: Some(Batch {
                            header: h,
                            bytes: cur.file.bytes(pos, &h),
                            path: &cur.file.seg.path,
                            pos,
                        }),
                    });
                }
                At::Batch(h) => {
                    let kind = CorruptionKind::OffsetOutOfOrder {
                        expected: self.next,
                        found: h.base_offset,
                    };
                    let path = &cur.file.seg.path;
                    Stop::Invalid(Error::corrupted(path, self.pos, Some(h.base_offset), kind))
                }
                At::Stop(stop) => stop,
            };
            if cur.finished {
                // The end of a finished segment: on to the next one. The
                // writer trims a segment before it starts the next, so
                // zeros inside a finished one are damage, not space.
                match stop {
                    Stop::Eof => {
                        self.cur = None;
                        continue;
                    }
                    Stop::Zeros => return Err(zeros(&cur.file.seg.path, self.pos, self.next)),
                    Stop::Invalid(e) => return Err(e),
                }
            }
            let base = cur.file.seg.base;
            if list_segments(&*self.fs, &self.dir)?
                .iter()
                .any(|s| s.base > base)
            {
                // The writer created a newer segment, so it finished this
                // one first: read this position once more, as final.
                cur.finished = true;
                continue;
            }
            if self.pos == 0 && !reopened {
                // The writer replaces an empty active segment too small for
                // a batch by a new file of the same name.
                reopened = true;
                self.cur = None;
                continue;
            }
            return Ok(Step {
                skipped: self.skipped.take(),
                batch: None,
            });
        }
    }
}

/// Zeros where a finished segment should hold its next batch.
fn zeros(path: &std::path::Path, pos: u64, next: u64) -> Error {
    Error::corrupted(
        path,
        pos,
        Some(next),
        CorruptionKind::BadLength { length: 0 },
    )
}
