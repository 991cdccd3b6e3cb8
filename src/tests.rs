//! Crate-internal scenario tests that need the I/O seam.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::io::faulty::FaultyFs;
use crate::io::FileSystem;
use crate::{
    ConsumerConfig, Error, Log, LogOptions, OffsetReset, Record, SyncPolicy, TopicConfig,
    TopicPartition,
};

fn test_dir(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("streamlog-unit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// A log on the real file system behind a failure-injecting wrapper.
fn open_faulty(dir: &std::path::Path, opts: LogOptions) -> (Arc<FaultyFs>, Log) {
    let fs = FaultyFs::new();
    let log = Log::open_on(
        Arc::new(fs.clone()) as Arc<dyn FileSystem>,
        dir,
        opts,
        false,
    )
    .unwrap();
    (fs, log)
}

#[test]
fn a_full_disk_mid_append_poisons_until_reopen() {
    let dir = test_dir("enospc");
    let (fs, log) = open_faulty(&dir, LogOptions::new());
    // Small segments so that appends keep needing fresh allocations.
    log.create_topic("t", TopicConfig::new().segment_bytes(1 << 20))
        .unwrap();
    let p = log.producer();
    fs.allocs_left.store(2, Ordering::SeqCst);
    let big = vec![7u8; 200 << 10];
    let mut acked = 0u64;
    let err = loop {
        match p.send("t", Record::new(&big[..])) {
            Ok(md) => {
                assert_eq!(md.offset(), acked);
                acked += 1;
            }
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{err}"
    );
    // Every later write is refused with a clear error; reads still work.
    assert!(matches!(
        p.send("t", Record::new(b"x")),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(log.flush(), Err(Error::Poisoned { .. })));
    assert_eq!(
        log.partition_info(&TopicPartition::new("t", 0))
            .unwrap()
            .end_offset,
        acked
    );
    drop(p);
    drop(log);
    // Reopening recovers every acknowledged record and accepts writes.
    let log = Log::open(&dir).unwrap();
    let tp = TopicPartition::new("t", 0);
    assert_eq!(log.partition_info(&tp).unwrap().end_offset, acked);
    assert_eq!(
        log.producer()
            .send("t", Record::new(b"x"))
            .unwrap()
            .offset(),
        acked
    );
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_fsync_poisons_and_is_never_acknowledged() {
    let dir = test_dir("eio");
    let (fs, log) = open_faulty(&dir, LogOptions::new().sync(SyncPolicy::EveryWrite));
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    fs.syncs_left.store(3, Ordering::SeqCst);
    for i in 0..3 {
        assert_eq!(p.send("t", Record::new(b"ok")).unwrap().offset(), i);
    }
    let tp = TopicPartition::new("t", 0);
    assert_eq!(log.partition_info(&tp).unwrap().durable_offset, 3);
    assert!(matches!(
        p.send("t", Record::new(b"lost?")),
        Err(Error::Io { .. })
    ));
    // The failed record is in the log but not durable, and was not acked.
    assert_eq!(log.partition_info(&tp).unwrap().durable_offset, 3);
    assert!(matches!(
        p.send("t", Record::new(b"x")),
        Err(Error::Poisoned { .. })
    ));
    drop(p);
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A failed group-commit fsync with many writers waiting on it: nobody
/// hangs, nobody whose record the failed sync was to cover is acknowledged,
/// and every acknowledged record was durable when acknowledged.
#[test]
fn a_failed_group_commit_fails_every_waiter_and_acks_nothing_it_covered() {
    let dir = test_dir("eio-group");
    let (fs, log) = open_faulty(&dir, LogOptions::new().sync(SyncPolicy::EveryWrite));
    log.create_topic("t", TopicConfig::new()).unwrap();
    fs.syncs_left.store(20, Ordering::SeqCst);
    let tp = TopicPartition::new("t", 0);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (p, log, tp) = (log.producer(), log.clone(), tp.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                loop {
                    match p.send("t", Record::new(b"v")) {
                        Ok(md) => {
                            let durable = log.partition_info(&tp).unwrap().durable_offset;
                            assert!(durable > md.offset(), "acked {} above durable", md.offset());
                            acked.push(md.offset());
                        }
                        Err(Error::Io { .. } | Error::Poisoned { .. }) => return acked,
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
            })
        })
        .collect();
    let acked: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let durable = log.partition_info(&tp).unwrap().durable_offset;
    assert!(acked.iter().all(|&o| o < durable));
    assert!(matches!(log.flush(), Err(Error::Poisoned { .. })));
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same two failure scenarios on the simulated file system.
mod on_the_simulated_fs {
    use super::*;
    use crate::io::sim::SimFs;

    fn open(fs: &SimFs, opts: LogOptions) -> Log {
        Log::open_on(
            Arc::new(fs.clone()) as Arc<dyn FileSystem>,
            std::path::Path::new("/log"),
            opts,
            false,
        )
        .unwrap()
    }

    #[test]
    fn enospc_mid_append_poisons_and_a_reopen_recovers_every_ack() {
        let fs = SimFs::new(None, 1);
        let log = open(&fs, LogOptions::new());
        log.create_topic("t", TopicConfig::new().segment_bytes(1 << 20))
            .unwrap();
        fs.set_space_left(Some(700 << 10));
        let p = log.producer();
        let big = vec![3u8; 100 << 10];
        let mut acked = 0;
        let err = loop {
            match p.send("t", Record::new(&big[..])) {
                Ok(_) => acked += 1,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
            "{err}"
        );
        assert!(matches!(
            p.send("t", Record::new(b"x")),
            Err(Error::Poisoned { .. })
        ));
        drop(p);
        drop(log);
        fs.set_space_left(None);
        let log = open(&fs, LogOptions::new());
        let tp = TopicPartition::new("t", 0);
        assert_eq!(log.partition_info(&tp).unwrap().end_offset, acked);
        assert_eq!(
            log.producer()
                .send("t", Record::new(b"x"))
                .unwrap()
                .offset(),
            acked
        );
    }

    /// Small appends are copied into the mapping, large ones written with
    /// `pwrite`: readers of the mapping see both, interleaved, and so does
    /// a reboot after a power cut once they are synced.
    #[test]
    fn appends_through_the_mapping_and_through_the_file_read_back_alike() {
        let fs = SimFs::new(None, 4);
        let log = open(&fs, LogOptions::new().sync(SyncPolicy::EveryWrite));
        log.create_topic("t", TopicConfig::new()).unwrap();
        let p = log.producer();
        let big = crate::storage::mapped::WRITE_THROUGH_FILE;
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for i in 0..12u8 {
            let len = if i % 3 == 0 {
                big + i as usize
            } else {
                7 + i as usize
            };
            let v = vec![i; len];
            p.send("t", Record::new(&v[..])).unwrap();
            sent.push(v);
        }
        let read_all = |log: &Log| {
            let mut c = log.consumer(
                ConsumerConfig::new()
                    .auto_offset_reset(OffsetReset::Earliest)
                    .enable_auto_commit(false),
            );
            c.assign(&[TopicPartition::new("t", 0)]).unwrap();
            let mut got = Vec::new();
            while got.len() < 12 {
                let recs = c.poll(std::time::Duration::from_millis(10)).unwrap();
                assert!(!recs.is_empty(), "records missing after {}", got.len());
                got.extend(recs.iter().map(|r| r.value().unwrap().to_vec()));
            }
            got
        };
        assert_eq!(read_all(&log), sent);
        let image = fs.cut_now();
        drop(p);
        drop(log);
        let rebooted = SimFs::from_image(&image, None, 5);
        let log = open(&rebooted, LogOptions::new());
        assert_eq!(read_all(&log), sent);
    }

    #[test]
    fn a_failed_fsync_is_never_acknowledged_and_survives_a_power_cut() {
        let fs = SimFs::new(None, 2);
        let log = open(&fs, LogOptions::new().sync(SyncPolicy::EveryWrite));
        log.create_topic("t", TopicConfig::new()).unwrap();
        let p = log.producer();
        for i in 0..5 {
            assert_eq!(p.send("t", Record::new(b"ok")).unwrap().offset(), i);
        }
        fs.fail_sync_after(0);
        assert!(matches!(
            p.send("t", Record::new(b"lost")),
            Err(Error::Io { .. })
        ));
        assert!(matches!(
            p.send("t", Record::new(b"x")),
            Err(Error::Poisoned { .. })
        ));
        let image = fs.cut_now();
        drop(p);
        drop(log);
        let rebooted = SimFs::from_image(&image, None, 3);
        let log = open(&rebooted, LogOptions::new().sync(SyncPolicy::EveryWrite));
        let tp = TopicPartition::new("t", 0);
        // Every acknowledged record survived; the failed one may or may not.
        assert!(log.partition_info(&tp).unwrap().end_offset >= 5);
    }
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
