use std::borrow::Cow;

use super::encode::spare_capacity;
use super::*;
use crate::error::CorruptionKind;

fn one(
    offset_delta: u32,
    ts: i64,
    key: Option<&'static [u8]>,
    value: Option<&'static [u8]>,
) -> EncodeRecord<'static> {
    EncodeRecord {
        offset_delta,
        timestamp: ts,
        key,
        value,
        headers: &[],
    }
}

/// Plain, and zstd at `level` except under miri, which cannot run zstd's C
/// code.
fn codecs(level: i32) -> Vec<Option<i32>> {
    if cfg!(miri) {
        vec![None]
    } else {
        vec![None, Some(level)]
    }
}

/// A v2 batch, as the producer builds one.
fn build(records: &[EncodeRecord<'_>], base_offset: u64, zstd: Option<i32>) -> Vec<u8> {
    let base_ts = records[0].timestamp;
    let mut section = EncodedBatch::section_buffer(0);
    for r in records {
        encode_record(&mut section, r, base_ts);
    }
    let max_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(base_ts);
    let last = records.last().map(|r| r.offset_delta).unwrap_or(0);
    let mut b =
        EncodedBatch::new(section, records.len() as u32, last, base_ts, max_ts, zstd).unwrap();
    b.seal(base_offset).to_vec()
}

/// A decoded record: offset delta, timestamp, key, value.
type Decoded = (u32, i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn decode_all(bytes: &[u8]) -> (BatchHeader, Vec<Decoded>) {
    let h = decode_batch(bytes).unwrap();
    let section = records_section(&h, bytes).unwrap();
    let recs = RecordIter::new(&h, &section)
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset_delta,
                h.base_timestamp + r.timestamp_delta,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            )
        })
        .collect();
    (h, recs)
}

/// The hex dump in the first ```text block after `heading` in FORMAT.md.
fn format_md_hex(heading: &str) -> Vec<u8> {
    let doc = include_str!("../../../FORMAT.md");
    let section = &doc[doc.find(heading).expect("heading in FORMAT.md")..];
    let start = section.find("```text\n").unwrap() + 8;
    let end = start + section[start..].find("```").unwrap();
    section[start..end]
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

/// The records of FORMAT.md's examples: record 0 at 1 700 000 000 000 ms
/// with key "k1", value "v1" and header h = "x"; record 1 five ms later
/// with a null key, a null value and a header n whose value is null.
fn example_records<'a>(headers: &'a [EncodeHeader<'a>; 2]) -> [EncodeRecord<'a>; 2] {
    [
        EncodeRecord {
            offset_delta: 0,
            timestamp: 1_700_000_000_000,
            key: Some(b"k1"),
            value: Some(b"v1"),
            headers: &headers[..1],
        },
        EncodeRecord {
            offset_delta: 1,
            timestamp: 1_700_000_000_005,
            key: None,
            value: None,
            headers: &headers[1..],
        },
    ]
}

fn example_headers() -> [EncodeHeader<'static>; 2] {
    [
        (Cow::Borrowed("h"), Some(Cow::Borrowed(&b"x"[..]))),
        (Cow::Borrowed("n"), None),
    ]
}

/// FORMAT.md §3.3, byte for byte: Kafka's record batch.
#[test]
fn pins_exact_v2_bytes() {
    let headers = example_headers();
    let bytes = build(&example_records(&headers), 42, None);
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        // base offset 42 (i64)
        0, 0, 0, 0, 0, 0, 0, 0x2a,
        // batch length = 86 - 12
        0, 0, 0, 0x4a,
        // partition leader epoch 0
        0, 0, 0, 0,
        // magic 2
        0x02,
        // CRC-32C of bytes 21..86 (checked below)
        0, 0, 0, 0,
        // attributes 0
        0, 0,
        // last offset delta 1
        0, 0, 0, 0x01,
        // base timestamp 1_700_000_000_000 = 0x18BCFE56800
        0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,
        // max timestamp 1_700_000_000_005
        0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x05,
        // producer id -1, producer epoch -1, base sequence -1
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff,
        0xff, 0xff, 0xff, 0xff,
        // record count 2
        0, 0, 0, 0x02,
        // record 0: length 14 (zig-zag 28), attributes 0, ts delta 0,
        // offset delta 0, key len 2 (4) "k1", value len 2 (4) "v1",
        // 1 header (2): name len 1 (2) "h", value len 1 (2) "x"
        0x1c, 0x00, 0x00, 0x00, 0x04, b'k', b'1', 0x04, b'v', b'1',
        0x02, 0x02, b'h', 0x02, b'x',
        // record 1: length 9 (18), attributes 0, ts delta 5 (10), offset
        // delta 1 (2), key null (-1 = 1), value null (1), 1 header: "n",
        // value null (1)
        0x12, 0x00, 0x0a, 0x02, 0x01, 0x01, 0x02, 0x02, b'n', 0x01,
    ];
    assert_eq!(bytes.len(), expected.len());
    assert_eq!(bytes[..v2::CRC_AT], expected[..v2::CRC_AT]);
    assert_eq!(bytes[v2::CRC_FROM..], expected[v2::CRC_FROM..]);
    // Checked with a second implementation.
    let crc = crc32c::crc32c(&bytes[v2::CRC_FROM..]);
    assert_eq!(bytes[v2::CRC_AT..v2::CRC_FROM], crc.to_be_bytes());
    assert_eq!(crc, 0xabae_28e7, "FORMAT.md quotes this CRC");
    assert_eq!(
        bytes,
        format_md_hex("### 3.3"),
        "FORMAT.md §3.3 differs from the encoder"
    );
}

