//! Loading a partition from disk: validating segments, truncating a damaged
//! tail, and rebuilding indexes.
//!
//! Segments wholly below the recovery point of a cleanly closed log are
//! trusted, with cheap checks of their indexes. Everything from the segment
//! holding the recovery point on (after an unclean shutdown), and always the
//! last segment, is scanned batch by batch with full CRC validation, and its
//! indexes are rebuilt from the scan. After a process crash on the same boot,
//! and after a clean close, the last segment's scan resumes near its end
//! instead (`storage::tail`): both leave its files exactly as they were
//! stored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::mapped::MappedFile;
use super::segment::{
    index_capacities, parse_segment_name, segment_path, Segment, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT,
};
use super::tail;
use crate::config::RecoveryMode;
use crate::error::{io_err, CorruptionKind, Error, Result};
use crate::format::batch::{decode_batch, DecodeError, VERSION};
use crate::format::index::{
    offset_entry, time_entry, valid_offset_entries, valid_time_entries, OffsetEntry, TimeEntry,
    OFFSET_ENTRY_LEN, TIME_ENTRY_LEN,
};
use crate::io::{FileSystem, OpenMode};

/// Decides where index entries go. Shared by the append path and by index
/// rebuilds, so both produce identical indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexCursor {
    interval: u64,
    last_pos: u64,
    last_time_ts: Option<i64>,
    /// The largest timestamp of the batches seen so far.
    pub max_ts: i64,
    /// The base timestamp of the segment's first batch.
    pub first_ts: Option<i64>,
}

impl IndexCursor {
    pub fn new(interval: u64) -> Self {
        IndexCursor {
            interval,
            last_pos: 0,
            last_time_ts: None,
            max_ts: i64::MIN,
            first_ts: None,
        }
    }

    /// The state a cursor had just before the batch at `pos` was placed,
    /// when the previous offset entry was at `last_pos`, the batches
    /// before `pos` had `max_ts` as their largest timestamp, the last time
    /// entry so far held `last_time_ts`, and the first batch had `first_ts`.
    /// See `storage::tail` for how recovery derives these from an index.
    pub fn resume(
        interval: u64,
        last_pos: u64,
        max_ts: i64,
        last_time_ts: Option<i64>,
        first_ts: i64,
    ) -> Self {
        IndexCursor {
            interval,
            last_pos,
            last_time_ts,
            max_ts,
            first_ts: Some(first_ts),
        }
    }

