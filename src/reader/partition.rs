//! [`PartitionReader`]: follows one partition of a live log, like
//! `tail -f`, under an isolation level; and what it returns,
//! [`Fetched`] and [`ReadRecord`].

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use super::cursor::{Batch, Cursor};
use crate::consumer::config::IsolationLevel;
use crate::error::{Error, Result};
use crate::format::batch::v2::ControlType;
use crate::format::batch::{records_section, RecordIter};
use crate::io::FileSystem;
use crate::log::groups::marker_kind;
use crate::record::TopicPartition;

/// One record read by a [`PartitionReader`], owned (copied out of the
/// segment file).
///
/// # Example
/// ```
/// use streamlog::{IsolationLevel, Log, Record, TopicPartition};
/// let log = Log::temporary()?;
/// log.create_topic("t", Default::default())?;
/// log.producer().send("t", Record::new(b"v").key(b"k").header("h", b"x").timestamp(5))?;
/// let tp = TopicPartition::new("t", 0);
/// let mut reader = Log::open_read_only(log.dir())?.partition_reader(&tp, 0, IsolationLevel::ReadCommitted)?;
/// let r = &reader.read(10)?.records[0];
/// assert_eq!((r.topic.as_str(), r.partition, r.offset, r.timestamp), ("t", 0, 0, 5));
/// assert_eq!((r.key.as_deref(), r.value.as_deref()), (Some(&b"k"[..]), Some(&b"v"[..])));
/// assert_eq!(r.headers, vec![("h".to_string(), Some(b"x".to_vec()))]);
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: u64,
    /// Its timestamp, in ms since the epoch.
    pub timestamp: i64,
    /// The key, `None` when null.
    pub key: Option<Vec<u8>>,
    /// The value, `None` when null (a tombstone).
    pub value: Option<Vec<u8>>,
    /// The headers in order: name and value, `None` for a null value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What one [`PartitionReader::read`] returned: records in offset order,
/// and the offsets it stepped over because they no longer exist.
///
/// # Example
/// ```
/// use streamlog::{IsolationLevel, Log, Record, TopicPartition};
/// let log = Log::temporary()?;
/// log.create_topic("t", Default::default())?;
/// log.producer().send("t", Record::new(b"a"))?;
/// let tp = TopicPartition::new("t", 0);
/// let mut reader = Log::open_read_only(log.dir())?.partition_reader(&tp, 0, IsolationLevel::ReadUncommitted)?;
/// let fetched = reader.read(10)?;
/// assert_eq!((fetched.len(), fetched.skipped.clone()), (1, None));
/// assert!(reader.read(10)?.is_empty()); // at the end, for now
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fetched {
    /// The records, in offset order, each returned once.
    pub records: Vec<ReadRecord>,
    /// Offsets `start..end` (end exclusive) that the reader stepped over
    /// before these records because retention deleted them before it got
    /// there (or, when it started, below the partition's first offset).
    /// `None` when nothing was skipped.
    pub skipped: Option<Range<u64>>,
}

impl Fetched {
    /// How many records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records (`skipped` may still be set).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl IntoIterator for Fetched {
    type Item = ReadRecord;
    type IntoIter = std::vec::IntoIter<ReadRecord>;
    fn into_iter(self) -> Self::IntoIter {
        self.records.into_iter()
    }
}

/// What a reader read but did not return yet.
#[derive(Debug)]
enum Held {
    /// A record, and the producer whose transaction it belongs to while
    /// that transaction is undecided (`ReadCommitted` only).
    Record(ReadRecord, Option<i64>),
    /// Offsets the reader stepped over here: returned alone at the front
    /// of a [`Fetched`], so that every record of it comes after the gap.
    Gap(Range<u64>),
}

impl Held {
    /// The producer of an undecided transaction this is a record of.
    fn txn(&self) -> Option<i64> {
        match self {
            Held::Record(_, txn) => *txn,
            Held::Gap(_) => None,
        }
    }

    /// The first offset it covers.
    fn offset(&self) -> u64 {
        match self {
            Held::Record(r, _) => r.offset,
            Held::Gap(g) => g.start,
        }
    }
}

