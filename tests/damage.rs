//! Damage on disk: torn tails, garbage, broken indexes and bit flips.
mod common;

use common::{copy_dir, read_all, segment_files, TestDir};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use streamlog::{
    ConsumerConfig, CorruptionKind, Error, Log, LogOptions, OffsetReset, Record, RecoveryMode,
    TopicConfig, TopicPartition,
};

fn fill(dir: &Path, n: u32, segment_bytes: u64) {
    let log = Log::open(dir).unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .segment_bytes(segment_bytes)
            .index_interval_bytes(128),
    )
    .unwrap();
    let p = log.producer();
    for i in 0..n {
        p.send(
            "t",
            Record::new(format!("value {i:06}").into_bytes()).key(b"k"),
        )
        .unwrap();
    }
    log.close().unwrap();
}

fn last_log(dir: &Path) -> std::path::PathBuf {
    segment_files(&dir.join("t-0"), "log").pop().unwrap()
}

fn assert_prefix(log: &Log, n: usize) {
    let got = read_all(log, "t", 0, 0);
    assert_eq!(got.len(), n);
    for (i, (off, v)) in got.iter().enumerate() {
        assert_eq!(
            (*off, v.as_slice()),
            (i as u64, format!("value {i:06}").as_bytes())
        );
    }
}

#[test]
fn torn_tail_recovers_to_an_exact_prefix() {
    for unclean in [false, true] {
        let dir = TestDir::new("torn");
        fill(dir.path(), 100, 1 << 20);
        let seg = last_log(dir.path());
        let len = std::fs::metadata(&seg).unwrap().len();
        // Cut the last batch in the middle.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 7)
            .unwrap();
        if unclean {
            std::fs::remove_file(dir.join("clean-shutdown")).unwrap();
        }
        let log = Log::open(dir.path()).unwrap();
        let report = log.recovery_report();
        assert_eq!(report.truncations.len(), 1, "{report:?}");
        assert_eq!(report.truncations[0].path, seg);
        assert!(report.truncations[0].bytes > 0);
        assert_prefix(&log, 99);
        // Offset 99 was checkpointed (the log was closed cleanly): it is
        // reported missing and never handed out again (reliability bug 3).
        let missing = &report.missing_offsets;
        assert_eq!(missing.len(), 1, "{report:?}");
        assert_eq!((missing[0].from, missing[0].to), (99, 100));
        assert_eq!(
            log.producer()
                .send("t", Record::new(b"x"))
                .unwrap()
                .offset(),
            100
        );
    }
}

#[test]
fn garbage_appended_to_the_last_segment_is_cut_off() {
    let dir = TestDir::new("garbage");
    fill(dir.path(), 50, 1 << 20);
    let seg = last_log(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[0xAB; 333])
        .unwrap();
    let log = Log::open(dir.path()).unwrap();
    let t = &log.recovery_report().truncations;
    assert_eq!((t.len(), t[0].position, t[0].bytes), (1, len, 333));
    assert_prefix(&log, 50);
    assert_eq!(
        log.producer()
            .send("t", Record::new(b"x"))
            .unwrap()
            .offset(),
        50
    );
}

