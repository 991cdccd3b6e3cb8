//! Power cuts and process kills during a workload of transactions, plain
//! sends, commits and aborts, on the simulated file system. After each
//! crash and reopen:
//! - every transaction is all or nothing across its partitions and its
//!   group offsets;
//! - every transaction whose `commit` returned is there, under every sync
//!   policy;
//! - no record of a transaction whose `abort` returned is ever returned by
//!   a `ReadCommitted` consumer.
//!
//! Half the seeds drive the transactions as a remote Kafka client does
//! (transaction version 1, through `Log::init_producer_id`,
//! `add_partitions_to_txn`, `append_transactional_batches`,
//! `txn_offset_commit` and `end_txn`): its epoch stays the same across
//! transactions, so one (producer id, epoch) names many of them in turn.
//!
//! `STREAMLOG_TXN_CUTS=N` runs N iterations (default 1000, what CI runs);
//! `STREAMLOG_TXN_CUT_SEED=S` runs one; `STREAMLOG_TXN_CUT_VERBOSE=1`
//! prints where the workload stopped, each record read, and the report.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use streamlog::internals::{encode as encode_batch, DecodedBatch, DecodedRecord};
use streamlog::testing::{open_sim, SimFs};
use streamlog::{
    ConsumerConfig, IsolationLevel, Log, LogOptions, ManualClock, OffsetAndMetadata, OffsetReset,
    Record, SyncPolicy, TopicConfig, TopicPartition,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
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

const DIR: &str = "/data/log";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Committed,
    Aborted,
    /// The call failed or never returned: either way, all or nothing.
    Unknown,
}

#[derive(Debug)]
struct Txn {
    /// Records sent: their count per (topic, partition) does not matter,
    /// the total does.
    records: usize,
    offsets: bool,
    outcome: Outcome,
}

/// A fixed clock: the same seed replays the same operations.
fn opts(policy: SyncPolicy) -> LogOptions {
    LogOptions::new()
        .sync(policy)
        .clock(ManualClock::new(1_700_000_000_000))
}

fn topic_cfg(partitions: u32) -> TopicConfig {
    TopicConfig::new()
        .partitions(partitions)
        .segment_bytes(1024)
        .index_interval_bytes(128)
}

/// The topics both workloads use, and ten input records.
fn setup(log: &Log) -> streamlog::Result<()> {
    log.create_topic("a", topic_cfg(2))?;
    log.create_topic("b", topic_cfg(1))?;
    log.create_topic("in", topic_cfg(1))?;
    let p = log.producer();
    for i in 0..10 {
        p.send("in", Record::new(format!("in{i}").as_bytes()))?;
    }
    Ok(())
}

/// Runs transactions until the first error (the cut) or the end.
fn workload(log: &Log, rng: &mut Rng, txns: &mut Vec<Txn>) {
    if setup(log).is_err() {
        return;
    }
    let group = log.consumer(ConsumerConfig::new().group("g"));
    // Two transactional ids, alternating: one's durable records must never
    // carry the other's decision away.
    let Ok(mut first) = log.transactional_producer("copier") else {
        return;
    };
    let Ok(mut second) = log.transactional_producer("other") else {
        return;
    };
    let plain = log.producer();
    for n in 0..30usize {
        if rng.below(4) == 0 && plain.send("b", Record::new(b"plain")).is_err() {
            return;
        }
        let tp = if n % 3 == 2 { &mut second } else { &mut first };
        let Ok(mut txn) = tp.begin_transaction() else {
            return;
        };
        let k = 1 + rng.below(4) as usize;
        txns.push(Txn {
            records: k,
            offsets: false,
            outcome: Outcome::Unknown,
        });
        for i in 0..k {
            let v = format!("T{n}-{i}-{}", "x".repeat(rng.below(200) as usize));
            let r = match rng.below(3) {
                0 => txn.send_to("a", 0, Record::new(v.as_bytes())),
                1 => txn.send_to("a", 1, Record::new(v.as_bytes())),
                _ => txn.send_to("b", 0, Record::new(v.as_bytes())),
            };
            if let Err(e) = r {
                if std::env::var("STREAMLOG_TXN_CUT_VERBOSE").is_ok() {
                    eprintln!("send failed: {e}");
                }
                return;
            }
        }
        if rng.below(2) == 0 {
            let o = HashMap::from([(
                TopicPartition::new("in", 0),
                OffsetAndMetadata::new(1 + rng.below(10)).metadata(format!("T{n}")),
            )]);
            if txn
                .send_offsets_to_transaction(&o, &group.group_metadata())
                .is_err()
            {
                return;
            }
            txns[n].offsets = true;
        }
        let commit = rng.below(4) != 0;
        let r = if commit { txn.commit() } else { txn.abort() };
        match r {
            Ok(()) if commit => txns[n].outcome = Outcome::Committed,
            Ok(()) => txns[n].outcome = Outcome::Aborted,
            Err(e) => {
                if std::env::var("STREAMLOG_TXN_CUT_VERBOSE").is_ok() {
                    eprintln!("end failed (commit {commit}): {e}");
                }
                return;
            }
        }
    }
}

