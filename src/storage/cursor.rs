//! [`IndexCursor`]: the one rule for where index entries go, shared by
//! the append path and by index rebuilds, so both produce identical
//! indexes.
//!
//! The rule depends on the segment's layout (FORMAT.md §4):
//! - **v2, Kafka's** (`LogSegment.append`/`recover`): before a batch at
//!   position `p`, when more than `index_interval_bytes` were written since
//!   the last entry (`p − last > interval`), an offset entry `(the batch's
//!   last offset, p)`; and, if the largest timestamp so far (this batch
//!   included) grew past the last time entry's, a time entry `(that
//!   timestamp, the last offset of the first batch that reached it)`. At
//!   roll, one more time entry of the same kind if the largest timestamp
//!   grew since. Timestamps below 0 are never indexed, nor timestamp 0 at
//!   relative offset 0 (the entry `(0, 0)` reads as zero fill).
//! - **v1**: before a batch at `p > 0` when `p − last ≥ interval`, an
//!   offset entry `(the batch's first offset, p)` and, if the largest
//!   timestamp of the batches before grew, a time entry `(it, the batch's
//!   first offset)`; at roll `(largest timestamp, next offset)`.

use crate::format::batch::Version;
use crate::format::index::{OffsetEntry, TimeEntry};

/// Decides where index entries go. Shared by the append path and by index
/// rebuilds, so both produce identical indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexCursor {
    version: Version,
    interval: u64,
    last_pos: u64,
    last_time_ts: Option<i64>,
    /// The largest timestamp of the batches seen so far.
    pub max_ts: i64,
    /// v2: the relative last offset of the first batch that reached
    /// `max_ts`.
    max_rel: u32,
    /// The base timestamp of the segment's first batch.
    pub first_ts: Option<i64>,
}

impl IndexCursor {
    pub fn new(interval: u64, version: Version) -> Self {
        IndexCursor {
            version,
            interval,
            last_pos: 0,
            last_time_ts: None,
            max_ts: i64::MIN,
            max_rel: 0,
            first_ts: None,
        }
    }

    /// The layout whose rule the cursor follows.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The state a v1 cursor had just before the batch at `pos` was placed,
    /// when the previous offset entry was at `last_pos`, the batches
    /// before `pos` had `max_ts` as their largest timestamp, the last time
    /// entry so far held `last_time_ts`, and the first batch had `first_ts`.
    /// See `storage::recovery::tail` for how recovery derives these from an index.
    pub fn resume_v1(
        interval: u64,
        last_pos: u64,
        max_ts: i64,
        last_time_ts: Option<i64>,
        first_ts: i64,
    ) -> Self {
        IndexCursor {
            version: Version::V1,
            interval,
            last_pos,
            last_time_ts,
            max_ts,
            max_rel: 0,
            first_ts: Some(first_ts),
        }
    }

    /// The state a v2 cursor has just after placing the batch at
    /// `last_pos` (an index point), when the last time entry so far is
    /// `(max_ts, max_rel)` and the first batch had `first_ts`. See
    /// `storage::recovery::tail`.
    pub fn resume_v2(
        interval: u64,
        last_pos: u64,
        max_ts: i64,
        max_rel: u32,
        first_ts: i64,
    ) -> Self {
        IndexCursor {
            version: Version::V2,
            interval,
            last_pos,
            last_time_ts: Some(max_ts),
            max_ts,
            max_rel,
            first_ts: Some(first_ts),
        }
    }

