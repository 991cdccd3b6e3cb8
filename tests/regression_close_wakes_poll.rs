//! Regression (reliability audit, bug 7): `Log::close` did not wake a parked `poll`, which slept to its timeout (forever with `Duration::MAX`) and then returned `Ok(empty)`.
//!
//! Close must wake every parked consumer, whether it waits on assigned
//! partitions or on nothing at all, and their calls must return
//! `Error::Closed`.

use std::sync::mpsc;
use std::time::Duration;

use streamlog::{ConsumerConfig, Error, Log, OffsetReset, TopicPartition};

/// Runs `poll(Duration::MAX)` on another thread and returns its result, or
/// `None` if it has not returned 10 s after the log was closed.
fn poll_across_close(assign: bool, group: bool) -> Option<streamlog::Result<usize>> {
    let log = Log::temporary().unwrap();
    log.create_topic("t", Default::default()).unwrap();
    let mut cfg = ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest);
    if group {
        cfg = cfg.group("g");
    }
    let mut c = log.consumer(cfg);
    if group {
        c.subscribe(&["t"]).unwrap();
    } else if assign {
        c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let parked = std::thread::spawn(move || {
        let r = c.poll(Duration::MAX).map(|r| r.len());
        let _ = tx.send(r);
        drop(c);
    });
    // Let it park.
    std::thread::sleep(Duration::from_millis(100));
    log.close().unwrap();
    let got = rx.recv_timeout(Duration::from_secs(10)).ok();
    if got.is_some() {
        parked.join().unwrap();
    }
    got
}

#[test]
fn close_wakes_a_poll_parked_on_its_partitions() {
    let r = poll_across_close(true, false).expect("poll still parked 10 s after close");
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
}

#[test]
fn close_wakes_a_poll_with_nothing_assigned() {
    let r = poll_across_close(false, false).expect("poll still parked 10 s after close");
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
}

#[test]
fn close_wakes_a_group_member_parked_in_poll() {
    let r = poll_across_close(false, true).expect("poll still parked 10 s after close");
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
}

#[test]
fn poll_after_close_is_closed() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", Default::default()).unwrap();
    let mut c = log.consumer(ConsumerConfig::new());
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    log.clone().close().unwrap();
    assert!(matches!(c.poll(Duration::ZERO), Err(Error::Closed)));
}
