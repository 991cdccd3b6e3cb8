//! Kafka → Log under kill -9: the Log's read_committed copy is exactly the
//! cluster's committed records.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use streamlog_bridge::kafka::create_topic;
use streamlog_bridge::MirrorFromKafka;

use super::to_kafka::{log_dir, unique};
use crate::support::cluster::{die_with_parent, Cluster};
use crate::support::{assert_same, assert_same_java, kafka_records, log_records, Rng};

/// How many times the copy is killed.
const CYCLES: usize = 15;

/// Produces `n` records from `from` into `topic` (3 partitions) on the
/// cluster in transactions of 1-40 records, every fourth aborted; keys,
/// null values, headers with null values and explicit timestamps.
fn produce(p: &BaseProducer, topic: &str, from: u64, n: u64, rng: &mut Rng) -> u64 {
    let mut i = from;
    while i < from + n {
        p.begin_transaction().expect("begin");
        let size = 1 + rng.below(40);
        let abort = rng.below(4) == 0;
        for _ in 0..size {
            let key = format!("key-{}", i % 17);
            let value = format!("value {i}");
            let mut headers = OwnedHeaders::new().insert(Header {
                key: "seq",
                value: Some(&i.to_string()),
            });
            if i.is_multiple_of(5) {
                headers = headers.insert(Header::<&str> {
                    key: "none",
                    value: None,
                });
            }
            let mut r = BaseRecord::<str, str>::to(topic)
                .partition((i % 3) as i32)
                .timestamp(1_600_000_000_000 + i as i64)
                .headers(headers);
            if !i.is_multiple_of(4) {
                r = r.key(&key);
            }
            if !i.is_multiple_of(9) {
                r = r.payload(&value);
            }
            let mut r = r;
            loop {
                match p.send(r) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        p.poll(Duration::from_millis(10));
                        r = back;
                    }
                }
            }
            i += 1;
        }
        p.flush(Duration::from_secs(30)).expect("flush");
        if abort {
            p.abort_transaction(Duration::from_secs(30)).expect("abort");
        } else {
            p.commit_transaction(Duration::from_secs(30))
                .expect("commit");
        }
    }
    i
}

pub fn copy_from_kafka_killed_copies_exactly(cluster: &mut Cluster) {
    let topic = unique("from");
    // The records' timestamps are from 2020: without retention.ms=-1,
    // Kafka's retention (7 days by default) deletes them.
    create_topic(
        &cluster.bootstrap,
        &topic,
        3,
        &[("retention.ms".into(), "-1".into())],
    )
    .expect("create");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &cluster.bootstrap)
        .set("transactional.id", unique("source-producer"))
        .set("linger.ms", "2")
        .set("log_level", "3")
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init");
    let mut rng = Rng::from_time();
    println!("  seed {}", rng.seed());
    let first = produce(&producer, &topic, 0, 3_000, &mut rng);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (topic, stop) = (topic.clone(), stop.clone());
        let mut rng = Rng::from_time();
        std::thread::spawn(move || {
            let mut next = first;
            while !stop.load(Ordering::SeqCst) {
                next = produce(&producer, &topic, next, 100, &mut rng);
            }
            next
        })
    };
    let dir = log_dir("edge");
    let id = unique("edge");
    for cycle in 0..CYCLES {
        let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
        cmd.env("BRIDGE_TEST_ROLE", "mirror-from-kafka")
            .env("BRIDGE_DIR", &dir)
            .env("BRIDGE_BOOTSTRAP", &cluster.bootstrap)
            .env("BRIDGE_ID", &id)
            .env("BRIDGE_TOPIC", &topic)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("spawn");
        let ms = if cycle == 0 {
            3_000
        } else {
            200 + rng.below(3_000)
        };
        std::thread::sleep(Duration::from_millis(ms));
        child.kill().expect("kill -9");
        child.wait().expect("reap");
    }
    stop.store(true, Ordering::SeqCst);
    let sent = writer.join().expect("writer");
    let report = MirrorFromKafka::new(&cluster.bootstrap, &dir)
        .id(&id)
        .topics([topic.clone()])
        .run()
        .expect("final copy");
    let java = assert_same_java(&dir, &cluster.bootstrap, &topic);
    let want = kafka_records(&cluster.bootstrap, &topic);
    let got = log_records(&dir, &topic);
    let mut n = 0;
    for (p, recs) in &want {
        let ours = &got[p];
        let seq = |r: &crate::support::Rec| {
            String::from_utf8_lossy(r.3[0].1.as_deref().unwrap_or_default()).into_owned()
        };
        for (i, ((o, theirs), mine)) in recs.iter().zip(ours).enumerate() {
            assert_eq!(
                theirs,
                mine,
                "partition {p} record #{i} (Kafka offset {o}): Kafka seq {}, Log seq {}",
                seq(theirs),
                seq(mine)
            );
        }
        if ours.len() != recs.len() {
            let extra: Vec<String> = ours[recs.len().min(ours.len())..].iter().map(seq).collect();
            let last: Vec<String> = recs
                .iter()
                .rev()
                .take(3)
                .map(|(o, r)| format!("{o}:{}", seq(r)))
                .collect();
            println!("  extra on the Log: {extra:?}; Kafka's last: {last:?}");
            let again = kafka_records(&cluster.bootstrap, &topic);
            println!("  Kafka read again: {} records", again[p].len());
        }
        assert_eq!(
            ours.len(),
            recs.len(),
            "partition {p}: Log {} vs Kafka {}",
            ours.len(),
            recs.len()
        );
        n += recs.len();
    }
    println!(
        "  {CYCLES} kills; {sent} records sent to Kafka (a quarter in aborted transactions), {n} committed; \
         the Log's read_committed copy is exactly them (the last run copied {}); so says the Java client ({java})",
        report.records
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The child's side: copy and follow until killed.
pub fn from_kafka_child() {
    let var = |k: &str| std::env::var(k).expect(k);
    MirrorFromKafka::new(var("BRIDGE_BOOTSTRAP"), var("BRIDGE_DIR"))
        .id(var("BRIDGE_ID"))
        .topics([var("BRIDGE_TOPIC")])
        .follow(true)
        .max_transaction_records(500)
        .verbose(std::env::var_os("BRIDGE_TEST_VERBOSE").is_some())
        .run()
        .expect("copy child");
}

/// Sends `n` records from `from` to every partition of `topic` in turn
/// (a fresh idempotent producer: one made before partitions were added
/// would not see them for minutes).
fn send_round_robin(bootstrap: &str, topic: &str, parts: u32, from: u64, n: u64) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("log_level", "3")
        .create()
        .expect("producer");
    for i in from..from + n {
        let (key, value) = (format!("k{i}"), format!("value {i}"));
        let mut r = BaseRecord::<str, str>::to(topic)
            .partition((i % u64::from(parts)) as i32)
            .key(&key)
            .payload(&value);
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "{e}"
                    );
                    p.poll(Duration::from_millis(10));
                    r = back;
                }
            }
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// Adds partitions to `topic` on the cluster until it has `total`.
fn grow(bootstrap: &str, topic: &str, total: usize) {
    use rdkafka::admin::{AdminOptions, NewPartitions};
    let admin = streamlog_bridge::kafka::admin(bootstrap, &[]).expect("admin");
    let r = futures_executor::block_on(
        admin.create_partitions(&[NewPartitions::new(topic, total)], &AdminOptions::new()),
    )
    .expect("create partitions");
    assert!(r.iter().all(Result::is_ok), "{r:?}");
}

