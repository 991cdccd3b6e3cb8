//! Reading a live log read-only: [`LogReader`], from
//! [`Log::open_read_only`](crate::Log::open_read_only), and
//! [`PartitionReader`], which follows one partition.
//!
//! A read-only reader never writes a byte, creates a file or directory, or
//! takes a lock (not the writer's `.lock`, nor any other), so it works
//! while another process has the log open with [`Log::open`](crate::Log::open)
//! and is appending, rolling, and running retention and compaction. It
//! shares nothing with that process but the files: it knows only what the
//! files say, re-reading the registry, the checkpoint and the partition
//! directories at each call.
//!
//! Every read goes through the crate's I/O seam (`io::FileSystem` and
//! `io::FileHandle`, on the real file system `StdFs`: read-only opens,
//! directory listings and positioned reads, `pread` through std's
//! `FileExt::read_exact_at`). Segment files are never mapped: the writer
//! truncates and deletes them, and a mapping touched past a file's new end
//! raises SIGBUS.
//!
//! Rooms (ARCHITECTURE.md "Layering"): the reader sits in room 6, beside
//! the log's public methods; it imports the format codecs, storage's
//! segment names, the log's registry and checkpoint readers (`log::open`),
//! its offsets replay (`log::groups`) and `PartitionInfo`, and nothing
//! imports it but `log/mod.rs` (for `Log::open_read_only`) and the crate
//! root. Files: `files` (listing a partition directory; batches by
//! positioned reads), `cursor` (the batches of a partition in order, across
//! segments that come and go), `partition` ([`PartitionReader`] and its
//! isolation), `txn` (the transactions open at a start offset), `groups`
//! (committed offsets).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::consumer::config::IsolationLevel;
use crate::error::{io_err, Error, Result};
use crate::format::batch::{records_section, RecordIter};
use crate::group::offsets::{OffsetAndMetadata, OFFSETS_TOPIC};
use crate::io::std_fs::StdFs;
use crate::io::FileSystem;
use crate::log::metrics::PartitionInfo;
use crate::log::open::{read_checkpoint, read_registry};
use crate::log::state::{LOCK_FILE, REGISTRY_FILE};
use crate::record::TopicPartition;
use crate::storage::segment::{parse_segment_name, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
use crate::topic::config::TopicConfig;
use crate::topic::name::INTERNAL_PREFIX;

mod cursor;
mod files;
mod groups;
mod partition;
mod txn;

use files::{fits, with_listing, At, SegReader, Stop};
pub use partition::{Fetched, PartitionReader, ReadRecord};

/// A log directory opened read-only, by
/// [`Log::open_read_only`](crate::Log::open_read_only). Every call reads
/// the files anew, so it sees what the writer did since. Cheap to clone.
///
/// # Example
/// ```
/// use streamlog::{IsolationLevel, Log, Record, TopicConfig, TopicPartition};
/// let log = Log::temporary()?;
/// log.create_topic("orders", TopicConfig::new())?;
/// log.producer().send("orders", Record::new(b"o-1"))?;
/// let reader = Log::open_read_only(log.dir())?; // `log` still holds the lock
/// assert_eq!(reader.topics()?, vec!["orders".to_string()]);
/// let tp = TopicPartition::new("orders", 0);
/// assert_eq!(reader.partition_info(&tp)?.end_offset, 1);
/// let mut p = reader.partition_reader(&tp, 0, IsolationLevel::ReadCommitted)?;
/// assert_eq!(p.read(10)?.records[0].value.as_deref(), Some(&b"o-1"[..]));
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogReader {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
}

impl LogReader {
    /// Opens the log in `dir` read-only (see [`Log::open_read_only`](crate::Log::open_read_only)).
    pub(crate) fn open(dir: &Path) -> Result<LogReader> {
        Self::open_on(Arc::new(StdFs), dir)
    }

    /// [`open`](Self::open) on the file system `fs`.
    pub(crate) fn open_on(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<LogReader> {
        let not_a_log = |reason| {
            Err(Error::NotALog {
                path: dir.to_owned(),
                reason,
            })
        };
        if !fs.exists(dir) {
            return not_a_log("it does not exist");
        }
        if !fs.is_dir(dir) {
            return not_a_log("it is not a directory");
        }
        // A log that never had a topic has a `.lock` (written by the first
        // `Log::open`) but no registry yet; it reads as a log of no topics.
        if !fs.exists(&dir.join(REGISTRY_FILE)) && !fs.exists(&dir.join(LOCK_FILE)) {
            return not_a_log(
                "it has neither a topics.registry nor a .lock file (`Log::open` writes the lock, \
                 the first topic the registry)",
            );
        }
        let reader = LogReader {
            fs,
            dir: dir.to_owned(),
        };
        reader.registry()?;
        Ok(reader)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the log's writer lock, the one [`Log::open`](crate::Log::open)
    /// takes, so that no process can open the log for writing while the
    /// returned guard lives; dropping it releases the lock. For a tool that
    /// must know every writer is gone and stays gone, such as a mirror's
    /// cut-over to another system. The only call of a reader that writes:
    /// it creates the `.lock` file if it is missing.
    ///
    /// # Errors
    /// [`Error::Locked`] while a writer has the log open (no waiting: call
    /// again to wait); [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{Error, Log};
    /// let dir = std::env::temp_dir().join(format!("lock-out-{}", std::process::id()));
    /// let log = Log::open(&dir)?;
    /// let reader = Log::open_read_only(&dir)?;
    /// assert!(matches!(reader.lock_out_writers(), Err(Error::Locked { .. })));
    /// log.close()?;
    /// let guard = reader.lock_out_writers()?;
    /// assert!(matches!(Log::open(&dir), Err(Error::Locked { .. })));
    /// drop(guard);
    /// Log::open(&dir)?.close()?;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn lock_out_writers(&self) -> Result<WriterLock> {
        let path = self.dir.join(LOCK_FILE);
        match self.fs.lock(&path) {
            Ok(held) => Ok(WriterLock { _held: held }),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(Error::Locked {
                path: self.dir.clone(),
            }),
            Err(e) => Err(Error::io("lock", &path, e)),
        }
    }

    fn registry(&self) -> Result<Vec<(String, TopicConfig)>> {
        read_registry(&*self.fs, &self.dir)
    }

    /// The directory of `tp`, checked against the registry.
    fn partition_dir(&self, tp: &TopicPartition) -> Result<PathBuf> {
        let cfg = self.topic_config(&tp.topic)?;
        if tp.partition >= cfg.partitions {
            return Err(Error::UnknownPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
                partitions: cfg.partitions,
            });
        }
        Ok(self.dir.join(format!("{}-{}", tp.topic, tp.partition)))
    }

    /// The checkpoint's (recovery point, log start) of `tp`, if it has one
    /// (a missing or damaged checkpoint has none, as at open).
    fn checkpoint(&self, tp: &TopicPartition) -> Option<(u64, u64)> {
        let cps = read_checkpoint(&*self.fs, &self.dir).ok()?;
        let cp = cps.get(&(tp.topic.clone(), tp.partition))?;
        Some((cp.recovery_point, cp.log_start))
    }

    /// The user topics, sorted, as the registry names them now (internal
    /// topics, `__*`, are hidden, as by [`Log::topics`](crate::Log::topics)).
    ///
    /// # Errors
    /// [`Error::Corrupted`] naming `topics.registry` if it is damaged,
    /// [`Error::UnsupportedVersion`], [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// use streamlog::Log;
    /// let log = Log::temporary()?;
    /// log.create_topic("b", Default::default())?;
    /// let reader = Log::open_read_only(log.dir())?;
    /// log.create_topic("a", Default::default())?;
    /// assert_eq!(reader.topics()?, vec!["a".to_string(), "b".to_string()]);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn topics(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .registry()?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|n| !n.starts_with(INTERNAL_PREFIX))
            .collect();
        names.sort();
        Ok(names)
    }

    /// A topic's configuration, as the registry records it now.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; as [`topics`](Self::topics).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, TopicConfig};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", TopicConfig::new().partitions(3))?;
    /// let reader = Log::open_read_only(log.dir())?;
    /// assert_eq!(reader.topic_config("t")?.partition_count(), 3);
    /// assert!(matches!(reader.topic_config("nope"), Err(streamlog::Error::UnknownTopic { .. })));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn topic_config(&self, name: &str) -> Result<TopicConfig> {
        self.registry()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, cfg)| cfg)
            .ok_or_else(|| Error::UnknownTopic {
                topic: name.to_owned(),
            })
    }

    /// A partition's log start offset, as [`partition_info`](Self::partition_info)
    /// gives it, without reading any segment: the first segment's base
    /// offset, or the checkpoint's log start if that is higher. For a
    /// caller that asks often (a mirror pruning what retention deleted),
    /// where `partition_info` would walk the active segment's batches.
    ///
    /// # Errors
    /// As [`partition_info`](Self::partition_info).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", Record::new(b"x"))?;
    /// let reader = Log::open_read_only(log.dir())?;
    /// assert_eq!(reader.start_offset(&TopicPartition::new("t", 0))?, 0);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn start_offset(&self, tp: &TopicPartition) -> Result<u64> {
        let dir = self.partition_dir(tp)?;
        with_listing(&*self.fs, &dir, "find the segments of", |segs| {
            Ok(segs.first().map(|first| {
                self.checkpoint(tp)
                    .map_or(first.base, |c| c.1.max(first.base))
            }))
        })
    }

    /// A partition's offsets and size, from its files now:
    /// - `start_offset`: the first segment's base offset, or the
    ///   checkpoint's log start if that is higher (retention records it
    ///   before deleting files);
    /// - `end_offset`: the valid end: after the last whole, CRC-valid batch
    ///   of the last segment that continues exactly from the batch before
    ///   it (found by reading the last segment's batches, never from a file
    ///   name or length);
    /// - `durable_offset`: the checkpoint's recovery point (at most the
    ///   end) if the checkpoint records the partition, else the end. The
    ///   writer checkpoints at rolls, flushes and close, so this lags
    ///   behind what it has synced;
    /// - `size_bytes`: the sizes of its segment and index files (those of a
    ///   live writer's active segment include the space preallocated);
    /// - `segments`: its `.log` files.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`], [`Error::Io`]
    /// (also when the segment files keep changing over many listings).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", Record::new(b"x"))?;
    /// let tp = TopicPartition::new("t", 0);
    /// let info = Log::open_read_only(log.dir())?.partition_info(&tp)?;
    /// assert_eq!((info.start_offset, info.end_offset, info.segments), (0, 1, 1));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn partition_info(&self, tp: &TopicPartition) -> Result<PartitionInfo> {
        let dir = self.partition_dir(tp)?;
        with_listing(&*self.fs, &dir, "find the segments of", |segs| {
            let (Some(first), Some(last)) = (segs.first(), segs.last()) else {
                return Ok(None);
            };
            let Some(mut file) = SegReader::open(&*self.fs, last)? else {
                return Ok(None);
            };
            let end = valid_end(&mut file)?;
            let cp = self.checkpoint(tp);
            let (size_bytes, segments) = self.files_of(&dir)?;
            Ok(Some(PartitionInfo {
                start_offset: cp.map_or(first.base, |c| c.1.max(first.base)).min(end),
                end_offset: end,
                durable_offset: cp.map_or(end, |c| c.0.min(end)),
                size_bytes,
                segments,
            }))
        })
    }

    /// The total size of a partition's segment and index files, and how
    /// many `.log` files it has.
    fn files_of(&self, dir: &Path) -> Result<(u64, usize)> {
        let (mut size, mut logs) = (0, 0);
        for name in self.fs.read_dir(dir).map_err(io_err("list", dir))? {
            let ext = [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT]
                .into_iter()
                .find(|e| parse_segment_name(&name, e).is_some());
            let Some(ext) = ext else {
                continue;
            };
            logs += usize::from(ext == LOG_EXT);
            let path = dir.join(&name);
            match self.fs.open(&path, crate::io::OpenMode::Read) {
                Ok(f) => size += f.len().map_err(io_err("stat", &path))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("open", &path, e)),
            }
        }
        Ok((size, logs))
    }

    /// The first offset at or after the partition's start whose record
    /// timestamp is `>= timestamp_ms`, or `None` if every record readable
    /// now is older (Kafka's `offsetsForTimes`): the first batch whose
    /// largest timestamp is `>= timestamp_ms`, then its first record with
    /// such a timestamp. Walks the batch headers (not the indexes) of the
    /// segments up to the answer.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`],
    /// [`Error::Corrupted`] for damage in a finished segment, [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// for ts in [10, 20, 30] {
    ///     log.producer().send("t", Record::new(b"x").timestamp(ts))?;
    /// }
    /// let reader = Log::open_read_only(log.dir())?;
    /// let tp = TopicPartition::new("t", 0);
    /// assert_eq!(reader.offset_for_timestamp(&tp, 15)?, Some(1));
    /// assert_eq!(reader.offset_for_timestamp(&tp, 31)?, None);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn offset_for_timestamp(
        &self,
        tp: &TopicPartition,
        timestamp_ms: i64,
    ) -> Result<Option<u64>> {
        let dir = self.partition_dir(tp)?;
        let start = self.checkpoint(tp).map_or(0, |c| c.1);
        with_listing(&*self.fs, &dir, "find the segments of", |segs| {
            for (i, seg) in segs.iter().enumerate() {
                if segs.get(i + 1).is_some_and(|n| n.base <= start) {
                    continue;
                }
                let Some(mut file) = SegReader::open(&*self.fs, seg)? else {
                    return Ok(None);
                };
                let strict = i + 1 == segs.len();
                if let Some(o) = first_at_or_after(&mut file, timestamp_ms, start, strict)? {
                    return Ok(Some(Some(o)));
                }
            }
            Ok(Some(None))
        })
    }

    /// A reader of partition `tp` from `offset` under `isolation`: see
    /// [`PartitionReader`]. The start is found by walking batch headers
    /// from the segment with the greatest base offset at or below
    /// `offset`; an offset inside a batch starts at that record. An
    /// offset below the partition's first segment starts at its first
    /// offset, and the first [`read`](PartitionReader::read) reports the
    /// offsets skipped. Under `ReadCommitted`, the transactions open at
    /// `offset` are found from the newest producer-state snapshot at or
    /// below it (a log on disk writes one at every roll) and the batch
    /// headers after it, or from the partition's first offset without one.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] for an offset past the valid end;
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`], [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{Error, IsolationLevel, Log, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send_batch("t", (0..5u8).map(|i| Record::new(vec![i])).collect())?;
    /// let reader = Log::open_read_only(log.dir())?;
    /// let tp = TopicPartition::new("t", 0);
    /// let mut p = reader.partition_reader(&tp, 3, IsolationLevel::ReadUncommitted)?; // mid-batch
    /// let offsets: Vec<u64> = p.read(10)?.into_iter().map(|r| r.offset).collect();
    /// assert_eq!(offsets, vec![3, 4]);
    /// let past = reader.partition_reader(&tp, 6, IsolationLevel::ReadUncommitted);
    /// assert!(matches!(past, Err(Error::OffsetOutOfRange { requested: 6, latest: 5, .. })));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn partition_reader(
        &self,
        tp: &TopicPartition,
        offset: u64,
        isolation: IsolationLevel,
    ) -> Result<PartitionReader> {
        let dir = self.partition_dir(tp)?;
        PartitionReader::new(self.fs.clone(), dir, tp.clone(), offset, isolation)
    }

    /// The consumer groups that have committed offsets, sorted: replays
    /// `__consumer_offsets` as [`Log::open`](crate::Log::open) does.
    ///
    /// # Errors
    /// As [`committed_offsets`](Self::committed_offsets).
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, OffsetAndMetadata, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", Record::new(b"x"))?;
    /// log.commit_offsets("g", &[(TopicPartition::new("t", 0), OffsetAndMetadata::new(1))])?;
    /// assert_eq!(Log::open_read_only(log.dir())?.groups()?, vec!["g".to_string()]);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn groups(&self) -> Result<Vec<String>> {
        Ok(self.offsets_image()?.group_ids())
    }

    /// Every offset committed by consumer group `group`, sorted by
    /// partition: the records of `__consumer_offsets` readable now,
    /// replayed with the writer's own rules (the last record of a key
    /// wins, a null value deletes it; offsets sent to a transaction count
    /// once its COMMIT marker is read, never after an ABORT, and not while
    /// it is undecided).
    ///
    /// # Errors
    /// [`Error::Corrupted`] for a damaged registry or marker,
    /// [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, OffsetAndMetadata, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", Record::new(b"x"))?;
    /// let tp = TopicPartition::new("t", 0);
    /// log.commit_offsets("g", &[(tp.clone(), OffsetAndMetadata::new(1))])?;
    /// let reader = Log::open_read_only(log.dir())?;
    /// assert_eq!(reader.committed_offsets("g")?, log.committed_offsets("g"));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<Vec<(TopicPartition, OffsetAndMetadata)>> {
        Ok(self.offsets_image()?.group_offsets(group))
    }

    fn offsets_image(&self) -> Result<crate::group::store::GroupStore> {
        let registry = self.registry()?;
        let cfg = registry
            .iter()
            .find(|(n, _)| n == OFFSETS_TOPIC)
            .map(|(_, c)| c);
        groups::replay(&self.fs, &self.dir, cfg)
    }
}

/// The log's writer lock, held by a reader: see
/// [`LogReader::lock_out_writers`]. Released on drop.
pub struct WriterLock {
    _held: Box<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for WriterLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterLock")
    }
}

/// The valid end of the segment being written: where its batches stop
/// being whole, CRC-valid and exactly contiguous.
fn valid_end(file: &mut SegReader) -> Result<u64> {
    let (mut pos, mut next) = (0, file.seg.base);
    while let At::Batch(h) = file.batch_at(pos)? {
        if h.base_offset != next {
            break;
        }
        pos += h.total_len() as u64;
        next = h.next_offset();
    }
    Ok(next)
}

/// The first offset `>= start` of `file` whose record timestamp is `>= ts`
/// (see [`LogReader::offset_for_timestamp`]); `strict` for the segment
/// being written.
fn first_at_or_after(
    file: &mut SegReader,
    ts: i64,
    start: u64,
    strict: bool,
) -> Result<Option<u64>> {
    let (mut pos, mut next) = (0, file.seg.base);
    loop {
        let h = match file.header_at(pos)? {
            At::Batch(h) if fits(&h, next, strict) => h,
            At::Stop(Stop::Invalid(e)) if !strict => return Err(e),
            _ => return Ok(None),
        };
        if h.next_offset() > start && h.max_timestamp >= ts {
            let h = match file.batch_at(pos)? {
                At::Batch(h) => h,
                At::Stop(Stop::Invalid(e)) if !strict => return Err(e),
                At::Stop(_) => return Ok(None),
            };
            let bad = |k| Error::corrupted(&file.seg.path, pos, Some(h.base_offset), k);
            let section = records_section(&h, file.bytes(pos, &h)).map_err(bad)?;
            for r in RecordIter::new(&h, &section) {
                let r = r.map_err(bad)?;
                let offset = h.base_offset + u64::from(r.offset_delta);
                if offset >= start && h.base_timestamp.wrapping_add(r.timestamp_delta) >= ts {
                    return Ok(Some(offset));
                }
            }
        }
        pos += h.total_len() as u64;
        next = h.next_offset();
    }
}
