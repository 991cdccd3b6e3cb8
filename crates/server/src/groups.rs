//! The coordinator of remote consumer groups: Kafka's classic group
//! protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) with
//! client-side assignors, generations, rebalance and session timeouts and
//! static membership. Offsets are not kept here: commits go to the log's
//! `__consumer_offsets` like in-process ones.
//!
//! A group moves Empty → PreparingRebalance (members (re)join) →
//! CompletingRebalance (the leader assigns) → Stable, and back to
//! PreparingRebalance when a member joins, leaves or misses its session
//! timeout. No thread runs timers: the threads of members' requests do.
//! A Join or Sync call parks on the group's condition variable until the
//! phase it waits for completes or its deadline passes, and every call
//! first expires the members whose session ran out. While a group has
//! members it holds a [`GroupClaim`] on the log, so in-process consumers
//! cannot join it meanwhile (and it cannot start while they are members).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use streamlog::{GroupClaim, Log};

use crate::api::errors as e;

/// Kafka's bounds on a member's session timeout are broker settings
/// (`group.min.session.timeout.ms`, 6 s there); a development server
/// accepts down to 1 s so that tests of a lost member run quickly.
const MIN_SESSION: Duration = Duration::from_millis(1000);
const MAX_SESSION: Duration = Duration::from_secs(1800);

/// Where a group is in its rebalance cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl Phase {
    /// The name Kafka's tools show.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::PreparingRebalance => "PreparingRebalance",
            Phase::CompletingRebalance => "CompletingRebalance",
            Phase::Stable => "Stable",
        }
    }
}

/// One remote member.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Vec<u8>)>,
    pub assignment: Vec<u8>,
    /// Joined the rebalance in progress.
    joined: bool,
    /// Requests of this member in progress (a parked join counts as alive).
    busy: u32,
    last_seen: Instant,
}

impl Member {
    fn expired(&self, now: Instant) -> bool {
        self.busy == 0 && now.duration_since(self.last_seen) > self.session_timeout
    }

    /// Its metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> &[u8] {
        self.protocols
            .iter()
            .find(|(p, _)| p == protocol)
            .map_or(&[], |(_, m)| m)
    }
}

/// A group's state, under its lock.
pub(crate) struct State {
    pub phase: Phase,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not joined yet.
    pending: HashMap<String, Instant>,
    /// When the rebalance in progress gives up on members not rejoined.
    rebalance_deadline: Option<Instant>,
    claim: Option<GroupClaim>,
}

/// One remote group.
pub(crate) struct Group {
    pub id: String,
    state: Mutex<State>,
    changed: Condvar,
}

/// What a member asks to join with.
pub(crate) struct JoinArgs<'a> {
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub client_id: &'a str,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: &'a str,
    pub protocols: Vec<(String, Vec<u8>)>,
    /// JoinGroup v4+: a new member first gets its id with MEMBER_ID_REQUIRED.
    pub require_known_id: bool,
}

/// The answer to a join.
#[derive(Default)]
pub(crate) struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader: every member's id, instance id and metadata.
    pub members: Vec<(String, Option<String>, Vec<u8>)>,
}

/// All remote groups.
pub(crate) struct Groups {
    map: Mutex<HashMap<String, Arc<Group>>>,
    initial_delay: Duration,
    next_id: Mutex<u64>,
}

impl Groups {
    pub fn new(initial_delay: Duration) -> Self {
        Groups {
            map: Mutex::new(HashMap::new()),
            initial_delay,
            next_id: Mutex::new(0),
        }
    }

    /// The group, created empty on first use.
    pub fn group(&self, id: &str) -> Arc<Group> {
        self.map
            .lock()
            .entry(id.to_owned())
            .or_insert_with(|| {
                Arc::new(Group {
                    id: id.to_owned(),
                    state: Mutex::new(State {
                        phase: Phase::Empty,
                        generation: 0,
                        protocol_type: None,
                        protocol: None,
                        leader: None,
                        members: BTreeMap::new(),
                        pending: HashMap::new(),
                        rebalance_deadline: None,
                        claim: None,
                    }),
                    changed: Condvar::new(),
                })
            })
            .clone()
    }

    /// The group if it exists.
    pub fn get(&self, id: &str) -> Option<Arc<Group>> {
        self.map.lock().get(id).cloned()
    }

