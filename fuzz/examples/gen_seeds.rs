//! Writes the committed seed corpora under `fuzz/seeds/<target>/`.
//!
//! Run from `fuzz/`: `cargo run --example gen_seeds` (stable is fine). The
//! output is deterministic, so rerunning it after a format change shows the
//! change as a diff of the seed files.

use std::fs;
use std::path::Path;
use streamlog::internals::{decode, encode, DecodedBatch, DecodedRecord};

const ZSTD: u16 = 4;

fn rec(
    offset_delta: u32,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) -> DecodedRecord {
    DecodedRecord {
        offset_delta,
        timestamp,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(<[u8]>::to_vec)))
            .collect(),
    }
}

/// Encodes a batch (Kafka's v2 layout, or streamlog's v1) and checks
/// that it decodes back.
fn batch_in(
    version: u8,
    base_offset: u64,
    attributes: u16,
    last_offset_delta: u32,
    records: Vec<DecodedRecord>,
) -> Vec<u8> {
    let base_timestamp = records.first().map_or(0, |r| r.timestamp);
    let max_timestamp = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(base_timestamp);
    let b = DecodedBatch {
        version,
        total_len: 0,
        base_offset,
        leader_epoch: if version == 2 { 0 } else { -1 },
        producer: (-1, -1, -1),
        last_offset_delta,
        attributes,
        base_timestamp,
        max_timestamp,
        crc: 0,
        records,
    };
    let bytes = encode(&b);
    let d = decode(&bytes).expect("seed batch decodes");
    assert_eq!(d.records, b.records);
    assert_eq!(d.total_len, bytes.len());
    bytes
}

fn batch(
    base_offset: u64,
    attributes: u16,
    last_offset_delta: u32,
    records: Vec<DecodedRecord>,
) -> Vec<u8> {
    batch_in(2, base_offset, attributes, last_offset_delta, records)
}

fn last(records: &[DecodedRecord]) -> u32 {
    records.last().map_or(0, |r| r.offset_delta)
}

fn plain(base: u64, records: Vec<DecodedRecord>) -> Vec<u8> {
    let l = last(&records);
    batch(base, 0, l, records)
}

fn zstd(base: u64, records: Vec<DecodedRecord>) -> Vec<u8> {
    let l = last(&records);
    batch(base, ZSTD, l, records)
}

