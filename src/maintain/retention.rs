//! Retention: deleting whole old segments by time and by size.

use std::sync::Arc;
use std::time::Duration;

use super::MaintenanceReport;
use crate::error::{io_err, Result};
use crate::storage::partition::Partition;
use crate::storage::segment::{segment_path, Segment, TXN_INDEX_EXT};
use crate::topic::config::CleanupPolicy;

/// Applies retention to one partition: moves its log start past the
/// expired segments, records that with `checkpoint`, then deletes the
/// files.
pub(crate) fn apply(
    part: &Partition,
    now: i64,
    checkpoint: impl FnOnce() -> Result<()>,
    report: &mut MaintenanceReport,
) -> Result<()> {
    let doomed = plan(part, now);
    let Some(last) = doomed.last() else {
        return Ok(());
    };
    part.advance_start(last.next_offset());
    part.prune_below_start();
    checkpoint()?;
    if part.replace_segments(&doomed, None) {
        remove_files(part, &doomed, report)?;
    }
    Ok(())
}

fn remove_files(
    part: &Partition,
    segs: &[Arc<Segment>],
    report: &mut MaintenanceReport,
) -> Result<()> {
    let fs = part.fs();
    for s in segs {
        report.segments_deleted += 1;
        report.bytes_reclaimed += s.size_bytes();
        // Readers holding records from the segment keep its mapping, so
        // unlinking is safe: the space is freed when the last one drops.
        let txn_index = segment_path(&part.dir, s.base, TXN_INDEX_EXT);
        for p in s.paths().into_iter().chain([txn_index]) {
            if fs.exists(&p) {
                fs.remove_file(&p).map_err(io_err("remove", &p))?;
            }
        }
    }
    Ok(())
}

/// The oldest sealed segments that retention deletes, oldest first. Never
/// the active segment, and only a prefix: a segment is deleted only when
/// every older one is.
pub(crate) fn plan(part: &Partition, now: i64) -> Vec<Arc<Segment>> {
    let cfg = part.config();
    if cfg.cleanup_policy == CleanupPolicy::Compact {
        return Vec::new();
    }
    if cfg.retention.is_none() && cfg.retention_bytes.is_none() {
        return Vec::new();
    }
    // Runs after every roll: it walks only the segments it deletes, never
    // the whole list.
    let total = part.size_bytes();
    part.with_segments(|segs| {
        let sealed = &segs[..segs.len().saturating_sub(1)];
        let mut n = 0;
        if let Some(age) = cfg.retention {
            // Judged by each segment's newest record, as Kafka does.
            let horizon = now.saturating_sub(ms(age));
            while n < sealed.len() && sealed[n].max_timestamp() < horizon {
                n += 1;
            }
        }
        if let Some(limit) = cfg.retention_bytes {
            let mut total = total.saturating_sub(sealed[..n].iter().map(|s| s.size_bytes()).sum());
            while n < sealed.len() && total.saturating_sub(sealed[n].size_bytes()) >= limit {
                total -= sealed[n].size_bytes();
                n += 1;
            }
        }
        sealed[..n].to_vec()
    })
}

pub(crate) fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}