/// FORMAT.md §3.4: the v1 layout, as the first streamlog wrote it (the
/// same records, without the null header, which v1 cannot hold).
#[test]
fn pins_exact_v1_bytes() {
    let headers = example_headers();
    let mut recs = example_records(&headers);
    recs[1].headers = &[];
    let bytes = v1::encode_batch(&recs, 42, None).unwrap();
    assert_eq!(crc32fast::hash(&bytes[v1::CRC_FROM..]), 0xbadb_b615);
    assert_eq!(
        bytes,
        format_md_hex("#### v1 example"),
        "FORMAT.md §3.4 differs from the v1 encoder"
    );
    let (h, got) = decode_all(&bytes);
    assert_eq!(
        (h.version, h.base_offset, h.next_offset()),
        (Version::V1, 42, 44)
    );
    assert_eq!(got[0].2.as_deref(), Some(&b"k1"[..]));
}

/// A batch encoded in a reused buffer (left over from a larger, different
/// batch, plain or compressed) is byte for byte the batch a fresh thread
/// encodes.
#[test]
fn reused_buffers_leave_nothing_behind() {
    let small = || [one(0, 7, Some(b"k"), Some(b"v"))];
    let fresh = std::thread::spawn(move || build(&small(), 3, None))
        .join()
        .unwrap();
    let big: Vec<EncodeRecord<'static>> = (0..500)
        .map(|i| one(i, 9 + i64::from(i), Some(&[0xAB; 40]), Some(&[0xCD; 90])))
        .collect();
    for zstd in codecs(1) {
        build(&big, 1_000, zstd);
        assert!(spare_capacity() > fresh.len());
        assert_eq!(build(&small(), 3, None), fresh);
    }
}

/// Batches larger than a thread's spare reuse buffers from the shared pool,
/// which never holds more than its bound, and a reused large buffer leaves
/// nothing of its last batch in the next.
#[test]
#[cfg_attr(
    miri,
    ignore = "megabytes of encoding, far too slow there; the pool has no unsafe code"
)]
fn large_batch_buffers_are_pooled_within_a_bound() {
    use super::encode::{big_spare_capacities, BIG_SPARES_MAX};
    static VALUE: [u8; 2_000] = [0x5A; 2_000];
    let records = |n: u32| -> Vec<EncodeRecord<'static>> {
        (0..n).map(|i| one(i, 5, None, Some(&VALUE))).collect()
    };
    let first = build(&records(600), 0, None);
    assert!(first.len() > 1 << 20);
    let threads: Vec<_> = (0..12)
        .map(|_| std::thread::spawn(move || build(&records(600), 0, None)))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), first);
    }
    let pooled = big_spare_capacities();
    assert!(!pooled.is_empty());
    assert!(pooled.iter().sum::<usize>() <= BIG_SPARES_MAX, "{pooled:?}");
    // A smaller large batch after the larger ones: no stale bytes.
    let alone = std::thread::spawn(move || build(&records(300), 0, None));
    assert_eq!(build(&records(300), 0, None), alone.join().unwrap());
}

