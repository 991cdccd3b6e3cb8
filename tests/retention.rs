//! Retention: whole segments go, oldest first, and the log start moves.
mod common;

use common::{read_all, TestDir};
use std::time::Duration;
use streamlog::{
    ConsumerConfig, Error, Log, LogOptions, ManualClock, OffsetReset, Record, TopicConfig,
    TopicPartition,
};

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn retention_by_bytes_bounds_disk_use_and_moves_the_start() {
    let dir = TestDir::new("ret-bytes");
    let log = Log::open(dir.path()).unwrap();
    let seg = 16 << 10;
    let limit = 64 << 10;
    log.create_topic(
        "t",
        TopicConfig::new()
            .segment_bytes(seg)
            .segment_index_bytes(1024)
            .retention_bytes(limit),
    )
    .unwrap();
    let p = log.producer();
    let tp = TopicPartition::new("t", 0);
    let value = [7u8; 200];
    for i in 0..5000u32 {
        p.send("t", Record::new(&value[..]).key(i.to_be_bytes().to_vec()))
            .unwrap();
        if i % 500 == 499 {
            log.maintain().unwrap();
            // Sealed files plus the active segment's preallocated space.
            let on_disk = dir_bytes(&dir.join("t-0"));
            assert!(
                on_disk <= limit + seg + (256 << 10),
                "{on_disk} bytes on disk at record {i}"
            );
        }
    }
    let info = log.partition_info(&tp).unwrap();
    assert!(info.start_offset > 0);
    assert!(info.size_bytes <= limit + seg, "{info:?}");
    // Everything from the new start on is intact.
    let got = read_all(&log, "t", 0, info.start_offset);
    assert_eq!(got.len() as u64, 5000 - info.start_offset);
    // Below the start: a typed error, and a reset consumer moves forward.
    let mut c = log.consumer(ConsumerConfig::new());
    c.assign(std::slice::from_ref(&tp)).unwrap();
    match c.seek(&tp, 0) {
        Err(Error::OffsetOutOfRange { earliest, .. }) => assert_eq!(earliest, info.start_offset),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    // The start survives a reopen.
    drop(c);
    log.close().unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(
        log.partition_info(&tp).unwrap().start_offset,
        info.start_offset
    );
}

#[test]
fn retention_by_time_follows_the_injected_clock() {
    let clock = ManualClock::new(1_000_000);
    let log = LogOptions::new().clock(clock.clone()).temporary().unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .segment_bytes(4096)
            .retention(Duration::from_secs(3600)),
    )
    .unwrap();
    let p = log.producer();
    let tp = TopicPartition::new("t", 0);
    for _ in 0..300 {
        p.send("t", Record::new(vec![1u8; 100])).unwrap();
    }
    let old_end = log.partition_info(&tp).unwrap().end_offset;
    clock.advance(Duration::from_secs(1800));
    for _ in 0..300 {
        p.send("t", Record::new(vec![2u8; 100])).unwrap();
    }
    // Nothing is older than an hour yet.
    assert_eq!(log.maintain().unwrap().segments_deleted, 0);
    assert_eq!(log.partition_info(&tp).unwrap().start_offset, 0);
    // 61 minutes after the first batch of records, only their segments go.
    clock.advance(Duration::from_secs(1860));
    let report = log.maintain().unwrap();
    assert!(report.segments_deleted > 0);
    let start = log.partition_info(&tp).unwrap().start_offset;
    assert!(
        start > 0 && start <= old_end,
        "start {start}, old end {old_end}"
    );
    let got = read_all(&log, "t", 0, start);
    assert!(got
        .iter()
        .filter(|(o, _)| *o >= old_end)
        .all(|(_, v)| v[0] == 2));
    // The group with Earliest reset starts at the new start.
    let mut c = log.consumer(
        ConsumerConfig::new()
            .group("g")
            .auto_offset_reset(OffsetReset::Earliest),
    );
    c.subscribe(&["t"]).unwrap();
    let recs = c.poll(Duration::ZERO).unwrap();
    assert_eq!(recs.get(0).unwrap().offset(), start);
}

#[test]
fn the_active_segment_is_never_deleted() {
    let clock = ManualClock::new(0);
    let log = LogOptions::new().clock(clock.clone()).temporary().unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .retention(Duration::from_secs(1))
            .retention_bytes(1),
    )
    .unwrap();
    log.producer().send("t", Record::new(b"only")).unwrap();
    clock.advance(Duration::from_secs(100));
    log.maintain().unwrap();
    assert_eq!(read_all(&log, "t", 0, 0).len(), 1);
}

#[test]
fn a_reader_keeps_records_from_a_segment_deleted_under_it() {
    let log = Log::temporary().unwrap();
    log.create_topic(
        "t",
        TopicConfig::new().segment_bytes(2048).retention_bytes(2048),
    )
    .unwrap();
    let p = log.producer();
    for i in 0..20u32 {
        p.send(
            "t",
            Record::new(format!("record {i:04} {}", "x".repeat(100)).into_bytes()),
        )
        .unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(5),
    );
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let held = c.poll(Duration::ZERO).unwrap();
    assert_eq!(held.get(0).unwrap().offset(), 0);
    // Push the held records' segment out of retention and delete it.
    for i in 20..200u32 {
        p.send(
            "t",
            Record::new(format!("record {i:04} {}", "x".repeat(100)).into_bytes()),
        )
        .unwrap();
    }
    log.maintain().unwrap();
    assert!(log.partition_info(&tp).unwrap().start_offset > 5);
    // The records read before the deletion are still there, byte for byte.
    for (i, r) in held.iter().enumerate() {
        assert_eq!(
            r.value(),
            Some(format!("record {i:04} {}", "x".repeat(100)).as_bytes())
        );
    }
}
