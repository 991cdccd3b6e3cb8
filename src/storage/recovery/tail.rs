//! Recovering the active segment after a process crash on the same boot,
//! without walking it from its first byte.
//!
//! Both layouts resume; v1 segments as described below, v2 segments
//! (Kafka's index rule) by [`try_entry_v2`], which resumes after the batch
//! of entry `c - 1` instead of at it.
//!
//! # Why the index can be trusted
//!
//! A kill -9 (or a panic with `panic = "abort"`) ends the process but not
//! the kernel: the page cache still holds every byte the process stored,
//! synced or not, in the order it stored them, except that the one store in
//! flight may have landed only in part. The log directory's session marker
//! (FORMAT.md §9.1) tells recovery that the previous run was on this boot.
//!
//! The append path stores, per batch: the offset-index entry (if one is
//! due), then the time-index entry (if due), then the batch. One writer per
//! partition, append-only files. So if the batch that offset entry `c`
//! names decodes whole (CRC included) with the offset the entry gives, then
//! entries `0..=c`, every time entry placed with them, and every batch
//! before that position were stored completely before it — nothing before
//! it needs validating again (the scan resumes one entry earlier, see
//! below). Index files are created empty and grow by zero-filled
//! preallocation, so bytes never stored read as zero. They are rebuilt at open with
//! the time index written before the offset index (see `open_scanned`), so
//! offset entries found in a rebuilt index also imply a whole time index.
//!
//! # What can still be wrong, and how it is caught
//!
//! - *The last offset entry is the torn store*: part of a real entry can
//!   still be non-zero and increasing. The resumed scan therefore starts one
//!   entry earlier, at `c - 1` (stored whole before entry `c` was begun), so
//!   entry `c` only marks how far the first check reaches: the scan must
//!   place entries `c - 1` and `c`, and the time entries between them,
//!   exactly as the index has them — which also refuses an index out of step
//!   with its log for any other reason.
//! - *The last time entry is the torn store*, with a rel that looks like an
//!   older entry's: its visible bytes are a subset of the real entry's, the
//!   rest still zero from preallocation, and its real rel is the segment's
//!   end as the scan finds it (see [`torn_time_slot`]). Such a suspect slot
//!   is not used: the scan resumes below the offset entry it names instead.
//! - Anything else (damage, an index out of step) fails the same checks, and
//!   after [`TRIES`] candidates the caller scans the segment from byte 0.
//!
//! The cursor is rebuilt from the index: see [`cursor_before`]. The tests
//! below kill a simulated writer at every store, torn at random bytes, and
//! check that whenever a resumed scan is used it equals the scan from byte
//! 0 in every respect (end, stop, index entries, cursor).

use super::scan::{Scan, Stop};
use crate::format::batch::{decode_batch, version_of, Version};
use crate::format::index::{
    offset_entry, time_entry, valid_offset_entries, valid_time_entries, OffsetEntry, TimeEntry,
    OFFSET_ENTRY_LEN, TIME_ENTRY_LEN,
};
use crate::storage::cursor::IndexCursor;
use crate::storage::segment::entry_matches;

/// How many index entries are tried as resume points before giving up.
pub(crate) const TRIES: usize = 3;

/// The three files of the active segment as mapped at open: the log up to
/// its file length, and both index files whole (zero tail included).
pub(crate) struct Files<'a> {
    pub log: &'a [u8],
    pub offsets: &'a [u8],
    pub times: &'a [u8],
    /// Whether the log's bytes from a position on are all zero.
    pub zeros_from: &'a dyn Fn(usize) -> bool,
    /// Whether batches must follow each other exactly (`Scan::exact`).
    pub exact: bool,
}

/// A scan of the segment that resumed at `from`: its index vectors hold the
/// kept entries below `from` followed by those the scan placed, exactly as a
/// scan from byte 0 would have them.
pub(crate) struct Resumed {
    pub scan: Scan,
    pub from: u64,
}

/// Why a candidate entry was not used.
enum Reject {
    /// Try the entry below.
    Next,
    /// Try only entries whose rel is below this one (a suspect time slot).
    Below(u32),
}

