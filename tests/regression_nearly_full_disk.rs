//! Regression (reliability audit, bug 5): a nearly full disk poisoned the log with 43 % of it free, because space was reserved in chunks that double up to 64 MiB with no fallback to what the next append needs, and every reopen poisoned again.
//!
//! When the large reservation does not fit, the append reserves only what
//! it needs; the log is poisoned only when the append itself cannot fit.

use streamlog::testing::{open_sim, SimFs};
use streamlog::{Error, LogOptions, Record, TopicConfig, TopicPartition};

const KIB: usize = 1024;

#[test]
fn appends_go_on_until_the_disk_is_really_full() {
    let fs = SimFs::new(None, 7);
    let log = open_sim(&fs, "/log", LogOptions::new()).unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    let value = vec![5u8; KIB];
    // 24 MiB in: the next reservation step is 16 MiB or more.
    let mut acked = 0u64;
    for _ in 0..24 * KIB {
        p.send("t", Record::new(&value[..])).unwrap();
        acked += 1;
    }
    // 4 MiB free: far less than the next chunk, far more than one record.
    fs.set_space_left(Some(4 << 20));
    let err = loop {
        match p.send("t", Record::new(&value[..])) {
            Ok(md) => {
                assert_eq!(md.offset(), acked);
                acked += 1;
            }
            Err(e) => break e,
        }
    };
    // The disk said no only once it was really full: less than a record's
    // batch and an index page were left.
    let left = fs.space_left().unwrap();
    assert!(left < 16 * KIB as u64, "{left} bytes were still free");
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{err}"
    );
    drop(p);
    drop(log);
    // Reopened with a little space (enough for the rebuilt indexes): every
    // ack is back, and appends that fit are taken instead of poisoning the
    // log again.
    fs.set_space_left(Some(1 << 20));
    let log = open_sim(&fs, "/log", LogOptions::new()).unwrap();
    let tp = TopicPartition::new("t", 0);
    assert_eq!(log.partition_info(&tp).unwrap().end_offset, acked);
    let p = log.producer();
    for i in 0..64 {
        let md = p.send("t", Record::new(&value[..])).unwrap();
        assert_eq!(md.offset(), acked + i);
    }
}
