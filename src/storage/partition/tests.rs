//! Unit tests of the read path that reach inside a partition: the window
//! between a batch's publication and the end offset, and a fetch racing
//! retention's deletion of a segment it has not mapped yet.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::{
    ConsumerConfig, Error, Log, LogOptions, OffsetReset, Record, TopicConfig, TopicPartition,
};

fn test_dir(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("streamlog-unit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// Regression (found by the kill -9 crash test): bytes of a batch are
/// published before the end offset covers them, and a fetch in that window
/// returned the batch, moving a consumer's position past the end.
#[test]
fn a_fetch_never_returns_a_batch_the_end_offset_does_not_cover() {
    use crate::format::batch::{encode_record, EncodeRecord, EncodedBatch};
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    log.producer().send("t", Record::new(b"visible")).unwrap();
    let part = log.inner.partition("t", 0).unwrap();
    // Write a second batch the way `append` does, but stop before the end
    // offset moves: the window the race hit.
    let mut section = EncodedBatch::section_buffer(0);
    let r = EncodeRecord {
        offset_delta: 0,
        timestamp: 1,
        key: None,
        value: Some(b"in flight"),
        headers: &[],
    };
    encode_record(&mut section, &r, 1);
    let mut batch = EncodedBatch::new(section, 1, 0, 1, 1, None).unwrap();
    let bytes = batch.seal(1);
    let seg = part.segments().last().cloned().unwrap();
    let end = seg.log.write_unpublished(bytes).unwrap();
    seg.log.publish(end);
    assert_eq!(part.end_offset(), 1);
    let mut out = Vec::new();
    part.fetch(0, 1 << 20, 100, &mut out).unwrap();
    assert_eq!(out.len(), 1, "only the batch below the end offset");
    assert_eq!(out[0].header.next_offset(), 1);
}

/// A sealed segment is mapped on demand, so retention can delete its files
/// between a fetch taking the segment list and mapping the segment. The
/// fetch must then see the new list (an offset below the log start), not
/// fail with an I/O error for the vanished file.
#[test]
fn a_fetch_racing_retention_sees_the_new_log_start_not_a_missing_file() {
    let dir = test_dir("map-race");
    let hour = std::time::Duration::from_secs(3600);
    let cfg = TopicConfig::new().segment_bytes(1024).retention(hour);
    let clock = crate::ManualClock::new(1_000);
    {
        let log = LogOptions::new().clock(clock.clone()).open(&dir).unwrap();
        log.create_topic("t", cfg).unwrap();
        let p = log.producer();
        for i in 0..200u32 {
            p.send("t", Record::new(&i.to_be_bytes()[..])).unwrap();
        }
        // The last segments are two hours newer: retention keeps them.
        for i in 200..220u32 {
            let v = i.to_be_bytes();
            p.send("t", Record::new(&v[..]).timestamp(1_000 + 7_200_000))
                .unwrap();
        }
    }
    clock.advance(2 * hour);
    // Reopened, no sealed segment is mapped.
    let log = LogOptions::new()
        .clock(clock)
        .max_mapped_segments(1)
        .open(&dir)
        .unwrap();
    let part = log.inner.partition("t", 0).unwrap();
    assert!(part.segments().len() > 4);
    assert!(part.segments().iter().rev().skip(1).all(|s| !s.is_mapped()));
    let first = part.segments()[0].clone();
    // Retention runs in the window, once.
    let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (l, f) = (log.clone(), fired.clone());
    *part.after_snapshot.lock() = Some(Box::new(move || {
        if !f.swap(true, Ordering::SeqCst) {
            l.maintain().unwrap();
        }
    }));
    let mut out = Vec::new();
    let err = part.fetch(0, 1 << 20, 10, &mut out).unwrap_err();
    assert!(fired.load(Ordering::SeqCst));
    assert!(
        matches!(err, Error::OffsetOutOfRange { requested: 0, .. }),
        "{err}"
    );
    assert!(!first.log.path().exists(), "retention removed the files");
    // A consumer resets past the gap and reads what is left, in order.
    *part.after_snapshot.lock() = None;
    let start = part.start_offset();
    assert!(start > 0);
    let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let recs = c.poll(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(recs.iter().next().unwrap().offset(), start);
    // And a file missing while its segment is still listed is an I/O
    // error naming it, not a panic or an empty read.
    let seg = part.segments()[0].clone();
    seg.unmap();
    std::fs::remove_file(seg.log.path()).unwrap();
    let err = part.fetch(start, 1 << 20, 10, &mut out).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == seg.log.path()),
        "{err}"
    );
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression: each roll copied the whole segment list (copy-on-write
/// snapshots), so rolls slowed down as segments accumulated (530/s at
/// 70,000 segments against 2,500/s at the start). The list now changes in
/// place: over many rolls its buffer moves only when the vector grows.
#[test]
fn regression_a_roll_does_not_copy_the_segment_list() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().segment_bytes(1024))
        .unwrap();
    let part = log.inner.partition("t", 0).unwrap();
    let value = [7u8; 700];
    let (mut moves, mut at) = (0, part.segments.read().as_ptr());
    for _ in 0..3000 {
        log.producer().send("t", Record::new(&value[..])).unwrap();
        let now = part.segments.read().as_ptr();
        if now != at {
            (moves, at) = (moves + 1, now);
        }
    }
    let rolls = part.segment_count();
    assert!(rolls > 2000, "{rolls} segments");
    assert!(
        moves <= 16,
        "the list moved {moves} times in {rolls} rolls: copied, not grown"
    );
}

/// Reads walk the segment list a window at a time; a read that needs more
/// than one window goes on in the next, with no batch missed or repeated,
/// whatever the byte limit.
#[test]
fn fetches_across_many_small_segments_return_every_batch_once() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().segment_bytes(1024))
        .unwrap();
    let part = log.inner.partition("t", 0).unwrap();
    for i in 0..600u32 {
        let v = vec![i as u8; 10 + (i as usize * 37) % 400];
        log.producer().send("t", Record::new(&v[..])).unwrap();
    }
    assert!(part.segment_count() > 50);
    for max_bytes in [1, 100, 1500, 5000, 50_000, 1 << 20] {
        let mut next = 0;
        while next < 600 {
            let mut out = Vec::new();
            part.fetch(next, max_bytes, usize::MAX, &mut out).unwrap();
            assert!(!out.is_empty(), "max_bytes {max_bytes}: nothing at {next}");
            let total: usize = out.iter().map(|b| b.header.total_len()).sum();
            assert!(total < max_bytes + 1024, "{total} bytes for {max_bytes}");
            for b in &out {
                assert_eq!(b.header.base_offset, next, "max_bytes {max_bytes}");
                next = b.header.next_offset();
            }
        }
    }
}