/// Scans the active segment from one of its last index entries to its end.
/// `None` when no entry qualifies: the caller scans from byte 0.
pub(crate) fn resume(files: &Files<'_>, base: u64, interval: u64) -> Option<Resumed> {
    let v = version_of(files.log);
    let n = valid_offset_entries(files.offsets, v);
    let m = valid_time_entries(files.times, v);
    let first_ts = decode_batch(files.log).ok()?.base_timestamp;
    let ix = Index { files, n, m, v };
    // Candidates are entries below `hi`, tried from the top.
    let mut hi = n;
    for _ in 0..TRIES {
        let c = hi.checked_sub(1)?;
        // Entry `c - 1` is where the scan starts; from entry 0 on it would be
        // a scan from byte 0 anyway.
        if c == 0 {
            return None;
        }
        let tried = match v {
            Version::V1 => try_entry(&ix, c, base, interval, first_ts),
            Version::V2 => try_entry_v2(&ix, c, base, interval, first_ts),
        };
        match tried {
            Ok(r) => return Some(r),
            Err(Reject::Next) => hi = c,
            Err(Reject::Below(rel)) => hi = ix.offsets_below(rel).min(c),
        }
    }
    None
}

/// The valid prefixes of both indexes.
struct Index<'a> {
    files: &'a Files<'a>,
    /// Valid offset entries.
    n: usize,
    /// Valid time entries.
    m: usize,
    /// The segment's layout.
    v: Version,
}

impl Index<'_> {
    fn offset(&self, i: usize) -> Option<OffsetEntry> {
        (i < self.n)
            .then(|| offset_entry(self.files.offsets, i, self.v))
            .flatten()
    }

    fn time(&self, i: usize) -> Option<TimeEntry> {
        (i < self.m)
            .then(|| time_entry(self.files.times, i, self.v))
            .flatten()
    }

    /// How many valid time entries have a rel `<= rel`.
    fn times_up_to(&self, rel: u32) -> usize {
        partition_point(self.m, |i| self.time(i).is_some_and(|t| t.rel <= rel))
    }

    /// How many valid offset entries have a rel `< rel`.
    fn offsets_below(&self, rel: u32) -> usize {
        partition_point(self.n, |i| self.offset(i).is_some_and(|o| o.rel < rel))
    }

    /// Whether time slot `i` is the last slot anything was stored in: the
    /// slot after it holds only zero bytes (or is past the file's end). Only
    /// that slot can be a torn store.
    fn last_stored_time_slot(&self, i: usize) -> bool {
        let times = self.files.times;
        times
            .get((i + 1) * TIME_ENTRY_LEN..(i + 2) * TIME_ENTRY_LEN)
            .is_none_or(|b| b.iter().all(|&x| x == 0))
    }
}

/// The number of leading indices in `0..n` for which `pred` holds, given
/// that it holds for a prefix.
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Whether `seen` could be a torn store of `whole` over zero bytes: each of
/// its bytes is either still zero or the byte `whole` has there.
fn could_be_torn_from(seen: u32, whole: u32) -> bool {
    (0..4).all(|i| {
        let b = (seen >> (8 * i)) & 0xff;
        b == 0 || b == (whole >> (8 * i)) & 0xff
    })
}

/// The cursor just before the batch of offset entry `e` was placed, from
/// the time entries alone. A time entry is placed beside an offset entry
/// only when the largest timestamp so far has grown past the previous time
/// entry; so with `t` the time entries up to `e`:
/// - if the last of `t` sits at `e` itself, the largest timestamp then was
///   its `ts`, and the one before it (if any) was the last placed before;
/// - otherwise none was placed at `e` because the largest timestamp had not
///   grown: it equals the last of `t` (or no batch had a timestamp at all,
///   `i64::MIN`, if `t` is empty).
fn cursor_before(
    ix: &Index<'_>,
    e: OffsetEntry,
    last_pos: u64,
    interval: u64,
    first_ts: i64,
) -> IndexCursor {
    let k = ix.times_up_to(e.rel);
    let (max_ts, last_time_ts) = match k.checked_sub(1).and_then(|i| ix.time(i)) {
        None => (i64::MIN, None),
        Some(t) if t.rel == e.rel => (
            t.ts,
            k.checked_sub(2).and_then(|i| ix.time(i)).map(|p| p.ts),
        ),
        Some(t) => (t.ts, Some(t.ts)),
    };
    IndexCursor::resume_v1(interval, last_pos, max_ts, last_time_ts, first_ts)
}

