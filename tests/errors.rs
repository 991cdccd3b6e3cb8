//! Bad input gets a typed error, creates nothing, and leaves the log usable.
mod common;

use common::{crc32, TestDir};
use std::path::Path;
use std::time::Duration;
use streamlog::{ConsumerConfig, Error, Log, OffsetReset, Record, TopicConfig, TopicPartition};

fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            for f in tree(&e.path()) {
                out.push(format!("{}/{f}", e.file_name().to_string_lossy()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_second_open_in_this_process_is_locked() {
    let dir = TestDir::new("lock");
    let log = Log::open(dir.path()).unwrap();
    match Log::open(dir.path()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    log.close().unwrap();
    Log::open(dir.path()).unwrap();
}

#[test]
fn bad_topic_names_are_rejected_and_create_nothing() {
    let dir = TestDir::new("names");
    let log = Log::open(dir.path()).unwrap();
    let before = tree(dir.path());
    let long = "x".repeat(250);
    for name in [
        "../x",
        "",
        &long,
        "a/b",
        ".",
        "..",
        "a b",
        "__consumer_offsets",
        "/abs",
        "t\n",
    ] {
        match log.create_topic(name, TopicConfig::new()) {
            Err(Error::InvalidTopicName { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name:?}: expected InvalidTopicName, got {other:?}"),
        }
    }
    assert_eq!(tree(dir.path()), before);
    assert!(!dir.path().parent().unwrap().join("x").exists());
    log.create_topic(&"x".repeat(249), TopicConfig::new())
        .unwrap();
}

#[test]
fn bad_configs_are_rejected_and_create_nothing() {
    let dir = TestDir::new("configs");
    let log = Log::open(dir.path()).unwrap();
    let before = tree(dir.path());
    for cfg in [
        TopicConfig::new().partitions(0),
        TopicConfig::new().segment_bytes(10),
        TopicConfig::new().segment_index_bytes(8),
        TopicConfig::new().max_record_bytes(0),
        TopicConfig::new().compression(streamlog::Compression::Zstd(99)),
    ] {
        assert!(matches!(
            log.create_topic("t", cfg),
            Err(Error::InvalidConfig { .. })
        ));
    }
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn oversized_records_are_rejected_and_the_log_stays_usable() {
    let dir = TestDir::new("big");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new().max_record_bytes(1000))
        .unwrap();
    let p = log.producer();
    p.send("t", Record::new(b"first")).unwrap();
    let tp = TopicPartition::new("t", 0);
    let before = log.partition_info(&tp).unwrap();
    match p.send("t", Record::new(vec![0u8; 1001])) {
        Err(Error::RecordTooLarge { size, max }) => assert!(size > 1000 && max == 1000),
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // One bad record fails the whole batch before anything is written.
    let batch = vec![Record::new(b"ok"), Record::new(vec![0u8; 2000]).key(b"k")];
    assert!(matches!(
        p.send_batch("t", batch),
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(log.partition_info(&tp).unwrap(), before);
    assert_eq!(
        p.send("t", Record::new(vec![1u8; 900])).unwrap().offset(),
        1
    );
    log.close().unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.partition_info(&tp).unwrap().end_offset, 2);
}

/// A batch larger than the format's 1 GiB is refused before any room is
/// made for it: the records here borrow one 8 MiB value 130 times, and the
/// call fails without allocating their gigabyte. Compressed too: it would
/// shrink to almost nothing, but no reader decompresses a section that
/// large, so it could never be read back.
#[test]
fn a_batch_over_the_formats_limit_is_refused_before_it_is_encoded() {
    let log = Log::temporary().unwrap();
    let value = vec![3u8; 8 << 20];
    for (topic, compression) in [
        ("plain", streamlog::Compression::None),
        ("zstd", streamlog::Compression::Zstd(1)),
    ] {
        let config = TopicConfig::new()
            .max_record_bytes(16 << 20)
            .compression(compression);
        log.create_topic(topic, config).unwrap();
        let p = log.producer();
        let batch: Vec<Record<'_>> = (0..130).map(|_| Record::new(&value[..])).collect();
        match p.send_batch(topic, batch) {
            Err(Error::RecordTooLarge { size, max }) => {
                assert_eq!(max, (1 << 30) - 1);
                assert!(size > max, "{size}");
            }
            other => panic!("{topic}: expected RecordTooLarge, got {other:?}"),
        }
        let tp = TopicPartition::new(topic, 0);
        assert_eq!(log.partition_info(&tp).unwrap().end_offset, 0);
        // A batch under the limit still goes in, and reads back.
        let batch: Vec<Record<'_>> = (0..3).map(|_| Record::new(&value[..])).collect();
        assert_eq!(p.send_batch(topic, batch).unwrap().len(), 3);
        let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
        c.assign(&[tp]).unwrap();
        let got = c.poll(Duration::from_secs(5)).unwrap();
        assert_eq!(got.len(), 3, "{topic}");
        assert!(got.iter().all(|r| r.value() == Some(&value[..])));
    }
}

/// The record size limit is the record's size on its own, whatever batch
/// it travels in: in a batch its offset and timestamp deltas may take more
/// bytes, and that must not turn a record that fits into one that does not.
#[test]
fn the_size_limit_applies_to_a_record_alone_whatever_its_batch() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().max_record_bytes(1000))
        .unwrap();
    let p = log.producer();
    // The largest value that fits alone.
    let fits = (900..1000)
        .rev()
        .find(|&n| p.send("t", Record::new(vec![1u8; n])).is_ok())
        .unwrap();
    assert!(matches!(
        p.send("t", Record::new(vec![1u8; fits + 1])),
        Err(Error::RecordTooLarge { max: 1000, .. })
    ));
    // 300 of them in one batch: offset deltas up to 299 (two varint bytes)
    // and timestamp deltas of years (five and more).
    let batch: Vec<Record<'_>> = (0..300i64)
        .map(|i| Record::new(vec![2u8; fits]).timestamp(1_000_000_000_000 + i * 100_000_000))
        .collect();
    let mds = p.send_batch("t", batch).unwrap();
    assert_eq!(mds.len(), 300);
    // One byte more fails the whole batch, wherever it sits.
    for at in [0usize, 299] {
        let batch: Vec<Record<'_>> = (0..300)
            .map(|i| Record::new(vec![3u8; if i == at { fits + 1 } else { fits }]))
            .collect();
        assert!(matches!(
            p.send_batch("t", batch),
            Err(Error::RecordTooLarge { max: 1000, .. })
        ));
    }
}

#[test]
fn unknown_topics_partitions_and_offsets_are_typed_errors() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(2))
        .unwrap();
    let p = log.producer();
    assert!(matches!(
        p.send("nope", Record::new(b"x")),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        p.send_to("t", 2, Record::new(b"x")),
        Err(Error::UnknownPartition {
            partition: 2,
            partitions: 2,
            ..
        })
    ));
    assert!(matches!(
        log.create_topic("t", TopicConfig::new()),
        Err(Error::TopicExists { .. })
    ));
    p.send_to("t", 0, Record::new(b"x")).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(Default::default());
    assert!(matches!(c.seek(&tp, 0), Err(Error::NotAssigned { .. })));
    c.assign(std::slice::from_ref(&tp)).unwrap();
    match c.seek(&tp, 5) {
        Err(Error::OffsetOutOfRange {
            requested,
            earliest,
            latest,
        }) => assert_eq!((requested, earliest, latest), (5, 0, 1)),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    c.seek(&tp, 1).unwrap();
    let mut strict = log
        .consumer(streamlog::ConsumerConfig::new().auto_offset_reset(streamlog::OffsetReset::None));
    strict.assign(std::slice::from_ref(&tp)).unwrap();
    assert!(matches!(
        strict.poll(std::time::Duration::ZERO),
        Err(Error::NoOffset { .. })
    ));
}

#[test]
fn deleted_topics_disappear_and_can_be_recreated() {
    let dir = TestDir::new("delete");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new().partitions(3))
        .unwrap();
    log.producer().send("t", Record::new(b"x")).unwrap();
    log.delete_topic("t").unwrap();
    assert!(log.topics().is_empty());
    assert!(!dir.join("t-0").exists());
    assert!(matches!(
        log.delete_topic("t"),
        Err(Error::UnknownTopic { .. })
    ));
    log.create_topic("t", TopicConfig::new()).unwrap();
    assert_eq!(
        log.producer()
            .send("t", Record::new(b"y"))
            .unwrap()
            .offset(),
        0
    );
    log.close().unwrap();
    assert_eq!(Log::open(dir.path()).unwrap().topics(), vec!["t"]);
}

#[test]
fn stray_files_in_the_log_directory_are_ignored() {
    let dir = TestDir::new("stray");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        log.producer().send("t", Record::new(b"x")).unwrap();
        log.close().unwrap();
    }
    std::fs::write(dir.join("notes.txt"), b"hello").unwrap();
    std::fs::create_dir_all(dir.join("other-0")).unwrap();
    std::fs::write(dir.join("t-0/README"), b"operator notes").unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.topics(), vec!["t"]);
    assert_eq!(
        log.partition_info(&TopicPartition::new("t", 0))
            .unwrap()
            .end_offset,
        1
    );
}

#[test]
fn a_damaged_checkpoint_falls_back_to_a_full_scan() {
    let dir = TestDir::new("checkpoint");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().segment_bytes(1024))
            .unwrap();
        for _ in 0..100 {
            log.producer()
                .send("t", Record::new(b"0123456789"))
                .unwrap();
        }
        log.close().unwrap();
    }
    std::fs::write(
        dir.join("partitions.checkpoint"),
        b"streamlog-checkpoint 1\ngarbage\n",
    )
    .unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert!(log.recovery_report().checkpoint_ignored.is_some());
    assert_eq!(
        log.partition_info(&TopicPartition::new("t", 0))
            .unwrap()
            .end_offset,
        100
    );
}

