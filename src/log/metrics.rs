//! What a user can read about a log: [`Metrics`] and [`PartitionInfo`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::state::Log;
use crate::error::Result;
use crate::record::TopicPartition;
use crate::storage::partition::{AppendCounters, Partition};

/// Counters a user can read, from [`Log::metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Records appended since open.
    pub records_appended: u64,
    /// Batches appended since open.
    pub batches_appended: u64,
    /// Bytes appended since open.
    pub bytes_appended: u64,
    /// fdatasync calls on the append path (group commits count once).
    pub fsyncs: u64,
    /// Segment rolls since open.
    pub segments_rolled: u64,
    /// Damaged tails truncated when the log was opened.
    pub recovery_truncations: u64,
    /// Bytes in all segment and index files now.
    pub disk_bytes: u64,
    /// Sealed segments mapped now, at most
    /// [`LogOptions::max_mapped_segments`](crate::LogOptions::max_mapped_segments).
    /// Active segments are always mapped and not counted.
    pub mapped_segments: usize,
}

/// A partition's offsets and size, from [`Log::partition_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionInfo {
    /// The earliest readable offset.
    pub start_offset: u64,
    /// The offset the next record will get.
    pub end_offset: u64,
    /// Every offset below this is on stable storage.
    pub durable_offset: u64,
    /// Bytes of segment and index files.
    pub size_bytes: u64,
    /// Number of segments.
    pub segments: usize,
}

impl Log {
    /// Counters for appends, syncs, rolls and recovery.
    pub fn metrics(&self) -> Metrics {
        let m = &self.inner.shared.metrics;
        let live: Vec<Arc<Partition>> = self
            .inner
            .topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect();
        let disk_bytes = live.iter().map(|p| p.size_bytes()).sum();
        // Live partitions count their own appends; deleted topics' counts
        // were folded into the log's totals when they were deleted.
        let total = |own: &AtomicU64, f: fn(&AppendCounters) -> &AtomicU64| {
            own.load(Ordering::Relaxed)
                + live
                    .iter()
                    .map(|p| f(p.counters()).load(Ordering::Relaxed))
                    .sum::<u64>()
        };
        Metrics {
            records_appended: total(&m.records_appended, |c| &c.records),
            batches_appended: total(&m.batches_appended, |c| &c.batches),
            bytes_appended: total(&m.bytes_appended, |c| &c.bytes),
            fsyncs: m.fsyncs.load(Ordering::Relaxed),
            segments_rolled: m.segments_rolled.load(Ordering::Relaxed),
            recovery_truncations: self.inner.report.truncations.len() as u64,
            disk_bytes,
            mapped_segments: self.inner.shared.maps.mapped_segments(),
        }
    }

    /// A partition's start, end and durable offsets and its size.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`](crate::Error::UnknownTopic), [`Error::UnknownPartition`](crate::Error::UnknownPartition).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", Record::new(b"x"))?;
    /// assert_eq!(log.partition_info(&TopicPartition::new("t", 0))?.end_offset, 1);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn partition_info(&self, tp: &TopicPartition) -> Result<PartitionInfo> {
        let p = self.inner.partition(&tp.topic, tp.partition)?;
        Ok(PartitionInfo {
            start_offset: p.start_offset(),
            end_offset: p.end_offset(),
            durable_offset: p.durable_offset(),
            size_bytes: p.size_bytes(),
            segments: p.segment_count(),
        })
    }
}
