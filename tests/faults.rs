//! Failure scenarios through the test seams: a full disk and failed
//! fsyncs on a failure-injecting real file system, and the same on the
//! simulated one (`streamlog::testing`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use streamlog::testing::FaultyFs;
use streamlog::{
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
    let log = streamlog::testing::open_faulty(&fs, dir, opts).unwrap();
    (fs, log)
}

/// Sends `value(i)` to partition 0 of "t" for `i` from `acked` on until a
/// send fails, checking each acknowledged offset; returns how many were
/// acknowledged in all, and the error. At most `limit` are sent.
fn send_until_error(
    p: &streamlog::Producer,
    mut acked: u64,
    value: impl Fn(u64) -> Vec<u8>,
    limit: u64,
) -> (u64, Error) {
    loop {
        assert!(acked < limit, "{limit} sends and none failed");
        match p.send_to("t", 0, Record::new(&value(acked)[..])) {
            Ok(md) => {
                assert_eq!(md.offset(), acked);
                acked += 1;
            }
            Err(e) => return (acked, e),
        }
    }
}

/// Reads partition 0 of "t" from its start and checks that its first
/// `acked` records hold `value(0)`, `value(1)`, and so on.
fn assert_reads_back(log: &Log, acked: u64, value: impl Fn(u64) -> Vec<u8>) {
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false),
    );
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let mut got = 0u64;
    while got < acked {
        let recs = c.poll(std::time::Duration::from_millis(10)).unwrap();
        assert!(!recs.is_empty(), "acknowledged record {got} lost");
        for r in recs.iter().take((acked - got) as usize) {
            assert_eq!(r.value().unwrap(), &value(got)[..]);
            got += 1;
        }
    }
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
    let (acked, err) = send_until_error(&p, 0, |_| vec![7u8; 200 << 10], u64::MAX);
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
    // The producer's id is allocated (a durable write) before the budget.
    p.producer_id().unwrap();
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
    use streamlog::testing::SimFs;

    fn open(fs: &SimFs, opts: LogOptions) -> Log {
        streamlog::testing::open_sim(fs, "/log", opts).unwrap()
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

    /// A partition that syncs every append writes zeros ahead of its small
    /// appends, within the space it reserved: a disk that fills up still
    /// fails the append that does not fit with `StorageFull` (not the
    /// zeros), takes as many records as a partition that does not sync,
    /// and a reopen finds every acknowledged record.
    #[test]
    fn enospc_in_a_syncing_partition_fails_the_append_that_does_not_fit() {
        let value = |i: u64| vec![(i % 251) as u8; 1000];
        let fill = |policy: SyncPolicy| {
            let fs = SimFs::new(None, 11);
            let opts = || LogOptions::new().sync(policy);
            let log = open(&fs, opts());
            log.create_topic("t", TopicConfig::new().segment_bytes(8 << 20))
                .unwrap();
            fs.set_space_left(Some(700 << 10));
            let p = log.producer();
            let (acked, err) = send_until_error(&p, 0, value, 10_000);
            assert!(
                matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
                "{err}"
            );
            drop(p);
            drop(log);
            fs.set_space_left(None);
            let log = open(&fs, opts());
            let tp = TopicPartition::new("t", 0);
            assert_eq!(log.partition_info(&tp).unwrap().end_offset, acked);
            assert_reads_back(&log, acked, value);
            acked
        };
        let syncing = fill(SyncPolicy::EveryWrite);
        let buffered = fill(SyncPolicy::OsBuffered);
        // The zeros lie in space already reserved: they take none of it.
        assert!(syncing + 2 >= buffered, "{syncing} against {buffered}");
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
        let big = streamlog::testing::WRITE_THROUGH_BYTES;
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

    /// A partition that syncs every append also syncs the zeros it writes
    /// ahead of its appends now and then. Whichever fdatasync fails (an
    /// append's own or one of those), the send that ran it reports the
    /// error, nothing is acknowledged after it, and every acknowledged
    /// record is read back after a power cut.
    #[test]
    fn any_failed_fsync_of_a_syncing_partition_poisons_and_loses_no_ack() {
        for fail_after in 0..40 {
            let fs = SimFs::new(None, 7 + fail_after);
            let log = open(&fs, LogOptions::new().sync(SyncPolicy::EveryWrite));
            log.create_topic("t", TopicConfig::new()).unwrap();
            let p = log.producer();
            let value = |i: u64| vec![(i % 251) as u8 + 1; 1000];
            // The first send also registers the producer (a sync of its
            // own, which fails without poisoning anything).
            p.send("t", Record::new(&value(0)[..])).unwrap();
            fs.fail_sync_after(fail_after);
            let (acked, err) = send_until_error(&p, 1, value, 200);
            assert!(matches!(err, Error::Io { .. }), "{err}");
            assert!(
                acked <= fail_after + 1,
                "{acked} acked, sync {fail_after} failed"
            );
            let next = p.send("t", Record::new(b"x"));
            assert!(
                matches!(next, Err(Error::Poisoned { .. })),
                "sync {fail_after} failed ({err}), then {next:?}"
            );
            let image = fs.cut_now();
            drop(p);
            drop(log);
            let rebooted = SimFs::from_image(&image, None, 3);
            let log = open(&rebooted, LogOptions::new().sync(SyncPolicy::EveryWrite));
            assert_reads_back(&log, acked, value);
        }
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
