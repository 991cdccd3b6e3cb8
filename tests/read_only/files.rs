//! What a read-only open leaves alone (every byte), refuses (what is not a
//! log), and stops at (a torn tail); the committed fixtures read as a
//! `Log` reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::value_of;
use crate::common::{copy_dir, segment_files, TestDir};
use streamlog::{
    CleanupPolicy, ConsumerConfig, Error, IsolationLevel, Log, LogReader, OffsetAndMetadata,
    OffsetReset, Record, TopicConfig, TopicPartition,
};

/// Every file under `dir`: its size, modification time and bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::metadata(&d).unwrap();
        out.insert(d.clone(), (0, meta.modified().unwrap(), Vec::new()));
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path, (meta.len(), meta.modified().unwrap(), bytes));
            }
        }
    }
    out
}

/// Everything a reader offers, exercised over every partition.
fn read_everything(reader: &LogReader) -> usize {
    let mut n = 0;
    for topic in reader.topics().unwrap() {
        let cfg = reader.topic_config(&topic).unwrap();
        for p in 0..cfg.partition_count() {
            let tp = TopicPartition::new(topic.clone(), p);
            let info = reader.partition_info(&tp).unwrap();
            reader.offset_for_timestamp(&tp, 0).unwrap();
            for iso in [
                IsolationLevel::ReadCommitted,
                IsolationLevel::ReadUncommitted,
            ] {
                let mut r = reader
                    .partition_reader(&tp, info.start_offset, iso)
                    .unwrap();
                loop {
                    let f = r.read(1000).unwrap();
                    if f.is_empty() {
                        break;
                    }
                    n += f.len();
                }
            }
        }
    }
    for g in reader.groups().unwrap() {
        n += reader.committed_offsets(&g).unwrap().len();
    }
    n
}

#[test]
fn a_read_only_open_writes_nothing_and_refuses_what_is_not_a_log() {
    let dir = TestDir::new("read-only-untouched");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("a", TopicConfig::new().partitions(2).segment_bytes(1024))
        .unwrap();
    log.create_topic(
        "b",
        TopicConfig::new().cleanup_policy(CleanupPolicy::Compact),
    )
    .unwrap();
    for i in 0..200u64 {
        let key = format!("k{}", i % 7).into_bytes();
        log.producer()
            .send("a", Record::new(value_of(i)).key(key.clone()))
            .unwrap();
        log.producer()
            .send("b", Record::new(value_of(i)).key(key))
            .unwrap();
    }
    let mut t = log.transactional_producer("tx").unwrap();
    let mut txn = t.begin_transaction().unwrap();
    txn.send("a", Record::new(b"in a transaction")).unwrap();
    txn.commit().unwrap();
    log.commit_offsets(
        "g",
        &[(TopicPartition::new("a", 0), OffsetAndMetadata::new(3))],
    )
    .unwrap();
    log.close().unwrap();
    let before = snapshot(dir.path());
    let reader = Log::open_read_only(dir.path()).unwrap();
    assert!(read_everything(&reader) > 400);
    drop(reader);
    assert!(
        before == snapshot(dir.path()),
        "a read-only open changed the directory"
    );

    // Not a log: nothing is created, and the error says why.
    let missing = dir.join("missing");
    let e = Log::open_read_only(&missing).unwrap_err();
    assert!(
        matches!(&e, Error::NotALog { path, .. } if *path == missing),
        "{e}"
    );
    assert!(!missing.exists());
    let file = dir.join("a-file");
    std::fs::write(&file, b"hello").unwrap();
    let e = Log::open_read_only(&file).unwrap_err();
    assert!(matches!(e, Error::NotALog { reason, .. } if reason.contains("not a directory")));
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = Log::open_read_only(&empty).unwrap_err();
    assert!(matches!(e, Error::NotALog { reason, .. } if reason.contains("topics.registry")));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    // A garbage registry is damage, named.
    std::fs::write(empty.join("topics.registry"), b"not a registry\n").unwrap();
    match Log::open_read_only(&empty).unwrap_err() {
        Error::Corrupted { path, .. } => assert_eq!(path, empty.join("topics.registry")),
        e => panic!("expected Corrupted, got {e}"),
    }
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 1);

    // A log that never had a topic (its writer open, or closed) is a log
    // of no topics, not "not a log".
    let fresh = dir.join("fresh");
    let writer = Log::open(&fresh).unwrap();
    for _ in 0..2 {
        let reader = Log::open_read_only(&fresh).unwrap();
        assert!(reader.topics().unwrap().is_empty());
        assert!(reader.groups().unwrap().is_empty());
    }
    writer.create_topic("late", TopicConfig::new()).unwrap();
    let reader = Log::open_read_only(&fresh).unwrap();
    assert_eq!(reader.topics().unwrap(), vec!["late".to_string()]);
    writer.close().unwrap();
}

/// The bytes of the last batch of `log_file`, and where it starts.
fn last_batch(log_file: &Path) -> (u64, Vec<u8>) {
    let dump = streamlog::inspect::dump_segment(log_file).unwrap();
    let b = dump.batches.last().unwrap();
    let bytes = std::fs::read(log_file).unwrap();
    let (pos, size) = (b.position as usize, b.size as usize);
    (b.base_offset, bytes[pos..pos + size].to_vec())
}

