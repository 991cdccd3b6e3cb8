//! kill -9 of a transactional copier (`harness = false`), after Kafka's
//! `transactions_test.py`: a child process copies topic `in` to topic
//! `out` in transactions that carry the group's offsets, as a
//! consume-transform-produce loop does; the parent kills it with SIGKILL at
//! random moments and starts it again, for `STREAMLOG_COPIER_CYCLES` cycles
//! (default 50, what CI runs), then lets one child finish. A
//! `ReadCommitted` read of `out` must then hold every input record exactly
//! once, in input order per partition.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamlog::{
    ConsumerConfig, IsolationLevel, Log, OffsetAndMetadata, OffsetReset, Record, TopicConfig,
    TopicPartition,
};

const ENV_CHILD_DIR: &str = "STREAMLOG_COPIER_CHILD_DIR";
const ENV_CYCLES: &str = "STREAMLOG_COPIER_CYCLES";
const PARTITIONS: u32 = 2;
/// Input records per partition for each cycle: enough that the copy
/// outlasts the kills.
const PER_CYCLE: u64 = 1000;
const GROUP: &str = "copier";

fn main() {
    if let Ok(dir) = std::env::var(ENV_CHILD_DIR) {
        child(Path::new(&dir), per_partition());
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("kill9_copier: test");
        return;
    }
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-')) {
        if !"kill9_copier".contains(filter.as_str()) {
            println!("0 passed, 0 failed, 1 filtered out");
            return;
        }
    }
    parent();
}

/// Copies `in` to `out` until every input record is copied, each poll's
/// records in one transaction with the offsets after them.
fn child(dir: &Path, per_partition: u64) {
    let log = Log::open(dir).expect("open");
    let mut consumer = log.consumer(
        ConsumerConfig::new()
            .group(GROUP)
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted)
            .max_poll_records(40),
    );
    consumer.subscribe(&["in"]).expect("subscribe");
    let mut producer = log.transactional_producer("copier-1").expect("init");
    let r = log.recovery_report();
    println!(
        "ready {} {}",
        r.transactions_aborted, r.transactions_committed
    );
    loop {
        let records = consumer.poll(Duration::from_millis(50)).expect("poll");
        if records.is_empty() {
            let done = (0..PARTITIONS).all(|p| {
                consumer
                    .committed(&TopicPartition::new("in", p))
                    .ok()
                    .flatten()
                    == Some(per_partition)
            });
            if done {
                return;
            }
            continue;
        }
        let mut txn = producer.begin_transaction().expect("begin");
        let mut next: HashMap<TopicPartition, OffsetAndMetadata> = HashMap::new();
        for r in &records {
            // The transform: the value, tagged.
            let mut v = b"copied:".to_vec();
            v.extend_from_slice(r.value().unwrap_or_default());
            txn.send_to("out", r.partition(), Record::new(&v))
                .expect("send");
            next.insert(
                TopicPartition::new("in", r.partition()),
                OffsetAndMetadata::new(r.offset() + 1),
            );
        }
        txn.send_offsets_to_transaction(&next, &consumer.group_metadata())
            .expect("offsets");
        match txn.commit() {
            Ok(()) => {}
            // A rebalance cannot happen with one member; anything else is a bug.
            Err(e) => panic!("commit: {e}"),
        }
    }
}

fn cycles() -> u32 {
    std::env::var(ENV_CYCLES)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

fn per_partition() -> u64 {
    PER_CYCLE * u64::from(cycles().max(5))
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn parent() {
    let started = Instant::now();
    let cycles = cycles();
    let per_partition = per_partition();
    let dir = std::env::temp_dir().join(format!("streamlog-copier-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let log = Log::open(&dir).expect("open");
        let cfg = TopicConfig::new()
            .partitions(PARTITIONS)
            .segment_bytes(64 << 10);
        log.create_topic("in", cfg.clone()).expect("in");
        log.create_topic("out", cfg).expect("out");
        let p = log.producer();
        for i in 0..per_partition {
            for part in 0..PARTITIONS {
                p.send_to("in", part, Record::new(format!("{part}:{i}").as_bytes()))
                    .expect("send");
            }
        }
        log.close().expect("close");
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut rng = Rng(u64::from(std::process::id()));
    let (mut aborted, mut committed, mut killed) = (0u64, 0u64, 0u32);
    for cycle in 0..=cycles {
        let mut child = Command::new(&exe)
            .env(ENV_CHILD_DIR, &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        if cycle == cycles {
            // The last child finishes the copy.
            let status = child.wait().expect("wait");
            assert!(status.success(), "the last copier failed: {status}");
            break;
        }
        // Kill at a random moment: often while it opens, mostly while it
        // copies.
        let delay = Duration::from_millis(rng.next() % 60);
        std::thread::sleep(delay);
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(
                status.success(),
                "cycle {cycle}: the copier failed: {status}"
            );
            continue; // it finished the copy before the kill
        }
        child.kill().expect("kill");
        child.wait().expect("wait");
        killed += 1;
        // What the child's open found: the transactions the kill before it
        // left open, aborted or rolled forward.
        let mut out = String::new();
        if let Some(mut s) = child.stdout.take() {
            use std::io::Read;
            let _ = s.read_to_string(&mut out);
        }
        if let Some(line) = out.lines().find(|l| l.starts_with("ready ")) {
            let n: Vec<u64> = line[6..]
                .split(' ')
                .filter_map(|x| x.parse().ok())
                .collect();
            aborted += n.first().copied().unwrap_or(0);
            committed += n.get(1).copied().unwrap_or(0);
        }
    }
    let log = Log::open(&dir).expect("final open");
    for part in 0..PARTITIONS {
        let tp = TopicPartition::new("out", part);
        let mut c = log.consumer(
            ConsumerConfig::new()
                .isolation_level(IsolationLevel::ReadCommitted)
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(100_000),
        );
        c.assign(std::slice::from_ref(&tp)).expect("assign");
        let mut got = Vec::new();
        loop {
            let recs = c.poll(Duration::ZERO).expect("poll");
            if recs.is_empty() {
                break;
            }
            got.extend(recs.iter().map(|r| r.value().unwrap_or_default().to_vec()));
        }
        let want: Vec<Vec<u8>> = (0..per_partition)
            .map(|i| format!("copied:{part}:{i}").into_bytes())
            .collect();
        if got != want {
            let first_bad = got.iter().zip(&want).position(|(g, w)| g != w);
            panic!(
                "out-{part}: {} records where {} were expected; first difference at {first_bad:?}",
                got.len(),
                want.len()
            );
        }
        let committed_in = log
            .consumer(ConsumerConfig::new().group(GROUP))
            .committed(&TopicPartition::new("in", part))
            .expect("committed");
        assert_eq!(committed_in, Some(per_partition));
    }
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "kill9_copier: {killed} of {cycles} cycles killed mid-copy; every input copied \
         exactly once, in order; the children's opens aborted {aborted} and rolled forward \
         {committed} transactions; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("1 passed, 0 failed");
}
