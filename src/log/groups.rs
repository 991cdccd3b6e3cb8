//! The log's side of consumer groups: committing offsets into
//! `__consumer_offsets` through the append path, forgetting a deleted
//! topic's offsets, and replaying the topic on open. The in-memory state is
//! the [`GroupStore`](crate::group::store::GroupStore).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::state::{Log, LogInner};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::batch::v2::{parse_control_key, ControlType};
use crate::format::batch::{records_section, BatchHeader, RecordIter};
use crate::format::offsets::{apply, encode_key, encode_value};
use crate::group::coordinator::{Fenced, Group};
use crate::group::offsets::{OffsetAndMetadata, OffsetKey, OFFSETS_TOPIC};
use crate::group::store::GroupStore;
use crate::producer::append_records;
use crate::record::{Record, TopicPartition};
use crate::storage::partition::read::FetchedBatch;
use crate::storage::recovery::report::{RecoveryReport, SkippedRecord};
use crate::topic::config::{CleanupPolicy, TopicConfig};
use crate::topic::Topic;

/// Settings of the internal offsets topic.
fn offsets_topic_config() -> TopicConfig {
    TopicConfig::new()
        .partitions(1)
        .segment_bytes(16 << 20)
        .cleanup_policy(CleanupPolicy::Compact)
}

impl LogInner {
    /// Current partition counts of `topics` (missing topics are left out).
    pub(crate) fn partition_counts(&self, topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
        topics
            .iter()
            .filter_map(|t| {
                self.topic(t)
                    .ok()
                    .map(|x| (t.clone(), x.partitions.len() as u32))
            })
            .collect()
    }

