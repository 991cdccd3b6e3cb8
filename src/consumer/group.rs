//! Group membership and committed offsets for [`Consumer`].

use std::collections::{BTreeSet, HashMap};

use super::state::{Assigned, Consumer, Membership, RebalanceListener};
use crate::error::{Error, Result};
use crate::group::offsets::{
    validate_group_id, ConsumerGroupMetadata, GroupMember, OffsetAndMetadata,
};
use crate::record::TopicPartition;
use crate::topic::name::validate_name;

enum Callback {
    Revoked,
    Assigned,
    Lost,
}

impl Consumer {
    pub(super) fn is_subscribed(&self) -> bool {
        self.membership.is_some()
    }

    /// The group id, checked to be storable before anything is written.
    fn group_id(&self) -> Result<&str> {
        let id = self.config.group.as_deref().ok_or(Error::NoGroup)?;
        validate_group_id(id)?;
        Ok(id)
    }

    /// Installs the listener told about revoked, assigned and lost
    /// partitions. Replaces any earlier one.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    /// Joins the consumer group (set with [`ConsumerConfig::group`]) and
    /// subscribes to `topics`. Partitions arrive through `poll`, split among
    /// the group's members by the assignor. Topics that do not exist yet
    /// are picked up when they are created.
    ///
    /// # Errors
    /// [`Error::NoGroup`] without a group, [`Error::IllegalState`] after
    /// `assign`,
    /// [`Error::InvalidTopicName`].
    ///
    /// [`ConsumerConfig::group`]: crate::ConsumerConfig::group
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        let gid = self.group_id()?.to_owned();
        for t in topics {
            validate_name(t)?;
        }
        if self.membership.is_none() && !self.assigned.is_empty() {
            return Err(Error::IllegalState {
                what: "subscribe() on a consumer with a manual assignment; assign(&[]) first",
            });
        }
        let topics: BTreeSet<String> = topics.iter().map(|t| t.to_string()).collect();
        match &mut self.membership {
            Some(m) => {
                m.topics = topics.clone();
                if let Some(id) = m.member {
                    let counts = self.inner.partition_counts(&topics);
                    m.group.resubscribe(id, topics, counts);
                }
            }
            None => {
                let group = self.inner.groups.group(&gid);
                if group.is_claimed() {
                    return Err(Error::GroupInUse {
                        group: gid,
                        by: "remote Kafka clients",
                    });
                }
                self.membership = Some(Membership {
                    group,
                    topics,
                    member: None,
                    generation: 0,
                    version: 0,
                });
                if let Err(e) = self.join() {
                    self.membership = None;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Joins the group as a new member.
    ///
    /// # Errors
    /// [`Error::GroupInUse`] while remote members hold the group.
    fn join(&mut self) -> Result<()> {
        let Some(m) = &mut self.membership else {
            return Ok(());
        };
        let id = self.inner.groups.next_member_id();
        let counts = self.inner.partition_counts(&m.topics);
        let joined = m.group.join(
            id,
            m.topics.clone(),
            self.config.assignor,
            self.config
                .max_poll_interval
                .as_millis()
                .min(i64::MAX as u128) as i64,
            self.inner.shared.clock.now_ms(),
            self.signal.clone(),
            counts,
        );
        if !joined {
            return Err(Error::GroupInUse {
                group: m.group.id.clone(),
                by: "remote Kafka clients",
            });
        }
        m.member = Some(id);
        Ok(())
    }

    /// Leaves the group: commits (with auto-commit), tells the listener the
    /// partitions are revoked, and gives them up.
    ///
    /// # Errors
    /// An error from the final auto-commit, after leaving.
    pub fn unsubscribe(&mut self) -> Result<()> {
        if self.membership.is_none() {
            self.assigned.clear();
            return Ok(());
        }
        let commit = self.auto_commit_now();
        let all = self.assignment();
        self.call_listener(Callback::Revoked, &all);
        if let Some(m) = self.membership.take() {
            if let Some(id) = m.member {
                m.group.leave(id);
            }
        }
        self.assigned.clear();
        commit
    }

    /// This member's generation in its group, once it has joined.
    pub fn generation(&self) -> Option<u64> {
        self.membership
            .as_ref()
            .filter(|m| m.member.is_some())
            .map(|m| m.generation)
    }

    /// Checks in with the coordinator: handles eviction, revocations and
    /// grants. Runs inside `poll`.
    pub(super) fn group_sync(&mut self) -> Result<()> {
        for _ in 0..3 {
            let Some(m) = &self.membership else {
                return Ok(());
            };
            let (group, topics) = (m.group.clone(), m.topics.clone());
            let Some(id) = m.member else {
                self.join()?;
                continue;
            };
            let counts = self.inner.partition_counts(&topics);
            let now = self.inner.shared.clock.now_ms();
            let Some(r) = group.sync(id, now, counts) else {
                // Evicted: everything is already someone else's.
                let lost = self.assignment();
                self.assigned.clear();
                if let Some(m) = &mut self.membership {
                    m.member = None;
                }
                self.call_listener(Callback::Lost, &lost);
                continue;
            };
            if let Some(m) = &mut self.membership {
                m.generation = r.generation;
                m.version = r.version;
            }
            if !r.revoke.is_empty() {
                self.call_listener(Callback::Revoked, &r.revoke);
                if self.config.enable_auto_commit {
                    let offsets = self.positions_to_commit(Some(&r.revoke));
                    match self.inner.commit(&group, Some(id), &offsets) {
                        Ok(()) | Err(Error::CommitFailed { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                self.assigned.retain(|a| !r.revoke.contains(&a.tp));
                group.release(id, &r.revoke);
                continue;
            }
            if !r.grant.is_empty() {
                for tp in &r.grant {
                    let topic = self.inner.topic(&tp.topic)?;
                    let mut a = Assigned {
                        tp: tp.clone(),
                        topic: topic.name.clone(),
                        part: topic.partition(tp.partition)?.clone(),
                        position: None,
                        paused: false,
                        committed: None,
                        carry: None,
                    };
                    self.adopt_committed(&mut a);
                    self.assigned.push(a);
                }
                self.call_listener(Callback::Assigned, &r.grant);
            }
            return Ok(());
        }
        Ok(())
    }

    /// Starts a newly assigned partition at its committed offset, if any.
    pub(super) fn adopt_committed(&self, a: &mut Assigned) {
        if let Some(g) = &self.config.group {
            if let Some(o) = self.inner.groups.committed(g, &a.tp) {
                a.committed = Some(o.offset);
                if a.position.is_none() {
                    a.position = Some(o.offset);
                }
            }
        }
    }

    fn call_listener(&mut self, kind: Callback, tps: &[TopicPartition]) {
        if tps.is_empty() {
            return;
        }
        if let Some(mut l) = self.listener.take() {
            self.in_listener = true;
            match kind {
                Callback::Revoked => l.on_partitions_revoked(self, tps),
                Callback::Assigned => l.on_partitions_assigned(self, tps),
                Callback::Lost => l.on_partitions_lost(self, tps),
            }
            self.in_listener = false;
            if self.listener.is_none() {
                self.listener = Some(l);
            }
        }
    }

    /// Positions that moved past the last commit, for `only` or for all.
    fn positions_to_commit(
        &self,
        only: Option<&[TopicPartition]>,
    ) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        self.assigned
            .iter()
            .filter(|a| only.is_none_or(|o| o.contains(&a.tp)))
            .filter_map(|a| match a.position {
                Some(p) if a.committed != Some(p) => {
                    Some((a.tp.clone(), OffsetAndMetadata::new(p)))
                }
                _ => None,
            })
            .collect()
    }

    fn member(&self) -> Option<u64> {
        self.membership.as_ref().and_then(|m| m.member)
    }

    /// Who this consumer is in its group, for
    /// [`Transaction::send_offsets_to_transaction`](crate::Transaction::send_offsets_to_transaction)
    /// (Kafka's `groupMetadata()`).
    pub fn group_metadata(&self) -> ConsumerGroupMetadata {
        let (generation, member) = match &self.membership {
            Some(m) => (
                m.generation,
                m.member.map_or(GroupMember::Evicted, GroupMember::Member),
            ),
            None => (0, GroupMember::Outside),
        };
        ConsumerGroupMetadata {
            group_id: self.config.group.clone().unwrap_or_default(),
            generation,
            member,
        }
    }

    fn commit_list(&mut self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<()> {
        let gid = self.group_id()?.to_owned();
        let group = match &self.membership {
            Some(m) => {
                if m.member.is_none() {
                    return Err(Error::CommitFailed {
                        group: gid,
                        reason: "this member was evicted; poll again to rejoin".into(),
                    });
                }
                m.group.clone()
            }
            None => self.inner.groups.group(&gid),
        };
        self.inner.commit(&group, self.member(), offsets)?;
        for (tp, o) in offsets {
            if let Some(a) = self.assigned.iter_mut().find(|a| &a.tp == tp) {
                a.committed = Some(o.offset);
            }
        }
        Ok(())
    }

    /// Commits, for every assigned partition, the position after the
    /// records `poll` returned. Returns once the commit is in the log (and,
    /// under `SyncPolicy::EveryWrite`, on disk).
    ///
    /// # Errors
    /// [`Error::CommitFailed`] if this member was evicted or no longer owns
    /// a partition (nothing is written), [`Error::NoGroup`] without a
    /// group, [`Error::Io`], [`Error::Poisoned`].
    pub fn commit(&mut self) -> Result<()> {
        let offsets = self.positions_to_commit(None);
        self.commit_list(&offsets)
    }

    /// Commits explicit offsets, each with optional metadata.
    ///
    /// # Errors
    /// As [`commit`](Self::commit), plus [`Error::OffsetOutOfRange`] for an
    /// offset past the partition's end.
    pub fn commit_offsets(
        &mut self,
        offsets: &HashMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        let mut list: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), o.clone()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        self.commit_list(&list)
    }

    /// The group's committed offset for `tp`: the next offset it will read.
    ///
    /// # Errors
    /// [`Error::NoGroup`] without a group.
    pub fn committed(&self, tp: &TopicPartition) -> Result<Option<u64>> {
        Ok(self.committed_metadata(tp)?.map(|o| o.offset))
    }

    /// The committed offset for `tp` with its metadata and commit time.
    ///
    /// # Errors
    /// [`Error::NoGroup`] without a group.
    pub fn committed_metadata(&self, tp: &TopicPartition) -> Result<Option<OffsetAndMetadata>> {
        Ok(self.inner.groups.committed(self.group_id()?, tp))
    }

    fn auto_commit_now(&mut self) -> Result<()> {
        if !self.config.enable_auto_commit || self.config.group.is_none() {
            return Ok(());
        }
        self.last_auto_commit = self.inner.shared.clock.now_ms();
        match self.commit() {
            Ok(()) | Err(Error::CommitFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Auto-commit, run at the start of `poll`: commits the positions
    /// reached by earlier polls once `auto_commit_interval` has passed.
    pub(super) fn maybe_auto_commit(&mut self) -> Result<()> {
        let interval = self
            .config
            .auto_commit_interval
            .as_millis()
            .min(i64::MAX as u128) as i64;
        let now = self.inner.shared.clock.now_ms();
        if self.last_auto_commit == i64::MIN {
            self.last_auto_commit = now;
            return Ok(());
        }
        if now.saturating_sub(self.last_auto_commit) >= interval {
            self.auto_commit_now()?;
        }
        Ok(())
    }

    /// Commits (with auto-commit) and leaves the group. Dropping a consumer
    /// does the same, ignoring errors.
    ///
    /// # Errors
    /// An error from the final auto-commit.
    pub fn close(mut self) -> Result<()> {
        self.unsubscribe()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.membership.is_some() {
            let _ = self.unsubscribe();
        } else if !self.inner.shared.is_closed() {
            let _ = self.auto_commit_now();
        }
    }
}
