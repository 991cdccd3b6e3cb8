//! Appending Kafka record batches as a Kafka client sends them
//! (`Producer::append_kafka_batches`): accepted ones come back record for
//! record and byte for byte (but for the base offset and leader epoch);
//! every malformed or unsupported one is refused with a typed error and
//! nothing is appended.
mod common;

use streamlog::internals::{encode, fix_crcs, DecodedBatch, DecodedRecord};
use streamlog::{Compression, CorruptionKind, Error, Log, TopicConfig, TopicPartition};

const ATTR_ZSTD: u16 = 4;
const ATTR_LOG_APPEND_TIME: u16 = 1 << 3;
const ATTR_TRANSACTIONAL: u16 = 1 << 4;
const ATTR_CONTROL: u16 = 1 << 5;

fn record(i: u32, ts: i64) -> DecodedRecord {
    DecodedRecord {
        offset_delta: i,
        timestamp: ts,
        key: (!i.is_multiple_of(3)).then(|| format!("key-{i}").into_bytes()),
        value: (i % 5 != 4).then(|| format!("value {i} {}", "x".repeat(i as usize)).into_bytes()),
        headers: vec![
            ("trace".to_owned(), Some(format!("t{i}").into_bytes())),
            ("gone".to_owned(), None),
        ],
    }
}

/// A batch as a Kafka producer builds it: base offset 0, leader epoch −1.
fn client_batch(n: u32, attributes: u16, producer: (i64, i16, i32)) -> (DecodedBatch, Vec<u8>) {
    let records: Vec<DecodedRecord> = (0..n)
        .map(|i| record(i, 1_700_000_000_000 + i64::from(i) * 3))
        .collect();
    let b = DecodedBatch {
        version: 2,
        total_len: 0,
        base_offset: 0,
        leader_epoch: -1,
        last_offset_delta: n - 1,
        attributes,
        base_timestamp: records[0].timestamp,
        max_timestamp: records.iter().map(|r| r.timestamp).max().unwrap(),
        producer,
        crc: 0,
        records,
    };
    let bytes = encode(&b);
    (b, bytes)
}

fn log_with(topic: &str, cfg: TopicConfig) -> Log {
    let log = Log::temporary().unwrap();
    log.create_topic(topic, cfg).unwrap();
    log
}

#[test]
fn accepted_batches_read_back_record_for_record_and_byte_for_byte() {
    for (codec, attrs) in [("none", 0u16), ("zstd", ATTR_ZSTD)] {
        let log = log_with("t", TopicConfig::new());
        let p = log.producer();
        // Something already in the partition: the batches get the next offsets.
        p.send("t", streamlog::Record::new(b"first")).unwrap();
        let (b1, bytes1) = client_batch(7, attrs, (-1, -1, -1));
        let (b2, bytes2) = client_batch(3, attrs, (4000, 0, 0));
        let mut input = bytes1.clone();
        input.extend_from_slice(&bytes2);
        assert_eq!(
            p.append_kafka_batches("t", 0, &input).unwrap(),
            [1, 8],
            "{codec}"
        );
        let got = read_records(&log, 1);
        let want: Vec<_> = b1.records.iter().chain(&b2.records).collect();
        assert_eq!(got.len(), want.len(), "{codec}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g.offset, 1 + i as u64, "{codec}");
            assert_eq!(g.timestamp, w.timestamp, "{codec}");
            assert_eq!(g.key, w.key, "{codec}");
            assert_eq!(g.value, w.value, "{codec}");
        }
        // Null header values survive.
        let tp = TopicPartition::new("t", 0);
        let mut c = log.consumer(streamlog::ConsumerConfig::new());
        c.assign(std::slice::from_ref(&tp)).unwrap();
        c.seek(&tp, 1).unwrap();
        let polled = c.poll(std::time::Duration::from_secs(1)).unwrap();
        let first = polled.iter().next().unwrap();
        let hs: Vec<_> = first.nullable_headers().collect();
        assert_eq!(hs, [("trace", Some(&b"t0"[..])), ("gone", None)], "{codec}");
        // On disk: the client's bytes, but for base offset and leader epoch.
        log.flush().unwrap();
        let seg = std::fs::read(log.dir().join("t-0/00000000000000000000.log")).unwrap();
        let first_len = u32::from_be_bytes(seg[8..12].try_into().unwrap()) as usize + 12;
        let stored = &seg[first_len..first_len + bytes1.len()];
        assert_eq!(stored[..8], 1u64.to_be_bytes(), "{codec}");
        assert_eq!(stored[12..16], 0i32.to_be_bytes(), "{codec}");
        assert_eq!(stored[16..], bytes1[16..], "{codec}");
    }
}

/// Input that must be refused, and why: nothing is appended.
fn refused(log: &Log, input: &[u8]) -> Error {
    let end = log
        .partition_info(&TopicPartition::new("t", 0))
        .unwrap()
        .end_offset;
    let err = log
        .producer()
        .append_kafka_batches("t", 0, input)
        .unwrap_err();
    let after = log
        .partition_info(&TopicPartition::new("t", 0))
        .unwrap()
        .end_offset;
    assert_eq!(after, end, "a refused input appended something: {err}");
    err
}