/// The rel of the last time slot used (of the first `used`) if it may be a
/// torn store passing for an older entry.
///
/// A time slot is stored whole before anything after it, so only the last
/// slot with any byte stored can be torn, and only if nothing was stored
/// after it: the log then ends in zero bytes (a torn batch would mean the
/// slot before it was whole). Such a slot is either the time entry of an
/// offset entry whose batch was never stored — the scan ends right there,
/// at that entry's offset — or a seal entry, whose rel is the segment's
/// end. Either way its real rel is the end the scan found, and a torn copy
/// of it shows a subset of that rel's bytes, the others still zero.
fn torn_time_slot(ix: &Index<'_>, used: usize, scan: &Scan, base: u64) -> Option<u32> {
    let i = used.checked_sub(1)?;
    let t = ix.time(i)?;
    let end_rel = u32::try_from(scan.next_offset - base).unwrap_or(u32::MAX);
    let log_ends_in_zeros = matches!(scan.stop, None | Some(Stop::Zeros));
    (log_ends_in_zeros && ix.last_stored_time_slot(i) && could_be_torn_from(t.rel, end_rel))
        .then_some(t.rel)
}

/// Resumes at entry `c - 1`, checks that entries `c - 1` and `c` are placed
/// again exactly as stored, then scans to the end.
fn try_entry(
    ix: &Index<'_>,
    c: usize,
    base: u64,
    interval: u64,
    first_ts: i64,
) -> Result<Resumed, Reject> {
    let files = ix.files;
    let (Some(prev), Some(cand)) = (ix.offset(c - 1), ix.offset(c)) else {
        return Err(Reject::Next);
    };
    if u64::from(cand.pos) >= files.log.len() as u64 {
        return Err(Reject::Next);
    }
    // The time slots the result depends on: those up to entry `c`.
    let used = ix.times_up_to(cand.rel);
    let last_pos = match c.checked_sub(2) {
        Some(i) => ix.offset(i).map_or(0, |e| u64::from(e.pos)),
        None => 0,
    };
    let cursor = cursor_before(ix, prev, last_pos, interval, first_ts);
    let kept_offsets = (c - 1) * OFFSET_ENTRY_LEN;
    let kept_times = ix.times_up_to(prev.rel.saturating_sub(1)) * TIME_ENTRY_LEN;
    let mut scan = Scan::at(u64::from(prev.pos), base + u64::from(prev.rel), cursor);
    scan.exact = files.exact;
    // Through the batch of entry `c`: it and every batch since entry `c - 1`
    // must be whole, and the entries placed must be the stored ones.
    scan.run_checked(files.log, base, u64::from(cand.pos) + 1, files.zeros_from);
    let placed_as_stored = scan.stop.is_none()
        && scan.valid_len > u64::from(cand.pos)
        && files.offsets.get(kept_offsets..(c + 1) * OFFSET_ENTRY_LEN) == Some(&scan.offsets[..])
        && files.times.get(kept_times..used * TIME_ENTRY_LEN) == Some(&scan.times[..]);
    if !placed_as_stored {
        return Err(Reject::Next);
    }
    scan.run_checked(files.log, base, files.log.len() as u64, files.zeros_from);
    if let Some(rel) = torn_time_slot(ix, used, &scan, base) {
        return Err(Reject::Below(rel));
    }
    let kept = (&files.offsets[..kept_offsets], &files.times[..kept_times]);
    Ok(resumed(kept, scan, u64::from(prev.pos)))
}

