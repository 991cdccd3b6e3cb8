//! What a timed section cost per record, besides its wall time: the
//! process's user and system CPU time and its page faults, from
//! `getrusage(RUSAGE_SELF)` read just before and just after the section.
//!
//! The whole process is counted, so an engine's own background threads
//! (fjall's) count as its cost, and a multi-threaded row adds up every
//! thread's time: per record, that is CPU spent, not latency. The harness
//! runs nothing else while a section is timed.

/// The process's resource use at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    user_s: f64,
    sys_s: f64,
    minor: i64,
    major: i64,
}

/// A section's resource use per record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    /// User CPU time, nanoseconds a record.
    pub user_ns: f64,
    /// System CPU time, nanoseconds a record.
    pub sys_ns: f64,
    /// Minor page faults (page already in memory or newly zeroed) per
    /// 1000 records.
    pub minor_per_k: f64,
    /// Major page faults (waited for a read) per 1000 records.
    pub major_per_k: f64,
}

/// The process's resource use now.
pub fn usage() -> Usage {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid
    // `rusage`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage {
        user_s: secs(ru.ru_utime),
        sys_s: secs(ru.ru_stime),
        minor: ru.ru_minflt,
        major: ru.ru_majflt,
    }
}

impl Usage {
    /// What was used since `start`, per record of `records`.
    pub fn since(start: Usage, records: u64) -> Cost {
        let end = usage();
        let n = records.max(1) as f64;
        Cost {
            user_ns: (end.user_s - start.user_s) * 1e9 / n,
            sys_ns: (end.sys_s - start.sys_s) * 1e9 / n,
            minor_per_k: (end.minor - start.minor) as f64 * 1000.0 / n,
            major_per_k: (end.major - start.major) as f64 * 1000.0 / n,
        }
    }
}

impl Cost {
    /// `user ns / system ns / minor faults per 1k`, as the tables show it.
    pub fn cell(&self) -> String {
        let mut s = format!(
            "{:.0} / {:.0} / {:.1}",
            self.user_ns, self.sys_ns, self.minor_per_k
        );
        if self.major_per_k >= 0.005 {
            s.push_str(&format!(" (+{:.2} major)", self.major_per_k));
        }
        s
    }
}
