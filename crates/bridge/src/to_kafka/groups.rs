//! Translating the Log's group offsets onto the cluster (MirrorMaker 2's
//! rules, made exact by the mirror's offset map): a group's committed
//! source offset becomes the target offset of the first copied record at
//! or after it ([`OffsetMap::translate`]); it is written to the group of
//! the same name on the cluster only while that group has no active
//! member there, and never moves the group's offset backwards.
//!
//! The write is an offset commit outside any generation (the form Kafka
//! accepts only for a group with no members), so a consumer that joins on
//! the cluster between the check and the write makes the write fail
//! rather than race it.

use std::collections::{BTreeMap, HashMap};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use streamlog::{LogReader, PartitionReader, TopicPartition};

use super::MirrorToKafka;
use crate::error::{Error, Result};
use crate::kafka::{self, CALL_TIMEOUT};
use crate::progress::OffsetMap;

/// One group's translation, from the mirror's last pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupTranslation {
    /// The group.
    pub group: String,
    /// Each partition's committed offset on the Log and its translation on
    /// the cluster (whether written now or already there).
    pub offsets: Vec<(TopicPartition, u64, u64)>,
    /// Partitions whose offset this pass wrote to the cluster.
    pub written: Vec<TopicPartition>,
    /// Partitions whose committed offset is past what the mirror copied:
    /// translated once it gets there.
    pub pending: Vec<TopicPartition>,
    /// The group has members on the cluster: its offsets there are theirs
    /// and were left alone.
    pub active_on_target: bool,
    /// The cluster refused the write (a member joined meanwhile, say).
    pub error: Option<String>,
}

impl GroupTranslation {
    /// Whether the cluster has every offset of the group, translated.
    pub fn complete(&self) -> bool {
        !self.active_on_target && self.pending.is_empty() && self.error.is_none()
    }
}

/// Writes translated offsets, with one consumer handle per group.
pub(super) struct Translator {
    bootstrap: String,
    client: Vec<(String, String)>,
    only: Option<Vec<String>>,
    consumers: HashMap<String, BaseConsumer>,
}

impl Translator {
    pub(super) fn new(opts: &MirrorToKafka) -> Result<Translator> {
        Ok(Translator {
            bootstrap: opts.bootstrap.clone(),
            client: opts.client.clone(),
            only: opts.groups.clone(),
            consumers: HashMap::new(),
        })
    }

    fn consumer(&mut self, group: &str) -> Result<&BaseConsumer> {
        if !self.consumers.contains_key(group) {
            let mut c = kafka::config(&self.bootstrap, &self.client);
            c.set("group.id", group)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false");
            let consumer: BaseConsumer = c
                .create()
                .map_err(|e| Error::kafka(&format!("create a consumer for group {group}"), e))?;
            self.consumers.insert(group.to_owned(), consumer);
        }
        Ok(&self.consumers[group])
    }

    /// One pass over the groups: translates and writes what it may.
    pub(super) fn translate(
        &mut self,
        reader: &LogReader,
        mirrored: &BTreeMap<TopicPartition, PartitionReader>,
        copied: &BTreeMap<TopicPartition, u64>,
        target_start: &HashMap<TopicPartition, u64>,
        map: &OffsetMap,
    ) -> Result<Vec<GroupTranslation>> {
        let groups = match &self.only {
            Some(g) => g.clone(),
            None => reader.groups()?,
        };
        let mut out = Vec::new();
        for group in groups {
            let offsets: Vec<_> = reader
                .committed_offsets(&group)?
                .into_iter()
                .filter(|(tp, _)| mirrored.contains_key(tp))
                .collect();
            if offsets.is_empty() && self.only.is_none() {
                continue;
            }
            let mut t = GroupTranslation {
                group: group.clone(),
                ..Default::default()
            };
            let consumer = self.consumer(&group)?;
            let list = consumer
                .fetch_group_list(Some(&group), CALL_TIMEOUT)
                .map_err(|e| Error::kafka(&format!("describe group {group}"), e))?;
            if list
                .groups()
                .iter()
                .any(|g| g.name() == group && !g.members().is_empty())
            {
                t.active_on_target = true;
                out.push(t);
                continue;
            }
            let mut ask = TopicPartitionList::new();
            for (tp, _) in &offsets {
                ask.add_partition(&tp.topic, tp.partition as i32);
            }
            let theirs = consumer
                .committed_offsets(ask, CALL_TIMEOUT)
                .map_err(|e| Error::kafka(&format!("read group {group}'s offsets"), e))?;
            let mut write = TopicPartitionList::new();
            for (tp, om) in &offsets {
                let start = target_start.get(tp).copied().unwrap_or(0);
                let Some(target) = map.translate(tp, om.offset(), copied[tp], start) else {
                    t.pending.push(tp.clone());
                    continue;
                };
                t.offsets.push((tp.clone(), om.offset(), target));
                let have = theirs
                    .find_partition(&tp.topic, tp.partition as i32)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
                if have.is_some_and(|h| h >= target as i64) {
                    continue;
                }
                write
                    .add_partition_offset(
                        &tp.topic,
                        tp.partition as i32,
                        Offset::Offset(target as i64),
                    )
                    .map_err(|e| Error::kafka("build an offset list", e))?;
                if let Some(mut e) = write.find_partition(&tp.topic, tp.partition as i32) {
                    e.set_metadata(om.metadata_str());
                }
                t.written.push(tp.clone());
            }
            if write.count() > 0 {
                if let Err(e) = consumer.commit(&write, CommitMode::Sync) {
                    t.error = Some(format!("the cluster refused group {group}'s offsets: {e}"));
                    t.written.clear();
                }
            }
            out.push(t);
        }
        Ok(out)
    }
}
