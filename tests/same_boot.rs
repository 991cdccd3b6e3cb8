//! Recovery after a crash of the process on the same boot: the active
//! segment's scan resumes at one of its last index entries (FORMAT.md §7).
//!
//! A crash is taken as a copy of a live log's directory (see
//! `common::copy_dir`): the copy holds the session marker naming this boot,
//! so opening it takes the same-boot path. Rewriting the marker with another
//! boot id gives the same files recovered the power-cut way, as the
//! reference every fast result is compared with.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{copy_dir, crc32, read_all, segment_files, TestDir};
use streamlog::{ConsumerConfig, Log, Record, TopicConfig, TopicPartition};

const TOPIC: &str = "t";
const SESSION: &str = "session";

fn tp() -> TopicPartition {
    TopicPartition::new(TOPIC, 0)
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The session marker as FORMAT.md §9.1 specifies it.
fn session_marker(boot: &str) -> Vec<u8> {
    let body = format!("streamlog-session 1\nboot {boot}\n");
    format!("{body}crc32 {:08x}\n", crc32(body.as_bytes())).into_bytes()
}

/// How the records' timestamps move.
#[derive(Debug, Clone, Copy)]
enum Clock {
    Rising,
    Flat,
    Falling,
    Jumpy,
}

impl Clock {
    fn at(self, i: u64) -> i64 {
        let i = i as i64;
        match self {
            Clock::Rising => 1_700_000_000_000 + i / 3,
            Clock::Flat => 42,
            Clock::Falling => 1_000_000 - i,
            Clock::Jumpy => (i * 7919) % 1000 + (i / 500) * 300,
        }
    }
}

/// The value of record `i`: sizes vary so that batches straddle index
/// intervals differently.
fn value(i: u64) -> Vec<u8> {
    let len = 40 + (i * 37) % 700;
    (0..len).map(|j| (i + j) as u8 | 1).collect()
}

/// A live log with `n` records in one active segment of topic "t", sent one
/// at a time and in batches of up to 50.
fn fill(dir: &Path, n: u64, clock: Clock, interval: u64) -> Log {
    let log = Log::open(dir).unwrap();
    let cfg = TopicConfig::new()
        .segment_bytes(256 << 20)
        .index_interval_bytes(interval);
    log.create_topic(TOPIC, cfg).unwrap();
    let p = log.producer();
    let mut i = 0;
    while i < n {
        let k = (1 + (i * 13) % 50).min(n - i);
        let vals: Vec<Vec<u8>> = (i..i + k).map(value).collect();
        if k == 1 {
            p.send_to(TOPIC, 0, Record::new(&vals[0][..]).timestamp(clock.at(i)))
                .unwrap();
        } else {
            let recs = vals
                .iter()
                .zip(i..)
                .map(|(v, j)| Record::new(&v[..]).timestamp(clock.at(j)))
                .collect();
            p.send_batch(TOPIC, recs).unwrap();
        }
        i += k;
    }
    assert_eq!(log.partition_info(&tp()).unwrap().segments, 1);
    log
}

/// Two copies of a live log, as a kill -9 would leave it: `fast` keeps the
/// session marker (same boot), `slow` names another boot.
struct Crashed {
    _dirs: (TestDir, TestDir),
    fast: PathBuf,
    slow: PathBuf,
}

fn crash(live: &Path, name: &str) -> Crashed {
    let (a, b) = (
        TestDir::new(&format!("{name}-fast")),
        TestDir::new(&format!("{name}-slow")),
    );
    copy_dir(live, a.path());
    copy_dir(live, b.path());
    std::fs::write(b.join(SESSION), session_marker("another-boot")).unwrap();
    Crashed {
        fast: a.0.clone(),
        slow: b.0.clone(),
        _dirs: (a, b),
    }
}

fn active_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let pdir = dir.join("t-0");
    let last = |ext| segment_files(&pdir, ext).pop().unwrap();
    (last("log"), last("index"), last("timeindex"))
}

/// Where the active segment's batches end.
fn data_end(dir: &Path) -> u64 {
    let dump = streamlog::inspect::dump_segment(&active_files(dir).0).unwrap();
    dump.batches.last().map_or(0, |b| b.position + b.size)
}

