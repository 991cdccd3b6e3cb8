//! The read path: fetching validated batches, the timestamp lookup, and
//! the signals of consumers waiting for appends.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Partition;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::batch::{
    decode_batch, decode_batch_unverified, records_section, verify_crc, BatchHeader, DecodeError,
    RecordIter, CODEC_NONE,
};
use crate::signal::Signal;
use crate::storage::mapped::View;
use crate::storage::segment::{Part, Segment};
use crate::topic::config::CleanupPolicy;

/// A validated batch returned by a fetch: the view keeps the segment's
/// mapping alive for as long as the caller holds it.
#[derive(Debug, Clone)]
pub(crate) struct FetchedBatch {
    pub segment: Arc<Segment>,
    /// The segment's log, of which the batch is `[pos, pos + total_len)`.
    pub log: View,
    pub pos: usize,
    pub header: BatchHeader,
    /// Its CRC is not checked yet: only from
    /// [`fetch_deferring_crc`](Partition::fetch_deferring_crc), for an
    /// uncompressed data batch the reader will walk, which checks it before
    /// handing out anything of it.
    pub unverified: bool,
}

impl FetchedBatch {
    pub fn bytes(&self) -> &[u8] {
        &self.log[self.pos..self.pos + self.header.total_len()]
    }
}

