//! Group offsets translated onto the cluster: exactly the next record, an
//! active target group left alone, never backwards.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streamlog::{IsolationLevel, Log, OffsetAndMetadata, TopicConfig, TopicPartition};
use streamlog_bridge::{progress, MirrorToKafka};

use super::to_kafka::{fill, log_dir, unique};
use crate::support::cluster::Cluster;
use crate::support::kafka_records;

/// The Log's committed records of `tp` at offsets `>= from`, as values.
fn log_values_from(dir: &std::path::Path, tp: &TopicPartition, from: u64) -> Vec<Option<Vec<u8>>> {
    let reader = Log::open_read_only(dir).expect("reader");
    let mut r = reader
        .partition_reader(tp, from, IsolationLevel::ReadCommitted)
        .expect("partition reader");
    let mut out = Vec::new();
    loop {
        let f = r.read(10_000).expect("read");
        if f.is_empty() {
            return out;
        }
        out.extend(f.into_iter().map(|r| r.value));
    }
}

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("log_level", "3")
        .create()
        .expect("consumer")
}

/// The group's committed offset of `tp` on the cluster.
fn kafka_committed(bootstrap: &str, group: &str, tp: &TopicPartition) -> Option<i64> {
    let c = group_consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&tp.topic, tp.partition as i32);
    let got = c
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("committed");
    match got.elements()[0].offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