    /// The entries to add before a batch is written at `pos` with relative
    /// offset `rel`.
    pub fn before_batch(&mut self, pos: u64, rel: u32) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        if pos == 0 || pos - self.last_pos < self.interval {
            return (None, None);
        }
        self.last_pos = pos;
        let off = OffsetEntry {
            rel,
            pos: pos as u32,
        };
        let time = if self.max_ts != i64::MIN && self.last_time_ts.is_none_or(|t| self.max_ts > t) {
            self.last_time_ts = Some(self.max_ts);
            Some(TimeEntry {
                ts: self.max_ts,
                rel,
            })
        } else {
            None
        };
        (Some(off), time)
    }

    /// Accounts for a written batch.
    pub fn after_batch(&mut self, base_ts: i64, max_ts: i64) {
        self.max_ts = self.max_ts.max(max_ts);
        self.first_ts.get_or_insert(base_ts);
    }
}

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    /// Only zero bytes follow: space preallocated and never written.
    Zeros,
    Damaged(CorruptionKind),
    Unsupported(u8),
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
                            DecodeError::UnsupportedVersion(v) => Stop::Unsupported(v),
                        }
                    });
                    break;
                }
            };
            if h.base_offset < self.next_offset {
                self.stop = Some(Stop::Damaged(CorruptionKind::OffsetOutOfOrder {
                    expected: self.next_offset,
                    found: h.base_offset,
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
            if h.next_offset() - base > u64::from(u32::MAX) {
                self.stop = Some(Stop::Damaged(far));
                break;
            }
            let (o, t) = self.cursor.before_batch(pos as u64, rel);
            if let Some(o) = o {
                self.offsets.extend_from_slice(&o.encode());
            }
            if let Some(t) = t {
                self.times.extend_from_slice(&t.encode());
            }
            self.cursor.after_batch(h.base_timestamp, h.max_timestamp);
            self.next_offset = h.next_offset();
            pos += h.total_len();
        }
        self.valid_len = pos as u64;
    }

    /// The time index of the scanned segment once sealed: the rebuilt
    /// entries plus the seal entry (the segment's max timestamp at its next
    /// offset), which recovery checks to trust a sealed time index.
    pub fn sealed_time_index(&self, base: u64, next: u64) -> Vec<u8> {
        let mut times = self.times.clone();
        if next > base {
            let rel = u32::try_from(next - base).unwrap_or(u32::MAX);
            times.extend_from_slice(
                &TimeEntry {
                    ts: self.cursor.max_ts,
                    rel,
                }
                .encode(),
            );
        }
        times
    }
}

/// Walks a whole segment from its first byte (see [`Scan::run_checked`]).
pub(crate) fn scan_segment(bytes: &[u8], base: u64, interval: u64) -> Scan {
    scan_segment_checked(bytes, base, interval, &|p| all_zero(&bytes[p..]))
}

/// [`scan_segment`] with a zero check that need not read the bytes (see
/// [`Scan::run_checked`]).
pub(crate) fn scan_segment_checked(
    bytes: &[u8],
    base: u64,
    interval: u64,
    zeros_from: &dyn Fn(usize) -> bool,
) -> Scan {
    let mut scan = Scan::at(0, base, IndexCursor::new(interval));
    scan.run_checked(bytes, base, bytes.len() as u64, zeros_from);
    scan
}

pub(crate) fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// What recovery did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Truncation {
    /// The segment file.
    pub path: PathBuf,
    /// The byte position it was cut at.
    pub position: u64,
    /// How many bytes were removed.
    pub bytes: u64,
    /// Why: the damage found there.
    pub reason: String,
}

/// What opening the log found and repaired. See [`Log::recovery_report`].
///
/// [`Log::recovery_report`]: crate::Log::recovery_report
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Whether the previous shutdown was clean (a `close`).
    pub clean_shutdown: bool,
    /// Segments scanned batch by batch.
    pub segments_scanned: usize,
    /// Bytes of segment data validated batch by batch (CRC included).
    pub bytes_scanned: u64,
    /// Active segments whose scan resumed at one of their last index
    /// entries instead of their first byte: possible after a crash of the
    /// process (not of the machine), whose page cache still held every byte
    /// written before it.
    pub segments_resumed: usize,
    /// Damaged tails that were cut off.
    pub truncations: Vec<Truncation>,
    /// Segment files deleted because they followed a damaged one.
    pub segments_removed: Vec<PathBuf>,
    /// Index files that were rebuilt from their segment.
    pub indexes_rebuilt: Vec<PathBuf>,
    /// Why the partition checkpoint was ignored (it was damaged), in which
    /// case every segment was scanned.
    pub checkpoint_ignored: Option<String>,
    /// Compaction swaps that a crash interrupted and the open completed.
    pub swaps_completed: Vec<PathBuf>,
}

/// What loading a partition needs to know.
pub(crate) struct LoadCtx<'a> {
    pub fs: &'a dyn FileSystem,
    pub dir: &'a Path,
    pub mode: RecoveryMode,
    pub clean: bool,
    /// The previous run had the directory open on this boot of the machine
    /// (the session marker says so): nothing it wrote can be lost or torn
    /// except by the process's own last store.
    pub same_boot: bool,
    pub recovery_point: u64,
    pub log_start: u64,
    pub segment_bytes: u64,
    pub index_interval: u64,
    pub segment_index_bytes: u64,
    pub sync: bool,
}

