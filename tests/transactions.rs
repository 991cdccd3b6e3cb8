//! Transactions, as DESIGN.md §7 promises them: all or nothing across
//! partitions, topics and group offsets; fencing of stale handles, of
//! members that lost their partitions, and of transactions past their
//! timeout; every transaction finished by `open` after a crash.
mod common;

use std::collections::HashMap;
use std::time::Duration;

use streamlog::testing::{open_sim, SimFs};
use streamlog::{
    ConsumerConfig, Error, IsolationLevel, Log, LogOptions, ManualClock, OffsetAndMetadata,
    OffsetReset, Record, SyncPolicy, TopicConfig, TopicPartition,
};

/// Every value readable from `topic` (all partitions) under `level`.
fn read(log: &Log, topic: &str, level: IsolationLevel) -> Vec<(u32, u64, Vec<u8>)> {
    let parts = log.topic_config(topic).unwrap().partition_count();
    let tps: Vec<TopicPartition> = (0..parts).map(|p| TopicPartition::new(topic, p)).collect();
    let mut c = log.consumer(
        ConsumerConfig::new()
            .isolation_level(level)
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(100_000),
    );
    c.assign(&tps).unwrap();
    let mut out = Vec::new();
    loop {
        let recs = c.poll(Duration::ZERO).unwrap();
        if recs.is_empty() {
            break;
        }
        for r in &recs {
            out.push((
                r.partition(),
                r.offset(),
                r.value().unwrap_or_default().to_vec(),
            ));
        }
    }
    out.sort();
    out
}

