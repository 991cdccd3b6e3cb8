//! Opening a log directory: the lock, the registry, the clean-shutdown and
//! session markers, the checkpoint, and loading every partition.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::groups::replay_offsets;
use super::options::LogOptions;
use super::state::{
    Log, LogInner, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE, LOCK_FILE, REGISTRY_FILE, SESSION_FILE,
};
use super::txn_recovery::{finish_transactions, replay_txn_state};
use crate::error::{io_err, CorruptionKind, Error, Result};
use crate::format::checkpoint::{self, Checkpoints};
use crate::format::meta::{self, MetaError};
use crate::format::registry;
use crate::group::offsets::OFFSETS_TOPIC;
use crate::group::store::GroupStore;
use crate::io::std_fs::StdFs;
use crate::io::{FileSystem, OpenMode};
use crate::storage::partition::Partition;
use crate::storage::policy::RecoveryMode;
use crate::storage::recovery::load::load_partition;
use crate::storage::recovery::report::RecoveryReport;
use crate::storage::recovery::LoadCtx;
use crate::storage::shared::Shared;
use crate::topic::config::TopicConfig;
use crate::topic::name::validate_name;
use crate::topic::Topic;
use crate::txn::{TxnCoordinator, TXN_STATE_TOPIC};

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

impl LogOptions {
    /// Opens (creating if needed) the log in `dir`.
    ///
    /// # Errors
    /// [`Error::Locked`] if another `Log` holds the directory,
    /// [`Error::Corrupted`] or [`Error::UnsupportedVersion`] for metadata it
    /// cannot trust, and [`Error::Io`].
    pub fn open(self, dir: impl AsRef<Path>) -> Result<Log> {
        open_on(Arc::new(StdFs), dir.as_ref(), self, false)
    }

    /// Opens a log in a fresh temporary directory that is removed when the
    /// last handle drops. It skips every fsync: the data cannot outlive the
    /// process anyway. Everything else behaves exactly as on disk.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be created.
    pub fn temporary(self) -> Result<Log> {
        open_temporary(self)
    }
}

/// Opens a log in a fresh directory under the system's temp dir, removed
/// when the last handle drops.
fn open_temporary(opts: LogOptions) -> Result<Log> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir =
        std::env::temp_dir().join(format!("streamlog-{}-{n}-{nanos:08x}", std::process::id()));
    open_on(Arc::new(StdFs), &dir, opts, true)
}

/// Opens the log in `dir` on the file system `fs`: creates the directory if
/// needed, takes the lock, reads the registry, consumes the clean-shutdown
/// marker, loads every partition from its checkpoint, replays the group
/// offsets, and records this boot in the session marker.
pub(crate) fn open_on(
    fs: Arc<dyn FileSystem>,
    dir: &Path,
    opts: LogOptions,
    temporary: bool,
) -> Result<Log> {
    if dir.as_os_str().is_empty() {
        return Err(Error::io(
            "open",
            dir,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the log directory's path is empty",
            ),
        ));
    }
    create_dir(&*fs, dir, temporary)?;
    let lock = take_lock(&*fs, dir)?;
    let shared = Arc::new(Shared::new(
        fs.clone(),
        opts.clock.clone(),
        opts.sync,
        temporary,
        opts.max_mapped_segments,
    ));
    let mut report = RecoveryReport::default();
    let configs = read_registry(&*fs, dir)?;
    // The marker is consumed before loading, so a crash while loading
    // still counts as unclean next time.
    let clean = take_clean_marker(&*fs, dir, temporary)?;
    report.clean_shutdown = clean;
    let same_boot = !clean && !temporary && session_is_this_boot(&*fs, dir);
    let checkpoints = read_checkpoint(&*fs, dir).unwrap_or_else(|e| {
        // The checkpoint only saves work: if it is damaged, scan everything.
        report.checkpoint_ignored = Some(e.to_string());
        Checkpoints::new()
    });
    let load = Load {
        fs: &*fs,
        dir,
        mode: opts.recovery,
        shared: &shared,
        checkpoints: &checkpoints,
        clean,
        same_boot,
        temporary,
    };
    let mut topics = BTreeMap::new();
    for (name, cfg) in configs {
        let topic = load.topic(name.into(), Arc::new(cfg), &mut report)?;
        topics.insert(topic.name.to_string(), Arc::new(topic));
    }
    report.unregistered_partitions = unregistered_partitions(&*fs, dir, &topics)?;
    let groups = GroupStore::default();
    let offsets_topic = topics.get(OFFSETS_TOPIC).map(|t| &**t);
    let mut pending = replay_offsets(offsets_topic, &groups, &mut report)?;
    let txns = TxnCoordinator::default();
    let txn_topic = topics.get(TXN_STATE_TOPIC).map(|t| &**t);
    replay_txn_state(txn_topic, &txns, &mut report)?;
    finish_transactions(
        &topics,
        &txns,
        &groups,
        &mut pending,
        shared.clock.now_ms(),
        &mut report,
    )?;
    let inner = Arc::new(LogInner {
        dir: dir.to_owned(),
        shared,
        topics: RwLock::new(topics),
        admin: Mutex::new(()),
        lock: Mutex::new(Some(lock)),
        report,
        temporary,
        recovery: opts.recovery,
        groups,
        maintenance: Mutex::new(()),
        producer_ids: Mutex::new(Default::default()),
        txns,
    });
    if !inner.report.truncations.is_empty() || !clean {
        let _g = inner.admin.lock();
        inner.write_checkpoint()?;
    }
    if !temporary {
        write_session(&*fs, dir)?;
    }
    Ok(Log { inner })
}

