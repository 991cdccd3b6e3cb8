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
use streamlog::GroupClaim;

mod calls;

/// Kafka's bounds on a member's session timeout are broker settings
/// (`group.min.session.timeout.ms`, 6 s there); a development server
/// accepts down to 1 s so that tests of a lost member run quickly.
const MIN_SESSION: Duration = Duration::from_millis(1000);
const MAX_SESSION: Duration = Duration::from_secs(1800);

/// Members (and member ids handed out, not joined yet) of one group (Kafka's
/// `group.max.size` is unbounded by default; a bound keeps a client that
/// joins without end from growing the server without end).
const MAX_MEMBERS: usize = 10_000;

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
    /// A JoinGroup of this member is parked, waiting for the join phase: it
    /// takes part in a rebalance that starts meanwhile.
    in_join: bool,
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
    /// A new group's first rebalance waits until then for more members
    /// (`initial_rebalance_delay`).
    initial_until: Option<Instant>,
    claim: Option<GroupClaim>,
    /// Forgotten by `Groups::tick`: a call that still holds this object
    /// answers NOT_COORDINATOR, and the client's retry finds a fresh one.
    pub dead: bool,
}

impl State {
    /// The id of the member holding static instance id `inst`.
    pub fn holder_of(&self, inst: &str) -> Option<String> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(inst))
            .map(|m| m.id.clone())
    }
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
                        initial_until: None,
                        claim: None,
                        dead: false,
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

    /// Runs every group's timers (session expiry, join deadlines), so that a
    /// group whose members all vanished empties and gives back its claim
    /// without waiting for a request; forgets groups that are empty with no
    /// member id pending. Called by the server's timer thread.
    pub fn tick(&self) {
        let groups: Vec<Arc<Group>> = self.map.lock().values().cloned().collect();
        let mut idle = Vec::new();
        for g in groups {
            let s = g.lock();
            if s.members.is_empty() && s.pending.is_empty() && s.phase == Phase::Empty {
                idle.push(g.id.clone());
            }
        }
        let mut map = self.map.lock();
        for id in idle {
            // Checked again under the map's lock: a join may have come.
            let forgotten = map.get(&id).is_some_and(|g| {
                let mut s = g.state.lock();
                let idle = s.members.is_empty() && s.pending.is_empty();
                s.dead |= idle;
                idle
            });
            if forgotten {
                map.remove(&id);
            }
        }
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
                m.joined = m.in_join;
            }
            let longest = s
                .members
                .values()
                .map(|m| m.rebalance_timeout)
                .max()
                .unwrap_or_default();
            s.rebalance_deadline = Some(now + longest.max(delay));
            s.initial_until = (!delay.is_zero()).then(|| now + delay);
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
        let waiting_for_more = s.initial_until.is_some_and(|u| now < u);
        let all_joined = s.members.values().all(|m| m.joined) && !waiting_for_more;
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
        s.initial_until = None;
        self.changed.notify_all();
    }

    /// Waits on the group's condition variable until `until`.
    fn park(&self, s: &mut MutexGuard<'_, State>, until: Instant) {
        let step = until.min(Instant::now() + Duration::from_millis(500));
        self.changed.wait_until(s, step);
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