#[test]
fn a_torn_tail_ends_the_partition_at_the_last_valid_batch() {
    let dir = TestDir::new("read-only-torn");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new().segment_bytes(4096))
        .unwrap();
    for i in 0..20u64 {
        let recs = (i * 5..i * 5 + 5)
            .map(|o| Record::new(value_of(o)))
            .collect();
        log.producer().send_batch("t", recs).unwrap();
    }
    log.close().unwrap();
    let tp = TopicPartition::new("t", 0);
    let last = segment_files(&dir.join("t-0"), "log").pop().unwrap();
    let (base, batch) = last_batch(&last);
    assert_eq!(base, 95);
    // The last batch again, as the next one (offset 100), in ways a
    // writer caught mid-copy (or damage) leaves it; and once whole.
    let with_base = |o: u64| {
        let mut b = batch.clone();
        b[..8].copy_from_slice(&o.to_be_bytes());
        b
    };
    let mut flipped = with_base(100);
    let at = flipped.len() - 3;
    flipped[at] ^= 0x40;
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        (
            "half a batch",
            with_base(100)[..batch.len() / 2].to_vec(),
            100,
        ),
        ("a bad CRC", flipped, 100),
        ("a base offset that does not continue", with_base(101), 100),
        (
            "garbage",
            b"\x00\x00\x00\x00\x00\x00\x00\x64garbage!".to_vec(),
            100,
        ),
        ("zeros", vec![0; 4096], 100),
        ("a whole next batch", with_base(100), 105),
    ];
    for (what, tail, end) in cases {
        let copy = TestDir::new("read-only-torn-copy");
        copy_dir(dir.path(), copy.path());
        let file = copy.join("t-0").join(last.file_name().unwrap());
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend_from_slice(&tail);
        std::fs::write(&file, bytes).unwrap();
        let reader = Log::open_read_only(copy.path()).unwrap();
        assert_eq!(
            reader.partition_info(&tp).unwrap().end_offset,
            end,
            "{what}"
        );
        let mut p = reader
            .partition_reader(&tp, 0, IsolationLevel::ReadCommitted)
            .unwrap();
        let got: Vec<u64> = p
            .read(1000)
            .unwrap()
            .into_iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(got, (0..end).collect::<Vec<_>>(), "{what}");
        assert!(p.read(1000).unwrap().is_empty(), "{what}");
        assert!(reader
            .partition_reader(&tp, end, IsolationLevel::ReadCommitted)
            .is_ok());
        let past = reader.partition_reader(&tp, end + 1, IsolationLevel::ReadCommitted);
        assert!(
            matches!(past, Err(Error::OffsetOutOfRange { latest, .. }) if latest == end),
            "{what}"
        );
    }
}

/// The committed fixtures, both layouts (v1, v2, zstd, compacted
/// topics, committed offsets), read read-only exactly as a `Log` reads
/// them.
#[test]
fn reads_the_v1_and_v2_fixtures_as_a_log_does() {
    for name in ["v1", "v2"] {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let pristine = TestDir::new("read-only-fixture");
        copy_dir(&fixture, pristine.path());
        let opened = TestDir::new("read-only-fixture-log");
        copy_dir(&fixture, opened.path());
        let log = Log::open(opened.path()).unwrap();
        let reader = Log::open_read_only(pristine.path()).unwrap();
        assert_eq!(reader.topics().unwrap(), log.topics());
        let mut compared = 0;
        for topic in log.topics() {
            for p in 0..log.topic_config(&topic).unwrap().partition_count() {
                let tp = TopicPartition::new(topic.clone(), p);
                let mut c = log.consumer(
                    ConsumerConfig::new()
                        .auto_offset_reset(OffsetReset::Earliest)
                        .max_poll_records(10_000),
                );
                c.assign(std::slice::from_ref(&tp)).unwrap();
                let mut want = Vec::new();
                loop {
                    let recs = c.poll(Duration::ZERO).unwrap();
                    if recs.is_empty() {
                        break;
                    }
                    for r in &recs {
                        want.push((
                            r.offset(),
                            r.timestamp(),
                            r.key().map(<[u8]>::to_vec),
                            r.value().map(<[u8]>::to_vec),
                            r.nullable_headers()
                                .map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                                .collect::<Vec<_>>(),
                        ));
                    }
                }
                let info = log.partition_info(&tp).unwrap();
                let mine = reader.partition_info(&tp).unwrap();
                assert_eq!(
                    (mine.start_offset, mine.end_offset),
                    (info.start_offset, info.end_offset)
                );
                let mut r = reader
                    .partition_reader(&tp, info.start_offset, IsolationLevel::ReadCommitted)
                    .unwrap();
                let mut got = Vec::new();
                loop {
                    let f = r.read(500).unwrap();
                    if f.is_empty() {
                        break;
                    }
                    got.extend(
                        f.into_iter()
                            .map(|r| (r.offset, r.timestamp, r.key, r.value, r.headers)),
                    );
                }
                assert_eq!(got, want, "{name}: {tp:?}");
                compared += got.len();
            }
        }
        assert!(compared > 20, "{name}: {compared} records");
        for g in log.groups() {
            assert_eq!(
                reader.committed_offsets(&g).unwrap(),
                log.committed_offsets(&g)
            );
        }
        assert_eq!(reader.groups().unwrap(), log.groups());
        assert!(!pristine.join(".lock").exists(), "no lock file is made");
    }
}
