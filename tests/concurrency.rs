//! Concurrent producers, group commit, and blocking polls.
mod common;

use common::{read_all, TestDir};
use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;
use streamlog::{
    ConsumerConfig, Log, LogOptions, OffsetReset, Record, SyncPolicy, TopicConfig, TopicPartition,
};

#[test]
fn eight_threads_produce_dense_unique_offsets() {
    let dir = TestDir::new("threads");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic(
        "t",
        TopicConfig::new().partitions(3).segment_bytes(16 << 10),
    )
    .unwrap();
    let start = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8u32)
        .map(|t| {
            let p = log.producer();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                let mut acked = Vec::new();
                for i in 0..500u32 {
                    let v = format!("{t}:{i}").into_bytes();
                    let md = if i % 10 == 0 {
                        let recs = (0..5)
                            .map(|j| Record::new(format!("{t}:{i}:{j}").into_bytes()))
                            .collect();
                        let mds = p.send_batch("t", recs).unwrap();
                        mds[0].clone()
                    } else {
                        p.send("t", Record::new(v).key(format!("k{i}").into_bytes()))
                            .unwrap()
                    };
                    acked.push((md.partition(), md.offset()));
                }
                acked
            })
        })
        .collect();
    let mut acked = HashSet::new();
    for h in handles {
        for a in h.join().unwrap() {
            assert!(acked.insert(a), "offset {a:?} acknowledged twice");
        }
    }
    let mut total = 0;
    for part in 0..3 {
        let got = read_all(&log, "t", part, 0);
        for (i, (off, _)) in got.iter().enumerate() {
            assert_eq!(*off, i as u64, "offsets are dense");
        }
        total += got.len();
    }
    assert_eq!(total, 8 * (450 + 50 * 5));
}

#[test]
fn every_write_shares_fsyncs_between_concurrent_senders() {
    let dir = TestDir::new("group-commit");
    let log = LogOptions::new()
        .sync(SyncPolicy::EveryWrite)
        .open(dir.path())
        .unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let threads = 8;
    let per_thread = 100;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let p = log.producer();
            let log = log.clone();
            let tp = tp.clone();
            thread::spawn(move || {
                for _ in 0..per_thread {
                    let md = p.send("t", Record::new(b"durable")).unwrap();
                    // Acknowledged means durable under EveryWrite.
                    assert!(log.partition_info(&tp).unwrap().durable_offset > md.offset());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let m = log.metrics();
    let sends = (threads * per_thread) as u64;
    assert_eq!(m.records_appended, sends);
    assert!(m.fsyncs <= sends);
    assert!(
        m.fsyncs < sends,
        "8 concurrent senders never shared an fsync ({} for {sends})",
        m.fsyncs
    );
}

#[test]
fn sync_policies_sync_when_they_promise() {
    let dir = TestDir::new("policies");
    let tp = TopicPartition::new("t", 0);
    {
        let log = LogOptions::new()
            .sync(SyncPolicy::EveryRecords(10))
            .open(dir.join("n"))
            .unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        let p = log.producer();
        for _ in 0..25 {
            p.send("t", Record::new(b"x")).unwrap();
        }
        assert_eq!(log.metrics().fsyncs, 2);
        assert_eq!(log.partition_info(&tp).unwrap().durable_offset, 20);
        p.flush().unwrap();
        assert_eq!(log.partition_info(&tp).unwrap().durable_offset, 25);
    }
    {
        let log = LogOptions::new()
            .sync(SyncPolicy::OsBuffered)
            .open(dir.join("os"))
            .unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        for _ in 0..5 {
            log.producer().send("t", Record::new(b"x")).unwrap();
        }
        assert_eq!(log.metrics().fsyncs, 0);
        assert_eq!(log.partition_info(&tp).unwrap().durable_offset, 0);
        log.flush().unwrap();
        assert_eq!(log.partition_info(&tp).unwrap().durable_offset, 5);
    }
    {
        let log = LogOptions::new()
            .sync(SyncPolicy::Interval(Duration::ZERO))
            .open(dir.join("iv"))
            .unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        log.producer().send("t", Record::new(b"x")).unwrap();
        assert_eq!(log.partition_info(&tp).unwrap().durable_offset, 1);
        let log2 = LogOptions::new()
            .sync(SyncPolicy::Interval(Duration::from_secs(3600)))
            .open(dir.join("iv2"))
            .unwrap();
        log2.create_topic("t", TopicConfig::new()).unwrap();
        log2.producer().send("t", Record::new(b"x")).unwrap();
        assert_eq!(log2.partition_info(&tp).unwrap().durable_offset, 0);
    }
}

#[test]
fn a_blocked_poll_returns_what_another_thread_sends() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(4))
        .unwrap();
    let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Latest));
    c.assign(
        &(0..4)
            .map(|p| TopicPartition::new("t", p))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for p in 0..4 {
        c.position(&TopicPartition::new("t", p)).unwrap();
    }
    let p = log.producer();
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        p.send_to("t", 3, Record::new(b"wake up")).unwrap();
    });
    // A generous timeout: the test checks that the data arrives, not how
    // fast (that is a benchmark).
    let recs = c.poll(Duration::from_secs(30)).unwrap();
    sender.join().unwrap();
    assert_eq!(recs.len(), 1);
    let r = recs.get(0).unwrap();
    assert_eq!(
        (r.partition(), r.offset(), r.value()),
        (3, 0, Some(&b"wake up"[..]))
    );
}

