//! [`Log`]: the directory lock, the topic registry, checkpoints, the clean
//! shutdown marker, and the entry points to producers and consumers.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::config::{ConsumerConfig, LogOptions, TopicConfig};
use crate::consumer::Consumer;
use crate::error::{io_err, CorruptionKind, Error, Result};
use crate::format::meta::{self, MetaError};
use crate::group::coordinator::Group;
use crate::group::offsets::{OffsetAndMetadata, OffsetKey};
use crate::io::std_fs::StdFs;
use crate::io::{FileSystem, OpenMode};
use crate::producer::Producer;
use crate::record::TopicPartition;
use crate::storage::partition::{AppendCounters, Partition};
use crate::storage::recovery::{load_partition, LoadCtx, Loaded, RecoveryReport};
use crate::storage::segment::Segment;
use crate::storage::{Checkpoint, Shared};
use crate::topic::{decode_line, encode_line, validate_user_name, Topic};

/// Root files. The partition directories sit beside them.
pub(crate) const LOCK_FILE: &str = ".lock";
pub(crate) const REGISTRY_FILE: &str = "topics.registry";
pub(crate) const CHECKPOINT_FILE: &str = "partitions.checkpoint";
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
pub(crate) const SESSION_FILE: &str = "session";

/// An open log directory. Cheap to clone: clones share one log.
///
/// # Example
/// ```
/// use streamlog::{Log, TopicConfig, Record};
/// let log = Log::temporary()?;
/// log.create_topic("orders", TopicConfig::new().partitions(4))?;
/// let md = log.producer().send("orders", Record::new(b"v1").key(b"k1"))?;
/// assert_eq!(md.offset(), 0);
/// assert_eq!(log.topics(), vec!["orders".to_string()]);
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Clone)]
pub struct Log {
    pub(crate) inner: Arc<LogInner>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

pub(crate) struct LogInner {
    pub dir: PathBuf,
    pub shared: Arc<Shared>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes topic creation and deletion and metadata-file writes.
    admin: Mutex<()>,
    lock: Mutex<Option<Box<dyn Any + Send + Sync>>>,
    report: RecoveryReport,
    temporary: bool,
    /// Consumer-group coordinators by group id.
    pub(crate) groups: Mutex<HashMap<String, Arc<Group>>>,
    /// The in-memory image of `__consumer_offsets`.
    pub(crate) offsets: Mutex<HashMap<OffsetKey, OffsetAndMetadata>>,
    pub(crate) next_member: AtomicU64,
    /// Serializes maintenance (retention, compaction).
    pub(crate) maintenance: Mutex<()>,
}

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

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn meta_err(path: &Path, e: MetaError) -> Error {
    match e {
        MetaError::Corrupt(reason) => {
            Error::corrupted(path, 0, None, CorruptionKind::BadMetadata { reason })
        }
        MetaError::UnsupportedVersion(v) => Error::UnsupportedVersion {
            path: path.to_owned(),
            position: 0,
            found: v,
            supported: meta::META_VERSION,
        },
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir` with default options.
    ///
    /// # Errors
    /// See [`LogOptions::open`].
    ///
    /// # Example
    /// ```no_run
    /// let log = streamlog::Log::open("data")?;
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Log> {
        LogOptions::new().open(dir)
    }

    /// A log in a fresh temporary directory, removed when the last handle
    /// drops. See [`LogOptions::temporary`].
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be created.
    ///
    /// # Example
    /// ```
    /// let log = streamlog::Log::temporary()?;
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn temporary() -> Result<Log> {
        LogOptions::new().temporary()
    }

    pub(crate) fn open_temporary(opts: LogOptions) -> Result<Log> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("streamlog-{}-{n}-{nanos:08x}", std::process::id()));
        Log::open_with(&dir, opts, true)
    }

    pub(crate) fn open_with(dir: &Path, opts: LogOptions, temporary: bool) -> Result<Log> {
        Self::open_on(Arc::new(StdFs), dir, opts, temporary)
    }

