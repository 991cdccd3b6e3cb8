//! Committed fixtures: a small log written in format v1 with damaged copies
//! of it, and one written in format v2 (Kafka's layouts) with a manifest of
//! its records. Loaded by every test run forever, so a change that can no
//! longer read existing data, or reads it differently, fails here.
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

/// The v1 fixtures (`v1`, `v1-torn-tail`, `v1-bad-crc`, `v1-zeroed-index`)
/// were written by the last build that wrote format version 1 (commit
/// 17bf683) and are frozen: this build writes v2 and cannot make them again.
/// The v2 fixture is made by [`generate_v2`].
///
/// `cargo test --test fixtures -- --ignored generate_v2` rewrites it; only
/// do that for a deliberate format change, together with a version bump.
#[test]
#[ignore = "rewrites the committed v2 fixture"]
fn generate_v2() {
    let clock = ManualClock::new(1_700_000_000_000);
    // `.ci/run` writes a fresh copy elsewhere (tests/interop/kafka_format.sh).
    let root = std::env::var_os("STREAMLOG_FIXTURE_OUT").map_or_else(|| fixture(""), PathBuf::from);
    let dir = root.join("v2");
    let _ = std::fs::remove_dir_all(&dir);
    let log = LogOptions::new().clock(clock.clone()).open(&dir).unwrap();
    log.create_topic(
        "events",
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
        TopicConfig::new()
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(1024)
            .index_interval_bytes(64),
    )
    .unwrap();
    let p = log.producer();
    for i in 0..60 {
        clock.advance(Duration::from_millis(10));
        p.send_to("events", i % 2, v2_event(i)).unwrap();
    }
    for chunk in 0..4 {
        clock.advance(Duration::from_millis(100));
        let recs = (0..10).map(|j| v2_zipped(chunk * 10 + j)).collect();
        p.send_batch("zipped", recs).unwrap();
    }
    for i in 0..40 {
        clock.advance(Duration::from_millis(10));
        p.send("users", v2_user(i)).unwrap();
    }
    log.compact("users").unwrap();
    let mut c = log.consumer(ConsumerConfig::new().group("billing"));
    let tps = [
        TopicPartition::new("events", 0),
        TopicPartition::new("events", 1),
    ];
    c.assign(&tps).unwrap();
    c.commit_offsets(
        &[
            (
                tps[0].clone(),
                OffsetAndMetadata::new(17).metadata("fixture"),
            ),
            (tps[1].clone(), OffsetAndMetadata::new(5)),
        ]
        .into_iter()
        .collect(),
    )
    .unwrap();
    drop(c);
    // The manifest: every record as streamlog reads it back, checked here
    // against what was sent, for the interop check (tests/interop) and for
    // `the_v2_fixture_reads_back_exactly`.
    let mut manifest = String::new();
    for (topic, parts) in [("events", 2u32), ("zipped", 1), ("users", 1)] {
        for part in 0..parts {
            for r in read_full(&log, topic, part) {
                manifest.push_str(&format!("{topic}-{part}\t{}\n", r.line()));
            }
        }
    }
    // The group's committed offsets, which Kafka's offsets decoder must
    // read back from `__consumer_offsets`.
    let mut offsets = String::new();
    for (tp, o) in log.committed_offsets("billing") {
        offsets.push_str(&format!(
            "billing\t{}\t{}\t{}\t{}\n",
            tp.topic,
            tp.partition,
            o.offset(),
            o.metadata_str()
        ));
    }
    std::fs::write(root.join("v2-offsets.tsv"), offsets).unwrap();
    log.close().unwrap();
    std::fs::remove_file(dir.join(".lock")).unwrap();
    // The boot id of the machine that made it means nothing elsewhere.
    let _ = std::fs::remove_file(dir.join("session"));
    std::fs::write(root.join("v2-records.tsv"), manifest).unwrap();
}

/// Record `i` of the v2 fixture's "events": keyed, a header, every 7th
/// with a null header value, every 10th a tombstone.
fn v2_event(i: u32) -> Record<'static> {
    let mut r = if i % 10 == 9 {
        Record::tombstone(format!("k{i}").into_bytes())
    } else {
        Record::new(value("events", i)).key(format!("k{i}").into_bytes())
    };
    r = r.header("i", i.to_string().into_bytes());
    if i % 7 == 3 {
        r = r.null_header("trace");
    }
    r
}

