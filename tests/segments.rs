//! Segment rolls, reads across segments, timestamp seeks and zstd batches.
mod common;

use common::{read_all, segment_files, TestDir};
use std::time::Duration;
use streamlog::{
    Compression, ConsumerConfig, Log, LogOptions, ManualClock, OffsetReset, Record, TopicConfig,
    TopicPartition,
};

#[test]
fn size_rolls_make_several_segments_and_reads_span_them() {
    let dir = TestDir::new("roll");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .segment_bytes(2048)
            .index_interval_bytes(256),
    )
    .unwrap();
    let p = log.producer();
    for i in 0..1000u32 {
        p.send(
            "t",
            Record::new(format!("record number {i:05}").into_bytes()),
        )
        .unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let info = log.partition_info(&tp).unwrap();
    assert!(info.segments > 10, "{info:?}");
    assert_eq!(segment_files(&dir.join("t-0"), "log").len(), info.segments);
    for from in [0u64, 1, 37, 500, 998, 999] {
        let got = read_all(&log, "t", 0, from);
        assert_eq!(got.len() as u64, 1000 - from);
        for (n, (off, v)) in got.iter().enumerate() {
            assert_eq!(*off, from + n as u64);
            assert_eq!(v, format!("record number {off:05}").as_bytes());
        }
    }
    // And after a clean reopen, through the sealed segments' indexes.
    log.close().unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(read_all(&log, "t", 0, 777).len(), 223);
    assert!(
        log.recovery_report().indexes_rebuilt.is_empty(),
        "{:?}",
        log.recovery_report()
    );
}

#[test]
fn age_rolls_follow_the_injected_clock() {
    let clock = ManualClock::new(0);
    let log = LogOptions::new().clock(clock.clone()).temporary().unwrap();
    log.create_topic("t", TopicConfig::new().segment_age(Duration::from_secs(60)))
        .unwrap();
    let p = log.producer();
    p.send("t", Record::new(b"a")).unwrap();
    clock.advance(Duration::from_secs(30));
    p.send("t", Record::new(b"b")).unwrap();
    let tp = TopicPartition::new("t", 0);
    assert_eq!(log.partition_info(&tp).unwrap().segments, 1);
    clock.advance(Duration::from_secs(31));
    p.send("t", Record::new(b"c")).unwrap();
    assert_eq!(log.partition_info(&tp).unwrap().segments, 2);
}

#[test]
fn timestamp_seek_returns_first_offset_at_or_after() {
    let dir = TestDir::new("ts");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .segment_bytes(1024)
            .index_interval_bytes(64),
    )
    .unwrap();
    let p = log.producer();
    // Timestamps rise by 10 per record, with a few out-of-order ones.
    let ts_of = |i: u64| {
        if i % 17 == 5 {
            (i as i64) * 10 - 95
        } else {
            (i as i64) * 10
        }
    };
    for i in 0..600u64 {
        p.send("t", Record::new(b"payload-payload").timestamp(ts_of(i)))
            .unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let check = |log: &Log| {
        for target in [
            -1000i64, 0, 1, 9, 10, 11, 55, 995, 1000, 3333, 5990, 5991, 99999,
        ] {
            let want = (0..600u64).find(|&i| ts_of(i) >= target);
            assert_eq!(
                log.offset_for_timestamp(&tp, target).unwrap(),
                want,
                "target {target}"
            );
        }
    };
    check(&log);
    log.close().unwrap();
    let log = Log::open(dir.path()).unwrap();
    check(&log);
    let c = log.consumer(ConsumerConfig::new());
    let m = c.offsets_for_times(&[(tp.clone(), 1000)]).unwrap();
    assert_eq!(m[&tp], Some(100));
}

#[test]
fn zstd_topic_round_trips_single_and_batched() {
    let dir = TestDir::new("zstd");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic(
        "z",
        TopicConfig::new()
            .compression(Compression::Zstd(3))
            .segment_bytes(64 << 10),
    )
    .unwrap();
    let p = log.producer();
    let value = |i: u32| {
        format!("{{\"id\":{i},\"name\":\"customer {i}\",\"status\":\"active\"}}").into_bytes()
    };
    for chunk in 0..20u32 {
        let recs = (0..100)
            .map(|j| Record::new(value(chunk * 100 + j)).key(b"k"))
            .collect();
        p.send_batch("z", recs).unwrap();
    }
    p.send("z", Record::new(value(2000))).unwrap();
    let check = |log: &Log| {
        let got = read_all(log, "z", 0, 0);
        assert_eq!(got.len(), 2001);
        for (i, (off, v)) in got.iter().enumerate() {
            assert_eq!((*off, v.clone()), (i as u64, value(i as u32)));
        }
        // A read that starts in the middle of a compressed batch.
        assert_eq!(read_all(log, "z", 0, 150)[0].0, 150);
    };
    check(&log);
    let disk = log.metrics().disk_bytes;
    let raw: usize = (0..2001).map(|i| value(i).len()).sum();
    assert!(
        (disk as usize) < raw / 2,
        "zstd should shrink JSON: {disk} on disk for {raw} bytes"
    );
    log.close().unwrap();
    check(&Log::open(dir.path()).unwrap());
}