/// A remote client's transactional batch of `values` at `seq`.
fn remote_batch(pid: i64, epoch: i16, seq: i32, values: &[String]) -> Vec<u8> {
    let ts = 1_700_000_000_000;
    encode_batch(&DecodedBatch {
        version: 2,
        total_len: 0,
        base_offset: 0,
        leader_epoch: 0,
        last_offset_delta: values.len() as u32 - 1,
        attributes: 0x10,
        base_timestamp: ts,
        max_timestamp: ts,
        producer: (pid, epoch, seq),
        crc: 0,
        records: values
            .iter()
            .enumerate()
            .map(|(i, v)| DecodedRecord {
                offset_delta: i as u32,
                timestamp: ts,
                key: None,
                value: Some(v.as_bytes().to_vec()),
                headers: Vec::new(),
            })
            .collect(),
    })
}

/// The workload of `workload`, driven as a remote client drives it.
fn remote_workload(log: &Log, rng: &mut Rng, txns: &mut Vec<Txn>) {
    if setup(log).is_err() {
        return;
    }
    let timeout = Duration::from_secs(60);
    let mut ids = Vec::new();
    for id in ["copier", "other"] {
        match log.init_producer_id(id, timeout, None) {
            Ok((pid, epoch)) => ids.push((id, pid, epoch, HashMap::<(&str, u32), i32>::new())),
            Err(_) => return,
        }
    }
    let plain = log.producer();
    let verbose = std::env::var("STREAMLOG_TXN_CUT_VERBOSE").is_ok();
    for n in 0..30usize {
        if rng.below(4) == 0 && plain.send("b", Record::new(b"plain")).is_err() {
            return;
        }
        let (id, pid, epoch, seqs) = &mut ids[usize::from(n % 3 == 2)];
        let k = 1 + rng.below(4) as usize;
        txns.push(Txn {
            records: k,
            offsets: false,
            outcome: Outcome::Unknown,
        });
        // Each record to a random partition; one batch per record.
        let mut sends = Vec::new();
        for i in 0..k {
            let v = format!("T{n}-{i}-{}", "x".repeat(rng.below(200) as usize));
            let tp = match rng.below(3) {
                0 => ("a", 0),
                1 => ("a", 1),
                _ => ("b", 0),
            };
            sends.push((tp, v));
        }
        let mut tps: Vec<TopicPartition> = sends
            .iter()
            .map(|((t, p), _)| TopicPartition::new(*t, *p))
            .collect();
        tps.dedup();
        if let Err(e) = log.add_partitions_to_txn(id, *pid, *epoch, &tps) {
            if verbose {
                eprintln!("add partitions failed: {e}");
            }
            return;
        }
        for ((t, p), v) in &sends {
            let seq = seqs.entry((*t, *p)).or_insert(0);
            let batch = remote_batch(*pid, *epoch, *seq, std::slice::from_ref(v));
            if let Err(e) = log.append_transactional_batches(id, *pid, *epoch, t, *p, &batch) {
                if verbose {
                    eprintln!("append failed: {e}");
                }
                return;
            }
            *seq += 1;
        }
        if rng.below(2) == 0 {
            let o = [(
                TopicPartition::new("in", 0),
                OffsetAndMetadata::new(1 + rng.below(10)).metadata(format!("T{n}")),
            )];
            if log.add_offsets_to_txn(id, *pid, *epoch, "g").is_err()
                || log.txn_offset_commit(id, *pid, *epoch, "g", &o).is_err()
            {
                return;
            }
            txns[n].offsets = true;
        }
        let commit = rng.below(4) != 0;
        match log.end_txn(id, *pid, *epoch, commit) {
            Ok(()) if commit => txns[n].outcome = Outcome::Committed,
            Ok(()) => txns[n].outcome = Outcome::Aborted,
            Err(e) => {
                if verbose {
                    eprintln!("end failed (commit {commit}): {e}");
                }
                return;
            }
        }
    }
}

