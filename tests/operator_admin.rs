//! What an operator changes on a log: a topic's configs altered in place,
//! a group's offsets reset or the group deleted (refused while it has
//! members), each durable across a reopen.
mod common;

use common::{segment_files, TestDir};
use std::time::Duration;
use streamlog::{
    ConsumerConfig, Error, Log, OffsetAndMetadata, OffsetReset, Record, TopicConfig, TopicPartition,
};

fn fill(log: &Log, topic: &str, n: u32) {
    let p = log.producer();
    for i in 0..n {
        p.send_to(
            topic,
            0,
            Record::new(vec![b'x'; 100]).key(i.to_be_bytes().to_vec()),
        )
        .unwrap();
    }
}

#[test]
fn altered_segment_bytes_applies_at_the_next_roll_and_survives_reopen() {
    let dir = TestDir::new("alter-seg");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new().segment_index_bytes(4096))
        .unwrap();
    fill(&log, "t", 50);
    let pdir = dir.join("t-0");
    assert_eq!(segment_files(&pdir, "log").len(), 1);
    let cfg = log
        .topic_config("t")
        .unwrap()
        .set_kafka_config("segment.bytes", "1024")
        .unwrap();
    log.alter_topic_config("t", cfg.clone()).unwrap();
    fill(&log, "t", 50);
    assert!(
        segment_files(&pdir, "log").len() > 4,
        "new segments roll at the new size"
    );
    log.close().unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.topic_config("t").unwrap(), cfg);
    assert_eq!(
        log.partition_info(&TopicPartition::new("t", 0))
            .unwrap()
            .end_offset,
        100
    );
}

#[test]
fn altered_retention_applies_at_the_next_maintenance() {
    let dir = TestDir::new("alter-ret");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .segment_bytes(1024)
            .segment_index_bytes(4096),
    )
    .unwrap();
    fill(&log, "t", 200);
    let tp = TopicPartition::new("t", 0);
    log.maintain().unwrap();
    assert_eq!(log.partition_info(&tp).unwrap().start_offset, 0);
    let cfg = log
        .topic_config("t")
        .unwrap()
        .set_kafka_config("retention.bytes", "4096")
        .unwrap();
    log.alter_topic_config("t", cfg).unwrap();
    log.maintain().unwrap();
    let info = log.partition_info(&tp).unwrap();
    assert!(info.start_offset > 0, "{info:?}");
    assert_eq!(info.end_offset, 200);
}

#[test]
fn alter_refuses_a_partition_count_change_and_internal_topics() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new().partitions(2))
        .unwrap();
    let e = log
        .alter_topic_config("t", TopicConfig::new().partitions(3))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
    log.commit_offsets("g", &[]).unwrap();
    assert!(matches!(
        log.alter_topic_config("__consumer_offsets", TopicConfig::new()),
        Err(Error::InvalidTopicName { .. } | Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        log.alter_topic_config("nope", TopicConfig::new()),
        Err(Error::UnknownTopic { .. })
    ));
}

#[test]
fn reset_then_a_group_member_resumes_exactly_there_and_members_block_resets() {
    let dir = TestDir::new("reset");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    fill(&log, "t", 20);
    let tp = TopicPartition::new("t", 0);
    log.reset_group_offsets("g", &[(tp.clone(), OffsetAndMetadata::new(13))])
        .unwrap();
    log.close().unwrap();

    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.committed_offsets("g")[0].1.offset(), 13);
    let mut c = log.consumer(
        ConsumerConfig::new()
            .group("g")
            .auto_offset_reset(OffsetReset::Earliest),
    );
    c.subscribe(&["t"]).unwrap();
    let got = c.poll(Duration::from_secs(5)).unwrap();
    let offsets: Vec<u64> = got.iter().map(|r| r.offset()).collect();
    assert_eq!(offsets, (13..20).collect::<Vec<_>>());
    let e = log
        .reset_group_offsets("g", &[(tp.clone(), OffsetAndMetadata::new(0))])
        .unwrap_err();
    assert!(matches!(e, Error::GroupNotEmpty { .. }), "{e}");
    assert!(matches!(
        log.delete_group("g"),
        Err(Error::GroupNotEmpty { .. })
    ));
    assert_eq!(log.committed_offsets("g")[0].1.offset(), 13, "unchanged");
    c.close().unwrap();
    assert_eq!(log.delete_group("g").unwrap(), 1);
    assert!(log.groups().is_empty());
    assert!(matches!(
        log.delete_group("g"),
        Err(Error::UnknownGroup { .. })
    ));
    log.close().unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert!(log.groups().is_empty(), "the deletion is durable");
}

#[test]
fn a_group_claimed_by_remote_clients_cannot_be_reset() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    fill(&log, "t", 3);
    let claim = log.claim_group("g").unwrap();
    let tp = TopicPartition::new("t", 0);
    assert!(matches!(
        log.reset_group_offsets("g", &[(tp.clone(), OffsetAndMetadata::new(1))]),
        Err(Error::GroupNotEmpty { .. })
    ));
    drop(claim);
    log.reset_group_offsets("g", &[(tp, OffsetAndMetadata::new(1))])
        .unwrap();
}