/// A resumed scan's result: the index entries kept from the files, then
/// those the scan placed.
fn resumed((offsets, times): (&[u8], &[u8]), mut scan: Scan, from: u64) -> Resumed {
    scan.offsets.splice(0..0, offsets.iter().copied());
    scan.times.splice(0..0, times.iter().copied());
    Resumed { scan, from }
}

/// v2 (Kafka's rule, `storage::cursor`): resumes right after the batch
/// of entry `c - 1`, whose cursor state the index gives exactly, checks
/// that entry `c` and the time entries up to it are placed again exactly
/// as stored, then scans to the end.
///
/// After the batch of an index point, the largest timestamp so far is the
/// last time entry placed at or before it (one is placed whenever it grew,
/// unless it is negative), and Kafka's time entries placed at a point hold
/// a rel above the previous point's: so the time entries with rel `<=`
/// entry `c - 1`'s are exactly those placed by then. Without any (only
/// negative timestamps so far) the state is unknown and the entry is not
/// used.
///
/// A kept time slot that may be the torn last store is not kept: only
/// entries below it are tried (see [`suspect_v2`]).
fn try_entry_v2(
    ix: &Index<'_>,
    c: usize,
    base: u64,
    interval: u64,
    first_ts: i64,
) -> Result<Resumed, Reject> {
    let files = ix.files;
    let (Some(prev), Some(cand)) = (ix.offset(c - 1), ix.offset(c)) else {
        return Err(Reject::Next);
    };
    if u64::from(cand.pos) >= files.log.len() as u64 {
        return Err(Reject::Next);
    }
    let Some(batch) = files
        .log
        .get(prev.pos as usize..)
        .and_then(|b| decode_batch(b).ok())
        .filter(|h| entry_matches(ix.v, h, base, prev))
    else {
        return Err(Reject::Next);
    };
    let kept = ix.times_up_to(prev.rel);
    let Some(last) = kept.checked_sub(1).and_then(|i| ix.time(i)) else {
        return Err(Reject::Next);
    };
    let used = ix.times_up_to(cand.rel);
    let cursor = IndexCursor::resume_v2(interval, u64::from(prev.pos), last.ts, last.rel, first_ts);
    let from = u64::from(prev.pos) + batch.total_len() as u64;
    let mut scan = Scan::at(from, batch.next_offset(), cursor);
    scan.exact = files.exact;
    scan.run_checked(files.log, base, u64::from(cand.pos) + 1, files.zeros_from);
    let placed_as_stored = scan.stop.is_none()
        && scan.valid_len > u64::from(cand.pos)
        && files
            .offsets
            .get(c * OFFSET_ENTRY_LEN..(c + 1) * OFFSET_ENTRY_LEN)
            == Some(&scan.offsets[..])
        && files
            .times
            .get(kept * TIME_ENTRY_LEN..used * TIME_ENTRY_LEN)
            == Some(&scan.times[..]);
    if !placed_as_stored {
        return Err(Reject::Next);
    }
    scan.run_checked(files.log, base, files.log.len() as u64, files.zeros_from);
    if used == kept && suspect_v2(ix, kept - 1, last, &scan, base) {
        return Err(Reject::Below(last.rel));
    }
    let kept = (
        &files.offsets[..c * OFFSET_ENTRY_LEN],
        &files.times[..kept * TIME_ENTRY_LEN],
    );
    Ok(resumed(kept, scan, from))
}

