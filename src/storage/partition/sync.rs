//! Making appended records durable: the sync policy after an append,
//! group commit (`sync_to`), flush and the clean close of a partition.
//!
//! Every fdatasync runs under `sync_lock`, and `durable` only advances under
//! it after checking that the log is not poisoned.

use std::sync::atomic::Ordering;

use super::Partition;
use crate::error::Result;
use crate::storage::group_commit::Leading;
use crate::storage::policy::SyncPolicy;

impl Partition {
    /// Applies the sync policy after an append ending at `next`.
    pub fn sync_after_append(&self, next: u64) -> Result<()> {
        let due = match self.shared.sync {
            SyncPolicy::OsBuffered => false,
            SyncPolicy::EveryWrite => true,
            SyncPolicy::EveryRecords(n) => next.saturating_sub(self.durable_offset()) >= n.max(1),
            SyncPolicy::Interval(d) => {
                let since = self.created.elapsed().as_nanos() as u64;
                since.saturating_sub(self.last_sync_ns.load(Ordering::Relaxed))
                    >= d.as_nanos() as u64
            }
        };
        if due {
            self.sync_to(next)
        } else {
            Ok(())
        }
    }

    /// Moves the durable offset forward after a successful sync, unless
    /// the log was poisoned meanwhile. Called under `sync_lock`.
    pub(super) fn advance_durable(&self, to: u64) -> Result<()> {
        self.shared.check_not_poisoned()?;
        self.durable.fetch_max(to, Ordering::AcqRel);
        self.last_sync_ns
            .store(self.created.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Makes every offset below `target` durable. Concurrent callers share
    /// fdatasyncs (group commit): one caller at a time leads and syncs
    /// everything appended so far; the others park until it finishes and
    /// are woken all at once. A follower whose record landed after the
    /// leader read the end offset leads the next sync, which covers every
    /// record appended meanwhile.
    ///
    /// Followers do not queue on a lock: handing a lock from one woken
    /// thread to the next costs a context switch each, and with many
    /// writers that chain, not the disk, set the pace.
    pub fn sync_to(&self, target: u64) -> Result<()> {
        if self.shared.no_sync || self.durable_offset() >= target {
            return Ok(());
        }
        loop {
            if self.durable_offset() >= target {
                return Ok(());
            }
            self.shared.check_not_poisoned()?;
            let gc = &self.group_commit;
            if gc
                .leading
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let _lead = Leading(gc);
                gc.gather();
                return gc.timed(|| self.sync_now(target));
            }
            gc.follow(|| gc.leading.load(Ordering::Acquire) && self.durable_offset() < target);
        }
    }

    /// One fdatasync of the active segment, under `sync_lock`, covering
    /// everything appended before it starts.
    fn sync_now(&self, target: u64) -> Result<()> {
        let _s = self.sync_lock.lock();
        if self.durable_offset() >= target {
            return Ok(());
        }
        self.shared.check_not_poisoned()?;
        // The end offset first, then the active segment: any record below
        // `end` is in that segment or in one sealed (and synced) before it.
        let end = self.end_offset();
        let Some(seg) = self.segments.read().last().cloned() else {
            return Ok(());
        };
        seg.log
            .sync()
            .map_err(|e| self.poison("fdatasync", seg.log.path(), e))?;
        self.advance_durable(end)?;
        self.shared.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Syncs everything appended so far.
    pub fn flush(&self) -> Result<()> {
        self.sync_to(self.end_offset())
    }

    /// Trims the active segment's preallocated space and syncs it, for a
    /// clean shutdown. Waits for appends in flight; the caller has already
    /// marked the log closed, so none start after.
    pub fn close(&self) -> Result<()> {
        let mut w = self.writer.lock();
        let _s = self.sync_lock.lock();
        let seg = &w.active;
        for f in [&seg.log, &seg.offsets, &seg.times] {
            f.trim().map_err(|e| self.poison("trim", f.path(), e))?;
        }
        if !self.shared.no_sync {
            for f in [&seg.log, &seg.offsets, &seg.times] {
                f.sync()
                    .map_err(|e| self.poison("fdatasync", f.path(), e))?;
            }
        }
        self.sync_txn_index(w.active.base)?;
        w.txn_index_dirty = false;
        let end = w.next_offset;
        self.write_snapshot(&mut w, end, true)?;
        // The snapshot's (and any new `.txnindex`'s) directory entry too:
        // after a clean close, a partition without a snapshot is trusted
        // to have had no producers.
        if !self.shared.no_sync {
            self.shared
                .fs
                .sync_dir(&self.dir)
                .map_err(|e| self.poison("sync directory", &self.dir, e))?;
        }
        self.advance_durable(end)
    }
}
