//! Open file descriptors do not grow with the number of segments: a sealed
//! segment is read through its mapping and keeps no descriptor, so a log
//! with thousands of segments stays far below the usual 1,024-descriptor
//! limit. Its own test binary, so that no other test opens files meanwhile.
#![cfg(target_os = "linux")]
mod common;

use common::{read_all, TestDir};
use streamlog::{Log, Record, TopicConfig, TopicPartition};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn sealed_segments_hold_no_file_descriptors() {
    let dir = TestDir::new("fds");
    let before = open_fds();
    let value = [b'x'; 900];
    let segments = {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().segment_bytes(4096))
            .unwrap();
        let p = log.producer();
        for _ in 0..1_200 {
            p.send("t", Record::new(&value[..])).unwrap();
        }
        let segments = std::fs::read_dir(dir.join("t-0"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "log")
            .count();
        assert!(segments >= 250, "only {segments} segments");
        let grown = open_fds() - before;
        assert!(
            grown < 20,
            "{grown} descriptors open for {segments} segments"
        );
        segments
    };
    // The same after a reopen, and every record still reads back.
    let log = Log::open(dir.path()).unwrap();
    let grown = open_fds() - before;
    assert!(
        grown < 20,
        "{grown} descriptors open for {segments} segments after reopen"
    );
    let got = read_all(&log, "t", 0, 0);
    assert_eq!(got.len(), 1_200);
    assert!(got.iter().all(|(_, v)| v.as_slice() == value));
    assert_eq!(
        log.partition_info(&TopicPartition::new("t", 0))
            .unwrap()
            .end_offset,
        1_200
    );
}
