//! Offset-index and time-index entries: encoding, validation and search over
//! raw bytes. Pure functions; the files themselves belong to `storage::segment`
//! (appends, lookups) and `storage::recovery` (checks and rebuilds).
//!
//! A segment's indexes use the layout of its batches (FORMAT.md §4): v2
//! segments Kafka's, big-endian `(relative offset i32, position i32)` and
//! `(timestamp i64, relative offset i32)`; v1 segments the same fields
//! little-endian and unsigned. What an entry's offset means differs too
//! (v2: a batch's last offset, v1: its first); `storage::cursor` decides
//! which entries exist, these functions only read and write them.
//!
//! Both indexes are sparse and never hold an entry for position 0, so every
//! valid offset entry is non-zero. Relative offsets (and file positions)
//! strictly increase; timestamps never decrease (v2: strictly increase).
//! The valid part of an index is therefore its longest such prefix: a
//! zero-filled (preallocated) tail is never mistaken for entries, whatever
//! the file size.

use crate::format::batch::Version;

/// Bytes per offset-index entry: relative offset, file position.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes per time-index entry: timestamp (i64), relative offset.
pub(crate) const TIME_ENTRY_LEN: usize = 12;

/// How many trailing entries form the "warm section" searched first: 8 KiB
/// worth, so a caught-up reader touches only recently written pages.
pub(crate) const WARM_OFFSET_ENTRIES: usize = 8192 / OFFSET_ENTRY_LEN;

/// One offset-index entry: the batch at byte `pos` has first offset (v1)
/// or last offset (v2) `base + rel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel: u32,
    pub pos: u32,
}

/// One time-index entry: every record of the segment whose offset is below
/// `base + rel` (v1), or at most `base + rel` (v2), has a timestamp `<= ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub ts: i64,
    pub rel: u32,
}

#[inline]
fn u32_from(b: &[u8], v: Version) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    match v {
        Version::V1 => u32::from_le_bytes(a),
        Version::V2 => u32::from_be_bytes(a),
    }
}

#[inline]
fn u32_to(x: u32, v: Version) -> [u8; 4] {
    match v {
        Version::V1 => x.to_le_bytes(),
        Version::V2 => x.to_be_bytes(),
    }
}

impl OffsetEntry {
    pub fn encode(&self, v: Version) -> [u8; OFFSET_ENTRY_LEN] {
        let mut b = [0u8; OFFSET_ENTRY_LEN];
        b[..4].copy_from_slice(&u32_to(self.rel, v));
        b[4..].copy_from_slice(&u32_to(self.pos, v));
        b
    }
}

impl TimeEntry {
    pub fn encode(&self, v: Version) -> [u8; TIME_ENTRY_LEN] {
        let mut b = [0u8; TIME_ENTRY_LEN];
        b[..8].copy_from_slice(&match v {
            Version::V1 => self.ts.to_le_bytes(),
            Version::V2 => self.ts.to_be_bytes(),
        });
        b[8..].copy_from_slice(&u32_to(self.rel, v));
        b
    }
}

/// Reads offset entry `i`. Callers keep `i` below `bytes.len() / 8`.
#[inline]
pub(crate) fn offset_entry(bytes: &[u8], i: usize, v: Version) -> Option<OffsetEntry> {
    let e = bytes.get(i * OFFSET_ENTRY_LEN..(i + 1) * OFFSET_ENTRY_LEN)?;
    Some(OffsetEntry {
        rel: u32_from(&e[..4], v),
        pos: u32_from(&e[4..], v),
    })
}

/// Reads time entry `i`.
#[inline]
pub(crate) fn time_entry(bytes: &[u8], i: usize, v: Version) -> Option<TimeEntry> {
    let e = bytes.get(i * TIME_ENTRY_LEN..(i + 1) * TIME_ENTRY_LEN)?;
    let mut t = [0u8; 8];
    t.copy_from_slice(&e[..8]);
    Some(TimeEntry {
        ts: match v {
            Version::V1 => i64::from_le_bytes(t),
            Version::V2 => i64::from_be_bytes(t),
        },
        rel: u32_from(&e[8..], v),
    })
}

/// The largest relative offset or position a v2 index can hold (Kafka
/// reads both as `i32`).
pub(crate) const V2_MAX_REL: u32 = i32::MAX as u32;

