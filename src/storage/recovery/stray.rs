//! Segment files that do not fit their partition: set aside before
//! loading, so that no file name ever decides where a partition ends.
//!
//! Every segment file but the first must start with a batch whose base
//! offset is the one its name gives (or a later one, in a compacted
//! segment). The one exception is an empty last
//! file: a roll creates the new segment before anything is appended to it.
//! Such a file fits only if the segment before it ends exactly at its base
//! (found by scanning that segment: rare, and bounded by `segment_bytes`).
//! Anything else (an empty file inside or past the partition's offsets, a
//! file of foreign bytes, a batch with another base) is renamed to
//! `<name>.stray`, with its index files, and reported; never loaded, never
//! deleted.

use std::path::PathBuf;

use super::report::RecoveryReport;
use super::scan::scan_segment;
use super::LoadCtx;
use crate::error::{io_err, Result};
use crate::format::batch::{claimed_base_offset, MAX_HEADER_LEN};
use crate::io::OpenMode;
use crate::storage::mapped::MappedFile;
use crate::storage::segment::{segment_path, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};

/// How a segment file begins.
enum Start {
    /// With a batch whose base offset is the file's (or later: compaction).
    Fits,
    /// With nothing: empty, or zeros where a header would be.
    Empty,
    /// With anything else.
    Foreign,
}

/// Sets aside the files of `bases` (sorted) that do not fit, removing
/// them from `bases`.
pub(super) fn set_aside_strays(
    ctx: &LoadCtx<'_>,
    bases: &mut Vec<u64>,
    report: &mut RecoveryReport,
) -> Result<()> {
    let mut i = 0;
    while i < bases.len() {
        let base = bases[i];
        let more = i + 1 < bases.len();
        let stray = match (start_of(ctx, base)?, i) {
            (Start::Fits, _) => false,
            // The first file: a segment is never empty when a later one
            // exists (rolls never leave one), and one alone is left to the
            // recovery scan, which reports its damage.
            (Start::Foreign | Start::Empty, 0) => more,
            (Start::Foreign, _) => true,
            (Start::Empty, _) => more || segment_end(ctx, bases[i - 1])? != base,
        };
        if stray {
            set_aside(ctx, base, report)?;
            bases.remove(i);
        } else {
            i += 1;
        }
    }
    Ok(())
}

fn start_of(ctx: &LoadCtx<'_>, base: u64) -> Result<Start> {
    let path = segment_path(ctx.dir, base, LOG_EXT);
    let f = ctx
        .fs
        .open(&path, OpenMode::Read)
        .map_err(io_err("open", &path))?;
    let len = f.len().map_err(io_err("stat", &path))?;
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = (len as usize).min(MAX_HEADER_LEN);
    f.read_at(&mut head[..n], 0)
        .map_err(io_err("read", &path))?;
    if head[..n].iter().all(|&b| b == 0) {
        return Ok(Start::Empty);
    }
    Ok(match claimed_base_offset(&head[..n]) {
        // Compaction may have removed a segment's first batches: the first
        // one left has a base at or after the segment's.
        Some(b) if b >= base => Start::Fits,
        _ => Start::Foreign,
    })
}

/// The offset after the last valid batch of segment `base`.
fn segment_end(ctx: &LoadCtx<'_>, base: u64) -> Result<u64> {
    let path = segment_path(ctx.dir, base, LOG_EXT);
    let file = MappedFile::open_whole(ctx.fs, &path).map_err(io_err("map", &path))?;
    let bytes = file.view().map_err(io_err("map", &path))?;
    Ok(scan_segment(&bytes, base, u64::MAX).next_offset)
}

/// Renames a segment's files to `<name>.stray` (or `<name>.stray-N` if
/// that is taken) and reports the log file's new path.
fn set_aside(ctx: &LoadCtx<'_>, base: u64, report: &mut RecoveryReport) -> Result<()> {
    let fs = ctx.fs;
    let free = |p: &PathBuf| -> PathBuf {
        let mut n = 0;
        loop {
            let suffix = if n == 0 {
                "stray".to_owned()
            } else {
                format!("stray-{n}")
            };
            let mut name = p.as_os_str().to_owned();
            name.push(format!(".{suffix}"));
            let candidate = PathBuf::from(name);
            if !fs.exists(&candidate) {
                return candidate;
            }
            n += 1;
        }
    };
    for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
        let from = segment_path(ctx.dir, base, ext);
        if !fs.exists(&from) {
            continue;
        }
        let to = free(&from);
        fs.rename(&from, &to).map_err(io_err("rename", &from))?;
        if ext == LOG_EXT {
            report.set_aside.push(to);
        }
    }
    if ctx.sync {
        fs.sync_dir(ctx.dir).map_err(io_err("sync", ctx.dir))?;
    }
    Ok(())
}
