//! Regression: a poll racing an append could return a batch whose bytes
//! were published but whose offsets the end offset did not cover yet; the
//! consumer's position then passed the end, the next fetch was "out of
//! range", and the reset policy rewound it to offset 0. Found by the kill -9
//! crash test.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use streamlog::{ConsumerConfig, Log, OffsetReset, Record, TopicConfig, TopicPartition};

#[test]
fn a_reader_racing_writers_never_passes_the_end_offset() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().segment_bytes(64 << 10))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let p = log.producer();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && n < 50_000 {
                    p.send_to("t", 0, Record::new(&[7u8; 16][..])).unwrap();
                    n += 1;
                }
            })
        })
        .collect();
    let tp = TopicPartition::new("t", 0);
    // With reset None, a position past the end is an error, not a rewind.
    let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::None));
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 0).unwrap();
    let mut next = 0u64;
    for _ in 0..5_000 {
        let recs = c.poll(Duration::from_millis(5)).unwrap();
        let end = log.partition_info(&tp).unwrap().end_offset;
        for r in &recs {
            assert_eq!(r.offset(), next, "reads are contiguous");
            next += 1;
        }
        assert!(next <= end, "read up to {next} with the end at {end}");
        if next == 200_000 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
}
