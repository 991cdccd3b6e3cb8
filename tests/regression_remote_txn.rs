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
        let (pid, epoch) = log
            .init_producer_id("tx", Duration::from_secs(60), None)
            .unwrap();
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
    let (pid, epoch) = log
        .init_producer_id("tx", Duration::from_secs(60), None)
        .unwrap();
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
    let (pid2, epoch2) = log
        .init_producer_id("tx", Duration::from_secs(60), None)
        .unwrap();
    assert_eq!((pid2, epoch2 > epoch), (pid, true));
    let e = log
        .add_partitions_to_txn("tx", pid, epoch, std::slice::from_ref(&a0))
        .unwrap_err();
    assert!(matches!(e, streamlog::Error::ProducerFenced { .. }), "{e}");
}

/// Regression (review): two concurrent InitProducerId calls for one id
/// could both return the same producer id and epoch, so the older client
/// was never fenced.
#[test]
fn concurrent_init_producer_id_calls_get_distinct_epochs() {
    let log = Log::temporary().unwrap();
    for _ in 0..50 {
        let results: Vec<(i64, i16)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        log.init_producer_id("tx", Duration::from_secs(60), None)
                            .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut distinct = results.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), results.len(), "{results:?}");
    }
}

/// Review: InitProducerId v3+ carries the id and epoch the client holds; a
/// client that is no longer the holder is refused instead of fencing the
/// live one. After a restart, a client carrying on with its id and epoch is
/// accepted until someone initializes the id anew.
#[test]
fn a_stale_holder_is_refused_and_a_live_one_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("streamlog-remote-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let a0 = TopicPartition::new("a", 0);
    let (pid, epoch) = {
        let log = Log::open(&dir).unwrap();
        log.create_topic("a", TopicConfig::new()).unwrap();
        let first = log
            .init_producer_id("tx", Duration::from_secs(60), None)
            .unwrap();
        let second = log
            .init_producer_id("tx", Duration::from_secs(60), Some(first))
            .unwrap();
        assert_eq!(second, (first.0, first.1 + 1));
        let e = log
            .init_producer_id("tx", Duration::from_secs(60), Some(first))
            .unwrap_err();
        assert!(matches!(e, streamlog::Error::ProducerFenced { .. }), "{e}");
        log.close().unwrap();
        second
    };
    let log = Log::open(&dir).unwrap();
    log.add_partitions_to_txn("tx", pid, epoch, std::slice::from_ref(&a0))
        .unwrap();
    log.append_transactional_batches(
        "tx",
        pid,
        epoch,
        "a",
        0,
        &batch(pid, epoch, 0, "after restart"),
    )
    .unwrap();
    log.end_txn("tx", pid, epoch, true).unwrap();
    assert_eq!(committed(&log, 0), ["after restart"]);
    // An in-process handle takes the id over: the remote client is fenced.
    let _handle = log.transactional_producer("tx").unwrap();
    let e = log
        .add_partitions_to_txn("tx", pid, epoch, std::slice::from_ref(&a0))
        .unwrap_err();
    assert!(matches!(e, streamlog::Error::ProducerFenced { .. }), "{e}");
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Review: a remote client could write into the log's internal topics
/// (planting commits or transaction decisions).
#[test]
fn remote_writers_cannot_reach_internal_topics() {
    let log = Log::temporary().unwrap();
    log.create_topic("a", TopicConfig::new()).unwrap();
    log.producer()
        .send("a", streamlog::Record::new(b"x"))
        .unwrap();
    // The offsets topic exists once a group commits.
    log.commit_offsets(
        "g",
        &[(
            TopicPartition::new("a", 0),
            streamlog::OffsetAndMetadata::new(1),
        )],
    )
    .unwrap();
    let plain = streamlog::internals::encode(&DecodedBatch {
        attributes: 0,
        producer: (-1, -1, -1),
        ..streamlog::internals::decode(&batch(1, 0, 0, "x")).unwrap()
    });
    for topic in ["__consumer_offsets", "__transaction_state"] {
        let _ = log.topic_config(topic);
        let e = log.producer().append_kafka_batches(topic, 0, &plain);
        assert!(
            matches!(
                e,
                Err(streamlog::Error::InvalidTopicName { .. })
                    | Err(streamlog::Error::UnknownTopic { .. })
            ),
            "{topic}: {e:?}"
        );
    }
    let (pid, epoch) = log
        .init_producer_id("tx", Duration::from_secs(60), None)
        .unwrap();
    let e = log
        .add_partitions_to_txn(
            "tx",
            pid,
            epoch,
            &[TopicPartition::new("__consumer_offsets", 0)],
        )
        .unwrap_err();
    assert!(
        matches!(e, streamlog::Error::InvalidTopicName { .. }),
        "{e}"
    );
}
