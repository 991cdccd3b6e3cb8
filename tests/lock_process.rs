//! A second *process* opening a locked directory gets `Error::Locked`.
//!
//! In its own test binary: spawning a child forks this process, and a fork
//! briefly duplicates every open descriptor, lock files included, which would
//! disturb lock tests running in parallel threads.
mod common;

use common::TestDir;
use streamlog::{Error, Log};

/// Runs as the child process of `a_second_process_is_locked`.
#[test]
fn child_open_role() {
    if let Ok(dir) = std::env::var("STREAMLOG_CHILD_OPEN") {
        match Log::open(&dir) {
            Err(Error::Locked { .. }) => std::process::exit(42),
            other => {
                eprintln!("child got {other:?}");
                std::process::exit(1)
            }
        }
    }
}

#[test]
fn a_second_process_is_locked() {
    let dir = TestDir::new("lock-proc");
    let log = Log::open(dir.path()).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_open_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STREAMLOG_CHILD_OPEN", dir.path())
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(42),
        "the child process was not refused with Locked"
    );
    // Once this process closes the log, a new open succeeds.
    log.close().unwrap();
    Log::open(dir.path()).unwrap();
}
