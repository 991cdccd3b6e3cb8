//! Index lookups over arbitrary bytes must never panic and must agree with a
//! linear scan over the valid prefix.
//!
//! Input layout: byte 0 mode, bytes 1..5 the offset target (u32 LE), bytes
//! 5..13 the time target (i64 LE), the rest the index bytes. Mode bit 3
//! picks v1's little-endian entries, otherwise Kafka's big-endian v2 ones.
//! Mode bits 0..3 all set prepend a long synthetic valid prefix built from
//! the rest (so the warm / cold split of the offset lookup, 1024 entries,
//! is reached), with the raw bytes appended after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamlog_fuzz::{i64_of, u32_of};
use streamlog::internals::{
    offset_index_lookup, offset_index_lookup_in, time_index_lookup, time_index_lookup_in,
    valid_offset_index_entries, valid_time_index_entries, Layout,
};

const PREFIX: usize = 13;

fn u32_to(v: u32, l: Layout) -> [u8; 4] {
    match l {
        Layout::V1 => v.to_le_bytes(),
        Layout::V2 => v.to_be_bytes(),
    }
}

fn i64_to(v: i64, l: Layout) -> [u8; 8] {
    match l {
        Layout::V1 => v.to_le_bytes(),
        Layout::V2 => v.to_be_bytes(),
    }
}

fn offset_entries(bytes: &[u8], n: usize, l: Layout) -> Vec<(u32, u32)> {
    bytes
        .chunks_exact(8)
        .take(n)
        .map(|e| (u32_of(&e[..4], l), u32_of(&e[4..], l)))
        .collect()
}

fn time_entries(bytes: &[u8], n: usize, l: Layout) -> Vec<(i64, u32)> {
    bytes
        .chunks_exact(12)
        .take(n)
        .map(|e| (i64_of(&e[..8], l), u32_of(&e[8..], l)))
        .collect()
}

/// A valid offset index of `n` entries whose gaps come from `seed`.
fn synth_offsets(n: usize, seed: &[u8], l: Layout) -> Vec<u8> {
    let (mut rel, mut pos) = (0u32, 0u32);
    let mut out = Vec::with_capacity(n * 8);
    for i in 0..n {
        let g = seed.get(i % seed.len().max(1)).copied().unwrap_or(0);
        rel = rel.saturating_add(1 + u32::from(g & 0x0f));
        pos = pos.saturating_add(1 + u32::from(g >> 4) * 64);
        out.extend_from_slice(&u32_to(rel, l));
        out.extend_from_slice(&u32_to(pos, l));
    }
    out
}

/// A valid time index of `n` entries (timestamps may repeat) from `seed`.
fn synth_times(n: usize, seed: &[u8], start: i64, l: Layout) -> Vec<u8> {
    let (mut ts, mut rel) = (start, 0u32);
    let mut out = Vec::with_capacity(n * 12);
    for i in 0..n {
        let g = seed.get(i % seed.len().max(1)).copied().unwrap_or(0);
        ts = ts.saturating_add(i64::from(g & 0x07));
        rel = rel.saturating_add(1 + u32::from(g >> 3));
        out.extend_from_slice(&i64_to(ts, l));
        out.extend_from_slice(&u32_to(rel, l));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < PREFIX {
        return;
    }
    let mode = data[0];
    let off_target = u32::from_le_bytes(data[1..5].try_into().unwrap());
    let time_target = i64::from_le_bytes(data[5..13].try_into().unwrap());
    let raw = &data[PREFIX..];
    let l = if mode & 0x08 != 0 {
        Layout::V1
    } else {
        Layout::V2
    };

    // The long synthetic prefix is costly: one input in eight.
    let (off_bytes, time_bytes) = if mode & 7 == 7 {
        // 1000..1400 entries: either side of the 1024-entry warm section.
        let n = 1000 + usize::from(mode >> 3) * 12;
        let mut o = synth_offsets(n, raw, l);
        o.extend_from_slice(raw);
        let mut t = synth_times(n, raw, time_target.wrapping_sub(i64::from(mode) * 100), l);
        t.extend_from_slice(raw);
        (o, t)
    } else {
        (raw.to_vec(), raw.to_vec())
    };

    // Offset index.
    let n = valid_offset_index_entries(&off_bytes, l);
    assert!(n * 8 <= off_bytes.len());
    let entries = offset_entries(&off_bytes, n, l);
    let want = entries.iter().rev().find(|e| e.0 <= off_target).copied();
    let got = offset_index_lookup(&off_bytes, off_target, l);
    if let Some((rel, _)) = got {
        assert!(
            rel <= off_target,
            "offset lookup returned rel {rel} > target {off_target}"
        );
        assert!(
            entries.contains(&got.unwrap()),
            "offset lookup returned {got:?}, not a valid entry"
        );
    }
    assert_eq!(
        got, want,
        "offset lookup vs linear scan, target {off_target}, n {n}"
    );
    // Also probe exactly at, just below and just above each of a few entries.
    for &(rel, _) in entries.iter().step_by(entries.len() / 8 + 1) {
        for t in [rel.wrapping_sub(1), rel, rel.wrapping_add(1)] {
            let want = entries.iter().rev().find(|e| e.0 <= t).copied();
            assert_eq!(
                offset_index_lookup_in(&off_bytes, n, t, l),
                want,
                "probe target {t}"
            );
        }
    }

    // Time index.
    let n = valid_time_index_entries(&time_bytes, l);
    assert!(n * 12 <= time_bytes.len());
    let entries = time_entries(&time_bytes, n, l);
    let want = entries.iter().rev().find(|e| e.0 < time_target).copied();
    let got = time_index_lookup(&time_bytes, time_target, l);
    if let Some((ts, _)) = got {
        assert!(
            ts < time_target,
            "time lookup returned ts {ts} >= target {time_target}"
        );
        assert!(
            entries.contains(&got.unwrap()),
            "time lookup returned {got:?}, not a valid entry"
        );
    }
    assert_eq!(
        got, want,
        "time lookup vs linear scan, target {time_target}, n {n}"
    );
    for &(ts, _) in entries.iter().step_by(entries.len() / 8 + 1) {
        for t in [ts.wrapping_sub(1), ts, ts.wrapping_add(1)] {
            let want = entries.iter().rev().find(|e| e.0 < t).copied();
            assert_eq!(
                time_index_lookup_in(&time_bytes, n, t, l),
                want,
                "probe target {t}"
            );
        }
    }
});
