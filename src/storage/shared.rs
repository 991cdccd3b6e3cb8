//! [`Shared`]: what every partition of a log shares (file system, clock,
//! sync policy, the poison flag, counters, the map cache).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::policy::SyncPolicy;
use super::segment::MapCache;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::signal::Signal;

/// State every partition of a log shares.
pub(crate) struct Shared {
    pub fs: Arc<dyn FileSystem>,
    pub clock: Arc<dyn Clock>,
    pub sync: SyncPolicy,
    /// A temporary log skips every fsync: its data cannot outlive the
    /// process, so durability points would cost time and buy nothing.
    pub no_sync: bool,
    pub metrics: Counters,
    /// Keeps the number of mapped sealed segments bounded.
    pub maps: Arc<MapCache>,
    poisoned: AtomicBool,
    poison_reason: Mutex<Option<String>>,
    closed: AtomicBool,
    /// The signals of consumers parked in `poll`, whatever they wait on,
    /// so that a close can wake them all.
    parked: Mutex<Vec<Arc<Signal>>>,
}

impl Shared {
    pub fn new(
        fs: Arc<dyn FileSystem>,
        clock: Arc<dyn Clock>,
        sync: SyncPolicy,
        no_sync: bool,
        max_mapped_segments: usize,
    ) -> Self {
        Shared {
            maps: Arc::new(MapCache::new(fs.clone(), max_mapped_segments)),
            fs,
            clock,
            sync,
            no_sync,
            metrics: Counters::default(),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(None),
            closed: AtomicBool::new(false),
            parked: Mutex::new(Vec::new()),
        }
    }

    /// Refuses writes from now on, remembering the first failure.
    pub fn poison(&self, err: &Error) {
        let mut r = self.poison_reason.lock();
        if r.is_none() {
            *r = Some(err.to_string());
        }
        self.poisoned.store(true, Ordering::SeqCst);
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    pub fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        if self.is_poisoned() {
            return Err(Error::Poisoned {
                reason: self.poison_reason.lock().clone().unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// Like [`check_writable`](Self::check_writable) but ignoring a close:
    /// syncing what was appended before a close is still allowed.
    pub fn check_not_poisoned(&self) -> Result<()> {
        if self.is_poisoned() {
            return Err(Error::Poisoned {
                reason: self.poison_reason.lock().clone().unwrap_or_default(),
            });
        }
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Marks the log closed and wakes every parked consumer, whose `poll`
    /// then returns `Error::Closed`.
    pub fn set_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for s in self.parked.lock().iter() {
            s.fire();
        }
    }

    /// Registers a consumer's signal before it parks. The caller checks
    /// [`is_closed`](Self::is_closed) after this and before waiting: a close
    /// either sees the signal registered (and fires it) or happened before
    /// that check.
    pub fn add_parked(&self, s: &Arc<Signal>) {
        self.parked.lock().push(s.clone());
    }

    pub fn remove_parked(&self, s: &Arc<Signal>) {
        self.parked.lock().retain(|x| !Arc::ptr_eq(x, s));
    }
}

/// Counters behind [`Metrics`](crate::Metrics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub records_appended: AtomicU64,
    pub batches_appended: AtomicU64,
    pub bytes_appended: AtomicU64,
    pub fsyncs: AtomicU64,
    pub segments_rolled: AtomicU64,
}