/// The number of leading offset entries that are valid: non-zero and
/// strictly increasing in both fields (v2: and within `i32`).
pub(crate) fn valid_offset_entries(bytes: &[u8], v: Version) -> usize {
    let mut prev = OffsetEntry { rel: 0, pos: 0 };
    let mut n = 0;
    while let Some(e) = offset_entry(bytes, n, v) {
        if e.rel <= prev.rel || e.pos <= prev.pos {
            break;
        }
        if v == Version::V2 && (e.rel > V2_MAX_REL || e.pos > V2_MAX_REL) {
            break;
        }
        prev = e;
        n += 1;
    }
    n
}

/// The number of leading time entries that are valid.
///
/// v1: a non-zero relative offset that strictly increases, and a timestamp
/// that never decreases (the seal entry may repeat the previous timestamp).
/// v2 (Kafka's rules): timestamps from 0 up that strictly increase,
/// relative offsets that strictly increase, within `i32`; the first entry
/// may have relative offset 0, but an all-zero first entry reads as zero
/// fill (FORMAT.md §4.2).
pub(crate) fn valid_time_entries(bytes: &[u8], v: Version) -> usize {
    let mut prev: Option<TimeEntry> = None;
    let mut n = 0;
    while let Some(e) = time_entry(bytes, n, v) {
        let ok = match (v, prev) {
            (Version::V1, None) => e.rel > 0,
            (Version::V1, Some(p)) => e.rel > p.rel && e.ts >= p.ts,
            (Version::V2, None) => e.ts >= 0 && (e.ts, e.rel) != (0, 0) && e.rel <= V2_MAX_REL,
            (Version::V2, Some(p)) => e.rel > p.rel && e.ts > p.ts && e.rel <= V2_MAX_REL,
        };
        if !ok {
            break;
        }
        prev = Some(e);
        n += 1;
    }
    n
}

/// Index of the last entry in `lo..hi` whose key is `<= target`, given that
/// keys increase. `None` when every key is greater.
fn last_at_or_below(
    lo: usize,
    hi: usize,
    target: u64,
    key: impl Fn(usize) -> u64,
) -> Option<usize> {
    let (mut lo, mut hi) = (lo, hi);
    // Invariant: key(i) <= target for i < lo, key(i) > target for i >= hi.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if key(mid) <= target {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1)
}

/// The last of the first `n` offset entries with `rel <= target`. Searches
/// the warm tail first and only falls back to the cold part when the target
/// lies before it.
pub(crate) fn lookup_offset(
    bytes: &[u8],
    n: usize,
    target: u32,
    v: Version,
) -> Option<OffsetEntry> {
    let key = |i: usize| offset_entry(bytes, i, v).map_or(u64::MAX, |e| u64::from(e.rel));
    let warm_start = n.saturating_sub(WARM_OFFSET_ENTRIES);
    let t = u64::from(target);
    let (lo, hi) = if warm_start > 0 && key(warm_start) > t {
        (0, warm_start)
    } else {
        (warm_start, n)
    };
    let i = last_at_or_below(lo, hi, t, key);
    i.and_then(|i| offset_entry(bytes, i, v))
}