fn bad_record(err: &Error) -> bool {
    matches!(err, Error::InvalidKafkaBatch { .. })
}

#[test]
fn malformed_and_unsupported_batches_are_refused_with_a_typed_error() {
    let log = log_with("t", TopicConfig::new().max_record_bytes(1000));
    let (good, bytes) = client_batch(4, 0, (-1, -1, -1));
    // Damage the CRC covers.
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    assert!(matches!(
        refused(&log, &b),
        Error::InvalidKafkaBatch {
            kind: CorruptionKind::CrcMismatch { .. },
            position: 0,
            ..
        }
    ));
    // Cut short, and garbage after a whole batch (position names it).
    assert!(bad_record(&refused(&log, &bytes[..bytes.len() - 3])));
    let mut b = bytes.clone();
    b.extend_from_slice(&[1, 2, 3]);
    match refused(&log, &b) {
        Error::InvalidKafkaBatch { position, .. } => assert_eq!(position, bytes.len() as u64),
        other => panic!("{other}"),
    }
    assert!(bad_record(&refused(&log, &[])));
    // Attributes a client may not set.
    for attrs in [
        ATTR_CONTROL,
        ATTR_TRANSACTIONAL,
        ATTR_LOG_APPEND_TIME,
        1 << 6,
        1,
        2,
        3,
    ] {
        let mut d = good.clone();
        d.attributes = attrs;
        let enc = bytes_of(&d);
        assert!(bad_record(&refused(&log, &enc)), "attributes {attrs:#x}");
    }
    // A newer attribute bit or magic.
    let mut b = bytes.clone();
    b[16] = 3;
    assert!(bad_record(&refused(&log, &b)));
    // Record offset deltas must be 0, 1, 2, ...; the count must match.
    let mut d = good.clone();
    d.records[2].offset_delta = 3;
    d.records[3].offset_delta = 4;
    d.last_offset_delta = 4;
    assert!(bad_record(&refused(&log, &bytes_of(&d))));
    let mut d = good.clone();
    d.records.pop();
    assert!(bad_record(&refused(&log, &bytes_of(&d))));
    // The max timestamp must be the records' largest.
    let mut d = good.clone();
    d.max_timestamp += 1;
    assert!(bad_record(&refused(&log, &bytes_of(&d))));
    // Producer fields: an id needs an epoch and a sequence.
    let mut d = good.clone();
    d.producer = (5, -1, 0);
    assert!(bad_record(&refused(&log, &bytes_of(&d))));
    // A record over the topic's limit.
    let mut d = good.clone();
    d.records[1].value = Some(vec![7; 2000]);
    assert!(matches!(
        refused(&log, &bytes_of(&d)),
        Error::RecordTooLarge { max: 1000, .. }
    ));
    // A v1 batch is not a Kafka batch.
    let mut d = good.clone();
    d.version = 1;
    d.producer = (-1, -1, -1);
    d.leader_epoch = -1;
    for r in &mut d.records {
        r.headers.retain(|h| h.1.is_some());
    }
    assert!(bad_record(&refused(&log, &bytes_of(&d))));
    // Unknown partition and topic.
    assert!(matches!(
        log.producer().append_kafka_batches("t", 9, &bytes),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(
        log.producer().append_kafka_batches("nope", 0, &bytes),
        Err(Error::UnknownTopic { .. })
    ));
    // And the good batch is still accepted.
    assert_eq!(
        log.producer().append_kafka_batches("t", 0, &bytes).unwrap(),
        [0]
    );
}

/// A zstd section that decompresses far past what its records may take (a
/// "zip bomb") is refused without decompressing it all.
#[test]
fn a_zstd_bomb_is_refused() {
    let log = log_with(
        "t",
        TopicConfig::new()
            .max_record_bytes(1000)
            .compression(Compression::Zstd(1)),
    );
    let (mut d, _) = client_batch(1, ATTR_ZSTD, (-1, -1, -1));
    d.records[0].value = Some(vec![0; 8 << 20]);
    let bytes = bytes_of(&d);
    assert!(bytes.len() < 4096, "compresses well: {}", bytes.len());
    let err = refused(&log, &bytes);
    assert!(bad_record(&err), "{err}");
}

/// Every record of t-0 from `from` on: offset, timestamp, key, value.
struct Got {
    offset: u64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

fn read_records(log: &Log, from: u64) -> Vec<Got> {
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(streamlog::ConsumerConfig::new().max_poll_records(10_000));
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, from).unwrap();
    let end = log.partition_info(&tp).unwrap().end_offset;
    let mut out = Vec::new();
    while c.position(&tp).unwrap() < end {
        for r in &c.poll(std::time::Duration::from_secs(5)).unwrap() {
            out.push(Got {
                offset: r.offset(),
                timestamp: r.timestamp(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
            });
        }
    }
    out
}

/// Encodes a (possibly inconsistent) batch, with its CRC fixed.
fn bytes_of(d: &DecodedBatch) -> Vec<u8> {
    let b = encode(d);
    fix_crcs(&b).unwrap_or(b)
}
