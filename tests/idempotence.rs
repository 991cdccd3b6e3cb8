//! Idempotent appends: every producer batch carries a producer id and
//! sequence numbers, so a batch appended twice is stored once, a gap or a
//! stale epoch is refused with a typed error, and an append whose outcome
//! an I/O error left unknown can be re-sent after a reopen and is stored
//! exactly once.
mod common;

use streamlog::internals::{encode, DecodedBatch, DecodedRecord};
use streamlog::testing::{open_sim, SimFs};
use streamlog::{Error, Log, LogOptions, Record, SyncPolicy, TopicConfig, TopicPartition};

fn batch(n: u32, producer: (i64, i16, i32)) -> Vec<u8> {
    let records: Vec<DecodedRecord> = (0..n)
        .map(|i| DecodedRecord {
            offset_delta: i,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(format!("v{i}").into_bytes()),
            headers: vec![],
        })
        .collect();
    encode(&DecodedBatch {
        version: 2,
        total_len: 0,
        base_offset: 0,
        leader_epoch: -1,
        last_offset_delta: n - 1,
        attributes: 0,
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_000,
        producer,
        crc: 0,
        records,
    })
}

fn end(log: &Log, topic: &str) -> u64 {
    log.partition_info(&TopicPartition::new(topic, 0))
        .unwrap()
        .end_offset
}

#[test]
fn a_duplicated_batch_is_stored_once_and_answered_with_its_offsets() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    p.send("t", Record::new(b"before")).unwrap();
    let b0 = batch(3, (77, 0, 0));
    let b1 = batch(2, (77, 0, 3));
    assert_eq!(p.append_kafka_batches("t", 0, &b0).unwrap(), [1]);
    assert_eq!(p.append_kafka_batches("t", 0, &b1).unwrap(), [4]);
    // A retry of either (same producer, epoch and sequences).
    assert_eq!(p.append_kafka_batches("t", 0, &b0).unwrap(), [1]);
    assert_eq!(p.append_kafka_batches("t", 0, &b1).unwrap(), [4]);
    assert_eq!(end(&log, "t"), 6);
    let values: Vec<Vec<u8>> = common::read_all(&log, "t", 0, 0)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 6);
}

#[test]
fn a_sequence_gap_and_a_stale_epoch_get_typed_errors() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    p.append_kafka_batches("t", 0, &batch(2, (5, 1, 0)))
        .unwrap();
    match p.append_kafka_batches("t", 0, &batch(1, (5, 1, 3))) {
        Err(Error::OutOfOrderSequence {
            producer_id: 5,
            expected: 2,
            got: 3,
            ..
        }) => {}
        other => panic!("expected OutOfOrderSequence, got {other:?}"),
    }
    match p.append_kafka_batches("t", 0, &batch(1, (5, 0, 2))) {
        Err(Error::ProducerFenced {
            producer_id: 5,
            epoch: 0,
            current_epoch: 1,
            ..
        }) => {}
        other => panic!("expected ProducerFenced, got {other:?}"),
    }
    // A new epoch must start at sequence 0.
    assert!(matches!(
        p.append_kafka_batches("t", 0, &batch(1, (5, 2, 7))),
        Err(Error::OutOfOrderSequence { expected: 0, .. })
    ));
    p.append_kafka_batches("t", 0, &batch(1, (5, 2, 0)))
        .unwrap();
    assert_eq!(end(&log, "t"), 3);
}

#[test]
fn producer_state_survives_a_reopen() {
    let dir = common::TestDir::new("idem-reopen");
    let b0 = batch(2, (9, 0, 0));
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().segment_bytes(1024))
            .unwrap();
        let p = log.producer();
        // Plain sends roll segments (snapshots at each roll) around the batch.
        for i in 0..10 {
            p.send(
                "t",
                Record::new(format!("x{i}{}", "-".repeat(300)).as_bytes()),
            )
            .unwrap();
        }
        p.append_kafka_batches("t", 0, &b0).unwrap();
        for i in 0..3 {
            p.send("t", Record::new(format!("y{i}").as_bytes()))
                .unwrap();
        }
        log.close().unwrap();
    }
    // As if the process had died before its close: no clean-shutdown
    // marker, no snapshot at the end. The reopen replays the batches after
    // the snapshot of the last roll.
    std::fs::remove_file(dir.join("clean-shutdown")).unwrap();
    let snaps = common::segment_files(&dir.join("t-0"), "snapshot");
    assert!(snaps.len() >= 2, "{snaps:?}");
    std::fs::remove_file(snaps.last().unwrap()).unwrap();
    for round in 0..2 {
        let log = Log::open(dir.path()).unwrap();
        let replayed = log.recovery_report().producer_batches_replayed;
        assert_eq!(replayed > 0, round == 0, "round {round}: {replayed}");
        let p = log.producer();
        assert_eq!(p.append_kafka_batches("t", 0, &b0).unwrap(), [10]);
        assert!(matches!(
            p.append_kafka_batches("t", 0, &batch(1, (9, 0, 5))),
            Err(Error::OutOfOrderSequence { expected: 2, .. })
        ));
        assert_eq!(end(&log, "t"), 15);
        log.close().unwrap();
    }
}