#[test]
fn a_registry_naming_a_topic_twice_is_rejected() {
    let dir = TestDir::new("registry-twice");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        log.close().unwrap();
    }
    let reg = dir.join("topics.registry");
    let text = String::from_utf8(std::fs::read(&reg).unwrap()).unwrap();
    let line = text.lines().nth(1).unwrap();
    let body = format!("streamlog-topics 1\n{line}\n{line}\n");
    let crc = crc32(body.as_bytes());
    std::fs::write(&reg, format!("{body}crc32 {crc:08x}\n")).unwrap();
    assert!(matches!(
        Log::open(dir.path()),
        Err(Error::Corrupted { .. })
    ));
}

#[test]
fn a_damaged_registry_is_a_typed_error_not_an_empty_log() {
    let dir = TestDir::new("registry");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        log.close().unwrap();
    }
    let reg = dir.join("topics.registry");
    let mut bytes = std::fs::read(&reg).unwrap();
    bytes[25] ^= 1;
    std::fs::write(&reg, &bytes).unwrap();
    match Log::open(dir.path()) {
        Err(Error::Corrupted { path, .. }) => assert_eq!(path, reg),
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

/// A closed log holding one record in topic `t`: the directory, its one
/// segment file and that file's bytes.
fn one_record_log(name: &str) -> (TestDir, std::path::PathBuf, Vec<u8>) {
    let dir = TestDir::new(name);
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    log.producer().send("t", Record::new(b"x")).unwrap();
    log.close().unwrap();
    let seg = dir.join("t-0/00000000000000000000.log");
    let bytes = std::fs::read(&seg).unwrap();
    (dir, seg, bytes)
}

#[test]
fn a_batch_from_a_newer_format_version_is_unsupported() {
    // A CRC-valid batch with magic 3, and one with an attribute bit this
    // build does not know (bit 7): written by something newer, never cut
    // off as damage.
    for (what, magic, attr_bit) in [("magic", 3u8, 0u16), ("attribute bit", 2, 1 << 7)] {
        let (dir, seg, mut bytes) = one_record_log("version");
        bytes[16] = magic;
        let attrs = u16::from_be_bytes([bytes[21], bytes[22]]) | attr_bit;
        bytes[21..23].copy_from_slice(&attrs.to_be_bytes());
        // The CRC-32C covers the attributes to the end, not the magic.
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&seg, &bytes).unwrap();
        match Log::open(dir.path()) {
            Err(Error::UnsupportedVersion {
                found, supported, ..
            }) => assert_eq!((found, supported), (u32::from(magic), 2), "{what}"),
            other => panic!("{what}: expected UnsupportedVersion, got {other:?}"),
        }
        // Nothing was truncated by the failed open.
        assert_eq!(std::fs::read(&seg).unwrap(), bytes, "{what}");
    }
}

