//! The in-process group coordinator: one per group id, shared by every
//! `Consumer` of that group.
//!
//! Ownership is the heart of it. A rebalance computes a *target*
//! assignment, but a partition is only *granted* to its new member once its
//! old owner has released it — which the old owner does inside its own next
//! call, after telling its rebalance listener and (with auto-commit)
//! committing. So a revocation is always delivered before the new owner's
//! first record. Members that leave release at once; members evicted for not
//! polling lose their partitions at once and are fenced: their commits fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::assignor::{assign, Assignor, MemberInput};
use crate::record::TopicPartition;
use crate::signal::Signal;

/// What a member needs to know about the group, from [`Group::sync`].
#[derive(Debug, Default)]
pub(crate) struct SyncResult {
    /// Partitions the member must release (after telling its listener).
    pub revoke: Vec<TopicPartition>,
    /// Partitions now granted to the member.
    pub grant: Vec<TopicPartition>,
    pub generation: u64,
    /// The group's change counter when this result was computed.
    pub version: u64,
}

struct Member {
    topics: BTreeSet<String>,
    assignor: Assignor,
    max_poll_interval_ms: i64,
    last_seen_ms: i64,
    parked: bool,
    /// Held now: granted and not yet released.
    owned: BTreeSet<TopicPartition>,
    /// Where the last rebalance wants this member to be.
    target: BTreeSet<TopicPartition>,
    /// Eager assignors revoke everything on a rebalance.
    revoke_all: BTreeSet<TopicPartition>,
    signal: Arc<Signal>,
}

#[derive(Default)]
pub(crate) struct GroupState {
    generation: u64,
    version: u64,
    members: BTreeMap<u64, Member>,
    owners: HashMap<TopicPartition, u64>,
    /// Partition counts of subscribed topics at the last rebalance.
    counts: BTreeMap<String, u32>,
    /// Claims by coordinators outside this crate (the Kafka server): while
    /// any is held, in-process consumers cannot join.
    external: u32,
}

/// One consumer group.
pub(crate) struct Group {
    pub id: String,
    state: Mutex<GroupState>,
}

/// Why a member's call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fenced {
    /// The member is no longer in the group (evicted or left).
    NotMember,
    /// The member does not own this partition.
    NotOwner(TopicPartition),
    /// Manual (group-less) commits are refused while members are active.
    ActiveMembers,
}

impl std::fmt::Display for Fenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fenced::NotMember => write!(
                f,
                "this member was evicted (it did not poll within max_poll_interval) or left; poll again to rejoin"
            ),
            Fenced::NotOwner(tp) => write!(f, "partition {tp} is not assigned to this member any more"),
            Fenced::ActiveMembers => write!(
                f,
                "the group has active members; a consumer using assign() cannot commit for it"
            ),
        }
    }
}

impl Group {
    pub fn new(id: String) -> Self {
        Group {
            id,
            state: Mutex::new(GroupState::default()),
        }
    }