#[test]
fn plain_producers_carry_ids_and_dense_sequences() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let a = log.producer();
    let b = log.producer();
    let (ia, ib) = (a.producer_id().unwrap(), b.producer_id().unwrap());
    assert_ne!(ia, ib);
    assert_eq!(a.clone().producer_id().unwrap(), ia);
    a.send("t", Record::new(b"1")).unwrap();
    a.send_batch("t", vec![Record::new(b"2"), Record::new(b"3")])
        .unwrap();
    b.send("t", Record::new(b"4")).unwrap();
    // The stored batches carry (producer, sequence): a, 0; a, 1; b, 0.
    let batches = log
        .fetch_batches(&TopicPartition::new("t", 0), 0, 1 << 20)
        .unwrap();
    let got: Vec<(i64, i32)> = batches
        .iter()
        .map(|s| {
            let h = s.bytes();
            (
                i64::from_be_bytes(h[43..51].try_into().unwrap()),
                i32::from_be_bytes(h[53..57].try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(got, [(ia, 0), (ia, 1), (ib, 0)]);
    // Each is a valid Kafka batch (CRC-32C over the patched sequence).
    for s in batches.iter() {
        let h = s.bytes();
        let stored = u32::from_be_bytes(h[17..21].try_into().unwrap());
        assert_eq!(stored, crc32c::crc32c(&h[21..]));
    }
}

#[test]
fn an_append_left_unknown_by_an_io_error_is_stored_once_after_resend() {
    for power_cut in [false, true] {
        let fs = SimFs::new(None, 7);
        let opts = || LogOptions::new().sync(SyncPolicy::EveryWrite);
        let log = open_sim(&fs, "/d", opts()).unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        let p = log.producer();
        p.send("t", Record::new(b"first")).unwrap();
        fs.fail_sync_after(0);
        let big = vec![b'z'; 5000]; // a batch whose CRC is patched, not recomputed
        let err = p
            .send_batch("t", vec![Record::new(b"second"), Record::new(&big)])
            .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        let pending = p.take_pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].record_count(), 2);
        assert!(p.take_pending().is_empty());
        drop(p);
        drop(log);
        let fs = if power_cut {
            SimFs::from_image(&fs.cut_now(), None, 3)
        } else {
            fs.restart(None)
        };
        let log = open_sim(&fs, "/d", opts()).unwrap();
        let mds = log.resend(&pending[0]).unwrap();
        assert_eq!(
            mds.iter().map(|m| m.offset()).collect::<Vec<_>>(),
            [1, 2],
            "power cut: {power_cut}"
        );
        // Again: still the same offsets, nothing added.
        let again = log.resend(&pending[0]).unwrap();
        assert_eq!(again[0].offset(), 1);
        let all = common::read_all(&log, "t", 0, 0);
        assert_eq!(all.len(), 3, "power cut: {power_cut}");
        assert_eq!(all[1].1, b"second");
        assert_eq!(all[2].1, big);
    }
}

#[test]
fn a_gap_in_a_later_batch_of_one_input_appends_nothing() {
    // Found by the foreign_append fuzz target: producer state refused the
    // second batch after the first was appended.
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    let input = [batch(2, (42, 0, 0)), batch(1, (42, 0, 5))].concat();
    assert!(matches!(
        p.append_kafka_batches("t", 0, &input),
        Err(Error::OutOfOrderSequence {
            expected: 2,
            got: 5,
            ..
        })
    ));
    assert_eq!(end(&log, "t"), 0);
    // A retry inside one input is answered with the first copy's offsets.
    let b = batch(2, (43, 0, 0));
    let twice = [b.clone(), b].concat();
    assert_eq!(p.append_kafka_batches("t", 0, &twice).unwrap(), [0, 0]);
    assert_eq!(end(&log, "t"), 2);
}