fn v2_zipped(i: u32) -> Record<'static> {
    Record::new(value("zipped", i)).header("n", format!("{i}").into_bytes())
}

/// Updates of five users; every 9th a deletion.
fn v2_user(i: u32) -> Record<'static> {
    let key = format!("u{}", i % 5).into_bytes();
    if i % 9 == 8 {
        Record::tombstone(key)
    } else {
        Record::new(format!("user {} version {i}", i % 5).into_bytes()).key(key)
    }
}

/// One record as read back, with everything the manifest keeps.
#[derive(Debug, PartialEq)]
struct Full {
    offset: u64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn hex_or_dash(b: &Option<Vec<u8>>) -> String {
    match b {
        None => "-".into(),
        Some(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

impl Full {
    /// `offset, timestamp, key, value, headers` tab-separated; bytes as
    /// hex, null as `-`, headers as `name=hex|-` joined by commas.
    fn line(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}={}", hex_or_dash(v)))
            .collect();
        format!(
            "{}\t{}\t{}\t{}\t{}",
            self.offset,
            self.timestamp,
            hex_or_dash(&self.key),
            hex_or_dash(&self.value),
            headers.join(",")
        )
    }
}

fn read_full(log: &Log, topic: &str, p: u32) -> Vec<Full> {
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
            out.push(Full {
                offset: r.offset(),
                timestamp: r.timestamp(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                headers: r
                    .nullable_headers()
                    .map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                    .collect(),
            });
        }
    }
}

#[test]
fn the_v2_fixture_reads_back_exactly() {
    let (_dir, log) = open_copy("v2");
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.topics(), vec!["events", "users", "zipped"]);
    // What was sent, record for record, in the topics nothing removed from.
    for p in 0..2u32 {
        let got = read_full(&log, "events", p);
        let sent: Vec<u32> = (0..60).filter(|i| i % 2 == p).collect();
        assert_eq!(got.len(), sent.len());
        for (n, (g, &i)) in got.iter().zip(&sent).enumerate() {
            let want = v2_event(i);
            assert_eq!(g.offset, n as u64);
            assert_eq!(g.timestamp, 1_700_000_000_000 + 10 * (i64::from(i) + 1));
            assert_eq!(g.key.as_deref(), Some(format!("k{i}").as_bytes()));
            assert_eq!(g.value.is_none(), i % 10 == 9);
            let mut headers = vec![("i".to_owned(), Some(i.to_string().into_bytes()))];
            if i % 7 == 3 {
                headers.push(("trace".to_owned(), None));
            }
            assert_eq!(g.headers, headers);
            drop(want);
        }
    }
    let zipped = read_full(&log, "zipped", 0);
    assert_eq!(zipped.len(), 40);
    for (i, r) in zipped.iter().enumerate() {
        assert_eq!(r.value.as_deref(), Some(&value("zipped", i as u32)[..]));
    }
    // Compacted: gaps, and every key's latest record is there.
    let users = read_full(&log, "users", 0);
    assert!(users.len() < 40, "compaction removed records");
    assert!(users.windows(2).all(|w| w[1].offset > w[0].offset));
    for k in 0..5u32 {
        let latest = (0..40u32).filter(|i| i % 5 == k).max().unwrap();
        assert!(users.iter().any(|r| r.offset == u64::from(latest)), "u{k}");
    }
    // Everything matches the committed manifest (which the interop check
    // compares with Kafka's own decoding).
    let manifest = std::fs::read_to_string(fixture("v2-records.tsv")).unwrap();
    let mut lines = manifest.lines();
    for (topic, parts) in [("events", 2u32), ("zipped", 1), ("users", 1)] {
        for part in 0..parts {
            for r in read_full(&log, topic, part) {
                assert_eq!(
                    lines.next(),
                    Some(format!("{topic}-{part}\t{}", r.line()).as_str())
                );
            }
        }
    }
    assert_eq!(lines.next(), None);
    let offsets = log.committed_offsets("billing");
    assert_eq!(offsets.len(), 2);
    assert_eq!(
        (offsets[0].1.offset(), offsets[0].1.metadata_str()),
        (17, "fixture")
    );
    // Every segment and index is the v2 layout.
    let dump = streamlog::inspect::verify_dir(log.dir()).unwrap();
    assert!(dump.problems.is_empty(), "{:?}", dump.problems);
    let seg =
        streamlog::inspect::dump_segment(&log.dir().join("events-0/00000000000000000000.log"))
            .unwrap();
    assert!(seg
        .batches
        .iter()
        .all(|b| b.format_version == 2 && b.crc_ok));
}

/// A v1 log opened by this build: its partitions grow v2 segments after
/// their v1 ones (the v1 active segment is rolled at the first append),
/// compaction turns v1 input into v2, and everything reads back, before and
/// after a reopen.
#[test]
fn a_v1_log_grows_v2_segments_and_compacts_into_v2() {
    let (dir, log) = open_copy("v1");
    let p = log.producer();
    for i in 60..80u32 {
        p.send_to(
            "plain",
            0,
            Record::new(value("plain", i)).key(format!("k{i}").into_bytes()),
        )
        .unwrap();
    }
    p.send("users", Record::new(b"bob".to_vec()).key(b"u1".to_vec()))
        .unwrap();
    log.compact("users").unwrap();
    let check = |log: &Log| {
        let rows = read(log, "plain", 0);
        assert_eq!(rows.len(), 30 + 20);
        for (n, (o, _, v)) in rows.iter().enumerate() {
            assert_eq!(*o, n as u64);
            let i = if n < 30 {
                2 * n as u32
            } else {
                60 + (n as u32 - 30)
            };
            assert_eq!(v.as_deref(), Some(&value("plain", i)[..]));
        }
        let users = read(log, "users", 0);
        assert_eq!(users.last().unwrap().2.as_deref(), Some(&b"bob"[..]));
    };
    check(&log);
    let segs = common::segment_files(&dir.join("plain-0"), "log");
    let versions: Vec<u8> = segs
        .iter()
        .filter_map(|s| {
            let d = streamlog::inspect::dump_segment(s).unwrap();
            d.batches.first().map(|b| b.format_version)
        })
        .collect();
    assert!(versions.starts_with(&[1, 1]), "{versions:?}");
    assert_eq!(versions.last(), Some(&2), "{versions:?}");
    log.close().unwrap();
    let log = Log::open(dir.path()).unwrap();
    check(&log);
    let report = streamlog::inspect::verify_dir(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
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
    read_full(log, topic, p)
        .into_iter()
        .map(|r| (r.offset, r.key, r.value))
        .collect()
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

/// A fetch hands out stored batches as they are (v2), and an older v1
/// batch in Kafka's layout on request: fetched from the v1 fixture,
/// re-encoded and appended to another log as a Kafka client's batches,
/// every record comes back the same.
#[test]
fn fetched_batches_are_kafkas_bytes_even_from_a_v1_log() {
    let (_dir, v1) = open_copy("v1");
    let tp = TopicPartition::new("plain", 0);
    let fetched = v1.fetch_batches(&tp, 0, usize::MAX).unwrap();
    assert_eq!(fetched.next_offset(), Some(30));
    let copy = Log::temporary().unwrap();
    copy.create_topic("plain", TopicConfig::new()).unwrap();
    for b in fetched.iter() {
        assert!(!b.is_kafka_format());
        let kafka = b.to_kafka_format().unwrap();
        assert_eq!(kafka[16], 2, "magic");
        copy.producer()
            .append_kafka_batches("plain", 0, &kafka)
            .unwrap();
    }
    assert_eq!(read(&copy, "plain", 0), read(&v1, "plain", 0));
    // From a v2 log the stored bytes are handed out unchanged.
    let (dir, v2) = open_copy("v2");
    let tp = TopicPartition::new("events", 0);
    let fetched = v2.fetch_batches(&tp, 0, 1).unwrap();
    assert_eq!(fetched.len(), 1, "at least one whole batch");
    let seg = std::fs::read(dir.join("events-0/00000000000000000000.log")).unwrap();
    let b = fetched.iter().next().unwrap();
    assert!(b.is_kafka_format());
    assert_eq!(b.bytes(), &seg[..b.bytes().len()]);
    assert_eq!(b.to_kafka_format().unwrap(), b.bytes());
}