/// The valid offset-index entries `(rel, pos)` of the active segment
/// (Kafka's layout: big-endian; `rel` is the batch's last offset).
fn offset_entries(dir: &Path) -> Vec<(u32, u32)> {
    let bytes = std::fs::read(active_files(dir).1).unwrap();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for e in bytes.chunks_exact(8) {
        let rel = u32::from_be_bytes(e[..4].try_into().unwrap());
        let pos = u32::from_be_bytes(e[4..].try_into().unwrap());
        if out.last().is_some_and(|&(r, p)| rel <= r || pos <= p) || rel == 0 {
            break;
        }
        out.push((rel, pos));
    }
    out
}

fn index_bytes(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let (_, idx, time) = active_files(dir);
    (std::fs::read(idx).unwrap(), std::fs::read(time).unwrap())
}

fn skip_without_boot_id() -> bool {
    if boot_id().is_none() {
        eprintln!("no boot id on this platform: every open takes the slow path");
        return true;
    }
    false
}

/// (a) Only the tail is scanned; every record, offset and timestamp is back;
/// offset and time lookups agree with a full-scan recovery; the tail is left
/// unsynced until the next flush.
#[test]
fn same_boot_reopen_scans_only_the_tail() {
    if skip_without_boot_id() {
        return;
    }
    let live_dir = TestDir::new("sb-tail");
    let n = 20_000;
    let live = fill(live_dir.path(), n, Clock::Jumpy, 4096);
    let c = crash(live_dir.path(), "sb-tail");
    live.close().unwrap();
    let data = data_end(&c.fast);
    assert!(data > 6 << 20, "a large active segment: {data} bytes");

    let fast = Log::open(&c.fast).unwrap();
    let r = fast.recovery_report();
    assert!(!r.clean_shutdown);
    assert_eq!(r.segments_resumed, 1, "{r:?}");
    assert!(r.truncations.is_empty(), "{r:?}");
    // From the next-to-last index entry on: a few intervals, not the segment.
    assert!(
        r.bytes_scanned < 64 << 10,
        "scanned {} of {data}",
        r.bytes_scanned
    );

    let slow = Log::open(&c.slow).unwrap();
    assert_eq!(slow.recovery_report().segments_resumed, 0);

    let info = fast.partition_info(&tp()).unwrap();
    assert_eq!(info.end_offset, n);
    // Nothing was synced before the crash, and recovery did not sync it.
    assert_eq!(info.durable_offset, 0);

    let got = read_all(&fast, TOPIC, 0, 0);
    assert_eq!(got.len() as u64, n);
    for (i, (o, v)) in got.iter().enumerate() {
        assert_eq!((*o, v), (i as u64, &value(i as u64)));
    }
    // Timestamps, through seeks spread over the segment (and its tail).
    let mut cons = fast.consumer(ConsumerConfig::new().max_poll_records(1));
    cons.assign(&[tp()]).unwrap();
    for o in (0..n).step_by(997).chain(n - 5..n) {
        cons.seek(&tp(), o).unwrap();
        let recs = cons.poll(Duration::from_secs(5)).unwrap();
        let r = recs.iter().next().unwrap();
        assert_eq!((r.offset(), r.timestamp()), (o, Clock::Jumpy.at(o)));
    }
    for ts in (-5..7000).step_by(113) {
        let want = (0..n).find(|&i| Clock::Jumpy.at(i) >= ts);
        assert_eq!(
            fast.offset_for_timestamp(&tp(), ts).unwrap(),
            want,
            "ts {ts}"
        );
        assert_eq!(
            slow.offset_for_timestamp(&tp(), ts).unwrap(),
            want,
            "ts {ts}"
        );
    }

    // The next flush syncs the tail the open left alone.
    fast.flush().unwrap();
    assert_eq!(fast.partition_info(&tp()).unwrap().durable_offset, n);
    assert_eq!(
        fast.producer()
            .send(TOPIC, Record::new(b"after"))
            .unwrap()
            .offset(),
        n
    );
    fast.close().unwrap();
    let again = Log::open(&c.fast).unwrap();
    assert!(again.recovery_report().clean_shutdown);
    assert_eq!(again.partition_info(&tp()).unwrap().end_offset, n + 1);
}

