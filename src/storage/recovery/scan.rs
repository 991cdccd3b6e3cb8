//! The recovery scan: walking a segment batch by batch with full
//! validation, placing the index entries the append path would have
//! placed.

use crate::error::CorruptionKind;
use crate::format::batch::{decode_batch, version_of, DecodeError, Version};
use crate::format::index::V2_MAX_REL;
use crate::storage::cursor::IndexCursor;

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    /// Only zero bytes follow: space preallocated and never written.
    Zeros,
    Damaged(CorruptionKind),
    /// A valid batch this build cannot read (a newer version, or a codec it
    /// lacks): never cut off.
    Unsupported(DecodeError),
}

/// The result of walking (part of) a segment batch by batch.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Where the walk stopped: the end of the last valid batch.
    pub valid_len: u64,
    pub next_offset: u64,
    pub cursor: IndexCursor,
    /// The index entries the walk placed, encoded.
    pub offsets: Vec<u8>,
    pub times: Vec<u8>,
    pub stop: Option<Stop>,
    /// Whether every batch must start exactly at `next_offset` (no
    /// compaction gaps: see `LoadCtx::exact_offsets`).
    pub exact: bool,
}

impl Scan {
    /// A walk about to start at byte `pos`, where the batches before left
    /// `next_offset` and `cursor`.
    pub fn at(pos: u64, next_offset: u64, cursor: IndexCursor) -> Scan {
        Scan {
            valid_len: pos,
            next_offset,
            cursor,
            offsets: Vec::new(),
            times: Vec::new(),
            stop: None,
            exact: false,
        }
    }

    /// Walks on from `valid_len`, validating every batch (CRC, version,
    /// offsets in order, relative offsets representable) and placing the
    /// index entries the append path would have placed, until the first
    /// invalid batch (recorded in `stop`), the end of `bytes`, or the first
    /// batch boundary at or past `until`.
    ///
    /// `zeros_from(p)` tells whether every byte of the file from `p` on is
    /// zero — for a file, without reading its never-written preallocated
    /// tail (see [`MappedFile::zeros_from`]).
    pub fn run_checked(
        &mut self,
        bytes: &[u8],
        base: u64,
        until: u64,
        zeros_from: &dyn Fn(usize) -> bool,
    ) {
        let mut pos = self.valid_len as usize;
        let until = until.min(bytes.len() as u64) as usize;
        while pos < until {
            let rest = &bytes[pos..];
            let h = match decode_batch(rest) {
                Ok(h) => h,
                Err(e) => {
                    self.stop = Some(if zeros_from(pos) {
                        Stop::Zeros
                    } else {
                        match e {
                            DecodeError::Incomplete { needed } => {
                                Stop::Damaged(CorruptionKind::Truncated {
                                    needed: needed as u64,
                                    available: rest.len() as u64,
                                })
                            }
                            DecodeError::Corrupt(k) => Stop::Damaged(k),
                            e @ (DecodeError::UnsupportedVersion(_)
                            | DecodeError::UnsupportedCodec(_)) => Stop::Unsupported(e),
                        }
                    });
                    break;
                }
            };
            if h.base_offset < self.next_offset || (self.exact && h.base_offset != self.next_offset)
            {
                self.stop = Some(Stop::Damaged(CorruptionKind::OffsetOutOfOrder {
                    expected: self.next_offset,
                    found: h.base_offset,
                }));
                break;
            }
            let version = self.cursor.version();
            if h.version != version {
                self.stop = Some(Stop::Damaged(CorruptionKind::BadRecord {
                    reason: "a batch of another layout than its segment's",
                }));
                break;
            }
            let far = CorruptionKind::BadRecord {
                reason: "offset too far from the segment's base offset",
            };
            let Ok(rel) = u32::try_from(h.base_offset - base) else {
                self.stop = Some(Stop::Damaged(far));
                break;
            };
            // v1 keeps relative offsets in a u32; v2 (Kafka's indexes)
            // keeps relative offsets and positions in an i32.
            let fits = match version {
                Version::V1 => h.next_offset() - base <= u64::from(u32::MAX),
                Version::V2 => {
                    h.last_offset() - base <= u64::from(V2_MAX_REL)
                        && pos as u64 <= u64::from(V2_MAX_REL)
                }
            };
            if !fits {
                self.stop = Some(Stop::Damaged(far));
                break;
            }
            let last_rel = rel + h.last_offset_delta;
            let (o, t) =
                self.cursor
                    .place(pos as u64, rel, last_rel, h.base_timestamp, h.max_timestamp);
            if let Some(o) = o {
                self.offsets.extend_from_slice(&o.encode(version));
            }
            if let Some(t) = t {
                self.times.extend_from_slice(&t.encode(version));
            }
            self.next_offset = h.next_offset();
            pos += h.total_len();
        }
        self.valid_len = pos as u64;
    }

    /// The time index of the scanned segment once sealed: the rebuilt
    /// entries plus the seal entry (FORMAT.md §4.2), which gives a sealed
    /// segment's largest timestamp without a scan.
    pub fn sealed_time_index(&self, base: u64, next: u64) -> Vec<u8> {
        let mut times = self.times.clone();
        let mut cursor = self.cursor;
        let rel = u32::try_from(next - base).unwrap_or(u32::MAX);
        if let Some(e) = cursor.seal_entry(rel) {
            times.extend_from_slice(&e.encode(cursor.version()));
        }
        times
    }
}

/// Walks a whole segment from its first byte (see [`Scan::run_checked`]).
pub(crate) fn scan_segment(bytes: &[u8], base: u64, interval: u64) -> Scan {
    scan_segment_checked(bytes, base, interval, &|p| all_zero(&bytes[p..]), false)
}

/// [`scan_segment`] with a zero check that need not read the bytes (see
/// [`Scan::run_checked`]).
pub(crate) fn scan_segment_checked(
    bytes: &[u8],
    base: u64,
    interval: u64,
    zeros_from: &dyn Fn(usize) -> bool,
    exact: bool,
) -> Scan {
    let cursor = IndexCursor::new(interval, segment_version(bytes));
    let mut scan = Scan::at(0, base, cursor);
    scan.exact = exact;
    scan.run_checked(bytes, base, bytes.len() as u64, zeros_from);
    scan
}

/// The layout of a segment, from its first batch: v2 for an empty segment
/// (or one that starts with zero fill), since new batches are v2.
pub(crate) fn segment_version(log: &[u8]) -> Version {
    version_of(log)
}

pub(crate) use crate::storage::mapped::all_zero;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_of_zeros_and_garbage() {
        let s = scan_segment(&[0u8; 300], 10, 4096);
        assert_eq!(
            (s.valid_len, s.next_offset, s.stop),
            (0, 10, Some(Stop::Zeros))
        );
        let s = scan_segment(&[7u8; 300], 10, 4096);
        assert!(matches!(s.stop, Some(Stop::Damaged(_))));
        let s = scan_segment(&[], 10, 4096);
        assert_eq!(s.stop, None);
    }
}