    pub(crate) fn open_on(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        opts: LogOptions,
        temporary: bool,
    ) -> Result<Log> {
        let existed = fs.is_dir(dir);
        fs.create_dir_all(dir).map_err(io_err("create", dir))?;
        if !existed && !temporary {
            // The new directory's own entry must be durable too, or a power
            // cut could lose the whole log with everything acknowledged in it.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs.sync_dir(parent).map_err(io_err("sync", parent))?;
            }
        }
        let lock = take_lock(&*fs, dir)?;
        let shared = Arc::new(Shared::new(
            fs.clone(),
            opts.clock.clone(),
            opts.sync,
            temporary,
            opts.max_mapped_segments,
        ));
        let mut report = RecoveryReport::default();
        let registry_path = dir.join(REGISTRY_FILE);
        let mut configs = Vec::new();
        if fs.exists(&registry_path) {
            let bytes = fs
                .read(&registry_path)
                .map_err(io_err("read", &registry_path))?;
            for line in meta::decode("topics", &bytes).map_err(|e| meta_err(&registry_path, e))? {
                let (name, cfg) = decode_line(&line).map_err(|reason| {
                    Error::corrupted(
                        &registry_path,
                        0,
                        None,
                        CorruptionKind::BadMetadata { reason },
                    )
                })?;
                if configs.iter().any(|(n, _)| *n == name) {
                    let reason = format!("topic {name:?} is listed twice");
                    return Err(Error::corrupted(
                        &registry_path,
                        0,
                        None,
                        CorruptionKind::BadMetadata { reason },
                    ));
                }
                configs.push((name, cfg));
            }
        }
        // The marker is consumed before loading, so a crash while loading
        // still counts as unclean next time.
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = fs.exists(&marker);
        if clean {
            fs.remove_file(&marker).map_err(io_err("remove", &marker))?;
            if !temporary {
                fs.sync_dir(dir).map_err(io_err("sync", dir))?;
            }
        }
        report.clean_shutdown = clean;
        let same_boot = !clean && !temporary && session_is_this_boot(&*fs, dir);
        let checkpoints = read_checkpoint(&*fs, dir).unwrap_or_else(|e| {
            // The checkpoint only saves work: if it is damaged, scan everything.
            report.checkpoint_ignored = Some(e.to_string());
            Checkpoints::new()
        });
        let mut topics = BTreeMap::new();
        for (name, cfg) in configs {
            let cfg = Arc::new(cfg);
            let name: Arc<str> = name.into();
            let mut parts = Vec::with_capacity(cfg.partitions as usize);
            for p in 0..cfg.partitions {
                let pdir = dir.join(format!("{name}-{p}"));
                if !fs.is_dir(&pdir) {
                    return Err(Error::corrupted(
                        pdir,
                        0,
                        None,
                        CorruptionKind::MissingPartition,
                    ));
                }
                let cp = checkpoints
                    .get(&(name.to_string(), p))
                    .copied()
                    .unwrap_or_default();
                let (rp, start) = (cp.recovery_point, cp.log_start);
                let ctx = LoadCtx {
                    fs: &*fs,
                    dir: &pdir,
                    mode: opts.recovery,
                    clean,
                    same_boot,
                    recovery_point: rp,
                    log_start: start,
                    segment_bytes: cfg.segment_bytes,
                    index_interval: cfg.index_interval_bytes,
                    segment_index_bytes: cfg.segment_index_bytes,
                    sync: !temporary,
                };
                let loaded = load_partition(&ctx, &mut report)?;
                if !temporary {
                    fs.sync_dir(&pdir).map_err(io_err("sync", &pdir))?;
                }
                parts.push(Arc::new(Partition::new(
                    name.clone(),
                    p,
                    pdir,
                    cfg.clone(),
                    shared.clone(),
                    loaded,
                    cp,
                )));
            }
            topics.insert(name.to_string(), Arc::new(Topic::new(name, cfg, parts)));
        }
        let inner = Arc::new(LogInner {
            dir: dir.to_owned(),
            shared,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            lock: Mutex::new(Some(lock)),
            report,
            temporary,
            groups: Mutex::new(HashMap::new()),
            offsets: Mutex::new(HashMap::new()),
            next_member: AtomicU64::new(1),
            maintenance: Mutex::new(()),
        });
        inner.replay_offsets()?;
        if !inner.report.truncations.is_empty() || !clean {
            let _g = inner.admin.lock();
            inner.write_checkpoint()?;
        }
        if !temporary {
            write_session(&*fs, dir)?;
        }
        Ok(Log { inner })
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates a topic.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`] (nothing is created on disk),
    /// [`Error::InvalidConfig`], [`Error::TopicExists`], [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, TopicConfig, Error};
    /// let log = Log::temporary()?;
    /// log.create_topic("orders", TopicConfig::new().partitions(4))?;
    /// assert!(matches!(log.create_topic("orders", TopicConfig::new()), Err(Error::TopicExists { .. })));
    /// assert!(matches!(log.create_topic("../x", TopicConfig::new()), Err(Error::InvalidTopicName { .. })));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        validate_user_name(name)?;
        self.inner.create_topic(name, config)
    }

    /// Deletes a topic and its data. Readers holding records from it keep
    /// them; later reads and writes get [`Error::UnknownTopic`].
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// let log = streamlog::Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.delete_topic("t")?;
    /// assert!(log.topics().is_empty());
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.inner.delete_topic(name)
    }

    /// Grows a topic to `total` partitions (Kafka's `CreatePartitions`).
    /// Existing partitions keep their data. Groups subscribed to the topic
    /// rebalance. Keyed records may map to other partitions from now on.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::InvalidConfig`] unless `total` is
    /// larger than the current count, [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// let log = streamlog::Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.create_partitions("t", 3)?;
    /// assert_eq!(log.topic_config("t")?.partition_count(), 3);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn create_partitions(&self, topic: &str, total: u32) -> Result<()> {
        self.inner.create_partitions(topic, total)
    }

    /// User topics, sorted. Internal topics are hidden.
    pub fn topics(&self) -> Vec<String> {
        self.inner
            .topics
            .read()
            .values()
            .filter(|t| !t.is_internal())
            .map(|t| t.name.to_string())
            .collect()
    }

    /// A topic's configuration.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub fn topic_config(&self, name: &str) -> Result<TopicConfig> {
        Ok((*self.inner.topic(name)?.config).clone())
    }

    /// A producer. Producers are `Clone + Send + Sync`.
    pub fn producer(&self) -> Producer {
        Producer::new(self.inner.clone())
    }

    /// A consumer. Without a group it reads the partitions given to
    /// [`Consumer::assign`].
    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.inner.clone(), config)
    }

    /// Makes everything appended so far durable (fdatasync of every
    /// partition with unsynced data), then checkpoints the recovery points.
    ///
    /// # Errors
    /// [`Error::Io`] (which also poisons the log), [`Error::Poisoned`].
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    /// Closes the log cleanly: syncs everything, trims preallocated space,
    /// writes the checkpoint and the clean-shutdown marker, and releases the
    /// directory lock. Other handles (producers, consumers) get
    /// [`Error::Closed`] afterwards. Dropping the last handle without
    /// `close` is allowed: it does the same on a best-effort basis.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Poisoned`].
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }

    /// What opening the log found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

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
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`].
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
            segments: p.segments().len(),
        })
    }

    /// Every offset committed by consumer group `group`, sorted by
    /// partition.
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, ConsumerConfig, OffsetAndMetadata, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", streamlog::Record::new(b"x"))?;
    /// let mut c = log.consumer(ConsumerConfig::new().group("g"));
    /// let tp = TopicPartition::new("t", 0);
    /// c.assign(&[tp.clone()])?;
    /// c.commit_offsets(&[(tp.clone(), OffsetAndMetadata::new(1))].into_iter().collect())?;
    /// assert_eq!(log.committed_offsets("g")[0].1.offset(), 1);
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn committed_offsets(&self, group: &str) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        self.inner.group_offsets(group)
    }

    /// The consumer groups that have committed offsets, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.inner.group_ids()
    }

    /// The first offset whose timestamp is `>= timestamp_ms`, or `None` if
    /// every record is older (Kafka's `offsetsForTimes`).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`],
    /// [`Error::Corrupted`].
    pub fn offset_for_timestamp(
        &self,
        tp: &TopicPartition,
        timestamp_ms: i64,
    ) -> Result<Option<u64>> {
        self.inner
            .partition(&tp.topic, tp.partition)?
            .offset_for_timestamp(timestamp_ms)
    }
}