/// (b) Another boot: the whole active segment is scanned and synced, as
/// after any power cut.
#[test]
fn another_boot_scans_the_whole_segment() {
    let live_dir = TestDir::new("sb-other");
    let live = fill(live_dir.path(), 3000, Clock::Rising, 4096);
    let c = crash(live_dir.path(), "sb-other");
    drop(live);
    let data = data_end(&c.slow);
    for dir in [&c.slow, &c.fast] {
        if dir == &c.fast {
            // No marker at all is another boot too.
            std::fs::remove_file(dir.join(SESSION)).unwrap();
        }
        let log = Log::open(dir).unwrap();
        let r = log.recovery_report();
        assert_eq!((r.segments_resumed, r.bytes_scanned), (0, data), "{r:?}");
        let info = log.partition_info(&tp()).unwrap();
        assert_eq!(info.durable_offset, info.end_offset);
        assert_eq!(info.end_offset, 3000);
    }
}

/// (c) A batch torn after the last index entry is cut, exactly where a full
/// scan cuts it.
#[test]
fn a_torn_batch_after_the_last_index_entry_is_cut() {
    if skip_without_boot_id() {
        return;
    }
    let live_dir = TestDir::new("sb-torn");
    let live = fill(live_dir.path(), 5000, Clock::Rising, 4096);
    let c = crash(live_dir.path(), "sb-torn");
    drop(live);
    let end = data_end(&c.fast);
    let last_entry = offset_entries(&c.fast).last().copied().unwrap();
    assert!(u64::from(last_entry.1) < end);
    for dir in [&c.fast, &c.slow] {
        // The first 100 bytes of a copy of the first batch, at the end.
        let log_path = active_files(dir).0;
        let mut bytes = std::fs::read(&log_path).unwrap();
        let head = bytes[..100].to_vec();
        bytes[end as usize..end as usize + 100].copy_from_slice(&head);
        std::fs::write(&log_path, bytes).unwrap();
    }
    let fast = Log::open(&c.fast).unwrap();
    let slow = Log::open(&c.slow).unwrap();
    let (rf, rs) = (fast.recovery_report(), slow.recovery_report());
    assert_eq!(rf.segments_resumed, 1, "{rf:?}");
    assert_eq!(rf.truncations.len(), 1, "{rf:?}");
    assert_eq!(rf.truncations[0].position, end);
    assert_eq!(rs.truncations[0].position, end);
    assert_eq!(rf.truncations[0].bytes, rs.truncations[0].bytes);
    assert_eq!(fast.partition_info(&tp()).unwrap().end_offset, 5000);
    assert_eq!(read_all(&fast, TOPIC, 0, 0), read_all(&slow, TOPIC, 0, 0));
}

/// (d) The batch the last index entry points at is damaged: recovery falls
/// back to the entry before, and cuts the segment where a full scan does.
#[test]
fn a_damaged_batch_at_the_last_index_entry_falls_back() {
    if skip_without_boot_id() {
        return;
    }
    let live_dir = TestDir::new("sb-damaged");
    let live = fill(live_dir.path(), 5000, Clock::Flat, 1024);
    let c = crash(live_dir.path(), "sb-damaged");
    drop(live);
    let entries = offset_entries(&c.fast);
    let (_, pos) = *entries.last().unwrap();
    // The batch there: the segment is cut at its start.
    let first = streamlog::inspect::dump_segment(&active_files(&c.fast).0)
        .unwrap()
        .batches
        .iter()
        .find(|b| b.position == u64::from(pos))
        .unwrap()
        .base_offset;
    for dir in [&c.fast, &c.slow] {
        let log_path = active_files(dir).0;
        let mut bytes = std::fs::read(&log_path).unwrap();
        bytes[pos as usize + 70] ^= 0x55;
        std::fs::write(&log_path, bytes).unwrap();
    }
    let fast = Log::open(&c.fast).unwrap();
    let slow = Log::open(&c.slow).unwrap();
    let (rf, rs) = (fast.recovery_report(), slow.recovery_report());
    assert_eq!(rf.segments_resumed, 1, "{rf:?}");
    assert!(rf.bytes_scanned < 16 << 10, "{rf:?}");
    assert_eq!(rf.truncations.len(), 1, "{rf:?}");
    assert_eq!(rf.truncations[0].position, u64::from(pos));
    let (tf, ts) = (&rf.truncations[0], &rs.truncations[0]);
    assert_eq!(
        (tf.position, tf.bytes, &tf.reason),
        (ts.position, ts.bytes, &ts.reason)
    );
    let end = fast.partition_info(&tp()).unwrap().end_offset;
    assert_eq!(end, first);
    assert_eq!(slow.partition_info(&tp()).unwrap().end_offset, end);
    fast.close().unwrap();
    slow.close().unwrap();
    assert_eq!(index_bytes(&c.fast), index_bytes(&c.slow));
}