#[test]
fn round_trips_in_both_layouts_with_and_without_zstd() {
    let recs: Vec<EncodeRecord<'_>> = (0..50)
        .map(|i| {
            one(
                i,
                1000 + i as i64,
                Some(b"key"),
                Some(b"some value that repeats"),
            )
        })
        .collect();
    for zstd in codecs(3) {
        for bytes in [
            build(&recs, 7, zstd),
            v1::encode_batch(&recs, 7, zstd).unwrap(),
        ] {
            let (h, got) = decode_all(&bytes);
            assert_eq!((h.base_offset, h.next_offset()), (7, 57));
            assert_eq!(got.len(), 50);
            for (i, r) in got.iter().enumerate() {
                assert_eq!((r.0, r.1), (i as u32, 1000 + i as i64));
                assert_eq!(r.2.as_deref(), Some(&b"key"[..]));
            }
        }
    }
}

/// Each layout is recognised from its own bytes, never as the other.
#[test]
fn the_layouts_tell_themselves_apart() {
    let recs = [one(0, 5, Some(b"k"), Some(b"v"))];
    let v2_bytes = build(&recs, 0x534c, None);
    let v1_bytes = v1::encode_batch(&recs, 0x534c, None).unwrap();
    assert_eq!(version_of(&v2_bytes), Version::V2);
    assert_eq!(version_of(&v1_bytes), Version::V1);
    assert_eq!(decode_batch(&v2_bytes).unwrap().version, Version::V2);
    assert_eq!(decode_batch(&v1_bytes).unwrap().version, Version::V1);
    // A v2 length whose high half reads "SL" is far over the size bound.
    assert!(u32::from_be_bytes([0x53, 0x4c, 0, 0]) as usize > MAX_BATCH_BYTES);
    assert_eq!(claimed_base_offset(&v2_bytes), Some(0x534c));
    assert_eq!(claimed_base_offset(&v1_bytes), Some(0x534c));
}

/// The fixed header alone is enough for `peek_fixed_header`, in both
/// layouts, and it reads what `peek_header` reads from the whole batch;
/// zeros and short buffers are refused as by `peek_header`.
#[test]
fn the_fixed_header_alone_peeks_like_the_whole_batch() {
    let recs: Vec<EncodeRecord<'_>> = (0..20)
        .map(|i| one(i, 100 + i64::from(i), Some(b"key"), Some(&[7; 50])))
        .collect();
    for bytes in [
        build(&recs, 9, None),
        v1::encode_batch(&recs, 9, None).unwrap(),
    ] {
        let whole = peek_header(&bytes).unwrap();
        let fixed = peek_fixed_header(&bytes[..MAX_HEADER_LEN]).unwrap();
        assert_eq!(fixed, whole);
        assert_eq!(fixed.total_len(), bytes.len());
        assert!(matches!(
            peek_header(&bytes[..MAX_HEADER_LEN]),
            Err(DecodeError::Incomplete { needed }) if needed == bytes.len()
        ));
        assert!(peek_fixed_header(&bytes[..whole.header_len() - 1]).is_err());
    }
    assert!(peek_fixed_header(&[0; MAX_HEADER_LEN]).is_err());
}

#[test]
fn null_and_empty_are_distinct_in_keys_values_and_header_values() {
    let headers: [EncodeHeader<'_>; 2] = [
        (Cow::Borrowed("e"), Some(Cow::Borrowed(&b""[..]))),
        (Cow::Borrowed("n"), None),
    ];
    let recs = [
        EncodeRecord {
            headers: &headers,
            ..one(0, 1, Some(b""), None)
        },
        one(1, 1, None, Some(b"")),
    ];
    let bytes = build(&recs, 0, None);
    let h = decode_batch(&bytes).unwrap();
    let got: Vec<_> = RecordIter::new(&h, &bytes[h.header_len()..])
        .map(|r| r.unwrap())
        .collect();
    assert_eq!((got[0].key, got[0].value), (Some(&b""[..]), None));
    assert_eq!((got[1].key, got[1].value), (None, Some(&b""[..])));
    let mut it = got[0].header_iter();
    assert_eq!(it.next_checked(), Some(("e", Some(&b""[..]))));
    assert_eq!(it.next_checked(), Some(("n", None)));
    assert_eq!(it.next_checked(), None);
}