    /// Accounts for a batch written at `pos` with relative first and last
    /// offsets `first_rel`, `last_rel` and base and largest timestamps
    /// `base_ts`, `max_ts`; returns the entries to write before it.
    #[inline]
    pub fn place(
        &mut self,
        pos: u64,
        first_rel: u32,
        last_rel: u32,
        base_ts: i64,
        max_ts: i64,
    ) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        self.first_ts.get_or_insert(base_ts);
        match self.version {
            Version::V1 => {
                let entries = self.v1_entries(pos, first_rel);
                self.max_ts = self.max_ts.max(max_ts);
                entries
            }
            Version::V2 => {
                if max_ts > self.max_ts {
                    self.max_ts = max_ts;
                    self.max_rel = last_rel;
                }
                if pos == 0 || pos - self.last_pos <= self.interval {
                    return (None, None);
                }
                self.last_pos = pos;
                let off = OffsetEntry {
                    rel: last_rel,
                    pos: pos as u32,
                };
                (Some(off), self.v2_time_entry())
            }
        }
    }

    fn v1_entries(&mut self, pos: u64, rel: u32) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        if pos == 0 || pos - self.last_pos < self.interval {
            return (None, None);
        }
        self.last_pos = pos;
        let off = OffsetEntry {
            rel,
            pos: pos as u32,
        };
        let time = if self.max_ts != i64::MIN && self.last_time_ts.is_none_or(|t| self.max_ts > t) {
            self.last_time_ts = Some(self.max_ts);
            Some(TimeEntry {
                ts: self.max_ts,
                rel,
            })
        } else {
            None
        };
        (Some(off), time)
    }

    /// v2: the time entry for the largest timestamp so far, if it grew
    /// past the last one (and is not negative: Kafka's index starts from
    /// "no timestamp", −1).
    ///
    /// One entry Kafka would write is left out: `(0, 0)`, timestamp 0 at
    /// the segment's first offset. It reads as zero fill (FORMAT.md §4.2),
    /// and it tells a lookup nothing that starting at the segment's first
    /// batch does not, so the segment is indexed as if its timestamps
    /// were all negative until a larger one arrives.
    fn v2_time_entry(&mut self) -> Option<TimeEntry> {
        if self.max_ts < 0
            || (self.max_ts, self.max_rel) == (0, 0)
            || self.last_time_ts.is_some_and(|t| self.max_ts <= t)
        {
            return None;
        }
        self.last_time_ts = Some(self.max_ts);
        Some(TimeEntry {
            ts: self.max_ts,
            rel: self.max_rel,
        })
    }

    /// The time entry that sealing the segment appends, given its next
    /// offset relative to its base: v1 `(largest timestamp, next)` for a
    /// non-empty segment; v2 as at an index point. Marks it written.
    pub fn seal_entry(&mut self, next_rel: u32) -> Option<TimeEntry> {
        match self.version {
            Version::V1 => (next_rel > 0).then_some(TimeEntry {
                ts: self.max_ts,
                rel: next_rel,
            }),
            Version::V2 => self.v2_time_entry(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_cursor_indexes_every_interval_and_never_position_zero() {
        let mut c = IndexCursor::new(100, Version::V1);
        assert_eq!(c.place(0, 0, 0, 5, 5), (None, None));
        assert_eq!(c.place(60, 1, 1, 7, 9), (None, None));
        let (o, t) = c.place(120, 2, 2, 1, 1);
        assert_eq!(o, Some(OffsetEntry { rel: 2, pos: 120 }));
        assert_eq!(t, Some(TimeEntry { ts: 9, rel: 2 }));
        // The max timestamp did not grow: no new time entry.
        let (o, t) = c.place(220, 3, 3, 1, 1);
        assert_eq!(o, Some(OffsetEntry { rel: 3, pos: 220 }));
        assert_eq!(t, None);
        assert_eq!(c.seal_entry(4), Some(TimeEntry { ts: 9, rel: 4 }));
    }

    /// Kafka's rule: strictly more than the interval since the last entry,
    /// the batch's last offset, the current batch's timestamp counted.
    #[test]
    fn v2_cursor_follows_kafkas_rule() {
        let mut c = IndexCursor::new(100, Version::V2);
        assert_eq!(c.place(0, 0, 1, 5, 8), (None, None));
        // Exactly the interval: no entry yet.
        assert_eq!(c.place(100, 2, 4, 9, 9), (None, None));
        let (o, t) = c.place(150, 5, 6, 3, 20);
        assert_eq!(o, Some(OffsetEntry { rel: 6, pos: 150 }));
        assert_eq!(t, Some(TimeEntry { ts: 20, rel: 6 }));
        // An older batch: offset entry, no time entry.
        let (o, t) = c.place(300, 7, 9, 1, 2);
        assert_eq!(o, Some(OffsetEntry { rel: 9, pos: 300 }));
        assert_eq!(t, None);
        // The max grows between index points: the seal entry names the
        // first batch that reached it.
        assert_eq!(c.place(350, 10, 10, 30, 30), (None, None));
        assert_eq!(c.place(360, 11, 12, 30, 30), (None, None));
        assert_eq!(c.seal_entry(13), Some(TimeEntry { ts: 30, rel: 10 }));
        assert_eq!(c.seal_entry(13), None);
        // Negative timestamps are never indexed.
        let mut c = IndexCursor::new(0, Version::V2);
        assert_eq!(
            c.place(10, 1, 1, -5, -5),
            (Some(OffsetEntry { rel: 1, pos: 10 }), None)
        );
        assert_eq!(c.seal_entry(2), None);
    }

    /// Timestamp 0 at relative offset 0 is not indexed: the entry would
    /// read as zero fill. Any larger timestamp is, as usual.
    #[test]
    fn v2_cursor_never_writes_the_entry_zero_zero() {
        let mut c = IndexCursor::new(0, Version::V2);
        assert_eq!(c.place(0, 0, 0, 0, 0), (None, None));
        assert_eq!(
            c.place(70, 1, 1, 0, 0),
            (Some(OffsetEntry { rel: 1, pos: 70 }), None)
        );
        assert_eq!(c.seal_entry(2), None);
        let (_, t) = c.place(140, 2, 2, 7, 7);
        assert_eq!(t, Some(TimeEntry { ts: 7, rel: 2 }));
        // Timestamp 0 at a later offset is an ordinary entry.
        let mut c = IndexCursor::new(0, Version::V2);
        c.place(0, 0, 0, -1, -1);
        assert_eq!(c.place(70, 1, 1, 0, 0).1, Some(TimeEntry { ts: 0, rel: 1 }));
    }
}