    /// Locks the group: commits hold this across the append so that a
    /// rebalance cannot interleave between the ownership check and the
    /// write.
    pub fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock()
    }

    /// Claims the group for a coordinator outside this crate; fails with
    /// the number of in-process members if there are any.
    pub fn claim(&self) -> Result<(), usize> {
        let mut s = self.state.lock();
        if !s.members.is_empty() {
            return Err(s.members.len());
        }
        s.external += 1;
        Ok(())
    }

    /// Gives back a [`claim`](Self::claim).
    pub fn unclaim(&self) {
        let mut s = self.state.lock();
        s.external = s.external.saturating_sub(1);
    }

    /// Whether a coordinator outside this crate holds the group.
    pub fn is_claimed(&self) -> bool {
        self.state.lock().external > 0
    }

    /// Adds a member and rebalances; `false` (nothing done) while the group
    /// is claimed from outside.
    #[allow(clippy::too_many_arguments)]
    #[must_use]
    pub fn join(
        &self,
        id: u64,
        topics: BTreeSet<String>,
        assignor: Assignor,
        max_poll_interval_ms: i64,
        now: i64,
        signal: Arc<Signal>,
        counts: BTreeMap<String, u32>,
    ) -> bool {
        let mut s = self.state.lock();
        if s.external > 0 {
            return false;
        }
        s.members.insert(
            id,
            Member {
                topics,
                assignor,
                max_poll_interval_ms,
                last_seen_ms: now,
                parked: false,
                owned: BTreeSet::new(),
                target: BTreeSet::new(),
                revoke_all: BTreeSet::new(),
                signal,
            },
        );
        s.counts = counts;
        s.rebalance();
        true
    }

    /// Changes a member's subscription and rebalances.
    pub fn resubscribe(&self, id: u64, topics: BTreeSet<String>, counts: BTreeMap<String, u32>) {
        let mut s = self.state.lock();
        if let Some(m) = s.members.get_mut(&id) {
            m.topics = topics;
        }
        s.counts = counts;
        s.rebalance();
    }

    /// Removes a member, releasing everything it owns, and rebalances.
    pub fn leave(&self, id: u64) {
        let mut s = self.state.lock();
        s.remove(id);
    }

    /// A member's periodic check-in, from inside its calls: refreshes its
    /// liveness, evicts members silent past their `max_poll_interval`,
    /// rebalances if partition counts changed, and tells the member what to
    /// release and what it now owns. `None` if the member is gone.
    pub fn sync(&self, id: u64, now: i64, counts: BTreeMap<String, u32>) -> Option<SyncResult> {
        let mut s = self.state.lock();
        s.members.get_mut(&id)?.last_seen_ms = now;
        let stale: Vec<u64> = s
            .members
            .iter()
            .filter(|(_, m)| {
                !m.parked && now.saturating_sub(m.last_seen_ms) > m.max_poll_interval_ms
            })
            .map(|(&k, _)| k)
            .collect();
        for k in stale {
            s.remove(k);
        }
        if counts != s.counts {
            s.counts = counts;
            s.rebalance();
        }
        let s = &mut *s;
        let m = s.members.get_mut(&id)?;
        let mut revoke: BTreeSet<TopicPartition> = m.owned.difference(&m.target).cloned().collect();
        revoke.extend(m.revoke_all.iter().cloned());
        let mut grant = Vec::new();
        if revoke.is_empty() {
            for tp in m.target.clone() {
                if !m.owned.contains(&tp) && !s.owners.contains_key(&tp) {
                    s.owners.insert(tp.clone(), id);
                    m.owned.insert(tp.clone());
                    grant.push(tp);
                }
            }
        }
        Some(SyncResult {
            revoke: revoke.into_iter().collect(),
            grant,
            generation: s.generation,
            version: s.version,
        })
    }

    /// The member gives up partitions it was told to revoke.
    pub fn release(&self, id: u64, tps: &[TopicPartition]) {
        let mut s = self.state.lock();
        let Some(m) = s.members.get_mut(&id) else {
            return;
        };
        for tp in tps {
            m.owned.remove(tp);
            m.revoke_all.remove(tp);
        }
        for tp in tps {
            if s.owners.get(tp) == Some(&id) {
                s.owners.remove(tp);
            }
        }
        s.changed();
    }

    /// Marks a member as parked inside `poll` (exempt from eviction).
    pub fn set_parked(&self, id: u64, parked: bool, now: i64) {
        let mut s = self.state.lock();
        if let Some(m) = s.members.get_mut(&id) {
            m.parked = parked;
            m.last_seen_ms = now;
        }
    }

    /// The group's change counter.
    pub fn version(&self) -> u64 {
        self.state.lock().version
    }
}

impl GroupState {
    /// Whether anyone runs the group now: in-process members, or a
    /// coordinator outside this crate holding a claim.
    pub fn in_use(&self) -> bool {
        !self.members.is_empty() || self.external > 0
    }

    /// Checks that `member` (or, for `None`, a consumer outside the group)
    /// may commit offsets for `tps`.
    pub fn check_commit(&self, member: Option<u64>, tps: &[&TopicPartition]) -> Result<(), Fenced> {
        match member {
            None if self.members.is_empty() => Ok(()),
            None => Err(Fenced::ActiveMembers),
            Some(id) => {
                let m = self.members.get(&id).ok_or(Fenced::NotMember)?;
                for tp in tps {
                    if !m.owned.contains(*tp) {
                        return Err(Fenced::NotOwner((*tp).clone()));
                    }
                }
                Ok(())
            }
        }
    }

