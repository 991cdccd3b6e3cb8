//! The power-cut property test: a seeded random workload on the simulated
//! file system, a power cut at a random operation, a reboot from what was
//! durable, and the durability contract checked against what was
//! acknowledged.
//!
//! A sibling test kills the process instead (its last write torn), restarts
//! it on the same boot — every acknowledged record must be back, through the
//! same-boot recovery that resumes near the end of each active segment and
//! leaves it unsynced — then runs on until a power cut, after which every
//! record acknowledged as durable must be there.
//!
//! The oracle is independent of the code it checks: which records must
//! survive a power cut is derived from the workload alone, from what the
//! sync policy promised when each call returned (an `EveryWrite` send, the
//! `EveryRecords(n)` bound, a successful `flush`, `close` or offset commit),
//! never from the log's own durable offset. Only the retained topic may lose
//! records below its start; a replayed commit must be the newest durable one
//! or a later one; and any error before the power goes out (or the process
//! dies) fails the test.
//!
//! `STREAMLOG_POWER_CUTS=N` runs N iterations (default 1000; the kill test
//! runs half as many); `STREAMLOG_POWER_CUT_SEED=S` replays one seed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use streamlog::testing::SimFs;
use streamlog::{
    CleanupPolicy, ConsumerConfig, Error, Log, LogOptions, ManualClock, OffsetAndMetadata,
    OffsetReset, Record, RecoveryMode, SyncPolicy, TopicConfig, TopicPartition,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const TOPICS: [&str; 3] = ["plain", "compacted", "retained"];

fn topic_config(name: &str) -> TopicConfig {
    let base = TopicConfig::new()
        .partitions(2)
        .segment_bytes(1024)
        .index_interval_bytes(128)
        .segment_index_bytes(256);
    match name {
        "compacted" => base
            .cleanup_policy(CleanupPolicy::Compact)
            .min_cleanable_dirty_ratio(0.0),
        "retained" => base.retention_bytes(700),
        _ => base,
    }
}

/// One acknowledged record.
#[derive(Debug, Clone)]
struct Ack {
    key: Vec<u8>,
    value: Vec<u8>,
}

/// What the workload was told, and what the sync policy promised with it.
struct Model {
    policy: SyncPolicy,
    /// (topic, partition) → offset → ack.
    acks: BTreeMap<(String, u32), BTreeMap<u64, Ack>>,
    /// Every value ever attempted, acknowledged or not.
    attempted: HashMap<Vec<u8>, Vec<u8>>,
    /// (topic, partition) → every acknowledged offset below this was
    /// promised durable.
    durable_below: BTreeMap<(String, u32), u64>,
    /// Commits in the order they were made. One whose call the crash
    /// interrupted may or may not have landed.
    commits: Vec<Commit>,
    /// How many of group "g"'s one-record commits were acknowledged: the
    /// n-th of them is at or after `__consumer_offsets`' n-th record.
    commits_acked: usize,
    /// Events of the run, printed so that a reader sees they happened.
    events: Events,
}

/// One commit of a partition of "plain".
#[derive(Debug, Clone)]
struct Commit {
    /// "g" (explicit `commit_offsets`) or "g2" (a subscribed member's
    /// `commit`).
    group: &'static str,
    p: u32,
    offset: u64,
    acked: bool,
    /// For "g": its place among the acknowledged ones.
    index: Option<usize>,
    /// Promised durable (by the policy at its acknowledgement, or a later
    /// flush or close).
    durable: bool,
}

/// What a run exercised.
#[derive(Debug, Default, Clone)]
struct Events {
    /// Sends from several threads at once, and how many of their acks
    /// shared an fdatasync with another (group commit).
    burst_acks: u64,
    shared_syncs: u64,
    /// `commit()` calls of the subscribed member that succeeded, and those
    /// fenced by a rebalance.
    member_commits: u64,
    fenced_commits: u64,
    /// Times a second member joined (each one a rebalance, and another
    /// when it left).
    rebalances: u64,
    /// Runs whose retained topic had moved its start before the crash.
    retention_ran: u64,
}

impl Events {
    fn add(&mut self, o: &Events) {
        self.burst_acks += o.burst_acks;
        self.shared_syncs += o.shared_syncs;
        self.member_commits += o.member_commits;
        self.fenced_commits += o.fenced_commits;
        self.rebalances += o.rebalances;
        self.retention_ran += o.retention_ran;
    }
}

impl Model {
    fn new(policy: SyncPolicy) -> Model {
        Model {
            policy,
            acks: BTreeMap::new(),
            attempted: HashMap::new(),
            durable_below: BTreeMap::new(),
            commits: Vec::new(),
            commits_acked: 0,
            events: Events::default(),
        }
    }

    /// How far an acknowledgement that moved a partition's end to `end`
    /// made it durable, by the policy's promise: `EveryWrite` (and an
    /// `Interval` of zero) everything; `EveryRecords(n)` leaves fewer than
    /// `n` records unsynced; `OsBuffered` nothing.
    fn promised(&self, end: u64) -> u64 {
        match self.policy {
            SyncPolicy::EveryWrite => end,
            SyncPolicy::Interval(d) if d.is_zero() => end,
            SyncPolicy::EveryRecords(n) => end.saturating_sub(n.max(1) - 1),
            _ => 0,
        }
    }

    fn durable(&mut self, topic: &str, p: u32, below: u64) {
        let d = self.durable_below.entry((topic.to_owned(), p)).or_default();
        *d = (*d).max(below);
    }

    /// A successful flush or close: everything acknowledged is durable.
    fn all_durable(&mut self) {
        for (k, acks) in &self.acks {
            if let Some((&last, _)) = acks.iter().next_back() {
                let d = self.durable_below.entry(k.clone()).or_default();
                *d = (*d).max(last + 1);
            }
        }
        for c in self.commits.iter_mut().filter(|c| c.acked) {
            c.durable = true;
        }
    }

    /// Records an acknowledged send.
    fn acked(&mut self, md: &streamlog::RecordMetadata, key: Vec<u8>, value: Vec<u8>) {
        let (t, p, o) = (md.topic().to_owned(), md.partition(), md.offset());
        self.acks
            .entry((t.clone(), p))
            .or_default()
            .insert(o, Ack { key, value });
        let promised = self.promised(o + 1);
        self.durable(&t, p, promised);
    }

    fn is_durable(&self, topic: &str, p: u32, offset: u64) -> bool {
        self.durable_below
            .get(&(topic.to_owned(), p))
            .is_some_and(|&d| offset < d)
    }
}

fn policy_for(seed: u64) -> SyncPolicy {
    match seed % 4 {
        0 => SyncPolicy::EveryWrite,
        1 => SyncPolicy::OsBuffered,
        2 => SyncPolicy::EveryRecords(3),
        _ => SyncPolicy::Interval(Duration::ZERO),
    }
}

/// The log's clock: a seed's run must not depend on the wall clock (record
/// timestamps decide which time-index entries are written, and so which
/// operation a cut or a kill lands on), so that a seed replays exactly.
fn clock() -> ManualClock {
    ManualClock::new(1_700_000_000_000)
}

fn open(fs: &SimFs, policy: SyncPolicy, clock: &ManualClock) -> streamlog::Result<Log> {
    streamlog::testing::open_sim(
        fs,
        Path::new("/data/log"),
        // Two mapped sealed segments at most: reads keep unmapping and
        // mapping them again, through the simulated file system.
        LogOptions::new()
            .sync(policy)
            .max_mapped_segments(2)
            .clock(clock.clone()),
    )
}

/// Runs the workload until the power goes out, the process is killed
/// (`dead`), or `ops` operations. Values are `<tag>/<n>`: each run of it
/// needs its own tag.
///
/// A killed process never sees the outcome of the call it died in, but the
/// simulated one runs on (a store through a mapping cannot report the
/// kill), so nothing is recorded once `dead` says so.
fn workload(
    log: &Log,
    clock: &ManualClock,
    rng: &mut Rng,
    model: &mut Model,
    ops: u64,
    tag: u64,
    dead: &dyn Fn() -> bool,
) {
    // An error is expected only once the machine is off or the process is
    // dead; any other ends the test.
    let unexpected = |what: &str, e: &Error| {
        assert!(dead(), "seed {tag}: {what} failed before any crash: {e}");
    };
    for t in TOPICS {
        match log.create_topic(t, topic_config(t)) {
            Ok(()) | Err(Error::TopicExists { .. }) => {}
            Err(e) => return unexpected("create_topic", &e),
        }
    }
    let producer = log.producer();
    let mut consumer = log.consumer(ConsumerConfig::new().group("g").enable_auto_commit(false));
    let tps: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new("plain", p)).collect();
    if let Err(e) = consumer.assign(&tps) {
        return unexpected("assign", &e);
    }
    let mut member = log.consumer(
        ConsumerConfig::new()
            .group("g2")
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest),
    );
    if let Err(e) = member.subscribe(&["plain"]) {
        return unexpected("subscribe", &e);
    }
    let mut n = 0u64;
    for op in 0..ops {
        clock.advance(Duration::from_millis(rng.below(3)));
        let topic = TOPICS[rng.below(3) as usize];
        let result = match rng.below(13) {
            0..=4 => {
                let key = format!("k{}", rng.below(8)).into_bytes();
                let value = format!("{tag}/{n}").into_bytes();
                n += 1;
                model.attempted.insert(value.clone(), key.clone());
                producer
                    .send(topic, Record::new(&value[..]).key(&key[..]))
                    .map(|md| vec![(md, key, value)])
            }
            5..=6 => {
                let count = 1 + rng.below(5);
                let mut recs = Vec::new();
                for _ in 0..count {
                    let key = format!("k{}", rng.below(8)).into_bytes();
                    let value = format!("{tag}/{n}").into_bytes();
                    n += 1;
                    model.attempted.insert(value.clone(), key.clone());
                    recs.push((key, value));
                }
                let batch = recs
                    .iter()
                    .map(|(k, v)| Record::new(&v[..]).key(&k[..]))
                    .collect();
                producer.send_batch(topic, batch).map(|mds| {
                    mds.into_iter()
                        .zip(recs)
                        .map(|(md, (k, v))| (md, k, v))
                        .collect()
                })
            }
            7 => {
                let p = rng.below(2) as u32;
                let tp = &tps[p as usize];
                let end = log.partition_info(tp).map(|i| i.end_offset).unwrap_or(0);
                let to = rng.below(end + 1);
                let offsets = [(tp.clone(), OffsetAndMetadata::new(to))]
                    .into_iter()
                    .collect();
                model.commits.push(Commit {
                    group: "g",
                    p,
                    offset: to,
                    acked: false,
                    index: None,
                    durable: false,
                });
                match consumer.commit_offsets(&offsets) {
                    Ok(()) if !dead() => {
                        // A commit is written only once the records it
                        // covers are durable, and its own record follows
                        // every earlier commit's in `__consumer_offsets`.
                        model.durable("plain", p, to);
                        let index = model.commits_acked;
                        model.commits_acked += 1;
                        if let Some(c) = model.commits.last_mut() {
                            c.acked = true;
                            c.index = Some(index);
                        }
                        let promised = model.promised(model.commits_acked as u64) as usize;
                        for c in model.commits.iter_mut() {
                            if c.index.is_some_and(|i| i < promised) {
                                c.durable = true;
                            }
                        }
                        Ok(Vec::new())
                    }
                    Ok(()) => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            }
            8 => match log.flush() {
                Ok(()) if !dead() => {
                    model.all_durable();
                    Ok(Vec::new())
                }
                r => r.map(|()| Vec::new()),
            },
            9 => log.maintain().map(|_| Vec::new()),
            10 => {
                // Several threads send at once: under `EveryWrite` they
                // share fdatasyncs (group commit), and a cut can land in
                // the middle of one.
                let before = log.metrics().fsyncs;
                let mut jobs = Vec::new();
                for t in 0..3u32 {
                    let mut recs = Vec::new();
                    for _ in 0..3 {
                        let key = format!("k{}", rng.below(8)).into_bytes();
                        let value = format!("{tag}/{n}").into_bytes();
                        n += 1;
                        model.attempted.insert(value.clone(), key.clone());
                        recs.push((key, value));
                    }
                    jobs.push((t % 2, recs));
                }
                let results: Vec<_> = std::thread::scope(|sc| {
                    let handles: Vec<_> = jobs
                        .into_iter()
                        .map(|(p, recs)| {
                            let producer = producer.clone();
                            sc.spawn(move || {
                                let mut out = Vec::new();
                                for (k, v) in recs {
                                    match producer.send_to(
                                        "plain",
                                        p,
                                        Record::new(&v[..]).key(&k[..]),
                                    ) {
                                        Ok(md) => out.push((md, k, v)),
                                        Err(e) => return (out, Some(e)),
                                    }
                                }
                                (out, None)
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("sender thread"))
                        .collect()
                });
                let mut acked = Vec::new();
                let mut failed = None;
                for (out, err) in results {
                    acked.extend(out);
                    failed = failed.or(err);
                }
                if !dead() && failed.is_none() {
                    let syncs = log.metrics().fsyncs - before;
                    model.events.burst_acks += acked.len() as u64;
                    model.events.shared_syncs += (acked.len() as u64).saturating_sub(syncs);
                }
                match failed {
                    Some(e) if !dead() => Err(e),
                    _ => Ok(acked),
                }
            }
            11 => {
                // The subscribed member polls, and commits what it read.
                match member.poll(Duration::ZERO) {
                    Ok(_) if rng.below(2) == 0 => {
                        let positions: Vec<(u32, u64)> = member
                            .assignment()
                            .iter()
                            .filter_map(|tp| member.position(tp).ok().map(|o| (tp.partition, o)))
                            .collect();
                        let first = model.commits.len();
                        for &(p, o) in &positions {
                            model.commits.push(Commit {
                                group: "g2",
                                p,
                                offset: o,
                                acked: false,
                                index: None,
                                durable: false,
                            });
                        }
                        match member.commit() {
                            Ok(()) if !dead() => {
                                model.events.member_commits += 1;
                                let every = model.promised(1) == 1;
                                for c in &mut model.commits[first..] {
                                    c.acked = true;
                                    c.durable = every;
                                }
                                for (p, o) in positions {
                                    model.durable("plain", p, o);
                                }
                                Ok(Vec::new())
                            }
                            Err(Error::CommitFailed { .. }) if !dead() => {
                                // Fenced by a rebalance: nothing written.
                                model.commits.truncate(first);
                                model.events.fenced_commits += 1;
                                Ok(Vec::new())
                            }
                            r => r.map(|()| Vec::new()),
                        }
                    }
                    r => r.map(|_| Vec::new()),
                }
            }
            _ => {
                // A second member joins (a rebalance), reads, and leaves
                // (another one); the first keeps polling through both.
                model.events.rebalances += 1;
                let mut other = log.consumer(
                    ConsumerConfig::new()
                        .group("g2")
                        .enable_auto_commit(false)
                        .auto_offset_reset(OffsetReset::Earliest),
                );
                let mut r = other.subscribe(&["plain"]);
                for _ in 0..3 {
                    if r.is_err() {
                        break;
                    }
                    r = member
                        .poll(Duration::ZERO)
                        .and_then(|_| other.poll(Duration::ZERO))
                        .map(|_| ());
                }
                r.and_then(|()| other.close()).map(|()| Vec::new())
            }
        };
        if dead() {
            return;
        }
        match result {
            Ok(acked) => {
                for (md, key, value) in acked {
                    model.acked(&md, key, value);
                }
            }
            Err(e) => return unexpected("an operation", &e),
        }
        if model.events.retention_ran == 0 && op % 16 == 0 {
            let moved = (0..2).any(|p| {
                log.partition_info(&TopicPartition::new("retained", p))
                    .is_ok_and(|i| i.start_offset > 0)
            });
            model.events.retention_ran = u64::from(moved);
        }
    }
}

type Row = (u64, Option<Vec<u8>>, Option<Vec<u8>>);

fn read_partition(log: &Log, tp: &TopicPartition) -> (u64, Vec<Row>) {
    let info = log
        .partition_info(tp)
        .expect("partition exists after recovery");
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(100_000),
    );
    c.assign(std::slice::from_ref(tp)).expect("assign");
    let mut rows = Vec::new();
    while c.position(tp).expect("position") < info.end_offset {
        let recs = c
            .poll(Duration::ZERO)
            .unwrap_or_else(|e| panic!("{tp}: a read after recovery failed: {e}"));
        assert!(
            !recs.is_empty(),
            "{tp}: poll returned nothing before the end"
        );
        for r in &recs {
            rows.push((
                r.offset(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
            ));
        }
    }
    (info.start_offset, rows)
}

/// Which acknowledged records must be there.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Crash {
    /// After a power cut: those acknowledged as durable.
    Power,
    /// After a process kill: all of them.
    Process,
}

fn check(log: &Log, model: &Model, policy: SyncPolicy, crash: Crash) {
    let must_survive =
        |topic: &str, p: u32, o: u64| crash == Crash::Process || model.is_durable(topic, p, o);
    for topic in TOPICS {
        for p in 0..2u32 {
            let tp = TopicPartition::new(topic, p);
            if log.partition_info(&tp).is_err() {
                // The topic was never durably created: nothing of it may
                // have been acknowledged as durable.
                let acks = model.acks.get(&(topic.to_owned(), p));
                assert!(
                    acks.is_none_or(|a| a.keys().all(|&o| !must_survive(topic, p, o))),
                    "{tp}: topic lost ({crash:?})"
                );
                continue;
            }
            let (start, rows) = read_partition(log, &tp);
            let acks = model
                .acks
                .get(&(topic.to_owned(), p))
                .cloned()
                .unwrap_or_default();
            // Offsets strictly increase; every record is one that was sent,
            // to this offset if it was acknowledged.
            let mut prev = None;
            for (o, k, v) in &rows {
                assert!(
                    prev.is_none_or(|x| x < *o),
                    "{tp}: offsets out of order at {o}"
                );
                prev = Some(*o);
                let v = v.as_ref().expect("no tombstones are sent");
                assert_eq!(
                    model.attempted.get(v),
                    k.as_ref(),
                    "{tp}@{o}: a record nobody sent"
                );
                if let Some(a) = acks.get(o) {
                    assert_eq!(
                        &a.value, v,
                        "{tp}@{o}: a different record than acknowledged"
                    );
                }
            }
            if topic != "compacted" {
                // Without compaction the partition is dense from its start.
                for (i, (o, _, _)) in rows.iter().enumerate() {
                    assert_eq!(*o, start + i as u64, "{tp}: a gap at {o}");
                }
            }
            let present: BTreeMap<u64, &Row> = rows.iter().map(|r| (r.0, r)).collect();
            for (o, a) in acks.iter().filter(|(o, _)| must_survive(topic, p, **o)) {
                if *o < start {
                    // Only retention may move the start past a record.
                    assert_eq!(
                        topic, "retained",
                        "{tp}@{o}: below the start {start} on a topic without retention ({policy:?}, {crash:?})"
                    );
                    continue;
                }
                if topic == "compacted" {
                    // The record, or a later one with its key, survives.
                    let kept = rows
                        .iter()
                        .any(|(ro, k, _)| ro >= o && k.as_deref() == Some(&a.key[..]));
                    assert!(
                        kept,
                        "{tp}@{o}: an acknowledged record's key vanished ({policy:?}, {crash:?})"
                    );
                } else {
                    assert!(
                        present.contains_key(o),
                        "{tp}@{o}: an acknowledged record is missing ({policy:?}, {crash:?})"
                    );
                }
            }
        }
    }
    for (tp, o) in log.committed_offsets("g") {
        let end = log.partition_info(&tp).map(|i| i.end_offset).unwrap_or(0);
        assert!(
            o.offset() <= end,
            "{tp}: committed {} past the end {end}",
            o.offset()
        );
    }
    // The replayed commit of each partition is the newest one promised
    // durable, or one made after it (after a kill: the newest acknowledged
    // one, or one made after it).
    for (group, p) in [("g", 0u32), ("g", 1), ("g2", 0), ("g2", 1)] {
        let tp = TopicPartition::new("plain", p);
        let got = log
            .committed_offsets(group)
            .into_iter()
            .find(|(t, _)| *t == tp)
            .map(|(_, o)| o.offset());
        let made: Vec<(bool, u64)> = model
            .commits
            .iter()
            .filter(|c| c.group == group && c.p == p)
            .map(|c| {
                let must = match crash {
                    Crash::Process => c.acked,
                    Crash::Power => c.durable,
                };
                (must, c.offset)
            })
            .collect();
        let durable = made.iter().rposition(|(must, _)| *must);
        match durable {
            Some(d) => {
                let allowed: Vec<u64> = made[d..].iter().map(|c| c.1).collect();
                assert!(
                    got.is_some_and(|g| allowed.contains(&g)),
                    "{group} {tp}: replayed commit {got:?}, but the newest durable one is {} (allowed {allowed:?}; {policy:?}, {crash:?})",
                    made[d].1
                );
            }
            None => assert!(
                got.is_none_or(|g| made.iter().any(|c| c.1 == g)),
                "{group} {tp}: replayed commit {got:?} was never made"
            ),
        }
    }
}

/// Counters over a run, printed at the end so that a reader can see the
/// test exercised something.
#[derive(Default, Debug)]
struct Stats {
    cut_mid_workload: u64,
    acks: u64,
    durable_acks: u64,
    truncations: u64,
    /// Reboots that `AbsoluteConsistency` opened (then checked like the
    /// others), and those it refused (damage from the cut).
    absolute_opened: u64,
    absolute_refused: u64,
    /// Unsynced pages lost while later ones survived.
    lost_pages: u64,
    events: Events,
}

fn one(seed: u64, stats: &mut Stats) {
    let mut rng = Rng(seed);
    let policy = policy_for(seed);
    let cut_at = 1 + rng.below(1500);
    let fs = SimFs::new(Some(cut_at), seed);
    let clock = clock();
    let mut model = Model::new(policy);
    match open(&fs, policy, &clock) {
        Ok(log) => {
            workload(&log, &clock, &mut rng, &mut model, 400, seed, &|| {
                fs.image().is_some()
            });
            drop(log);
        }
        Err(e) => assert!(
            fs.image().is_some(),
            "seed {seed}: open failed before the cut: {e}"
        ),
    }
    let cut_mid = fs.image().is_some();
    let image = fs.image().unwrap_or_else(|| fs.cut_now());
    stats.cut_mid_workload += u64::from(cut_mid);
    stats.lost_pages += image.lost_pages() as u64;
    stats.events.add(&model.events);
    for ((t, p), acks) in &model.acks {
        stats.acks += acks.len() as u64;
        stats.durable_acks += acks.keys().filter(|&&o| model.is_durable(t, *p, o)).count() as u64;
    }
    // A reboot under `AbsoluteConsistency` either opens a log that keeps
    // the contract or refuses with a typed error naming the damage.
    let strict = SimFs::from_image(&image, None, seed);
    let opts = LogOptions::new()
        .sync(policy)
        .clock(clock.clone())
        .recovery(RecoveryMode::AbsoluteConsistency);
    match streamlog::testing::open_sim(&strict, Path::new("/data/log"), opts) {
        Ok(log) => {
            stats.absolute_opened += 1;
            check(&log, &model, policy, Crash::Power);
        }
        Err(Error::Corrupted { .. }) => stats.absolute_refused += 1,
        Err(e) => panic!("seed {seed}: AbsoluteConsistency failed untyped: {e}"),
    }
    // Reboot; recovery must succeed and may itself be cut and redone.
    let rebooted = SimFs::from_image(&image, None, seed);
    let log = open(&rebooted, policy, &clock)
        .unwrap_or_else(|e| panic!("seed {seed}: open after the power cut failed: {e}"));
    stats.truncations += log.recovery_report().truncations.len() as u64;
    check(&log, &model, policy, Crash::Power);
    // The log stays writable after recovery.
    log.producer()
        .send("plain", Record::new(b"after").key(b"k"))
        .ok();
}

/// Runs `one` for each seed of the run: `STREAMLOG_POWER_CUT_SEED` alone,
/// or `STREAMLOG_POWER_CUTS` (default `default`) seeds from
/// `STREAMLOG_POWER_CUT_BASE`. Returns how many ran.
fn run_seeds(test: &str, default: u64, mut one: impl FnMut(u64)) -> u64 {
    if let Ok(seed) = std::env::var("STREAMLOG_POWER_CUT_SEED") {
        one(seed.parse().expect("a number"));
        return 1;
    }
    let n: u64 = std::env::var("STREAMLOG_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(
            default,
            |n: u64| if default < 1000 { n.div_ceil(2) } else { n },
        );
    let base = std::env::var("STREAMLOG_POWER_CUT_BASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    for seed in base..base + n {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| one(seed))) {
            eprintln!(
                "{test} failed for seed {seed} (replay with STREAMLOG_POWER_CUT_SEED={seed})"
            );
            std::panic::resume_unwind(e);
        }
    }
    n
}

#[test]
fn power_cuts_at_random_operations_keep_the_durability_contract() {
    let mut stats = Stats::default();
    let n = run_seeds("power cut test", 1000, |seed| one(seed, &mut stats));
    eprintln!("power cuts: {n} iterations, {stats:?}");
    if n > 1 {
        assert!(
            stats.cut_mid_workload > n / 2,
            "most cuts should land inside the workload: {stats:?}"
        );
        assert!(stats.durable_acks > 0, "{stats:?}");
        let e = &stats.events;
        assert!(e.shared_syncs > 0, "no group commit at all: {stats:?}");
        assert!(e.member_commits > 0 && e.rebalances > 0, "{stats:?}");
        assert!(e.retention_ran > 0, "{stats:?}");
        assert!(
            stats.absolute_opened > 0 && stats.absolute_refused > 0,
            "{stats:?}"
        );
        assert!(stats.lost_pages > 0, "{stats:?}");
    }
}

/// Counters of the kill test.
#[derive(Default, Debug)]
struct KillStats {
    killed_mid_workload: u64,
    acks: u64,
    /// Opens after a kill that resumed an active segment near its end.
    resumed_opens: u64,
    /// Partitions that started with durable < end (their tail unsynced).
    unsynced_tails: u64,
    truncations: u64,
    /// Restarted processes that closed cleanly before the power cut.
    closed: u64,
    events: Events,
}

/// A process killed at a random operation (its last write torn) and
/// restarted on the same boot gets every acknowledged record back; then the
/// restarted process runs on until a power cut (or closes cleanly first),
/// and the reboot keeps every record acknowledged as durable.
fn one_kill(seed: u64, stats: &mut KillStats) {
    let mut rng = Rng(seed ^ 0x6b69_6c6c);
    let policy = policy_for(seed);
    let fs = SimFs::new(None, seed);
    fs.kill_after(1 + rng.below(1500));
    let clock = clock();
    let mut model = Model::new(policy);
    if let Ok(log) = open(&fs, policy, &clock) {
        workload(&log, &clock, &mut rng, &mut model, 400, seed, &|| {
            fs.was_killed()
        });
        stats.killed_mid_workload += u64::from(fs.was_killed());
        // Abandoned: a dead process does not close its log.
        fs.kill_now();
        drop(log);
    }
    fs.kill_now();
    stats.acks += model.acks.values().map(|a| a.len() as u64).sum::<u64>();
    stats.events.add(&model.events);
    let cut_at = (rng.below(4) != 0).then(|| 1 + rng.below(2500));
    let restarted = SimFs::restart(&fs, cut_at);
    match open(&restarted, policy, &clock) {
        Ok(log) => {
            let report = log.recovery_report().clone();
            assert!(
                !report.clean_shutdown,
                "seed {seed}: a killed log was clean"
            );
            stats.resumed_opens += u64::from(report.segments_resumed > 0);
            stats.truncations += report.truncations.len() as u64;
            for t in TOPICS {
                for p in 0..2 {
                    let info = log.partition_info(&TopicPartition::new(t, p));
                    stats.unsynced_tails +=
                        u64::from(info.is_ok_and(|i| i.durable_offset < i.end_offset));
                }
            }
            restarted.without_cut(|| check(&log, &model, policy, Crash::Process));
            workload(
                &log,
                &clock,
                &mut rng,
                &mut model,
                300,
                seed | 1 << 63,
                &|| restarted.image().is_some(),
            );
            if restarted.image().is_none() && rng.below(3) == 0 {
                // A clean close syncs every tail the open left unsynced.
                if log.close().is_ok() {
                    stats.closed += 1;
                    model.all_durable();
                }
            } else {
                restarted.cut_now();
                drop(log);
            }
        }
        Err(e) => assert!(
            restarted.image().is_some(),
            "seed {seed}: open after the kill failed: {e}"
        ),
    }
    let image = restarted.image().unwrap_or_else(|| restarted.cut_now());
    let rebooted = SimFs::from_image(&image, None, seed);
    let log = open(&rebooted, policy, &clock)
        .unwrap_or_else(|e| panic!("seed {seed}: open after the power cut failed: {e}"));
    check(&log, &model, policy, Crash::Power);
}

#[test]
fn process_kills_recover_every_ack_and_later_power_cuts_every_durable_one() {
    let mut stats = KillStats::default();
    let n = run_seeds("kill test", 500, |seed| one_kill(seed, &mut stats));
    eprintln!("process kills: {n} iterations, {stats:?}");
    if n > 1 {
        assert!(stats.killed_mid_workload > n / 2, "{stats:?}");
        // The same-boot path ran, and left tails unsynced.
        assert!(stats.resumed_opens > n / 4, "{stats:?}");
        assert!(stats.unsynced_tails > 0, "{stats:?}");
        assert!(stats.truncations > 0, "torn tails were cut: {stats:?}");
    }
}
