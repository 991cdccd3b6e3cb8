//! Criterion micro-benchmarks (see BENCHMARKS.md, "Micro-benchmarks").
//!
//! Run:   cargo bench --features internals --bench micro
//! Smoke: cargo bench --features internals --bench micro -- --test
//!
//! Groups:
//! - `batch`: `internals::encode` / `internals::decode` of one batch of 100
//!   JSON-like ~100 B records, uncompressed and zstd; plus the producer's
//!   `send_batch` of the same 100 records (encode + append) uncompressed and
//!   with `Compression::Zstd(1)`. `internals::encode` always compresses at
//!   zstd level 3, so the level-1 encode figure comes from `send_batch`, and
//!   the level-1 decode input is the batch the producer wrote to disk.
//! - `index`: offset-index lookups (warm tail and cold, random targets) and a
//!   time-index lookup on 100k-entry indexes. The `internals` lookups first
//!   count the valid entries (a linear pass), so `index/valid_offset_entries`
//!   is measured too: subtract it to get the search alone. `seek_poll`
//!   measures the real read path instead (cached entry count): `seek` to a
//!   warm or cold offset of a 100k-entry segment index, then `poll` one
//!   record.
//! - `log`: reading 100k records back through a consumer, touching every
//!   value; and a single `send` of a 100-byte record.
//! - `recovery`: `internals::scan_segment` over ~4 MiB of valid batches.
//! - `crc`: the two checksums of the format on 100 B, 1 KiB and 64 KiB:
//!   CRC-32C (Kafka's, v2 batches) by `crc-fast` (what the format uses:
//!   carry-less-multiply folding) and by `crc32c` (SSE4.2's `crc32`
//!   instruction), against CRC-32 IEEE (`crc32fast`, v1 batches and metadata
//!   files).
//!
//! Throughput is reported per logical record and per logical byte (key +
//! value bytes, before any encoding or compression).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use streamlog::internals::{self, DecodedBatch, DecodedRecord, Layout::V2};
use streamlog::{Compression, ConsumerConfig, Log, Record, TopicConfig, TopicPartition};

/// Records per batch in the batch and scan benchmarks.
const BATCH_RECORDS: usize = 100;
/// Target size of one value.
const VALUE_LEN: usize = 100;
/// Records in the iteration benchmark's log.
const READ_RECORDS: usize = 100_000;
/// Entries in the index benchmarks' indexes.
const INDEX_ENTRIES: usize = 100_000;
/// Base timestamp of generated records (ms).
const T0: i64 = 1_700_000_000_000;
/// Codec bits of a zstd batch (FORMAT.md: attributes bits 0-2, 4 = zstd).
const CODEC_ZSTD: u16 = 4;

/// A small deterministic PRNG (xorshift64*), so the benches need no `rand`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A JSON-like value of exactly `VALUE_LEN` bytes (compresses about 5x with
/// zstd across a batch: repeated field names, small vocabularies).
fn json_value(rng: &mut Rng, i: u64) -> Vec<u8> {
    const EVENTS: [&str; 4] = ["click", "view", "purchase", "signup"];
    const COUNTRIES: [&str; 4] = ["DE", "FR", "US", "JP"];
    let mut s = format!(
        r#"{{"id":{i},"user":"u{:05}","event":"{}","country":"{}","amount":{}.{:02},"ok":true"#,
        rng.below(20_000),
        EVENTS[rng.below(4) as usize],
        COUNTRIES[rng.below(4) as usize],
        rng.below(500),
        rng.below(100),
    );
    s.push_str(r#","pad":""#);
    while s.len() < VALUE_LEN - 2 {
        s.push('x');
    }
    s.truncate(VALUE_LEN - 2);
    s.push_str("\"}");
    debug_assert_eq!(s.len(), VALUE_LEN);
    s.into_bytes()
}

fn values(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed | 1);
    (0..n as u64).map(|i| json_value(&mut rng, i)).collect()
}

/// Logical bytes (key + value) of a set of values.
fn logical_bytes(values: &[Vec<u8>]) -> u64 {
    values.iter().map(|v| v.len() as u64).sum()
}

