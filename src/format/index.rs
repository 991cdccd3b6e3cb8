//! Offset-index and time-index entries: encoding, validation and search over
//! raw bytes. Pure functions; the files themselves belong to `storage::segment`
//! (appends, lookups) and `storage::recovery` (checks and rebuilds).
//!
//! Both indexes are sparse and never hold an entry for a segment's first
//! batch, so every valid entry has a non-zero relative offset. Relative
//! offsets (and file positions) strictly increase; timestamps never
//! decrease. The valid part of an index is therefore its longest such
//! prefix: a zero-filled (preallocated) tail is never mistaken for entries,
//! whatever the file size.

/// Bytes per offset-index entry: relative offset (u32), file position (u32).
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes per time-index entry: timestamp (i64), relative offset (u32).
pub(crate) const TIME_ENTRY_LEN: usize = 12;

/// How many trailing entries form the "warm section" searched first: 8 KiB
/// worth, so a caught-up reader touches only recently written pages.
pub(crate) const WARM_OFFSET_ENTRIES: usize = 8192 / OFFSET_ENTRY_LEN;

/// One offset-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel: u32,
    pub pos: u32,
}

/// One time-index entry: every record of the segment whose offset is below
/// `base + rel` has a timestamp `<= ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub ts: i64,
    pub rel: u32,
}

impl OffsetEntry {
    pub fn encode(&self) -> [u8; OFFSET_ENTRY_LEN] {
        let mut b = [0u8; OFFSET_ENTRY_LEN];
        b[..4].copy_from_slice(&self.rel.to_le_bytes());
        b[4..].copy_from_slice(&self.pos.to_le_bytes());
        b
    }
}

impl TimeEntry {
    pub fn encode(&self) -> [u8; TIME_ENTRY_LEN] {
        let mut b = [0u8; TIME_ENTRY_LEN];
        b[..8].copy_from_slice(&self.ts.to_le_bytes());
        b[8..].copy_from_slice(&self.rel.to_le_bytes());
        b
    }
}

/// Reads offset entry `i`. Callers keep `i` below `bytes.len() / 8`.
#[inline]
pub(crate) fn offset_entry(bytes: &[u8], i: usize) -> Option<OffsetEntry> {
    let e = bytes.get(i * OFFSET_ENTRY_LEN..(i + 1) * OFFSET_ENTRY_LEN)?;
    let mut r = [0u8; 4];
    let mut p = [0u8; 4];
    r.copy_from_slice(&e[..4]);
    p.copy_from_slice(&e[4..]);
    Some(OffsetEntry {
        rel: u32::from_le_bytes(r),
        pos: u32::from_le_bytes(p),
    })
}

/// Reads time entry `i`.
#[inline]
pub(crate) fn time_entry(bytes: &[u8], i: usize) -> Option<TimeEntry> {
    let e = bytes.get(i * TIME_ENTRY_LEN..(i + 1) * TIME_ENTRY_LEN)?;
    let mut t = [0u8; 8];
    let mut r = [0u8; 4];
    t.copy_from_slice(&e[..8]);
    r.copy_from_slice(&e[8..]);
    Some(TimeEntry {
        ts: i64::from_le_bytes(t),
        rel: u32::from_le_bytes(r),
    })
}

/// The number of leading offset entries that are valid: non-zero and
/// strictly increasing in both fields.
pub(crate) fn valid_offset_entries(bytes: &[u8]) -> usize {
    let mut prev = OffsetEntry { rel: 0, pos: 0 };
    let mut n = 0;
    while let Some(e) = offset_entry(bytes, n) {
        if e.rel <= prev.rel || e.pos <= prev.pos {
            break;
        }
        prev = e;
        n += 1;
    }
    n
}

