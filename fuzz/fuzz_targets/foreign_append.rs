//! `Producer::append_kafka_batches` on arbitrary bytes (as a Kafka client
//! could send them) must never panic; input it refuses appends nothing;
//! input it accepts reads back record for record as `internals::decode`
//! sees each batch, at the next offsets — except a batch the partition
//! already holds (the same producer id, epoch and sequences: an idempotent
//! producer's retry), which is answered with its original, earlier offsets
//! and appends nothing.
//!
//! Input layout: byte 0 flags (bit 0: recompute batch CRCs; bit 1: a zstd
//! topic), the rest the batches. One temporary log per process, one
//! partition per topic; offsets keep growing across inputs.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use streamlog::internals::decode;
use streamlog::{Compression, ConsumerConfig, Log, TopicConfig, TopicPartition};

fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::temporary().expect("temporary log");
        let cfg = TopicConfig::new()
            .max_record_bytes(64 << 10)
            .segment_bytes(1 << 20);
        log.create_topic("plain", cfg.clone()).expect("topic");
        log.create_topic("zstd", cfg.compression(Compression::Zstd(1)))
            .expect("topic");
        log
    })
}

fn check(topic: &str, input: &[u8]) {
    let log = log();
    let tp = TopicPartition::new(topic, 0);
    let end = log.partition_info(&tp).expect("info").end_offset;
    let res = log.producer().append_kafka_batches(topic, 0, input);
    let after = log.partition_info(&tp).expect("info").end_offset;
    let bases = match res {
        Err(_) => {
            assert_eq!(after, end, "a refused input appended something");
            return;
        }
        Ok(b) => b,
    };
    // What each accepted batch holds, as the decoder sees it.
    let mut want = Vec::new();
    let mut pos = 0;
    let mut next = end;
    for &base in &bases {
        let d = decode(&input[pos..]).expect("an accepted batch decodes");
        pos += d.total_len;
        if base != next {
            assert!(base < next, "a batch answered with offsets not yet used");
            assert!(d.producer.0 >= 0, "only a producer's batch is a retry");
            continue;
        }
        for r in &d.records {
            want.push((base + u64::from(r.offset_delta), r.timestamp, r.key.clone(), r.value.clone(), r.headers.clone()));
        }
        next = base + u64::from(d.last_offset_delta) + 1;
    }
    assert_eq!(pos, input.len(), "accepted input has bytes after its batches");
    assert_eq!(after, next, "offsets not dense");
    let mut c = log.consumer(ConsumerConfig::new().max_poll_records(100_000));
    c.assign(std::slice::from_ref(&tp)).expect("assign");
    c.seek(&tp, end).expect("seek");
    let mut got = Vec::new();
    while got.len() < want.len() {
        let recs = c.poll(Duration::from_secs(5)).expect("read back");
        assert!(!recs.is_empty(), "accepted records do not read back");
        for r in &recs {
            got.push((
                r.offset(),
                r.timestamp(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                r.nullable_headers()
                    .map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                    .collect::<Vec<_>>(),
            ));
        }
    }
    assert_eq!(got, want, "records read back differ");
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let topic = if flags & 2 != 0 { "zstd" } else { "plain" };
    if flags & 1 != 0 {
        if let Some(fixed) = streamlog_fuzz::fix_crcs(rest) {
            check(topic, &fixed);
            return;
        }
    }
    check(topic, rest);
});
