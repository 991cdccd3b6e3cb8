//! [`Signal`]: wakes a thread parked until something changes. Partitions
//! fire it when records arrive, groups when their membership changes.

use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// Wakes a consumer parked in `poll`: a flag and a condition variable.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    fired: Mutex<bool>,
    cond: Condvar,
}

impl Signal {
    pub fn fire(&self) {
        let mut f = self.fired.lock();
        *f = true;
        self.cond.notify_all();
    }

    pub fn reset(&self) {
        *self.fired.lock() = false;
    }

    /// Waits until fired or `deadline`; returns whether it fired.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let mut f = self.fired.lock();
        while !*f {
            if self.cond.wait_until(&mut f, deadline).timed_out() {
                break;
            }
        }
        *f
    }
}
