//! The append path: offsets, roll rules, index entries and the copy into
//! the active segment, under the partition's append lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Partition, Writer};
use crate::error::{Error, Result};
use crate::format::batch::v2::ControlType;
use crate::format::batch::{EncodedBatch, Version};
use crate::format::index::V2_MAX_REL;
use crate::storage::cursor::IndexCursor;
use crate::storage::producers::{Check, Refusal};
use crate::storage::segment::{remove_segment_files, Segment};

/// What an append did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    pub base_offset: u64,
    pub rolled: bool,
    /// The batch was a producer's retry, already in the log at
    /// `base_offset`: nothing was written (or a marker that had no open
    /// transaction to end).
    pub duplicate: bool,
}

impl Partition {
    /// Appends one encoded batch, rolling first if a rule says so. A
    /// producer's batch is checked against the producer's state first (a
    /// retry is answered with its original offsets, a stale epoch or a
    /// sequence gap refused); a batch whose sequence the partition assigns
    /// gets it here.
    pub fn append(&self, batch: &mut EncodedBatch) -> Result<Appended> {
        self.append_checked(batch, None)
    }

    pub(super) fn refused(&self, r: Refusal) -> Error {
        match r {
            Refusal::Fenced {
                producer_id,
                current,
                got,
            } => Error::ProducerFenced {
                transactional_id: None,
                producer_id,
                epoch: got,
                current_epoch: current,
            },
            Refusal::OutOfOrder {
                producer_id,
                expected,
                got,
            } => Error::OutOfOrderSequence {
                topic: self.topic.to_string(),
                partition: self.id,
                producer_id,
                expected,
                got,
            },
            Refusal::InvalidTxnState { producer_id } => Error::InvalidTxnState {
                what: format!(
                    "producer {producer_id} sent a non-transactional batch to {}-{} while its transaction there is open",
                    self.topic, self.id
                ),
            },
        }
    }

