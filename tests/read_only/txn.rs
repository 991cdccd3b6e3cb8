//! Reading committed records, committed offsets, and lookups by time and
//! offset.

use super::{reader_of, value_of};
use crate::common::{segment_files, TestDir};
use streamlog::{
    ConsumerConfig, IsolationLevel, Log, OffsetAndMetadata, PartitionReader, ReadRecord, Record,
    TopicConfig, TopicPartition,
};

fn values(p: &mut PartitionReader) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let f = p.read(3).unwrap();
        if f.is_empty() {
            return out;
        }
        out.extend(
            f.into_iter()
                .map(|r: ReadRecord| String::from_utf8(r.value.unwrap()).unwrap()),
        );
    }
}

#[test]
fn read_committed_holds_back_open_transactions_and_drops_aborted_ones() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let plain = log.producer();
    let send = |v: &str| {
        plain
            .send("t", Record::new(v.as_bytes().to_vec()))
            .unwrap()
            .offset()
    };
    let mut committer = log.transactional_producer("committer").unwrap();
    let mut aborter = log.transactional_producer("aborter").unwrap();
    let mut opener = log.transactional_producer("opener").unwrap();
    send("a0");
    let mut txn = committer.begin_transaction().unwrap();
    txn.send("t", Record::new(b"c1")).unwrap();
    txn.send("t", Record::new(b"c2")).unwrap();
    // Interleaved: a plain record inside the committed transaction.
    send("a1");
    txn.commit().unwrap();
    let mut txn = aborter.begin_transaction().unwrap();
    txn.send("t", Record::new(b"x1")).unwrap();
    txn.send("t", Record::new(b"x2")).unwrap();
    txn.abort().unwrap();
    send("a2");
    let mut open = opener.begin_transaction().unwrap();
    let o1 = open.send("t", Record::new(b"o1")).unwrap().offset();
    let a3 = send("a3");
    let o2 = open.send("t", Record::new(b"o2")).unwrap().offset();

    let mut committed = reader_of(&log, "t", 0, IsolationLevel::ReadCommitted);
    let mut uncommitted = reader_of(&log, "t", 0, IsolationLevel::ReadUncommitted);
    assert_eq!(values(&mut committed), ["a0", "c1", "c2", "a1", "a2"]);
    assert_eq!(
        committed.position(),
        o1,
        "stops before the open transaction"
    );
    assert_eq!(
        values(&mut uncommitted),
        ["a0", "c1", "c2", "a1", "x1", "x2", "a2", "o1", "a3", "o2"]
    );
    // Readers that start inside the open transaction see nothing past it.
    let mut from_a3 = reader_of(&log, "t", a3, IsolationLevel::ReadCommitted);
    let mut from_o2 = reader_of(&log, "t", o2, IsolationLevel::ReadCommitted);
    assert!(values(&mut from_a3).is_empty());
    assert!(values(&mut from_o2).is_empty());

    open.commit().unwrap();
    send("a4");
    assert_eq!(values(&mut committed), ["o1", "a3", "o2", "a4"]);
    assert_eq!(values(&mut from_a3), ["a3", "o2", "a4"]);
    assert_eq!(values(&mut from_o2), ["o2", "a4"]);
    assert_eq!(values(&mut uncommitted), ["a4"]);
}

/// With segments rolling inside an open transaction, a reader starting
/// past the roll learns of the transaction from the producer-state
/// snapshot written at the roll (a log on disk writes them).
#[test]
fn a_transaction_open_across_rolls_holds_back_a_reader_that_starts_after_it_began() {
    let dir = TestDir::new("read-only-txn-rolls");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new().segment_bytes(1024))
        .unwrap();
    let plain = log.producer();
    let mut t = log.transactional_producer("long").unwrap();
    plain.send("t", Record::new(b"before".to_vec())).unwrap();
    let mut txn = t.begin_transaction().unwrap();
    let first = txn
        .send("t", Record::new(b"t-0".to_vec()))
        .unwrap()
        .offset();
    let mut last = 0;
    for i in 0..60 {
        last = plain
            .send("t", Record::new(format!("p-{i}").into_bytes()))
            .unwrap()
            .offset();
    }
    let snapshots = segment_files(&dir.join("t-0"), "snapshot");
    assert!(
        snapshots
            .iter()
            .any(|s| s.file_name().unwrap().to_str().unwrap() > "00000000000000000001"),
        "rolls should have written snapshots: {snapshots:?}"
    );
    let mut late = reader_of(&log, "t", last - 3, IsolationLevel::ReadCommitted);
    let mut early = reader_of(&log, "t", 0, IsolationLevel::ReadCommitted);
    assert!(values(&mut late).is_empty());
    assert_eq!(values(&mut early), ["before"]);
    assert_eq!(early.position(), first);
    txn.commit().unwrap();
    assert_eq!(values(&mut late), ["p-56", "p-57", "p-58", "p-59"]);
    let all = values(&mut early);
    assert_eq!(all.len(), 61);
    assert_eq!(all[0], "t-0");
}

