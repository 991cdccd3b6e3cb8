//! Transactions of a remote client (Kafka's transaction version 1, through
//! `Log::init_producer_id` and its siblings) keep one epoch across
//! transactions, so (producer id, epoch) names several transactions in
//! turn. Regression: the `Ongoing` record of a transaction's start must be
//! durable before its first batch, or a power cut inside the second
//! transaction reads the first one's durable commit decision as its own
//! and commits half of it.
//! (The second defect of this kind, ABORT markers not durable before a
//! later commit decision of the same epoch, is `txn_power_cut`'s seed 590,
//! replayed there by its own test.)

use std::path::Path;
use std::time::Duration;

use streamlog::internals::{encode as encode_batch, DecodedBatch, DecodedRecord};
use streamlog::testing::{open_sim, SimFs};
use streamlog::{
    ConsumerConfig, IsolationLevel, Log, LogOptions, ManualClock, OffsetReset, SyncPolicy,
    TopicConfig, TopicPartition,
};

fn opts() -> LogOptions {
    LogOptions::new()
        .sync(SyncPolicy::EveryWrite)
        .clock(ManualClock::new(1_700_000_000_000))
}

fn batch(pid: i64, epoch: i16, seq: i32, value: &str) -> Vec<u8> {
    let ts = 1_700_000_000_000;
    encode_batch(&DecodedBatch {
        version: 2,
        total_len: 0,
        base_offset: 0,
        leader_epoch: 0,
        last_offset_delta: 0,
        attributes: 0x10,
        base_timestamp: ts,
        max_timestamp: ts,
        producer: (pid, epoch, seq),
        crc: 0,
        records: vec![DecodedRecord {
            offset_delta: 0,
            timestamp: ts,
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
        }],
    })
}

fn committed(log: &Log, p: u32) -> Vec<String> {
    let mut c = log.consumer(
        ConsumerConfig::new()
            .isolation_level(IsolationLevel::ReadCommitted)
            .auto_offset_reset(OffsetReset::Earliest),
    );
    c.assign(&[TopicPartition::new("a", p)]).unwrap();
    let mut out = vec![];
    loop {
        let r = c.poll(Duration::ZERO).unwrap();
        if r.is_empty() {
            break;
        }
        out.extend(
            r.iter()
                .map(|x| String::from_utf8_lossy(x.value().unwrap()).into_owned()),
        );
    }
    out
}

#[test]
fn a_power_cut_inside_the_second_transaction_of_an_epoch_aborts_it() {
    for seed in 0..32 {
        let fs = SimFs::new(None, seed);
        let log = open_sim(&fs, "/d", opts()).unwrap();
        log.create_topic("a", TopicConfig::new().partitions(2))
            .unwrap();
        let (pid, epoch) = log.init_producer_id("tx", Duration::from_secs(60)).unwrap();
        let (a0, a1) = (TopicPartition::new("a", 0), TopicPartition::new("a", 1));
        log.add_partitions_to_txn("tx", pid, epoch, std::slice::from_ref(&a0))
            .unwrap();
        log.append_transactional_batches("tx", pid, epoch, "a", 0, &batch(pid, epoch, 0, "T1"))
            .unwrap();
        log.end_txn("tx", pid, epoch, true).unwrap();
        // The second transaction, same epoch: one of its two partitions
        // written (durably, EveryWrite) when the power goes.
        log.add_partitions_to_txn("tx", pid, epoch, &[a0.clone(), a1.clone()])
            .unwrap();
        log.append_transactional_batches("tx", pid, epoch, "a", 0, &batch(pid, epoch, 1, "T2"))
            .unwrap();
        let after = SimFs::from_image(&fs.cut_now(), None, seed);
        drop(log);
        let log = open_sim(&after, Path::new("/d"), opts()).unwrap();
        assert_eq!(
            committed(&log, 0),
            ["T1"],
            "seed {seed}: T2 must be aborted"
        );
        assert_eq!(log.recovery_report().transactions_aborted, 1, "seed {seed}");
    }
}

#[test]
fn a_remote_client_keeps_its_epoch_and_a_newer_one_fences_it() {
    let log = Log::temporary().unwrap();
    log.create_topic("a", TopicConfig::new()).unwrap();
    let (pid, epoch) = log.init_producer_id("tx", Duration::from_secs(60)).unwrap();
    let a0 = TopicPartition::new("a", 0);
    for (i, commit) in [(0, true), (1, false), (2, true)] {
        log.add_partitions_to_txn("tx", pid, epoch, std::slice::from_ref(&a0))
            .unwrap();
        let offs = log
            .append_transactional_batches(
                "tx",
                pid,
                epoch,
                "a",
                0,
                &batch(pid, epoch, i, &format!("v{i}")),
            )
            .unwrap();
        // A retried batch gets its original offset.
        let again = log
            .append_transactional_batches(
                "tx",
                pid,
                epoch,
                "a",
                0,
                &batch(pid, epoch, i, &format!("v{i}")),
            )
            .unwrap();
        assert_eq!(offs, again);
        log.end_txn("tx", pid, epoch, commit).unwrap();
        // A retried EndTxn is answered as done.
        log.end_txn("tx", pid, epoch, commit).unwrap();
    }
    assert_eq!(committed(&log, 0), ["v0", "v2"]);
    // Writing to a partition not added is refused.
    log.add_partitions_to_txn("tx", pid, epoch, &[]).unwrap();
    let e = log
        .append_transactional_batches("tx", pid, epoch, "a", 0, &batch(pid, epoch, 3, "x"))
        .unwrap_err();
    assert!(matches!(e, streamlog::Error::InvalidTxnState { .. }), "{e}");
    // A new InitProducerId fences the old epoch and aborts its transaction.
    let (pid2, epoch2) = log.init_producer_id("tx", Duration::from_secs(60)).unwrap();
    assert_eq!((pid2, epoch2 > epoch), (pid, true));
    let e = log
        .add_partitions_to_txn("tx", pid, epoch, std::slice::from_ref(&a0))
        .unwrap_err();
    assert!(matches!(e, streamlog::Error::ProducerFenced { .. }), "{e}");
}