/// A batch compressed with a codec this build does not read (Kafka's gzip,
/// snappy, lz4) is a typed error, not damage: never cut off.
#[test]
fn a_batch_in_an_unsupported_codec_is_refused_not_truncated() {
    for (codec, name) in [(1u8, "gzip"), (2, "snappy"), (3, "lz4")] {
        let (dir, seg, mut bytes) = one_record_log("codec");
        bytes[22] = (bytes[22] & !0b111) | codec;
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&seg, &bytes).unwrap();
        match Log::open(dir.path()) {
            Err(Error::UnsupportedCompression {
                codec: c, position, ..
            }) => {
                assert_eq!((c, position), (name, 0))
            }
            other => panic!("{name}: expected UnsupportedCompression, got {other:?}"),
        }
        assert_eq!(std::fs::read(&seg).unwrap(), bytes, "{name}");
    }
}

/// Misuse that is not configuration gets its own variant, not
/// `InvalidConfig`.
#[test]
fn misuse_gets_specific_errors_not_invalid_config() {
    use std::time::Duration;
    use streamlog::{Consumer, ConsumerConfig, RebalanceListener, TopicPartition};
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    // An empty batch is nothing to send, not an error.
    assert!(p
        .send_batch("t", Vec::<Record<'_>>::new())
        .unwrap()
        .is_empty());
    let tp = TopicPartition::new("t", 0);
    let mut plain = log.consumer(ConsumerConfig::new());
    assert!(matches!(plain.commit(), Err(Error::NoGroup)));
    assert!(matches!(plain.subscribe(&["t"]), Err(Error::NoGroup)));
    let mut assigned = log.consumer(ConsumerConfig::new().group("g"));
    assigned.assign(std::slice::from_ref(&tp)).unwrap();
    assert!(matches!(
        assigned.subscribe(&["t"]),
        Err(Error::IllegalState { .. })
    ));
    let mut member = log.consumer(ConsumerConfig::new().group("h"));
    member.subscribe(&["t"]).unwrap();
    assert!(matches!(
        member.assign(std::slice::from_ref(&tp)),
        Err(Error::IllegalState { .. })
    ));
    // poll from inside a rebalance listener.
    struct Repoll(std::sync::Arc<std::sync::Mutex<Option<String>>>);
    impl RebalanceListener for Repoll {
        fn on_partitions_assigned(&mut self, c: &mut Consumer, _: &[TopicPartition]) {
            let e = c.poll(Duration::ZERO).unwrap_err();
            assert!(matches!(e, Error::IllegalState { .. }), "{e}");
            *self.0.lock().unwrap() = Some(e.to_string());
        }
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let mut c = log.consumer(ConsumerConfig::new().group("k"));
    c.set_rebalance_listener(Repoll(seen.clone()));
    c.subscribe(&["t"]).unwrap();
    c.poll(Duration::from_millis(10)).unwrap();
    let msg = seen.lock().unwrap().clone().expect("the listener ran");
    assert!(msg.contains("rebalance listener"), "{msg}");
}

/// A failed maintenance pass on the opt-in thread is kept for the caller,
/// and the thread goes on.
#[test]
fn the_maintenance_thread_keeps_its_failures() {
    let log = Log::temporary().unwrap();
    let handle = log
        .spawn_maintenance(std::time::Duration::from_millis(5))
        .unwrap();
    log.clone().close().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while handle.failures() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(handle.failures() >= 2, "the thread kept running passes");
    assert!(matches!(handle.take_last_error(), Some(Error::Closed)));
    handle.stop();
}

/// Regression (reliability audit): `Error::Io`'s message left out the
/// operating system's cause.
#[test]
fn io_errors_show_the_os_cause() {
    let dir = TestDir::new("io-cause");
    std::fs::create_dir_all(dir.path()).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Log::open(file.join("log")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Io { .. }), "{msg}");
    assert!(msg.contains("os error"), "{msg}");
}
