//! The log's shared state: [`Log`] (the handle users hold) and `LogInner`
//! (what every handle, producer and consumer of one log shares), with the
//! topic map and the atomic metadata-file write. The rest of `LogInner`'s
//! methods live beside it in this room: `admin`, `groups` and
//! `maintenance`; `open` builds it, and `metrics` and `mod.rs` hold
//! `Log`'s public methods.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::{io_err, Error, Result};
use crate::group::store::GroupStore;
use crate::io::OpenMode;
use crate::storage::partition::Partition;
use crate::storage::policy::RecoveryMode;
use crate::storage::recovery::report::RecoveryReport;
use crate::storage::shared::Shared;
use crate::topic::Topic;

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
    pub(super) topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes topic creation and deletion and metadata-file writes.
    pub(super) admin: Mutex<()>,
    pub(super) lock: Mutex<Option<Box<dyn Any + Send + Sync>>>,
    pub(super) report: RecoveryReport,
    pub(super) temporary: bool,
    /// What recovery does with damage, for topics recovered later.
    pub(super) recovery: RecoveryMode,
    /// Consumer groups: coordinators and the image of `__consumer_offsets`.
    pub groups: GroupStore,
    /// Serializes maintenance (retention, compaction).
    pub(super) maintenance: Mutex<()>,
    /// The producer ids this log may hand out without a write.
    pub(super) producer_ids: Mutex<PidBlock>,
    /// Transactional ids: the image of `__transaction_state`.
    pub(super) txns: crate::txn::TxnCoordinator,
}

/// The producer ids a log can hand out without writing its
/// `producer-ids` file: `[next, end)` (see `producer_ids.rs`).
#[derive(Debug, Default)]
pub(crate) struct PidBlock {
    pub(super) next: i64,
    pub(super) end: i64,
}

impl LogInner {
    /// Installs a new topic map and retires every topic object it no
    /// longer holds (deleted, or replaced by one with more partitions), so
    /// that producers holding one look the name up again.
    pub(super) fn set_topics(&self, next: BTreeMap<String, Arc<Topic>>) {
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

    /// The partitions of one topic, or of all topics.
    pub(super) fn partitions_of(&self, topic: Option<&str>) -> Result<Vec<Arc<Partition>>> {
        match topic {
            Some(t) => Ok(self.topic(t)?.partitions.clone()),
            None => Ok(self.all_partitions()),
        }
    }

    pub(super) fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    pub(super) fn sync_dir(&self, dir: &Path) -> Result<()> {
        if self.temporary {
            return Ok(());
        }
        self.shared.fs.sync_dir(dir).map_err(io_err("sync", dir))
    }

    /// Writes a metadata file atomically: temp file, fsync, rename, fsync
    /// of the directory.
    pub(super) fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
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
