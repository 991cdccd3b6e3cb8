//! Consumer groups: assignment, ownership, commits, rebalances, fencing.
mod common;

use common::TestDir;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use streamlog::{
    Assignor, Consumer, ConsumerConfig, Error, Log, LogOptions, ManualClock, OffsetAndMetadata,
    OffsetReset, RebalanceListener, Record, TopicConfig, TopicPartition,
};

fn member(log: &Log, assignor: Assignor) -> Consumer {
    member_with(log, assignor, 100_000)
}

fn member_with(log: &Log, assignor: Assignor, max_poll_records: usize) -> Consumer {
    let mut c = log.consumer(
        ConsumerConfig::new()
            .group("g")
            .auto_offset_reset(OffsetReset::Earliest)
            .assignor(assignor)
            .enable_auto_commit(false)
            .max_poll_records(max_poll_records),
    );
    c.subscribe(&["t"]).unwrap();
    c
}

/// Polls every member (without reading anything) until the assignment stops
/// changing. Only call before records exist.
fn settle(members: &mut [&mut Consumer]) {
    for _ in 0..10 {
        for m in members.iter_mut() {
            assert!(m.poll(Duration::ZERO).unwrap().is_empty());
        }
    }
}

fn owned(c: &Consumer) -> BTreeSet<TopicPartition> {
    c.assignment().into_iter().collect()
}

#[test]
fn three_members_on_six_partitions_get_two_each() {
    for assignor in [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::CooperativeSticky,
    ] {
        let log = Log::temporary().unwrap();
        log.create_topic("t", TopicConfig::new().partitions(6))
            .unwrap();
        let (mut a, mut b, mut c) = (
            member(&log, assignor),
            member(&log, assignor),
            member(&log, assignor),
        );
        settle(&mut [&mut a, &mut b, &mut c]);
        let sets = [owned(&a), owned(&b), owned(&c)];
        assert!(sets.iter().all(|s| s.len() == 2), "{assignor:?}: {sets:?}");
        let all: BTreeSet<_> = sets.iter().flatten().cloned().collect();
        assert_eq!(all.len(), 6, "{assignor:?}: disjoint and covering");
    }
}

#[test]
fn ten_thousand_keyed_records_are_each_consumed_once() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(6))
        .unwrap();
    let mut ms = [
        member(&log, Assignor::Range),
        member(&log, Assignor::Range),
        member(&log, Assignor::Range),
    ];
    {
        let [a, b, c] = &mut ms;
        settle(&mut [a, b, c]);
    }
    let p = log.producer();
    for i in 0..10_000u32 {
        p.send(
            "t",
            Record::new(i.to_le_bytes().to_vec()).key(format!("key-{}", i % 997).into_bytes()),
        )
        .unwrap();
    }
    let mut seen = vec![0u8; 10_000];
    let mut total = 0;
    while total < 10_000 {
        let before = total;
        for m in ms.iter_mut() {
            for r in &m.poll(Duration::ZERO).unwrap() {
                let i = u32::from_le_bytes(r.value().unwrap().try_into().unwrap());
                seen[i as usize] += 1;
                total += 1;
            }
            m.commit().unwrap();
        }
        assert!(total > before, "no progress");
    }
    assert!(seen.iter().all(|&n| n == 1));
}

#[test]
fn a_dropped_members_partitions_move_and_resume_from_its_last_commit() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(4))
        .unwrap();
    let (mut a, mut b) = (
        member(&log, Assignor::CooperativeSticky),
        member(&log, Assignor::CooperativeSticky),
    );
    settle(&mut [&mut a, &mut b]);
    let b_parts = owned(&b);
    assert_eq!(b_parts.len(), 2);
    let p = log.producer();
    for i in 0..400u32 {
        p.send_to("t", i % 4, Record::new(i.to_le_bytes().to_vec()))
            .unwrap();
    }
    // B reads everything, commits only what it read first, reads more, and
    // is dropped without committing again.
    let first = b.poll(Duration::ZERO).unwrap().len();
    assert_eq!(first, 200);
    let committed: HashMap<TopicPartition, u64> = b_parts
        .iter()
        .map(|tp| (tp.clone(), b.position(tp).unwrap() - 30))
        .collect();
    b.commit_offsets(
        &committed
            .iter()
            .map(|(tp, &o)| (tp.clone(), OffsetAndMetadata::new(o)))
            .collect(),
    )
    .unwrap();
    drop(b);
    // A takes over and starts exactly at B's commits.
    let mut firsts: HashMap<TopicPartition, u64> = HashMap::new();
    for _ in 0..5 {
        for r in &a.poll(Duration::ZERO).unwrap() {
            firsts
                .entry(TopicPartition::new(r.topic(), r.partition()))
                .or_insert(r.offset());
        }
    }
    assert_eq!(owned(&a).len(), 4);
    for (tp, off) in &committed {
        assert_eq!(firsts.get(tp), Some(off), "{tp} resumes at the last commit");
    }
}

