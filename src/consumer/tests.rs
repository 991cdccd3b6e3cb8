//! Reading a batch much larger than one poll: each byte is checked and
//! decoded once, whatever the batch size.

use std::time::Duration;

use crate::storage::partition::read::VERIFIED;
use crate::{Compression, ConsumerConfig, Log, OffsetReset, Record, TopicConfig, TopicPartition};

const RECORDS: u64 = 50_000;

fn one_big_batch(compression: Compression) -> Log {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().compression(compression))
        .unwrap();
    let values: Vec<Vec<u8>> = (0..RECORDS).map(|i| format!("v{i}").into_bytes()).collect();
    let records = values.iter().map(|v| Record::new(v.as_slice())).collect();
    log.producer().send_batch("t", records).unwrap();
    log.producer().send("t", Record::new(b"after")).unwrap();
    log
}

/// Polls everything with default settings (500 records a poll); returns
/// the bytes the fetches verified.
fn read_all(log: &Log) -> u64 {
    let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let before = VERIFIED.with(|v| v.get());
    let mut next = 0u64;
    while next <= RECORDS {
        let got = c.poll(Duration::from_secs(5)).unwrap();
        assert!(!got.is_empty(), "stuck at {next}");
        assert!(got.len() <= 500);
        for r in &got {
            assert_eq!(r.offset(), next);
            let want = if next == RECORDS {
                b"after".to_vec()
            } else {
                format!("v{next}").into_bytes()
            };
            assert_eq!(r.value(), Some(want.as_slice()));
            next += 1;
        }
    }
    VERIFIED.with(|v| v.get()) - before
}

#[test]
fn regression_polls_inside_a_big_batch_do_not_check_it_again() {
    // Bug: every 500-record poll checked the CRC of, decompressed and
    // walked the whole batch again: quadratic in the batch size.
    for compression in [Compression::None, Compression::Zstd(3)] {
        let log = one_big_batch(compression);
        let size = log.metrics().bytes_appended;
        let verified = read_all(&log);
        assert!(
            verified <= 2 * size,
            "{compression:?}: fetches verified {verified} bytes of a {size}-byte log"
        );
    }
}

#[test]
fn a_seek_inside_the_big_batch_starts_there() {
    let log = one_big_batch(Compression::Zstd(3));
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
    c.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(c.poll(Duration::from_secs(5)).unwrap().len(), 500);
    for at in [10_000, 3, 499, 500, RECORDS - 1] {
        c.seek(&tp, at).unwrap();
        let got = c.poll(Duration::from_secs(5)).unwrap();
        assert_eq!(got.get(0).unwrap().offset(), at);
        assert_eq!(
            got.get(0).unwrap().value(),
            Some(format!("v{at}").as_bytes())
        );
        let offsets: Vec<u64> = got.iter().map(|r| r.offset()).collect();
        assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1));
    }
}
