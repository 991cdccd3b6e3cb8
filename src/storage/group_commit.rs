//! Group commit: concurrent callers of `Partition::sync_to` share
//! fdatasyncs. One caller at a time leads and syncs everything appended so
//! far; the others park until its turn ends and are woken all at once.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Group-commit state: who leads the current sync, and who waits for it.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    pub leading: AtomicBool,
    /// Bumped by each leader when its turn ends; followers wait for it to
    /// move. One condition variable, so that ending a turn wakes every
    /// follower with one system call rather than one each.
    round: std::sync::Mutex<u64>,
    ended: std::sync::Condvar,
    /// Followers waiting for the current turn to end.
    waiting: AtomicUsize,
    /// How many followers the last leader woke.
    last_woken: AtomicUsize,
    /// How long the last leader's sync took, in nanoseconds.
    last_sync_ns: AtomicU64,
}

impl GroupCommit {
    /// Called by a new leader before it syncs. The writers the previous
    /// leader woke are about to append again; syncing before they have
    /// would leave them all for the sync after, halving the records per
    /// fdatasync. So the leader yields the CPU until they have joined the
    /// waiting list, for at most as long as the last fdatasync took (each
    /// of them waits that long for the next one anyway) and never more than
    /// 1 ms. A single writer never waits.
    pub fn gather(&self) {
        let expect = self.last_woken.load(Ordering::Relaxed);
        if expect == 0 {
            return;
        }
        let budget = Duration::from_nanos(self.last_sync_ns.load(Ordering::Relaxed))
            .min(Duration::from_millis(1));
        let start = Instant::now();
        while self.waiting.load(Ordering::Acquire) < expect && start.elapsed() < budget {
            std::thread::yield_now();
        }
    }

    /// Runs a leader's fdatasync, remembering how long it took.
    pub fn timed<T>(&self, sync: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let r = sync();
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_sync_ns.store(ns, Ordering::Relaxed);
        r
    }

    fn round(&self) -> std::sync::MutexGuard<'_, u64> {
        // Nothing panics while holding it; a poisoned lock is still usable.
        self.round.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks a follower until the current leader's turn ends. `still` is
    /// checked under the round lock: false means there is nothing to wait
    /// for (no leader, or the target is already durable).
    pub fn follow(&self, still: impl Fn() -> bool) {
        let mut round = self.round();
        // A leader clears `leading` before it takes the round lock, so
        // either `still` sees it cleared (and the caller retries) or the
        // leader bumps the round after this follower waits (and wakes it).
        if !still() {
            return;
        }
        let mine = *round;
        self.waiting.fetch_add(1, Ordering::AcqRel);
        while *round == mine {
            round = self.ended.wait(round).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Ends a leader's turn, even if its sync panics: clears `leading`, then
/// wakes every follower so that one of them can lead the next sync.
pub(crate) struct Leading<'a>(pub &'a GroupCommit);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let gc = self.0;
        gc.leading.store(false, Ordering::Release);
        let mut round = gc.round();
        *round += 1;
        let woken = gc.waiting.swap(0, Ordering::AcqRel);
        drop(round);
        gc.last_woken.store(woken, Ordering::Relaxed);
        gc.ended.notify_all();
    }
}