/// Every flip of a bit the CRC covers, or of the length, is caught. The
/// bytes outside Kafka's CRC are the base offset (checked against the
/// partition's offsets by recovery and reads), the leader epoch (not
/// interpreted) and the magic (a different magic is another format).
#[test]
fn every_covered_byte_flip_is_caught() {
    let recs = [one(0, 5, Some(b"k"), Some(b"value"))];
    let bytes = build(&recs, 3, None);
    for i in (v2::LENGTH_AT..v2::LEADER_EPOCH_AT).chain(v2::MAGIC_AT..bytes.len()) {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        assert!(decode_batch(&b).is_err(), "flip at byte {i} went unnoticed");
    }
    let v1_bytes = v1::encode_batch(&recs, 3, None).unwrap();
    for i in 0..v1_bytes.len() {
        let mut b = v1_bytes.clone();
        b[i] ^= 0x10;
        assert!(
            decode_batch(&b).is_err(),
            "v1 flip at byte {i} went unnoticed"
        );
    }
}

#[test]
fn zeros_and_short_buffers_are_rejected() {
    assert_eq!(
        decode_batch(&[0u8; 10]),
        Err(DecodeError::Incomplete {
            needed: v2::HEADER_LEN
        })
    );
    assert!(matches!(
        decode_batch(&[0u8; 100]),
        Err(DecodeError::Corrupt(CorruptionKind::BadLength {
            length: 0
        }))
    ));
    let bytes = build(&[one(0, 5, None, Some(b"v"))], 0, None);
    assert_eq!(
        decode_batch(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Incomplete {
            needed: bytes.len()
        })
    );
}

/// Rewrites the CRC of a v2 batch after a change.
fn fix_crc(b: &mut [u8]) {
    let crc = v2::crc_of(b);
    b[v2::CRC_AT..v2::CRC_FROM].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn newer_formats_with_a_valid_crc_are_unsupported_not_damage() {
    let bytes = build(&[one(0, 5, None, Some(b"v"))], 0, None);
    // An unknown magic.
    let mut b = bytes.clone();
    b[v2::MAGIC_AT] = 3;
    assert_eq!(decode_batch(&b), Err(DecodeError::UnsupportedVersion(3)));
    // An attribute bit this build does not know.
    let mut b = bytes.clone();
    b[v2::ATTRIBUTES_AT] |= 0x80;
    fix_crc(&mut b);
    assert_eq!(decode_batch(&b), Err(DecodeError::UnsupportedVersion(2)));
    // gzip, snappy, lz4: typed, not damage.
    for codec in 1..=3u8 {
        let mut b = bytes.clone();
        b[v2::ATTRIBUTES_AT + 1] = codec;
        fix_crc(&mut b);
        assert_eq!(decode_batch(&b), Err(DecodeError::UnsupportedCodec(codec)));
    }
    // Kafka's legacy message format (magic 1), with its own CRC-32.
    let mut b = bytes.clone();
    b[v2::MAGIC_AT] = 1;
    let crc = crc32fast::hash(&b[v2::MAGIC_AT..]);
    b[12..16].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(decode_batch(&b), Err(DecodeError::UnsupportedVersion(1)));
}

/// A zstd frame without a declared content size (Java's streaming
/// compressor writes those) decompresses, within the limit.
#[test]
#[cfg_attr(miri, ignore = "zstd is C code")]
fn zstd_frames_without_a_content_size_are_read() {
    use std::io::Write;
    let section = {
        let mut s = Vec::new();
        for i in 0..20u32 {
            encode_record(&mut s, &one(i, 9, None, Some(b"repeated value")), 9);
        }
        s
    };
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(&section).unwrap();
    let frame = enc.finish().unwrap();
    assert!(matches!(
        zstd::zstd_safe::get_frame_content_size(&frame),
        Ok(None)
    ));
    assert_eq!(decompress(&frame, section.len()).unwrap(), section);
    assert!(decompress(&frame, section.len() - 1).is_err());
}

#[test]
fn control_records_use_kafkas_key_and_value() {
    assert_eq!(v2::control_key(v2::ControlType::Abort), [0, 0, 0, 0]);
    assert_eq!(v2::control_key(v2::ControlType::Commit), [0, 0, 0, 1]);
    assert_eq!(v2::marker_value(7), [0, 0, 0, 0, 0, 7]);
    assert_eq!(
        v2::parse_control_key(&[0, 0, 0, 1]),
        Some(v2::ControlType::Commit)
    );
    assert_eq!(v2::parse_control_key(&[0, 0, 0, 2]), None);
    assert_eq!(v2::parse_control_key(&[0, 1, 0, 1]), None);
    assert_eq!(v2::parse_marker_value(&v2::marker_value(-3)), Some(-3));
    assert_eq!(v2::parse_marker_value(&[0, 0]), None);
}

#[test]
fn crc_patch_equals_recomputing() {
    use super::v2::{crc32c, crc_patch, crc_zeros_factor};
    let mut seed = 0x1234_5678_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for len in [4usize, 5, 8, 61, 100, 1000, 4097] {
        let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        for at in [0, len / 2, len - 4] {
            let at = at.min(len - 4);
            let before = crc32c(&buf);
            let old: [u8; 4] = buf[at..at + 4].try_into().unwrap();
            let new = (next() as u32).to_be_bytes();
            buf[at..at + 4].copy_from_slice(&new);
            let factor = crc_zeros_factor(len - at - 4);
            assert_eq!(
                crc_patch(before, old, new, factor),
                crc32c(&buf),
                "len {len} at {at}"
            );
        }
    }
}

#[test]
fn a_sequence_assigned_under_the_lock_leaves_a_valid_batch() {
    use super::encode::ProducerFields;
    // Small batches get the CRC recomputed, large ones patched.
    for n in [1usize, 3000] {
        let value = vec![7u8; n];
        let r = EncodeRecord {
            offset_delta: 0,
            timestamp: 5,
            key: None,
            value: Some(&value[..]),
            headers: &[],
        };
        let mut section = EncodedBatch::section_buffer(n + 16);
        encode_record(&mut section, &r, 5);
        let fields = ProducerFields {
            id: 42,
            epoch: 3,
            transactional: true,
        };
        let mut b = EncodedBatch::for_producer(section, 1, 5, 5, None, fields).unwrap();
        assert!(b.needs_sequence());
        b.assign_sequence(1234);
        let bytes = b.seal(9).to_vec();
        let h = decode_batch(&bytes).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, 1234)
        );
        assert!(h.is_transactional());
        assert_eq!(h.base_offset, 9);
    }
}

