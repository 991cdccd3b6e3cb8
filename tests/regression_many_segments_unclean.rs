//! Regression (reliability audit, bug 4): an unclean open of a partition with ~6,600 or more segments failed with "Too many open files" when the checkpoint was missing, because recovery held three descriptors and three mappings per scanned segment until the partition was built.
//!
//! Recovery must stay within the bounds of a running log whatever the
//! number of segments: this test opens a log of 400 segments, with its
//! checkpoint deleted, under a limit of 128 open files.

mod common;

use common::{read_all, TestDir};
use streamlog::{Log, Record, TopicConfig};

#[test]
fn an_unclean_open_of_many_segments_stays_within_the_descriptor_limit() {
    let dir = TestDir::new("many-segments-unclean");
    let sent = {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new().segment_bytes(1024))
            .unwrap();
        let p = log.producer();
        let value = vec![7u8; 300];
        let mut n = 0u64;
        while log
            .partition_info(&streamlog::TopicPartition::new("t", 0))
            .unwrap()
            .segments
            < 400
        {
            p.send("t", Record::new(&value[..])).unwrap();
            n += 1;
        }
        log.close().unwrap();
        n
    };
    // An unclean shutdown whose checkpoint was lost: every segment is
    // scanned.
    std::fs::remove_file(dir.join("clean-shutdown")).unwrap();
    std::fs::remove_file(dir.join("partitions.checkpoint")).unwrap();
    // This test binary holds only this test, so the limit binds nothing
    // else. 128 descriptors: far below 3 per segment.
    let lim = libc::rlimit {
        rlim_cur: 128,
        rlim_max: 128,
    };
    // SAFETY: setrlimit with a valid, initialised struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let log = Log::open(dir.path()).unwrap();
    assert!(log.recovery_report().segments_scanned >= 400);
    let got = read_all(&log, "t", 0, 0);
    assert_eq!(got.len() as u64, sent);
}