/// Creates the log directory; a new one's own entry is made durable too,
/// or a power cut could lose the whole log with everything acknowledged in
/// it.
fn create_dir(fs: &dyn FileSystem, dir: &Path, temporary: bool) -> Result<()> {
    let existed = fs.is_dir(dir);
    fs.create_dir_all(dir).map_err(io_err("create", dir))?;
    if !existed && !temporary {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent).map_err(io_err("sync", parent))?;
        }
    }
    Ok(())
}

/// The topics the registry names, with their settings, in file order.
pub(crate) fn read_registry(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<(String, TopicConfig)>> {
    let registry_path = dir.join(REGISTRY_FILE);
    let mut configs: Vec<(String, TopicConfig)> = Vec::new();
    if !fs.exists(&registry_path) {
        return Ok(configs);
    }
    let bytes = fs
        .read(&registry_path)
        .map_err(io_err("read", &registry_path))?;
    let bad = |reason: String| {
        Error::corrupted(
            &registry_path,
            0,
            None,
            CorruptionKind::BadMetadata { reason },
        )
    };
    for line in meta::decode("topics", &bytes).map_err(|e| meta_err(&registry_path, e))? {
        let (name, cfg) = registry::decode_line(&line).map_err(bad)?;
        if configs.iter().any(|(n, _)| *n == name) {
            return Err(bad(format!("topic {name:?} is listed twice")));
        }
        configs.push((name, cfg));
    }
    Ok(configs)
}

/// Whether the last run closed the log cleanly; removes the marker.
fn take_clean_marker(fs: &dyn FileSystem, dir: &Path, temporary: bool) -> Result<bool> {
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let clean = fs.exists(&marker);
    if clean {
        fs.remove_file(&marker).map_err(io_err("remove", &marker))?;
        if !temporary {
            fs.sync_dir(dir).map_err(io_err("sync", dir))?;
        }
    }
    Ok(clean)
}

/// The directories that look like partitions (`<topic>-<n>`, a valid topic
/// name) of no registered topic, sorted.
fn unregistered_partitions(
    fs: &dyn FileSystem,
    dir: &Path,
    topics: &BTreeMap<String, Arc<Topic>>,
) -> Result<Vec<std::path::PathBuf>> {
    let mut out: Vec<_> = fs
        .read_dir(dir)
        .map_err(io_err("list", dir))?
        .into_iter()
        .filter(|n| match parse_partition_dir(n) {
            Some((t, p)) => topics
                .get(t)
                .is_none_or(|t| p as usize >= t.partitions.len()),
            None => false,
        })
        .map(|n| dir.join(n))
        .filter(|p| fs.is_dir(p))
        .collect();
    out.sort();
    Ok(out)
}

/// `<topic>-<n>` as (topic, n), for a valid topic name and a partition
/// number written without leading zeros.
pub(super) fn parse_partition_dir(name: &str) -> Option<(&str, u32)> {
    let (topic, p) = name.rsplit_once('-')?;
    let n: u32 = p.parse().ok()?;
    (n.to_string() == p && validate_name(topic).is_ok()).then_some((topic, n))
}

/// What loading the partitions of every topic shares.
pub(super) struct Load<'a> {
    fs: &'a dyn FileSystem,
    dir: &'a Path,
    mode: RecoveryMode,
    shared: &'a Arc<Shared>,
    checkpoints: &'a Checkpoints,
    clean: bool,
    same_boot: bool,
    temporary: bool,
}

