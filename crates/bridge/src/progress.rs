//! The mirror's progress records and the source→target offset map.
//!
//! A mirror writes its progress into a compacted topic on the side it
//! copies to, in the same transaction as the records it copied (Kafka
//! Connect's exactly-once source pattern, KIP-618). Two kinds of record,
//! both plain text so that any Kafka tool can read them:
//!
//! - `pos/<topic>/<partition>` → `<next source offset>`: where the copy of
//!   that partition resumes. Compaction keeps the newest.
//! - `sync/<topic>/<partition>/<source offset>` → `<target offset> <count>`
//!   (Log → Kafka only): a *run* of `count` source records at consecutive
//!   source offsets from `<source offset>` that landed at consecutive
//!   target offsets from `<target offset>`. Every key is new, so
//!   compaction keeps every run: together they map any source offset the
//!   mirror copied to the target offset of the same record, which is what
//!   translating a group's committed offset needs.
//! - `sync/<topic>/<partition>/<source offset>` → null (a tombstone): the
//!   run was pruned. Every mirror transaction ends a run (its commit
//!   marker takes a target offset), so runs would grow with the
//!   mirror's lifetime; a run whose records all lie below the source
//!   partition's log start offset (retention deleted them, so no source
//!   consumer can read them again) is deleted, except a partition's
//!   newest. The runs kept grow with the source's retained data, not with
//!   time.
//!
//! Topic names cannot hold `/` (Kafka allows `[a-zA-Z0-9._-]`, streamlog
//! the same), so the keys split unambiguously.

use std::collections::{BTreeMap, HashMap};

use streamlog::TopicPartition;

/// The key of a partition's position record.
pub fn position_key(tp: &TopicPartition) -> String {
    format!("pos/{}/{}", tp.topic, tp.partition)
}

/// The key of a run's sync record.
pub fn sync_key(tp: &TopicPartition, source_first: u64) -> String {
    format!("sync/{}/{}/{source_first}", tp.topic, tp.partition)
}

/// What one progress record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The next source offset of a partition.
    Position(TopicPartition, u64),
    /// A run of copied records (see the module docs).
    Sync(TopicPartition, Run),
    /// The run of this partition starting at this source offset was
    /// pruned.
    Pruned(TopicPartition, u64),
}

/// Decodes a progress record; `None` for a record that is not one (a
/// position's tombstone, or a key of another kind), which a reader skips.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<Progress> {
    let key = std::str::from_utf8(key).ok()?;
    let mut parts = key.split('/');
    let kind = parts.next()?;
    let tp = TopicPartition::new(parts.next()?, parts.next()?.parse().ok()?);
    let value = match value {
        Some(v) => Some(std::str::from_utf8(v).ok()?),
        None => None,
    };
    match kind {
        "pos" if parts.next().is_none() => Some(Progress::Position(tp, value?.parse().ok()?)),
        "sync" => {
            let source_first = parts.next()?.parse().ok()?;
            if parts.next().is_some() {
                return None;
            }
            let Some(value) = value else {
                return Some(Progress::Pruned(tp, source_first));
            };
            let (target, count) = value.split_once(' ')?;
            let run = Run {
                source_first,
                target_first: target.parse().ok()?,
                count: count.parse().ok()?,
            };
            (run.count > 0).then_some(Progress::Sync(tp, run))
        }
        _ => None,
    }
}

/// `count` records at source offsets `source_first..` that are at target
/// offsets `target_first..`, both without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The source offset of the run's first record.
    pub source_first: u64,
    /// The target offset of the run's first record.
    pub target_first: u64,
    /// How many records (at least one).
    pub count: u64,
}

impl Run {
    /// The value of its sync record.
    pub fn value(&self) -> String {
        format!("{} {}", self.target_first, self.count)
    }
}

/// Splits copied records, given as (source offset, target offset) in order,
/// into runs: a new run starts wherever either side skips an offset.
pub fn runs_of(pairs: &[(u64, u64)]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for &(s, t) in pairs {
        match runs.last_mut() {
            Some(r) if r.source_first + r.count == s && r.target_first + r.count == t => {
                r.count += 1
            }
            _ => runs.push(Run {
                source_first: s,
                target_first: t,
                count: 1,
            }),
        }
    }
    runs
}

/// Every run copied of each partition: the map from source offsets to
/// target offsets.
#[derive(Debug, Default, Clone)]
pub struct OffsetMap {
    runs: HashMap<TopicPartition, BTreeMap<u64, Run>>,
}

impl OffsetMap {
    /// Adds a run.
    pub fn insert(&mut self, tp: &TopicPartition, run: Run) {
        self.runs
            .entry(tp.clone())
            .or_default()
            .insert(run.source_first, run);
    }