/// One batch of `values`, in `internals`' owned form.
fn decoded_batch(values: &[Vec<u8>], base_offset: u64, base_ts: i64, codec: u16) -> DecodedBatch {
    let n = values.len() as u32;
    DecodedBatch {
        version: 2,
        leader_epoch: 0,
        producer: (-1, -1, -1),
        total_len: 0,
        base_offset,
        last_offset_delta: n - 1,
        attributes: codec,
        base_timestamp: base_ts,
        max_timestamp: base_ts + i64::from(n - 1),
        crc: 0,
        records: values
            .iter()
            .enumerate()
            .map(|(i, v)| DecodedRecord {
                offset_delta: i as u32,
                timestamp: base_ts + i as i64,
                key: None,
                value: Some(v.clone()),
                headers: Vec::new(),
            })
            .collect(),
    }
}

fn topic_config(compression: Compression) -> TopicConfig {
    TopicConfig::new().compression(compression)
}

fn temp_log(compression: Compression) -> Log {
    let log = Log::temporary().expect("temporary log");
    log.create_topic("t", topic_config(compression))
        .expect("create topic");
    log
}

/// The bytes of the first batch the producer writes for `values` into a
/// topic compressed with `compression` (read back from the segment file).
fn produced_batch(values: &[Vec<u8>], compression: Compression) -> Vec<u8> {
    let log = temp_log(compression);
    let records = values.iter().map(|v| Record::new(&v[..])).collect();
    log.producer().send_batch("t", records).expect("send_batch");
    log.flush().expect("flush");
    let seg: PathBuf = log.dir().join("t-0").join(format!("{:020}.log", 0));
    let bytes = std::fs::read(&seg).expect("read the segment file");
    let b = internals::decode(&bytes).expect("the producer's batch decodes");
    let got: Vec<&[u8]> = b
        .records
        .iter()
        .filter_map(|r| r.value.as_deref())
        .collect();
    let want: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    assert_eq!(got, want, "the segment holds the produced batch");
    bytes[..b.total_len].to_vec()
}

fn bench_batch(c: &mut Criterion) {
    let vals = values(BATCH_RECORDS, 1);
    let throughput = Throughput::ElementsAndBytes {
        elements: BATCH_RECORDS as u64,
        bytes: logical_bytes(&vals),
    };
    let plain = decoded_batch(&vals, 0, T0, 0);
    let zstd = decoded_batch(&vals, 0, T0, CODEC_ZSTD);
    let plain_bytes = internals::encode(&plain);
    let zstd3_bytes = internals::encode(&zstd);
    let zstd1_bytes = produced_batch(&vals, Compression::Zstd(1));
    for bytes in [&plain_bytes, &zstd3_bytes] {
        let d = internals::decode(bytes).expect("round trip");
        assert_eq!(d.records, plain.records);
    }
    eprintln!(
        "batch of {BATCH_RECORDS} x {VALUE_LEN} B: {} B logical, encoded {} B plain, \
         {} B zstd-3, {} B zstd-1",
        logical_bytes(&vals),
        plain_bytes.len(),
        zstd3_bytes.len(),
        zstd1_bytes.len()
    );

    let mut g = c.benchmark_group("batch");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(throughput);
    g.bench_function("encode/none", |b| {
        b.iter(|| internals::encode(black_box(&plain)))
    });
    g.bench_function("encode/zstd3", |b| {
        b.iter(|| internals::encode(black_box(&zstd)))
    });
    g.bench_function("decode/none", |b| {
        b.iter(|| internals::decode(black_box(&plain_bytes)).expect("valid"))
    });
    g.bench_function("decode/zstd3", |b| {
        b.iter(|| internals::decode(black_box(&zstd3_bytes)).expect("valid"))
    });
    g.bench_function("decode/zstd1", |b| {
        b.iter(|| internals::decode(black_box(&zstd1_bytes)).expect("valid"))
    });
    // The producer path: encode + CRC + append to the mapped active segment.
    // A fresh log per sample keeps the disk footprint bounded.
    for (name, compression) in [
        ("send_batch/none", Compression::None),
        ("send_batch/zstd1", Compression::Zstd(1)),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let log = temp_log(compression);
                let producer = log.producer();
                let start = Instant::now();
                for _ in 0..iters {
                    let records = vals.iter().map(|v| Record::new(&v[..])).collect();
                    black_box(producer.send_batch("t", records).expect("send_batch"));
                }
                start.elapsed()
            })
        });
    }
    g.finish();
}