pub fn group_offsets_translate_to_the_next_record(cluster: &mut Cluster) {
    let dir = log_dir("groups");
    let log = Log::open(&dir).expect("open");
    let topic = unique("grp");
    log.create_topic(&topic, TopicConfig::new().partitions(3))
        .expect("create");
    // Transactions (committed and aborted) leave gaps in the source
    // offsets: markers and aborted records.
    fill(&log, &topic, 0, 1_500);
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
    let ends: Vec<u64> = tps
        .iter()
        .map(|tp| log.partition_info(tp).expect("info").end_offset)
        .collect();
    // Committed offsets on a record, on a gap (an aborted record or a
    // marker: the first offset not holding a committed record), and at
    // the end.
    let gap = {
        let reader = Log::open_read_only(&dir).expect("reader");
        let mut r = reader
            .partition_reader(&tps[1], 0, IsolationLevel::ReadCommitted)
            .expect("r");
        let offsets: Vec<u64> = std::iter::from_fn(|| {
            let f = r.read(10_000).expect("read");
            (!f.is_empty()).then(|| f.into_iter().map(|x| x.offset).collect::<Vec<_>>())
        })
        .flatten()
        .collect();
        (1..offsets.len())
            .find(|&i| offsets[i] != offsets[i - 1] + 1)
            .map(|i| offsets[i - 1] + 1)
            .expect("a gap")
    };
    let want = [
        (tps[0].clone(), 217),
        (tps[1].clone(), gap),
        (tps[2].clone(), ends[2]),
    ];
    let g = unique("billing");
    let offs: Vec<_> = want
        .iter()
        .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o).metadata("m")))
        .collect();
    log.commit_offsets(&g, &offs).expect("commit");
    println!(
        "  group {g} committed {:?} on the Log",
        want.iter()
            .map(|(tp, o)| format!("{tp}@{o}"))
            .collect::<Vec<_>>()
    );

    // An active group on the cluster is left alone; a group whose cluster
    // offset is ahead is never moved back.
    let active = unique("active");
    log.commit_offsets(&active, &[(tps[0].clone(), OffsetAndMetadata::new(100))])
        .expect("commit");
    let ahead = unique("ahead");
    log.commit_offsets(&ahead, &[(tps[0].clone(), OffsetAndMetadata::new(50))])
        .expect("commit");

    let id = unique("gmirror");
    MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .groups(Vec::<String>::new())
        .run()
        .expect("copy first");
    {
        let c = group_consumer(&cluster.bootstrap, &ahead);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(400))
            .expect("tpl");
        c.commit(&tpl, CommitMode::Sync).expect("commit ahead");
    }
    let member = group_consumer(&cluster.bootstrap, &active);
    member.subscribe(&[&topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while member.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the active member got no assignment"
        );
        let _ = member.poll(Duration::from_millis(100));
    }
    let active_before = kafka_committed(&cluster.bootstrap, &active, &tps[0]);

    let report = MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .groups([g.clone(), active.clone(), ahead.clone()])
        .run()
        .expect("mirror with groups");
    let tr = |name: &str| {
        report
            .groups
            .iter()
            .find(|t| t.group == name)
            .expect("translation")
            .clone()
    };
    assert!(tr(&g).complete(), "{:?}", tr(&g));
    assert!(tr(&active).active_on_target, "{:?}", tr(&active));
    assert_eq!(
        kafka_committed(&cluster.bootstrap, &active, &tps[0]),
        active_before
    );
    assert_eq!(
        kafka_committed(&cluster.bootstrap, &ahead, &tps[0]),
        Some(400),
        "moved backwards"
    );
    drop(member);

    // Exactly the next record: from the translated offset the cluster
    // holds exactly the Log's records from the committed offset.
    let kafka = kafka_records(&cluster.bootstrap, &topic);
    for (tp, s) in &want {
        let t = kafka_committed(&cluster.bootstrap, &g, tp).expect("translated");
        let theirs: Vec<Option<Vec<u8>>> = kafka[&tp.partition]
            .iter()
            .filter(|(o, _)| *o >= t)
            .map(|(_, r)| r.1.clone())
            .collect();
        let ours = log_values_from(&dir, tp, *s);
        assert_eq!(theirs, ours, "{tp}: Log {s} -> Kafka {t}");
        println!(
            "  {tp}: Log offset {s} -> Kafka offset {t}; {} records after it on both",
            ours.len()
        );
    }
    // A consumer of the group on the cluster resumes at exactly the next
    // record: the one after partition 0's offset 216 on the Log.
    let c = group_consumer(&cluster.bootstrap, &g);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    c.assign(
        &c.committed_offsets(tpl, Duration::from_secs(30))
            .expect("committed"),
    )
    .expect("assign");
    let first = match c.poll(Duration::from_secs(30)) {
        Some(Ok(m)) => m.payload().map(<[u8]>::to_vec),
        Some(Err(e)) => panic!("{e}"),
        None => panic!("nothing read"),
    };
    assert_eq!(first, log_values_from(&dir, &tps[0], 217)[0]);

    // The group reads on (on the Log) and the mirror follows it forward.
    log.commit_offsets(&g, &[(tps[0].clone(), OffsetAndMetadata::new(400))])
        .expect("commit");
    let report = MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .groups([g.clone()])
        .run()
        .expect("again");
    assert_eq!(report.groups[0].written, vec![tps[0].clone()]);
    let t = kafka_committed(&cluster.bootstrap, &g, &tps[0]).expect("translated");
    let next = kafka[&0]
        .iter()
        .find(|(o, _)| *o >= t)
        .map(|(_, r)| r.1.clone());
    assert_eq!(next, Some(log_values_from(&dir, &tps[0], 400)[0].clone()));
    log.close().expect("close");
    std::fs::remove_dir_all(&dir).ok();
}

/// The runs (source → target offset maps) of the progress topic, read
/// back from the cluster as a mirror reads them; and how many tombstones.
fn progress_runs(bootstrap: &str, progress_topic: &str) -> (progress::OffsetMap, usize) {
    let mut map = progress::OffsetMap::default();
    let mut pruned = 0;
    for (_, (k, v, ..)) in kafka_records(bootstrap, progress_topic)
        .remove(&0)
        .expect("partition 0")
    {
        if std::env::var_os("BRIDGE_TEST_VERBOSE").is_some() {
            println!(
                "  progress {:?} = {:?}",
                String::from_utf8_lossy(k.as_deref().unwrap_or_default()),
                v.as_deref().map(String::from_utf8_lossy)
            );
        }
        if let Some(p) = progress::decode(&k.unwrap_or_default(), v.as_deref()) {
            pruned += usize::from(matches!(p, progress::Progress::Pruned(..)));
            map.apply(&p);
        }
    }
    (map, pruned)
}

