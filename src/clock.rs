//! The injectable clock: [`Clock`], the default [`SystemClock`] and the
//! test-friendly [`ManualClock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// Record timestamps, segment age and retention read it, so tests can
/// inject a [`ManualClock`] and be deterministic.
pub trait Clock: Send + Sync + 'static {
    /// The current time in ms since the epoch.
    fn now_ms(&self) -> i64;
}

/// The system's real-time clock. The default [`Clock`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now_ms(&self) -> i64 {
        realtime_ms()
    }
}

/// The wall clock in milliseconds since the epoch, by `clock_gettime`
/// directly: `SystemTime::now().duration_since(UNIX_EPOCH)` spent a third
/// as long again as the vDSO call itself on its `Result` and normalisation,
/// about 3 % of a single small send. Before the epoch reads as 0, as
/// before.
#[allow(unsafe_code, reason = "one libc call, clock_gettime")]
fn realtime_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME always
    // exists, and on failure `ts` stays zero.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    if rc != 0 || ts.tv_sec < 0 {
        return 0;
    }
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

/// A clock that only moves when told to. Clones share the same time.
///
/// # Example
/// ```
/// use streamlog::ManualClock;
/// use std::time::Duration;
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(clock.now(), 2_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }
    /// The current reading.
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    /// Sets the reading.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    /// Moves the reading forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now()
    }
}

#[cfg(test)]
mod tests {
    use super::{Clock, SystemClock};

    #[test]
    fn the_system_clock_reads_the_wall_clock_in_milliseconds() {
        let ms = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        };
        let before = ms(std::time::SystemTime::now());
        let now = SystemClock.now_ms();
        let after = ms(std::time::SystemTime::now());
        assert!(before <= now && now <= after, "{before} {now} {after}");
    }
}