/// The number of leading time entries that are valid: a non-zero relative
/// offset that strictly increases, and a timestamp that never decreases
/// (the seal entry may repeat the previous timestamp).
pub(crate) fn valid_time_entries(bytes: &[u8]) -> usize {
    let mut prev: Option<TimeEntry> = None;
    let mut n = 0;
    while let Some(e) = time_entry(bytes, n) {
        let ok = match prev {
            None => e.rel > 0,
            Some(p) => e.rel > p.rel && e.ts >= p.ts,
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
pub(crate) fn lookup_offset(bytes: &[u8], n: usize, target: u32) -> Option<OffsetEntry> {
    let key = |i: usize| offset_entry(bytes, i).map_or(u64::MAX, |e| u64::from(e.rel));
    let warm_start = n.saturating_sub(WARM_OFFSET_ENTRIES);
    let t = u64::from(target);
    let (lo, hi) = if warm_start > 0 && key(warm_start) > t {
        (0, warm_start)
    } else {
        (warm_start, n)
    };
    let i = last_at_or_below(lo, hi, t, key);
    i.and_then(|i| offset_entry(bytes, i))
}

/// The last of the first `n` time entries with `ts < target`: reading may
/// start at its offset, since every earlier record is older than `target`.
pub(crate) fn lookup_time(bytes: &[u8], n: usize, target: i64) -> Option<TimeEntry> {
    // Map i64 onto u64 preserving order, and search for ts <= target - 1.
    let bound = target.checked_sub(1)?;
    let key = |i: usize| time_entry(bytes, i).map_or(u64::MAX, |e| (e.ts as u64) ^ (1 << 63));
    last_at_or_below(0, n, (bound as u64) ^ (1 << 63), key).and_then(|i| time_entry(bytes, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(u32, u32)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(rel, pos)| OffsetEntry { rel, pos }.encode())
            .collect()
    }

    #[test]
    fn pins_entry_bytes() {
        assert_eq!(
            OffsetEntry {
                rel: 1,
                pos: 0x0102
            }
            .encode(),
            [1, 0, 0, 0, 0x02, 0x01, 0, 0]
        );
        assert_eq!(
            TimeEntry { ts: -1, rel: 2 }.encode(),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0]
        );
    }

    #[test]
    fn zero_fill_is_never_an_entry() {
        assert_eq!(valid_offset_entries(&[0u8; 4096]), 0);
        assert_eq!(valid_time_entries(&[0u8; 4096]), 0);
        let mut b = offsets(&[(3, 100), (9, 250)]);
        b.extend_from_slice(&[0u8; 800]);
        assert_eq!(valid_offset_entries(&b), 2);
        // A torn final entry is ignored too.
        let b = &offsets(&[(3, 100), (9, 250)])[..12];
        assert_eq!(valid_offset_entries(b), 1);
        // Non-increasing entries end the valid prefix.
        assert_eq!(valid_offset_entries(&offsets(&[(3, 100), (3, 200)])), 1);
        assert_eq!(valid_offset_entries(&offsets(&[(3, 100), (4, 100)])), 1);
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
                let got = lookup_offset(&b, n, target).map(|e| (e.rel, e.pos));
                assert_eq!(got, want, "n={n} target={target}");
            }
        }
    }

    #[test]
    fn time_lookup_finds_last_entry_strictly_below() {
        let b: Vec<u8> = [(-5i64, 1u32), (10, 4), (20, 9)]
            .iter()
            .flat_map(|&(ts, rel)| TimeEntry { ts, rel }.encode())
            .collect();
        assert_eq!(valid_time_entries(&b), 3);
        assert_eq!(lookup_time(&b, 3, -5), None);
        assert_eq!(lookup_time(&b, 3, -4).map(|e| e.rel), Some(1));
        assert_eq!(lookup_time(&b, 3, 10).map(|e| e.rel), Some(1));
        assert_eq!(lookup_time(&b, 3, 11).map(|e| e.rel), Some(4));
        assert_eq!(lookup_time(&b, 3, i64::MAX).map(|e| e.rel), Some(9));
        assert_eq!(lookup_time(&b, 3, i64::MIN), None);
    }
}
