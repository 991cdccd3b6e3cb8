//! Regression (reliability audit, bug 1): a group id of 65,536 bytes or more was committed, and every later `Log::open` failed with `Corrupted` because the offsets key stores the id's length in 16 bits.
//!
//! Group ids are validated before anything is written (Kafka's key schema
//! gives them an i16 length: at most 32,767 bytes), and an offsets record
//! that cannot be read on replay is reported and skipped, never a reason
//! for the log not to open.

mod common;

use common::TestDir;
use streamlog::{
    ConsumerConfig, Error, Log, OffsetAndMetadata, Record, TopicConfig, TopicPartition,
};

fn commit(log: &Log, group: &str) -> streamlog::Result<()> {
    let mut c = log.consumer(ConsumerConfig::new().group(group));
    let tp = TopicPartition::new("t", 0);
    c.assign(std::slice::from_ref(&tp))?;
    c.commit_offsets(&[(tp, OffsetAndMetadata::new(1))].into_iter().collect())
}

#[test]
fn a_group_id_too_long_to_store_is_rejected_and_the_log_reopens() {
    let dir = TestDir::new("long-group");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        log.producer().send("t", Record::new(b"x")).unwrap();
        for len in [32_768, 65_536, 70_000] {
            let id = "g".repeat(len);
            let err = commit(&log, &id).unwrap_err();
            assert!(matches!(err, Error::InvalidGroupId { .. }), "{len}: {err}");
            let mut c = log.consumer(ConsumerConfig::new().group(id));
            assert!(matches!(
                c.subscribe(&["t"]),
                Err(Error::InvalidGroupId { .. })
            ));
        }
        assert!(matches!(
            commit(&log, ""),
            Err(Error::InvalidGroupId { .. })
        ));
        // The longest storable id works, and round-trips a reopen.
        commit(&log, &"g".repeat(32_767)).unwrap();
        log.close().unwrap();
    }
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.groups(), vec!["g".repeat(32_767)]);
    assert!(log.recovery_report().offsets_skipped.is_empty());
}

#[test]
fn an_unreadable_offsets_record_is_reported_and_skipped_on_open() {
    let dir = TestDir::new("bad-offsets-record");
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        log.producer().send("t", Record::new(b"x")).unwrap();
        commit(&log, "before").unwrap();
        // A CRC-valid record whose key is not an offsets key.
        log.producer()
            .send(
                "__consumer_offsets",
                Record::new(b"v").key(&[1u8, 0, 9][..]),
            )
            .unwrap();
        // And one without a key at all.
        log.producer()
            .send("__consumer_offsets", Record::new(b"v"))
            .unwrap();
        commit(&log, "after").unwrap();
        log.close().unwrap();
    }
    let log = Log::open(dir.path()).unwrap();
    // Both good commits, around the bad records, are back.
    assert_eq!(log.groups(), vec!["after".to_owned(), "before".to_owned()]);
    let skipped = &log.recovery_report().offsets_skipped;
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped
            .iter()
            .all(|s| s.reason.contains("__consumer_offsets")),
        "{skipped:?}"
    );
}