    /// Translates a group's committed source offset `committed` of `tp`
    /// (the next record it would read) to the target: the target offset of
    /// the first copied record at or after `committed`, so that a consumer
    /// starting there reads exactly the records the group had not read.
    ///
    /// `copied_to` is the partition's next source offset to copy: every
    /// committed source record below it has been copied. A committed
    /// offset past it cannot be translated yet (`None`). When no copied
    /// record lies at or after `committed` (the group has read everything
    /// copied so far), the answer is one past the last copied record
    /// before it: the target holds only transaction markers after that
    /// record, which consumers skip, so the next record a consumer reads
    /// from there is the next one the mirror copies. With nothing copied
    /// at all, it is `target_start`.
    ///
    /// # Example
    /// ```
    /// use streamlog::TopicPartition;
    /// use streamlog_bridge::progress::{OffsetMap, Run};
    /// let tp = TopicPartition::new("t", 0);
    /// let mut map = OffsetMap::default();
    /// // Source 0..10 went to target 0..10 (then a marker at 10); source
    /// // 12..15 (after a gap at 10, 11) to target 11..14.
    /// map.insert(&tp, Run { source_first: 0, target_first: 0, count: 10 });
    /// map.insert(&tp, Run { source_first: 12, target_first: 11, count: 3 });
    /// assert_eq!(map.translate(&tp, 4, 15, 0), Some(4)); // a copied record
    /// assert_eq!(map.translate(&tp, 11, 15, 0), Some(11)); // in the gap: record 12 is next
    /// assert_eq!(map.translate(&tp, 15, 15, 0), Some(14)); // all read
    /// assert_eq!(map.translate(&tp, 16, 15, 0), None); // not copied yet
    /// ```
    pub fn translate(
        &self,
        tp: &TopicPartition,
        committed: u64,
        copied_to: u64,
        target_start: u64,
    ) -> Option<u64> {
        if committed > copied_to {
            return None;
        }
        let Some(runs) = self.runs.get(tp) else {
            return Some(target_start);
        };
        let before = runs.range(..committed).next_back().map(|(_, r)| r);
        if let Some(r) = before.filter(|r| committed < r.source_first + r.count) {
            return Some(r.target_first + (committed - r.source_first));
        }
        if let Some((_, next)) = runs.range(committed..).next() {
            return Some(next.target_first);
        }
        Some(before.map_or(target_start, |r| r.target_first + r.count))
    }

    /// Applies a progress record read back: a run is added, a pruned one
    /// removed; a position is ignored.
    pub fn apply(&mut self, p: &Progress) {
        match p {
            Progress::Sync(tp, run) => self.insert(tp, *run),
            Progress::Pruned(tp, first) => self.remove(tp, *first),
            Progress::Position(..) => {}
        }
    }

    /// Removes the run of `tp` that starts at source offset `source_first`.
    pub fn remove(&mut self, tp: &TopicPartition, source_first: u64) {
        if let Some(runs) = self.runs.get_mut(tp) {
            runs.remove(&source_first);
        }
    }

    /// The first source offsets of at most `max` runs of `tp` that may be
    /// pruned now that the source partition starts at `log_start`: those
    /// whose records all lie below it, oldest first, never the newest run
    /// (translating an offset past every run needs it).
    ///
    /// Translation stays exact for every offset a source consumer can
    /// still read: a group whose committed offset fell below `log_start`
    /// would be reset on the source, and translates to the first record
    /// at or after it that the map still holds.
    ///
    /// # Example
    /// ```
    /// use streamlog::TopicPartition;
    /// use streamlog_bridge::progress::{OffsetMap, Run};
    /// let tp = TopicPartition::new("t", 0);
    /// let mut map = OffsetMap::default();
    /// map.insert(&tp, Run { source_first: 0, target_first: 0, count: 10 });
    /// map.insert(&tp, Run { source_first: 10, target_first: 11, count: 10 });
    /// map.insert(&tp, Run { source_first: 20, target_first: 22, count: 10 });
    /// assert_eq!(map.prunable(&tp, 15, 100), vec![0]); // 10..20 is still readable
    /// assert_eq!(map.prunable(&tp, 30, 100), vec![0, 10]); // never the newest
    /// assert_eq!(map.prunable(&tp, 30, 1), vec![0]);
    /// ```
    pub fn prunable(&self, tp: &TopicPartition, log_start: u64, max: usize) -> Vec<u64> {
        let Some(runs) = self.runs.get(tp) else {
            return Vec::new();
        };
        let newest = runs.keys().next_back().copied();
        runs.values()
            .take_while(|r| r.source_first + r.count <= log_start)
            .map(|r| r.source_first)
            .filter(|&f| Some(f) != newest)
            .take(max)
            .collect()
    }