    fn changed(&mut self) {
        self.version += 1;
        for m in self.members.values() {
            m.signal.fire();
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(m) = self.members.remove(&id) {
            for tp in &m.owned {
                if self.owners.get(tp) == Some(&id) {
                    self.owners.remove(tp);
                }
            }
            // Wake the member itself too: if it is parked it learns at once
            // that it is out.
            m.signal.fire();
            self.rebalance();
        }
    }

    /// Computes a new target assignment with the oldest member's assignor.
    fn rebalance(&mut self) {
        self.generation += 1;
        let kind = self
            .members
            .values()
            .next()
            .map_or(Assignor::Range, |m| m.assignor);
        let inputs: BTreeMap<u64, MemberInput> = self
            .members
            .iter()
            .map(|(&id, m)| {
                (
                    id,
                    MemberInput {
                        topics: m.topics.clone(),
                        owned: m.owned.clone(),
                    },
                )
            })
            .collect();
        let mut target = assign(kind, &inputs, &self.counts);
        for (id, m) in self.members.iter_mut() {
            m.target = target.remove(id).unwrap_or_default();
            if kind != Assignor::CooperativeSticky {
                m.revoke_all = m.owned.clone();
            }
        }
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: u32) -> BTreeMap<String, u32> {
        [("t".to_string(), n)].into_iter().collect()
    }

    fn join(g: &Group, id: u64, kind: Assignor) {
        let topics = ["t".to_string()].into_iter().collect();
        let joined = g.join(
            id,
            topics,
            kind,
            1000,
            0,
            Arc::new(Signal::default()),
            counts(6),
        );
        assert!(joined);
    }

    /// Syncs until the member has nothing to release, releasing as told.
    fn settle(g: &Group, id: u64, now: i64) -> Vec<TopicPartition> {
        let mut owned = BTreeSet::new();
        for _ in 0..4 {
            let r = g.sync(id, now, counts(6)).unwrap();
            for tp in &r.revoke {
                owned.remove(tp);
            }
            g.release(id, &r.revoke);
            owned.extend(r.grant);
        }
        owned.into_iter().collect()
    }

    #[test]
    fn a_partition_is_granted_only_after_its_owner_releases_it() {
        let g = Group::new("g".into());
        join(&g, 1, Assignor::CooperativeSticky);
        assert_eq!(settle(&g, 1, 0).len(), 6);
        join(&g, 2, Assignor::CooperativeSticky);
        // Member 2 gets nothing while member 1 still holds everything.
        assert!(g.sync(2, 0, counts(6)).unwrap().grant.is_empty());
        let r = g.sync(1, 0, counts(6)).unwrap();
        assert_eq!(r.revoke.len(), 3);
        g.release(1, &r.revoke);
        assert_eq!(g.sync(2, 0, counts(6)).unwrap().grant, r.revoke);
    }

    #[test]
    fn eager_assignors_revoke_everything_first() {
        let g = Group::new("g".into());
        join(&g, 1, Assignor::Range);
        settle(&g, 1, 0);
        join(&g, 2, Assignor::Range);
        assert_eq!(g.sync(1, 0, counts(6)).unwrap().revoke.len(), 6);
    }

    #[test]
    fn silent_members_are_evicted_and_fenced() {
        let g = Group::new("g".into());
        join(&g, 1, Assignor::CooperativeSticky);
        join(&g, 2, Assignor::CooperativeSticky);
        settle(&g, 1, 0);
        let mine = settle(&g, 2, 0);
        assert_eq!(mine.len(), 3);
        // Member 2 stays silent; member 1's call past the interval evicts it.
        // Its partitions go to member 1 in the same call: they were lost,
        // not revoked, so nothing waits for member 2.
        assert_eq!(g.sync(1, 5000, counts(6)).unwrap().grant, mine);
        assert!(g.sync(2, 5000, counts(6)).is_none());
        assert_eq!(
            g.lock().check_commit(Some(2), &[&mine[0]]),
            Err(Fenced::NotMember)
        );
        assert_eq!(g.lock().check_commit(Some(1), &[&mine[0]]), Ok(()));
    }
}
