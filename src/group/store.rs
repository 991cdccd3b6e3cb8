//! [`GroupStore`]: the log's consumer-group state in memory: the
//! coordinator of each group, the image of `__consumer_offsets`, and member
//! ids. Writing commits and replaying them on open need the log's topics
//! and append path, so they live with the log (`log::groups`); this store
//! only keeps what they produce.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::coordinator::Group;
use super::offsets::{OffsetAndMetadata, OffsetKey};
use crate::record::TopicPartition;

/// Consumer groups by id, and every committed offset.
pub(crate) struct GroupStore {
    groups: Mutex<HashMap<String, Arc<Group>>>,
    /// The in-memory image of `__consumer_offsets`.
    offsets: Mutex<HashMap<OffsetKey, OffsetAndMetadata>>,
    next_member: AtomicU64,
}

impl Default for GroupStore {
    fn default() -> Self {
        GroupStore {
            groups: Mutex::new(HashMap::new()),
            offsets: Mutex::new(HashMap::new()),
            next_member: AtomicU64::new(1),
        }
    }
}

impl GroupStore {
    /// The coordinator of group `id`, created on first use.
    pub fn group(&self, id: &str) -> Arc<Group> {
        self.groups
            .lock()
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(Group::new(id.to_owned())))
            .clone()
    }

    /// A fresh, never reused member id.
    pub fn next_member_id(&self) -> u64 {
        self.next_member.fetch_add(1, Ordering::Relaxed)
    }

    /// The offset `group` committed for `tp`.
    pub fn committed(&self, group: &str, tp: &TopicPartition) -> Option<OffsetAndMetadata> {
        self.offsets
            .lock()
            .get(&(group.to_owned(), tp.topic.clone(), tp.partition))
            .cloned()
    }

    /// Every group with committed offsets, sorted.
    pub fn group_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .offsets
            .lock()
            .keys()
            .map(|(g, _, _)| g.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// A group's committed offsets, sorted by partition.
    pub fn group_offsets(&self, group: &str) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        let mut v: Vec<_> = self
            .offsets
            .lock()
            .iter()
            .filter(|((g, _, _), _)| g == group)
            .map(|((_, t, p), o)| (TopicPartition::new(t.clone(), *p), o.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Every `(group, partition)` with an offset committed for `topic`.
    pub fn committed_for_topic(&self, topic: &str) -> Vec<(String, TopicPartition)> {
        self.offsets
            .lock()
            .keys()
            .filter(|(_, t, _)| t == topic)
            .map(|(g, t, p)| (g.clone(), TopicPartition::new(t.clone(), *p)))
            .collect()
    }

    /// The image of `__consumer_offsets`, for applying written or replayed
    /// records.
    pub fn offsets(&self) -> parking_lot::MutexGuard<'_, HashMap<OffsetKey, OffsetAndMetadata>> {
        self.offsets.lock()
    }
}
