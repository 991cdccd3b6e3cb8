//! Regression: a damaged header in a batch that a read skips over (on its
//! way to the wanted offset) made records vanish with no error, and a header
//! whose offsets overflow u64 panicked the read. Found in review.
mod common;

use common::{segment_files, TestDir};
use std::path::Path;
use std::time::Duration;
use streamlog::{
    ConsumerConfig, CorruptionKind, Error, Log, OffsetReset, Record, TopicConfig, TopicPartition,
};

/// 20 batches of 5 records, small segments, no index entries; closed cleanly
/// so that the first segment is trusted (never scanned) on reopen.
fn fill(dir: &Path) {
    fill_with_interval(dir, 1 << 20);
}

fn fill_with_interval(dir: &Path, interval: u64) {
    let log = Log::open(dir).unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .segment_bytes(1024)
            .index_interval_bytes(interval),
    )
    .unwrap();
    let p = log.producer();
    let vals: Vec<String> = (0..100).map(|i| format!("value {i:06}")).collect();
    for b in 0..20usize {
        let recs: Vec<Record> = (0..5)
            .map(|i| Record::new(vals[b * 5 + i].as_bytes()))
            .collect();
        p.send_batch("t", recs).unwrap();
    }
    log.close().unwrap();
}

/// Damages batch #1 (offsets 5..=9) of the first segment with `f`.
fn damage_second_batch(dir: &Path, f: impl Fn(&mut [u8])) {
    let first = segment_files(&dir.join("t-0"), "log").remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    // Kafka's batch layout: base offset at 0, length at 8 (bytes after
    // byte 12), last offset delta at 23.
    let b1 = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize + 12;
    assert_eq!(u64::from_be_bytes(bytes[b1..b1 + 8].try_into().unwrap()), 5);
    f(&mut bytes[b1..]);
    std::fs::write(&first, &bytes).unwrap();
}

fn poll_from_7(dir: &Path) -> Result<Vec<u64>, Error> {
    let log = Log::open(dir).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 7).unwrap();
    c.poll(Duration::ZERO)
        .map(|r| r.iter().map(|r| r.offset()).collect())
}

#[test]
fn a_damaged_last_offset_delta_is_an_error_not_a_gap() {
    let dir = TestDir::new("skip-delta");
    fill(dir.path());
    damage_second_batch(dir.path(), |b| b[26] = 0); // last_offset_delta 4 -> 0
    match poll_from_7(dir.path()) {
        Err(Error::Corrupted { kind, offset, .. }) => {
            assert!(
                matches!(kind, CorruptionKind::CrcMismatch { .. }),
                "{kind:?}"
            );
            assert_eq!(offset, Some(7));
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[test]
fn an_overflowing_base_offset_is_an_error_not_a_panic() {
    // The base offset is outside Kafka's CRC: a negative one, and one whose
    // last offset overflows, are still caught.
    for base in [u64::MAX, i64::MAX as u64] {
        let dir = TestDir::new("skip-overflow");
        fill(dir.path());
        damage_second_batch(dir.path(), |b| b[0..8].copy_from_slice(&base.to_be_bytes()));
        let got = poll_from_7(dir.path());
        assert!(
            matches!(got, Err(Error::Corrupted { .. })),
            "base {base}: {got:?}"
        );
    }
}

/// Regression (found in review): Kafka's CRC leaves the base offset out, and
/// a read that found its start through the index did not know which offset
/// the batch there must have, so a damaged base offset past the end read as
/// a batch still being appended: the poll returned nothing, silently.
#[test]
fn a_damaged_base_offset_found_through_the_index_is_an_error() {
    let dir = TestDir::new("index-base");
    // An index entry for every batch after the first: seeking to 12 starts
    // right after batch 1 (offsets 5..=9, its entry says 9), at batch 2.
    fill_with_interval(dir.path(), 1);
    let first = segment_files(&dir.join("t-0"), "log").remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let len =
        |at: usize| u32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize + 12;
    let b2 = len(0) + len(len(0));
    assert_eq!(
        u64::from_be_bytes(bytes[b2..b2 + 8].try_into().unwrap()),
        10
    );
    bytes[b2..b2 + 8].copy_from_slice(&1_000_000u64.to_be_bytes());
    std::fs::write(&first, &bytes).unwrap();
    let log = Log::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 12).unwrap();
    let got = c.poll(Duration::ZERO).map(|r| r.len());
    assert!(
        matches!(
            got,
            Err(Error::Corrupted {
                kind: CorruptionKind::OffsetOutOfOrder {
                    expected: 10,
                    found: 1_000_000
                },
                ..
            })
        ),
        "{got:?}"
    );
}

#[test]
fn a_missing_middle_segment_is_an_error_not_a_gap() {
    let dir = TestDir::new("missing-middle");
    fill(dir.path());
    let segs = segment_files(&dir.join("t-0"), "log");
    assert!(segs.len() >= 3);
    std::fs::remove_file(&segs[1]).unwrap();
    let log = Log::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(1000),
    );
    c.assign(std::slice::from_ref(&tp)).unwrap();
    // Records before the hole are returned; then the hole is reported.
    let first = c.poll(Duration::ZERO).unwrap();
    assert!(!first.is_empty());
    let last = first.iter().last().unwrap().offset();
    match c.poll(Duration::ZERO) {
        Err(Error::Corrupted {
            kind: CorruptionKind::OffsetOutOfOrder { expected, .. },
            ..
        }) => {
            assert_eq!(expected, last + 1)
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
}
