//! Regression tests for defects a review of the exactly-once work found
//! (the first three failed before their fixes; the fourth guards the
//! marker retry that came with the first fix):
//! 1. A `CompleteCommit` made durable before the COMMIT markers (by another
//!    transactional id's durable record, a roll, or the kernel) turned an
//!    acknowledged commit into an abort after a power cut.
//! 2. A clean close did not sync the partition directory, so a power cut
//!    after it could lose the snapshot and the `.txnindex`, and the reopen
//!    trusted "clean, no snapshot": aborted and open transactions showed.
//! 3. A zero-filled `.txnindex` entry decoded as an aborted transaction of
//!    producer 0 and hid its committed records.
//! 4. A commit failing after its decision must leave no marker unwritten
//!    before the next transaction writes.
mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use streamlog::testing::{open_sim, SimFs};
use streamlog::{
    ConsumerConfig, IsolationLevel, Log, LogOptions, ManualClock, OffsetReset, Record, SyncPolicy,
    TopicConfig, TopicPartition,
};

fn opts() -> LogOptions {
    LogOptions::new()
        .sync(SyncPolicy::OsBuffered)
        .clock(ManualClock::new(1_700_000_000_000))
}

fn committed_values(log: &Log, topic: &str, p: u32) -> Vec<String> {
    let mut c = log.consumer(
        ConsumerConfig::new()
            .isolation_level(IsolationLevel::ReadCommitted)
            .auto_offset_reset(OffsetReset::Earliest),
    );
    c.assign(&[TopicPartition::new(topic, p)]).unwrap();
    let mut out = vec![];
    loop {
        let r = c.poll(Duration::ZERO).unwrap();
        if r.is_empty() {
            break;
        }
        for x in &r {
            out.push(String::from_utf8_lossy(x.value().unwrap()).into_owned());
        }
    }
    out
}

#[test]
fn complete_commit_durable_before_markers_aborted_an_acknowledged_commit() {
    let fs = SimFs::new(None, 7);
    let log = open_sim(&fs, "/d", opts()).unwrap();
    log.create_topic("a", TopicConfig::new().partitions(2))
        .unwrap();
    let mut a = log.transactional_producer("A").unwrap();
    let mut b = log.transactional_producer("B").unwrap();
    let mut t = a.begin_transaction().unwrap();
    t.send_to("a", 0, Record::new(b"A")).unwrap();
    t.commit().unwrap();
    // B's decision syncs __transaction_state, and with it whatever A
    // appended there after its own decision.
    let mut t = b.begin_transaction().unwrap();
    t.send_to("a", 1, Record::new(b"B")).unwrap();
    t.commit().unwrap();
    let after = SimFs::from_image(&fs.cut_now(), None, 7);
    let log = open_sim(&after, Path::new("/d"), opts()).unwrap();
    assert_eq!(committed_values(&log, "a", 1), ["B"]);
    assert_eq!(
        committed_values(&log, "a", 0),
        ["A"],
        "A's acknowledged commit"
    );
}

#[test]
fn a_power_cut_after_a_clean_close_showed_aborted_and_open_transactions() {
    for leave_open in [false, true] {
        let fs = SimFs::new(None, 1);
        let log = open_sim(&fs, "/d", opts()).unwrap();
        log.create_topic("a", TopicConfig::new()).unwrap();
        log.producer().send("a", Record::new(b"plain")).unwrap();
        let mut tp = log.transactional_producer("t").unwrap();
        let mut txn = tp.begin_transaction().unwrap();
        txn.send_to("a", 0, Record::new(b"not committed")).unwrap();
        if leave_open {
            log.close().unwrap();
            drop(txn);
        } else {
            txn.abort().unwrap();
            log.close().unwrap();
        }
        drop(tp);
        let after = SimFs::from_image(&fs.cut_now(), None, 1);
        let log = open_sim(&after, Path::new("/d"), opts()).unwrap();
        assert_eq!(
            committed_values(&log, "a", 0),
            ["plain"],
            "left open: {leave_open}"
        );
    }
}

#[test]
fn a_zero_filled_txnindex_entry_hid_committed_records() {
    let dir = common::TestDir::new("txn-zero-index");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("a", TopicConfig::new()).unwrap();
        let mut tp = log.transactional_producer("t").unwrap();
        let mut t = tp.begin_transaction().unwrap();
        t.send_to("a", 0, Record::new(b"committed")).unwrap();
        t.commit().unwrap();
        let mut t = tp.begin_transaction().unwrap();
        t.send_to("a", 0, Record::new(b"aborted")).unwrap();
        t.abort().unwrap();
        drop(tp);
        log.close().unwrap();
    }
    // An append whose length reached the disk but not its bytes.
    let p = dir.join("a-0").join("00000000000000000000.txnindex");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap()
        .write_all(&[0u8; 34])
        .unwrap();
    // A clean reopen: the snapshot at the end means no replay, so the
    // index comes from the file alone.
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(committed_values(&log, "a", 0), ["committed"]);
}

#[test]
fn a_marker_a_failure_left_unwritten_is_written_before_the_next_transaction() {
    // A topic deleted between a commit's decision and its markers: the
    // commit still completes everywhere else, and the next transaction
    // starts cleanly.
    let log = Log::temporary().unwrap();
    log.create_topic("a", TopicConfig::new()).unwrap();
    log.create_topic("gone", TopicConfig::new()).unwrap();
    let mut tp = log.transactional_producer("t").unwrap();
    let mut t = tp.begin_transaction().unwrap();
    t.send_to("a", 0, Record::new(b"1")).unwrap();
    t.send_to("gone", 0, Record::new(b"x")).unwrap();
    log.delete_topic("gone").unwrap();
    t.commit().unwrap();
    assert_eq!(committed_values(&log, "a", 0), ["1"]);
    let mut t = tp.begin_transaction().unwrap();
    t.send_to("a", 0, Record::new(b"2")).unwrap();
    t.abort().unwrap();
    let mut t = tp.begin_transaction().unwrap();
    t.send_to("a", 0, Record::new(b"3")).unwrap();
    t.commit().unwrap();
    assert_eq!(committed_values(&log, "a", 0), ["1", "3"]);
}
