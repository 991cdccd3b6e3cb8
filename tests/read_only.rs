//! `Log::open_read_only`: reading a log another `Log` holds open and
//! writes, without writing a byte or taking its lock. Following a live
//! writer here; the files a reader leaves alone or finds damaged in
//! `read_only/files.rs`; damage in `read_only/damage.rs`; transactions, offsets and timestamps in
//! `read_only/txn.rs`.
mod common;
#[path = "read_only/damage.rs"]
mod damage;
#[path = "read_only/files.rs"]
mod files;
#[path = "read_only/txn.rs"]
mod txn;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{segment_files, TestDir};
use streamlog::{
    CleanupPolicy, Error, IsolationLevel, Log, PartitionReader, Record, TopicConfig, TopicPartition,
};

const TIMEOUT: Duration = Duration::from_secs(60);

fn value_of(i: u64) -> Vec<u8> {
    format!("value-{i}").into_bytes()
}

/// Reads until `n` offsets are accounted for, each either returned (in
/// order, exactly once, with its value) or reported skipped; publishes the
/// reader's position to `progress` for a throttled writer. Returns the
/// offsets skipped.
fn follow(p: &mut PartitionReader, n: u64, progress: &AtomicU64) -> Vec<std::ops::Range<u64>> {
    let deadline = Instant::now() + TIMEOUT;
    let (mut next, mut skipped) = (0, Vec::new());
    while next < n {
        assert!(Instant::now() < deadline, "stuck at offset {next} of {n}");
        let fetched = p.read(97).unwrap();
        if let Some(gap) = fetched.skipped.clone() {
            assert_eq!(gap.start, next, "a skip must start where reading stopped");
            assert!(gap.end > gap.start);
            next = gap.end;
            skipped.push(gap);
        }
        if fetched.is_empty() {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for r in fetched {
            assert_eq!(r.offset, next, "out of order, duplicated or missing");
            assert_eq!(r.value, Some(value_of(r.offset)));
            next += 1;
        }
        assert_eq!(p.position(), next);
        progress.store(next, Ordering::Release);
    }
    skipped
}

/// A writer thread appending `n` records (keys unique, one to three per
/// batch), calling `between` every 20 records, and staying at most `ahead`
/// records in front of the reader's `progress`.
fn spawn_writer(
    log: &Log,
    topic: &'static str,
    n: u64,
    ahead: u64,
    progress: Arc<AtomicU64>,
    between: impl Fn(&Log, u64) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let log = log.clone();
    std::thread::spawn(move || {
        let producer = log.producer();
        let deadline = Instant::now() + TIMEOUT;
        let mut i = 0;
        while i < n {
            while i > progress.load(Ordering::Acquire) + ahead && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(100));
            }
            let k = (i % 3 + 1).min(n - i);
            let records: Vec<Record<'static>> = (i..i + k)
                .map(|o| {
                    Record::new(value_of(o))
                        .key(format!("key-{o}").into_bytes())
                        .timestamp(ts_of(o))
                })
                .collect();
            producer.send_batch(topic, records).unwrap();
            let before = i;
            i += k;
            if i / 20 != before / 20 {
                between(&log, i);
            }
        }
    })
}

/// Timestamps in the past (compaction's lag is measured against now), 20 ms
/// apart every four offsets.
fn ts_of(o: u64) -> i64 {
    let base = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    (base / 1_000_000) * 1_000_000 + (o / 4) as i64 * 20
}

fn reader_of(log: &Log, topic: &str, from: u64, isolation: IsolationLevel) -> PartitionReader {
    Log::open_read_only(log.dir())
        .unwrap()
        .partition_reader(&TopicPartition::new(topic, 0), from, isolation)
        .unwrap()
}

#[test]
fn follows_a_writer_that_rolls_every_record_once_in_order() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().segment_bytes(1024))
        .unwrap();
    // The writer holds the lock; the read-only open does not need it.
    assert!(matches!(Log::open(log.dir()), Err(Error::Locked { .. })));
    let mut p = reader_of(&log, "t", 0, IsolationLevel::ReadUncommitted);
    let progress = Arc::new(AtomicU64::new(0));
    let n = 3_000;
    let w = spawn_writer(&log, "t", n, u64::MAX / 2, progress.clone(), |_, _| {});
    let skipped = follow(&mut p, n, &progress);
    w.join().unwrap();
    assert!(skipped.is_empty());
    let info = log.partition_info(&TopicPartition::new("t", 0)).unwrap();
    assert!(
        info.segments > 50,
        "{} segments: it should roll often",
        info.segments
    );
    assert!(p.read(10).unwrap().is_empty());
}