#[cfg(test)]
thread_local! {
    /// Bytes of batches this thread's fetches have checked (CRC included).
    pub(crate) static VERIFIED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The end of one read over a snapshot of the segment list.
enum Read<T> {
    Done(T),
    /// A sealed segment of the snapshot could not be mapped.
    Unmappable(Arc<Segment>, std::io::Error),
}

impl Partition {
    fn out_of_range(&self, requested: u64) -> Error {
        Error::OffsetOutOfRange {
            requested,
            earliest: self.start_offset(),
            latest: self.end_offset(),
        }
    }

    fn corrupted(&self, seg: &Segment, pos: usize, offset: u64, e: DecodeError) -> Error {
        let available = seg.log.len().saturating_sub(pos as u64);
        e.into_error(seg.log.path(), pos as u64, Some(offset), available)
    }

    /// Collects validated batches holding offsets from `offset` on, up to
    /// `max_bytes` of batch data (at least one batch) and enough batches to
    /// cover `max_records` records.
    ///
    /// # Errors
    /// `OffsetOutOfRange` outside `start..=end`; `Corrupted` if a batch
    /// fails validation (its bytes are not returned).
    pub fn fetch(
        &self,
        offset: u64,
        max_bytes: usize,
        max_records: usize,
        out: &mut Vec<FetchedBatch>,
    ) -> Result<()> {
        self.retry_if_removed(|| self.fetch_once(offset, max_bytes, max_records, out, false))
    }

    /// [`fetch`](Self::fetch) for a consumer, which decodes every record of
    /// the batches it takes: an uncompressed data batch it may take comes
    /// back with its CRC not yet checked (`unverified`), for the consumer
    /// to check just before (large records) or just after (small ones) it
    /// walks the records, while the bytes are in cache, instead of here for
    /// a whole fetch at once. Every batch walked over without being
    /// returned, and every compressed or control batch, is still checked
    /// here.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    pub fn fetch_deferring_crc(
        &self,
        offset: u64,
        max_bytes: usize,
        max_records: usize,
        out: &mut Vec<FetchedBatch>,
    ) -> Result<()> {
        self.retry_if_removed(|| self.fetch_once(offset, max_bytes, max_records, out, true))
    }

    /// Runs a read over a snapshot of the segment list again, with a fresh
    /// snapshot, when it failed because one of the snapshot's segments was
    /// removed meanwhile (retention, compaction): a sealed segment is mapped
    /// on demand, and its files may be gone by then. The next run sees the
    /// new list, or a log start past the offset asked for.
    fn retry_if_removed<T>(&self, mut read: impl FnMut() -> Result<Read<T>>) -> Result<T> {
        let mut attempts = 0;
        loop {
            match read()? {
                Read::Done(t) => return Ok(t),
                Read::Unmappable(seg, e) => {
                    let removed = !self.holds_segment(&seg);
                    attempts += 1;
                    if !removed || attempts >= 8 {
                        return Err(Error::io("map", seg.log.path(), e));
                    }
                }
            }
        }
    }

    fn fetch_once(
        &self,
        offset: u64,
        max_bytes: usize,
        max_records: usize,
        out: &mut Vec<FetchedBatch>,
        defer_crc: bool,
    ) -> Result<Read<()>> {
        let end = self.end_offset();
        if offset < self.start_offset() || offset > end {
            return Err(self.out_of_range(offset));
        }
        if offset == end {
            return Ok(Read::Done(()));
        }
        let (mut segs, mut more) = self.window(offset, max_bytes);
        #[cfg(test)]
        if let Some(f) = self.after_snapshot.lock().as_mut() {
            f();
        }
        let compacted = self.cfg.read().cleanup_policy != CleanupPolicy::Delete;
        let (mut bytes, mut records, mut want) = (0usize, 0usize, offset);
        // Where the previous segment's batches ended, to check that the next
        // segment starts exactly there.
        let mut prev: Option<(Arc<Segment>, usize, u64)> = None;
        // Damage ends the fetch: what came before it is returned, and the
        // next fetch, starting at the damage, reports it.
        macro_rules! damaged {
            ($err:expr) => {{
                if !out.is_empty() {
                    return Ok(Read::Done(()));
                }
                return Err($err);
            }};
        }
        // A segment that cannot be mapped ends the fetch the same way; the
        // caller decides whether it was removed meanwhile.
        macro_rules! mapped {
            ($seg:expr, $part:expr) => {
                match $seg.view($part) {
                    Ok(v) => v,
                    Err(_) if !out.is_empty() => return Ok(Read::Done(())),
                    Err(e) => return Ok(Read::Unmappable($seg.clone(), e)),
                }
            };
        }
        // The next segment of the window to read, and whether to enter it
        // at `want` (through its index) rather than at its start.
        let (mut i, mut locate) = (0, true);
        loop {
            if i == segs.len() {
                let Some((last, _, reached)) = prev.clone() else {
                    break;
                };
                if !more {
                    break;
                }
                // The window is used up: the next one, from where it ended.
                // The list may have changed meanwhile: look the offset up.
                (segs, more) = self.window(reached, max_bytes.saturating_sub(bytes));
                i = 0;
                match segs.first() {
                    // No segment starts at `reached`: check the one after.
                    Some(s) if Arc::ptr_eq(s, &last) => i = 1,
                    Some(s) if s.base == reached => {}
                    // A copy that compaction merged the last one into.
                    Some(s) if s.base < reached => {
                        (locate, prev) = (true, None);
                    }
                    // Retention removed what follows: the next fetch says so.
                    _ => return Ok(Read::Done(())),
                }
                continue;
            }
            let seg = segs[i].clone();
            i += 1;
            if let Some((p, ppos, reached)) = &prev {
                let (ppos, reached) = (*ppos, *reached);
                if reached != seg.base {
                    let kind = CorruptionKind::OffsetOutOfOrder {
                        expected: reached,
                        found: seg.base,
                    };
                    damaged!(Error::corrupted(
                        p.log.path(),
                        ppos as u64,
                        Some(reached),
                        kind
                    ));
                }
            }
            let data = mapped!(seg, Part::Log);
            // The base offset the next batch must have: exact, unless
            // compaction may have removed whole batches. Unknown for a v1
            // batch found through the index (the index check vouches for it).
            let (mut pos, mut expected) = if std::mem::take(&mut locate) {
                match seg.start_for(&data, want) {
                    Ok((p, e)) => (p as usize, e),
                    Err(e) if out.is_empty() => return Ok(Read::Unmappable(seg.clone(), e)),
                    Err(_) => return Ok(Read::Done(())),
                }
            } else {
                (0, Some(seg.base))
            };
            let mut reached = seg.base;
            while pos < data.len() {
                // Every batch walked over is validated, CRC included, so that
                // a damaged header can never make records silently vanish;
                // only a data batch handed to a consumer that checks it
                // itself skips the CRC here.
                let deferred = if defer_crc {
                    decode_batch_unverified(&data[pos..]).filter(|h| {
                        h.codec() == CODEC_NONE && !h.is_control() && h.next_offset() > want
                    })
                } else {
                    None
                };
                let unverified = deferred.is_some();
                let h = match deferred {
                    Some(h) => h,
                    None => match decode_batch(&data[pos..]) {
                        Ok(h) => h,
                        Err(e) => damaged!(self.corrupted(&seg, pos, want, e)),
                    },
                };
                #[cfg(test)]
                if !unverified {
                    VERIFIED.with(|v| v.set(v.get() + h.total_len() as u64));
                }
                // A batch's bytes are published before the end offset moves
                // past it: never return more than the end read above, so
                // that a reader's position can never pass the end offset.
                // Such a batch is being appended: it follows its
                // predecessor exactly (only compaction leaves gaps, and
                // never past the end), so a base offset that jumps there
                // is damage (Kafka's CRC does not cover it), not news.
                let in_order = match expected {
                    Some(e) if h.base_offset >= end => h.base_offset == e,
                    Some(e) if compacted => h.base_offset >= e,
                    Some(e) => h.base_offset == e,
                    None => h.base_offset >= seg.base,
                };
                if in_order && h.base_offset >= end {
                    return Ok(Read::Done(()));
                }
                if !in_order || h.next_offset() - seg.base > u64::from(u32::MAX) + 1 {
                    // A CRC failure is what a full check reports first.
                    let checked = if unverified {
                        verify_crc(&h, &data[pos..pos + h.total_len()])
                    } else {
                        Ok(())
                    };
                    if let Err(kind) = checked {
                        damaged!(Error::corrupted(
                            seg.log.path(),
                            pos as u64,
                            Some(want),
                            kind
                        ));
                    }
                    let kind = CorruptionKind::OffsetOutOfOrder {
                        expected: expected.unwrap_or(seg.base),
                        found: h.base_offset,
                    };
                    damaged!(Error::corrupted(
                        seg.log.path(),
                        pos as u64,
                        Some(want),
                        kind
                    ));
                }
                expected = Some(h.next_offset());
                reached = h.next_offset();
                let at = pos;
                pos += h.total_len();
                if h.next_offset() <= want {
                    continue;
                }
                out.push(FetchedBatch {
                    segment: seg.clone(),
                    log: data.clone(),
                    pos: at,
                    header: h,
                    unverified,
                });
                bytes += h.total_len();
                records += h.record_count as usize;
                want = h.next_offset();
                if bytes >= max_bytes || records >= max_records {
                    return Ok(Read::Done(()));
                }
            }
            prev = Some((seg, pos, reached));
        }
        Ok(Read::Done(()))
    }

    /// The first offset at or after the log start whose record timestamp is
    /// `>= ts`, if any (Kafka's `offsetsForTimes`).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<u64>> {
        self.retry_if_removed(|| self.offset_for_timestamp_once(ts))
    }

    fn offset_for_timestamp_once(&self, ts: i64) -> Result<Read<Option<u64>>> {
        let start = self.start_offset();
        for seg in self.segments().iter() {
            if seg.max_timestamp() < ts || seg.next_offset() <= start {
                continue;
            }
            let mapped = |r: std::io::Result<u64>| r.map_err(|e| Read::Unmappable(seg.clone(), e));
            let data = match seg.view(Part::Log) {
                Ok(v) => v,
                Err(e) => return Ok(Read::Unmappable(seg.clone(), e)),
            };
            let located = mapped(seg.time_scan_start(ts)).and_then(|from| {
                let from = from.max(start);
                mapped(seg.position_for(&data, from)).map(|pos| (from, pos as usize))
            });
            let (from, mut pos) = match located {
                Ok(l) => l,
                Err(r) => return Ok(r),
            };
            while pos < data.len() {
                let h =
                    decode_batch(&data[pos..]).map_err(|e| self.corrupted(seg, pos, from, e))?;
                if h.next_offset() > from && h.max_timestamp >= ts {
                    let bad =
                        |k| Error::corrupted(seg.log.path(), pos as u64, Some(h.base_offset), k);
                    let batch = &data[pos..pos + h.total_len()];
                    let section = records_section(&h, batch).map_err(bad)?;
                    for r in RecordIter::new(&h, &section) {
                        let r = r.map_err(bad)?;
                        let off = h.base_offset + u64::from(r.offset_delta);
                        if off >= from && h.base_timestamp.wrapping_add(r.timestamp_delta) >= ts {
                            return Ok(Read::Done(Some(off)));
                        }
                    }
                }
                pos += h.total_len();
            }
        }
        Ok(Read::Done(None))
    }

    /// Registers a signal fired by the next append (or deletion).
    pub fn add_waiter(&self, s: &Arc<Signal>) {
        let mut w = self.waiters.lock();
        w.push(s.clone());
        self.has_waiters.store(true, Ordering::SeqCst);
    }

    pub fn remove_waiter(&self, s: &Arc<Signal>) {
        let mut w = self.waiters.lock();
        w.retain(|x| !Arc::ptr_eq(x, s));
        if w.is_empty() {
            self.has_waiters.store(false, Ordering::SeqCst);
        }
    }

    /// Fires every registered waiter; returns whether there was any.
    pub(super) fn wake(&self) -> bool {
        // Pairs with `add_waiter`: the end offset is stored (SeqCst) before
        // this load, and a waiter re-reads the end offset after storing the
        // flag, so either it sees the data or we see it waiting.
        if self.has_waiters.load(Ordering::SeqCst) {
            let waiters = self.waiters.lock();
            for s in waiters.iter() {
                s.fire();
            }
            return !waiters.is_empty();
        }
        false
    }
}