/// A loaded partition: its segments (the last one active) and the append
/// state of the active segment.
pub(crate) struct Loaded {
    pub segments: Vec<Arc<Segment>>,
    pub cursor: IndexCursor,
    /// Everything below this offset is on stable storage; `None`: all that
    /// was loaded is (synced at the last close, or by this open).
    pub durable: Option<u64>,
}

pub(crate) fn load_partition(ctx: &LoadCtx<'_>, report: &mut RecoveryReport) -> Result<Loaded> {
    let fs = ctx.fs;
    resolve_swaps(ctx, report)?;
    let names = fs.read_dir(ctx.dir).map_err(io_err("list", ctx.dir))?;
    let mut bases: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_name(n, LOG_EXT))
        .collect();
    bases.sort_unstable();
    // Index files whose segment is gone are leftovers of an interrupted
    // delete; they would confuse a future segment with the same base.
    for n in &names {
        let orphan = [INDEX_EXT, TIME_INDEX_EXT]
            .iter()
            .filter_map(|ext| parse_segment_name(n, ext))
            .any(|b| bases.binary_search(&b).is_err());
        if orphan {
            let p = ctx.dir.join(n);
            fs.remove_file(&p)
                .map_err(io_err("remove orphaned index", &p))?;
        }
    }
    // Segments wholly below the log start offset were deleted by retention
    // before a crash finished removing their files.
    while bases.len() > 1 && bases[1] <= ctx.log_start {
        let b = bases.remove(0);
        remove_segment_files(fs, ctx.dir, b)?;
    }
    if bases.is_empty() {
        // Never reuse an offset that may have been handed out.
        let base = ctx.log_start.max(ctx.recovery_point);
        let seg = Segment::create(
            fs,
            ctx.dir,
            base,
            ctx.segment_bytes,
            ctx.segment_index_bytes,
        )
        .map_err(io_err("create segment in", ctx.dir))?;
        return Ok(Loaded {
            segments: vec![Arc::new(seg)],
            cursor: IndexCursor::new(ctx.index_interval),
            durable: None,
        });
    }
    let last = bases.len() - 1;
    let scan_from = if ctx.clean {
        last
    } else {
        bases
            .iter()
            .rposition(|&b| b <= ctx.recovery_point)
            .unwrap_or(0)
    };
    let mut segments = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate().take(scan_from) {
        let seg = open_trusted(ctx, base, bases[i + 1], report)?;
        // Sealed: no descriptors, and mapped again only when read, so that
        // opening a log of any number of segments holds neither open.
        seg.release_handles();
        seg.unmap();
        segments.push(Arc::new(seg));
    }
    let mut cursor = IndexCursor::new(ctx.index_interval);
    let mut durable = None;
    let mut i = scan_from;
    while i < bases.len() {
        let base = bases[i];
        let next_base = bases.get(i + 1).copied();
        let (seg, c, ok) = open_scanned(ctx, base, next_base, report)?;
        if next_base.is_none() && unsynced_tail(ctx) {
            // Every earlier segment was synced when it rolled (or by this
            // open), and the recovery point was durable before the crash.
            durable = Some(ctx.recovery_point.max(base));
        }
        segments.push(Arc::new(seg));
        cursor = c;
        i += 1;
        if !ok {
            for &b in &bases[i..] {
                report
                    .segments_removed
                    .push(segment_path(ctx.dir, b, LOG_EXT));
                remove_segment_files(fs, ctx.dir, b)?;
            }
            break;
        }
    }
    Ok(Loaded {
        segments,
        cursor,
        durable,
    })
}

