//! Loading a partition: its segments in order, the trusted ones below the
//! recovery point and the scanned ones from there on.

use std::sync::Arc;

use super::open::{open_scanned, open_trusted};
use super::report::{MissingOffsets, RecoveryReport};
use super::stray::set_aside_strays;
use super::swap::resolve_swaps;
use super::{LoadCtx, Loaded};
use crate::error::{io_err, CorruptionKind, Error, Result};
use crate::format::batch::Version;
use crate::storage::cursor::IndexCursor;
use crate::storage::policy::RecoveryMode;
use crate::storage::segment::{
    parse_segment_name, remove_segment_files, segment_path, Segment, INDEX_EXT, LOG_EXT,
    TIME_INDEX_EXT,
};

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
    set_aside_strays(ctx, &mut bases, report)?;
    // Segments wholly below the log start offset were deleted by retention
    // before a crash finished removing their files.
    while bases.len() > 1 && bases[1] <= ctx.log_start {
        let b = bases.remove(0);
        remove_segment_files(fs, ctx.dir, b)?;
    }
    // Offsets retention did not delete, but no file holds.
    let first = bases.first().copied().unwrap_or(ctx.recovery_point);
    missing(ctx, ctx.log_start, first, report)?;
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
            cursor: IndexCursor::new(ctx.index_interval, Version::V2),
            durable: None,
            skip_to: None,
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
    let mut cursor = IndexCursor::new(ctx.index_interval, Version::V2);
    let mut durable = None;
    let mut i = scan_from;
    while i < bases.len() {
        let base = bases[i];
        let next_base = bases.get(i + 1).copied();
        let (seg, c, ok) = open_scanned(ctx, base, next_base, report)?;
        if next_base.is_none() && ctx.unsynced_tail() {
            // Every earlier segment was synced when it rolled (or by this
            // open), and the recovery point was durable before the crash.
            durable = Some(ctx.recovery_point.max(base));
        }
        if ok && next_base.is_some() {
            // Sealed: like the trusted ones above, it keeps no descriptor
            // or mapping, so that recovery's peak does not grow with the
            // number of segments it scans.
            seg.release_handles();
            seg.unmap();
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
    // The end comes from what the segments hold. Checkpointed offsets past
    // it were lost (a deleted or cut-short segment): skipped, never reused.
    let end = segments.last().map_or(0, |s| s.next_offset());
    let skip_to = missing(ctx, end, ctx.recovery_point, report)?.then_some(ctx.recovery_point);
    Ok(Loaded {
        segments,
        cursor,
        durable,
        skip_to,
    })
}

/// Reports checkpointed offsets `from..to` that no segment holds, or
/// refuses them under `AbsoluteConsistency`. Returns whether there were
/// any. Without a checkpoint there is nothing to compare with.
fn missing(ctx: &LoadCtx<'_>, from: u64, to: u64, report: &mut RecoveryReport) -> Result<bool> {
    if !ctx.checkpointed || from >= to {
        return Ok(false);
    }
    if ctx.mode == RecoveryMode::AbsoluteConsistency {
        return Err(Error::corrupted(
            ctx.dir,
            0,
            Some(from),
            CorruptionKind::MissingRecords { from, to },
        ));
    }
    report.missing_offsets.push(MissingOffsets {
        dir: ctx.dir.to_owned(),
        from,
        to,
    });
    Ok(true)
}