#[test]
fn follows_while_retention_deletes_the_segments_behind_it() {
    let log = Log::temporary().unwrap();
    let cfg = TopicConfig::new().segment_bytes(1024).retention_bytes(3000);
    log.create_topic("r", cfg).unwrap();
    let mut p = reader_of(&log, "r", 0, IsolationLevel::ReadCommitted);
    let progress = Arc::new(AtomicU64::new(0));
    let n = 3_000;
    let w = spawn_writer(&log, "r", n, 8, progress.clone(), |log, _| {
        log.maintain().unwrap();
    });
    let skipped = follow(&mut p, n, &progress);
    w.join().unwrap();
    // The reader kept up: retention only ever deleted what it had read.
    assert!(skipped.is_empty(), "skipped {skipped:?}");
    let tp = TopicPartition::new("r", 0);
    let start = log.partition_info(&tp).unwrap().start_offset;
    assert!(
        start > 2_000,
        "retention should have deleted most of it: start {start}"
    );
    let reader = Log::open_read_only(log.dir()).unwrap();
    assert_eq!(reader.partition_info(&tp).unwrap().start_offset, start);
    assert_eq!(reader.start_offset(&tp).unwrap(), start);
}

#[test]
fn reports_what_retention_deleted_before_the_reader_got_there() {
    let log = Log::temporary().unwrap();
    let cfg = TopicConfig::new().segment_bytes(1024).retention_bytes(3000);
    log.create_topic("r", cfg).unwrap();
    let producer = log.producer();
    let send = |range: std::ops::Range<u64>| {
        for o in range {
            producer.send("r", Record::new(value_of(o))).unwrap();
        }
    };
    send(0..40);
    let mut p = reader_of(&log, "r", 0, IsolationLevel::ReadCommitted);
    let first = p.read(5).unwrap();
    assert_eq!(
        first.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    // Retention deletes far past the reader, its own segment included.
    send(40..1_000);
    log.maintain().unwrap();
    let tp = TopicPartition::new("r", 0);
    let start = log.partition_info(&tp).unwrap().start_offset;
    assert!(start > 500);
    let progress = AtomicU64::new(5);
    let mut next = 5;
    let deadline = Instant::now() + TIMEOUT;
    let mut gaps = Vec::new();
    while next < 1_000 {
        assert!(Instant::now() < deadline);
        let f = p.read(100).unwrap();
        if let Some(g) = f.skipped {
            assert_eq!(g.start, next);
            next = g.end;
            gaps.push(g);
        }
        for r in f.records {
            assert_eq!(r.offset, next);
            assert_eq!(r.value, Some(value_of(next)));
            next += 1;
        }
        progress.store(next, Ordering::Relaxed);
    }
    // The open segment was read to its end, then one gap up to the start.
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].end, start);
    // A reader started below the start is moved up and told so.
    let mut late = reader_of(&log, "r", 0, IsolationLevel::ReadUncommitted);
    let f = late.read(1).unwrap();
    assert_eq!(f.skipped, Some(0..start));
    assert_eq!(f.records[0].offset, start);
}

#[test]
fn follows_while_compaction_rewrites_the_segments_under_it() {
    let log = Log::temporary().unwrap();
    // Segments roll by age (timestamps 20 ms apart, a 10 ms segment age),
    // so they stay small and each compaction merges many into one.
    let cfg = TopicConfig::new()
        .segment_bytes(64 << 10)
        .segment_age(Duration::from_millis(10))
        .cleanup_policy(CleanupPolicy::Compact);
    log.create_topic("c", cfg).unwrap();
    let mut p = reader_of(&log, "c", 0, IsolationLevel::ReadCommitted);
    let progress = Arc::new(AtomicU64::new(0));
    let merged = Arc::new(AtomicU64::new(0));
    let n = 2_000;
    let m = merged.clone();
    let w = spawn_writer(&log, "c", n, 400, progress.clone(), move |log, i| {
        if i % 60 < 20 {
            let report = log.compact("c").unwrap();
            m.fetch_add(report.segments_deleted, Ordering::Relaxed);
        }
    });
    let skipped = follow(&mut p, n, &progress);
    w.join().unwrap();
    assert!(
        skipped.is_empty(),
        "compaction deletes nothing here: {skipped:?}"
    );
    assert!(
        merged.load(Ordering::Relaxed) > 100,
        "compaction should merge segments"
    );
    // A reader from the start of the rewritten partition reads it all too.
    let mut again = reader_of(&log, "c", 0, IsolationLevel::ReadUncommitted);
    let skipped = follow(&mut again, n, &AtomicU64::new(0));
    assert!(skipped.is_empty());
}

