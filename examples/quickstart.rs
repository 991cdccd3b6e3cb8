//! The quick start: open a log in a local directory, append a million
//! records in batches plus some single sends, read them all back, check
//! every one, and print the throughput.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::time::{Duration, Instant};

use streamlog::{ConsumerConfig, Log, OffsetReset, Record, TopicConfig, TopicPartition};

const BATCHED: u64 = 1_000_000;
const BATCH: u64 = 1_000;
const SINGLE: u64 = 100_000;
const PARTITIONS: u32 = 4;

fn value(i: u64) -> Vec<u8> {
    format!(
        "{{\"order\":{i},\"customer\":\"c-{}\",\"amount_cents\":{},\"status\":\"paid\"}}",
        i % 977,
        i * 7 % 10_000
    )
    .into_bytes()
}

fn main() -> Result<(), streamlog::Error> {
    let dir = std::env::temp_dir().join("streamlog-quickstart");
    let _ = std::fs::remove_dir_all(&dir);
    let log = Log::open(&dir)?;
    log.create_topic(
        "orders",
        TopicConfig::new()
            .partitions(PARTITIONS)
            .segment_bytes(64 << 20),
    )?;
    let producer = log.producer();

    // Batched appends: each call writes one batch per partition.
    let started = Instant::now();
    let mut bytes = 0u64;
    for chunk in 0..BATCHED / BATCH {
        let records: Vec<Record<'static>> = (chunk * BATCH..(chunk + 1) * BATCH)
            .map(|i| {
                let v = value(i);
                bytes += v.len() as u64;
                Record::new(v).header("n", i.to_le_bytes().to_vec())
            })
            .collect();
        producer.send_batch("orders", records)?;
    }
    let batched = started.elapsed();

    // Single sends: one record per call, each readable (and crash-safe
    // against a process kill) when `send` returns.
    let started = Instant::now();
    for i in BATCHED..BATCHED + SINGLE {
        let v = value(i);
        bytes += v.len() as u64;
        producer.send(
            "orders",
            Record::new(v).header("n", i.to_le_bytes().to_vec()),
        )?;
    }
    let single = started.elapsed();
    log.flush()?;

    // Read everything back and check each record against what was sent.
    let started = Instant::now();
    let mut consumer = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(10_000),
    );
    let tps: Vec<_> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("orders", p))
        .collect();
    consumer.assign(&tps)?;
    let mut seen = vec![false; (BATCHED + SINGLE) as usize];
    let mut read = 0u64;
    let mut last = vec![None::<u64>; PARTITIONS as usize];
    while read < BATCHED + SINGLE {
        let records = consumer.poll(Duration::from_secs(1))?;
        assert!(!records.is_empty(), "ran out of records after {read}");
        for r in &records {
            let n = u64::from_le_bytes(r.header("n").expect("header").try_into().expect("8 bytes"));
            assert_eq!(r.value(), Some(value(n).as_slice()), "record {n} differs");
            assert!(
                !std::mem::replace(&mut seen[n as usize], true),
                "record {n} read twice"
            );
            let p = r.partition() as usize;
            assert_eq!(
                r.offset(),
                last[p].map_or(0, |o| o + 1),
                "offsets are dense"
            );
            last[p] = Some(r.offset());
            read += 1;
        }
    }
    let reading = started.elapsed();
    assert!(seen.iter().all(|&s| s), "every record was read back");

    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    let mb = bytes as f64 / 1e6;
    println!(
        "streamlog quickstart: {} records ({mb:.1} MB of values) in {PARTITIONS} partitions",
        BATCHED + SINGLE
    );
    println!(
        "  append, batches of {BATCH}: {:>12.0} records/s  ({:.1} MB/s)",
        rate(BATCHED, batched),
        mb * BATCHED as f64 / (BATCHED + SINGLE) as f64 / batched.as_secs_f64()
    );
    println!(
        "  append, one per send:  {:>12.0} records/s",
        rate(SINGLE, single)
    );
    println!(
        "  read back and verify:  {:>12.0} records/s",
        rate(BATCHED + SINGLE, reading)
    );
    let m = log.metrics();
    println!(
        "  on disk: {:.1} MB in {} segment rolls; all {} records verified",
        m.disk_bytes as f64 / 1e6,
        m.segments_rolled,
        read
    );
    log.close()?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
