//! Log → Kafka: what is copied, and what is refused.

use streamlog::{CleanupPolicy, Compression, Log, Record, TopicConfig};
use streamlog_bridge::{Error, MirrorToKafka};

use crate::support::cluster::Cluster;
use crate::support::{assert_same, kafka_records};

/// A unique name for a scenario's topics, ids and directories.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A fresh log directory (removed by the caller).
pub fn log_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(unique(name));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Appends `n` varied records to `topic`: keys, null keys, headers (one
/// with a null value), tombstones (keys on every record of a compacted
/// topic, as Kafka requires), explicit timestamps, and every tenth
/// group of records in a transaction, every third of those aborted.
pub fn fill(log: &Log, topic: &str, from: u64, n: u64) {
    let keyed = log
        .topic_config(topic)
        .expect("topic")
        .kafka_config("cleanup.policy")
        .is_some_and(|p| p.contains("compact"));
    let producer = log.producer();
    let parts = log.topic_config(topic).expect("topic").partition_count();
    let mut tp = log
        .transactional_producer(&format!("fill-{topic}"))
        .expect("txn producer");
    let mut i = from;
    while i < from + n {
        if i.is_multiple_of(10) {
            let mut txn = tp.begin_transaction().expect("begin");
            for j in 0..5u64 {
                let v = format!("txn {i}.{j}");
                txn.send_to(
                    topic,
                    ((i + j) % u64::from(parts)) as u32,
                    Record::new(v.into_bytes()).key(format!("k{}", i % 7).into_bytes()),
                )
                .expect("txn send");
            }
            if (i / 10).is_multiple_of(3) {
                txn.abort().expect("abort");
            } else {
                txn.commit().expect("commit");
            }
            i += 1;
            continue;
        }
        let mut r = Record::new(format!("value {i}").into_bytes())
            .timestamp(1_700_000_000_000 + i as i64)
            .header("seq", i.to_string().into_bytes());
        if keyed || !i.is_multiple_of(3) {
            r = r.key(format!("key-{}", i % 11).into_bytes());
        }
        if i.is_multiple_of(7) {
            r = r.null_header("empty");
        }
        if i.is_multiple_of(13) {
            r = Record::tombstone(format!("key-{}", i % 11).into_bytes());
        }
        producer
            .send_to(topic, (i % u64::from(parts)) as u32, r)
            .expect("send");
        i += 1;
    }
    producer.flush().expect("flush");
}

pub fn copies_every_committed_record_exactly(cluster: &mut Cluster) {
    let dir = log_dir("copy");
    let log = Log::open(&dir).expect("open");
    let (a, b) = (unique("orders"), unique("users"));
    log.create_topic(&a, TopicConfig::new().partitions(3))
        .expect("create");
    log.create_topic(
        &b,
        TopicConfig::new()
            .partitions(2)
            .cleanup_policy(CleanupPolicy::Compact)
            .compression(Compression::Zstd(3))
            .retention_bytes(1 << 30)
            .max_record_bytes(2 << 20),
    )
    .expect("create");
    fill(&log, &a, 0, 2_000);
    fill(&log, &b, 0, 500);
    let id = unique("mirror");
    // Mirrored while the owner still has the Log open.
    let report = MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .max_transaction_records(700)
        .run()
        .expect("mirror");
    println!(
        "  first run: {} records in {} transactions",
        report.records, report.transactions
    );
    assert!(report.topics_created.contains(&a) && report.topics_created.contains(&b));
    let n = assert_same(&dir, &cluster.bootstrap, &a) + assert_same(&dir, &cluster.bootstrap, &b);
    assert_eq!(report.records as usize, n);

    // The target topics got the source's configs.
    let admin = streamlog_bridge::kafka::admin(&cluster.bootstrap, &[]).expect("admin");
    let cfg = streamlog_bridge::kafka::describe_topic(&admin, &b).expect("describe");
    assert_eq!(cfg["cleanup.policy"], "compact");
    assert_eq!(cfg["compression.type"], "zstd");
    assert_eq!(cfg["retention.bytes"], (1u64 << 30).to_string());
    assert_eq!(cfg["retention.ms"], "-1");
    assert_eq!(
        cfg["max.message.bytes"],
        ((2u64 << 20) + streamlog_bridge::to_kafka::BATCH_FRAMING).to_string()
    );

    // More records; a second run copies only them, resuming from its
    // progress; a third finds nothing to do.
    fill(&log, &a, 2_000, 300);
    let again = MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .run()
        .expect("mirror again");
    assert_eq!(
        again.records as usize + n,
        assert_same(&dir, &cluster.bootstrap, &a) + assert_same(&dir, &cluster.bootstrap, &b)
    );
    assert_eq!(again.resumed_from, report.copied_to);
    let idle = MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .run()
        .expect("mirror idle");
    assert_eq!((idle.records, idle.transactions), (0, 0));
    log.close().expect("close");
    std::fs::remove_dir_all(&dir).ok();
}

pub fn refuses_a_target_that_does_not_match(cluster: &mut Cluster) {
    let dir = log_dir("mismatch");
    let log = Log::open(&dir).expect("open");
    let t = unique("mismatch");
    log.create_topic(&t, TopicConfig::new().partitions(2))
        .expect("create");
    log.producer()
        .send(&t, Record::new(b"x".to_vec()))
        .expect("send");
    // The same name on the cluster with 3 partitions and compaction.
    streamlog_bridge::kafka::create_topic(
        &cluster.bootstrap,
        &t,
        3,
        &[("cleanup.policy".into(), "compact".into())],
    )
    .expect("create the other topic");
    let err = MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(unique("m"))
        .run()
        .unwrap_err();
    let Error::TargetMismatch { problems } = &err else {
        panic!("{err}")
    };
    assert!(
        problems.iter().any(|p| p.contains("3 partitions")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("cleanup.policy=compact")),
        "{problems:?}"
    );
    assert!(
        kafka_records(&cluster.bootstrap, &t)
            .values()
            .all(Vec::is_empty),
        "nothing copied"
    );

    // A matching topic that holds records the mirror did not write.
    let u = unique("foreign");
    log.create_topic(&u, TopicConfig::new()).expect("create");
    let mut p = rdkafka::ClientConfig::new();
    p.set("bootstrap.servers", &cluster.bootstrap);
    let producer: rdkafka::producer::BaseProducer = p.create().expect("producer");
    streamlog_bridge::kafka::create_topic(
        &cluster.bootstrap,
        &u,
        1,
        &streamlog_bridge::to_kafka::target_configs(&TopicConfig::new()),
    )
    .expect("create");
    producer
        .send(rdkafka::producer::BaseRecord::<str, str>::to(&u).payload("foreign"))
        .map_err(|(e, _)| e)
        .expect("produce");
    rdkafka::producer::Producer::flush(&producer, std::time::Duration::from_secs(30))
        .expect("flush");
    let err = MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(unique("m"))
        .topics([u.clone()])
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::TargetNotEmpty { .. }), "{err}");

    // A keyless record in a compacted topic: Kafka refuses it, so the
    // mirror stops before it with a clear error.
    let c = unique("keyless");
    log.create_topic(
        &c,
        TopicConfig::new().cleanup_policy(CleanupPolicy::Compact),
    )
    .expect("create");
    log.producer()
        .send(&c, Record::new(b"k".to_vec()).key(b"k".to_vec()))
        .expect("send");
    log.producer()
        .send(&c, Record::new(b"no key".to_vec()))
        .expect("send");
    let err = MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(unique("m"))
        .topics([c.clone()])
        .run()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unmirrorable { what } if what.contains("@1 has no key")),
        "{err}"
    );
    log.close().expect("close");
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `mirror` following (until `stop`) on a thread of its own.
pub fn follow_in_thread(
    mirror: MirrorToKafka,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<streamlog_bridge::Result<streamlog_bridge::MirrorReport>> {
    let mirror = mirror.follow(true).stop_flag(stop.clone());
    std::thread::spawn(move || mirror.run())
}

/// The application adds partitions to a mirrored topic: a later run adds
/// them on the cluster instead of refusing the topic, and a following
/// mirror notices them while it runs; nothing written to them is missed.
pub fn partitions_added_on_the_source_are_mirrored(cluster: &mut Cluster) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let dir = log_dir("grow");
    let log = Log::open(&dir).expect("open");
    let topic = unique("grow");
    log.create_topic(&topic, TopicConfig::new().partitions(2))
        .expect("create");
    fill(&log, &topic, 0, 300);
    let id = unique("gmirror");
    MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .run()
        .expect("first copy");
    assert_same(&dir, &cluster.bootstrap, &topic);

    // Two more partitions between runs.
    log.create_partitions(&topic, 4).expect("grow to 4");
    fill(&log, &topic, 300, 300);
    MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .run()
        .expect("copy after growing");
    let n = assert_same(&dir, &cluster.bootstrap, &topic);
    println!("  4 partitions after a restart: {n} records the same on both");

    // Two more while a mirror follows.
    let stop = Arc::new(AtomicBool::new(false));
    let mirror = follow_in_thread(MirrorToKafka::new(&dir, &cluster.bootstrap).id(&id), &stop);
    std::thread::sleep(Duration::from_secs(1));
    log.create_partitions(&topic, 6).expect("grow to 6");
    fill(&log, &topic, 600, 300);
    let meta = streamlog_bridge::kafka::plain_consumer(&cluster.bootstrap, &[]).expect("meta");
    let want = log
        .partition_info(&streamlog::TopicPartition::new(&topic, 5))
        .expect("info")
        .end_offset;
    assert!(want > 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tp5 = streamlog::TopicPartition::new(&topic, 5);
        let high = streamlog_bridge::kafka::watermarks(&meta, &tp5, &cluster.bootstrap, &[])
            .map_or(0, |w| w.1);
        if high > 0 {
            break;
        }
        if mirror.is_finished() {
            panic!("the following mirror stopped: {:?}", mirror.join());
        }
        assert!(
            Instant::now() < deadline,
            "the following mirror never copied to partition 5"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    let report = mirror.join().expect("mirror thread").expect("follow");
    assert!(report.copied_to.len() == 6, "{:?}", report.copied_to);
    // Stopped at a transaction boundary: one more run copies the rest.
    MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .run()
        .expect("last copy");
    let n = assert_same(&dir, &cluster.bootstrap, &topic);
    println!("  6 partitions while following: {n} records the same on both");
    log.close().expect("close");
    std::fs::remove_dir_all(&dir).ok();
}