/// The last of the first `n` time entries with `ts < target`: reading may
/// start at its offset, since every earlier record is older than `target`.
pub(crate) fn lookup_time(bytes: &[u8], n: usize, target: i64, v: Version) -> Option<TimeEntry> {
    // Map i64 onto u64 preserving order, and search for ts <= target - 1.
    let bound = target.checked_sub(1)?;
    let key = |i: usize| time_entry(bytes, i, v).map_or(u64::MAX, |e| (e.ts as u64) ^ (1 << 63));
    last_at_or_below(0, n, (bound as u64) ^ (1 << 63), key).and_then(|i| time_entry(bytes, i, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Version::{V1, V2};

    fn offsets(entries: &[(u32, u32)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(rel, pos)| OffsetEntry { rel, pos }.encode(V1))
            .collect()
    }

    #[test]
    fn pins_entry_bytes() {
        assert_eq!(
            OffsetEntry {
                rel: 1,
                pos: 0x0102
            }
            .encode(V1),
            [1, 0, 0, 0, 0x02, 0x01, 0, 0]
        );
        assert_eq!(
            TimeEntry { ts: -1, rel: 2 }.encode(V1),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0]
        );
    }

    #[test]
    fn zero_fill_is_never_an_entry() {
        assert_eq!(valid_offset_entries(&[0u8; 4096], V1), 0);
        assert_eq!(valid_time_entries(&[0u8; 4096], V1), 0);
        let mut b = offsets(&[(3, 100), (9, 250)]);
        b.extend_from_slice(&[0u8; 800]);
        assert_eq!(valid_offset_entries(&b, V1), 2);
        // A torn final entry is ignored too.
        let b = &offsets(&[(3, 100), (9, 250)])[..12];
        assert_eq!(valid_offset_entries(b, V1), 1);
        // Non-increasing entries end the valid prefix.
        assert_eq!(valid_offset_entries(&offsets(&[(3, 100), (3, 200)]), V1), 1);
        assert_eq!(valid_offset_entries(&offsets(&[(3, 100), (4, 100)]), V1), 1);
    }

    #[test]
    fn lookup_matches_a_linear_scan() {
        for n in [
            0usize,
            1,
            2,
            5,
            WARM_OFFSET_ENTRIES - 1,
            WARM_OFFSET_ENTRIES,
            WARM_OFFSET_ENTRIES + 7,
            3000,
        ] {
            let entries: Vec<(u32, u32)> = (1..=n as u32).map(|i| (i * 10, i * 100)).collect();
            let b = offsets(&entries);
            for target in [
                0u32,
                5,
                10,
                11,
                15,
                20,
                9999,
                10 * n as u32,
                10 * n as u32 + 3,
                u32::MAX,
            ] {
                let want = entries.iter().rev().find(|e| e.0 <= target).copied();
                let got = lookup_offset(&b, n, target, V1).map(|e| (e.rel, e.pos));
                assert_eq!(got, want, "n={n} target={target}");
            }
        }
    }

    #[test]
    fn time_lookup_finds_last_entry_strictly_below() {
        let b: Vec<u8> = [(-5i64, 1u32), (10, 4), (20, 9)]
            .iter()
            .flat_map(|&(ts, rel)| TimeEntry { ts, rel }.encode(V1))
            .collect();
        assert_eq!(valid_time_entries(&b, V1), 3);
        assert_eq!(lookup_time(&b, 3, -5, V1), None);
        assert_eq!(lookup_time(&b, 3, -4, V1).map(|e| e.rel), Some(1));
        assert_eq!(lookup_time(&b, 3, 10, V1).map(|e| e.rel), Some(1));
        assert_eq!(lookup_time(&b, 3, 11, V1).map(|e| e.rel), Some(4));
        assert_eq!(lookup_time(&b, 3, i64::MAX, V1).map(|e| e.rel), Some(9));
        assert_eq!(lookup_time(&b, 3, i64::MIN, V1), None);
    }

    /// Kafka's layouts (FORMAT.md §4): big-endian, offset then position,
    /// timestamp then offset.
    #[test]
    fn pins_v2_entry_bytes() {
        assert_eq!(
            OffsetEntry {
                rel: 1,
                pos: 0x0102
            }
            .encode(V2),
            [0, 0, 0, 1, 0, 0, 0x01, 0x02]
        );
        assert_eq!(
            TimeEntry { ts: 0x0102, rel: 2 }.encode(V2),
            [0, 0, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 2]
        );
    }

    #[test]
    fn v2_time_entries_follow_kafkas_rules() {
        let enc = |es: &[(i64, u32)]| -> Vec<u8> {
            es.iter()
                .flat_map(|&(ts, rel)| TimeEntry { ts, rel }.encode(V2))
                .collect()
        };
        // A first entry at relative offset 0 is valid; zero fill is not.
        assert_eq!(valid_time_entries(&enc(&[(5, 0), (9, 3)]), V2), 2);
        assert_eq!(valid_time_entries(&[0u8; 240], V2), 0);
        // Timestamps strictly increase; negative ones are never indexed.
        assert_eq!(valid_time_entries(&enc(&[(5, 1), (5, 3)]), V2), 1);
        assert_eq!(valid_time_entries(&enc(&[(-1, 1)]), V2), 0);
        // Relative offsets past i32 are not Kafka's.
        assert_eq!(valid_time_entries(&enc(&[(5, 1 << 31)]), V2), 0);
        let mut o: Vec<u8> = OffsetEntry {
            rel: 1 << 31,
            pos: 9,
        }
        .encode(V2)
        .to_vec();
        assert_eq!(valid_offset_entries(&o, V2), 0);
        o = OffsetEntry { rel: 4, pos: 9 }.encode(V2).to_vec();
        assert_eq!(valid_offset_entries(&o, V2), 1);
    }
}