/// Follows one partition of a log opened with
/// [`Log::open_read_only`](crate::Log::open_read_only), from a start
/// offset, while another process may be writing it. Made by
/// [`LogReader::partition_reader`](crate::LogReader::partition_reader).
///
/// Each [`read`](Self::read) returns the next records in offset order,
/// each exactly once; at the end it returns none, and a caller that wants
/// to follow the log sleeps and reads again, like `tail -f`. It keeps its
/// current segment file open, so retention deleting it or compaction
/// replacing it does not disturb it; offsets retention deleted before the
/// reader got to them are reported in [`Fetched::skipped`].
///
/// Isolation ([`IsolationLevel`]):
/// - `ReadUncommitted`: every data record; transaction markers are never
///   returned.
/// - `ReadCommitted`: a transaction's records are held back until its
///   producer's COMMIT marker (then returned in offset order) and dropped
///   at its ABORT; nothing past the first record of a still-undecided
///   transaction is returned (Kafka's last stable offset), including one
///   that began before the start offset. What the reader read past that
///   point waits in memory until the transaction ends.
///
/// # Example
/// ```
/// use streamlog::{IsolationLevel, Log, Record, TopicConfig, TopicPartition};
/// let log = Log::temporary()?;
/// log.create_topic("t", TopicConfig::new().segment_bytes(1024))?;
/// let tp = TopicPartition::new("t", 0);
/// let reader = Log::open_read_only(log.dir())?; // while `log` has it open
/// let mut follow = reader.partition_reader(&tp, 0, IsolationLevel::ReadCommitted)?;
/// let mut seen = Vec::new();
/// for round in 0..3u32 {
///     for i in 0..50u32 {
///         log.producer().send("t", Record::new((round * 50 + i).to_be_bytes().to_vec()))?;
///     }
///     loop {
///         let fetched = follow.read(64)?;
///         if fetched.is_empty() {
///             break; // caught up; a follower would sleep and read again
///         }
///         seen.extend(fetched.into_iter().map(|r| r.offset));
///     }
/// }
/// assert_eq!(seen, (0..150).collect::<Vec<u64>>());
/// assert_eq!(follow.position(), 150);
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug)]
pub struct PartitionReader {
    cursor: Cursor,
    st: State,
}

/// What a [`PartitionReader`] keeps besides its cursor.
#[derive(Debug)]
struct State {
    tp: TopicPartition,
    isolation: IsolationLevel,
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// Records read and not returned yet, in offset order.
    queue: VecDeque<Held>,
    /// Producers whose transaction is undecided, with its first offset.
    open: HashMap<i64, u64>,
    /// Every offset below this was read (returned, held or dropped); no
    /// record below it is taken again.
    floor: u64,
}

impl PartitionReader {
    /// A reader of partition directory `dir` from `offset`.
    pub(super) fn new(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        tp: TopicPartition,
        offset: u64,
        isolation: IsolationLevel,
    ) -> Result<PartitionReader> {
        let cursor = Cursor::new(fs.clone(), dir.clone(), offset, true)?;
        let mut st = State {
            tp,
            isolation,
            fs,
            dir,
            queue: VecDeque::new(),
            open: HashMap::new(),
            floor: offset,
        };
        if st.committed() {
            st.open = super::txn::open_at(&*st.fs, &st.dir, offset)?;
        }
        Ok(PartitionReader { cursor, st })
    }

    /// The partition read.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.st.tp
    }

    /// The isolation level it reads under.
    pub fn isolation(&self) -> IsolationLevel {
        self.st.isolation
    }

    /// The offset of the next record it may return: where a new reader
    /// would start to return exactly what this one has not returned yet.
    pub fn position(&self) -> u64 {
        self.st.queue.front().map_or(self.st.floor, Held::offset)
    }

    /// The next records, at most `max_records`, in offset order; none when
    /// the reader is at the end of what is readable now (the end of the
    /// log, or for `ReadCommitted` the first record of an undecided
    /// transaction). Never returns an offset twice.
    ///
    /// # Errors
    /// [`Error::Corrupted`], [`Error::UnsupportedVersion`] or
    /// [`Error::UnsupportedCompression`] for a batch the reader cannot
    /// read in a finished segment (the same error again at every call);
    /// [`Error::Io`], also when the partition directory is gone (its
    /// topic was deleted).
    pub fn read(&mut self, max_records: usize) -> Result<Fetched> {
        let mut out = Fetched::default();
        // An error after records were taken into `out` returns them first;
        // the reader stays before the batch that failed, so the next call
        // meets the error again rather than stepping over it.
        let give = |out: Fetched, e: Error| {
            if out.records.is_empty() && out.skipped.is_none() {
                Err(e)
            } else {
                Ok(out)
            }
        };
        loop {
            if !self.st.release(&mut out, max_records) {
                break;
            }
            let step = match self.cursor.next_batch() {
                Ok(step) => step,
                Err(e) => return give(out, e),
            };
            if let Some(gap) = step.skipped {
                self.st.skipped(gap)?;
            }
            let Some(batch) = step.batch else {
                self.st.release(&mut out, max_records);
                break;
            };
            let (pos, base) = (batch.pos, batch.header.base_offset);
            if let Err(e) = self.st.take(batch) {
                self.cursor.rewind(pos, base);
                return give(out, e);
            }
        }
        Ok(out)
    }
}

impl State {
    fn committed(&self) -> bool {
        self.isolation == IsolationLevel::ReadCommitted
    }

