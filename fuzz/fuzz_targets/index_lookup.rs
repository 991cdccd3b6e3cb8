//! Index lookups over arbitrary bytes must never panic and must agree with a
//! linear scan over the valid prefix.
//!
//! Input layout: byte 0 mode, bytes 1..5 the offset target (u32 LE), bytes
//! 5..13 the time target (i64 LE), the rest the index bytes. Mode bit 0
//! prepends a long synthetic valid prefix built from the rest (so the warm /
//! cold split of the offset lookup, 1024 entries, is reached), with the raw
//! bytes appended after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamlog::internals::{
    offset_index_lookup, offset_index_lookup_in, time_index_lookup, time_index_lookup_in,
    valid_offset_index_entries, valid_time_index_entries,
};

const PREFIX: usize = 13;

fn offset_entries(bytes: &[u8], n: usize) -> Vec<(u32, u32)> {
    bytes
        .chunks_exact(8)
        .take(n)
        .map(|e| {
            (
                u32::from_le_bytes(e[..4].try_into().unwrap()),
                u32::from_le_bytes(e[4..].try_into().unwrap()),
            )
        })
        .collect()
}

fn time_entries(bytes: &[u8], n: usize) -> Vec<(i64, u32)> {
    bytes
        .chunks_exact(12)
        .take(n)
        .map(|e| {
            (
                i64::from_le_bytes(e[..8].try_into().unwrap()),
                u32::from_le_bytes(e[8..].try_into().unwrap()),
            )
        })
        .collect()
}

/// A valid offset index of `n` entries whose gaps come from `seed`.
fn synth_offsets(n: usize, seed: &[u8]) -> Vec<u8> {
    let (mut rel, mut pos) = (0u32, 0u32);
    let mut out = Vec::with_capacity(n * 8);
    for i in 0..n {
        let g = seed.get(i % seed.len().max(1)).copied().unwrap_or(0);
        rel = rel.saturating_add(1 + u32::from(g & 0x0f));
        pos = pos.saturating_add(1 + u32::from(g >> 4) * 64);
        out.extend_from_slice(&rel.to_le_bytes());
        out.extend_from_slice(&pos.to_le_bytes());
    }
    out
}

/// A valid time index of `n` entries (timestamps may repeat) from `seed`.
fn synth_times(n: usize, seed: &[u8], start: i64) -> Vec<u8> {
    let (mut ts, mut rel) = (start, 0u32);
    let mut out = Vec::with_capacity(n * 12);
    for i in 0..n {
        let g = seed.get(i % seed.len().max(1)).copied().unwrap_or(0);
        ts = ts.saturating_add(i64::from(g & 0x07));
        rel = rel.saturating_add(1 + u32::from(g >> 3));
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&rel.to_le_bytes());
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

    // The long synthetic prefix is costly: one input in eight.
    let (off_bytes, time_bytes) = if mode & 7 == 7 {
        // 1000..1400 entries: either side of the 1024-entry warm section.
        let n = 1000 + usize::from(mode >> 3) * 12;
        let mut o = synth_offsets(n, raw);
        o.extend_from_slice(raw);
        let mut t = synth_times(n, raw, time_target.wrapping_sub(i64::from(mode) * 100));
        t.extend_from_slice(raw);
        (o, t)
    } else {
        (raw.to_vec(), raw.to_vec())
    };

    // Offset index.
    let n = valid_offset_index_entries(&off_bytes);
    assert!(n * 8 <= off_bytes.len());
    let entries = offset_entries(&off_bytes, n);
    let want = entries.iter().rev().find(|e| e.0 <= off_target).copied();
    let got = offset_index_lookup(&off_bytes, off_target);
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
                offset_index_lookup_in(&off_bytes, n, t),
                want,
                "probe target {t}"
            );
        }
    }

    // Time index.
    let n = valid_time_index_entries(&time_bytes);
    assert!(n * 12 <= time_bytes.len());
    let entries = time_entries(&time_bytes, n);
    let want = entries.iter().rev().find(|e| e.0 < time_target).copied();
    let got = time_index_lookup(&time_bytes, time_target);
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
                time_index_lookup_in(&time_bytes, n, t),
                want,
                "probe target {t}"
            );
        }
    }
});