    /// How many runs it holds, over all partitions.
    pub fn len(&self) -> usize {
        self.runs.values().map(BTreeMap::len).sum()
    }

    /// Whether it holds no run.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let tp = TopicPartition::new("a.b-c_d", 7);
        assert_eq!(
            decode(position_key(&tp).as_bytes(), Some(b"42")),
            Some(Progress::Position(tp.clone(), 42))
        );
        let run = Run {
            source_first: 5,
            target_first: 9,
            count: 3,
        };
        assert_eq!(
            decode(sync_key(&tp, 5).as_bytes(), Some(run.value().as_bytes())),
            Some(Progress::Sync(tp.clone(), run))
        );
        assert_eq!(decode(b"pos/t/0", None), None);
        assert_eq!(
            decode(b"sync/t/0/5", None),
            Some(Progress::Pruned(TopicPartition::new("t", 0), 5))
        );
        assert_eq!(decode(b"pos/t/x", Some(b"1")), None);
        assert_eq!(decode(b"pos/t/0/1", Some(b"1")), None);
        assert_eq!(decode(b"sync/t/0/1", Some(b"1 0")), None);
        assert_eq!(decode(b"other/t/0", Some(b"1")), None);
        assert_eq!(decode(&[0xff, 0xfe], Some(b"1")), None);
    }

    #[test]
    fn runs_break_where_either_side_skips() {
        let pairs = [(0, 0), (1, 1), (2, 3), (3, 4), (5, 5), (6, 6)];
        assert_eq!(
            runs_of(&pairs),
            vec![
                Run {
                    source_first: 0,
                    target_first: 0,
                    count: 2
                },
                Run {
                    source_first: 2,
                    target_first: 3,
                    count: 2
                },
                Run {
                    source_first: 5,
                    target_first: 5,
                    count: 2
                },
            ]
        );
        assert!(runs_of(&[]).is_empty());
    }

    #[test]
    fn translation_lands_on_the_next_unread_record() {
        let tp = TopicPartition::new("t", 0);
        let mut map = OffsetMap::default();
        assert_eq!(map.translate(&tp, 0, 0, 3), Some(3));
        assert_eq!(map.translate(&tp, 1, 0, 3), None);
        // Two mirror transactions: source 3..6 → target 0..3 (marker at 3),
        // source 8..9 → target 4..5 (marker at 5).
        for run in runs_of(&[(3, 0), (4, 1), (5, 2)])
            .into_iter()
            .chain(runs_of(&[(8, 4)]))
        {
            map.insert(&tp, run);
        }
        let t = |c| map.translate(&tp, c, 9, 0);
        assert_eq!(t(0), Some(0)); // before the first copied record
        assert_eq!(t(3), Some(0));
        assert_eq!(t(5), Some(2));
        assert_eq!(t(6), Some(4)); // source 6 and 7 are gaps: record 8 is next
        assert_eq!(t(7), Some(4));
        assert_eq!(t(8), Some(4));
        assert_eq!(t(9), Some(5)); // all read: past the last record (and its marker)
        assert_eq!(t(10), None);
        assert_eq!(map.len(), 2);
    }

    /// Runs wholly below the log start go, and translation of every offset
    /// from the log start on is unchanged; read back, a tombstone removes
    /// its run.
    #[test]
    fn pruning_keeps_every_readable_offset_exact() {
        let tp = TopicPartition::new("t", 0);
        let mut map = OffsetMap::default();
        // Ten transactions of ten records each, a marker after each.
        for i in 0..10u64 {
            let pairs: Vec<(u64, u64)> = (0..10).map(|j| (i * 10 + j, i * 11 + j)).collect();
            for run in runs_of(&pairs) {
                map.apply(&Progress::Sync(tp.clone(), run));
            }
        }
        let before: Vec<_> = (0..=100).map(|c| map.translate(&tp, c, 100, 0)).collect();
        let log_start = 45;
        let doomed = map.prunable(&tp, log_start, usize::MAX);
        assert_eq!(doomed, vec![0, 10, 20, 30]);
        for first in doomed {
            map.apply(&Progress::Pruned(tp.clone(), first));
        }
        assert_eq!(map.len(), 6);
        for c in log_start..=100 {
            assert_eq!(
                map.translate(&tp, c, 100, 0),
                before[c as usize],
                "offset {c}"
            );
        }
        // Below the log start: the first record still held.
        assert_eq!(map.translate(&tp, 12, 100, 0), Some(44));
        // Everything deleted: the newest run stays, so a group that read
        // all still lands past it.
        let doomed = map.prunable(&tp, 100, usize::MAX);
        assert_eq!(doomed.len(), 5);
        for first in doomed {
            map.remove(&tp, first);
        }
        assert_eq!(map.translate(&tp, 100, 100, 0), before[100]);
    }
}
