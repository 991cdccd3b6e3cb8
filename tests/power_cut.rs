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
//! `STREAMLOG_POWER_CUTS=N` runs N iterations (default 1000; the kill test
//! runs half as many); `STREAMLOG_POWER_CUT_SEED=S` replays one seed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use streamlog::testing::SimFs;
use streamlog::{
    CleanupPolicy, ConsumerConfig, Error, Log, LogOptions, OffsetAndMetadata, OffsetReset, Record,
    SyncPolicy, TopicConfig, TopicPartition,
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
        "retained" => base.retention_bytes(3000),
        _ => base,
    }
}

/// One acknowledged record.
#[derive(Debug, Clone)]
struct Ack {
    key: Vec<u8>,
    value: Vec<u8>,
    durable: bool,
}

#[derive(Default)]
struct Model {
    /// (topic, partition) → offset → ack.
    acks: BTreeMap<(String, u32), BTreeMap<u64, Ack>>,
    /// Every value ever attempted, acknowledged or not.
    attempted: HashMap<Vec<u8>, Vec<u8>>,
    /// The last commit acknowledged as durable, per partition of "plain".
    commits: BTreeMap<u32, u64>,
}

fn policy_for(seed: u64) -> SyncPolicy {
    match seed % 4 {
        0 => SyncPolicy::EveryWrite,
        1 => SyncPolicy::OsBuffered,
        2 => SyncPolicy::EveryRecords(3),
        _ => SyncPolicy::Interval(Duration::ZERO),
    }
}

fn open(fs: &SimFs, policy: SyncPolicy) -> streamlog::Result<Log> {
    streamlog::testing::open_sim(
        fs,
        Path::new("/data/log"),
        // Two mapped sealed segments at most: reads keep unmapping and
        // mapping them again, through the simulated file system.
        LogOptions::new().sync(policy).max_mapped_segments(2),
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
    rng: &mut Rng,
    model: &mut Model,
    ops: u64,
    tag: u64,
    dead: &dyn Fn() -> bool,
) {
    for t in TOPICS {
        match log.create_topic(t, topic_config(t)) {
            Ok(()) | Err(Error::TopicExists { .. }) => {}
            Err(_) => return,
        }
    }
    let producer = log.producer();
    let mut consumer = log.consumer(ConsumerConfig::new().group("g").enable_auto_commit(false));
    let tps: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new("plain", p)).collect();
    if consumer.assign(&tps).is_err() {
        return;
    }
    let mut n = 0u64;
    for op in 0..ops {
        let topic = TOPICS[rng.below(3) as usize];
        let result = match rng.below(10) {
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
                match consumer.commit_offsets(&offsets) {
                    Ok(()) if !dead() => {
                        if log
                            .partition_info(&TopicPartition::new("__consumer_offsets", 0))
                            .is_ok()
                        {
                            // Whether the commit is durable is known once the
                            // offsets partition's durable offset covers it.
                            let info =
                                log.partition_info(&TopicPartition::new("__consumer_offsets", 0));
                            if info.is_ok_and(|i| i.durable_offset == i.end_offset) {
                                model.commits.insert(p, to);
                            }
                        }
                        Ok(Vec::new())
                    }
                    Ok(()) => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            }
            8 => log.flush().map(|()| Vec::new()),
            _ => log.maintain().map(|_| Vec::new()),
        };
        if dead() {
            return;
        }
        match result {
            Ok(acked) => {
                for (md, key, value) in acked {
                    model
                        .acks
                        .entry((md.topic().to_owned(), md.partition()))
                        .or_default()
                        .insert(
                            md.offset(),
                            Ack {
                                key,
                                value,
                                durable: false,
                            },
                        );
                }
            }
            Err(_) => return,
        }
        // What is durable now stays durable.
        for ((topic, p), acks) in model.acks.iter_mut() {
            if let Ok(info) = log.partition_info(&TopicPartition::new(topic.clone(), *p)) {
                for (_, a) in acks.range_mut(..info.durable_offset) {
                    a.durable = true;
                }
            }
        }
        let _ = op;
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
    let must_survive = |a: &Ack| a.durable || crash == Crash::Process;
    for topic in TOPICS {
        for p in 0..2u32 {
            let tp = TopicPartition::new(topic, p);
            if log.partition_info(&tp).is_err() {
                // The topic was never durably created: nothing of it may
                // have been acknowledged as durable.
                let acks = model.acks.get(&(topic.to_owned(), p));
                assert!(
                    acks.is_none_or(|a| a.values().all(|x| !must_survive(x))),
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
            for (o, a) in acks.iter().filter(|(_, a)| must_survive(a)) {
                if *o < start {
                    continue; // deleted by retention
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
    for (p, want) in &model.commits {
        let tp = TopicPartition::new("plain", *p);
        let got = log
            .committed_offsets("g")
            .into_iter()
            .find(|(t, _)| *t == tp)
            .map(|(_, o)| o.offset());
        assert!(got.is_some(), "{tp}: a durable commit of {want} was lost");
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
}

fn one(seed: u64, stats: &mut Stats) {
    let mut rng = Rng(seed);
    let policy = policy_for(seed);
    let cut_at = 1 + rng.below(1500);
    let fs = SimFs::new(Some(cut_at), seed);
    let mut model = Model::default();
    if let Ok(log) = open(&fs, policy) {
        workload(&log, &mut rng, &mut model, 400, seed, &|| false);
        drop(log);
    }
    let cut_mid = fs.image().is_some();
    let image = fs.image().unwrap_or_else(|| fs.cut_now());
    stats.cut_mid_workload += u64::from(cut_mid);
    for acks in model.acks.values() {
        stats.acks += acks.len() as u64;
        stats.durable_acks += acks.values().filter(|a| a.durable).count() as u64;
    }
    // Reboot; recovery must succeed and may itself be cut and redone.
    let rebooted = SimFs::from_image(&image, None, seed);
    let log = open(&rebooted, policy)
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
    let mut model = Model::default();
    if let Ok(log) = open(&fs, policy) {
        workload(&log, &mut rng, &mut model, 400, seed, &|| fs.was_killed());
        stats.killed_mid_workload += u64::from(fs.was_killed());
        // Abandoned: a dead process does not close its log.
        fs.kill_now();
        drop(log);
    }
    fs.kill_now();
    stats.acks += model.acks.values().map(|a| a.len() as u64).sum::<u64>();
    let cut_at = (rng.below(4) != 0).then(|| 1 + rng.below(2500));
    let restarted = SimFs::restart(&fs, cut_at);
    match open(&restarted, policy) {
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
            workload(&log, &mut rng, &mut model, 300, seed | 1 << 63, &|| false);
            if restarted.image().is_none() && rng.below(3) == 0 {
                // A clean close syncs every tail the open left unsynced.
                if log.close().is_ok() {
                    stats.closed += 1;
                    for a in model.acks.values_mut().flat_map(|m| m.values_mut()) {
                        a.durable = true;
                    }
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
    let log = open(&rebooted, policy)
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
