//! Opening one segment at load: a trusted sealed segment (cheap index
//! checks) or a scanned one (validated batch by batch, truncated at the
//! first damage, indexes rebuilt).

use super::report::{RecoveryReport, Truncation};
use super::scan::{scan_segment, scan_segment_checked, segment_version, Stop};
use super::tail;
use super::LoadCtx;
use crate::error::{io_err, CorruptionKind, Error, Result};
use crate::format::batch::{peek_header, Version};
use crate::format::index::{
    offset_entry, time_entry, valid_offset_entries, valid_time_entries, OFFSET_ENTRY_LEN,
    TIME_ENTRY_LEN,
};
use crate::io::OpenMode;
use crate::storage::cursor::IndexCursor;
use crate::storage::mapped::MappedFile;
use crate::storage::policy::RecoveryMode;
use crate::storage::segment::{
    entry_matches, index_capacities, segment_path, Segment, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT,
};

/// Opens a sealed segment below the recovery point, checking its indexes
/// and rebuilding them if they disagree with the log.
pub(super) fn open_trusted(
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
    let version = segment_version(&log_bytes);
    let next_rel = next_base - base;
    if let (Some(offsets), Some(times)) = (
        open_sealed_index(ctx, base, INDEX_EXT, version),
        open_sealed_index(ctx, base, TIME_INDEX_EXT, version),
    ) {
        let (offsets_bytes, times_bytes) = (
            offsets.view().unwrap_or_default(),
            times.view().unwrap_or_default(),
        );
        let n = offsets_bytes.len() / OFFSET_ENTRY_LEN;
        let offsets_ok = match n
            .checked_sub(1)
            .and_then(|i| offset_entry(&offsets_bytes, i, version))
        {
            None => true,
            Some(e) => {
                u64::from(e.pos) < len
                    && log_bytes
                        .get(e.pos as usize..)
                        .and_then(|b| peek_header(b).ok())
                        .is_some_and(|h| entry_matches(version, &h, base, e))
            }
        };
        let nt = times_bytes.len() / TIME_ENTRY_LEN;
        let seal = nt
            .checked_sub(1)
            .and_then(|i| time_entry(&times_bytes, i, version));
        // The seal entry (FORMAT.md §4.2) gives the segment's largest
        // timestamp. v1 pins it at the segment's next offset; a v2 entry
        // must lie inside the segment. A non-empty v2 segment without one
        // holds only negative timestamps, which Kafka never indexes: it is
        // scanned for its largest timestamp.
        let times_ok = match (version, seal) {
            (Version::V1, Some(e)) => u64::from(e.rel) == next_rel,
            (Version::V2, Some(e)) => u64::from(e.rel) < next_rel,
            (_, None) => len == 0,
        };
        if offsets_ok && times_ok {
            let max_ts = seal.map_or(i64::MIN, |e| e.ts);
            return Ok(Segment::from_parts(
                base, version, log, offsets, times, next_base, max_ts,
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
        version,
        log,
        offsets,
        times,
        next_base,
        scan.cursor.max_ts,
    ))
}

fn open_sealed_index(
    ctx: &LoadCtx<'_>,
    base: u64,
    ext: &str,
    version: Version,
) -> Option<MappedFile> {
    let path = segment_path(ctx.dir, base, ext);
    let f = MappedFile::open_whole(ctx.fs, &path).ok()?;
    let len = f.len();
    let bytes = f.view().ok()?;
    let (valid, entry) = if ext == INDEX_EXT {
        (valid_offset_entries(&bytes, version), OFFSET_ENTRY_LEN)
    } else {
        (valid_time_entries(&bytes, version), TIME_ENTRY_LEN)
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
        exact: ctx.exact_offsets,
    };
    tail::resume(&files, base, ctx.index_interval)
}

/// Scans a segment, truncating it at the first invalid batch. Returns the
/// segment (opened for appends if it is to stay the last one), its cursor,
/// and whether it ended cleanly (false: later segments must go).
pub(super) fn open_scanned(
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
            let exact = is_last && ctx.exact_offsets;
            let scan =
                scan_segment_checked(&reader_bytes, base, ctx.index_interval, &zeros_from, exact);
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
        Some(Stop::Unsupported(e)) => {
            return Err(e.clone().into_error(&log_path, scan.valid_len, None, 0));
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
        if ctx.sync && !(is_last && ctx.unsynced_tail()) {
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
        let version = scan.cursor.version();
        let seg = Segment::from_parts(
            base,
            version,
            log,
            offsets,
            times,
            seg_next,
            scan.cursor.max_ts,
        );
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
    if ctx.sync && !ctx.unsynced_tail() {
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
    // recovery of `storage::recovery::tail` relies on.
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
        scan.cursor.version(),
        log,
        offsets,
        times,
        scan.next_offset,
        scan.cursor.max_ts,
    );
    Ok((seg, scan.cursor, intact))
}