#[test]
fn a_reopened_log_resumes_groups_from_their_commits() {
    let dir = TestDir::new("group-reopen");
    let mut expected = Vec::new();
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().partitions(3))
            .unwrap();
        let p = log.producer();
        for i in 0..300u32 {
            p.send_to("t", i % 3, Record::new(i.to_le_bytes().to_vec()))
                .unwrap();
        }
        let mut c = member(&log, Assignor::Range);
        let mut read = 0;
        while read < 150 {
            read += c.poll(Duration::ZERO).unwrap().len();
        }
        c.commit().unwrap();
        let tp = TopicPartition::new("t", 1);
        c.commit_offsets(
            &[(tp.clone(), OffsetAndMetadata::new(42).metadata("note"))]
                .into_iter()
                .collect(),
        )
        .unwrap();
        for p in 0..3 {
            let tp = TopicPartition::new("t", p);
            expected.push((tp.clone(), c.committed(&tp).unwrap()));
        }
        assert_eq!(c.committed(&tp).unwrap(), Some(42));
        drop(c);
        drop(log);
    }
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.topics(), vec!["t"], "the offsets topic stays hidden");
    let mut c = member(&log, Assignor::Range);
    for (tp, off) in &expected {
        assert_eq!(&c.committed(tp).unwrap(), off);
    }
    assert_eq!(
        c.committed_metadata(&TopicPartition::new("t", 1))
            .unwrap()
            .unwrap()
            .metadata_str(),
        "note"
    );
    let recs = c.poll(Duration::ZERO).unwrap();
    let mut firsts = HashMap::new();
    for r in &recs {
        firsts.entry(r.partition()).or_insert(r.offset());
    }
    for (tp, off) in &expected {
        // A fully consumed partition has nothing left to return.
        let want = off.filter(|&o| o < 100);
        assert_eq!(firsts.get(&tp.partition).copied(), want, "{tp}");
    }
}

#[test]
fn latest_reset_skips_existing_records_and_seek_to_end_and_lag_agree() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    for _ in 0..10 {
        p.send("t", Record::new(b"old")).unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(
        ConsumerConfig::new()
            .group("fresh")
            .auto_offset_reset(OffsetReset::Latest),
    );
    c.subscribe(&["t"]).unwrap();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    assert_eq!(c.position(&tp).unwrap(), 10);
    assert_eq!(c.lag(&tp), Some(0));
    p.send("t", Record::new(b"new")).unwrap();
    assert_eq!(c.lag(&tp), Some(1));
    let recs = c.poll(Duration::ZERO).unwrap();
    assert_eq!(
        recs.iter()
            .map(|r| r.value().unwrap().to_vec())
            .collect::<Vec<_>>(),
        vec![b"new".to_vec()]
    );
    c.seek(&tp, 3).unwrap();
    assert_eq!(c.lag(&tp), Some(8));
    c.seek_to_end(std::slice::from_ref(&tp)).unwrap();
    assert_eq!((c.position(&tp).unwrap(), c.lag(&tp)), (11, Some(0)));
}

#[test]
fn a_silent_member_is_evicted_and_its_commit_fails() {
    let clock = ManualClock::new(1_000_000);
    let log = LogOptions::new().clock(clock.clone()).temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(4))
        .unwrap();
    let cfg = ConsumerConfig::new()
        .group("g")
        .auto_offset_reset(OffsetReset::Earliest)
        .max_poll_interval(Duration::from_secs(10))
        .enable_auto_commit(false);
    let mut a = log.consumer(cfg.clone());
    let mut b = log.consumer(cfg);
    a.subscribe(&["t"]).unwrap();
    b.subscribe(&["t"]).unwrap();
    settle(&mut [&mut a, &mut b]);
    let p = log.producer();
    for i in 0..40u32 {
        p.send_to("t", i % 4, Record::new(b"x")).unwrap();
    }
    assert_eq!(b.poll(Duration::ZERO).unwrap().len(), 20);
    // B goes quiet past its max poll interval; A's next call evicts it.
    clock.advance(Duration::from_secs(11));
    a.poll(Duration::ZERO).unwrap();
    a.poll(Duration::ZERO).unwrap();
    assert_eq!(owned(&a).len(), 4);
    match b.commit() {
        Err(Error::CommitFailed { group, .. }) => assert_eq!(group, "g"),
        other => panic!("expected CommitFailed, got {other:?}"),
    }
    // Nothing of B's was written.
    for tp in owned(&a) {
        assert_eq!(a.committed(&tp).unwrap(), None);
    }
    // B rejoins on its next poll.
    for _ in 0..5 {
        a.poll(Duration::ZERO).unwrap();
        b.poll(Duration::ZERO).unwrap();
    }
    assert_eq!((owned(&a).len(), owned(&b).len()), (2, 2));
}

