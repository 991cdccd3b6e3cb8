//! Recovery's segment scan on arbitrary bytes must never panic, and the
//! indexes it rebuilds must be entirely valid and point at real batches.
//!
//! Input layout: byte 0 flags (bit 0: recompute batch CRCs), bytes 1..3 the
//! index interval (u16 LE), bytes 3..11 the segment base offset (u64 LE),
//! the rest the segment bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamlog::internals::{
    decode, scan_segment, valid_offset_index_entries, valid_time_index_entries, DecodeFailure,
};
use streamlog::CorruptionKind;

const PREFIX: usize = 11;

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

    let n_off = valid_offset_index_entries(&s.offset_index);
    assert_eq!(
        n_off * 8,
        s.offset_index.len(),
        "rebuilt offset index has invalid entries"
    );
    let n_time = valid_time_index_entries(&s.time_index);
    assert_eq!(
        n_time * 12,
        s.time_index.len(),
        "rebuilt time index has invalid entries"
    );
    assert!(n_time <= n_off, "more time entries than offset entries");

    // Every offset entry points at a valid batch inside the valid prefix
    // whose base offset is `base + rel`.
    let mut rels = Vec::with_capacity(n_off);
    for e in s.offset_index.chunks_exact(8) {
        let rel = u32::from_le_bytes(e[..4].try_into().unwrap());
        let pos = u32::from_le_bytes(e[4..].try_into().unwrap()) as usize;
        assert!(
            pos > 0 && pos < valid_len,
            "index position {pos} outside 1..{valid_len}"
        );
        // The scan checks headers and CRCs only, not the records section
        // (zstd, record bodies), so a full decode may still fail, but only
        // past the header and CRC.
        let batch = &seg[pos..valid_len];
        let decoded = Some(decode(batch));
        match decoded {
            Some(Ok(b)) => {
                assert_eq!(
                    b.base_offset,
                    base + u64::from(rel),
                    "index entry ({rel}, {pos})"
                )
            }
            Some(Err(
                e @ (DecodeFailure::Incomplete { .. }
                | DecodeFailure::UnsupportedVersion(_)
                | DecodeFailure::Corrupt(
                    CorruptionKind::CrcMismatch { .. }
                    | CorruptionKind::BadLength { .. }
                    | CorruptionKind::BadMagic { .. },
                )),
            )) => panic!("index entry ({rel}, {pos}) is not at a valid batch: {e:?}"),
            _ => {}
        }
        let at = pos + 12; // base_offset field
        let batch_base = u64::from_le_bytes(seg[at..at + 8].try_into().unwrap());
        assert_eq!(
            batch_base,
            base + u64::from(rel),
            "index entry ({rel}, {pos})"
        );
        rels.push(rel);
    }
    // Every time entry sits beside an offset entry.
    for e in s.time_index.chunks_exact(12) {
        let rel = u32::from_le_bytes(e[8..].try_into().unwrap());
        assert!(
            rels.contains(&rel),
            "time entry rel {rel} has no offset entry"
        );
    }

    // Scanning exactly the valid prefix is clean and gives the same result.
    let again = scan_segment(&seg[..valid_len], base, interval);
    assert_eq!(again.stop, None, "valid prefix does not scan cleanly");
    assert_eq!(again.valid_len, s.valid_len);
    assert_eq!(again.next_offset, s.next_offset);
    assert_eq!(again.offset_index, s.offset_index);
    assert_eq!(again.time_index, s.time_index);
});