    /// Takes in a batch the cursor read.
    fn take(&mut self, b: Batch<'_>) -> Result<()> {
        let h = b.header;
        let next = h.next_offset();
        if next <= self.floor {
            return Ok(());
        }
        if h.is_control() {
            if self.committed() {
                let kind = marker_kind(&h, b.bytes, (b.path, b.pos))?;
                decide(&mut self.open, &mut self.queue, h.producer_id, kind);
            }
            self.floor = next;
            return Ok(());
        }
        let bad = |k| Error::corrupted(b.path, b.pos, Some(h.base_offset), k);
        let section = records_section(&h, b.bytes).map_err(bad)?;
        let txn = (self.committed() && h.is_transactional()).then_some(h.producer_id);
        let mut held = Vec::with_capacity((h.record_count as usize).min(section.len() / 7));
        for r in RecordIter::new(&h, &section) {
            let r = r.map_err(bad)?;
            let offset = h.base_offset + u64::from(r.offset_delta);
            if offset < self.floor {
                continue;
            }
            let mut headers = Vec::new();
            let mut it = r.header_iter();
            while let Some((k, v)) = it.next_checked() {
                headers.push((k.to_owned(), v.map(<[u8]>::to_vec)));
            }
            let record = ReadRecord {
                topic: self.tp.topic.clone(),
                partition: self.tp.partition,
                offset,
                timestamp: h.base_timestamp.wrapping_add(r.timestamp_delta),
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
                headers,
            };
            held.push(Held::Record(record, txn));
        }
        // Only a batch read whole moves anything: a damaged record above
        // leaves the reader where it was.
        if let (Some(pid), Some(first)) = (txn, held.first()) {
            self.open.entry(pid).or_insert(first.offset());
        }
        self.queue.extend(held);
        self.floor = next;
        Ok(())
    }

    /// Moves released records to `out`: from the front, while they are not
    /// of an undecided transaction and lie below the first record of every
    /// undecided transaction. A gap goes first into an empty `out`, and
    /// ends it otherwise. Returns whether `out` may take more.
    fn release(&mut self, out: &mut Fetched, max: usize) -> bool {
        let lso = self.open.values().min().copied();
        loop {
            if out.records.len() >= max {
                return false;
            }
            let Some(front) = self.queue.front() else {
                return true;
            };
            let blocked = front.txn().is_some() || lso.is_some_and(|l| front.offset() >= l);
            match front {
                Held::Gap(_) if !out.records.is_empty() || out.skipped.is_some() => return false,
                Held::Record(..) if blocked => return true,
                _ => {}
            }
            match self.queue.pop_front() {
                Some(Held::Gap(g)) => out.skipped = Some(g),
                Some(Held::Record(r, _)) => out.records.push(r),
                None => return true,
            }
        }
    }

    /// The cursor stepped over `gap` (retention deleted it). Transactions
    /// decided inside the gap cannot be known: under `ReadCommitted`, the
    /// open ones are taken anew as of its end, and records held for a
    /// producer no longer open there are dropped (never shown without
    /// their commit being seen).
    fn skipped(&mut self, gap: Range<u64>) -> Result<()> {
        self.floor = self.floor.max(gap.end);
        let end = gap.end;
        self.queue.push_back(Held::Gap(gap));
        if !self.committed() {
            return Ok(());
        }
        let mut now = super::txn::open_at(&*self.fs, &self.dir, end)?;
        // A held record whose transaction's marker was in the gap is never
        // returned: it becomes part of what was skipped, reported in its
        // place (adjacent gaps merged).
        let mut queue = VecDeque::with_capacity(self.queue.len());
        for h in self.queue.drain(..) {
            let h = match h {
                Held::Record(r, Some(p)) if !now.contains_key(&p) => {
                    Held::Gap(r.offset..r.offset + 1)
                }
                h => h,
            };
            match (queue.back_mut(), h) {
                (Some(Held::Gap(g)), Held::Gap(n)) => g.end = g.end.max(n.end),
                (_, h) => queue.push_back(h),
            }
        }
        self.queue = queue;
        for (p, first) in now.iter_mut() {
            if let Some(&held) = self.open.get(p) {
                *first = (*first).min(held);
            }
        }
        self.open = now;
        Ok(())
    }
}

/// A marker of producer `pid`: a COMMIT releases its held records, an
/// ABORT (or a marker of an unknown type) drops them. A marker for a
/// producer with no open transaction is one the reader has nothing of.
fn decide(
    open: &mut HashMap<i64, u64>,
    queue: &mut VecDeque<Held>,
    pid: i64,
    kind: Option<ControlType>,
) {
    if open.remove(&pid).is_none() {
        return;
    }
    if kind == Some(ControlType::Commit) {
        for h in queue.iter_mut() {
            if let Held::Record(_, txn) = h {
                if *txn == Some(pid) {
                    *txn = None;
                }
            }
        }
    } else {
        queue.retain(|h| h.txn() != Some(pid));
    }
}
