//! Recovery's segment scan on arbitrary bytes (either layout) must never
//! panic, and the indexes it rebuilds must be entirely valid and point at
//! real batches by the layout's rule.
//!
//! Input layout: byte 0 flags (bit 0: recompute batch CRCs), bytes 1..3 the
//! index interval (u16 LE), bytes 3..11 the segment base offset (u64 LE),
//! the rest the segment bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamlog_fuzz::{i64_of, u32_of};
use streamlog::internals::{
    decode, scan_segment, valid_offset_index_entries, valid_time_index_entries, DecodeFailure,
    Layout,
};
use streamlog::CorruptionKind;

const PREFIX: usize = 11;

/// First offset, last offset, max timestamp and size of the batch header
/// at the front of `b`, read by hand (FORMAT.md §3, §3.4).
fn header_fields(b: &[u8], l: Layout) -> (u64, u64, i64, usize) {
    match l {
        Layout::V1 => {
            let len = u32_of(&b[0..4], l) as usize + 4;
            let first = u64::from_le_bytes(b[12..20].try_into().unwrap());
            let lod = u32_of(&b[24..28], l);
            (first, first + u64::from(lod), i64_of(&b[40..48], l), len)
        }
        Layout::V2 => {
            let len = u32_of(&b[8..12], l) as usize + 12;
            let first = u64::from_be_bytes(b[0..8].try_into().unwrap());
            let lod = u32_of(&b[23..27], l);
            (first, first + u64::from(lod), i64_of(&b[35..43], l), len)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < PREFIX {
        return;
    }
    let flags = data[0];
    let interval = u64::from(u16::from_le_bytes([data[1], data[2]]));
    let base = u64::from_le_bytes(data[3..11].try_into().unwrap());
    let raw = &data[PREFIX..];
    let fixed;
    let seg = if flags & 1 != 0 {
        fixed = streamlog_fuzz::fix_crcs(raw);
        fixed.as_deref().unwrap_or(raw)
    } else {
        raw
    };

    let s = scan_segment(seg, base, interval);
    let valid_len = usize::try_from(s.valid_len).expect("valid_len fits usize");
    assert!(
        valid_len <= seg.len(),
        "valid_len {valid_len} > {}",
        seg.len()
    );
    assert!(
        s.next_offset >= base,
        "next_offset {} < base {base}",
        s.next_offset
    );
    if s.stop.is_none() {
        assert_eq!(valid_len, seg.len(), "no stop reason but bytes left over");
    }

    let l = s.layout;
    let n_off = valid_offset_index_entries(&s.offset_index, l);
    assert_eq!(
        n_off * 8,
        s.offset_index.len(),
        "rebuilt offset index has invalid entries"
    );
    let n_time = valid_time_index_entries(&s.time_index, l);
    assert_eq!(
        n_time * 12,
        s.time_index.len(),
        "rebuilt time index has invalid entries"
    );
    assert!(n_time <= n_off, "more time entries than offset entries");

    // The valid prefix's batches: (position, base offset, last offset, max
    // timestamp), from their headers (the scan checks headers and CRCs,
    // not records sections, so a full decode may still fail, but only past
    // the header and CRC).
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < valid_len {
        let b = &seg[pos..valid_len];
        match decode(b) {
            Ok(d) => {
                batches.push((pos, d.base_offset, d.base_offset + u64::from(d.last_offset_delta), d.max_timestamp));
                pos += d.total_len;
            }
            Err(
                e @ (DecodeFailure::Incomplete { .. }
                | DecodeFailure::UnsupportedVersion(_)
                | DecodeFailure::UnsupportedCodec(_)
                | DecodeFailure::Corrupt(
                    CorruptionKind::CrcMismatch { .. }
                    | CorruptionKind::BadLength { .. }
                    | CorruptionKind::BadMagic { .. },
                )),
            ) => panic!("batch at {pos} inside the valid prefix does not pass its header: {e:?}"),
            Err(_) => {
                let (first, last, max_ts, len) = header_fields(b, l);
                batches.push((pos, first, last, max_ts));
                pos += len;
            }
        }
    }
    assert_eq!(pos, valid_len, "the valid prefix is not whole batches");

    // Every offset entry points at a batch of the valid prefix whose first
    // (v1) or last (v2, Kafka's) offset is `base + rel`.
    for e in s.offset_index.chunks_exact(8) {
        let rel = u32_of(&e[..4], l);
        let epos = u32_of(&e[4..], l) as usize;
        assert!(
            epos > 0 && epos < valid_len,
            "index position {epos} outside 1..{valid_len}"
        );
        let b = batches.iter().find(|b| b.0 == epos);
        let named = b.map(|b| if l == Layout::V1 { b.1 } else { b.2 });
        assert_eq!(named, Some(base + u64::from(rel)), "index entry ({rel}, {epos})");
    }
    // v1: every time entry sits beside an offset entry. v2 (Kafka's check):
    // it names the last offset of a batch whose largest timestamp it holds.
    for e in s.time_index.chunks_exact(12) {
        let ts = i64_of(&e[..8], l);
        let rel = u32_of(&e[8..], l);
        let at = base + u64::from(rel);
        match l {
            Layout::V1 => assert!(
                s.offset_index.chunks_exact(8).any(|o| u32_of(&o[..4], l) == rel),
                "time entry rel {rel} has no offset entry"
            ),
            Layout::V2 => assert!(
                batches.iter().any(|b| b.2 == at && b.3 == ts),
                "time entry ({ts}, {rel}) names no batch ending there with that timestamp"
            ),
        }
    }

    // Scanning exactly the valid prefix is clean and gives the same result.
    let again = scan_segment(&seg[..valid_len], base, interval);
    assert_eq!(again.stop, None, "valid prefix does not scan cleanly");
    assert_eq!(again.valid_len, s.valid_len);
    assert_eq!(again.next_offset, s.next_offset);
    assert_eq!(again.offset_index, s.offset_index);
    assert_eq!(again.time_index, s.time_index);
});