/// An offset index of `n` valid entries: entry `i` maps relative offset
/// `10 (i + 1)` to position `1000 (i + 1)`.
fn offset_index(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 8);
    for i in 1..=n as u32 {
        out.extend_from_slice(&(i * 10).to_be_bytes());
        out.extend_from_slice(&(i * 1000).to_be_bytes());
    }
    out
}

/// A time index of `n` valid entries: entry `i` maps timestamp
/// `T0 + 5 (i + 1)` to relative offset `10 (i + 1)`.
fn time_index(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 12);
    for i in 1..=n as u32 {
        out.extend_from_slice(&(T0 + 5 * i64::from(i)).to_be_bytes());
        out.extend_from_slice(&(i * 10).to_be_bytes());
    }
    out
}

fn bench_index(c: &mut Criterion) {
    const TARGETS: usize = 1024;
    let offsets = offset_index(INDEX_ENTRIES);
    let times = time_index(INDEX_ENTRIES);
    assert_eq!(
        internals::valid_offset_index_entries(&offsets, V2),
        INDEX_ENTRIES
    );
    assert_eq!(
        internals::valid_time_index_entries(&times, V2),
        INDEX_ENTRIES
    );
    let max_rel = INDEX_ENTRIES as u64 * 10;
    // The warm tail is the index's last 8 KiB: 1024 entries.
    let warm_from = max_rel - 1024 * 10 + 10;
    let mut rng = Rng(7);
    let warm: Vec<u32> = (0..TARGETS)
        .map(|_| (warm_from + rng.below(max_rel - warm_from + 10)) as u32)
        .collect();
    let cold: Vec<u32> = (0..TARGETS)
        .map(|_| (10 + rng.below(max_rel)) as u32)
        .collect();
    let ts: Vec<i64> = (0..TARGETS)
        .map(|_| T0 + 6 + rng.below(INDEX_ENTRIES as u64 * 5) as i64)
        .collect();
    for &t in warm.iter().chain(&cold) {
        let (rel, _) = internals::offset_index_lookup(&offsets, t, V2).expect("an entry");
        assert!(rel <= t && t - rel < 10);
    }
    for &t in &ts {
        let (found, _) = internals::time_index_lookup(&times, t, V2).expect("an entry");
        assert!(found < t && t - found <= 5);
    }

    let mut g = c.benchmark_group("index");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    g.bench_function("valid_offset_entries/100k", |b| {
        b.iter(|| internals::valid_offset_index_entries(black_box(&offsets), V2))
    });
    for (name, targets) in [
        ("offset_lookup/warm/100k", &warm),
        ("offset_lookup/cold/100k", &cold),
    ] {
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % TARGETS;
                internals::offset_index_lookup(black_box(&offsets), black_box(targets[i]), V2)
            })
        });
    }
    // The same lookups through the real read path, which keeps the valid
    // entry count instead of recounting it: a partition whose one segment
    // has an index entry per batch (one record per batch), then
    // `seek` + `poll` of one record.
    let log = Log::temporary().expect("temporary log");
    log.create_topic("t", TopicConfig::new().index_interval_bytes(1))
        .expect("create topic");
    let producer = log.producer();
    let value = values(1, 5).remove(0);
    for _ in 0..INDEX_ENTRIES {
        producer.send("t", Record::new(&value[..])).expect("send");
    }
    let idx = std::fs::read(log.dir().join("t-0").join(format!("{:020}.index", 0)))
        .expect("read the offset index");
    assert_eq!(
        internals::valid_offset_index_entries(&idx, V2),
        INDEX_ENTRIES - 1
    );
    let tp = TopicPartition::new("t", 0);
    let mut consumer = log.consumer(
        ConsumerConfig::new()
            .max_poll_records(1)
            .max_partition_fetch_bytes(1),
    );
    consumer.assign(std::slice::from_ref(&tp)).expect("assign");
    let n = INDEX_ENTRIES as u64;
    let warm_offsets: Vec<u64> = (0..TARGETS).map(|_| n - 1024 + rng.below(1024)).collect();
    let cold_offsets: Vec<u64> = (0..TARGETS).map(|_| rng.below(n)).collect();
    for (name, targets) in [
        ("seek_poll/warm/100k", &warm_offsets),
        ("seek_poll/cold/100k", &cold_offsets),
    ] {
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % TARGETS;
                consumer.seek(&tp, targets[i]).expect("seek");
                let records = consumer.poll(Duration::from_secs(1)).expect("poll");
                let r = records.get(0).expect("a record");
                assert_eq!(r.offset(), targets[i]);
                black_box(r.value());
            })
        });
    }
    g.bench_function("time_lookup/100k", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % TARGETS;
            internals::time_index_lookup(black_box(&times), black_box(ts[i]), V2)
        })
    });
    g.finish();
}