/// `RecordIter::next_common`, the consumers' fast path, agrees with the
/// general decoder on every record it accepts, leaves the iterator as it
/// was on every one it declines, and accepts the common shape: checked over
/// records of every size class, with and without keys and headers, and over
/// thousands of damaged copies of their sections.
#[test]
fn the_common_record_path_agrees_with_the_general_decoder() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let big = vec![7u8; 20_000];
    let header = [(Cow::Borrowed("h"), Some(Cow::Borrowed(&b"v"[..])))];
    let (mut common, mut general) = (0u64, 0u64);
    // Miri runs a handful of rounds: it is slow, and the rounds differ only
    // in their random choices.
    let (rounds, most) = if cfg!(miri) { (4, 6) } else { (300, 40) };
    for round in 0..rounds {
        let count = 1 + rand(most) as usize;
        let mut delta = 0u32;
        let mut records = Vec::new();
        let rand_len = rand(130) as usize;
        for i in 0..count {
            delta += if round % 3 == 0 {
                1 + rand(500) as u32
            } else {
                1
            };
            let pick = |r: u64| -> Option<&[u8]> {
                match r {
                    0 => None,
                    1 => Some(&big[..0]),
                    2 => Some(&big[..rand_len]),
                    3 => Some(&big[..8_000]),
                    _ => Some(&big[..9_000 + r as usize]),
                }
            };
            let key = pick(rand(5));
            let value = pick(if round % 2 == 0 { 2 } else { rand(6) });
            records.push(EncodeRecord {
                offset_delta: if i == 0 { 0 } else { delta },
                timestamp: 1_000_000 + [0, 5, -70, 100_000][rand(4) as usize],
                key,
                value,
                headers: if rand(4) == 0 { &header[..] } else { &[] },
            });
        }
        // Deltas that repeat or go past the header's last delta.
        if round % 5 == 1 && count > 2 {
            // Not the last record, whose delta keeps the header valid.
            let i = 1 + rand(count as u64 - 2) as usize;
            records[i].offset_delta = records[i - 1].offset_delta;
        }
        let bytes = build(&records, 10, None);
        let mut h = decode_batch(&bytes).unwrap();
        if round % 7 == 2 {
            h.last_offset_delta = h.last_offset_delta.saturating_sub(1 + rand(3) as u32);
        }
        let clean = records_section(&h, &bytes).unwrap().into_owned();
        // Where each record starts, for damage aimed at its first fields.
        let mut starts = Vec::new();
        let mut walk = RecordIter::new(&h, &clean);
        loop {
            let at = walk.state().consumed();
            match walk.next() {
                Some(Ok(_)) => starts.push(at),
                _ => break,
            }
        }
        for damage in 0..16 {
            let mut section = clean.clone();
            let start = starts
                .get(rand(starts.len().max(1) as u64) as usize)
                .copied();
            match (damage, start) {
                (0, _) => {}
                // A one-byte length made longer, so that the body takes in
                // bytes of the next record.
                (1..=4, Some(at)) if section[at] < 0x7c => section[at] += 2 * (1 + rand(2) as u8),
                // Attributes other than zero.
                (5..=7, Some(at)) if section[at] < 0x80 => {
                    section[at + 1] = [1, 0x80, 0xff, 1 + rand(255) as u8][rand(4) as usize]
                }
                // A timestamp delta in a longer encoding than it needs
                // (`0x80 | b, 0x00`), the record's length grown to match.
                (8..=9, Some(at)) if section[at] < 0x7f && section[at + 2] < 0x80 => {
                    section[at] += 2;
                    section[at + 2] |= 0x80;
                    section.insert(at + 3, 0);
                }
                _ => {
                    for _ in 0..1 + rand(3) {
                        let at = rand(section.len() as u64) as usize;
                        section[at] = rand(256) as u8;
                    }
                }
            }
            let mut it = RecordIter::new(&h, &section);
            loop {
                let mut fast = it.clone();
                match fast.next_common() {
                    Some(v) => {
                        common += 1;
                        assert_eq!(it.next(), Some(Ok(v)), "round {round} damage {damage}");
                        assert_eq!(it.state(), fast.state());
                    }
                    None => {
                        assert_eq!(it.state(), fast.state(), "declining changed the iterator");
                        match it.next() {
                            Some(Ok(_)) => general += 1,
                            _ => break,
                        }
                    }
                }
            }
        }
    }
    // Both paths were exercised: the fast one takes the plain records, the
    // general one those with headers or a length past two varint bytes.
    let least = if cfg!(miri) { 5 } else { 10_000 };
    assert!(common > least && general > least, "{common} {general}");
}

