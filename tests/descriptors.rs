//! Neither open file descriptors nor memory mappings grow with the number
//! of segments. A sealed segment is read through its mapping and keeps no
//! descriptor, so a log with thousands of segments stays far below the
//! usual 1,024-descriptor limit; and only a bounded number of sealed
//! segments is mapped at a time, so it stays far below the kernel's limit
//! on mappings too. Its own test binary, so that no other test opens files
//! meanwhile.
#![cfg(target_os = "linux")]
mod common;

use std::path::Path;
use std::time::Duration;

use common::{read_all, TestDir};
use streamlog::{
    ConsumerConfig, Log, LogOptions, OffsetReset, Record, TopicConfig, TopicPartition,
};

/// Entries of this process's memory map backed by files under `dir`.
fn mappings_under(dir: &Path) -> usize {
    let dir = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir))
        .count()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn sealed_segments_hold_no_file_descriptors() {
    let dir = TestDir::new("fds");
    let before = open_fds();
    let value = [b'x'; 900];
    let segments = {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().segment_bytes(4096))
            .unwrap();
        let p = log.producer();
        for _ in 0..1_200 {
            p.send("t", Record::new(&value[..])).unwrap();
        }
        let segments = std::fs::read_dir(dir.join("t-0"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "log")
            .count();
        assert!(segments >= 250, "only {segments} segments");
        let grown = open_fds() - before;
        assert!(
            grown < 20,
            "{grown} descriptors open for {segments} segments"
        );
        segments
    };
    // The same after a reopen, and every record still reads back.
    let log = Log::open(dir.path()).unwrap();
    let grown = open_fds() - before;
    assert!(
        grown < 20,
        "{grown} descriptors open for {segments} segments after reopen"
    );
    let got = read_all(&log, "t", 0, 0);
    assert_eq!(got.len(), 1_200);
    assert!(got.iter().all(|(_, v)| v.as_slice() == value));
    assert_eq!(
        log.partition_info(&TopicPartition::new("t", 0))
            .unwrap()
            .end_offset,
        1_200
    );
}

#[test]
fn only_a_bounded_number_of_sealed_segments_is_mapped() {
    let dir = TestDir::new("maps");
    let value = [b'y'; 900];
    let opts = || LogOptions::new().max_mapped_segments(8);
    let segments = {
        let log = opts().open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().segment_bytes(4096))
            .unwrap();
        let p = log.producer();
        for i in 0..1_000u32 {
            let mut v = value;
            v[..4].copy_from_slice(&i.to_be_bytes());
            p.send("t", Record::new(&v[..])).unwrap();
        }
        let segments = log
            .partition_info(&TopicPartition::new("t", 0))
            .unwrap()
            .segments;
        assert!(segments >= 200, "only {segments} segments");
        // Rolling keeps the just-sealed segments mapped, up to the bound.
        assert!(log.metrics().mapped_segments <= 8);
        // Three files per segment: 8 sealed and 1 active (the internal
        // offsets topic maps no more than one segment of its own).
        let mapped = mappings_under(dir.path());
        assert!(
            mapped <= 3 * 10,
            "{mapped} mappings for {segments} segments"
        );
        segments
    };
    assert_eq!(mappings_under(dir.path()), 0, "close unmaps everything");
    let log = opts().open(dir.path()).unwrap();
    assert_eq!(
        log.metrics().mapped_segments,
        0,
        "a reopened log maps sealed segments only when they are read"
    );
    assert!(mappings_under(dir.path()) <= 6);
    // Reading everything maps every segment in turn, never more than the
    // bound at once.
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(ConsumerConfig::new().max_poll_records(7));
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 0).unwrap();
    // The first poll's records stay readable while their segment is
    // unmapped behind them: they hold the mapping.
    let first = c.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(first.len(), 7, "a poll reads across segments");
    let mut next = first.len() as u64;
    let mut peak = 0;
    while next < 1_000 {
        let recs = c.poll(Duration::from_secs(5)).unwrap();
        assert!(!recs.is_empty());
        for r in &recs {
            assert_eq!(r.offset(), next);
            assert_eq!(r.value().unwrap()[..4], (next as u32).to_be_bytes());
            next += 1;
        }
        peak = peak.max(log.metrics().mapped_segments);
        let mapped = mappings_under(dir.path());
        assert!(
            mapped <= 3 * 11,
            "{mapped} mappings while reading {segments} segments"
        );
    }
    assert!(peak <= 8, "{peak} sealed segments mapped at once");
    assert!(peak >= 7, "reading maps segments and keeps up to the bound");
    for (i, r) in first.iter().enumerate() {
        assert_eq!(r.offset(), i as u64);
        assert_eq!(r.value().unwrap()[..4], (i as u32).to_be_bytes());
        assert_eq!(r.value().unwrap()[4..], value[4..]);
    }
    // Seeking back maps evicted segments again, by index and by time.
    assert_eq!(read_all(&log, "t", 0, 3).len(), 997);
    assert_eq!(read_all(&log, "t", 0, 500)[0].0, 500);
    assert_eq!(log.offset_for_timestamp(&tp, 0).unwrap(), Some(0));
}

/// Retention deleting sealed segments that a lagging consumer is about to
/// map: the consumer never sees an I/O error for a removed file; it resets
/// as for any offset below the log start, and every record it does get is
/// in order.
#[test]
fn a_lagging_consumer_survives_retention_deleting_unmapped_segments() {
    let dir = TestDir::new("maps-retention");
    let log = LogOptions::new()
        .max_mapped_segments(1)
        .open(dir.path())
        .unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .segment_bytes(2048)
            .retention_bytes(16 << 10),
    )
    .unwrap();
    let tp = TopicPartition::new("t", 0);
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let p = log.producer();
            for i in 0..20_000u64 {
                p.send("t", Record::new(&i.to_be_bytes()[..])).unwrap();
                if i % 50 == 0 {
                    log.maintain().unwrap();
                }
            }
        })
    };
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(3),
    );
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let mut last: Option<u64> = None;
    let mut got = 0u64;
    while last != Some(19_999) {
        for r in &c.poll(Duration::from_secs(5)).unwrap() {
            let v = u64::from_be_bytes(r.value().unwrap().try_into().unwrap());
            assert_eq!(v, r.offset());
            assert!(last.is_none_or(|l| r.offset() > l), "out of order");
            last = Some(r.offset());
            got += 1;
        }
        // Lag behind, so that retention overtakes the consumer.
        std::thread::sleep(Duration::from_micros(50));
    }
    writer.join().unwrap();
    assert!(got > 0);
}