fn bench_log(c: &mut Criterion) {
    // 100k records appended with send_batch (batches of 1000).
    let vals = values(READ_RECORDS, 3);
    let bytes = logical_bytes(&vals);
    let log = temp_log(Compression::None);
    let producer = log.producer();
    for chunk in vals.chunks(1000) {
        let records = chunk.iter().map(|v| Record::new(&v[..])).collect();
        producer.send_batch("t", records).expect("send_batch");
    }
    let tp = TopicPartition::new("t", 0);
    let mut consumer = log.consumer(ConsumerConfig::new().max_poll_records(READ_RECORDS));
    consumer.assign(std::slice::from_ref(&tp)).expect("assign");

    let mut read_all = || {
        consumer.seek(&tp, 0).expect("seek");
        let (mut n, mut sum) = (0usize, 0u64);
        while n < READ_RECORDS {
            let records = consumer.poll(Duration::from_secs(1)).expect("poll");
            assert!(!records.is_empty(), "poll returned nothing at {n}");
            for r in records.iter() {
                let v = r.value().expect("a value");
                sum = sum.wrapping_add(v.len() as u64 + u64::from(v[v.len() / 2]));
                n += 1;
            }
        }
        (n, sum)
    };
    assert_eq!(read_all().0, READ_RECORDS);

    let mut g = c.benchmark_group("log");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::ElementsAndBytes {
            elements: READ_RECORDS as u64,
            bytes,
        });
    g.bench_function("read_all/100k x 100B", |b| b.iter(&mut read_all));

    // One `send` per record, OS-buffered. A fresh log per sample keeps the
    // disk footprint bounded.
    let value = &vals[0];
    g.sampling_mode(SamplingMode::Auto)
        .sample_size(50)
        .throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: value.len() as u64,
        });
    g.bench_function("send/100B", |b| {
        b.iter_custom(|iters| {
            let log = temp_log(Compression::None);
            let producer = log.producer();
            let start = Instant::now();
            for _ in 0..iters {
                black_box(producer.send("t", Record::new(&value[..])).expect("send"));
            }
            start.elapsed()
        })
    });
    g.finish();
}

fn bench_recovery(c: &mut Criterion) {
    // ~4 MiB of consecutive uncompressed batches of 100 records each.
    const TARGET: usize = 4 << 20;
    let mut segment = Vec::with_capacity(TARGET + (16 << 10));
    let (mut offset, mut batches) = (0u64, 0u64);
    while segment.len() < TARGET {
        let vals = values(BATCH_RECORDS, batches + 11);
        let b = decoded_batch(&vals, offset, T0 + offset as i64, 0);
        segment.extend_from_slice(&internals::encode(&b));
        offset += BATCH_RECORDS as u64;
        batches += 1;
    }
    let s = internals::scan_segment(&segment, 0, 4096);
    assert_eq!(s.stop, None);
    assert_eq!(s.valid_len, segment.len() as u64);
    assert_eq!(s.next_offset, offset);
    eprintln!(
        "scan input: {batches} batches, {offset} records, {} B",
        segment.len()
    );

    let mut g = c.benchmark_group("recovery");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::ElementsAndBytes {
            elements: offset,
            bytes: segment.len() as u64,
        });
    g.bench_function("scan_segment/4MiB", |b| {
        b.iter(|| internals::scan_segment(black_box(&segment), 0, 4096))
    });
    g.finish();
}

fn bench_crc(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for size in [100usize, 1024, 64 << 10] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("crc32c_crc_fast/{size}"), |b| {
            b.iter(|| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, black_box(&data)))
        });
        g.bench_function(format!("crc32c_sse42/{size}"), |b| {
            b.iter(|| crc32c::crc32c(black_box(&data)))
        });
        g.bench_function(format!("crc32_ieee/{size}"), |b| {
            b.iter(|| crc32fast::hash(black_box(&data)))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_batch,
    bench_index,
    bench_log,
    bench_recovery,
    bench_crc
);
criterion_main!(benches);
