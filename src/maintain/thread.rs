//! The opt-in maintenance thread behind
//! [`Log::spawn_maintenance`](crate::Log::spawn_maintenance).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// What a maintenance pass reports to the thread: keep going (`Ok(true)`),
/// stop because the log is gone (`Ok(false)`), or a failure to keep.
pub(crate) type Pass = Box<dyn FnMut() -> Result<bool> + Send>;

/// Stops the maintenance thread of
/// [`Log::spawn_maintenance`](crate::Log::spawn_maintenance) when dropped,
/// and keeps what went wrong in it.
///
/// # Example
/// ```
/// let log = streamlog::Log::temporary()?;
/// let handle = log.spawn_maintenance(std::time::Duration::from_millis(10))?;
/// std::thread::sleep(std::time::Duration::from_millis(50));
/// assert_eq!(handle.failures(), 0);
/// assert!(handle.take_last_error().is_none());
/// handle.stop();
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug)]
pub struct MaintenanceHandle {
    stop: Arc<AtomicBool>,
    state: Arc<Failures>,
    thread: Option<JoinHandle<()>>,
}

/// The failures of the thread's passes.
#[derive(Debug, Default)]
struct Failures {
    count: AtomicU64,
    last: Mutex<Option<Error>>,
}

impl MaintenanceHandle {
    /// Starts a thread named `streamlog-maintenance` that runs `pass` every
    /// `interval` until the handle is dropped or `pass` says the log is
    /// gone.
    pub(crate) fn spawn(interval: Duration, mut pass: Pass) -> Result<MaintenanceHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Failures::default());
        let (flag, failures) = (stop.clone(), state.clone());
        let thread = std::thread::Builder::new()
            .name("streamlog-maintenance".into())
            .spawn(move || {
                let mut next = Instant::now() + interval;
                while !flag.load(Ordering::SeqCst) {
                    if Instant::now() >= next {
                        match pass() {
                            Ok(true) => {}
                            Ok(false) => return,
                            Err(e) => {
                                failures.count.fetch_add(1, Ordering::Relaxed);
                                *failures.last.lock() = Some(e);
                            }
                        }
                        next = Instant::now() + interval;
                    }
                    std::thread::park_timeout(
                        next.saturating_duration_since(Instant::now()).min(interval),
                    );
                }
            })
            .map_err(|source| Error::ThreadSpawn { source })?;
        Ok(MaintenanceHandle {
            stop,
            state,
            thread: Some(thread),
        })
    }

    /// How many maintenance passes have failed so far.
    pub fn failures(&self) -> u64 {
        self.state.count.load(Ordering::Relaxed)
    }

    /// The error of the most recent failed pass, if any since the last
    /// call (taking it clears it). A failed pass does not stop the thread:
    /// the next one runs at the next interval, and a log poisoned by an
    /// I/O error fails every pass with [`Error::Poisoned`] until reopened.
    pub fn take_last_error(&self) -> Option<Error> {
        self.state.last.lock().take()
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {}
}

impl Drop for MaintenanceHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