/// Every mirror transaction ends a run, so a long-running mirror's
/// progress would grow without end: runs wholly below the source's log
/// start are pruned (tombstones in the progress topic), and group
/// translation and resuming stay exact.
pub fn progress_runs_below_the_log_start_are_pruned(cluster: &mut Cluster) {
    let dir = log_dir("prune");
    let log = Log::open(&dir).expect("open");
    let topic = unique("prune");
    // Retention keeps about 250 of these records.
    log.create_topic(
        &topic,
        TopicConfig::new()
            .segment_bytes(4096)
            .retention_bytes(40_000),
    )
    .expect("create");
    let tp = TopicPartition::new(&topic, 0);
    let value = |i: u64| format!("{i:0>90}").into_bytes();
    let send = |from: u64, to: u64| {
        let p = log.producer();
        for i in from..to {
            p.send(&topic, streamlog::Record::new(value(i)))
                .expect("send");
        }
        p.flush().expect("flush");
    };
    let id = unique("pmirror");
    let mirror = || {
        MirrorToKafka::new(&dir, &cluster.bootstrap)
            .id(&id)
            .max_transaction_records(20)
    };
    let progress_topic = mirror().progress_topic();
    // The application writes on, retention deletes behind it, and the
    // mirror copies every 100 records (each run prunes what the log
    // start has passed).
    let mut sent = 0;
    let mut transactions = 0;
    while sent < 800 {
        send(sent, sent + 100);
        sent += 100;
        let report = mirror().run().expect("copy");
        assert_eq!(report.lost_to_retention, 0);
        transactions += report.transactions;
    }
    send(sent, sent + 10);
    sent += 10;
    let start = log.partition_info(&tp).expect("info").start_offset;
    assert!(start > 400, "retention left the log starting at {start}");
    let g = unique("pgroup");
    let committed = start + 17;
    log.commit_offsets(&g, &[(tp.clone(), OffsetAndMetadata::new(committed))])
        .expect("commit");
    mirror()
        .groups([g.clone()])
        .run()
        .expect("copy with the group");
    let (runs, pruned) = progress_runs(&cluster.bootstrap, &progress_topic);
    println!(
        "  {transactions} transactions; log start {start}: {pruned} runs pruned, {} kept",
        runs.len()
    );
    assert!(pruned > 0);
    assert!(
        runs.len() as u64 <= (sent - start) / 20 + 2,
        "{} runs kept for offsets {start}..{sent}",
        runs.len()
    );

    // Every offset the source still holds translates exactly (from the
    // progress as read back), and so does the group's committed offset.
    let kafka = kafka_records(&cluster.bootstrap, &topic);
    let at: std::collections::HashMap<i64, Option<Vec<u8>>> =
        kafka[&0].iter().map(|(o, r)| (*o, r.1.clone())).collect();
    for c in start..sent {
        let t = runs.translate(&tp, c, sent, 0).expect("translated");
        assert_eq!(at[&(t as i64)], Some(value(c)), "source {c} -> target {t}");
    }
    let t = kafka_committed(&cluster.bootstrap, &g, &tp).expect("translated");
    let theirs: Vec<Option<Vec<u8>>> = kafka[&0]
        .iter()
        .filter(|(o, _)| *o >= t)
        .map(|(_, r)| r.1.clone())
        .collect();
    assert_eq!(theirs, log_values_from(&dir, &tp, committed));

    // A mirror resumes from pruned progress with no gap and no duplicate:
    // the cluster holds every record ever sent, once, in order.
    send(sent, sent + 50);
    sent += 50;
    mirror().run().expect("last copy");
    let all: Vec<Option<Vec<u8>>> = kafka_records(&cluster.bootstrap, &topic)[&0]
        .iter()
        .map(|(_, r)| r.1.clone())
        .collect();
    let want: Vec<Option<Vec<u8>>> = (0..sent).map(|i| Some(value(i))).collect();
    assert!(
        all == want,
        "the cluster holds {} records, not the {sent} sent",
        all.len()
    );
    log.close().expect("close");
    std::fs::remove_dir_all(&dir).ok();
}