/// The writer replaces an empty active segment too small for a batch by a
/// new file of the same name; a reader waiting in the old one moves over.
#[test]
fn a_reader_waiting_in_an_empty_segment_follows_its_replacement() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().segment_bytes(1024))
        .unwrap();
    let mut p = reader_of(&log, "t", 0, IsolationLevel::ReadUncommitted);
    assert!(p.read(10).unwrap().is_empty());
    let big = vec![7u8; 5000];
    log.producer().send("t", Record::new(big.clone())).unwrap();
    let got = p.read(10).unwrap().records;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].offset, got[0].value.as_ref()), (0, Some(&big)));
    log.producer().send("t", Record::new(value_of(1))).unwrap();
    let got = p.read(10).unwrap().records;
    assert_eq!((got.len(), got[0].offset), (1, 1));
    assert_eq!(got[0].value, Some(value_of(1)));
}

/// A reader whose open segment compaction merges into a new file, and
/// reads on from the merged copy, exactly once.
#[test]
fn reads_on_from_the_copy_when_compaction_merges_its_segment() {
    let log = Log::temporary().unwrap();
    let cfg = TopicConfig::new()
        .segment_bytes(64 << 10)
        .segment_age(Duration::from_millis(10))
        .cleanup_policy(CleanupPolicy::Compact);
    log.create_topic("c", cfg).unwrap();
    let producer = log.producer();
    for o in 0..400u64 {
        let r = Record::new(value_of(o))
            .key(format!("k{o}").into_bytes())
            .timestamp(ts_of(o));
        producer.send("c", r).unwrap();
    }
    let dir = log.dir().join("c-0");
    let before = segment_files(&dir, "log").len();
    let mut p = reader_of(&log, "c", 0, IsolationLevel::ReadCommitted);
    let first: Vec<u64> = p.read(30).unwrap().into_iter().map(|r| r.offset).collect();
    assert_eq!(first, (0..30).collect::<Vec<_>>());
    assert!(log.compact("c").unwrap().segments_deleted > 50);
    assert!(segment_files(&dir, "log").len() < before / 10);
    let rest = follow_from(&mut p, 30, 400);
    assert_eq!(rest, (30..400).collect::<Vec<_>>());
}

/// Reads from `from` until `to`, with no skips, returning the offsets.
fn follow_from(p: &mut PartitionReader, from: u64, to: u64) -> Vec<u64> {
    let progress = AtomicU64::new(from);
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while out.len() < (to - from) as usize {
        assert!(Instant::now() < deadline);
        let f = p.read(50).unwrap();
        assert_eq!(f.skipped, None);
        out.extend(f.into_iter().map(|r| r.offset));
        progress.store(from + out.len() as u64, Ordering::Relaxed);
    }
    out
}

/// A directory listed in the middle of a compaction swap (FORMAT.md §7):
/// the cleaned copy is `<base>.log.swap` and inputs are `.log.deleted`.
/// Every offset is still found, once.
#[test]
fn a_directory_caught_mid_swap_still_holds_every_offset() {
    let dir = TestDir::new("read-only-mid-swap");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new().segment_bytes(1024))
        .unwrap();
    for o in 0..300u64 {
        log.producer().send("t", Record::new(value_of(o))).unwrap();
    }
    log.close().unwrap();
    let logs = segment_files(&dir.join("t-0"), "log");
    assert!(logs.len() > 6);
    let rename = |p: &PathBuf, suffix: &str| {
        let mut to = p.clone().into_os_string();
        to.push(suffix);
        std::fs::rename(p, to).unwrap();
    };
    rename(&logs[0], ".swap");
    rename(&logs[1], ".deleted");
    rename(&logs[2], ".deleted");
    let reader = Log::open_read_only(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    for start in [0, 20, 150] {
        let mut p = reader
            .partition_reader(&tp, start, IsolationLevel::ReadUncommitted)
            .unwrap();
        assert_eq!(
            follow_from(&mut p, start, 300),
            (start..300).collect::<Vec<_>>()
        );
    }
    assert_eq!(reader.partition_info(&tp).unwrap().end_offset, 300);
}
