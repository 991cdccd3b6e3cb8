//! A broker killed during mirroring (the leader of a mirrored partition):
//! the mirror goes on and the result is still exact.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streamlog::{Log, TopicConfig};
use streamlog_bridge::MirrorToKafka;

use super::to_kafka::{fill, follow_in_thread, log_dir, unique};
use crate::support::assert_same;
use crate::support::cluster::Cluster;

pub fn broker_killed_during_mirroring(cluster: &mut Cluster) {
    let dir = log_dir("broker");
    let log = Log::open(&dir).expect("open");
    let topic = unique("broker");
    log.create_topic(&topic, TopicConfig::new().partitions(3))
        .expect("create");
    fill(&log, &topic, 0, 5_000);
    let id = unique("bmirror");
    let stop = Arc::new(AtomicBool::new(false));
    let mirror = follow_in_thread(
        MirrorToKafka::new(&dir, &cluster.bootstrap)
            .id(&id)
            .max_transaction_records(500),
        &stop,
    );
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (log, topic, writing) = (log.clone(), topic.clone(), writing.clone());
        std::thread::spawn(move || {
            let mut next = 5_000;
            while writing.load(Ordering::SeqCst) {
                fill(&log, &topic, next, 100);
                next += 100;
                std::thread::sleep(Duration::from_millis(10));
            }
            next
        })
    };
    // Kill once the mirror is copying: the target holds records.
    let meta = streamlog_bridge::kafka::plain_consumer(&cluster.bootstrap, &[]).expect("meta");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let high = rdkafka::consumer::Consumer::fetch_watermarks(
            &meta,
            &topic,
            0,
            Duration::from_secs(10),
        )
        .map_or(0, |w| w.1);
        if high > 1_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror copied nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let leader = cluster.leader_of(&topic, 0);
    println!("  killing broker {leader}, the leader of {topic}-0");
    cluster.kill(leader);
    std::thread::sleep(Duration::from_secs(8));
    println!("  restarting broker {leader}");
    cluster.restart(leader);
    cluster.wait_brokers(3);
    std::thread::sleep(Duration::from_secs(3));
    // A topic the application creates while the mirror follows is made on
    // the cluster and copied too.
    let late = unique("late");
    log.create_topic(&late, TopicConfig::new().partitions(2))
        .expect("create");
    fill(&log, &late, 0, 1_000);
    writing.store(false, Ordering::SeqCst);
    let sent = writer.join().expect("writer");
    // Stopped once it has copied records of the new topic: the follower
    // found it by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while (0..2).any(|p| {
        let tp = streamlog::TopicPartition::new(&late, p);
        streamlog_bridge::kafka::watermarks(&meta, &tp, &cluster.bootstrap, &[]).map_or(0, |w| w.1)
            == 0
    }) {
        assert!(
            std::time::Instant::now() < deadline && !mirror.is_finished(),
            "the following mirror did not copy the topic created meanwhile"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    let report = mirror
        .join()
        .expect("mirror thread")
        .expect("the mirror survived the broker");
    let last = MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .run()
        .expect("final");
    let n = assert_same(&dir, &cluster.bootstrap, &topic);
    // The following mirror itself found the topic and copied to it (its
    // creation may have been retried across the broker's restart, so
    // `topics_created` need not name it).
    assert!(
        report.copied_to.keys().any(|tp| tp.topic == late),
        "{:?}",
        report.copied_to
    );
    let late_n = assert_same(&dir, &cluster.bootstrap, &late);
    println!(
        "  {sent} sends; the following mirror copied {} records in {} transactions, {} aborted and retried \
         while the broker was down; the last run copied {}; the cluster holds exactly the {n} committed records, and the {late_n} of a topic created meanwhile",
        report.records, report.transactions, report.retried, last.records
    );
    log.close().expect("close");
    std::fs::remove_dir_all(&dir).ok();
}
