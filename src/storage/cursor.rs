//! [`IndexCursor`]: the one rule for where index entries go, shared by
//! the append path and by index rebuilds, so both produce identical
//! indexes.

use crate::format::index::{OffsetEntry, TimeEntry};

/// Decides where index entries go. Shared by the append path and by index
/// rebuilds, so both produce identical indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexCursor {
    interval: u64,
    last_pos: u64,
    last_time_ts: Option<i64>,
    /// The largest timestamp of the batches seen so far.
    pub max_ts: i64,
    /// The base timestamp of the segment's first batch.
    pub first_ts: Option<i64>,
}

impl IndexCursor {
    pub fn new(interval: u64) -> Self {
        IndexCursor {
            interval,
            last_pos: 0,
            last_time_ts: None,
            max_ts: i64::MIN,
            first_ts: None,
        }
    }

    /// The state a cursor had just before the batch at `pos` was placed,
    /// when the previous offset entry was at `last_pos`, the batches
    /// before `pos` had `max_ts` as their largest timestamp, the last time
    /// entry so far held `last_time_ts`, and the first batch had `first_ts`.
    /// See `storage::recovery::tail` for how recovery derives these from an index.
    pub fn resume(
        interval: u64,
        last_pos: u64,
        max_ts: i64,
        last_time_ts: Option<i64>,
        first_ts: i64,
    ) -> Self {
        IndexCursor {
            interval,
            last_pos,
            last_time_ts,
            max_ts,
            first_ts: Some(first_ts),
        }
    }

    /// The entries to add before a batch is written at `pos` with relative
    /// offset `rel`.
    pub fn before_batch(&mut self, pos: u64, rel: u32) -> (Option<OffsetEntry>, Option<TimeEntry>) {
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

    /// Accounts for a written batch.
    pub fn after_batch(&mut self, base_ts: i64, max_ts: i64) {
        self.max_ts = self.max_ts.max(max_ts);
        self.first_ts.get_or_insert(base_ts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_indexes_every_interval_and_never_position_zero() {
        let mut c = IndexCursor::new(100);
        assert_eq!(c.before_batch(0, 0), (None, None));
        c.after_batch(5, 5);
        assert_eq!(c.before_batch(60, 1), (None, None));
        c.after_batch(7, 9);
        let (o, t) = c.before_batch(120, 2);
        assert_eq!(o, Some(OffsetEntry { rel: 2, pos: 120 }));
        assert_eq!(t, Some(TimeEntry { ts: 9, rel: 2 }));
        c.after_batch(1, 1);
        // The max timestamp did not grow: no new time entry.
        let (o, t) = c.before_batch(220, 3);
        assert_eq!(o, Some(OffsetEntry { rel: 3, pos: 220 }));
        assert_eq!(t, None);
    }
}
