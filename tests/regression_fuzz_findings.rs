//! Regressions for the fuzzers' findings:
//! 1. a batch header claiming ~4 billion records (with a valid CRC) made the
//!    reader allocate for all of them up front (9.7 GB) before parsing any;
//! 2. a v1 batch with producer id/epoch/sequence other than -1 was accepted,
//!    although v1 reserves those fields (and re-encoding changed its bytes);
//! 3. records with timestamp 0 at a segment's first offset made the index
//!    rule write the time entry (0, 0), which reads as zero fill: the
//!    segment scan's rebuilt time index was invalid (segment_scan, in CI),
//!    and every open rebuilt that segment's indexes.
mod common;

use common::{copy_dir, crc32, segment_files, TestDir};
use std::path::Path;
use streamlog::{CleanupPolicy, CorruptionKind, Error, Log, Record, TopicConfig, TopicPartition};

/// Batch positions in a segment file of Kafka's layout (v2).
fn batches_v2(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 12 <= bytes.len() {
        out.push(pos);
        pos += u32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize + 12;
    }
    out
}

/// Batch positions in a segment file of streamlog's first layout (v1).
fn batches_v1(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        out.push(pos);
        pos += u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize + 4;
    }
    out
}

/// Rewrites a header field of the last batch of `part`'s first segment
/// (v2), fixing the CRC-32C.
fn patch_last_batch_v2(dir: &Path, part: &str, at: usize, field: &[u8]) {
    let seg = segment_files(&dir.join(part), "log").remove(0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let b = *batches_v2(&bytes).last().unwrap();
    bytes[b + at..b + at + field.len()].copy_from_slice(field);
    let end = b + 12 + u32::from_be_bytes(bytes[b + 8..b + 12].try_into().unwrap()) as usize;
    let crc = crc32c::crc32c(&bytes[b + 21..end]);
    bytes[b + 17..b + 21].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&seg, bytes).unwrap();
}

/// The same for a v1 segment (CRC-32 over bytes 8.. of the batch).
fn patch_last_batch_v1(dir: &Path, part: &str, at: usize, field: &[u8]) {
    let seg = segment_files(&dir.join(part), "log").remove(0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let b = *batches_v1(&bytes).last().unwrap();
    bytes[b + at..b + at + field.len()].copy_from_slice(field);
    let end = b + 4 + u32::from_le_bytes(bytes[b..b + 4].try_into().unwrap()) as usize;
    let crc = crc32(&bytes[b + 8..end]);
    bytes[b + 4..b + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, bytes).unwrap();
}

fn setup(dir: &Path) {
    let log = Log::open(dir).unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .segment_bytes(1024)
            .cleanup_policy(CleanupPolicy::Compact),
    )
    .unwrap();
    for i in 0..60u32 {
        log.producer()
            .send(
                "t",
                Record::new(vec![b'v'; 40]).key(format!("k{}", i % 3).into_bytes()),
            )
            .unwrap();
    }
    log.close().unwrap();
}

