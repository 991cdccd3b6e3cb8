//! Running maintenance across a log: retention after a roll and in
//! `maintain`, compaction in `maintain`/`compact`, the checkpoint after
//! each, and the opt-in thread. The per-partition work is in `maintain`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::{Log, LogInner};
use crate::error::Result;
use crate::maintain::thread::MaintenanceHandle;
use crate::maintain::{compaction, retention, MaintenanceReport};
use crate::storage::partition::Partition;
use crate::topic::config::CleanupPolicy;

impl LogInner {
    /// Applies retention to one partition, checkpointing its new log start
    /// before any file is deleted.
    pub(super) fn apply_retention(
        &self,
        part: &Partition,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        let now = self.shared.clock.now_ms();
        let checkpoint = || {
            let _g = self.admin.lock();
            self.write_checkpoint()
        };
        retention::apply(part, now, checkpoint, report)
    }

    fn maintain(
        &self,
        only_topic: Option<&str>,
        force_compaction: bool,
    ) -> Result<MaintenanceReport> {
        self.shared.check_writable()?;
        let started = Instant::now();
        let _m = self.maintenance.lock();
        let mut report = MaintenanceReport {
            transactions_timed_out: self.abort_timed_out()? as u64,
            ..Default::default()
        };
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
            let _g = self.admin.lock();
            self.write_checkpoint()?;
        }
        report.duration = started.elapsed();
        Ok(report)
    }
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
    /// use streamlog::{Log, TopicConfig, TopicPartition, Record};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", TopicConfig::new().segment_bytes(1024).retention_bytes(4096))?;
    /// for i in 0..1000u32 {
    ///     log.producer().send("t", Record::new(i.to_be_bytes().to_vec()))?;
    /// }
    /// let report = log.maintain()?;
    /// // Retention (here, or already when segments rolled) keeps the
    /// // partition near 4 KiB: the oldest records are gone.
    /// let info = log.partition_info(&TopicPartition::new("t", 0))?;
    /// assert!(info.start_offset > 0 && info.size_bytes < 8192);
    /// # let _ = report;
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
    /// every `interval` until the returned handle is dropped or stopped, or
    /// the log is dropped. Nothing else in streamlog ever spawns a thread.
    /// A failed pass is kept in the handle
    /// ([`MaintenanceHandle::take_last_error`]) and the thread goes on.
    ///
    /// # Errors
    /// [`Error::ThreadSpawn`](crate::Error::ThreadSpawn) if the thread cannot
    /// be spawned.
    ///
    /// # Example
    /// ```
    /// let log = streamlog::Log::temporary()?;
    /// let handle = log.spawn_maintenance(std::time::Duration::from_secs(60))?;
    /// handle.stop();
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn spawn_maintenance(&self, interval: Duration) -> Result<MaintenanceHandle> {
        let inner = Arc::downgrade(&self.inner);
        MaintenanceHandle::spawn(
            interval,
            Box::new(move || match inner.upgrade() {
                Some(inner) => inner.maintain(None, false).map(|_| true),
                None => Ok(false),
            }),
        )
    }
}