#[test]
fn cooperative_sticky_moves_the_minimum_when_a_fourth_member_joins() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(12))
        .unwrap();
    let mut ms = vec![
        member(&log, Assignor::CooperativeSticky),
        member(&log, Assignor::CooperativeSticky),
        member(&log, Assignor::CooperativeSticky),
    ];
    {
        let mut refs: Vec<&mut Consumer> = ms.iter_mut().collect();
        settle(&mut refs);
    }
    let before: Vec<_> = ms.iter().map(owned).collect();
    assert!(before.iter().all(|s| s.len() == 4));
    ms.push(member(&log, Assignor::CooperativeSticky));
    {
        let mut refs: Vec<&mut Consumer> = ms.iter_mut().collect();
        settle(&mut refs);
    }
    let after: Vec<_> = ms.iter().map(owned).collect();
    assert!(after.iter().all(|s| s.len() == 3), "{after:?}");
    let moved: usize = before
        .iter()
        .zip(&after)
        .map(|(b, a)| b.difference(a).count())
        .sum();
    assert_eq!(moved, 3);
    // The old members kept 3 of their own partitions each.
    for (b, a) in before.iter().zip(&after) {
        assert!(a.is_subset(b));
    }
}

type Events = Arc<Mutex<Vec<String>>>;

struct Recorder(&'static str, Events);

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        consumer.commit().unwrap();
        for tp in partitions {
            self.1
                .lock()
                .unwrap()
                .push(format!("revoked {} {tp}", self.0));
        }
    }
}

#[test]
fn a_revocation_is_delivered_before_the_new_owners_first_record() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(4))
        .unwrap();
    let events: Events = Arc::default();
    let mut a = member_with(&log, Assignor::CooperativeSticky, 50);
    a.set_rebalance_listener(Recorder("a", events.clone()));
    settle(&mut [&mut a]);
    let p = log.producer();
    for i in 0..4000u32 {
        p.send_to("t", i % 4, Record::new(i.to_le_bytes().to_vec()))
            .unwrap();
    }
    // A is mid-way through its partitions when B joins in another thread.
    let mut a_seen: HashMap<TopicPartition, u64> = HashMap::new();
    let first = a.poll(Duration::ZERO).unwrap();
    assert!(!first.is_empty());
    for r in &first {
        a_seen.insert(TopicPartition::new(r.topic(), r.partition()), r.offset());
    }
    drop(first);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log_b = log.clone();
    let ev_b = events.clone();
    let stop_b = stop.clone();
    let tb = std::thread::spawn(move || {
        let mut b = member(&log_b, Assignor::CooperativeSticky);
        let mut seen = BTreeSet::new();
        while !stop_b.load(std::sync::atomic::Ordering::SeqCst) {
            for r in &b.poll(Duration::from_millis(20)).unwrap() {
                let tp = TopicPartition::new(r.topic(), r.partition());
                if seen.insert(tp.clone()) {
                    ev_b.lock()
                        .unwrap()
                        .push(format!("first b {tp} {}", r.offset()));
                }
            }
            b.commit().unwrap();
        }
        seen
    });
    for _ in 0..200 {
        for r in &a.poll(Duration::from_millis(5)).unwrap() {
            a_seen.insert(TopicPartition::new(r.topic(), r.partition()), r.offset());
        }
        if owned(&a).len() == 2 {
            break;
        }
    }
    // Wait (with a generous bound, not a timing assertion) until B has read
    // from both partitions it took over.
    for _ in 0..3000 {
        if events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.starts_with("first b"))
            .count()
            >= 2
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let b_seen = tb.join().unwrap();
    assert_eq!(
        owned(&a).len(),
        2,
        "A gave up two partitions: {:?}",
        events.lock().unwrap()
    );
    assert!(!b_seen.is_empty(), "B got records");
    let ev = events.lock().unwrap().clone();
    for tp in &b_seen {
        let first_b = ev
            .iter()
            .position(|e| e.starts_with(&format!("first b {tp} ")))
            .unwrap();
        let revoked = ev
            .iter()
            .position(|e| e == &format!("revoked a {tp}"))
            .expect("revocation delivered");
        assert!(revoked < first_b, "{ev:?}");
        // And B started right after what A had processed and committed.
        let off: u64 = ev[first_b].rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(off, a_seen.get(tp).map_or(0, |o| o + 1), "{tp}");
    }
}