type Checkpoints = HashMap<(String, u32), Checkpoint>;

/// How long a second opener retries before reporting `Locked`: a lock held
/// only by a forked child between `fork` and `exec` is gone by then.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

fn take_lock(fs: &dyn FileSystem, dir: &Path) -> Result<Box<dyn Any + Send + Sync>> {
    let lock_path = dir.join(LOCK_FILE);
    let deadline = std::time::Instant::now() + LOCK_RETRY;
    loop {
        match fs.lock(&lock_path) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= deadline {
                    return Err(Error::Locked {
                        path: dir.to_owned(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io("lock", &lock_path, e)),
        }
    }
}

/// Whether the session marker names the boot the machine is on now, so that
/// the run that last had the log open shared this page cache: whatever it
/// wrote is there, synced or not (see `storage::tail`). A missing, torn or
/// damaged marker, or a platform without boot ids, means no.
fn session_is_this_boot(fs: &dyn FileSystem, dir: &Path) -> bool {
    let Some(now) = fs.boot_id() else {
        return false;
    };
    fs.read(&dir.join(SESSION_FILE))
        .ok()
        .and_then(|b| meta::decode_session(&b))
        .is_some_and(|id| id == now)
}

/// Records the current boot in the session marker, once every partition is
/// loaded: only then is what the page cache holds something recovery has
/// validated (after a power cut, the marker still names the old boot until
/// this point, so a crash while loading is recovered the slow way again).
///
/// Written in place and never synced, on purpose. On the same boot the page
/// cache serves it whole, or torn by a crash mid-write (its CRC then fails,
/// which only costs a full scan). After a machine crash the next boot has a
/// different id, so whether the marker reached the disk, whole or at all,
/// cannot matter: either way recovery takes the power-cut path.
fn write_session(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let path = dir.join(SESSION_FILE);
    let Some(bytes) = fs.boot_id().and_then(|id| meta::encode_session(&id)) else {
        return Ok(());
    };
    let f = fs
        .open(&path, OpenMode::CreateTruncate)
        .map_err(io_err("create", &path))?;
    f.write_at(&bytes, 0).map_err(io_err("write", &path))
}

fn read_checkpoint(fs: &dyn FileSystem, dir: &Path) -> Result<Checkpoints> {
    let path = dir.join(CHECKPOINT_FILE);
    let mut out = HashMap::new();
    if !fs.exists(&path) {
        return Ok(out);
    }
    let bytes = fs.read(&path).map_err(io_err("read", &path))?;
    let bad =
        |reason: String| Error::corrupted(&path, 0, None, CorruptionKind::BadMetadata { reason });
    for line in meta::decode("checkpoint", &bytes).map_err(|e| meta_err(&path, e))? {
        let f: Vec<&str> = line.split(' ').collect();
        let [topic, p, rp, start, cleaned] = f[..] else {
            return Err(bad(format!("line {line:?} does not have 5 fields")));
        };
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| bad(format!("{s:?} is not a number")))
        };
        let p = u32::try_from(num(p)?).map_err(|_| bad("partition out of range".into()))?;
        out.insert(
            (topic.to_owned(), p),
            Checkpoint {
                recovery_point: num(rp)?,
                log_start: num(start)?,
                cleaner_point: num(cleaned)?,
            },
        );
    }
    Ok(out)
}

