//! Administration of a log's topics: create, grow and delete them, write
//! the registry and the checkpoint, flush and close.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::open::{parse_partition_dir, Load};
use super::state::{LogInner, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE, REGISTRY_FILE};
use crate::error::{io_err, CorruptionKind, Error, Result};
use crate::format::checkpoint::{self, Checkpoint, Checkpoints};
use crate::format::{meta, registry};
use crate::io::{FileSystem, OpenMode};
use crate::storage::cursor::IndexCursor;
use crate::storage::partition::Partition;
use crate::storage::recovery::report::RecoveryReport;
use crate::storage::recovery::Loaded;
use crate::storage::segment::Segment;
use crate::topic::config::TopicConfig;
use crate::topic::Topic;
use crate::txn::TXN_STATE_TOPIC;

impl LogInner {
    pub(super) fn write_registry(&self, topics: &BTreeMap<String, Arc<Topic>>) -> Result<()> {
        let lines: Vec<String> = topics
            .values()
            .map(|t| registry::encode_line(&t.name, &t.config))
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
                let cp = Checkpoint {
                    recovery_point: p.durable_offset(),
                    log_start: p.start_offset(),
                    cleaner_point: p.cleaner_point(),
                };
                lines.push(checkpoint::encode_line(&t.name, p.id, &cp));
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

    pub fn alter_topic_config(&self, name: &str, config: TopicConfig) -> Result<()> {
        config.validate()?;
        self.shared.check_writable()?;
        let _g = self.admin.lock();
        let topic = self.user_topic(name, "the configs of internal topics are the log's own")?;
        let have = topic.partitions.len() as u32;
        if config.partitions != have {
            return Err(Error::InvalidConfig {
                what: format!(
                    "topic {name:?} has {have} partitions, not {}; add partitions with create_partitions",
                    config.partitions
                ),
            });
        }
        let cfg = Arc::new(config);
        let mut next = self.topics.read().clone();
        next.insert(
            name.to_owned(),
            Arc::new(Topic::new(
                topic.name.clone(),
                cfg.clone(),
                topic.partitions.clone(),
            )),
        );
        self.write_registry(&next)
            .inspect_err(|e| self.shared.poison(e))?;
        for p in &topic.partitions {
            p.set_config(cfg.clone());
        }
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
                // A directory with this name is left over from a create that
                // crashed before the registry named it (empty segments: made
                // again), or holds a topic the registry lost (data: never
                // removed, see `recover_topic`).
                if fs.exists(&pdir) {
                    if holds_data(fs, &pdir)? {
                        return Err(Error::UnregisteredData { path: pdir });
                    }
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
                    cursor: IndexCursor::new(
                        cfg.index_interval_bytes,
                        crate::format::batch::Version::V2,
                    ),
                    durable: None,
                    skip_to: None,
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

    /// Registers topic `name` again from the partition directories on disk
    /// (`name-0` to `name-{n-1}`), which the registry does not name: after
    /// a lost or damaged registry, or a delete that crashed. Every segment
    /// is scanned as after a crash; `config`'s partition count is replaced
    /// by the number of directories. Returns that number.
    pub fn recover_topic(&self, name: &str, config: TopicConfig) -> Result<u32> {
        self.shared.check_writable()?;
        let _g = self.admin.lock();
        if self.topics.read().contains_key(name) {
            return Err(Error::TopicExists {
                topic: name.to_owned(),
            });
        }
        let fs = &*self.shared.fs;
        let mut found: Vec<u32> = fs
            .read_dir(&self.dir)
            .map_err(io_err("list", &self.dir))?
            .iter()
            .filter_map(|n| {
                parse_partition_dir(n)
                    .filter(|(t, _)| *t == name)
                    .map(|(_, p)| p)
            })
            .filter(|p| fs.is_dir(&self.dir.join(format!("{name}-{p}"))))
            .collect();
        found.sort_unstable();
        if found.is_empty() {
            return Err(Error::UnknownTopic {
                topic: name.to_owned(),
            });
        }
        if let Some(missing) = (0..).zip(&found).find(|(want, &have)| *want != have) {
            return Err(Error::corrupted(
                self.dir.join(format!("{name}-{}", missing.0)),
                0,
                None,
                CorruptionKind::MissingPartition,
            ));
        }
        let mut cfg = config;
        cfg.partitions = found.len() as u32;
        cfg.validate()?;
        let empty = Checkpoints::new();
        let load = Load::scanning_all(self, &empty);
        let mut report = RecoveryReport::default();
        let topic = load.topic(name.into(), Arc::new(cfg), &mut report)?;
        let mut next = self.topics.read().clone();
        next.insert(name.to_owned(), Arc::new(topic));
        self.write_registry(&next)
            .inspect_err(|e| self.shared.poison(e))?;
        self.set_topics(next);
        self.write_checkpoint()?;
        Ok(found.len() as u32)
    }

    /// The topic `name`, refused with `why` if it is one of the log's own
    /// (internal) topics.
    fn user_topic(&self, name: &str, why: &'static str) -> Result<Arc<Topic>> {
        let topic = self.topic(name)?;
        if topic.is_internal() {
            return Err(Error::InvalidTopicName {
                name: name.to_owned(),
                reason: why,
            });
        }
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.shared.check_writable()?;
        let _g = self.admin.lock();
        let topic = self.user_topic(name, "internal topics cannot be deleted")?;
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

    pub fn flush(&self) -> Result<()> {
        self.shared.check_writable()?;
        for p in self.partitions_state_last() {
            p.flush()?;
        }
        let _g = self.admin.lock();
        self.write_checkpoint()
    }

    /// Every partition, `__transaction_state`'s last (markers are durable
    /// before any record that replaces their decision is appended, see
    /// `log/transactions.rs`; syncing that topic last is belt and braces).
    fn partitions_state_last(&self) -> Vec<Arc<Partition>> {
        let mut all = self.all_partitions();
        all.sort_by_key(|p| &*p.topic == TXN_STATE_TOPIC);
        all
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
        for p in self.partitions_state_last() {
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

/// Whether a partition directory holds records: a segment file that is
/// not empty. A create that crashed before the registry named the topic
/// leaves only empty ones.
fn holds_data(fs: &dyn FileSystem, dir: &Path) -> Result<bool> {
    for n in fs.read_dir(dir).map_err(io_err("list", dir))? {
        if n.ends_with(".log") {
            let p = dir.join(&n);
            let f = fs.open(&p, OpenMode::Read).map_err(io_err("open", &p))?;
            if f.len().map_err(io_err("stat", &p))? > 0 {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