/// Whether the last segment is left unsynced by this open: after a crash of
/// the process on the same boot the page cache holds the segment, so
/// syncing it now would only make the first poll wait for up to a whole
/// segment of writeback. The partition starts with its durable offset at
/// the recovery point (or the segment's base) instead of its end, and the
/// next `flush`, sync-policy sync, group commit or roll syncs the segment.
/// If the machine crashes first, the next open is on another boot and
/// scans from the recovery point as after any power cut.
fn unsynced_tail(ctx: &LoadCtx<'_>) -> bool {
    !ctx.clean && ctx.same_boot && ctx.sync
}

/// Finishes or undoes a compaction that a crash interrupted (FORMAT.md §7):
/// a `.cleaned` file is an unfinished copy (the inputs are intact) and is
/// removed; a `.swap` file is a finished copy whose swap had begun, so the
/// live segments it covers are removed and it takes their place; `.deleted`
/// files are inputs already replaced.
fn resolve_swaps(ctx: &LoadCtx<'_>, report: &mut RecoveryReport) -> Result<()> {
    let fs = ctx.fs;
    let names = fs.read_dir(ctx.dir).map_err(io_err("list", ctx.dir))?;
    let mut changed = false;
    for n in names.iter().filter(|n| n.ends_with(".cleaned")) {
        let p = ctx.dir.join(n);
        fs.remove_file(&p).map_err(io_err("remove", &p))?;
        changed = true;
    }
    let mut swaps: Vec<u64> = names
        .iter()
        .filter_map(|n| {
            n.strip_suffix(".swap")
                .and_then(|s| parse_segment_name(s, LOG_EXT))
        })
        .collect();
    swaps.sort_unstable();
    for base in swaps {
        let swap = ctx.dir.join(format!("{base:020}.{LOG_EXT}.swap"));
        let bytes = fs.read(&swap).map_err(io_err("read", &swap))?;
        let scan = scan_segment(&bytes, base, ctx.index_interval);
        if scan.stop.is_some() {
            let kind = CorruptionKind::BadRecord {
                reason: "a compaction swap file is damaged",
            };
            return Err(Error::corrupted(swap, scan.valid_len, None, kind));
        }
        let live = fs.read_dir(ctx.dir).map_err(io_err("list", ctx.dir))?;
        for b in live.iter().filter_map(|n| parse_segment_name(n, LOG_EXT)) {
            if b >= base && b < scan.next_offset {
                remove_segment_files(fs, ctx.dir, b)?;
            }
        }
        remove_segment_files(fs, ctx.dir, base)?;
        let target = segment_path(ctx.dir, base, LOG_EXT);
        fs.rename(&swap, &target).map_err(io_err("rename", &swap))?;
        report.swaps_completed.push(target);
        changed = true;
    }
    for n in names.iter().filter(|n| n.ends_with(".deleted")) {
        let p = ctx.dir.join(n);
        if fs.exists(&p) {
            fs.remove_file(&p).map_err(io_err("remove", &p))?;
            changed = true;
        }
    }
    if changed && ctx.sync {
        fs.sync_dir(ctx.dir).map_err(io_err("sync", ctx.dir))?;
    }
    Ok(())
}

pub(crate) fn remove_segment_files(fs: &dyn FileSystem, dir: &Path, base: u64) -> Result<()> {
    for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
        let p = segment_path(dir, base, ext);
        if fs.exists(&p) {
            fs.remove_file(&p).map_err(io_err("remove", &p))?;
        }
    }
    Ok(())
}