    /// [`append`](Self::append), for a transaction marker of type `marker`
    /// too.
    pub(super) fn append_checked(
        &self,
        batch: &mut EncodedBatch,
        marker: Option<ControlType>,
    ) -> Result<Appended> {
        let len = batch.total_len() as u64;
        let mut w = self.writer.lock();
        // Checked under the append lock, so that nothing is appended after
        // a poison, a close or a delete has been decided.
        self.shared.check_writable()?;
        if self.deleted.load(Ordering::SeqCst) {
            return Err(Error::UnknownTopic {
                topic: self.topic.to_string(),
            });
        }
        let base_offset = w.next_offset;
        let pid = batch.header.producer_id;
        if pid >= 0 {
            let check = if batch.needs_sequence() {
                let mut seq = 0;
                let c = w.producers.assign_and_check(&batch.header, |s| seq = s);
                if c.is_ok() {
                    batch.assign_sequence(seq);
                }
                c
            } else {
                w.producers.check(&batch.header)
            };
            match check {
                Ok(Check::Append) => {}
                Ok(Check::Duplicate { first_offset, .. }) => {
                    return Ok(Appended {
                        base_offset: first_offset,
                        rolled: false,
                        duplicate: true,
                    })
                }
                Err(r) => return Err(self.refused(r)),
            }
            if marker.is_some() && w.producers.get(pid).is_none_or(|e| e.txn_first.is_none()) {
                // No transaction of the producer is open here.
                return Ok(Appended {
                    base_offset,
                    rolled: false,
                    duplicate: true,
                });
            }
        }
        let Some(next) = base_offset.checked_add(u64::from(batch.header.last_offset_delta) + 1)
        else {
            return Err(Error::OffsetSpaceExhausted {
                topic: self.topic.to_string(),
                partition: self.id,
            });
        };
        let mut rolled = false;
        let seg_len = w.active.log.len();
        if seg_len == 0 && len > w.active.log.capacity() {
            self.replace_empty_active(&mut w, len)?;
        } else if seg_len > 0 && self.should_roll(&w, len, next, batch.header.max_timestamp) {
            self.roll(&mut w, len)?;
            rolled = true;
        }
        // Split borrows: the active segment and the cursor side by side.
        let wr = &mut *w;
        let seg = &wr.active;
        let pos = seg.log.len();
        let h = &batch.header;
        let rel = (base_offset - seg.base) as u32;
        let (o, t) = wr.cursor.place(
            pos,
            rel,
            rel + h.last_offset_delta,
            h.base_timestamp,
            h.max_timestamp,
        );
        let indexed = (o.is_some(), t.is_some());
        if let Some(o) = o {
            seg.push_offset_entry(o)
                .map_err(|e| self.poison("write index", seg.offsets.path(), e))?;
        }
        if let Some(t) = t {
            seg.push_time_entry(t)
                .map_err(|e| self.poison("write time index", seg.times.path(), e))?;
        }
        let end = seg
            .log
            .write_with(&wr.appender, batch.seal(base_offset))
            .map_err(|e| self.poison("append to", seg.log.path(), e))?;
        seg.log.publish(end);
        let h = &batch.header;
        seg.note_append(next, h.max_timestamp);
        wr.next_offset = next;
        let mut indexed_abort = false;
        if pid >= 0 {
            // Producer state, then the LSO, then the end: a reader never
            // sees an open transaction's batch below an LSO that ignores it,
            // nor an aborted one past the LSO before its index entry.
            let now = match batch.now_ms {
                0 => self.shared.clock.now_ms(),
                t => t,
            };
            match marker {
                None => wr.producers.apply_batch(h, now),
                Some(kind) => {
                    let done = wr
                        .producers
                        .apply_marker(pid, h.producer_epoch, base_offset, now);
                    if let Some(c) = done {
                        indexed_abort = self.on_completed(seg.base, c, kind)?;
                    }
                }
            }
            self.publish_unstable(wr);
        }
        self.end.store(next, Ordering::SeqCst);
        if self.shared.no_sync {
            self.durable.store(next, Ordering::Release);
        }
        // Only the writer-lock holder changes the counters: a load and a
        // store, no locked read-modify-write on a line all partitions share.
        let add = |c: &AtomicU64, n: u64| c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        add(&self.counters.records, u64::from(h.record_count));
        add(&self.counters.batches, 1);
        add(&self.counters.bytes, len);
        // Readers learn of the batch before the writer gets the file ready
        // for the next one: that may take system calls, and they belong to
        // no record's latency.
        let woke = self.wake();
        if seg.prepare_ahead(len as usize, indexed.0, indexed.1, woke) {
            // Zeros written ahead (a partition that syncs every append):
            // synced now, so that the appends' own syncs find written
            // blocks. It covers every record appended so far.
            let _s = self.sync_lock.lock();
            seg.log
                .sync()
                .map_err(|e| self.poison("fdatasync", seg.log.path(), e))?;
            self.advance_durable(next)?;
            self.shared.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        wr.txn_index_dirty |= indexed_abort;
        self.maybe_snapshot(wr, len, next)?;
        drop(w);
        Ok(Appended {
            base_offset,
            rolled,
            duplicate: false,
        })
    }

    /// Whether to roll before appending a batch of `len` bytes ending at
    /// `next` whose newest record has timestamp `ts`. Age is measured, as in
    /// Kafka, from the segment's first record to the incoming one, so that
    /// records carrying their own (old) timestamps do not roll every time.
    fn should_roll(&self, w: &Writer, len: u64, next: u64, ts: i64) -> bool {
        let seg = &w.active;
        let segment_bytes = self.roll_bytes.load(Ordering::Relaxed);
        let age_ms = self.roll_age_ms.load(Ordering::Relaxed);
        seg.log.len() + len > segment_bytes
            || seg.log.len() + len > seg.log.capacity()
            || w.cursor
                .first_ts
                .is_some_and(|t| ts.saturating_sub(t) >= age_ms)
            || !seg.index_has_room()
            // A segment of an older layout takes no new batches.
            || seg.version != Version::V2
            // Kafka's indexes hold positions and relative offsets as i32.
            || seg.log.len() > u64::from(V2_MAX_REL)
            || next - 1 - seg.base > u64::from(V2_MAX_REL)
    }

    fn create_segment(&self, base: u64, capacity: u64) -> Result<Arc<Segment>> {
        let fs = &*self.shared.fs;
        let seg = Segment::create(
            fs,
            &self.dir,
            base,
            capacity,
            self.cfg.read().segment_index_bytes,
        )
        .map_err(|e| self.poison("create segment in", &self.dir, e))?;
        if !self.shared.no_sync {
            fs.sync_dir(&self.dir)
                .map_err(|e| self.poison("sync directory", &self.dir, e))?;
        }
        Ok(Arc::new(seg))
    }

    /// Seals the active segment (synced) and starts a new one.
    fn roll(&self, w: &mut Writer, batch_len: u64) -> Result<()> {
        let old = w.active.clone();
        {
            let _s = self.sync_lock.lock();
            old.seal(!self.shared.no_sync, &mut w.cursor)
                .map_err(|e| self.poison("seal segment", old.log.path(), e))?;
            self.advance_durable(old.next_offset())?;
        }
        // The sealed segment's aborted transactions, and the producer state
        // as of the new segment's base: reopening replays only what follows.
        self.sync_txn_index(old.base)?;
        w.txn_index_dirty = false;
        let next = w.next_offset;
        self.write_snapshot(w, next, true)?;
        let new =
            self.create_segment(w.next_offset, self.cfg.read().segment_bytes.max(batch_len))?;
        self.push_segment(&old, new.clone());
        // Only now: a syncer picks the last segment of the list.
        old.make_lazy(&self.shared.maps, true);
        w.activate(new);
        w.cursor = IndexCursor::new(self.cfg.read().index_interval_bytes, Version::V2);
        self.shared
            .metrics
            .segments_rolled
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// An empty active segment too small for one oversized batch is
    /// replaced by a larger one with the same base offset.
    fn replace_empty_active(&self, w: &mut Writer, batch_len: u64) -> Result<()> {
        let base = w.active.base;
        remove_segment_files(&*self.shared.fs, &self.dir, base).inspect_err(|e| {
            self.shared.poison(e);
        })?;
        let new = self.create_segment(base, batch_len)?;
        if let Some(last) = self.segments.write().last_mut() {
            *last = new.clone();
        }
        w.activate(new);
        Ok(())
    }

    /// Moves the end offset forward to `to` without records: appends empty
    /// batches (a record count of 0, the offsets of the gap) and makes them
    /// durable. Recovery calls it when checkpointed offsets were lost, so
    /// that they are never handed out again; readers step over the gap as
    /// they do over what compaction removed.
    pub fn skip_to(&self, to: u64) -> Result<()> {
        let now = self.shared.clock.now_ms();
        while self.end_offset() < to {
            // A v2 batch spans at most 2^31 offsets (its last offset delta
            // is an i32).
            let span = (to - self.end_offset()).min(u64::from(V2_MAX_REL) + 1);
            let section = EncodedBatch::section_buffer(0);
            let mut batch = EncodedBatch::new(section, 0, (span - 1) as u32, now, now, None)
                .map_err(|e| self.poison("encode an empty batch for", &self.dir, e))?;
            self.append(&mut batch)?;
        }
        self.flush()
    }
}