#[test]
fn committed_offsets_and_groups_match_the_writers() {
    let log = Log::temporary().unwrap();
    log.create_topic("in", TopicConfig::new().partitions(2))
        .unwrap();
    for i in 0..10u64 {
        log.producer()
            .send_to("in", (i % 2) as u32, Record::new(value_of(i)))
            .unwrap();
    }
    let tp0 = TopicPartition::new("in", 0);
    let tp1 = TopicPartition::new("in", 1);
    log.commit_offsets("g1", &[(tp0.clone(), OffsetAndMetadata::new(2))])
        .unwrap();
    log.commit_offsets(
        "g1",
        &[(tp0.clone(), OffsetAndMetadata::new(4).metadata("m"))],
    )
    .unwrap();
    log.commit_offsets("g1", &[(tp1.clone(), OffsetAndMetadata::new(5))])
        .unwrap();
    log.commit_offsets("g2", &[(tp1.clone(), OffsetAndMetadata::new(1))])
        .unwrap();
    log.delete_group("g2").unwrap();
    // Offsets sent to transactions: one committed, one aborted, one open.
    let consumer = |g: &str| log.consumer(ConsumerConfig::new().group(g));
    let offsets = |o| std::collections::HashMap::from([(tp1.clone(), OffsetAndMetadata::new(o))]);
    let (c3, c4, c5) = (consumer("g3"), consumer("g4"), consumer("g5"));
    let mut t = log.transactional_producer("t").unwrap();
    let mut txn = t.begin_transaction().unwrap();
    txn.send_offsets_to_transaction(&offsets(3), &c3.group_metadata())
        .unwrap();
    txn.commit().unwrap();
    let mut txn = t.begin_transaction().unwrap();
    txn.send_offsets_to_transaction(&offsets(4), &c4.group_metadata())
        .unwrap();
    txn.abort().unwrap();
    let mut open = t.begin_transaction().unwrap();
    open.send_offsets_to_transaction(&offsets(5), &c5.group_metadata())
        .unwrap();
    // A plain commit after the open transaction counts at once.
    log.commit_offsets("g1", &[(tp1.clone(), OffsetAndMetadata::new(5))])
        .unwrap();

    let reader = Log::open_read_only(log.dir()).unwrap();
    assert_eq!(reader.groups().unwrap(), log.groups());
    assert_eq!(reader.groups().unwrap(), ["g1", "g3"]);
    for g in ["g1", "g2", "g3", "g4", "g5"] {
        assert_eq!(
            reader.committed_offsets(g).unwrap(),
            log.committed_offsets(g),
            "{g}"
        );
    }
    assert_eq!(
        reader.committed_offsets("g1").unwrap()[0].1.metadata_str(),
        "m"
    );
    open.commit().unwrap();
    assert_eq!(
        reader.committed_offsets("g5").unwrap(),
        log.committed_offsets("g5")
    );
    assert_eq!(reader.committed_offsets("g5").unwrap()[0].1.offset(), 5);
    // Internal topics stay hidden.
    assert_eq!(reader.topics().unwrap(), ["in"]);
}

#[test]
fn offsets_for_timestamps_and_seeks_inside_batches() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().segment_bytes(1024))
        .unwrap();
    // Batches of five, timestamps 100, 110, ... per batch, one record of
    // each batch 5 ms later than the others.
    for b in 0..40u64 {
        let recs = (0..5u64)
            .map(|i| {
                let o = b * 5 + i;
                let ts = 100 + 10 * b as i64 + if i == 2 { 5 } else { 0 };
                Record::new(value_of(o)).timestamp(ts)
            })
            .collect();
        log.producer().send_batch("t", recs).unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let reader = Log::open_read_only(log.dir()).unwrap();
    assert!(log.partition_info(&tp).unwrap().segments > 3);
    for ts in [-5, 0, 100, 101, 105, 106, 250, 445, 490, 495, 496, 10_000] {
        assert_eq!(
            reader.offset_for_timestamp(&tp, ts).unwrap(),
            log.offset_for_timestamp(&tp, ts).unwrap(),
            "timestamp {ts}"
        );
    }
    assert_eq!(reader.offset_for_timestamp(&tp, 101).unwrap(), Some(2));
    assert_eq!(reader.offset_for_timestamp(&tp, 106).unwrap(), Some(5));
    assert_eq!(reader.offset_for_timestamp(&tp, 496).unwrap(), None);
    // Every start offset, mid-batch ones and ones in later segments.
    for start in [0, 1, 3, 4, 5, 57, 123, 199, 200] {
        for iso in [
            IsolationLevel::ReadCommitted,
            IsolationLevel::ReadUncommitted,
        ] {
            let mut p = reader.partition_reader(&tp, start, iso).unwrap();
            let mut got = Vec::new();
            loop {
                let f = p.read(7).unwrap();
                if f.is_empty() {
                    break;
                }
                assert!(f.skipped.is_none());
                got.extend(f.into_iter().map(|r| (r.offset, r.value.unwrap())));
            }
            let want: Vec<_> = (start..200).map(|o| (o, value_of(o))).collect();
            assert_eq!(got, want, "from {start}");
        }
    }
}