/// Opens a sealed segment below the recovery point, checking its indexes
/// and rebuilding them if they disagree with the log.
fn open_trusted(
    ctx: &LoadCtx<'_>,
    base: u64,
    next_base: u64,
    report: &mut RecoveryReport,
) -> Result<Segment> {
    let fs = ctx.fs;
    let log_path = segment_path(ctx.dir, base, LOG_EXT);
    let log = MappedFile::open_whole(fs, &log_path).map_err(io_err("map", &log_path))?;
    let log_bytes = log.view().map_err(io_err("map", &log_path))?;
    let len = log.len();
    let next_rel = next_base - base;
    if let (Some(offsets), Some(times)) = (
        open_sealed_index(ctx, base, INDEX_EXT, OFFSET_ENTRY_LEN),
        open_sealed_index(ctx, base, TIME_INDEX_EXT, TIME_ENTRY_LEN),
    ) {
        let (offsets_bytes, times_bytes) = (
            offsets.view().unwrap_or_default(),
            times.view().unwrap_or_default(),
        );
        let n = offsets_bytes.len() / OFFSET_ENTRY_LEN;
        let offsets_ok = match n
            .checked_sub(1)
            .and_then(|i| offset_entry(&offsets_bytes, i))
        {
            None => true,
            Some(e) => {
                u64::from(e.pos) < len
                    && log_bytes
                        .get(e.pos as usize..)
                        .and_then(|b| crate::format::batch::peek_header(b).ok())
                        .is_some_and(|h| h.base_offset == base + u64::from(e.rel))
            }
        };
        let nt = times_bytes.len() / TIME_ENTRY_LEN;
        let seal = nt.checked_sub(1).and_then(|i| time_entry(&times_bytes, i));
        let times_ok = match seal {
            Some(e) => u64::from(e.rel) == next_rel,
            None => len == 0,
        };
        if offsets_ok && times_ok {
            let max_ts = seal.map_or(i64::MIN, |e| e.ts);
            return Ok(Segment::from_parts(
                base, log, offsets, times, next_base, max_ts,
            ));
        }
    }
    // Rebuild both indexes from the log.
    let scan = scan_segment(&log_bytes, base, ctx.index_interval);
    drop(log_bytes);
    report.bytes_scanned += scan.valid_len;
    let times = scan.sealed_time_index(base, scan.next_offset);
    let offsets = write_sealed_index(ctx, base, INDEX_EXT, &scan.offsets, report)?;
    let times = write_sealed_index(ctx, base, TIME_INDEX_EXT, &times, report)?;
    // A damaged batch inside a trusted segment is left in place: reads that
    // reach it fail with `Corrupted`, and nothing after it is lost.
    Ok(Segment::from_parts(
        base,
        log,
        offsets,
        times,
        next_base,
        scan.cursor.max_ts,
    ))
}

fn open_sealed_index(ctx: &LoadCtx<'_>, base: u64, ext: &str, entry: usize) -> Option<MappedFile> {
    let path = segment_path(ctx.dir, base, ext);
    let f = MappedFile::open_whole(ctx.fs, &path).ok()?;
    let len = f.len();
    let bytes = f.view().ok()?;
    let valid = if entry == OFFSET_ENTRY_LEN {
        valid_offset_entries(&bytes)
    } else {
        valid_time_entries(&bytes)
    };
    drop(bytes);
    // A sealed index is trimmed to its entries, so anything after the valid
    // prefix (zero fill, a torn entry, garbage) means it cannot be trusted.
    ((valid * entry) as u64 == len).then_some(f)
}

fn write_sealed_index(
    ctx: &LoadCtx<'_>,
    base: u64,
    ext: &str,
    bytes: &[u8],
    report: &mut RecoveryReport,
) -> Result<MappedFile> {
    let path = segment_path(ctx.dir, base, ext);
    let f = ctx
        .fs
        .open(&path, OpenMode::CreateTruncate)
        .map_err(io_err("rebuild", &path))?;
    f.write_at(bytes, 0).map_err(io_err("write", &path))?;
    if ctx.sync {
        f.sync_data().map_err(io_err("sync", &path))?;
    }
    report.indexes_rebuilt.push(path.clone());
    let len = bytes.len() as u64;
    MappedFile::open(ctx.fs, &path, len, len).map_err(io_err("map", &path))
}