#[test]
fn a_huge_record_count_is_an_error_not_an_allocation() {
    let dir = TestDir::new("huge-count");
    setup(dir.path());
    // last_offset_delta (byte 23) and record count (byte 57) of a
    // one-record batch, raised as far as the header's own check allows.
    patch_last_batch_v2(dir.path(), "t-0", 23, &(i32::MAX - 1).to_be_bytes());
    patch_last_batch_v2(dir.path(), "t-0", 57, &i32::MAX.to_be_bytes());
    let log = Log::open(dir.path()).unwrap();
    // Compaction reads every record of the sealed segment.
    match log.compact("t") {
        Err(Error::Corrupted { .. }) => {}
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[test]
fn reserved_producer_fields_are_rejected_in_v1() {
    let dir = TestDir::new("producer-fields");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1"),
        dir.path(),
    );
    // The first of plain-0's four segments: sealed, trusted at open.
    patch_last_batch_v1(dir.path(), "plain-0", 48, &7i64.to_le_bytes()); // producer id
    let log = Log::open(dir.path()).unwrap();
    let tp = TopicPartition::new("plain", 0);
    let err = common::first_read_error(&log, &tp);
    assert!(
        matches!(
            err,
            Some(Error::Corrupted {
                kind: CorruptionKind::BadRecord { .. },
                ..
            })
        ),
        "{err:?}"
    );
}

/// Regression (found by the `log_model` fuzz target): in the simulated file
/// system, a directory removed and later recreated at the same path brought
/// its removed files' synced contents back after a power cut, so a topic
/// deleted and created again came back holding the old topic's records.
/// A durable directory removal now takes everything durable below it.
#[test]
fn a_recreated_topic_does_not_bring_back_the_deleted_ones_records() {
    use streamlog::testing::{open_sim, SimFs};
    use streamlog::{LogOptions, SyncPolicy, TopicPartition};
    let opts = || LogOptions::new().sync(SyncPolicy::EveryWrite);
    let fs = SimFs::new(None, 1);
    let log = open_sim(&fs, "/log", opts()).unwrap();
    log.create_topic("a", TopicConfig::new()).unwrap();
    log.producer().send("a", Record::new(b"old")).unwrap();
    log.delete_topic("a").unwrap();
    log.create_topic("b", TopicConfig::new()).unwrap();
    let image = fs.cut_now();
    drop(log);
    let fs = SimFs::from_image(&image, None, 2);
    let log = open_sim(&fs, "/log", opts()).unwrap();
    log.create_topic("a", TopicConfig::new()).unwrap();
    let image = fs.cut_now();
    drop(log);
    let fs = SimFs::from_image(&image, None, 3);
    let log = open_sim(&fs, "/log", opts()).unwrap();
    let info = log.partition_info(&TopicPartition::new("a", 0)).unwrap();
    assert_eq!(
        info.end_offset, 0,
        "the new topic holds the deleted one's record"
    );
}

/// Finding 3: records with timestamp 0 at a segment's first offset made
/// the index rule write the time entry (0, 0), which reads as zero fill, so
/// every open rebuilt the indexes (and the fuzzer's rebuilt index was
/// invalid).
#[test]
fn timestamp_zero_at_the_first_offset_writes_no_unreadable_time_entry() {
    let dir = TestDir::new("ts-zero");
    let tp = TopicPartition::new("t", 0);
    let config = || {
        TopicConfig::new()
            .segment_bytes(4096)
            .index_interval_bytes(64)
    };
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", config()).unwrap();
        let p = log.producer();
        // Three records at timestamp 0, then larger ones: the first index
        // point comes while the largest timestamp is 0, at offset 0.
        for i in 0..300i64 {
            let ts = (i - 2).max(0) * 10;
            p.send("t", Record::new(vec![b'v'; 40]).timestamp(ts))
                .unwrap();
        }
        log.close().unwrap();
    }
    for _ in 0..2 {
        let log = Log::open(dir.path()).unwrap();
        let report = log.recovery_report();
        assert!(
            report.indexes_rebuilt.is_empty(),
            "a clean open rebuilt {:?}",
            report.indexes_rebuilt
        );
        assert_eq!(log.offset_for_timestamp(&tp, 0).unwrap(), Some(0));
        assert_eq!(log.offset_for_timestamp(&tp, 5).unwrap(), Some(3));
        assert_eq!(log.offset_for_timestamp(&tp, 1000).unwrap(), Some(102));
        assert_eq!(log.offset_for_timestamp(&tp, 2970).unwrap(), Some(299));
        assert_eq!(log.offset_for_timestamp(&tp, 2971).unwrap(), None);
        log.close().unwrap();
    }
    for seg in segment_files(&dir.path().join("t-0"), "timeindex") {
        let bytes = std::fs::read(&seg).unwrap();
        assert!(
            bytes.len() < 12 || bytes[..12] != [0u8; 12],
            "{} starts with the entry (0, 0)",
            seg.display()
        );
    }
}