impl<'a> Load<'a> {
    /// Loading without a checkpoint or a clean shutdown: every segment is
    /// scanned (a topic registered again by `recover_topic`).
    pub(super) fn scanning_all(log: &'a LogInner, empty: &'a Checkpoints) -> Self {
        Load {
            fs: &*log.shared.fs,
            dir: &log.dir,
            mode: log.recovery,
            shared: &log.shared,
            checkpoints: empty,
            clean: false,
            same_boot: false,
            temporary: log.temporary,
        }
    }

    /// Loads every partition of one registered topic.
    pub(super) fn topic(
        &self,
        name: Arc<str>,
        cfg: Arc<TopicConfig>,
        report: &mut RecoveryReport,
    ) -> Result<Topic> {
        let mut parts = Vec::with_capacity(cfg.partitions as usize);
        for p in 0..cfg.partitions {
            let pdir = self.dir.join(format!("{name}-{p}"));
            if !self.fs.is_dir(&pdir) {
                return Err(Error::corrupted(
                    pdir,
                    0,
                    None,
                    CorruptionKind::MissingPartition,
                ));
            }
            let checkpointed = self.checkpoints.get(&(name.to_string(), p)).copied();
            let cp = checkpointed.unwrap_or_default();
            let ctx = LoadCtx {
                fs: self.fs,
                dir: &pdir,
                mode: self.mode,
                clean: self.clean,
                same_boot: self.same_boot,
                recovery_point: cp.recovery_point,
                log_start: cp.log_start,
                checkpointed: checkpointed.is_some(),
                segment_bytes: cfg.segment_bytes,
                index_interval: cfg.index_interval_bytes,
                segment_index_bytes: cfg.segment_index_bytes,
                sync: !self.temporary,
                exact_offsets: cfg.cleanup_policy == crate::topic::config::CleanupPolicy::Delete,
            };
            let loaded = load_partition(&ctx, report)?;
            if !self.temporary {
                self.fs.sync_dir(&pdir).map_err(io_err("sync", &pdir))?;
            }
            let skip_to = loaded.skip_to;
            let part = Partition::new(
                name.clone(),
                p,
                pdir,
                cfg.clone(),
                self.shared.clone(),
                loaded,
                cp,
            );
            if let Some(to) = skip_to {
                part.skip_to(to)?;
            }
            let rebuilt = part.rebuild_producer_state(self.clean)?;
            report.producer_batches_replayed += rebuilt.replayed;
            report.producer_snapshots_discarded += rebuilt.bad_snapshots;
            parts.push(Arc::new(part));
        }
        Ok(Topic::new(name, cfg, parts))
    }
}

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
/// wrote is there, synced or not (see `storage::recovery::tail`). A missing, torn or
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

/// Every partition's checkpoint (none when there is no checkpoint file).
/// Also the read-only reader's.
pub(crate) fn read_checkpoint(fs: &dyn FileSystem, dir: &Path) -> Result<Checkpoints> {
    let path = dir.join(CHECKPOINT_FILE);
    let mut out = Checkpoints::new();
    if !fs.exists(&path) {
        return Ok(out);
    }
    let bytes = fs.read(&path).map_err(io_err("read", &path))?;
    for line in meta::decode("checkpoint", &bytes).map_err(|e| meta_err(&path, e))? {
        let (key, cp) = checkpoint::decode_line(&line).map_err(|reason| {
            Error::corrupted(&path, 0, None, CorruptionKind::BadMetadata { reason })
        })?;
        out.insert(key, cp);
    }
    Ok(out)
}