/// Maps the active segment's indexes as the crashed process left them and
/// resumes the scan near the end (`None`: scan from byte 0).
fn resume_tail(
    ctx: &LoadCtx<'_>,
    base: u64,
    log: &[u8],
    zeros_from: &dyn Fn(usize) -> bool,
) -> Option<tail::Resumed> {
    let map = |ext| MappedFile::open_whole(ctx.fs, &segment_path(ctx.dir, base, ext)).ok();
    let (offsets, times) = (map(INDEX_EXT)?, map(TIME_INDEX_EXT)?);
    let (offsets, times) = (offsets.view().ok()?, times.view().ok()?);
    let files = tail::Files {
        log,
        offsets: &offsets,
        times: &times,
        zeros_from,
    };
    tail::resume(&files, base, ctx.index_interval)
}

/// Scans a segment, truncating it at the first invalid batch. Returns the
/// segment (opened for appends if it is to stay the last one), its cursor,
/// and whether it ended cleanly (false: later segments must go).
fn open_scanned(
    ctx: &LoadCtx<'_>,
    base: u64,
    next_base: Option<u64>,
    report: &mut RecoveryReport,
) -> Result<(Segment, IndexCursor, bool)> {
    let fs = ctx.fs;
    let log_path = segment_path(ctx.dir, base, LOG_EXT);
    let reader = MappedFile::open_whole(fs, &log_path).map_err(io_err("map", &log_path))?;
    let reader_bytes = reader.view().map_err(io_err("map", &log_path))?;
    let file_len = reader.len();
    let is_last = next_base.is_none();
    let zeros_from = |p: usize| reader.zeros_from(p as u64);
    // The resume is sound wherever the files hold exactly what the writer
    // stored, in order: after a crash of the process on this boot (the page
    // cache has it all), and after a clean close on any boot (close synced
    // the segment and both indexes before the shutdown marker).
    let resumed = if is_last && (ctx.clean || ctx.same_boot) {
        resume_tail(ctx, base, &reader_bytes, &zeros_from)
    } else {
        None
    };
    let mut scan = match resumed {
        Some(r) => {
            report.segments_resumed += 1;
            report.bytes_scanned += r.scan.valid_len - r.from;
            r.scan
        }
        None => {
            let scan = scan_segment_checked(&reader_bytes, base, ctx.index_interval, &zeros_from);
            report.bytes_scanned += scan.valid_len;
            scan
        }
    };
    drop(reader_bytes);
    drop(reader);
    report.segments_scanned += 1;
    // A sealed segment must end exactly where the next one starts.
    if scan.stop.is_none() {
        if let Some(nb) = next_base {
            if scan.next_offset != nb {
                scan.stop = Some(Stop::Damaged(CorruptionKind::OffsetOutOfOrder {
                    expected: scan.next_offset,
                    found: nb,
                }));
            }
        }
    }
    let mut intact = true;
    match &scan.stop {
        None => {}
        // Zeros after the data are the unused preallocation of the active
        // segment: expected after any unclean stop, not damage.
        Some(Stop::Zeros) if is_last => {}
        Some(Stop::Unsupported(v)) => {
            return Err(Error::UnsupportedVersion {
                path: log_path,
                position: scan.valid_len,
                found: u32::from(*v),
                supported: u32::from(VERSION),
            })
        }
        Some(stop) => {
            let kind = match stop {
                Stop::Damaged(k) => k.clone(),
                _ => CorruptionKind::BadRecord {
                    reason: "zero bytes inside a sealed segment",
                },
            };
            if ctx.mode == RecoveryMode::AbsoluteConsistency {
                return Err(Error::corrupted(
                    log_path,
                    scan.valid_len,
                    Some(scan.next_offset),
                    kind,
                ));
            }
            report.truncations.push(Truncation {
                path: log_path.clone(),
                position: scan.valid_len,
                bytes: file_len - scan.valid_len,
                reason: kind.to_string(),
            });
            intact = false;
        }
    }
    let keep_appending = is_last || !intact;
    if file_len != scan.valid_len {
        let f = fs
            .open(&log_path, OpenMode::ReadWrite)
            .map_err(io_err("open", &log_path))?;
        f.set_len(scan.valid_len)
            .map_err(io_err("truncate", &log_path))?;
        // Left unsynced with the rest of the tail: a machine crash before
        // the next sync brings back at most the cut bytes, which the next
        // (other-boot) open cuts again.
        if ctx.sync && !(is_last && unsynced_tail(ctx)) {
            f.sync_data().map_err(io_err("sync", &log_path))?;
        }
    }
    if !keep_appending {
        let seg_next = scan.next_offset;
        let times = scan.sealed_time_index(base, seg_next);
        let log = MappedFile::open(fs, &log_path, scan.valid_len, scan.valid_len)
            .map_err(io_err("map", &log_path))?;
        if ctx.sync {
            log.sync().map_err(io_err("sync", &log_path))?;
        }
        let offsets = write_sealed_index(ctx, base, INDEX_EXT, &scan.offsets, report)?;
        let times = write_sealed_index(ctx, base, TIME_INDEX_EXT, &times, report)?;
        let seg = Segment::from_parts(base, log, offsets, times, seg_next, scan.cursor.max_ts);
        return Ok((seg, scan.cursor, true));
    }
    // The segment stays (or becomes) the active one: reopen it for appends
    // and rebuild its indexes into fresh mapped files.
    let capacity = ctx.segment_bytes.max(scan.valid_len);
    let log = MappedFile::open(fs, &log_path, capacity, scan.valid_len)
        .map_err(io_err("map", &log_path))?;
    // What the scan accepted counts as durable from here on (the partition
    // starts with durable = end), so make it so: after a process crash it
    // may still be only in the page cache. On the same boot it is left to
    // the next sync instead (see `unsynced_tail`).
    if ctx.sync && !unsynced_tail(ctx) {
        log.sync().map_err(io_err("sync", &log_path))?;
    }
    let (oc, tc) = index_capacities(ctx.segment_index_bytes);
    let idx_path = segment_path(ctx.dir, base, INDEX_EXT);
    let time_path = segment_path(ctx.dir, base, TIME_INDEX_EXT);
    let offsets = MappedFile::create(fs, &idx_path, oc.max(scan.offsets.len() as u64))
        .map_err(io_err("create", &idx_path))?;
    let times = MappedFile::create(
        fs,
        &time_path,
        tc.max(scan.times.len() as u64 + TIME_ENTRY_LEN as u64),
    )
    .map_err(io_err("create", &time_path))?;
    // The time index first: a crash while rewriting leaves either no offset
    // entries (and a scan from byte 0 next time) or a whole time index
    // beside a prefix of the offset index, which is what the same-boot
    // recovery of `storage::tail` relies on.
    for (f, bytes) in [(&times, &scan.times), (&offsets, &scan.offsets)] {
        if !bytes.is_empty() {
            let end = f
                .write_unpublished(bytes)
                .map_err(io_err("write", f.path()))?;
            f.publish(end);
        }
    }
    let seg = Segment::from_parts(
        base,
        log,
        offsets,
        times,
        scan.next_offset,
        scan.cursor.max_ts,
    );
    Ok((seg, scan.cursor, intact))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_indexes_every_interval_and_never_position_zero() {
        let mut c = IndexCursor::new(100);
        assert_eq!(c.before_batch(0, 0), (None, None));
        c.after_batch(5, 5);
        assert_eq!(c.before_batch(60, 1), (None, None));
        c.after_batch(7, 9);
        let (o, t) = c.before_batch(120, 2);
        assert_eq!(o, Some(OffsetEntry { rel: 2, pos: 120 }));
        assert_eq!(t, Some(TimeEntry { ts: 9, rel: 2 }));
        c.after_batch(1, 1);
        // The max timestamp did not grow: no new time entry.
        let (o, t) = c.before_batch(220, 3);
        assert_eq!(o, Some(OffsetEntry { rel: 3, pos: 220 }));
        assert_eq!(t, None);
    }

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