fn values(v: &[(u32, u64, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = v.iter().map(|x| x.2.clone()).collect();
    out.sort();
    out
}

fn setup() -> Log {
    let log = Log::temporary().unwrap();
    log.create_topic("in", TopicConfig::new()).unwrap();
    log.create_topic("a", TopicConfig::new().partitions(2))
        .unwrap();
    log.create_topic("b", TopicConfig::new()).unwrap();
    fill_input(&log);
    log
}

/// Ten input records, so that offsets up to 10 can be committed.
fn fill_input(log: &Log) {
    let p = log.producer();
    for i in 0..10 {
        p.send("in", Record::new(format!("in{i}").as_bytes()))
            .unwrap();
    }
}

fn offsets(o: u64) -> HashMap<TopicPartition, OffsetAndMetadata> {
    HashMap::from([(TopicPartition::new("in", 0), OffsetAndMetadata::new(o))])
}

#[test]
fn a_transaction_over_three_partitions_and_offsets_is_all_or_nothing() {
    for commit in [true, false] {
        let log = setup();
        let group = log.consumer(ConsumerConfig::new().group("g"));
        let mut tp = log.transactional_producer("t1").unwrap();
        let mut txn = tp.begin_transaction().unwrap();
        txn.send_to("a", 0, Record::new(b"a0")).unwrap();
        txn.send_to("a", 1, Record::new(b"a1")).unwrap();
        txn.send("b", Record::new(b"b0")).unwrap();
        txn.send_offsets_to_transaction(&offsets(7), &group.group_metadata())
            .unwrap();
        // Before the end: committed readers see nothing, uncommitted ones
        // see the data.
        for t in ["a", "b"] {
            assert!(read(&log, t, IsolationLevel::ReadCommitted).is_empty());
        }
        assert_eq!(read(&log, "a", IsolationLevel::ReadUncommitted).len(), 2);
        assert_eq!(read(&log, "b", IsolationLevel::ReadUncommitted).len(), 1);
        // A plain send after the open transaction waits behind it too.
        log.producer().send("b", Record::new(b"plain")).unwrap();
        assert!(read(&log, "b", IsolationLevel::ReadCommitted).is_empty());
        let tp_in = TopicPartition::new("in", 0);
        assert_eq!(group.committed(&tp_in).unwrap(), None);
        if commit {
            txn.commit().unwrap();
            assert_eq!(
                values(&read(&log, "a", IsolationLevel::ReadCommitted)),
                [b"a0".to_vec(), b"a1".to_vec()]
            );
            assert_eq!(
                values(&read(&log, "b", IsolationLevel::ReadCommitted)),
                [b"b0".to_vec(), b"plain".to_vec()]
            );
            assert_eq!(group.committed(&tp_in).unwrap(), Some(7));
        } else {
            txn.abort().unwrap();
            assert!(read(&log, "a", IsolationLevel::ReadCommitted).is_empty());
            assert_eq!(
                values(&read(&log, "b", IsolationLevel::ReadCommitted)),
                [b"plain".to_vec()]
            );
            // Uncommitted readers still see aborted data, as in Kafka.
            assert_eq!(read(&log, "a", IsolationLevel::ReadUncommitted).len(), 2);
            assert_eq!(group.committed(&tp_in).unwrap(), None);
        }
        // Markers take offsets; no reader ever returns one.
        let info = log.partition_info(&TopicPartition::new("b", 0)).unwrap();
        assert_eq!(info.end_offset, 3);
    }
}

#[test]
fn dropping_a_transaction_aborts_it() {
    let log = setup();
    let mut tp = log.transactional_producer("t1").unwrap();
    {
        let mut txn = tp.begin_transaction().unwrap();
        txn.send("b", Record::new(b"gone")).unwrap();
    }
    let mut txn = tp.begin_transaction().unwrap();
    txn.send("b", Record::new(b"kept")).unwrap();
    txn.commit().unwrap();
    assert_eq!(
        values(&read(&log, "b", IsolationLevel::ReadCommitted)),
        [b"kept".to_vec()]
    );
}

#[test]
fn a_newer_handle_fences_the_older_one_and_aborts_its_transaction() {
    let log = setup();
    let mut old = log.transactional_producer("copier").unwrap();
    let old_epoch = old.epoch();
    let mut txn = old.begin_transaction().unwrap();
    txn.send("b", Record::new(b"zombie")).unwrap();
    let mut new = log.transactional_producer("copier").unwrap();
    assert!(new.epoch() > old_epoch);
    assert!(matches!(
        txn.send("b", Record::new(b"more")),
        Err(Error::ProducerFenced { .. })
    ));
    assert!(matches!(txn.commit(), Err(Error::ProducerFenced { .. })));
    assert!(matches!(
        old.begin_transaction(),
        Err(Error::ProducerFenced { .. })
    ));
    let mut t2 = new.begin_transaction().unwrap();
    t2.send("b", Record::new(b"new")).unwrap();
    t2.commit().unwrap();
    assert_eq!(
        values(&read(&log, "b", IsolationLevel::ReadCommitted)),
        [b"new".to_vec()]
    );
}

#[test]
fn a_member_that_lost_its_partition_cannot_commit_its_transaction() {
    let log = setup();
    log.create_topic("src", TopicConfig::new().partitions(2))
        .unwrap();
    let p = log.producer();
    for i in 0..4u32 {
        p.send_to("src", i % 2, Record::new(b"x")).unwrap();
    }
    let cfg = || {
        ConsumerConfig::new()
            .group("g")
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest)
    };
    let mut c1 = log.consumer(cfg());
    c1.subscribe(&["src"]).unwrap();
    c1.poll(Duration::from_millis(100)).unwrap();
    assert_eq!(c1.assignment().len(), 2);
    let meta = c1.group_metadata();
    let mut tp = log.transactional_producer("t").unwrap();
    let mut txn = tp.begin_transaction().unwrap();
    txn.send("b", Record::new(b"out")).unwrap();
    let mine = HashMap::from([(TopicPartition::new("src", 0), OffsetAndMetadata::new(2))]);
    txn.send_offsets_to_transaction(&mine, &meta).unwrap();
    // A second member joins: partitions move.
    let mut c2 = log.consumer(cfg());
    c2.subscribe(&["src"]).unwrap();
    for _ in 0..20 {
        c1.poll(Duration::from_millis(10)).unwrap();
        c2.poll(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(c1.assignment().len() + c2.assignment().len(), 2);
    let moved = !c1.assignment().contains(&TopicPartition::new("src", 0));
    if !moved {
        // The range assignor kept src-0 with c1: let c1 leave instead.
        drop(c1);
        for _ in 0..5 {
            c2.poll(Duration::from_millis(10)).unwrap();
        }
    }
    match txn.commit() {
        Err(Error::CommitFailed { group, .. }) => assert_eq!(group, "g"),
        other => panic!("expected CommitFailed, got {other:?}"),
    }
    assert!(read(&log, "b", IsolationLevel::ReadCommitted).is_empty());
    assert_eq!(c2.committed(&TopicPartition::new("src", 0)).unwrap(), None);
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_by_the_next_call() {
    let clock = ManualClock::new(1_000_000);
    let log = LogOptions::new().clock(clock.clone()).temporary().unwrap();
    log.create_topic("b", TopicConfig::new()).unwrap();
    let mut tp = log.transactional_producer("t").unwrap();
    tp.set_transaction_timeout(Duration::from_secs(10)).unwrap();
    let mut txn = tp.begin_transaction().unwrap();
    txn.send("b", Record::new(b"slow")).unwrap();
    clock.advance(Duration::from_secs(11));
    match txn.send("b", Record::new(b"late")) {
        Err(Error::TransactionTimedOut { timeout_ms, .. }) => assert_eq!(timeout_ms, 10_000),
        other => panic!("expected TransactionTimedOut, got {other:?}"),
    }
    assert!(matches!(
        txn.commit(),
        Err(Error::TransactionTimedOut { .. })
    ));
    // Nothing of it is ever visible, and the LSO moved past it.
    assert!(read(&log, "b", IsolationLevel::ReadCommitted).is_empty());
    let mut t2 = tp.begin_transaction().unwrap();
    t2.send("b", Record::new(b"next")).unwrap();
    t2.commit().unwrap();
    assert_eq!(
        values(&read(&log, "b", IsolationLevel::ReadCommitted)),
        [b"next".to_vec()]
    );
}

#[test]
fn maintain_aborts_a_transaction_past_its_timeout() {
    let clock = ManualClock::new(1_000_000);
    let log = LogOptions::new().clock(clock.clone()).temporary().unwrap();
    log.create_topic("b", TopicConfig::new()).unwrap();
    let mut tp = log.transactional_producer("t").unwrap();
    let mut txn = tp.begin_transaction().unwrap();
    txn.send("b", Record::new(b"stuck")).unwrap();
    log.producer().send("b", Record::new(b"plain")).unwrap();
    assert!(read(&log, "b", IsolationLevel::ReadCommitted).is_empty());
    clock.advance(Duration::from_secs(61));
    assert_eq!(log.maintain().unwrap().transactions_timed_out, 1);
    assert_eq!(
        values(&read(&log, "b", IsolationLevel::ReadCommitted)),
        [b"plain".to_vec()]
    );
    assert!(matches!(
        txn.commit(),
        Err(Error::TransactionTimedOut { .. })
    ));
}

#[test]
fn lag_seek_to_end_and_offsets_for_times_follow_the_isolation_level() {
    let log = setup();
    log.producer().send("b", Record::new(b"p")).unwrap();
    let mut tp = log.transactional_producer("t").unwrap();
    let mut txn = tp.begin_transaction().unwrap();
    txn.send("b", Record::new(b"t").timestamp(5_000_000_000_000))
        .unwrap();
    let b0 = TopicPartition::new("b", 0);
    for (level, end) in [
        (IsolationLevel::ReadCommitted, 1),
        (IsolationLevel::ReadUncommitted, 2),
    ] {
        let mut c = log.consumer(ConsumerConfig::new().isolation_level(level));
        c.assign(std::slice::from_ref(&b0)).unwrap();
        c.seek(&b0, 0).unwrap();
        assert_eq!(c.lag(&b0), Some(end));
        c.seek_to_end(std::slice::from_ref(&b0)).unwrap();
        assert_eq!(c.position(&b0).unwrap(), end);
        let found = c
            .offsets_for_times(&[(b0.clone(), 4_000_000_000_000)])
            .unwrap();
        assert_eq!(found[&b0], (end == 2).then_some(1));
    }
    txn.abort().unwrap();
}

#[test]
fn open_finishes_transactions_a_crash_left_open() {
    // Crash (a process kill: the page cache survives) with one transaction
    // open and one whose commit decision was durable but whose markers
    // were not all written.
    let fs = SimFs::new(None, 11);
    let opts = || LogOptions::new().sync(SyncPolicy::OsBuffered);
    {
        let log = open_sim(&fs, "/d", opts()).unwrap();
        log.create_topic("a", TopicConfig::new().partitions(2))
            .unwrap();
        log.create_topic("in", TopicConfig::new()).unwrap();
        fill_input(&log);
        let group = log.consumer(ConsumerConfig::new().group("g"));
        let mut open = log.transactional_producer("open").unwrap();
        let mut t = open.begin_transaction().unwrap();
        t.send_to("a", 0, Record::new(b"never")).unwrap();
        t.send_offsets_to_transaction(&offsets(1), &group.group_metadata())
            .unwrap();
        let mut done = log.transactional_producer("done").unwrap();
        let mut d = done.begin_transaction().unwrap();
        d.send_to("a", 1, Record::new(b"committed")).unwrap();
        d.commit().unwrap();
        fs.kill_now();
        drop(t);
        drop(log);
    }
    let fs = fs.restart(None);
    let log = open_sim(&fs, "/d", opts()).unwrap();
    let report = log.recovery_report();
    assert_eq!(report.transactions_aborted, 1, "{report:?}");
    assert_eq!(
        values(&read(&log, "a", IsolationLevel::ReadCommitted)),
        [b"committed".to_vec()]
    );
    let group = log.consumer(ConsumerConfig::new().group("g"));
    assert_eq!(
        group.committed(&TopicPartition::new("in", 0)).unwrap(),
        None
    );
    // The id works again, with a newer epoch.
    let mut again = log.transactional_producer("open").unwrap();
    let mut t = again.begin_transaction().unwrap();
    t.send_to("a", 0, Record::new(b"retry")).unwrap();
    t.send_offsets_to_transaction(&offsets(1), &group.group_metadata())
        .unwrap();
    t.commit().unwrap();
    assert_eq!(
        group.committed(&TopicPartition::new("in", 0)).unwrap(),
        Some(1)
    );
    log.close().unwrap();
    let log = open_sim(&fs, "/d", opts()).unwrap();
    let group = log.consumer(ConsumerConfig::new().group("g"));
    assert_eq!(
        group.committed(&TopicPartition::new("in", 0)).unwrap(),
        Some(1)
    );
    assert_eq!(
        values(&read(&log, "a", IsolationLevel::ReadCommitted)),
        [b"committed".to_vec(), b"retry".to_vec()]
    );
}

#[test]
fn compaction_keeps_committed_values_over_aborted_and_open_ones() {
    let log = Log::temporary().unwrap();
    log.create_topic(
        "c",
        TopicConfig::new()
            .segment_bytes(1024)
            .cleanup_policy(streamlog::CleanupPolicy::Compact)
            .min_cleanable_dirty_ratio(0.0),
    )
    .unwrap();
    let mut tp = log.transactional_producer("t").unwrap();
    let mut put = |v: &str, commit: bool| {
        let mut txn = tp.begin_transaction().unwrap();
        txn.send("c", Record::new(v.as_bytes()).key(b"k")).unwrap();
        txn.send("c", Record::new(&[b'-'; 400][..]).key(b"filler"))
            .unwrap();
        if commit {
            txn.commit().unwrap();
        } else {
            txn.abort().unwrap();
        }
    };
    put("v1", true);
    put("v2-aborted", false);
    put("v3", true);
    put("v4-aborted", false);
    // An open transaction with a newer value, then plain records to roll.
    let mut open = log.transactional_producer("o").unwrap();
    let mut txn = open.begin_transaction().unwrap();
    txn.send("c", Record::new(b"v5-open").key(b"k")).unwrap();
    let p = log.producer();
    for i in 0..6 {
        p.send(
            "c",
            Record::new(&[b'.'; 400][..]).key(format!("p{i}").as_bytes()),
        )
        .unwrap();
    }
    log.compact("c").unwrap();
    txn.abort().unwrap();
    log.compact("c").unwrap();
    let got = read(&log, "c", IsolationLevel::ReadCommitted);
    let ks: Vec<&[u8]> = got
        .iter()
        .map(|(_, _, v)| &v[..])
        .filter(|v| v.starts_with(b"v"))
        .collect();
    assert_eq!(ks, [&b"v3"[..]], "{} records read", got.len());
    // Aborted values are gone even for uncommitted readers once cleaned.
    let all = read(&log, "c", IsolationLevel::ReadUncommitted);
    assert!(!all
        .iter()
        .any(|(_, _, v)| v.starts_with(b"v2") || v.starts_with(b"v4")));
}

#[test]
fn retention_never_moves_the_lso_backwards_and_keeps_producer_state() {
    let dir = common::TestDir::new("txn-retention");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic(
            "r",
            TopicConfig::new().segment_bytes(1024).retention_bytes(1500),
        )
        .unwrap();
        let mut tp = log.transactional_producer("t").unwrap();
        let mut txn = tp.begin_transaction().unwrap();
        txn.send("r", Record::new(&[b'x'; 300][..])).unwrap();
        let p = log.producer();
        for _ in 0..12 {
            p.send("r", Record::new(&[b'y'; 300][..])).unwrap();
        }
        let rp = TopicPartition::new("r", 0);
        let mut last = 0;
        for _ in 0..3 {
            log.maintain().unwrap();
            let mut c = log.consumer(ConsumerConfig::new());
            c.assign(std::slice::from_ref(&rp)).unwrap();
            c.seek_to_end(std::slice::from_ref(&rp)).unwrap();
            let lso = c.position(&rp).unwrap();
            assert!(lso >= last);
            last = lso;
        }
        // Retention deleted the open transaction's first segment: the LSO is
        // the log start now, and committing still works.
        let start = log.partition_info(&rp).unwrap().start_offset;
        assert!(start > 0);
        assert_eq!(last, start);
        txn.commit().unwrap();
        log.close().unwrap();
    }
    let log = Log::open(dir.path()).unwrap();
    let mut tp = log.transactional_producer("t").unwrap();
    let mut txn = tp.begin_transaction().unwrap();
    txn.send("r", Record::new(b"after")).unwrap();
    txn.commit().unwrap();
}

/// DESIGN.md §7's contract, call for call: code outside this repository
/// compiles against these names and shapes.
#[test]
fn the_design_contract_compiles_and_runs() -> Result<(), Error> {
    use streamlog::{IsolationLevel, OffsetAndMetadata, Record, TopicPartition};
    let log = Log::temporary()?;
    log.create_topic("out", TopicConfig::new().partitions(2))?;
    log.create_topic("in", TopicConfig::new())?;
    fill_input(&log);
    let consumer = log.consumer(ConsumerConfig::new().group("g"));
    let mut tp = log.transactional_producer("copier-1")?;
    let mut txn = tp.begin_transaction()?;
    txn.send("out", Record::new(b"x").key(b"k"))?;
    txn.send_to("out", 1, Record::new(b"y"))?;
    let mut offsets = HashMap::new();
    offsets.insert(TopicPartition::new("in", 0), OffsetAndMetadata::new(4));
    txn.send_offsets_to_transaction(&offsets, &consumer.group_metadata())?;
    txn.commit()?;
    let c = log.consumer(ConsumerConfig::new().isolation_level(IsolationLevel::ReadCommitted));
    drop(c);
    let mut again = log.transactional_producer("copier-1")?;
    let txn = again.begin_transaction()?;
    txn.abort()?;
    assert!(matches!(
        tp.begin_transaction(),
        Err(Error::ProducerFenced { .. })
    ));
    assert_eq!(consumer.committed(&TopicPartition::new("in", 0))?, Some(4));
    Ok(())
}
