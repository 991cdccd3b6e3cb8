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

/// One batch of 95 records, then (if `second`) a one-record batch; returns
/// the log, its segment file and where the first batch's records section
/// starts in it.
fn batch_of_95(second: bool) -> (Log, std::path::PathBuf) {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let values: Vec<Vec<u8>> = (0..95).map(|i| format!("v{i}").into_bytes()).collect();
    let records = values.iter().map(|v| Record::new(v.as_slice())).collect();
    log.producer().send_batch("t", records).unwrap();
    if second {
        log.producer().send("t", Record::new(b"second")).unwrap();
    }
    let path = log.dir().join("t-0").join("00000000000000000000.log");
    (log, path)
}

/// Breaks record `k` of the first batch (its attributes, which Kafka
/// reserves) and fixes the batch's CRC, so that only decoding finds it.
fn break_record(path: &std::path::Path, k: usize) {
    use crate::format::batch::{decode_batch, records_section, v2, RecordIter};
    let mut bytes = std::fs::read(path).unwrap();
    let h = decode_batch(&bytes).unwrap();
    let section = records_section(&h, &bytes[..h.total_len()])
        .unwrap()
        .into_owned();
    let r = RecordIter::new(&h, &section).nth(k).unwrap().unwrap();
    let at = h.header_len() + (r.raw.as_ptr() as usize - section.as_ptr() as usize) + 1;
    bytes[at] = 1;
    let crc = v2::crc32c(&bytes[21..h.total_len()]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(path, &bytes).unwrap();
}

fn consumer(log: &Log, per_poll: usize) -> crate::Consumer {
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(per_poll),
    );
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    c
}

#[test]
fn regression_a_bad_record_inside_a_carried_batch_is_reported_after_the_good_ones() {
    // Bug (review): the records before the damage came back on every poll
    // and the damage was never reported.
    let (log, path) = batch_of_95(false);
    break_record(&path, 55);
    let mut c = consumer(&log, 10);
    let mut got = Vec::new();
    let err = loop {
        match c.poll(Duration::from_secs(1)) {
            Ok(r) => {
                assert!(!r.is_empty(), "stopped without an error at {got:?}");
                got.extend(r.iter().map(|r| r.offset()));
            }
            Err(e) => break e,
        }
    };
    assert_eq!(got, (0..55).collect::<Vec<u64>>());
    assert!(matches!(err, crate::Error::Corrupted { .. }), "{err}");
    assert!(
        c.poll(Duration::from_millis(10)).is_err(),
        "the same damage again"
    );
}

#[test]
fn regression_damage_after_a_carried_batch_does_not_hide_its_last_records() {
    // Bug (review): the fetch after a carried batch failed and its last
    // records were dropped with the error, on every poll.
    let (log, path) = batch_of_95(true);
    let mut bytes = std::fs::read(&path).unwrap();
    let first = crate::format::batch::decode_batch(&bytes)
        .unwrap()
        .total_len();
    bytes[first + 70] ^= 0xff; // inside the second batch: its CRC fails
    std::fs::write(&path, &bytes).unwrap();
    let mut c = consumer(&log, 10);
    let mut got = Vec::new();
    let err = loop {
        assert!(got.len() <= 95, "{got:?}");
        match c.poll(Duration::from_millis(100)) {
            Ok(r) => {
                assert!(!r.is_empty(), "stopped without an error at {}", got.len());
                got.extend(r.iter().map(|r| r.offset()));
            }
            Err(e) => break e,
        }
    };
    assert_eq!(got, (0..95).collect::<Vec<u64>>());
    assert!(matches!(err, crate::Error::Corrupted { .. }), "{err}");
}

#[test]
fn regression_a_recreated_topic_is_not_read_from_the_old_ones_carry() {
    let log = one_big_batch(Compression::None);
    let tp = TopicPartition::new("t", 0);
    let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
    c.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(c.poll(Duration::from_secs(1)).unwrap().len(), 500);
    log.delete_topic("t").unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    for i in 0..1000 {
        log.producer()
            .send("t", Record::new(format!("new{i}").as_bytes()))
            .unwrap();
    }
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let got = c.poll(Duration::from_secs(1)).unwrap();
    for r in &got {
        assert!(r.value().unwrap().starts_with(b"new"), "{:?}", r.value());
    }
}

#[test]
fn carried_records_count_against_max_poll_bytes() {
    // Batches of 150 records, 100 a poll, and a byte limit one batch
    // exceeds: a poll that finishes a carried batch has no bytes left for
    // the next one.
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    for b in 0..4 {
        let values: Vec<Vec<u8>> = (0..150).map(|i| format!("b{b}-{i}").into_bytes()).collect();
        let records = values.iter().map(|v| Record::new(v.as_slice())).collect();
        log.producer().send_batch("t", records).unwrap();
    }
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(100)
            .max_poll_bytes(500),
    );
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let mut sizes = Vec::new();
    let mut next = 0;
    while next < 600 {
        let r = c.poll(Duration::from_secs(1)).unwrap();
        for x in &r {
            assert_eq!(x.offset(), next);
            next += 1;
        }
        sizes.push(r.len());
    }
    assert_eq!(sizes, [100, 50, 100, 50, 100, 50, 100, 50]);
}

/// The spin's moving average of gaps: one long gap among short ones keeps
/// the spin on, a stream slower than `max_spin` turns it off within a
/// dozen polls, and a stream that speeds up again turns it back on.
#[test]
fn the_spin_follows_the_average_gap_not_one_late_record() {
    use super::fold_gap;
    let budget = Duration::from_micros(150);
    let us = Duration::from_micros;
    let mut avg = None;
    for _ in 0..20 {
        avg = Some(fold_gap(avg, us(40), budget));
    }
    // An oversleeping producer: one gap of a second.
    avg = Some(fold_gap(avg, Duration::from_secs(1), budget));
    assert!(avg.unwrap() <= budget, "{avg:?}");
    // A stream of one record every 500 us stops the spin soon.
    let polls = (1..)
        .find(|_| {
            avg = Some(fold_gap(avg, us(500), budget));
            avg.unwrap() > budget
        })
        .unwrap();
    assert!(polls <= 12, "{polls}");
    // And a fast stream starts it again soon.
    let polls = (1..)
        .find(|_| {
            avg = Some(fold_gap(avg, us(10), budget));
            avg.unwrap() <= budget
        })
        .unwrap();
    assert!(polls <= 12, "{polls}");
}
