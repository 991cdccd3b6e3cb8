//! A consumer checks a batch's CRC itself, just before decoding it (large
//! records) or just after (small ones; the fetch hands the batch over
//! unchecked, so that the check runs on bytes already in cache). Damage must still stop it exactly where the
//! fetch's own check did: nothing of a damaged batch is ever returned, also
//! when a poll would stop inside it, and a batch skipped on its header's
//! word (an aborted transaction's, under `ReadCommitted`) is checked first.
mod common;

use common::{segment_files, TestDir};
use std::path::{Path, PathBuf};
use std::time::Duration;
use streamlog::{
    ConsumerConfig, CorruptionKind, Error, IsolationLevel, Log, OffsetReset, Record, TopicConfig,
    TopicPartition,
};

fn topic() -> TopicConfig {
    // Small segments, so that the damaged batch lies in a sealed segment,
    // which an open does not scan.
    TopicConfig::new()
        .segment_bytes(64 << 10)
        .index_interval_bytes(4096)
}

fn value(i: usize) -> Vec<u8> {
    format!("value {i:06} of a batch of small records").into_bytes()
}

/// A record of about 600 bytes: its batch's CRC is checked before it is
/// decoded rather than after.
fn large(i: usize) -> Vec<u8> {
    let mut v = value(i);
    v.resize(600, b'.');
    v
}

/// Where each batch of the first segment ends, from their length fields.
fn batch_ends(dir: &Path) -> Vec<usize> {
    let first = segment_files(&dir.join("t-0"), "log").remove(0);
    let bytes = std::fs::read(&first).unwrap();
    let (mut pos, mut ends) = (0usize, Vec::new());
    while pos + 12 <= bytes.len() {
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
        let end = pos + 12 + len.max(0) as usize;
        if len <= 0 || end > bytes.len() {
            break;
        }
        ends.push(end);
        pos = end;
    }
    ends
}

/// Flips a byte `from_end` bytes before `end` in the first segment.
fn flip_before(dir: &Path, end: usize, from_end: usize) -> PathBuf {
    let first = segment_files(&dir.join("t-0"), "log").remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[end - from_end] ^= 0x10;
    std::fs::write(&first, &bytes).unwrap();
    first
}

fn expect_crc_error(err: Error, path: &Path, position: u64, offset: u64) {
    match err {
        Error::Corrupted {
            path: p,
            position: at,
            offset: o,
            kind,
        } => {
            assert_eq!((p.as_path(), at, o), (path, position, Some(offset)));
            assert!(
                matches!(kind, CorruptionKind::CrcMismatch { .. }),
                "{kind:?}"
            );
        }
        e => panic!("unexpected {e}"),
    }
}

/// Opens a log in `dir` with topic `t`, runs `first` on it (the batches
/// the test damages), then sends batches enough to roll past them into
/// later segments, and closes it.
fn write(dir: &Path, value: fn(usize) -> Vec<u8>, first: impl FnOnce(&Log)) {
    let log = Log::open(dir).unwrap();
    log.create_topic("t", topic()).unwrap();
    first(&log);
    let p = log.producer();
    for i in 0..3 {
        p.send_batch("t", (0..600).map(|_| Record::new(value(i))).collect())
            .unwrap();
    }
    log.close().unwrap();
    assert!(segment_files(&dir.join("t-0"), "log").len() > 1);
}

fn batch_of(value: fn(usize) -> Vec<u8>, n: usize) -> Vec<Record<'static>> {
    (0..n).map(|i| Record::new(value(i))).collect()
}

fn consumer(log: &Log, config: ConsumerConfig) -> streamlog::Consumer {
    let mut c = log.consumer(config.auto_offset_reset(OffsetReset::Earliest));
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    c
}

#[test]
fn a_poll_that_would_stop_inside_a_damaged_batch_returns_none_of_it() {
    stops_inside(value, 1000);
    stops_inside(large, 100);
}

fn stops_inside(value: fn(usize) -> Vec<u8>, records: usize) {
    let dir = TestDir::new("deferred-crc-inside");
    write(dir.path(), value, |log| {
        log.producer()
            .send_batch("t", batch_of(value, records))
            .unwrap();
    });
    // In the last records of the batch: a poll of 100 stops long before.
    let first = flip_before(dir.path(), batch_ends(dir.path())[0], 30);
    let log = Log::open(dir.path()).unwrap();
    for limit in [10, 100, 500, 10_000] {
        let mut c = consumer(&log, ConsumerConfig::new().max_poll_records(limit));
        for _ in 0..2 {
            // The error repeats: the damage is never stepped over.
            expect_crc_error(c.poll(Duration::ZERO).unwrap_err(), &first, 0, 0);
        }
    }

    // A batch before the damage is handed out first, the damage after it.
    let dir = TestDir::new("deferred-crc-after");
    write(dir.path(), value, |log| {
        let p = log.producer();
        p.send("t", Record::new(b"before")).unwrap();
        p.send_batch("t", batch_of(value, records / 2)).unwrap();
    });
    let ends = batch_ends(dir.path());
    let first = flip_before(dir.path(), ends[1], 20);
    let log = Log::open(dir.path()).unwrap();
    let mut c = consumer(&log, ConsumerConfig::new().max_poll_records(200));
    let recs = c.poll(Duration::ZERO).unwrap();
    let got: Vec<_> = recs.iter().map(|r| r.value().unwrap().to_vec()).collect();
    assert_eq!(got, vec![b"before".to_vec()]);
    expect_crc_error(
        c.poll(Duration::ZERO).unwrap_err(),
        &first,
        ends[0] as u64,
        1,
    );
}

#[test]
fn an_aborted_batch_is_checked_before_read_committed_skips_it() {
    let dir = TestDir::new("deferred-crc-aborted");
    write(dir.path(), value, |log| {
        let mut tp = log.transactional_producer("copier").unwrap();
        let mut txn = tp.begin_transaction().unwrap();
        txn.send_batch("t", batch_of(value, 300)).unwrap();
        txn.abort().unwrap();
    });
    let first = flip_before(dir.path(), batch_ends(dir.path())[0], 40);
    let log = Log::open(dir.path()).unwrap();
    for level in [
        IsolationLevel::ReadCommitted,
        IsolationLevel::ReadUncommitted,
    ] {
        let mut c = consumer(&log, ConsumerConfig::new().isolation_level(level));
        expect_crc_error(c.poll(Duration::ZERO).unwrap_err(), &first, 0, 0);
    }
}