#[test]
fn a_poll_with_nothing_to_read_waits_for_its_timeout_and_returns_empty() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let mut c = log.consumer(ConsumerConfig::new());
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    assert!(c.poll(Duration::from_millis(20)).unwrap().is_empty());
}

#[test]
fn fetch_min_bytes_waits_for_enough_data() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .fetch_min_bytes(1000),
    );
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let p = log.producer();
    p.send("t", Record::new(vec![0u8; 100])).unwrap();
    let sender = thread::spawn(move || {
        for _ in 0..10 {
            thread::sleep(Duration::from_millis(5));
            p.send("t", Record::new(vec![0u8; 100])).unwrap();
        }
    });
    let recs = c.poll(Duration::from_secs(30)).unwrap();
    sender.join().unwrap();
    assert!(
        recs.len() >= 6,
        "returned {} records before 1000 bytes were there",
        recs.len()
    );
    // At the timeout whatever is there is returned, even below the minimum.
    let mut c2 = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .fetch_min_bytes(1 << 30),
    );
    c2.assign(&[tp]).unwrap();
    assert_eq!(c2.poll(Duration::from_millis(10)).unwrap().len(), 11);
}

/// A consumer that busy-waits between records (records arriving faster than
/// `max_spin`) still sees every record once, in order, and a spin never
/// outlives the poll's timeout.
#[test]
fn a_spinning_consumer_sees_every_record_in_order() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let n = 5_000u64;
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false)
            .max_spin(Duration::from_secs(3600)),
    );
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let p = log.producer();
    let sender = thread::spawn(move || {
        for i in 0..n {
            p.send("t", Record::new(&i.to_le_bytes()[..])).unwrap();
            if i % 100 == 0 {
                thread::yield_now();
            }
        }
    });
    let mut next = 0u64;
    while next < n {
        for r in &c.poll(Duration::from_secs(10)).unwrap() {
            assert_eq!(r.offset(), next);
            assert_eq!(r.value().unwrap(), &next.to_le_bytes()[..]);
            next += 1;
        }
    }
    sender.join().unwrap();
    // Records came fast, so the consumer is in spinning mode; on a now idle
    // partition the hour-long spin is cut short by the poll's timeout.
    assert!(c.poll(Duration::from_millis(5)).unwrap().is_empty());
}
