//! Reopening a log preserves every record, cleanly closed or not.
mod common;

use common::{read_all, TestDir};
use std::time::Duration;
use streamlog::{
    ConsumerConfig, Log, LogOptions, ManualClock, OffsetReset, Record, TopicConfig, TopicPartition,
};

#[test]
fn clean_close_and_reopen_preserves_everything() {
    let dir = TestDir::new("clean");
    let clock = ManualClock::new(1_700_000_000_000);
    {
        let log = LogOptions::new()
            .clock(clock.clone())
            .open(dir.path())
            .unwrap();
        log.create_topic("t", TopicConfig::new().partitions(2))
            .unwrap();
        let p = log.producer();
        for i in 0..100u32 {
            clock.advance(Duration::from_millis(1));
            let mut r = Record::new(format!("value-{i}").into_bytes())
                .header("i", i.to_le_bytes().to_vec());
            if i % 3 != 0 {
                r = r.key(format!("key-{i}").into_bytes());
            }
            if i % 10 == 0 {
                r = r.timestamp(42 + i as i64);
            }
            p.send_to("t", i % 2, r).unwrap();
        }
        p.send_to("t", 0, Record::tombstone(b"gone")).unwrap();
        p.send_to("t", 1, Record::new(b"")).unwrap();
        log.close().unwrap();
    }
    let log = Log::open(dir.path()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.topics(), vec!["t"]);
    for part in 0..2u32 {
        let tp = TopicPartition::new("t", part);
        let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
        c.assign(std::slice::from_ref(&tp)).unwrap();
        let recs = c.poll(Duration::from_secs(1)).unwrap();
        assert_eq!(recs.len(), 51);
        for (n, r) in recs.iter().enumerate() {
            assert_eq!(r.offset(), n as u64);
            assert_eq!((r.topic(), r.partition()), ("t", part));
            if n == 50 {
                if part == 0 {
                    assert_eq!((r.key(), r.value()), (Some(&b"gone"[..]), None));
                } else {
                    assert_eq!((r.key(), r.value()), (None, Some(&b""[..])));
                }
                continue;
            }
            let i = n as u32 * 2 + part;
            assert_eq!(r.value(), Some(format!("value-{i}").as_bytes()));
            let key = format!("key-{i}");
            assert_eq!(
                r.key(),
                if !i.is_multiple_of(3) {
                    Some(key.as_bytes())
                } else {
                    None
                }
            );
            let ts = if i.is_multiple_of(10) {
                42 + i as i64
            } else {
                1_700_000_000_001 + i as i64
            };
            assert_eq!(r.timestamp(), ts);
            assert_eq!(
                r.headers().collect::<Vec<_>>(),
                vec![("i", &i.to_le_bytes()[..])]
            );
        }
    }
}

#[test]
fn drop_without_close_preserves_acknowledged_records() {
    let dir = TestDir::new("drop");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().segment_bytes(4096))
            .unwrap();
        let p = log.producer();
        for i in 0..500u32 {
            p.send("t", Record::new(i.to_be_bytes().to_vec())).unwrap();
        }
        drop(p);
        drop(log);
    }
    let log = Log::open(dir.path()).unwrap();
    let got = read_all(&log, "t", 0, 0);
    assert_eq!(got.len(), 500);
    for (i, (off, v)) in got.iter().enumerate() {
        assert_eq!(*off, i as u64);
        assert_eq!(v, &(i as u32).to_be_bytes());
    }
    assert_eq!(
        log.producer()
            .send("t", Record::new(b"next"))
            .unwrap()
            .offset(),
        500
    );
}

#[test]
fn a_key_maps_to_the_same_partition_across_reopens() {
    let dir = TestDir::new("keys");
    let keys: Vec<String> = (0..50).map(|i| format!("customer-{i}")).collect();
    let first: Vec<u32> = {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().partitions(7))
            .unwrap();
        let p = log.producer();
        keys.iter()
            .map(|k| {
                p.send("t", Record::new(b"v").key(k.as_bytes()))
                    .unwrap()
                    .partition()
            })
            .collect()
    };
    let log = Log::open(dir.path()).unwrap();
    let p = log.producer();
    for (k, &part) in keys.iter().zip(&first) {
        assert_eq!(
            p.send("t", Record::new(b"v").key(k.as_bytes()))
                .unwrap()
                .partition(),
            part
        );
    }
    // The keys spread over more than one partition.
    assert!(first.iter().any(|&p| p != first[0]));
}