    /// Every group known here, by id.
    pub fn all(&self) -> Vec<Arc<Group>> {
        let mut v: Vec<_> = self.map.lock().values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Wakes every parked join and sync (the server is stopping).
    pub fn wake_all(&self) {
        for g in self.map.lock().values() {
            g.changed.notify_all();
        }
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let mut n = self.next_id.lock();
        *n += 1;
        // Kafka's shape: client id, a dash, something unique.
        format!("{client_id}-{:016x}-{}", std::process::id(), *n)
    }
}

impl Group {
    /// Locks the group after expiring members whose session ran out and
    /// finishing a rebalance whose deadline passed.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        let mut s = self.state.lock();
        let now = Instant::now();
        s.pending
            .retain(|_, at| now.duration_since(*at) < MAX_SESSION.min(Duration::from_secs(300)));
        let expired: Vec<String> = s
            .members
            .values()
            .filter(|m| m.expired(now))
            .map(|m| m.id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                s.members.remove(id);
            }
            self.membership_changed(&mut s, now, Duration::ZERO);
        }
        self.maybe_complete_join(&mut s, now);
        s
    }

    /// Starts a rebalance after members came or went (or empties the group).
    fn membership_changed(&self, s: &mut State, now: Instant, delay: Duration) {
        if s.members.is_empty() {
            s.phase = Phase::Empty;
            s.leader = None;
            s.protocol = None;
            s.protocol_type = None;
            s.rebalance_deadline = None;
            s.generation += 1;
            s.claim = None;
            self.changed.notify_all();
            return;
        }
        if s.phase != Phase::PreparingRebalance {
            s.phase = Phase::PreparingRebalance;
            for m in s.members.values_mut() {
                m.joined = false;
            }
            let longest = s
                .members
                .values()
                .map(|m| m.rebalance_timeout)
                .max()
                .unwrap_or_default();
            s.rebalance_deadline = Some(now + longest.max(delay));
        }
        self.changed.notify_all();
    }

    /// Ends the join phase once every member rejoined, or at the deadline
    /// (dropping those that did not): a new generation, its protocol and
    /// leader.
    fn maybe_complete_join(&self, s: &mut State, now: Instant) {
        if s.phase != Phase::PreparingRebalance {
            return;
        }
        let all_joined = s.members.values().all(|m| m.joined);
        let past = s.rebalance_deadline.is_none_or(|d| now >= d);
        if !(all_joined || past) {
            return;
        }
        if !all_joined {
            s.members.retain(|_, m| m.joined);
        }
        if s.members.is_empty() {
            self.membership_changed(s, now, Duration::ZERO);
            return;
        }
        s.generation += 1;
        s.protocol = choose_protocol(&s.members);
        let leader_stays = s.leader.as_ref().is_some_and(|l| s.members.contains_key(l));
        if !leader_stays {
            s.leader = s.members.keys().next().cloned();
        }
        for m in s.members.values_mut() {
            m.assignment.clear();
        }
        s.phase = Phase::CompletingRebalance;
        s.rebalance_deadline = None;
        self.changed.notify_all();
    }

    /// Waits on the group's condition variable until `until`.
    fn park(&self, s: &mut MutexGuard<'_, State>, until: Instant) {
        let step = until.min(Instant::now() + Duration::from_millis(500));
        self.changed.wait_until(s, step);
    }

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
            let holder = s
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(inst))
                .map(|m| m.id.clone());
            match holder {
                // A static member coming back: its new id replaces the old,
                // which is fenced from now on.
                Some(old) if member_id.is_empty() => {
                    member_id = groups.new_member_id(a.client_id);
                    if let Some(mut m) = s.members.remove(&old) {
                        m.id = member_id.clone();
                        s.members.insert(member_id.clone(), m);
                    }
                    if s.leader.as_deref() == Some(old.as_str()) {
                        s.leader = Some(member_id.clone());
                    }
                }
                Some(old) if old != member_id => return fail(e::FENCED_INSTANCE_ID),
                _ => {}
            }
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
                busy: 0,
                last_seen: now,
            });
        m.session_timeout = session;
        m.rebalance_timeout = Duration::from_millis(a.rebalance_timeout_ms.max(0) as u64)
            .max(session.min(Duration::from_secs(1)));
        m.protocols = a.protocols;
        m.last_seen = now;
        m.busy += 1;
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
            let until = s.rebalance_deadline.unwrap_or_else(Instant::now);
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
        m.busy -= 1;
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
                m.busy -= 1;
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
            Some(inst) => {
                let holder = s
                    .members
                    .values()
                    .find(|m| m.instance_id.as_deref() == Some(inst))
                    .map(|m| m.id.clone());
                match holder {
                    Some(h) if member_id.is_empty() || h == member_id => h,
                    Some(_) => return e::FENCED_INSTANCE_ID,
                    None => return e::UNKNOWN_MEMBER_ID,
                }
            }
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
            Self::check(&mut s, member_id, instance_id, generation)?;
            if s.phase == Phase::PreparingRebalance {
                return Err(e::REBALANCE_IN_PROGRESS);
            }
        }
        Ok(commit())
    }
}

/// The protocol every member supports that the members rank highest in
/// total (Kafka's vote: each member votes for its most preferred protocol
/// among those all support).
fn choose_protocol(members: &BTreeMap<String, Member>) -> Option<String> {
    let first = members.values().next()?;
    let candidates: Vec<&str> = first
        .protocols
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| {
            members
                .values()
                .all(|m| m.protocols.iter().any(|(q, _)| q == p))
        })
        .collect();
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in members.values() {
        if let Some((p, _)) = m
            .protocols
            .iter()
            .find(|(p, _)| candidates.contains(&p.as_str()))
        {
            *votes.entry(p.as_str()).or_default() += 1;
        }
    }
    candidates
        .iter()
        .max_by_key(|p| {
            (
                votes.get(*p).copied().unwrap_or(0),
                std::cmp::Reverse(candidates.iter().position(|c| c == *p)),
            )
        })
        .map(|p| p.to_string())
}
