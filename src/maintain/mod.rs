//! Maintenance: retention and compaction, run inside `Log::maintain` (and
//! retention also on segment roll). No hidden threads; an opt-in helper
//! thread is available through [`Log::spawn_maintenance`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::CleanupPolicy;
use crate::error::{io_err, Result};
use crate::log::{Log, LogInner};
use crate::storage::partition::Partition;
use crate::storage::segment::Segment;

pub(crate) mod compaction;
pub(crate) mod retention;

/// What one [`Log::maintain`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// Segments deleted by retention, or merged away by compaction.
    pub segments_deleted: u64,
    /// Bytes of segment and index files freed.
    pub bytes_reclaimed: u64,
    /// Records removed by compaction (retention removes whole segments and
    /// is counted in `segments_deleted`).
    pub records_removed: u64,
    /// Partitions compacted.
    pub partitions_compacted: u64,
    /// Wall time the call took.
    pub duration: Duration,
}

impl LogInner {
    /// Applies retention to one partition: moves its log start past the
    /// expired segments, checkpoints that, then deletes the files.
    pub(crate) fn apply_retention(
        &self,
        part: &Partition,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        let doomed = retention::plan(part, self.shared.clock.now_ms());
        let Some(last) = doomed.last() else {
            return Ok(());
        };
        part.advance_start(last.next_offset());
        {
            let _g = self.admin_lock();
            self.write_checkpoint()?;
        }
        if part.replace_segments(&doomed, None) {
            remove_files(part, &doomed, report)?;
        }
        Ok(())
    }

    pub(crate) fn maintain(
        &self,
        only_topic: Option<&str>,
        force_compaction: bool,
    ) -> Result<MaintenanceReport> {
        self.shared.check_writable()?;
        let started = Instant::now();
        let _m = self.maintenance.lock();
        let mut report = MaintenanceReport::default();
        let now = self.shared.clock.now_ms();
        for part in self.partitions_of(only_topic)? {
            if part.is_deleted() {
                continue;
            }
            self.apply_retention(&part, &mut report)?;
            if part.config().cleanup_policy != CleanupPolicy::Delete {
                let c = compaction::compact(&part, now, force_compaction)?;
                if c.records_removed > 0 || c.segments_removed > 0 {
                    report.partitions_compacted += 1;
                }
                report.records_removed += c.records_removed;
                report.segments_deleted += c.segments_removed;
                report.bytes_reclaimed += c.bytes_reclaimed;
            }
        }
        {
            let _g = self.admin_lock();
            self.write_checkpoint()?;
        }
        report.duration = started.elapsed();
        Ok(report)
    }
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
        for p in s.paths() {
            if fs.exists(&p) {
                fs.remove_file(&p).map_err(io_err("remove", &p))?;
            }
        }
    }
    Ok(())
}

impl Log {
    /// Runs retention and compaction now, on every topic: deletes expired
    /// segments (by time and size), compacts topics whose dirty ratio
    /// exceeds `min_cleanable_dirty_ratio`, and checkpoints.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io); an I/O error in the middle of a
    /// compaction swap also poisons the log (reopening finishes the swap).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, TopicConfig, Record};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", TopicConfig::new().segment_bytes(1024).retention_bytes(4096))?;
    /// for i in 0..1000u32 {
    ///     log.producer().send("t", Record::new(i.to_be_bytes().to_vec()))?;
    /// }
    /// let report = log.maintain()?;
    /// assert!(report.segments_deleted > 0);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn maintain(&self) -> Result<MaintenanceReport> {
        self.inner.maintain(None, false)
    }

    /// Compacts one topic now, whatever its dirty ratio (its cleanup policy
    /// must include compaction; otherwise only retention runs).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`](crate::Error::UnknownTopic), as
    /// [`maintain`](Self::maintain) otherwise.
    pub fn compact(&self, topic: &str) -> Result<MaintenanceReport> {
        self.inner.maintain(Some(topic), true)
    }

    /// Opt-in: starts a thread that calls [`maintain`](Self::maintain)
    /// every `interval` until the returned handle is dropped or stopped.
    /// Nothing else in streamlog ever spawns a thread.
    ///
    /// # Example
    /// ```
    /// let log = streamlog::Log::temporary()?;
    /// let handle = log.spawn_maintenance(std::time::Duration::from_secs(60));
    /// handle.stop();
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn spawn_maintenance(&self, interval: Duration) -> MaintenanceHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let inner = Arc::downgrade(&self.inner);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("streamlog-maintenance".into())
            .spawn(move || {
                let mut next = Instant::now() + interval;
                while !flag.load(Ordering::SeqCst) {
                    if Instant::now() >= next {
                        let Some(inner) = inner.upgrade() else { return };
                        let _ = inner.maintain(None, false);
                        next = Instant::now() + interval;
                    }
                    std::thread::park_timeout(
                        next.saturating_duration_since(Instant::now()).min(interval),
                    );
                }
            })
            .ok();
        MaintenanceHandle { stop, thread }
    }
}

/// Stops the maintenance thread of [`Log::spawn_maintenance`] when dropped.
#[derive(Debug)]
pub struct MaintenanceHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MaintenanceHandle {
    /// Stops the thread and waits for it.
    pub fn stop(self) {}
}

impl Drop for MaintenanceHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
