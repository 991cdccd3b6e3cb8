//! Regression (reliability audit, bugs 2, 3 and 8): a stray segment file inside the active segment's range hid durable records and reused their offsets; a stray file above the end became the active segment, so every poll at the end failed; a deleted active segment made new sends reuse offsets, with no report.
//!
//! The end of a partition comes from what was scanned and checkpointed,
//! never from a file name. A file that does not fit is reported and set
//! aside (renamed, never deleted); missing durable offsets are reported,
//! never handed out again, and refused by `AbsoluteConsistency`.

mod common;

use common::{read_all, segment_files, TestDir};
use streamlog::{
    CorruptionKind, Error, Log, LogOptions, Record, RecoveryMode, TopicConfig, TopicPartition,
};

/// A partition of 1,000 records, 100 per sealed segment... and an active one.
fn fill(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let log = Log::open(dir).unwrap();
    log.create_topic("t", TopicConfig::new().segment_bytes(4096))
        .unwrap();
    let p = log.producer();
    for i in 0..1000u32 {
        p.send("t", Record::new(format!("{i:05}").into_bytes()).key(b"k"))
            .unwrap();
    }
    log.close().unwrap();
    segment_files(&dir.join("t-0"), "log")
}

fn name(base: u64) -> String {
    format!("{base:020}.log")
}

fn base_of(p: &std::path::Path) -> u64 {
    p.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

fn values(log: &Log) -> Vec<Vec<u8>> {
    read_all(
        log,
        "t",
        0,
        log.partition_info(&TopicPartition::new("t", 0))
            .unwrap()
            .start_offset,
    )
    .into_iter()
    .map(|(_, v)| v)
    .collect()
}

fn expected() -> Vec<Vec<u8>> {
    (0..1000u32)
        .map(|i| format!("{i:05}").into_bytes())
        .collect()
}

#[test]
fn a_stray_file_inside_the_active_segment_is_set_aside() {
    let dir = TestDir::new("stray-inside");
    let segs = fill(dir.path());
    let active = base_of(segs.last().unwrap());
    let stray = dir.join("t-0").join(name(active + 3));
    std::fs::write(&stray, b"").unwrap();
    let log = Log::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    assert_eq!(log.partition_info(&tp).unwrap().end_offset, 1000);
    assert!(values(&log) == expected(), "values differ");
    assert_eq!(
        log.producer()
            .send("t", Record::new(b"next"))
            .unwrap()
            .offset(),
        1000
    );
    let aside = &log.recovery_report().set_aside;
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0].exists() && !stray.exists(),
        "renamed, not deleted: {aside:?}"
    );
}

#[test]
fn a_stray_file_above_the_end_is_set_aside() {
    let dir = TestDir::new("stray-above");
    fill(dir.path());
    for (base, bytes) in [
        (5000u64, &b""[..]),
        (7000, &b"not a batch at all, just bytes"[..]),
    ] {
        std::fs::write(dir.join("t-0").join(name(base)), bytes).unwrap();
    }
    let log = Log::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    assert_eq!(log.partition_info(&tp).unwrap().end_offset, 1000);
    assert!(values(&log) == expected(), "values differ");
    // Polling at the end waits for data instead of failing.
    let mut c = log.consumer(streamlog::ConsumerConfig::new());
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 1000).unwrap();
    assert!(c.poll(std::time::Duration::ZERO).unwrap().is_empty());
    assert_eq!(log.recovery_report().set_aside.len(), 2);
}

#[test]
fn a_deleted_active_segment_never_gives_its_offsets_again() {
    let dir = TestDir::new("deleted-active");
    let segs = fill(dir.path());
    let active = segs.last().unwrap().clone();
    let lost_from = base_of(&active);
    std::fs::remove_file(&active).unwrap();
    // AbsoluteConsistency refuses to open.
    let err = LogOptions::new()
        .recovery(RecoveryMode::AbsoluteConsistency)
        .open(dir.path())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Corrupted {
                kind: CorruptionKind::MissingRecords { .. },
                ..
            }
        ),
        "{err}"
    );
    // The default reports it and continues after the lost offsets.
    let log = Log::open(dir.path()).unwrap();
    let missing = &log.recovery_report().missing_offsets;
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!((missing[0].from, missing[0].to), (lost_from, 1000));
    let tp = TopicPartition::new("t", 0);
    assert_eq!(log.partition_info(&tp).unwrap().end_offset, 1000);
    assert_eq!(
        log.producer()
            .send("t", Record::new(b"next"))
            .unwrap()
            .offset(),
        1000
    );
    let mut want = expected();
    want.truncate(lost_from as usize);
    want.push(b"next".to_vec());
    assert!(values(&log) == want, "values differ");
    log.close().unwrap();
    // And it stays so across a reopen, with nothing more to report.
    let log = Log::open(dir.path()).unwrap();
    assert!(log.recovery_report().missing_offsets.is_empty());
    assert!(values(&log) == want, "values differ");
}

#[test]
fn a_deleted_first_segment_is_reported() {
    let dir = TestDir::new("deleted-first");
    let segs = fill(dir.path());
    std::fs::remove_file(&segs[0]).unwrap();
    assert!(LogOptions::new()
        .recovery(RecoveryMode::AbsoluteConsistency)
        .open(dir.path())
        .is_err());
    let log = Log::open(dir.path()).unwrap();
    let missing = &log.recovery_report().missing_offsets;
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!((missing[0].from, missing[0].to), (0, base_of(&segs[1])));
    assert_eq!(
        log.partition_info(&TopicPartition::new("t", 0))
            .unwrap()
            .start_offset,
        base_of(&segs[1])
    );
}

#[test]
fn a_stray_file_below_the_first_segment_is_set_aside() {
    let dir = TestDir::new("stray-below");
    let segs = fill(dir.path());
    // Retention moved the start: the first segment is no longer at 0.
    std::fs::remove_file(&segs[0]).unwrap();
    std::fs::remove_file(dir.join("partitions.checkpoint")).unwrap();
    std::fs::write(dir.join("t-0").join(name(0)), b"").unwrap();
    let log = Log::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let info = log.partition_info(&tp).unwrap();
    assert_eq!(
        (info.start_offset, info.end_offset),
        (base_of(&segs[1]), 1000)
    );
    assert!(log.recovery_report().truncations.is_empty());
    assert_eq!(log.recovery_report().set_aside.len(), 1);
    let want: Vec<Vec<u8>> = expected().split_off(base_of(&segs[1]) as usize);
    assert!(values(&log) == want, "values differ");
}