/// The producer's path for a record without headers writes the bytes the
/// general encoder writes, across one- to ten-byte varints, negative
/// timestamp deltas, null and empty keys and values; and a record written
/// after others lands at the writer's place, not the start.
#[test]
fn the_plain_record_path_agrees_with_the_general_encoder() {
    let long = vec![5u8; 20_000];
    let deltas = [
        0i64,
        1,
        -1,
        63,
        64,
        -65,
        8191,
        8192,
        1 << 40,
        i64::MIN,
        i64::MAX,
    ];
    let offsets = [0u32, 63, 64, 8191, 8192, u32::MAX];
    let fields: [Option<&[u8]>; 4] = [None, Some(b""), Some(b"key"), Some(&long)];
    let step = if cfg!(miri) { 5 } else { 1 };
    let mut cases = 0;
    for (n, &ts) in deltas.iter().enumerate().step_by(step) {
        for &off in &offsets {
            for &key in &fields {
                for &value in &fields {
                    let base = 1_700_000_000_000i64;
                    let r = EncodeRecord {
                        offset_delta: off,
                        timestamp: base.wrapping_add(ts),
                        key,
                        value,
                        headers: &[],
                    };
                    let mut want = b"before".to_vec();
                    encode::encode_record(&mut want, &r, base);
                    let body = plain_body_len(ts, off, key, value);
                    assert_eq!(body, record_body_len(&r, base));
                    let total = crate::format::varint::varint_len(body as i64) + body;
                    let mut got = b"before".to_vec();
                    crate::format::varint::append_exact(&mut got, 1 + total, |mut w| {
                        w.byte(n as u8);
                        write_plain_record(&mut w, ts, off, key, value, body);
                        w
                    });
                    assert_eq!(got[6], n as u8);
                    got.remove(6);
                    assert_eq!(
                        got,
                        want,
                        "ts {ts} off {off} key {key:?} value len {:?}",
                        value.map(<[u8]>::len)
                    );
                    cases += 1;
                }
            }
        }
    }
    assert!(cases >= 96);
}