#[test]
fn poll_respects_record_and_byte_limits_and_pause() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(2))
        .unwrap();
    let p = log.producer();
    for i in 0..50u32 {
        p.send_to("t", i % 2, Record::new(vec![b'x'; 100])).unwrap();
    }
    let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(7),
    );
    c.assign(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(c.poll(Duration::ZERO).unwrap().len(), 7);
    c.pause(std::slice::from_ref(&a)).unwrap();
    let mut seen = 0;
    loop {
        let recs = c.poll(Duration::ZERO).unwrap();
        if recs.is_empty() {
            break;
        }
        assert!(recs.iter().all(|r| r.partition() == 1));
        seen += recs.len();
    }
    assert!(seen > 0);
    assert_eq!(c.lag(&b), Some(0));
    assert!(c.lag(&a).unwrap() > 0);
    c.resume(std::slice::from_ref(&a)).unwrap();
    assert!(c
        .poll(Duration::ZERO)
        .unwrap()
        .iter()
        .all(|r| r.partition() == 0));
}

/// Append counters are kept per partition (no shared atomic on the append
/// path) and summed on demand; a deleted topic's appends stay counted.
#[test]
fn metrics_count_appends_of_live_and_deleted_topics() {
    let log = Log::temporary().unwrap();
    log.create_topic("a", TopicConfig::new().partitions(3))
        .unwrap();
    log.create_topic("b", TopicConfig::new()).unwrap();
    let p = log.producer();
    for i in 0..30u32 {
        p.send("a", Record::new(b"0123456789").key(&i.to_le_bytes()[..]))
            .unwrap();
    }
    p.send_batch("b", vec![Record::new(b"x"); 5]).unwrap();
    let before = log.metrics();
    assert_eq!(before.records_appended, 35);
    assert_eq!(before.batches_appended, 31);
    log.delete_topic("a").unwrap();
    let after = log.metrics();
    assert_eq!(after.records_appended, 35);
    assert_eq!(after.batches_appended, 31);
    assert_eq!(after.bytes_appended, before.bytes_appended);
    p.send("b", Record::new(b"y")).unwrap();
    assert_eq!(log.metrics().records_appended, 36);
}

/// A keyed `send_batch` spreads over partitions: one batch per partition,
/// metadata in the caller's order, each record at the partition and offset
/// its metadata names, and within a partition in the caller's order. A
/// too-large record anywhere in the call writes nothing to any partition.
#[test]
fn keyed_batches_spread_over_partitions_in_order() {
    let log = Log::temporary().unwrap();
    log.create_topic("k", TopicConfig::new().partitions(5).max_record_bytes(500))
        .unwrap();
    let p = log.producer();
    let values: Vec<Vec<u8>> = (0..200u32).map(|i| format!("v{i}").into_bytes()).collect();
    let recs: Vec<Record<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record::new(&v[..]).key(format!("key{}", i % 17).into_bytes()))
        .collect();
    let mds = p.send_batch("k", recs).unwrap();
    assert_eq!(mds.len(), 200);
    assert_eq!(log.metrics().batches_appended, 5);
    let mut last = [None::<u64>; 5];
    for (md, v) in mds.iter().zip(&values) {
        let got = read_all(&log, "k", md.partition(), md.offset());
        assert_eq!(got[0], (md.offset(), v.clone()));
        let prev = &mut last[md.partition() as usize];
        assert!(prev.is_none_or(|o| md.offset() == o + 1));
        *prev = Some(md.offset());
    }
    let ends = |log: &Log| -> Vec<u64> {
        (0..5)
            .map(|i| {
                log.partition_info(&TopicPartition::new("k", i))
                    .unwrap()
                    .end_offset
            })
            .collect()
    };
    let before = ends(&log);
    let big = vec![0u8; 600];
    let bad: Vec<Record<'_>> = (0..40u32)
        .map(|i| {
            let v = if i == 39 { &big[..] } else { &b"small"[..] };
            Record::new(v).key(i.to_le_bytes().to_vec())
        })
        .collect();
    assert!(matches!(
        p.send_batch("k", bad),
        Err(streamlog::Error::RecordTooLarge { .. })
    ));
    assert_eq!(ends(&log), before);
}
