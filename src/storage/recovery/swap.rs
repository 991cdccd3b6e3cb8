//! Finishing or undoing a compaction swap that a crash interrupted
//! (FORMAT.md §7).

use super::report::RecoveryReport;
use super::scan::scan_segment;
use super::LoadCtx;
use crate::error::{io_err, CorruptionKind, Error, Result};
use crate::storage::segment::{parse_segment_name, remove_segment_files, segment_path, LOG_EXT};

/// Finishes or undoes a compaction that a crash interrupted (FORMAT.md §7):
/// a `.cleaned` file is an unfinished copy (the inputs are intact) and is
/// removed; a `.swap` file is a finished copy whose swap had begun, so the
/// live segments it covers are removed and it takes their place; `.deleted`
/// files are inputs already replaced.
pub(super) fn resolve_swaps(ctx: &LoadCtx<'_>, report: &mut RecoveryReport) -> Result<()> {
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