/// Whether kept time slot `i` (holding `t`) may be the process's torn last
/// store rather than the entry it looks like. Only the last slot stored can
/// be torn, and only when the log ends in zero bytes (a torn batch would
/// mean the slot before it was whole). The writer stores a time entry
/// either at an index point, just before that point's batch, or when
/// sealing, after the last batch. So a torn slot is either:
/// - an index point's whose batch was never stored: then that point's
///   offset entry, stored whole just before, is the last one and names the
///   end of the log; or
/// - the seal entry: then its real value is what sealing the scanned
///   segment would store, and each visible byte is zero or that entry's.
fn suspect_v2(ix: &Index<'_>, i: usize, t: TimeEntry, scan: &Scan, base: u64) -> bool {
    let log_ends_in_zeros = matches!(scan.stop, None | Some(Stop::Zeros));
    if !(log_ends_in_zeros && ix.last_stored_time_slot(i)) {
        return false;
    }
    let unstored_point =
        ix.n.checked_sub(1)
            .and_then(|j| ix.offset(j))
            .is_some_and(|e| u64::from(e.pos) == scan.valid_len);
    let mut cursor = scan.cursor;
    let end_rel = u32::try_from(scan.next_offset - base).unwrap_or(u32::MAX);
    let torn_seal = cursor.seal_entry(end_rel).is_some_and(|seal| {
        let (seen, whole) = (t.encode(ix.v), seal.encode(ix.v));
        seen.iter().zip(&whole).all(|(s, w)| *s == 0 || s == w)
    });
    unstored_point || torn_seal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::batch::{encode_record, v1, EncodeRecord, EncodedBatch};
    use crate::storage::recovery::scan::{all_zero, scan_segment};

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    #[derive(Clone, Copy)]
    enum File {
        Log,
        Offsets,
        Times,
    }

    /// Every store the append path makes for a segment of random batches,
    /// in order: (file, position, bytes).
    fn writer_stores(
        rng: &mut Rng,
        base: u64,
        interval: u64,
        v: Version,
    ) -> Vec<(File, usize, Vec<u8>)> {
        let mut cursor = IndexCursor::new(interval, v);
        let (mut log_len, mut off_len, mut time_len) = (0usize, 0usize, 0usize);
        let mut next = base;
        let mut stores = Vec::new();
        let mode = rng.below(6);
        let mut clock = 1_000i64;
        // Relative offsets past 255, so that a torn copy of one (some of its
        // bytes still zero) can pass for an older, smaller one.
        let batches = 8 + rng.below(80);
        for b in 0..batches {
            let count = 1 + rng.below(24) as u32;
            let mut records = Vec::new();
            let (mut first, mut max) = (0i64, i64::MIN);
            let values: Vec<Vec<u8>> = (0..count)
                .map(|_| vec![7u8; rng.below(40) as usize])
                .collect();
            for (i, v) in values.iter().enumerate() {
                let ts = match mode {
                    0 => 5,
                    1 => {
                        clock += rng.below(3) as i64;
                        clock
                    }
                    2 => -50 + rng.below(100) as i64,
                    3 => {
                        clock -= rng.below(2) as i64;
                        clock
                    }
                    // Flat, then one jump just before the last batch: a
                    // time entry at the last offset entry only, far from
                    // the one before, the dangerous shape for a torn one.
                    4 if b + 2 == batches => 300,
                    _ => 5,
                };
                if i == 0 {
                    first = ts;
                }
                max = max.max(ts);
                records.push(EncodeRecord {
                    offset_delta: i as u32,
                    timestamp: ts,
                    key: None,
                    value: Some(v),
                    headers: &[],
                });
            }
            let rel = (next - base) as u32;
            let (o, t) = cursor.place(log_len as u64, rel, rel + count - 1, first, max);
            if let Some(o) = o {
                stores.push((File::Offsets, off_len, o.encode(v).to_vec()));
                off_len += OFFSET_ENTRY_LEN;
            }
            if let Some(t) = t {
                stores.push((File::Times, time_len, t.encode(v).to_vec()));
                time_len += TIME_ENTRY_LEN;
            }
            let bytes = match v {
                Version::V1 => v1::encode_batch(&records, next, None).unwrap(),
                Version::V2 => {
                    let mut section = EncodedBatch::section_buffer(0);
                    for r in &records {
                        encode_record(&mut section, r, first);
                    }
                    let mut b =
                        EncodedBatch::new(section, count, count - 1, first, max, None).unwrap();
                    b.seal(next).to_vec()
                }
            };
            stores.push((File::Log, log_len, bytes.clone()));
            log_len += bytes.len();
            next += u64::from(count);
        }
        if rng.below(3) == 0 {
            // The segment was being sealed: its final time entry.
            if let Some(seal) = cursor.seal_entry((next - base) as u32) {
                stores.push((File::Times, time_len, seal.encode(v).to_vec()));
            }
        }
        stores
    }

    /// A process killed at any store, that store torn at any bytes (a
    /// prefix, or any subset): whenever the resumed scan is used, it must
    /// be exactly the scan from byte 0 — same end, same stop, same index,
    /// same cursor.
    #[test]
    fn a_resumed_v1_scan_equals_a_full_scan_whatever_store_was_torn() {
        resumed_equals_full(Version::V1);
    }

    #[test]
    fn a_resumed_v2_scan_equals_a_full_scan_whatever_store_was_torn() {
        resumed_equals_full(Version::V2);
    }

    fn resumed_equals_full(v: Version) {
        let (mut resumed, mut cases) = (0u64, 0u64);
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let base = 1000;
            let interval = 32 + rng.below(400);
            let stores = writer_stores(&mut rng, base, interval, v);
            let size = |f: u8| {
                stores
                    .iter()
                    .filter(|s| s.0 as u8 == f)
                    .map(|s| s.1 + s.2.len())
                    .max()
                    .unwrap_or(0)
                    + 4096
            };
            for crash in 0..=stores.len() {
                let mut files = [vec![0u8; size(0)], vec![0u8; size(1)], vec![0u8; size(2)]];
                for (i, (f, pos, bytes)) in stores.iter().enumerate().take(crash + 1) {
                    let dst = &mut files[*f as usize][*pos..*pos + bytes.len()];
                    if i < crash {
                        dst.copy_from_slice(bytes);
                        continue;
                    }
                    let prefix = rng.below(2) == 0;
                    let cut = rng.below(bytes.len() as u64 + 1) as usize;
                    for (j, (d, b)) in dst.iter_mut().zip(bytes).enumerate() {
                        if (prefix && j < cut) || (!prefix && rng.below(2) == 0) {
                            *d = *b;
                        }
                    }
                }
                let [log, offsets, times] = &files;
                let full = scan_segment(log, base, interval);
                let f = Files {
                    log,
                    offsets,
                    times,
                    zeros_from: &|p| all_zero(&log[p..]),
                    exact: false,
                };
                cases += 1;
                let Some(r) = resume(&f, base, interval) else {
                    continue;
                };
                resumed += 1;
                let what = format!("seed {seed}, crash at store {crash} of {}", stores.len());
                assert_eq!(r.scan.valid_len, full.valid_len, "{what}");
                assert_eq!(r.scan.next_offset, full.next_offset, "{what}");
                assert_eq!(r.scan.stop, full.stop, "{what}");
                assert_eq!(r.scan.cursor, full.cursor, "{what}");
                assert_eq!(r.scan.offsets, full.offsets, "{what}: offset index");
                assert_eq!(r.scan.times, full.times, "{what}: time index");
                assert!(r.from > 0 && r.from < full.valid_len.max(1), "{what}");
            }
        }
        // Most crash points leave a usable index entry.
        assert!(resumed * 2 > cases, "resumed {resumed} of {cases}");
    }

    #[test]
    fn torn_copies_keep_or_zero_each_byte() {
        assert!(could_be_torn_from(0, 0x0102_0304));
        assert!(could_be_torn_from(0x0000_0304, 0x0102_0304));
        assert!(could_be_torn_from(0x0100_0004, 0x0102_0304));
        assert!(could_be_torn_from(0x0102_0304, 0x0102_0304));
        assert!(!could_be_torn_from(0x0000_0305, 0x0102_0304));
        assert!(!could_be_torn_from(0x0001_0000, 0x0102_0304));
    }

    #[test]
    fn partition_point_counts_the_true_prefix() {
        assert_eq!(partition_point(0, |_| true), 0);
        assert_eq!(partition_point(5, |i| i < 3), 3);
        assert_eq!(partition_point(5, |_| true), 5);
        assert_eq!(partition_point(5, |_| false), 0);
    }
}