    /// The internal topic `name`, created with `cfg` at its first use.
    pub(super) fn internal_topic(
        &self,
        name: &str,
        cfg: impl FnOnce() -> TopicConfig,
    ) -> Result<Arc<Topic>> {
        match self.topic(name) {
            Ok(t) => Ok(t),
            Err(Error::UnknownTopic { .. }) => {
                match self.create_topic(name, cfg()) {
                    Ok(()) | Err(Error::TopicExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                self.topic(name)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn offsets_topic(&self) -> Result<Arc<Topic>> {
        self.internal_topic(OFFSETS_TOPIC, offsets_topic_config)
    }

    /// Commits offsets for `group` on behalf of `member` (`None`: a consumer
    /// using `assign`). The group stays locked from the ownership check
    /// until the commit is appended and applied, so a fenced member can
    /// never overwrite a newer commit.
    pub(crate) fn commit(
        &self,
        group: &Group,
        member: Option<u64>,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let state = group.lock();
        let tps: Vec<&TopicPartition> = offsets.iter().map(|(tp, _)| tp).collect();
        state
            .check_commit(member, &tps)
            .map_err(|f: Fenced| Error::CommitFailed {
                group: group.id.clone(),
                reason: f.to_string(),
            })?;
        for (tp, o) in offsets {
            let part = self.partition(&tp.topic, tp.partition)?;
            let end = part.end_offset();
            if o.offset > end {
                return Err(Error::OffsetOutOfRange {
                    requested: o.offset,
                    earliest: part.start_offset(),
                    latest: end,
                });
            }
            // A commit is written only after the records it covers are
            // durable, so that after a power cut a committed offset never
            // points past the end of its partition (whatever the policy).
            part.sync_to(o.offset)?;
        }
        let now = self.shared.clock.now_ms();
        let stamped: Vec<OffsetAndMetadata> = offsets
            .iter()
            .map(|(_, o)| OffsetAndMetadata {
                commit_timestamp: now,
                ..o.clone()
            })
            .collect();
        let keys: Vec<Vec<u8>> = offsets
            .iter()
            .map(|(tp, _)| encode_key(&group.id, tp))
            .collect();
        let values: Vec<Vec<u8>> = stamped.iter().map(encode_value).collect();
        let records: Vec<Record<'_>> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| Record::new(&v[..]).key(&k[..]).timestamp(now))
            .collect();
        let refs: Vec<&Record<'_>> = records.iter().collect();
        let topic = self.offsets_topic()?;
        append_records(self, &topic, 0, &refs)?;
        let mut map = self.groups.offsets();
        for ((tp, _), o) in offsets.iter().zip(stamped) {
            map.insert((group.id.clone(), tp.topic.clone(), tp.partition), o);
        }
        drop(state);
        Ok(())
    }

    /// Deletes every committed offset of a deleted topic (tombstones).
    pub(super) fn forget_topic_offsets(&self, topic: &str) -> Result<()> {
        self.write_tombstones(self.groups.committed_for_topic(topic))
    }

    /// Appends a tombstone for each `(group, partition)` offset key and
    /// removes them from the image.
    fn write_tombstones(&self, keys: Vec<(String, TopicPartition)>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let encoded: Vec<Vec<u8>> = keys.iter().map(|(g, tp)| encode_key(g, tp)).collect();
        let records: Vec<Record<'_>> = encoded.iter().map(|k| Record::tombstone(&k[..])).collect();
        let refs: Vec<&Record<'_>> = records.iter().collect();
        let topic = self.offsets_topic()?;
        append_records(self, &topic, 0, &refs)?;
        let mut map = self.groups.offsets();
        for (g, tp) in keys {
            map.remove(&(g, tp.topic, tp.partition));
        }
        Ok(())
    }

    /// An operator's offset reset: a commit from outside the group,
    /// refused while the group has live members.
    pub(super) fn reset_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        crate::group::offsets::validate_group_id(group)?;
        let g = self.groups.group(group);
        if g.lock().in_use() {
            return Err(Error::GroupNotEmpty {
                group: group.to_owned(),
            });
        }
        // A member joining from here on makes `commit` refuse (it checks
        // under the group's lock that a commit from outside meets none).
        self.commit(&g, None, offsets)
    }

    /// Deletes a group's committed offsets (tombstones), refused while it
    /// has live members. Returns how many offsets were deleted.
    pub(super) fn delete_group(&self, group: &str) -> Result<usize> {
        let g = self.groups.group(group);
        let state = g.lock();
        if state.in_use() {
            return Err(Error::GroupNotEmpty {
                group: group.to_owned(),
            });
        }
        let keys: Vec<(String, TopicPartition)> = self
            .groups
            .group_offsets(group)
            .into_iter()
            .map(|(tp, _)| (group.to_owned(), tp))
            .collect();
        if keys.is_empty() {
            return Err(Error::UnknownGroup {
                group: group.to_owned(),
            });
        }
        let n = keys.len();
        self.write_tombstones(keys)?;
        drop(state);
        Ok(n)
    }
}

impl Log {
    /// Sets consumer group `group`'s committed offsets, as an operator
    /// does with `kafka-consumer-groups --reset-offsets` (and
    /// `streamlog groups reset-offsets`): refused while the group has live
    /// members, in-process consumers or remote Kafka clients served by this
    /// log. An offset may be anywhere from the partition's start to its end;
    /// the group's members resume there when they next start.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] while the group has members (nothing is
    /// written); [`Error::InvalidGroupId`]; [`Error::UnknownTopic`],
    /// [`Error::UnknownPartition`]; [`Error::OffsetOutOfRange`] past a
    /// partition's end; [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{ConsumerConfig, Error, Log, OffsetAndMetadata, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// for i in 0..10u8 {
    ///     log.producer().send("t", Record::new(vec![i]))?;
    /// }
    /// let tp = TopicPartition::new("t", 0);
    /// log.reset_group_offsets("g", &[(tp.clone(), OffsetAndMetadata::new(7))])?;
    /// let mut c = log.consumer(ConsumerConfig::new().group("g"));
    /// c.subscribe(&["t"])?;
    /// let records = c.poll(std::time::Duration::from_secs(1))?;
    /// assert_eq!(records.iter().next().unwrap().offset(), 7);
    /// // While `c` is a member, the group cannot be reset.
    /// let again = log.reset_group_offsets("g", &[(tp, OffsetAndMetadata::new(0))]);
    /// assert!(matches!(again, Err(Error::GroupNotEmpty { .. })));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn reset_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        self.inner.reset_group_offsets(group, offsets)
    }

    /// Deletes consumer group `group`: tombstones for each of its committed
    /// offsets in `__consumer_offsets` (compaction removes them later).
    /// Refused while the group has live members. Returns how many offsets
    /// were deleted.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] while the group has members;
    /// [`Error::UnknownGroup`] when it has no committed offsets;
    /// [`Error::Io`].
    ///
    /// # Example
    /// ```
    /// use streamlog::{Log, OffsetAndMetadata, Record, TopicPartition};
    /// let log = Log::temporary()?;
    /// log.create_topic("t", Default::default())?;
    /// log.producer().send("t", Record::new(b"x"))?;
    /// log.commit_offsets("g", &[(TopicPartition::new("t", 0), OffsetAndMetadata::new(1))])?;
    /// assert_eq!(log.delete_group("g")?, 1);
    /// assert!(log.groups().is_empty());
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn delete_group(&self, group: &str) -> Result<usize> {
        self.inner.delete_group(group)
    }
}

/// Loads every committed offset from `__consumer_offsets` into `groups`,
/// at open. A record that cannot be read is skipped and listed in the
/// report; a damaged batch ends the replay of its partition (the commits
/// after it are lost, and listed as one skipped record). Neither keeps the
/// log from opening. Only an I/O error does.
///
/// Offsets committed inside a transaction are applied when its COMMIT
/// marker is replayed and dropped with an ABORT; those of transactions
/// still open at the end are returned, by producer id, for
/// `finish_transactions` to decide.
pub(super) fn replay_offsets(
    topic: Option<&Topic>,
    groups: &GroupStore,
    report: &mut RecoveryReport,
) -> Result<PendingOffsets> {
    let mut pending = PendingOffsets::new();
    let Some(topic) = topic else {
        return Ok(pending);
    };
    let mut map = groups.offsets();
    for part in &topic.partitions {
        let end = part.end_offset();
        let mut pos = part.start_offset();
        let mut batches: Vec<FetchedBatch> = Vec::new();
        while pos < end {
            batches.clear();
            if let Err(e) = part.fetch(pos, 1 << 20, usize::MAX, &mut batches) {
                let path = match &e {
                    Error::Corrupted { path, .. } | Error::UnsupportedVersion { path, .. } => {
                        path.clone()
                    }
                    _ => return Err(e),
                };
                report.offsets_skipped.push(SkippedRecord {
                    path,
                    offset: pos,
                    reason: format!(
                        "__consumer_offsets is damaged from here on; commits after it are lost: {e}"
                    ),
                });
                break;
            }
            if batches.is_empty() {
                break;
            }
            for b in &batches {
                let at = (b.segment.log.path(), b.pos as u64);
                let replay = OffsetsReplay {
                    map: &mut map,
                    pending: &mut pending,
                    skipped: &mut report.offsets_skipped,
                };
                replay.batch(&b.header, b.bytes(), at, pos)?;
                pos = b.header.next_offset();
            }
        }
    }
    Ok(pending)
}

/// Where replaying `__consumer_offsets` puts what it reads: the image of
/// committed offsets, the records of transactions not decided yet (by
/// producer id), and the records it could not read. The open's replay and
/// the read-only reader's (`reader::groups`) share it.
pub(crate) struct OffsetsReplay<'a> {
    /// The image: the latest offset per (group, topic, partition).
    pub map: &'a mut HashMap<OffsetKey, OffsetAndMetadata>,
    /// Transactional records held until their marker.
    pub pending: &'a mut PendingOffsets,
    /// Records skipped as unreadable.
    pub skipped: &'a mut Vec<SkippedRecord>,
}

impl OffsetsReplay<'_> {
    /// Replays one validated batch (`h`, its `bytes`, at byte `at.1` of file
    /// `at.0`): a non-transactional record applies at once; a
    /// transactional one is held under its producer id until that
    /// producer's marker, which applies them (COMMIT) or drops them
    /// (ABORT). Records below `from` were replayed already and are
    /// skipped.
    ///
    /// # Errors
    /// [`Error::Corrupted`] for a marker whose record cannot be read.
    pub(crate) fn batch(
        self,
        h: &BatchHeader,
        bytes: &[u8],
        at: (&Path, u64),
        from: u64,
    ) -> Result<()> {
        let path = at.0;
        if h.is_control() {
            let records = self.pending.remove(&h.producer_id).unwrap_or_default();
            if marker_kind(h, bytes, at)? == Some(ControlType::Commit) {
                for (k, v) in records {
                    if let Err(kind) = apply(self.map, Some(&k), v.as_deref()) {
                        self.skipped.push(SkippedRecord {
                            path: path.to_owned(),
                            offset: h.base_offset,
                            reason: kind.to_string(),
                        });
                    }
                }
            }
            return Ok(());
        }
        let mut skip = |offset, k: CorruptionKind| {
            self.skipped.push(SkippedRecord {
                path: path.to_owned(),
                offset,
                reason: k.to_string(),
            })
        };
        let section = match records_section(h, bytes) {
            Ok(s) => s,
            Err(k) => {
                skip(h.base_offset, k);
                return Ok(());
            }
        };
        for r in RecordIter::new(h, &section) {
            let r = match r {
                Ok(r) => r,
                Err(k) => {
                    skip(h.base_offset, k);
                    break;
                }
            };
            let offset = h.base_offset + u64::from(r.offset_delta);
            if offset < from {
                continue;
            }
            if h.is_transactional() {
                self.pending.entry(h.producer_id).or_default().push((
                    r.key.unwrap_or_default().to_vec(),
                    r.value.map(<[u8]>::to_vec),
                ));
                continue;
            }
            if let Err(k) = apply(self.map, r.key, r.value) {
                skip(offset, k);
            }
        }
        Ok(())
    }
}

/// The type of the transaction marker in control batch `h` (`bytes`, at
/// `at`); `None` for a control record of another type.
pub(crate) fn marker_kind(
    h: &BatchHeader,
    bytes: &[u8],
    at: (&Path, u64),
) -> Result<Option<ControlType>> {
    let bad = |k: CorruptionKind| Error::corrupted(at.0, at.1, Some(h.base_offset), k);
    let section = records_section(h, bytes).map_err(bad)?;
    let first = RecordIter::new(h, &section).next();
    match first {
        Some(Ok(r)) => Ok(r.key.and_then(parse_control_key)),
        Some(Err(k)) => Err(bad(k)),
        None => Ok(None),
    }
}

/// Offsets records of open transactions, by producer id: (key, value).
pub(crate) type PendingOffsets = std::collections::HashMap<i64, Vec<(Vec<u8>, Option<Vec<u8>>)>>;