/// Partitions added to a topic on the cluster: a later copy adds them to
/// the Log instead of refusing the topic, and a following copy notices
/// them while it runs; nothing written to them is missed.
pub fn partitions_added_on_the_cluster_are_copied(cluster: &mut Cluster) {
    let topic = unique("fgrow");
    create_topic(&cluster.bootstrap, &topic, 2, &[]).expect("create");
    send_round_robin(&cluster.bootstrap, &topic, 2, 0, 200);
    let dir = log_dir("fgrow");
    let id = unique("fcopy");
    let copy = || {
        MirrorFromKafka::new(&cluster.bootstrap, &dir)
            .id(&id)
            .topics([topic.clone()])
    };
    copy().run().expect("first copy");
    assert_same(&dir, &cluster.bootstrap, &topic);

    grow(&cluster.bootstrap, &topic, 4);
    send_round_robin(&cluster.bootstrap, &topic, 4, 200, 200);
    copy().run().expect("copy after growing");
    let n = assert_same(&dir, &cluster.bootstrap, &topic);
    println!("  4 partitions after a restart: {n} records the same on both");

    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (b, dir, id, topic, stop) = (
            cluster.bootstrap.clone(),
            dir.clone(),
            id.clone(),
            topic.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            MirrorFromKafka::new(b, dir)
                .id(id)
                .topics([topic])
                .follow(true)
                .stop_flag(stop)
                .run()
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    grow(&cluster.bootstrap, &topic, 6);
    send_round_robin(&cluster.bootstrap, &topic, 6, 400, 300);
    let tp5 = streamlog::TopicPartition::new(&topic, 5);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let copied = streamlog::Log::open_read_only(&dir)
            .and_then(|r| r.partition_info(&tp5))
            .map_or(0, |i| i.end_offset);
        if copied > 0 {
            break;
        }
        if follower.is_finished() {
            panic!("the following copy stopped: {:?}", follower.join());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the following copy never wrote to partition 5"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    follower.join().expect("thread").expect("follow");
    copy().run().expect("last copy");
    let n = assert_same(&dir, &cluster.bootstrap, &topic);
    println!("  6 partitions while following: {n} records the same on both");
    std::fs::remove_dir_all(&dir).ok();
}