/// The partition's size is kept with each change of the segment list (a
/// roll, retention, compaction) rather than summed over it: it must stay
/// the sum of its segments' sizes.
#[test]
fn the_kept_size_is_the_sum_of_the_segments() {
    let dir = test_dir("kept-size");
    let log = Log::open(&dir).unwrap();
    let sum = |p: &crate::storage::partition::Partition| -> u64 {
        p.segments().iter().map(|s| s.size_bytes()).sum()
    };
    let cfgs = [
        (
            "bytes",
            TopicConfig::new().segment_bytes(1024).retention_bytes(8192),
        ),
        (
            "compacted",
            TopicConfig::new()
                .segment_bytes(1024)
                .cleanup_policy(crate::CleanupPolicy::Compact)
                .min_cleanable_dirty_ratio(0.0),
        ),
    ];
    for (name, cfg) in cfgs {
        log.create_topic(name, cfg).unwrap();
        let part = log.inner.partition(name, 0).unwrap();
        for i in 0..400u32 {
            let key = format!("k{}", i % 5);
            let v = vec![1u8; 50 + (i as usize % 7) * 30];
            log.producer()
                .send(name, Record::new(&v[..]).key(key.as_bytes()))
                .unwrap();
            if i % 50 == 49 {
                log.maintain().unwrap();
                assert_eq!(part.size_bytes(), sum(&part), "{name} after {i}");
            }
        }
        assert!(part.segment_count() >= 2, "{name}");
        assert_eq!(part.size_bytes(), sum(&part), "{name}");
    }
    log.close().unwrap();
    let log = Log::open(&dir).unwrap();
    for name in ["bytes", "compacted"] {
        let part = log.inner.partition(name, 0).unwrap();
        assert_eq!(part.size_bytes(), sum(&part), "{name} reopened");
    }
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Small appends go through the file on a log that syncs after every
/// append (on disk; a temporary log never syncs), into the mapping
/// otherwise; a segment made active by a roll inherits the choice, and the
/// records read back either way.
#[test]
fn small_appends_go_through_the_file_where_every_append_is_synced() {
    use crate::SyncPolicy;
    let cases = [
        ("every-write", SyncPolicy::EveryWrite, false, true),
        ("every-record", SyncPolicy::EveryRecords(1), false, true),
        ("every-ten", SyncPolicy::EveryRecords(10), false, false),
        ("buffered", SyncPolicy::OsBuffered, false, false),
        ("temporary", SyncPolicy::EveryWrite, true, false),
    ];
    for (name, policy, temporary, through) in cases {
        let dir = test_dir(name);
        let opts = LogOptions::new().sync(policy);
        let log = if temporary {
            opts.temporary()
        } else {
            opts.open(&dir)
        }
        .unwrap();
        log.create_topic("t", TopicConfig::new().segment_bytes(4096))
            .unwrap();
        let p = log.producer();
        let part = log.inner.partition("t", 0).unwrap();
        let first = part.segments().last().cloned().unwrap();
        assert_eq!(first.log.small_writes_through_file(), through, "{name}");
        for i in 0..100u32 {
            p.send("t", Record::new(vec![i as u8; 100])).unwrap();
        }
        let segments = part.segments();
        assert!(segments.len() > 1, "{name}: no roll");
        let active = segments.last().unwrap();
        assert_eq!(active.log.small_writes_through_file(), through, "{name}");
        let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
        c.assign(&[TopicPartition::new("t", 0)]).unwrap();
        let mut got = Vec::new();
        while got.len() < 100 {
            let polled = c.poll(std::time::Duration::from_secs(5)).unwrap();
            assert!(!polled.is_empty(), "{name}: records missing");
            got.extend(polled.iter().map(|r| r.value().map(<[u8]>::to_vec)));
        }
        for (i, v) in got.iter().enumerate() {
            assert_eq!(v.as_deref(), Some(&vec![i as u8; 100][..]), "{name}");
        }
        drop(c);
        log.close().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