#[test]
fn absolute_consistency_fails_the_open_instead() {
    let dir = TestDir::new("absolute");
    fill(dir.path(), 50, 1 << 20);
    let seg = last_log(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(b"not a batch at all, not at all")
        .unwrap();
    let err = LogOptions::new()
        .recovery(RecoveryMode::AbsoluteConsistency)
        .open(dir.path())
        .unwrap_err();
    match err {
        Error::Corrupted { path, position, .. } => assert_eq!((path, position), (seg.clone(), len)),
        e => panic!("unexpected {e}"),
    }
    // Nothing was truncated: the tolerant mode still sees the damage.
    assert_eq!(
        Log::open(dir.path())
            .unwrap()
            .recovery_report()
            .truncations
            .len(),
        1
    );
}

#[test]
fn a_crash_mid_append_leaves_a_recoverable_directory() {
    // Copying a live log's directory is what kill -9 leaves behind: the
    // active segment still has its zero-filled preallocated tail.
    let live = TestDir::new("live");
    let copy = TestDir::new("copy");
    let log = Log::open(live.path()).unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .segment_bytes(8192)
            .index_interval_bytes(128),
    )
    .unwrap();
    let p = log.producer();
    for i in 0..300u32 {
        p.send("t", Record::new(format!("value {i:06}").into_bytes()))
            .unwrap();
    }
    copy_dir(live.path(), copy.path());
    let recovered = LogOptions::new()
        .recovery(RecoveryMode::AbsoluteConsistency)
        .open(copy.path())
        .unwrap();
    assert!(!recovered.recovery_report().clean_shutdown);
    assert!(recovered.recovery_report().truncations.is_empty());
    assert_prefix(&recovered, 300);
    assert_eq!(
        recovered
            .producer()
            .send("t", Record::new(b"x"))
            .unwrap()
            .offset(),
        300
    );
}

#[test]
fn missing_truncated_or_zeroed_indexes_are_rebuilt() {
    for damage in ["missing", "truncated", "zeroed", "garbage"] {
        let dir = TestDir::new("index");
        fill(dir.path(), 2000, 8192);
        let indexes = segment_files(&dir.join("t-0"), "index");
        assert!(indexes.len() > 3);
        for idx in &indexes[..indexes.len() - 1] {
            let len = std::fs::metadata(idx).unwrap().len();
            match damage {
                "missing" => std::fs::remove_file(idx).unwrap(),
                "truncated" => OpenOptions::new()
                    .write(true)
                    .open(idx)
                    .unwrap()
                    .set_len(len / 2 + 3)
                    .unwrap(),
                "zeroed" => std::fs::write(idx, vec![0u8; 10 << 10]).unwrap(),
                _ => std::fs::write(idx, (0..len).map(|i| (i * 7) as u8).collect::<Vec<_>>())
                    .unwrap(),
            }
        }
        let log = Log::open(dir.path()).unwrap();
        assert!(
            !log.recovery_report().indexes_rebuilt.is_empty(),
            "{damage}"
        );
        for from in [0u64, 1, 333, 1024, 1999] {
            let got = read_all(&log, "t", 0, from);
            assert_eq!(
                got[0],
                (from, format!("value {from:06}").into_bytes()),
                "{damage} from {from}"
            );
            assert_eq!(got.len() as u64, 2000 - from);
        }
    }
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_detected_when_read() {
    let dir = TestDir::new("flip");
    fill(dir.path(), 1000, 4096);
    let first = segment_files(&dir.join("t-0"), "log").remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let at = 1500;
    bytes[at] ^= 0x04;
    std::fs::write(&first, &bytes).unwrap();
    let log = Log::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(10_000),
    );
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let mut delivered = 0u64;
    let err = loop {
        match c.poll(std::time::Duration::ZERO) {
            Ok(recs) => {
                for r in &recs {
                    assert_eq!(
                        r.value(),
                        Some(format!("value {:06}", r.offset()).as_bytes())
                    );
                }
                assert!(!recs.is_empty(), "the damaged batch was skipped silently");
                delivered += recs.len() as u64;
            }
            Err(e) => break e,
        }
    };
    match err {
        Error::Corrupted {
            path,
            position,
            offset,
            kind,
        } => {
            assert_eq!(path, first);
            assert!(
                position <= at as u64 && at as u64 - position < 200,
                "position {position}"
            );
            assert_eq!(offset, Some(delivered));
            assert!(
                matches!(kind, CorruptionKind::CrcMismatch { .. }),
                "{kind:?}"
            );
        }
        e => panic!("unexpected {e}"),
    }
    // The error repeats rather than skipping the damage.
    assert!(matches!(
        c.poll(std::time::Duration::ZERO),
        Err(Error::Corrupted { .. })
    ));
    // Later data is still reachable by seeking past the damage.
    let got = read_all(&log, "t", 0, 500);
    assert_eq!(got.len(), 500);
}
