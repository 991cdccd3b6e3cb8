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
