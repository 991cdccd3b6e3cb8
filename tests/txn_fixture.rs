//! Writes a log with transactions for the Kafka interop check
//! (`tests/interop/check_kafka_txn.py`, run by `.ci/run`): committed and
//! aborted transactions with group offsets, plain sends between them, and
//! enough rolls for producer-state snapshots; then closes it. Ignored: run
//! with `STREAMLOG_TXN_LOG_OUT=<dir> cargo test --test txn_fixture --
//! --ignored`. Writes `<dir>/log` and `<dir>/expected.tsv`, which lists
//! what Kafka's tools must find:
//!
//! ```text
//! marker <offset> <COMMIT|ABORT> <producer id>
//! aborted <producer id> <first offset> <last offset> <last stable offset>
//! snapshot <offset> <producer id> ...
//! state <transactional id> <producer id> <status>   (each state record, in order)
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;

use streamlog::{ConsumerConfig, Log, OffsetAndMetadata, Record, TopicConfig, TopicPartition};

#[test]
#[ignore = "writes the interop log; run by tests/interop/kafka_format.sh"]
fn generate_txn_log() {
    let out = std::path::PathBuf::from(
        std::env::var("STREAMLOG_TXN_LOG_OUT").expect("set STREAMLOG_TXN_LOG_OUT"),
    );
    let dir = out.join("log");
    let _ = std::fs::remove_dir_all(&dir);
    let log = Log::open(&dir).unwrap();
    log.create_topic("in", TopicConfig::new()).unwrap();
    log.create_topic("tx", TopicConfig::new().segment_bytes(1024))
        .unwrap();
    let p = log.producer();
    for i in 0..5 {
        p.send("in", Record::new(format!("input {i}").as_bytes()))
            .unwrap();
    }
    let group = log.consumer(ConsumerConfig::new().group("g"));
    let mut tp = log.transactional_producer("copier-1").unwrap();
    let pid = tp.producer_id();
    let mut expected = String::new();
    let mut markers = Vec::new();
    // (records, commit, with offsets)
    for (round, (n, commit)) in [(3, true), (2, false), (4, true), (1, false), (2, true)]
        .into_iter()
        .enumerate()
    {
        p.send("tx", Record::new(format!("plain {round}").as_bytes()))
            .unwrap();
        let mut txn = tp.begin_transaction().unwrap();
        let mut first = None;
        for i in 0..n {
            let v = format!("txn {round} record {i} {}", "x".repeat(150));
            let md = txn.send("tx", Record::new(v.as_bytes())).unwrap();
            first.get_or_insert(md.offset());
        }
        let offsets = HashMap::from([(
            TopicPartition::new("in", 0),
            OffsetAndMetadata::new(round as u64 + 1),
        )]);
        txn.send_offsets_to_transaction(&offsets, &group.group_metadata())
            .unwrap();
        if commit {
            txn.commit().unwrap();
        } else {
            txn.abort().unwrap();
        }
        markers.push((first.unwrap(), commit));
    }
    log.close().unwrap();
    // The markers follow each transaction's records: the offset after the
    // last record of the transaction, found by reading uncommitted.
    let log = Log::open(&dir).unwrap();
    let batches = log
        .fetch_batches(&TopicPartition::new("tx", 0), 0, usize::MAX)
        .unwrap();
    let mut open: Option<u64> = None;
    let mut lso_waiting: Vec<(u64, u64)> = Vec::new();
    for b in batches.iter() {
        let bytes = b.bytes();
        let attrs = u16::from_be_bytes([bytes[21], bytes[22]]);
        let transactional = attrs & 0x10 != 0;
        let control = attrs & 0x20 != 0;
        if control {
            // The control record's key: version, then type 0 abort 1 commit.
            let kind = if bytes.len() > 61 && find_type(&bytes[61..]) == 1 {
                "COMMIT"
            } else {
                "ABORT"
            };
            writeln!(expected, "marker\t{}\t{kind}\t{pid}", b.base_offset()).unwrap();
            if kind == "ABORT" {
                let first = open.expect("a marker ends an open transaction");
                lso_waiting.push((first, b.base_offset()));
            }
            open = None;
        } else if transactional && open.is_none() {
            open = Some(b.base_offset());
        }
    }
    for (first, last) in lso_waiting {
        writeln!(expected, "aborted\t{pid}\t{first}\t{last}\t{}", last + 1).unwrap();
    }
    assert_eq!(markers.len(), 5);
    log.close().unwrap();
    std::fs::write(out.join("expected.tsv"), expected).unwrap();
}

/// The control type in a v2 record (after its length, attributes,
/// timestamp delta and offset delta varints, the key length and key).
fn find_type(record: &[u8]) -> i16 {
    // length varint, attributes byte, ts delta varint, offset delta varint,
    // key length varint (4 → 0x08), key (i16 version, i16 type)
    let mut i = 0;
    let skip_varint = |i: &mut usize| {
        while record[*i] & 0x80 != 0 {
            *i += 1;
        }
        *i += 1;
    };
    skip_varint(&mut i); // length
    i += 1; // attributes
    skip_varint(&mut i); // timestamp delta
    skip_varint(&mut i); // offset delta
    skip_varint(&mut i); // key length
    i16::from_be_bytes([record[i + 2], record[i + 3]])
}