/// The committed view after the crash, checked against what was known.
fn check(log: &Log, txns: &[Txn], seed: u64) {
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for (topic, parts) in [("a", 2), ("b", 1)] {
        let Ok(cfg) = log.topic_config(topic) else {
            continue;
        };
        assert_eq!(cfg.partition_count(), parts);
        let tps: Vec<TopicPartition> = (0..parts).map(|p| TopicPartition::new(topic, p)).collect();
        let mut c = log.consumer(
            ConsumerConfig::new()
                .isolation_level(IsolationLevel::ReadCommitted)
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(100_000),
        );
        c.assign(&tps).unwrap();
        loop {
            let recs = c.poll(Duration::ZERO).unwrap();
            if recs.is_empty() {
                break;
            }
            for r in &recs {
                let v = std::str::from_utf8(r.value().unwrap()).unwrap();
                if v == "plain" {
                    continue;
                }
                let n: usize = v[1..v.find('-').unwrap()].parse().unwrap();
                if std::env::var("STREAMLOG_TXN_CUT_VERBOSE").is_ok() {
                    eprintln!("{} {} {}", r.topic(), r.partition(), &v[..v.len().min(12)]);
                }
                *seen.entry(n).or_default() += 1;
            }
        }
        // Nothing is left behind an open transaction: open decided them all.
        for tp in &tps {
            let info = log.partition_info(tp).unwrap();
            c.seek_to_end(std::slice::from_ref(tp)).unwrap();
            assert_eq!(
                c.position(tp).unwrap(),
                info.end_offset,
                "seed {seed}: {tp:?} still has an open transaction"
            );
        }
    }
    let mut last_with_offsets = None;
    for (n, t) in txns.iter().enumerate() {
        let got = seen.get(&n).copied().unwrap_or(0);
        assert!(
            got == 0 || got == t.records,
            "seed {seed}: transaction {n} is torn: {got} of {} records ({t:?})",
            t.records
        );
        match t.outcome {
            Outcome::Committed => {
                assert_eq!(
                    got, t.records,
                    "seed {seed}: committed transaction {n} lost"
                )
            }
            Outcome::Aborted => assert_eq!(got, 0, "seed {seed}: aborted transaction {n} seen"),
            Outcome::Unknown => {}
        }
        if got > 0 && t.offsets {
            last_with_offsets = Some(n);
        }
    }
    // The group's offset is the one of the last visible transaction that
    // carried offsets: never one of an invisible transaction.
    let group = log.consumer(ConsumerConfig::new().group("g"));
    let committed = group
        .committed_metadata(&TopicPartition::new("in", 0))
        .unwrap();
    let got = committed.map(|o| o.metadata_str().to_owned());
    assert_eq!(
        got,
        last_with_offsets.map(|n| format!("T{n}")),
        "seed {seed}: group offsets do not match the visible transactions"
    );
}

fn one(seed: u64, stats: &mut [u64; 4]) {
    let mut rng = Rng(seed);
    // (`Interval` is left out: it syncs by wall time, so a seed would not
    // replay the same operations.)
    let policy = match rng.below(3) {
        0 => SyncPolicy::EveryWrite,
        1 => SyncPolicy::EveryRecords(3),
        _ => SyncPolicy::OsBuffered,
    };
    let kill = rng.below(3) == 0;
    let at = 1 + rng.below(900);
    let remote = rng.below(2) == 0;
    let fs = SimFs::new((!kill).then_some(at), seed);
    if kill {
        fs.kill_after(at);
    }
    let mut txns = Vec::new();
    if let Ok(log) = open_sim(&fs, DIR, opts(policy)) {
        if remote {
            remote_workload(&log, &mut rng, &mut txns);
        } else {
            workload(&log, &mut rng, &mut txns);
        }
        drop(log);
    }
    let after = if kill {
        fs.restart(None)
    } else {
        let image = fs.image().unwrap_or_else(|| fs.cut_now());
        SimFs::from_image(&image, None, seed)
    };
    let log = open_sim(&after, Path::new(DIR), opts(policy))
        .unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"));
    let report = log.recovery_report().clone();
    if std::env::var("STREAMLOG_TXN_CUT_VERBOSE").is_ok() {
        eprintln!(
            "kill {kill} at {at} policy {policy:?} remote {remote} txns {} {report:?}",
            txns.len()
        );
    }
    stats[0] += 1;
    stats[1] += txns
        .iter()
        .filter(|t| t.outcome == Outcome::Committed)
        .count() as u64;
    stats[2] += report.transactions_committed;
    stats[3] += report.transactions_aborted;
    check(&log, &txns, seed);
    // Writable again, and the id works with a newer epoch.
    if log.topic_config("b").is_ok() {
        let mut tp = log.transactional_producer("copier").unwrap();
        let mut t = tp.begin_transaction().unwrap();
        t.send_to("b", 0, Record::new(b"T999-0")).unwrap();
        t.commit().unwrap();
    }
}

/// Regression, found by this test's remote half (seed 590): a remote
/// client's aborted transaction left its ABORT marker unsynced; the same
/// producer and epoch then committed another transaction elsewhere, and a
/// power cut that kept the aborted batch but lost its marker made recovery
/// read that later commit decision as the aborted one's.
#[test]
fn regression_an_abort_marker_lost_under_a_later_commit_of_the_same_epoch() {
    let mut stats = [0u64; 4];
    one(590, &mut stats);
}

#[test]
fn transactions_are_all_or_nothing_across_power_cuts_and_kills() {
    let mut stats = [0u64; 4];
    if let Ok(seed) = std::env::var("STREAMLOG_TXN_CUT_SEED") {
        one(seed.parse().expect("a number"), &mut stats);
        return;
    }
    let n: u64 = std::env::var("STREAMLOG_TXN_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    for seed in 0..n {
        one(seed, &mut stats);
    }
    eprintln!(
        "{} crashes; {} commits acknowledged before them; open rolled {} forward and aborted {}",
        stats[0], stats[1], stats[2], stats[3]
    );
}
