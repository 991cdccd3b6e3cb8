//! What a server reads from a log (`Log::fetch_partition`): never more than
//! the bytes asked for, but always one whole batch, as Kafka's fetch.

use streamlog::{IsolationLevel, Log, Record, TopicConfig, TopicPartition};

#[test]
fn a_fetch_returns_at_most_max_bytes_but_at_least_one_batch() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let p = log.producer();
    for _ in 0..3 {
        let recs = (0..50).map(|_| Record::new(&[7u8; 100][..])).collect();
        p.send_batch("t", recs).unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let all = log
        .fetch_partition(&tp, 0, 1 << 20, IsolationLevel::ReadCommitted)
        .unwrap();
    assert_eq!(all.batches.len(), 3);
    let one = all.batches.iter().next().unwrap().bytes().len();
    for (max, want) in [
        (1, 1),
        (one, 1),
        (2 * one - 1, 1),
        (2 * one, 2),
        (3 * one, 3),
    ] {
        let f = log
            .fetch_partition(&tp, 0, max, IsolationLevel::ReadCommitted)
            .unwrap();
        assert_eq!(f.batches.len(), want, "max_bytes {max}");
        assert!(f.batches.size_bytes() <= max.max(one));
    }
}