#[test]
fn a_blocked_group_poll_wakes_for_new_records() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(2))
        .unwrap();
    let mut c = member(&log, Assignor::Range);
    settle(&mut [&mut c]);
    let p = log.producer();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        p.send_to("t", 1, Record::new(b"hello")).unwrap();
    });
    let recs = c.poll(Duration::from_secs(30)).unwrap();
    t.join().unwrap();
    assert_eq!(recs.get(0).unwrap().value(), Some(&b"hello"[..]));
}

#[test]
fn offsets_for_times_in_a_group() {
    let clock = ManualClock::new(1000);
    let log = LogOptions::new().clock(clock.clone()).temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    for _ in 0..10 {
        p.send("t", Record::new(b"x")).unwrap();
        clock.advance(Duration::from_millis(100));
    }
    let c = member(&log, Assignor::Range);
    let tp = TopicPartition::new("t", 0);
    let m = c
        .offsets_for_times(&[(tp.clone(), 1250), (tp.clone(), 1000)])
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        c.offsets_for_times(&[(tp.clone(), 1250)]).unwrap()[&tp],
        Some(3)
    );
    assert_eq!(
        c.offsets_for_times(&[(tp.clone(), 99_999)]).unwrap()[&tp],
        None
    );
}

#[test]
fn auto_commit_runs_inside_poll_and_close() {
    let clock = ManualClock::new(0);
    let log = LogOptions::new().clock(clock.clone()).temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    for _ in 0..5 {
        p.send("t", Record::new(b"x")).unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let cfg = ConsumerConfig::new()
        .group("auto")
        .auto_offset_reset(OffsetReset::Earliest)
        .auto_commit_interval(Duration::from_secs(5));
    let mut c = log.consumer(cfg.clone());
    c.subscribe(&["t"]).unwrap();
    assert_eq!(c.poll(Duration::ZERO).unwrap().len(), 5);
    assert_eq!(c.committed(&tp).unwrap(), None);
    clock.advance(Duration::from_secs(6));
    c.poll(Duration::ZERO).unwrap();
    assert_eq!(c.committed(&tp).unwrap(), Some(5));
    p.send("t", Record::new(b"y")).unwrap();
    assert_eq!(c.poll(Duration::ZERO).unwrap().len(), 1);
    c.close().unwrap();
    let c2 = log.consumer(cfg);
    assert_eq!(c2.committed(&tp).unwrap(), Some(6));
}

#[test]
fn a_group_rebalances_when_a_subscribed_topic_gains_partitions() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(2))
        .unwrap();
    let (mut a, mut b) = (
        member(&log, Assignor::CooperativeSticky),
        member(&log, Assignor::CooperativeSticky),
    );
    settle(&mut [&mut a, &mut b]);
    assert_eq!((owned(&a).len(), owned(&b).len()), (1, 1));
    log.create_partitions("t", 6).unwrap();
    settle(&mut [&mut a, &mut b]);
    assert_eq!((owned(&a).len(), owned(&b).len()), (3, 3));
    log.producer()
        .send_to("t", 5, Record::new(b"new partition"))
        .unwrap();
    let got = a.poll(Duration::ZERO).unwrap().len() + b.poll(Duration::ZERO).unwrap().len();
    assert_eq!(got, 1);
}

#[test]
fn subscribing_to_a_topic_created_later_picks_it_up() {
    let log = Log::temporary().unwrap();
    let mut c = log.consumer(
        ConsumerConfig::new()
            .group("g")
            .auto_offset_reset(OffsetReset::Earliest),
    );
    c.subscribe(&["later"]).unwrap();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    log.create_topic("later", TopicConfig::new().partitions(2))
        .unwrap();
    log.producer()
        .send_to("later", 1, Record::new(b"x"))
        .unwrap();
    let mut n = 0;
    for _ in 0..3 {
        n += c.poll(Duration::ZERO).unwrap().len();
    }
    assert_eq!(n, 1);
    assert_eq!(c.assignment().len(), 2);
}

#[test]
fn a_commit_makes_the_records_it_covers_durable_first() {
    let dir = TestDir::new("commit-durable");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    for _ in 0..10 {
        p.send("t", Record::new(b"x")).unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    assert_eq!(
        log.partition_info(&tp).unwrap().durable_offset,
        0,
        "OsBuffered: nothing synced yet"
    );
    let mut c = member(&log, Assignor::Range);
    assert_eq!(c.poll(Duration::ZERO).unwrap().len(), 10);
    c.commit().unwrap();
    // After a power cut the committed offset can never exceed the end.
    assert_eq!(log.partition_info(&tp).unwrap().durable_offset, 10);
}
