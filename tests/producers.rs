//! A producer that sent to a topic before it was deleted, recreated or
//! grown sends to the topic as it is now: a producer remembers the first
//! topic it sent to, and that memory must never outlive the topic.
mod common;

use common::{read_all, TestDir};
use streamlog::{Error, Log, Record, TopicConfig};

#[test]
fn a_producer_sends_to_a_recreated_topic_not_the_deleted_one() {
    let dir = TestDir::new("producer-recreate");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    for i in 0..3u8 {
        assert_eq!(
            p.send("t", Record::new(&[i][..])).unwrap().offset(),
            u64::from(i)
        );
    }
    let clone = p.clone();

    log.delete_topic("t").unwrap();
    assert!(matches!(
        p.send("t", Record::new(b"lost")),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        clone.send_to("t", 0, Record::new(b"lost")),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        p.send_batch("t", vec![Record::new(b"lost")]),
        Err(Error::UnknownTopic { .. })
    ));

    log.create_topic("t", TopicConfig::new()).unwrap();
    assert_eq!(p.send("t", Record::new(b"new-0")).unwrap().offset(), 0);
    assert_eq!(
        clone
            .send_to("t", 0, Record::new(b"new-1"))
            .unwrap()
            .offset(),
        1
    );
    let mds = p
        .send_batch("t", vec![Record::new(b"new-2"), Record::new(b"new-3")])
        .unwrap();
    assert_eq!((mds[0].offset(), mds[1].offset()), (2, 3));

    let want: Vec<(u64, Vec<u8>)> = (0..4u64)
        .map(|i| (i, format!("new-{i}").into_bytes()))
        .collect();
    assert_eq!(read_all(&log, "t", 0, 0), want);

    // And after a reopen, with the same producer gone and a new one.
    drop((p, clone));
    drop(log);
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(read_all(&log, "t", 0, 0), want);
}

#[test]
fn a_producer_reaches_partitions_added_after_its_first_send() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    p.send_to("t", 0, Record::new(b"a")).unwrap();
    assert!(matches!(
        p.send_to("t", 2, Record::new(b"b")),
        Err(Error::UnknownPartition { partitions: 1, .. })
    ));

    log.create_partitions("t", 3).unwrap();
    assert_eq!(p.send_to("t", 2, Record::new(b"b")).unwrap().partition(), 2);
    // Keyed records spread over all three now.
    let mut seen = [false; 3];
    for i in 0..64u32 {
        let md = p
            .send("t", Record::new(b"v").key(i.to_be_bytes().to_vec()))
            .unwrap();
        seen[md.partition() as usize] = true;
    }
    assert_eq!(seen, [true; 3]);
    assert_eq!(read_all(&log, "t", 2, 0)[0], (0, b"b".to_vec()));
}

#[test]
fn a_producer_sends_to_other_topics_besides_its_first() {
    let log = Log::temporary().unwrap();
    log.create_topic("a", TopicConfig::new()).unwrap();
    log.create_topic("b", TopicConfig::new()).unwrap();
    let p = log.producer();
    for i in 0..10u64 {
        let (topic, value) = if i % 2 == 0 {
            ("a", b"to-a")
        } else {
            ("b", b"to-b")
        };
        let md = p.send(topic, Record::new(&value[..])).unwrap();
        assert_eq!((md.topic(), md.offset()), (topic, i / 2));
    }
    assert!(matches!(
        p.send("c", Record::new(b"x")),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(read_all(&log, "a", 0, 0).iter().all(|(_, v)| v == b"to-a"));
    assert!(read_all(&log, "b", 0, 0).iter().all(|(_, v)| v == b"to-b"));
}

/// `send_batch` answers each record of a one-partition batch with its own
/// offset and timestamp (its own, or the clock's), under the topic's name,
/// long or short.
#[test]
fn a_batch_s_metadata_names_each_record_s_offset_and_timestamp() {
    let clock = streamlog::ManualClock::new(5_000);
    let log = streamlog::LogOptions::new()
        .clock(clock.clone())
        .temporary()
        .unwrap();
    let long = "a-topic-name-longer-than-twenty-three-bytes";
    for name in ["t", long] {
        log.create_topic(name, TopicConfig::new()).unwrap();
        let p = log.producer();
        // One record first, so that the batch does not start at offset 0.
        p.send(name, Record::new(b"first")).unwrap();
        let before = log
            .partition_info(&streamlog::TopicPartition::new(name, 0))
            .unwrap()
            .end_offset;
        let records: Vec<Record<'_>> = (0..1_000i64)
            .map(|i| {
                let r = Record::new(b"v");
                if i % 3 == 0 {
                    r.timestamp(1_000 + i)
                } else {
                    r
                }
            })
            .collect();
        let mds = p.send_batch(name, records).unwrap();
        assert_eq!(mds.len(), 1_000);
        for (i, m) in mds.iter().enumerate() {
            let i = i as i64;
            assert_eq!(m.topic(), name);
            assert_eq!(m.partition(), 0);
            assert_eq!(m.offset(), before + i as u64);
            assert!(before > 0);
            let want = if i % 3 == 0 { 1_000 + i } else { 5_000 };
            assert_eq!(m.timestamp(), want, "record {i}");
        }
    }
}
