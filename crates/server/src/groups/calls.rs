//! The calls of the group protocol on one group: JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, and the generation check of a commit.

use std::time::{Duration, Instant};

use streamlog::Log;

use super::{
    Group, Groups, JoinArgs, JoinResult, Member, Phase, State, MAX_MEMBERS, MAX_SESSION,
    MIN_SESSION,
};
use crate::api::errors as e;

impl Group {
    /// JoinGroup: blocks until the join phase completes.
    pub fn join(
        &self,
        groups: &Groups,
        log: &Log,
        a: JoinArgs<'_>,
        stopping: &dyn Fn() -> bool,
    ) -> JoinResult {
        let fail = |error: i16| JoinResult {
            error,
            generation: -1,
            ..JoinResult::default()
        };
        let session = Duration::from_millis(a.session_timeout_ms.max(0) as u64);
        if !(MIN_SESSION..=MAX_SESSION).contains(&session) {
            return fail(e::INVALID_SESSION_TIMEOUT);
        }
        if a.protocol_type.is_empty() || a.protocols.is_empty() {
            return fail(e::INCONSISTENT_GROUP_PROTOCOL);
        }
        let mut s = self.lock();
        if s.dead {
            return fail(e::NOT_COORDINATOR);
        }
        if !s.members.is_empty() {
            let same_type = s.protocol_type.as_deref() == Some(a.protocol_type);
            let common = a.protocols.iter().any(|(p, _)| {
                s.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == p))
            });
            if !same_type || !common {
                return fail(e::INCONSISTENT_GROUP_PROTOCOL);
            }
        }
        let now = Instant::now();
        let mut member_id = a.member_id.to_owned();
        if let Some(inst) = a.instance_id {
            match s.holder_of(inst) {
                // A static member coming back: its new id replaces the old,
                // which is fenced from now on.
                Some(old) if member_id.is_empty() => {
                    member_id = groups.new_member_id(a.client_id);
                    let was_leader = s.leader.as_deref() == Some(old.as_str());
                    let same = s
                        .members
                        .get(&old)
                        .is_some_and(|m| m.protocols == a.protocols);
                    if let Some(mut m) = s.members.remove(&old) {
                        m.id = member_id.clone();
                        m.last_seen = Instant::now();
                        // The old id's parked requests end as unknown: they
                        // no longer count for this member.
                        m.busy = 0;
                        m.in_join = false;
                        s.members.insert(member_id.clone(), m);
                    }
                    if was_leader {
                        s.leader = Some(member_id.clone());
                    }
                    // KIP-345: a follower coming back unchanged to a stable
                    // group gets its place (and, at SyncGroup, its
                    // assignment) without a rebalance.
                    if s.phase == Phase::Stable && same && !was_leader {
                        return JoinResult {
                            error: e::NONE,
                            generation: s.generation,
                            protocol_type: s.protocol_type.clone(),
                            protocol: s.protocol.clone(),
                            leader: s.leader.clone().unwrap_or_default(),
                            member_id,
                            members: Vec::new(),
                        };
                    }
                }
                Some(old) if old != member_id => return fail(e::FENCED_INSTANCE_ID),
                _ => {}
            }
        }
        if member_id.is_empty() && s.members.len() + s.pending.len() >= MAX_MEMBERS {
            return fail(e::GROUP_MAX_SIZE_REACHED);
        }
        if member_id.is_empty() {
            member_id = groups.new_member_id(a.client_id);
            if a.require_known_id {
                s.pending.insert(member_id.clone(), now);
                return JoinResult {
                    error: e::MEMBER_ID_REQUIRED,
                    generation: -1,
                    member_id,
                    ..JoinResult::default()
                };
            }
        } else if !s.members.contains_key(&member_id) && s.pending.remove(&member_id).is_none() {
            return JoinResult {
                error: e::UNKNOWN_MEMBER_ID,
                generation: -1,
                member_id,
                ..JoinResult::default()
            };
        }
        if s.claim.is_none() {
            match log.claim_group(&self.id) {
                Ok(c) => s.claim = Some(c),
                // In-process consumers hold the group: the newcomer is
                // refused, with nothing changed.
                Err(_) => return fail(e::INCONSISTENT_GROUP_PROTOCOL),
            }
        }
        let delay = if s.members.is_empty() {
            groups.initial_delay
        } else {
            Duration::ZERO
        };
        let m = s
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                id: member_id.clone(),
                instance_id: a.instance_id.map(str::to_owned),
                client_id: a.client_id.to_owned(),
                client_host: a.client_host.clone(),
                session_timeout: session,
                rebalance_timeout: session,
                protocols: Vec::new(),
                assignment: Vec::new(),
                joined: false,
                in_join: false,
                busy: 0,
                last_seen: now,
            });
        m.session_timeout = session;
        m.rebalance_timeout = Duration::from_millis(a.rebalance_timeout_ms.max(0) as u64)
            .max(session.min(Duration::from_secs(1)));
        m.protocols = a.protocols;
        m.last_seen = now;
        m.busy += 1;
        m.in_join = true;
        s.protocol_type = Some(a.protocol_type.to_owned());
        self.membership_changed(&mut s, now, delay);
        if let Some(m) = s.members.get_mut(&member_id) {
            m.joined = true;
        }
        self.maybe_complete_join(&mut s, now);
        loop {
            if s.phase != Phase::PreparingRebalance
                || !s.members.contains_key(&member_id)
                || stopping()
            {
                break;
            }
            let until = match (s.rebalance_deadline, s.initial_until) {
                (Some(d), Some(i)) => d.min(i),
                (d, i) => d.or(i).unwrap_or_else(Instant::now),
            };
            self.park(&mut s, until);
            let now = Instant::now();
            self.maybe_complete_join(&mut s, now);
        }
        let now = Instant::now();
        let Some(m) = s.members.get_mut(&member_id) else {
            return JoinResult {
                error: e::UNKNOWN_MEMBER_ID,
                generation: -1,
                member_id,
                ..JoinResult::default()
            };
        };
        m.busy = m.busy.saturating_sub(1);
        m.in_join = false;
        m.last_seen = now;
        if s.phase == Phase::PreparingRebalance {
            return fail(e::REBALANCE_IN_PROGRESS);
        }
        let protocol = s.protocol.clone().unwrap_or_default();
        let leader = s.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            s.members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata(&protocol).to_vec(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: e::NONE,
            generation: s.generation,
            protocol_type: s.protocol_type.clone(),
            protocol: Some(protocol),
            leader,
            member_id,
            members,
        }
    }

    /// Checks a member's id, instance id and generation; refreshes its
    /// session.
    fn check<'a>(
        s: &'a mut State,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<&'a mut Member, i16> {
        let Some(m) = s.members.get_mut(member_id) else {
            let fenced = instance_id.is_some();
            return Err(if fenced {
                e::FENCED_INSTANCE_ID
            } else {
                e::UNKNOWN_MEMBER_ID
            });
        };
        if instance_id.is_some() && m.instance_id.as_deref() != instance_id {
            return Err(e::FENCED_INSTANCE_ID);
        }
        m.last_seen = Instant::now();
        if generation != s.generation {
            return Err(e::ILLEGAL_GENERATION);
        }
        Ok(m)
    }

    /// SyncGroup: the leader's assignments are stored; every member waits
    /// for its own. Returns `(error, protocol type, protocol, assignment)`.
    #[allow(clippy::type_complexity)]
    pub fn sync(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: &[(&str, &[u8])],
        stopping: &dyn Fn() -> bool,
    ) -> (i16, Option<String>, Option<String>, Vec<u8>) {
        let mut s = self.lock();
        if s.dead {
            return (e::NOT_COORDINATOR, None, None, Vec::new());
        }
        let gen_ok = generation == s.generation;
        if let Err(c) = Self::check(&mut s, member_id, instance_id, generation) {
            return (c, None, None, Vec::new());
        }
        debug_assert!(gen_ok);
        let type_ok = protocol
            .0
            .is_none_or(|t| s.protocol_type.as_deref() == Some(t));
        let name_ok = protocol.1.is_none_or(|p| s.protocol.as_deref() == Some(p));
        if !type_ok || !name_ok {
            return (e::INCONSISTENT_GROUP_PROTOCOL, None, None, Vec::new());
        }
        if s.phase == Phase::PreparingRebalance {
            return (e::REBALANCE_IN_PROGRESS, None, None, Vec::new());
        }
        if s.phase == Phase::CompletingRebalance && s.leader.as_deref() == Some(member_id) {
            for (id, a) in assignments {
                if let Some(m) = s.members.get_mut(*id) {
                    m.assignment = a.to_vec();
                }
            }
            s.phase = Phase::Stable;
            self.changed.notify_all();
        }
        if let Some(m) = s.members.get_mut(member_id) {
            m.busy += 1;
        }
        let deadline = Instant::now()
            + s.members
                .get(member_id)
                .map_or(Duration::ZERO, |m| m.rebalance_timeout);
        while s.phase == Phase::CompletingRebalance
            && s.generation == generation
            && Instant::now() < deadline
            && !stopping()
        {
            self.park(&mut s, deadline);
        }
        let out = match s.members.get_mut(member_id) {
            Some(m) => {
                m.busy = m.busy.saturating_sub(1);
                m.last_seen = Instant::now();
                (m.assignment.clone(), true)
            }
            None => (Vec::new(), false),
        };
        if !out.1 {
            return (e::UNKNOWN_MEMBER_ID, None, None, Vec::new());
        }
        if s.phase != Phase::Stable || s.generation != generation {
            return (e::REBALANCE_IN_PROGRESS, None, None, Vec::new());
        }
        (e::NONE, s.protocol_type.clone(), s.protocol.clone(), out.0)
    }

    /// Checks a member's id, instance id and generation (TxnOffsetCommit).
    pub fn validate(&self, member_id: &str, instance_id: Option<&str>, generation: i32) -> i16 {
        let mut s = self.lock();
        match Self::check(&mut s, member_id, instance_id, generation) {
            Ok(_) => e::NONE,
            Err(c) => c,
        }
    }

    /// Heartbeat: keeps the session; says when a rebalance needs a rejoin.
    pub fn heartbeat(&self, member_id: &str, instance_id: Option<&str>, generation: i32) -> i16 {
        let mut s = self.lock();
        if let Err(c) = Self::check(&mut s, member_id, instance_id, generation) {
            return c;
        }
        match s.phase {
            Phase::PreparingRebalance => e::REBALANCE_IN_PROGRESS,
            _ => e::NONE,
        }
    }

    /// LeaveGroup for one member (by id, or a static member by instance id).
    pub fn leave(&self, member_id: &str, instance_id: Option<&str>) -> i16 {
        let mut s = self.lock();
        let id = match instance_id {
            Some(inst) => match s.holder_of(inst) {
                Some(h) if member_id.is_empty() || h == member_id => h,
                Some(_) => return e::FENCED_INSTANCE_ID,
                None => return e::UNKNOWN_MEMBER_ID,
            },
            None => member_id.to_owned(),
        };
        if s.members.remove(&id).is_none() {
            return e::UNKNOWN_MEMBER_ID;
        }
        if s.leader.as_deref() == Some(id.as_str()) {
            s.leader = None;
        }
        self.membership_changed(&mut s, Instant::now(), Duration::ZERO);
        e::NONE
    }

    /// Checks that a commit comes from a member of the current generation
    /// (or from outside the group while it has no members), and runs
    /// `commit` under the group's lock so that no rebalance interleaves.
    pub fn commit<T>(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        commit: impl FnOnce() -> T,
    ) -> Result<T, i16> {
        let mut s = self.lock();
        if generation < 0 && member_id.is_empty() {
            if !s.members.is_empty() {
                return Err(e::UNKNOWN_MEMBER_ID);
            }
        } else {
            // As Kafka: while the group prepares a rebalance, members of the
            // generation that is ending may still commit (what they commit
            // as their partitions are revoked); once the new generation
            // exists but has no assignment yet, nobody may.
            if s.phase == Phase::CompletingRebalance {
                return Err(e::REBALANCE_IN_PROGRESS);
            }
            Self::check(&mut s, member_id, instance_id, generation)?;
        }
        Ok(commit())
    }
}