/// `n` records from offset delta 0 at `ts0`, one ms apart.
fn run(n: u32, ts0: i64, tag: &str) -> Vec<DecodedRecord> {
    (0..n)
        .map(|i| {
            let k = format!("{tag}-key-{i}");
            let v = format!("{tag} value {i} {}", "x".repeat((i % 5) as usize * 7));
            rec(
                i,
                ts0 + i64::from(i),
                Some(k.as_bytes()),
                Some(v.as_bytes()),
                &[],
            )
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).unwrap();
}

/// segment_scan input: flags, interval (u16), base (u64), segment bytes.
fn scan_input(flags: u8, interval: u16, base: u64, segment: &[u8]) -> Vec<u8> {
    let mut v = vec![flags];
    v.extend_from_slice(&interval.to_le_bytes());
    v.extend_from_slice(&base.to_le_bytes());
    v.extend_from_slice(segment);
    v
}

/// index_lookup input: mode, offset target (u32), time target (i64), bytes.
fn index_input(mode: u8, off_target: u32, time_target: i64, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(&off_target.to_le_bytes());
    v.extend_from_slice(&time_target.to_le_bytes());
    v.extend_from_slice(bytes);
    v
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let targets = ["batch_decode", "segment_scan", "index_lookup", "foreign_append"];
    let dirs = targets.map(|t| {
        let d = root.join(t);
        // Regenerated from scratch: no stale seed of an older format stays.
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    });

    // ---- batch_decode ---------------------------------------------------
    let d = &dirs[0];
    // FORMAT.md §3.3.
    let format_md = plain(
        42,
        vec![
            rec(
                0,
                1_700_000_000_000,
                Some(b"k1"),
                Some(b"v1"),
                &[("h", Some(b"x"))],
            ),
            rec(1, 1_700_000_000_005, None, None, &[("n", None)]),
        ],
    );
    write(d, "format_md_example", &format_md);
    // FORMAT.md §3.4: the same records in v1 (no null header value there).
    let v1_example = batch_in(
        1,
        42,
        0,
        1,
        vec![
            rec(0, 1_700_000_000_000, Some(b"k1"), Some(b"v1"), &[("h", Some(b"x"))]),
            rec(1, 1_700_000_000_005, None, None, &[]),
        ],
    );
    write(d, "v1_format_md_example", &v1_example);
    write(d, "v1_zstd_run", &batch_in(1, 500, ZSTD, 19, run(20, 1_700_000_000_000, "z")));
    write(
        d,
        "single_tombstone",
        &plain(0, vec![rec(0, 5, Some(b"k"), None, &[])]),
    );
    write(d, "empty_batch", &batch(9, 0, 0, vec![]));
    // Compacted: gaps in offset deltas, last offset delta past the last record,
    // empty vs null, negative and decreasing timestamps, several headers.
    write(
        d,
        "compacted_gaps",
        &batch(
            1_000,
            0,
            12,
            vec![
                rec(0, -20, Some(b""), Some(b""), &[]),
                rec(
                    3,
                    -25,
                    None,
                    Some(b"v"),
                    &[("a", Some(b"")), ("b\u{e9}", Some(b"\x00\xff")), ("n", None)],
                ),
                rec(7, 1 << 40, Some(b"\x00"), None, &[]),
            ],
        ),
    );
    write(d, "zstd_run", &zstd(500, run(20, 1_700_000_000_000, "z")));
    write(
        d,
        "zstd_headers",
        &zstd(
            7,
            vec![
                rec(
                    0,
                    100,
                    Some(b"key"),
                    Some(&[0x5a; 300]),
                    &[("trace", Some(b"abc"))],
                ),
                rec(2, 90, None, None, &[("x", Some(b"")), ("y", Some(b"yy"))]),
            ],
        ),
    );

    // ---- segment_scan ---------------------------------------------------
    let d = &dirs[1];
    let b1 = plain(100, run(3, 1_000, "a"));
    let b2 = zstd(103, run(10, 1_010, "b"));
    let b3 = plain(113, vec![rec(0, 2_000, None, Some(b"tail"), &[])]);
    let b4 = batch(
        120,
        0,
        4,
        vec![rec(2, 1_500, Some(b"k"), Some(b"late"), &[])],
    ); // gap before it
    let seg: Vec<u8> = [&b1[..], &b2, &b3, &b4].concat();
    write(d, "four_batches_interval_1", &scan_input(0, 1, 100, &seg));
    write(
        d,
        "four_batches_interval_200",
        &scan_input(0, 200, 90, &seg),
    );
    let mut prealloc = seg.clone();
    prealloc.extend_from_slice(&[0u8; 256]);
    write(d, "zero_tail", &scan_input(0, 64, 100, &prealloc));
    let torn = [&b1[..], &b3, &b4[..b4.len() - 9]].concat();
    write(d, "torn_tail", &scan_input(0, 1, 100, &torn));
    let mut bad_crc = seg.clone();
    let at = b1.len() + b2.len() + 70;
    bad_crc[at] ^= 0x40; // a flipped bit in b3: the flag bit 0 repairs it
    write(d, "flipped_bit_fix_crc", &scan_input(1, 1, 100, &bad_crc));
    write(d, "format_md_example", &scan_input(0, 1, 42, &format_md));
    // A v1 segment (FORMAT.md §3.4, §4.3).
    let v1_seg = [
        batch_in(1, 100, 0, 2, run(3, 1_000, "a")),
        batch_in(1, 103, ZSTD, 9, run(10, 1_010, "b")),
        batch_in(1, 113, 0, 0, vec![rec(0, 2_000, None, Some(b"tail"), &[])]),
    ]
    .concat();
    write(d, "v1_three_batches_interval_1", &scan_input(0, 1, 100, &v1_seg));

    // ---- index_lookup ---------------------------------------------------
    let d = &dirs[2];
    // Mode bit 3: v1's little-endian entries; clear: Kafka's big-endian.
    for (v1, tag) in [(false, ""), (true, "v1_")] {
        let (u32b, i64b): (fn(u32) -> [u8; 4], fn(i64) -> [u8; 8]) = if v1 {
            (u32::to_le_bytes, i64::to_le_bytes)
        } else {
            (u32::to_be_bytes, i64::to_be_bytes)
        };
        let mode = if v1 { 0x08 } else { 0 };
        let mut offsets = Vec::new();
        for i in 1..=24u32 {
            offsets.extend_from_slice(&u32b(i * 7));
            offsets.extend_from_slice(&u32b(i * 4096));
        }
        offsets.extend_from_slice(&[0u8; 64]); // preallocated zero tail
        write(
            d,
            &format!("{tag}offset_index_zero_tail"),
            &index_input(mode, 50, 0, &offsets),
        );
        let mut times = Vec::new();
        let stamps: &[i64] = if v1 { &[-5, 10, 10, 20, 35, 35, 90] } else { &[0, 10, 11, 20, 35, 36, 90] };
        for (i, ts) in stamps.iter().enumerate() {
            times.extend_from_slice(&i64b(*ts));
            times.extend_from_slice(&u32b(i as u32 * 3 + 1));
        }
        times.extend_from_slice(&[0xff; 5]); // torn entry
        write(d, &format!("{tag}time_index_torn"), &index_input(mode, 4, 11, &times));
    }
    write(
        d,
        "synthetic_warm",
        &index_input(0x41, 9_000, 50, &[0x13, 0x00, 0xf1, 0x7e, 0x22]),
    );
    write(
        d,
        "synthetic_cold",
        &index_input(0x81, 3, 1, &[0x01, 0x10, 0x08]),
    );

    // ---- foreign_append ---------------------------------------------------
    // Flags byte, then batches as a client sends them (base offset 0).
    let d = &dirs[3];
    let client = |v: Vec<u8>, flags: u8| [vec![flags], v].concat();
    write(d, "one_plain", &client(plain(0, run(5, 1_700_000_000_000, "c")), 0));
    write(d, "one_zstd", &client(zstd(0, run(8, 1_700_000_000_000, "z")), 2));
    write(
        d,
        "two_batches_null_headers",
        &client(
            [
                plain(0, run(2, 10, "a")),
                plain(0, vec![rec(0, 20, None, Some(b"v"), &[("n", None), ("e", Some(b""))])]),
            ]
            .concat(),
            0,
        ),
    );
    write(d, "format_md_example_fix_crc", &client(format_md.clone(), 1));
    write(d, "v1_batch_refused", &client(v1_example, 0));

    for (t, d) in targets.iter().zip(&dirs) {
        let total: u64 = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        println!("{t}: {total} bytes");
        assert!(total < 20 * 1024, "{t} seeds too large");
    }
}
