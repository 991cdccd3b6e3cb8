//! What a read-only reader does with damage and with what retention took
//! from under it: never a silent loss, never damage reported as retention.

use streamlog::{Error, IsolationLevel, Log, PartitionReader, Record, TopicConfig, TopicPartition};

use super::value_of;
use crate::common::{segment_files, TestDir};

fn reader(dir: &std::path::Path, isolation: IsolationLevel) -> PartitionReader {
    Log::open_read_only(dir)
        .unwrap()
        .partition_reader(&TopicPartition::new("t", 0), 0, isolation)
        .unwrap()
}

/// Regression (review): a batch whose CRC is valid but whose records do not
/// decode failed `read`, and the records already taken in that call were
/// dropped with the error; the next call went on after the bad batch, so
/// records vanished without a report.
#[test]
fn regression_a_batch_that_fails_to_decode_loses_nothing_and_fails_again() {
    let dir = TestDir::new("read-only-bad-record");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        for i in 0..3 {
            log.producer().send("t", Record::new(value_of(i))).unwrap();
        }
        log.close().unwrap();
    }
    // Break the second batch's first record (its length varint) and give
    // the batch a CRC that matches: only decoding the records finds it.
    let log_file = &segment_files(&dir.join("t-0"), "log")[0];
    let mut bytes = std::fs::read(log_file).unwrap();
    let first_len = 12 + u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let second = first_len;
    bytes[second + 61] = 0x7f;
    let crc = crc32c::crc32c(
        &bytes[second + 21..second + 12 + {
            u32::from_be_bytes(bytes[second + 8..second + 12].try_into().unwrap()) as usize
        }],
    );
    bytes[second + 17..second + 21].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(log_file, &bytes).unwrap();
    // `verify` decodes the records too, not only the CRC.
    let report = streamlog::inspect::verify_dir(dir.path()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path == *log_file && p.offset == Some(1)),
        "{:?}",
        report.problems
    );

    for isolation in [
        IsolationLevel::ReadUncommitted,
        IsolationLevel::ReadCommitted,
    ] {
        let mut r = reader(dir.path(), isolation);
        let first = r.read(10).unwrap();
        let offsets: Vec<u64> = first.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0], "the record before the damage comes first");
        assert!(first.skipped.is_none());
        for _ in 0..2 {
            match r.read(10) {
                Err(Error::Corrupted { path, offset, .. }) => {
                    assert_eq!(&path, log_file);
                    assert_eq!(offset, Some(1));
                }
                other => panic!("expected the same damage again, got {other:?}"),
            }
            assert_eq!(r.position(), 1);
        }
    }
}

/// Regression (review): zeros inside a finished segment (not its
/// preallocated tail: the writer trims a segment before it starts the
/// next) were taken as its end, and the offsets after them reported as
/// deleted by retention.
#[test]
fn regression_zeros_inside_a_finished_segment_are_damage_not_retention() {
    let dir = TestDir::new("read-only-zeros");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().segment_bytes(1024))
            .unwrap();
        for i in 0..40 {
            log.producer().send("t", Record::new(value_of(i))).unwrap();
        }
        log.close().unwrap();
    }
    let logs = segment_files(&dir.join("t-0"), "log");
    assert!(logs.len() > 2);
    let mut bytes = std::fs::read(&logs[0]).unwrap();
    let first_len = 12 + u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    bytes[first_len..first_len + 70].fill(0);
    std::fs::write(&logs[0], &bytes).unwrap();

    for start in [0, 1, 2] {
        let mut got = Vec::new();
        let opened = Log::open_read_only(dir.path()).unwrap().partition_reader(
            &TopicPartition::new("t", 0),
            start,
            IsolationLevel::ReadUncommitted,
        );
        // Starting inside the damage fails at once; before it, at the read.
        let mut r = match opened {
            Ok(r) => r,
            Err(e) => {
                assert!(start > 0);
                assert!(
                    matches!(&e, Error::Corrupted { path, .. } if *path == logs[0]),
                    "{e}"
                );
                continue;
            }
        };
        let err = loop {
            match r.read(10) {
                Ok(f) => {
                    assert!(f.skipped.is_none(), "damage reported as {:?}", f.skipped);
                    assert!(!f.is_empty(), "stopped without an error");
                    got.extend(f.records.iter().map(|r| r.offset));
                }
                Err(e) => break e,
            }
        };
        assert!(got.iter().all(|&o| o == 0), "{got:?}");
        assert!(
            matches!(&err, Error::Corrupted { path, .. } if *path == logs[0]),
            "{err}"
        );
    }
}