/// (e) The index a same-boot recovery leaves is byte for byte the one a
/// scan from byte 0 builds, and the one the writer itself had built, for
/// rising, flat, falling and jumping timestamps, dense and sparse indexes.
#[test]
fn the_recovered_index_is_byte_identical_to_a_full_scan() {
    if skip_without_boot_id() {
        return;
    }
    for (clock, interval) in [
        (Clock::Rising, 4096),
        (Clock::Flat, 300),
        (Clock::Falling, 4096),
        (Clock::Jumpy, 300),
        (Clock::Jumpy, 4096),
    ] {
        let name = format!("sb-identical-{clock:?}-{interval}");
        let live_dir = TestDir::new(&name);
        let live = fill(live_dir.path(), 4000, clock, interval);
        let c = crash(live_dir.path(), &name);
        live.close().unwrap();
        let writer = index_bytes(live_dir.path());
        assert!(writer.0.len() > 16 && writer.1.len() >= 12, "{clock:?}");
        for dir in [&c.fast, &c.slow] {
            let log = Log::open(dir).unwrap();
            let resumed = log.recovery_report().segments_resumed;
            assert_eq!(resumed, usize::from(dir == &c.fast), "{clock:?}");
            // Appends go on placing entries from the rebuilt cursor.
            let p = log.producer();
            for i in 0..300 {
                let r = Record::new(value(i)).timestamp(clock.at(4000 + i));
                p.send(TOPIC, r).unwrap();
            }
            log.close().unwrap();
        }
        assert_eq!(
            index_bytes(&c.fast),
            index_bytes(&c.slow),
            "{clock:?} {interval}"
        );
        // The writer's own index covers what it wrote before the crash.
        let (fast_o, fast_t) = index_bytes(&c.fast);
        assert!(fast_o.starts_with(&writer.0), "{clock:?} {interval}");
        assert!(fast_t.starts_with(&writer.1), "{clock:?} {interval}");
    }
}

/// The marker is the boot id, framed as FORMAT.md §9.1 says; a temporary
/// log writes none.
#[test]
fn the_session_marker_names_this_boot() {
    let dir = TestDir::new("sb-marker");
    let log = Log::open(dir.path()).unwrap();
    match boot_id() {
        Some(id) => assert_eq!(
            std::fs::read(dir.join(SESSION)).unwrap(),
            session_marker(&id)
        ),
        None => assert!(!dir.join(SESSION).exists()),
    }
    log.close().unwrap();
    let tmp = Log::temporary().unwrap();
    assert!(!tmp.dir().join(SESSION).exists());
}

/// After a clean close the active segment holds exactly what was stored
/// (close synced it and both indexes), on any boot: a clean open resumes
/// near its end too, instead of walking the whole segment, and the indexes
/// it keeps are the ones the writer left.
#[test]
fn a_clean_open_scans_only_the_tail_of_the_active_segment() {
    let dir = TestDir::new("clean-tail");
    let n = 20_000;
    fill(dir.path(), n, Clock::Jumpy, 4096).close().unwrap();
    // Another boot: the clean path does not depend on the session marker.
    std::fs::write(dir.join(SESSION), session_marker("another-boot")).unwrap();
    let data = data_end(dir.path());
    assert!(data > 6 << 20, "a large active segment: {data} bytes");
    let before = index_bytes(dir.path());
    let log = Log::open(dir.path()).unwrap();
    let r = log.recovery_report();
    assert!(r.clean_shutdown);
    assert_eq!(r.segments_resumed, 1, "{r:?}");
    assert!(r.truncations.is_empty(), "{r:?}");
    assert!(
        r.bytes_scanned < 64 << 10,
        "scanned {} of {data}",
        r.bytes_scanned
    );
    let info = log.partition_info(&tp()).unwrap();
    assert_eq!((info.end_offset, info.durable_offset), (n, n));
    let got = read_all(&log, TOPIC, 0, 0);
    assert_eq!(got.len() as u64, n);
    for (i, (o, v)) in got.iter().enumerate() {
        assert_eq!((*o, v), (i as u64, &value(i as u64)));
    }
    log.close().unwrap();
    // Rebuilt from the kept entries plus the tail's: the same bytes.
    assert_eq!(index_bytes(dir.path()), before);
}
