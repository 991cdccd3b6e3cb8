//! The server's timer thread: a remote transaction abandoned by its client
//! is aborted at its timeout, so that read_committed readers move on.

use std::time::{Duration, Instant};

use streamlog::internals::{encode, DecodedBatch, DecodedRecord};
use streamlog::{Log, TopicConfig, TopicPartition};
use streamlog_server::{Server, ServerConfig};

#[test]
fn an_abandoned_remote_transaction_is_aborted_at_its_timeout() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let server = Server::start(log.clone(), "127.0.0.1:0", ServerConfig::new()).unwrap();
    let (pid, epoch) = log
        .init_producer_id("gone", Duration::from_millis(300), None)
        .unwrap();
    let tp = TopicPartition::new("t", 0);
    log.add_partitions_to_txn("gone", pid, epoch, std::slice::from_ref(&tp))
        .unwrap();
    let batch = encode(&DecodedBatch {
        version: 2,
        total_len: 0,
        base_offset: 0,
        leader_epoch: 0,
        last_offset_delta: 0,
        attributes: 0x10,
        base_timestamp: 0,
        max_timestamp: 0,
        producer: (pid, epoch, 0),
        crc: 0,
        records: vec![DecodedRecord {
            offset_delta: 0,
            timestamp: 0,
            key: None,
            value: Some(b"never committed".to_vec()),
            headers: vec![],
        }],
    });
    log.append_transactional_batches("gone", pid, epoch, "t", 0, &batch)
        .unwrap();
    let lso = |log: &Log| {
        log.fetch_partition(&tp, 0, 1, streamlog::IsolationLevel::ReadCommitted)
            .unwrap()
            .last_stable_offset
    };
    assert_eq!(lso(&log), 0, "held back by the open transaction");
    // The client vanishes; no one calls the log. The server's timer aborts
    // the transaction once its 300 ms are up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lso(&log) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = log.partition_info(&tp).unwrap();
    assert_eq!(
        lso(&log),
        info.end_offset,
        "aborted, and its marker written"
    );
    server.shutdown();
}