/// Regression (review): a `ReadCommitted` reader holding a transaction's
/// records, whose marker retention deleted before the reader got there,
/// dropped them and reported only the gap after them.
#[test]
fn regression_held_records_whose_marker_retention_took_are_reported_skipped() {
    let dir = TestDir::new("read-only-lost-marker");
    let log = Log::open(dir.path()).unwrap();
    let cfg = TopicConfig::new().segment_bytes(1024);
    log.create_topic("t", cfg.clone()).unwrap();
    let big = |i: u64| {
        let mut v = value_of(i);
        v.resize(700, b'.');
        v
    };
    log.producer().send("t", Record::new(big(0))).unwrap();
    let mut tx = log.transactional_producer("tx").unwrap();
    let mut txn = tx.begin_transaction().unwrap();
    txn.send("t", Record::new(big(1))).unwrap();

    let mut r = reader(dir.path(), IsolationLevel::ReadCommitted);
    let f = r.read(10).unwrap();
    assert_eq!(f.records.len(), 1, "offset 1 is held: undecided");

    txn.send("t", Record::new(big(2))).unwrap();
    txn.commit().unwrap();
    for i in 4..8 {
        log.producer().send("t", Record::new(big(i))).unwrap();
    }
    log.alter_topic_config("t", cfg.retention_bytes(2048))
        .unwrap();
    log.maintain().unwrap();
    let start = log
        .partition_info(&TopicPartition::new("t", 0))
        .unwrap()
        .start_offset;
    assert!(start > 3, "retention took the marker (start {start})");

    let f = r.read(10).unwrap();
    assert_eq!(
        f.skipped,
        Some(1..start),
        "every offset not returned is reported, the held ones included"
    );
    assert_eq!(f.records.first().map(|r| r.offset), Some(start));
    log.close().unwrap();
}

/// Regression (review): `verify` listed only `*.log` files, so a directory
/// caught in the middle of a compaction's swap (the cleaned copy as
/// `.log.swap`, its inputs as `.log` or `.log.deleted`) showed a gap and
/// exited 1 on a healthy log.
#[test]
fn regression_verify_takes_a_mid_swap_directory_as_recovery_would() {
    let dir = TestDir::new("verify-mid-swap");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().segment_bytes(1024))
            .unwrap();
        for i in 0..100 {
            log.producer().send("t", Record::new(value_of(i))).unwrap();
        }
        log.close().unwrap();
    }
    let part = dir.join("t-0");
    let logs = segment_files(&part, "log");
    assert!(logs.len() > 4);
    assert!(streamlog::inspect::verify_dir(dir.path())
        .unwrap()
        .problems
        .is_empty());
    // The cleaned copy of the first three segments (nothing to remove: the
    // same batches, one file).
    let merged: Vec<u8> = logs[..3]
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    let mut swap = logs[0].clone().into_os_string();
    swap.push(".swap");
    std::fs::write(&swap, merged).unwrap();
    let problems = |what: &str| {
        let r = streamlog::inspect::verify_dir(dir.path()).unwrap();
        assert!(r.problems.is_empty(), "{what}: {:?}", r.problems);
    };
    problems("the swap written, its inputs in place");
    for (i, p) in logs[..3].iter().enumerate() {
        for ext in ["log", "index", "timeindex"] {
            let from = p.with_extension(ext);
            let mut to = from.clone().into_os_string();
            to.push(".deleted");
            std::fs::rename(&from, &to).unwrap();
        }
        problems(&format!("{} inputs renamed", i + 1));
    }
}