impl LogInner {
    /// Installs a new topic map and retires every topic object it no
    /// longer holds (deleted, or replaced by one with more partitions), so
    /// that producers holding one look the name up again.
    fn set_topics(&self, next: BTreeMap<String, Arc<Topic>>) {
        let mut map = self.topics.write();
        let old = std::mem::replace(&mut *map, next);
        for (name, t) in &old {
            if !map.get(name).is_some_and(|now| Arc::ptr_eq(now, t)) {
                t.retire();
            }
        }
    }

    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                topic: name.to_owned(),
            })
    }

    pub fn partition(&self, topic: &str, p: u32) -> Result<Arc<Partition>> {
        self.topic(topic)?.partition(p).cloned()
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        if self.temporary {
            return Ok(());
        }
        self.shared.fs.sync_dir(dir).map_err(io_err("sync", dir))
    }

    /// Writes a metadata file atomically: temp file, fsync, rename, fsync
    /// of the directory.
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let fs = &*self.shared.fs;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let f = fs
            .open(&tmp, OpenMode::CreateTruncate)
            .map_err(io_err("create", &tmp))?;
        f.write_at(bytes, 0).map_err(io_err("write", &tmp))?;
        if !self.temporary {
            f.sync_data().map_err(io_err("sync", &tmp))?;
        }
        drop(f);
        fs.rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        self.sync_dir(&self.dir)
    }

    fn write_registry(&self, topics: &BTreeMap<String, Arc<Topic>>) -> Result<()> {
        let lines: Vec<String> = topics
            .values()
            .map(|t| encode_line(&t.name, &t.config))
            .collect();
        self.write_atomic(REGISTRY_FILE, &meta::encode("topics", &lines))
    }

    /// Records each partition's durable offset as its recovery point. The
    /// caller holds `admin`.
    pub fn write_checkpoint(&self) -> Result<()> {
        let topics = self.topics.read().clone();
        let mut lines = Vec::new();
        for t in topics.values() {
            for p in &t.partitions {
                lines.push(format!(
                    "{} {} {} {} {}",
                    t.name,
                    p.id,
                    p.durable_offset(),
                    p.start_offset(),
                    p.cleaner_point()
                ));
            }
        }
        self.write_atomic(CHECKPOINT_FILE, &meta::encode("checkpoint", &lines))
            .inspect_err(|e| self.shared.poison(e))
    }

    /// Called after an append that rolled a segment: the recovery point
    /// moves past the sealed segment so that recovery never rescans it, and
    /// retention runs for the partition (unless `maintain` is busy, which
    /// will apply it).
    pub fn on_roll(&self, part: &Partition) -> Result<()> {
        {
            let _g = self.admin.lock();
            self.write_checkpoint()?;
        }
        if let Some(_m) = self.maintenance.try_lock() {
            self.apply_retention(part, &mut Default::default())?;
        }
        Ok(())
    }

    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        config.validate()?;
        self.shared.check_writable()?;
        let _g = self.admin.lock();
        if self.topics.read().contains_key(name) {
            return Err(Error::TopicExists {
                topic: name.to_owned(),
            });
        }
        let cfg = Arc::new(config);
        let name_arc: Arc<str> = name.into();
        let parts = self.create_partitions_on_disk(&name_arc, &cfg, 0..cfg.partitions)?;
        let mut next = self.topics.read().clone();
        next.insert(name.to_owned(), Arc::new(Topic::new(name_arc, cfg, parts)));
        // Once the registry names the topic it exists; a failure here leaves
        // the on-disk state unknown, so the log is poisoned.
        self.write_registry(&next)
            .inspect_err(|e| self.shared.poison(e))?;
        self.set_topics(next);
        Ok(())
    }

    pub fn create_partitions(&self, name: &str, total: u32) -> Result<()> {
        self.shared.check_writable()?;
        let _g = self.admin.lock();
        let topic = self.topic(name)?;
        let have = topic.partitions.len() as u32;
        let mut cfg = (*topic.config).clone();
        cfg.partitions = total;
        cfg.validate()?;
        if total <= have {
            return Err(Error::InvalidConfig {
                what: format!("topic {name:?} has {have} partitions; the new count must be larger, not {total}"),
            });
        }
        let cfg = Arc::new(cfg);
        let mut parts = topic.partitions.clone();
        parts.extend(self.create_partitions_on_disk(&topic.name, &cfg, have..total)?);
        let mut next = self.topics.read().clone();
        next.insert(
            name.to_owned(),
            Arc::new(Topic::new(topic.name.clone(), cfg, parts)),
        );
        self.write_registry(&next)
            .inspect_err(|e| self.shared.poison(e))?;
        self.set_topics(next);
        Ok(())
    }

    /// Creates the directories and first segments of partitions `range`,
    /// durably, before the registry names them. On failure, removes what it
    /// created.
    fn create_partitions_on_disk(
        &self,
        name: &Arc<str>,
        cfg: &Arc<TopicConfig>,
        range: std::ops::Range<u32>,
    ) -> Result<Vec<Arc<Partition>>> {
        let fs = &*self.shared.fs;
        let mut parts = Vec::new();
        let mut created = Vec::new();
        let result = (|| -> Result<()> {
            for p in range {
                let pdir = self.dir.join(format!("{name}-{p}"));
                // A directory with this name can only be left over from a
                // create or delete that crashed before the registry changed.
                if fs.exists(&pdir) {
                    fs.remove_dir_all(&pdir)
                        .map_err(io_err("remove stale", &pdir))?;
                }
                fs.create_dir_all(&pdir).map_err(io_err("create", &pdir))?;
                created.push(pdir.clone());
                let seg = Segment::create(fs, &pdir, 0, cfg.segment_bytes, cfg.segment_index_bytes)
                    .map_err(io_err("create segment in", &pdir))?;
                self.sync_dir(&pdir)?;
                let loaded = Loaded {
                    segments: vec![Arc::new(seg)],
                    cursor: crate::storage::recovery::IndexCursor::new(cfg.index_interval_bytes),
                    durable: None,
                };
                parts.push(Arc::new(Partition::new(
                    name.clone(),
                    p,
                    pdir,
                    cfg.clone(),
                    self.shared.clone(),
                    loaded,
                    Checkpoint::default(),
                )));
            }
            self.sync_dir(&self.dir)
        })();
        if let Err(e) = result {
            for d in created {
                let _ = fs.remove_dir_all(&d);
            }
            return Err(e);
        }
        Ok(parts)
    }

    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.shared.check_writable()?;
        let _g = self.admin.lock();
        let topic = self.topic(name)?;
        if topic.is_internal() {
            return Err(Error::InvalidTopicName {
                name: name.to_owned(),
                reason: "internal topics cannot be deleted",
            });
        }
        let mut next = self.topics.read().clone();
        next.remove(name);
        self.write_registry(&next)
            .inspect_err(|e| self.shared.poison(e))?;
        self.set_topics(next);
        drop(_g);
        self.forget_topic_offsets(name)?;
        let _g = self.admin.lock();
        for p in &topic.partitions {
            p.mark_deleted();
            // Keep the deleted partition's appends in the log's totals.
            let (c, m) = (p.counters(), &self.shared.metrics);
            for (from, to) in [
                (&c.records, &m.records_appended),
                (&c.batches, &m.batches_appended),
                (&c.bytes, &m.bytes_appended),
            ] {
                to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            self.shared
                .fs
                .remove_dir_all(&p.dir)
                .map_err(io_err("remove", &p.dir))?;
        }
        self.write_checkpoint()
    }

    pub(crate) fn admin_lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.admin.lock()
    }

    /// The partitions of one topic, or of all topics.
    pub(crate) fn partitions_of(&self, topic: Option<&str>) -> Result<Vec<Arc<Partition>>> {
        match topic {
            Some(t) => Ok(self.topic(t)?.partitions.clone()),
            None => Ok(self.all_partitions()),
        }
    }

    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    pub fn flush(&self) -> Result<()> {
        self.shared.check_writable()?;
        for p in self.all_partitions() {
            p.flush()?;
        }
        let _g = self.admin.lock();
        self.write_checkpoint()
    }

    pub fn close(&self) -> Result<()> {
        if self.shared.is_closed() {
            return Ok(());
        }
        self.shared.check_writable()?;
        let _g = self.admin.lock();
        // Closed first: appends still waiting for a partition's lock then
        // fail with `Closed`, and `Partition::close` waits for any in flight.
        self.shared.set_closed();
        for p in self.all_partitions() {
            p.close()?;
        }
        self.write_checkpoint()?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        let f = self
            .shared
            .fs
            .open(&marker, OpenMode::CreateTruncate)
            .map_err(io_err("create", &marker))?;
        if !self.temporary {
            f.sync_data().map_err(io_err("sync", &marker))?;
        }
        self.sync_dir(&self.dir)?;
        *self.lock.lock() = None;
        Ok(())
    }
}

impl Drop for LogInner {
    fn drop(&mut self) {
        if self.temporary {
            *self.lock.lock() = None;
            let _ = self.shared.fs.remove_dir_all(&self.dir);
        } else if !self.shared.is_closed() && !self.shared.is_poisoned() {
            // Best effort: a failed close only means the next open recovers.
            let _ = self.close();
        }
    }
}
