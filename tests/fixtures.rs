//! Committed fixtures: a small log written by today's format (v1), and
//! damaged copies of it. Loaded by every test run forever, so a change that
//! can no longer read existing data, or reads it differently, fails here.
//!
//! `cargo test --test fixtures -- --ignored generate` rewrites them; only do
//! that for a deliberate format change, together with a version bump.
mod common;

use common::{copy_dir, TestDir};
use std::path::{Path, PathBuf};
use std::time::Duration;
use streamlog::{
    CleanupPolicy, Compression, ConsumerConfig, Error, Log, LogOptions, ManualClock,
    OffsetAndMetadata, OffsetReset, Record, TopicConfig, TopicPartition,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The fixture's content, deterministic.
fn value(topic: &str, i: u32) -> Vec<u8> {
    format!(
        "{{\"topic\":\"{topic}\",\"n\":{i},\"pad\":\"{}\"}}",
        "ab".repeat(i as usize % 7)
    )
    .into_bytes()
}

#[test]
#[ignore = "rewrites the committed fixtures"]
fn generate() {
    let clock = ManualClock::new(1_700_000_000_000);
    let root = fixture("");
    for d in ["v1", "v1-torn-tail", "v1-bad-crc", "v1-zeroed-index"] {
        let _ = std::fs::remove_dir_all(root.join(d));
    }
    let dir = root.join("v1");
    let log = LogOptions::new().clock(clock.clone()).open(&dir).unwrap();
    log.create_topic(
        "plain",
        TopicConfig::new()
            .partitions(2)
            .segment_bytes(1024)
            .index_interval_bytes(128),
    )
    .unwrap();
    log.create_topic(
        "zipped",
        TopicConfig::new()
            .compression(Compression::Zstd(3))
            .segment_bytes(2048),
    )
    .unwrap();
    log.create_topic(
        "users",
        TopicConfig::new().cleanup_policy(CleanupPolicy::Compact),
    )
    .unwrap();
    let p = log.producer();
    for i in 0..60 {
        clock.advance(Duration::from_millis(10));
        p.send_to(
            "plain",
            i % 2,
            Record::new(value("plain", i))
                .key(format!("k{i}").into_bytes())
                .header("i", i.to_le_bytes().to_vec()),
        )
        .unwrap();
    }
    for chunk in 0..4 {
        let recs = (0..10)
            .map(|j| Record::new(value("zipped", chunk * 10 + j)))
            .collect();
        p.send_batch("zipped", recs).unwrap();
    }
    p.send("users", Record::new(b"alice".to_vec()).key(b"u1".to_vec()))
        .unwrap();
    p.send("users", Record::tombstone(b"u2".to_vec())).unwrap();
    let mut c = log.consumer(ConsumerConfig::new().group("billing"));
    let tp = TopicPartition::new("plain", 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.commit_offsets(
        &[(tp, OffsetAndMetadata::new(17).metadata("fixture"))]
            .into_iter()
            .collect(),
    )
    .unwrap();
    drop(c);
    log.close().unwrap();
    std::fs::remove_file(dir.join(".lock")).unwrap();
    // Damaged copies.
    let torn = root.join("v1-torn-tail");
    copy_dir(&dir, &torn);
    let seg = last_segment(&torn.join("plain-0"));
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 9)
        .unwrap();
    let bad = root.join("v1-bad-crc");
    copy_dir(&dir, &bad);
    let first = bad.join("plain-0/00000000000000000000.log");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[200] ^= 0x20;
    std::fs::write(&first, bytes).unwrap();
    let zeroed = root.join("v1-zeroed-index");
    copy_dir(&dir, &zeroed);
    let idx = zeroed.join("plain-0/00000000000000000000.index");
    let len = std::fs::metadata(&idx).unwrap().len().max(64);
    std::fs::write(&idx, vec![0u8; len as usize]).unwrap();
}

fn last_segment(dir: &Path) -> PathBuf {
    common::segment_files(dir, "log").pop().unwrap()
}

/// Opens a copy of a fixture (opening changes files) and returns it.
fn open_copy(name: &str) -> (TestDir, Log) {
    let dir = TestDir::new(&format!("fixture-{name}"));
    copy_dir(&fixture(name), dir.path());
    let log = Log::open(dir.path()).unwrap_or_else(|e| panic!("fixture {name} does not open: {e}"));
    (dir, log)
}

/// `(offset, key, value)` rows.
type Rows = Vec<(u64, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn read(log: &Log, topic: &str, p: u32) -> Rows {
    let tp = TopicPartition::new(topic, p);
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(1000),
    );
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let mut out = Vec::new();
    loop {
        let recs = c.poll(Duration::ZERO).unwrap();
        if recs.is_empty() {
            return out;
        }
        for r in &recs {
            out.push((
                r.offset(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
            ));
        }
    }
}

fn check_plain(log: &Log, upto: usize) {
    for p in 0..2u32 {
        let rows = read(log, "plain", p);
        let want: Vec<u32> = (0..60)
            .filter(|i| i % 2 == p)
            .take(if p == 0 { upto } else { 30 })
            .collect();
        assert_eq!(rows.len(), want.len(), "plain-{p}");
        for (n, (o, k, v)) in rows.iter().enumerate() {
            assert_eq!(*o, n as u64);
            assert_eq!(k.as_deref(), Some(format!("k{}", want[n]).as_bytes()));
            assert_eq!(v.as_deref(), Some(&value("plain", want[n])[..]));
        }
    }
}

#[test]
fn the_v1_fixture_reads_back_exactly() {
    let (_dir, log) = open_copy("v1");
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.topics(), vec!["plain", "users", "zipped"]);
    check_plain(&log, 30);
    let zipped = read(&log, "zipped", 0);
    assert_eq!(zipped.len(), 40);
    for (i, (o, _, v)) in zipped.iter().enumerate() {
        assert_eq!(
            (*o, v.as_deref()),
            (i as u64, Some(&value("zipped", i as u32)[..]))
        );
    }
    assert_eq!(
        read(&log, "users", 0),
        vec![
            (0, Some(b"u1".to_vec()), Some(b"alice".to_vec())),
            (1, Some(b"u2".to_vec()), None)
        ]
    );
    let offsets = log.committed_offsets("billing");
    assert_eq!(offsets.len(), 1);
    assert_eq!(
        (offsets[0].1.offset(), offsets[0].1.metadata_str()),
        (17, "fixture")
    );
    let tp = TopicPartition::new("plain", 0);
    assert_eq!(
        log.offset_for_timestamp(&tp, 1_700_000_000_305).unwrap(),
        Some(15)
    );
}

#[test]
fn the_torn_tail_fixture_recovers_to_a_prefix() {
    let (_dir, log) = open_copy("v1-torn-tail");
    assert_eq!(log.recovery_report().truncations.len(), 1);
    check_plain(&log, 29);
}

#[test]
fn the_bad_crc_fixture_is_detected_when_read() {
    let (_dir, log) = open_copy("v1-bad-crc");
    let tp = TopicPartition::new("plain", 0);
    let err = common::first_read_error(&log, &tp);
    assert!(matches!(err, Some(Error::Corrupted { .. })), "{err:?}");
}

#[test]
fn the_zeroed_index_fixture_is_rebuilt() {
    let (_dir, log) = open_copy("v1-zeroed-index");
    assert!(!log.recovery_report().indexes_rebuilt.is_empty());
    check_plain(&log, 30);
}
