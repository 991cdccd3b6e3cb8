//! `streamlog dump PATH` and `streamlog verify DIR`: read-only, like
//! `kafka-dump-log`, for both batch layouts (v2, Kafka's, and v1,
//! streamlog's first). A progress bar goes to stderr for inputs of more
//! than [`PROGRESS_BYTES`], only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use streamlog::inspect::{
    dump_segment, verify_dir_with_progress, BatchInfo, RecordInfo, VerifyReport,
};

use crate::render::{json_bytes, json_headers, text_bytes, text_headers};
use crate::Res;

/// Inputs larger than this get a progress bar (on a terminal).
const PROGRESS_BYTES: u64 = 256 << 20;

/// `streamlog dump PATH`.
#[derive(clap::Args)]
pub struct DumpArgs {
    /// A segment file (`<partition dir>/<base offset>.log`).
    path: PathBuf,
    /// One JSON object per batch, with its records, then one for where
    /// reading stopped, if it stopped early.
    #[arg(long)]
    json: bool,
}

/// `streamlog verify DIR`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The log directory.
    dir: PathBuf,
    /// One JSON object per problem, then a summary object.
    #[arg(long)]
    json: bool,
}

/// A bar for `total` bytes, or a hidden one when stderr is not a terminal
/// or the input is small.
fn bar(total: u64, what: &str) -> ProgressBar {
    if total < PROGRESS_BYTES || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(what.to_owned());
    b
}

fn batch_json(b: &BatchInfo) -> serde_json::Value {
    json!({
        "position": b.position,
        "size": b.size,
        "base_offset": b.base_offset,
        "last_offset": b.last_offset,
        "record_count": b.record_count,
        "format_version": b.format_version,
        "compression": b.compression,
        "base_timestamp": b.base_timestamp,
        "max_timestamp": b.max_timestamp,
        "producer_id": b.producer_id,
        "producer_epoch": b.producer_epoch,
        "base_sequence": b.base_sequence,
        "transactional": b.transactional,
        "control": b.control,
        "crc_ok": b.crc_ok,
        "malformed": b.malformed,
        "records": b.records.iter().map(record_json).collect::<Vec<_>>(),
    })
}

fn record_json(r: &RecordInfo) -> serde_json::Value {
    let mut v = json!({
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": json_bytes(r.key.as_deref()),
        "headers": json_headers(&r.headers),
        "value": json_bytes(r.value.as_deref()),
    });
    if let Some(marker) = r.control {
        v["marker"] = json!(marker);
    }
    v
}

pub fn dump(a: DumpArgs) -> Res<ExitCode> {
    let size = std::fs::metadata(&a.path).map(|m| m.len()).unwrap_or(0);
    let progress = bar(size, "reading");
    let d = dump_segment(&a.path)?;
    progress.finish_and_clear();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let bad = d.batches.iter().any(|b| !b.crc_ok || b.malformed.is_some());
    for b in &d.batches {
        if a.json {
            writeln!(out, "{}", batch_json(b))?;
            continue;
        }
        writeln!(
            out,
            "batch position={} size={} offsets={}..={} records={} format=v{} compression={} timestamps={}..{} producer={}/{}/{}{}{} crc={}",
            b.position, b.size, b.base_offset, b.last_offset, b.record_count, b.format_version,
            b.compression, b.base_timestamp, b.max_timestamp, b.producer_id, b.producer_epoch,
            b.base_sequence,
            if b.transactional { " transactional" } else { "" },
            if b.control { " control" } else { "" },
            if b.crc_ok { "ok" } else { "BAD" }
        )?;
        if let Some(why) = &b.malformed {
            writeln!(out, "  malformed records: {why}")?;
        }
        for r in &b.records {
            if let Some(marker) = r.control {
                writeln!(
                    out,
                    "  offset={} timestamp={} marker={marker}",
                    r.offset, r.timestamp
                )?;
                continue;
            }
            writeln!(
                out,
                "  offset={} timestamp={} key={} value={} headers=[{}]",
                r.offset,
                r.timestamp,
                text_bytes(r.key.as_deref()),
                text_bytes(r.value.as_deref()),
                text_headers(&r.headers)
            )?;
        }
    }
    // Zeros after the last batch are preallocated space, not damage.
    let damaged = d
        .stopped
        .as_ref()
        .filter(|(_, why)| !why.starts_with("zero-filled"));
    if let Some((at, why)) = &d.stopped {
        if a.json {
            writeln!(out, "{}", json!({"stopped_at": at, "reason": why}))?;
        } else {
            writeln!(out, "stopped at byte {at}: {why}")?;
        }
    }
    out.flush()?;
    Ok(if bad || damaged.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn verify(a: VerifyArgs) -> Res<ExitCode> {
    let mut progress: Option<ProgressBar> = None;
    let r: VerifyReport = verify_dir_with_progress(&a.dir, |done, total| {
        let b = progress.get_or_insert_with(|| bar(total, "verifying"));
        b.set_position(done);
    })?;
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for p in &r.problems {
        if a.json {
            writeln!(
                out,
                "{}",
                json!({
                    "path": p.path.display().to_string(),
                    "position": p.position,
                    "offset": p.offset,
                    "problem": p.what,
                })
            )?;
            continue;
        }
        let mut at = String::new();
        if let Some(pos) = p.position {
            at.push_str(&format!(" at byte {pos}"));
        }
        if let Some(o) = p.offset {
            at.push_str(&format!(" (offset {o})"));
        }
        writeln!(out, "{}{at}: {}", p.path.display(), p.what)?;
    }
    if a.json {
        writeln!(
            out,
            "{}",
            json!({"segments": r.segments, "batches": r.batches, "problems": r.problems.len()})
        )?;
    } else {
        writeln!(
            out,
            "{} segments, {} batches checked, {} problems",
            r.segments,
            r.batches,
            r.problems.len()
        )?;
    }
    out.flush()?;
    Ok(if r.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
