//! The mirror's benchmark (BENCHMARKS.md's rules: ratios against a peer in
//! one run, on one machine), against a three-broker Kafka cluster it
//! starts on loopback:
//!
//! - **Throughput, Log → Kafka**, 100 B and 1 KiB records: `MirrorToKafka`
//!   copying a filled Log, beside Kafka's own `kafka-producer-perf-test`
//!   (`ProducerPerformance`) writing the same number of records of the
//!   same size into the same cluster with the same acks (`all`), the same
//!   idempotence and transactions of about the same duration: the ceiling
//!   for that cluster. Both are timed alike, from the start of copying
//!   (the mirror's first read of the Log, the perf test's first send) to
//!   the last transaction's commit (`MirrorReport::copying`; the perf
//!   test's own figure), leaving out connecting and `init_transactions`; the mirror's
//!   rate with its start-up is printed beside it. The source records carry
//!   a value only, as the perf test's do. An untimed mirror and perf test
//!   warm the brokers' JIT first; passes alternate which side runs first
//!   (`MIRROR_BENCH_PASSES`, default 3), and the ratio's min, median and
//!   max close each size.
//! - **Lag of `--follow`**: a record appended on the Log until a
//!   `read_committed` consumer on the cluster receives it, p50 and p99.
//!
//! ```text
//! cargo bench -p streamlog-bridge --bench mirror
//! ```
//! The cluster's JVMs share the machine's cores with the mirror and the
//! perf test alike.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streamlog::{Log, Record, TopicConfig};
use streamlog_bridge::MirrorToKafka;
use support::cluster::{java, Cluster};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes back every dirty page on the machine, untimed, before a timed
/// phase: each test leaves hundreds of MB in the page cache (the source
/// Log, three replicas of each topic), and their writeback otherwise
/// takes CPU and disk from whichever side runs next.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// What one mirror pass measured.
struct MirrorRate {
    /// Records/s over the whole run, start-up included.
    whole: f64,
    /// Records/s while copying ([`MirrorReport::copying`]): the measure
    /// the perf test reports.
    ///
    /// [`MirrorReport::copying`]: streamlog_bridge::MirrorReport::copying
    copying: f64,
    /// The mean transaction's duration.
    txn: Duration,
}

/// Copies `n` records of `size` bytes from a fresh Log. The records carry a
/// value only, as the perf test's do.
fn mirror_throughput(cluster: &Cluster, n: u64, size: usize, run: u32) -> MirrorRate {
    let dir =
        std::env::temp_dir().join(format!("mirror-bench-{}-{size}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = Log::open(&dir).expect("open");
    let topic = format!("mirror-{size}-{run}");
    log.create_topic(&topic, TopicConfig::new().partitions(3))
        .expect("create");
    let p = log.producer();
    let value = vec![b'x'; size];
    let mut batch = Vec::new();
    for _ in 0..n {
        batch.push(Record::new(value.as_slice()));
        if batch.len() == 10_000 {
            p.send_batch(&topic, std::mem::take(&mut batch))
                .expect("send");
        }
    }
    if !batch.is_empty() {
        p.send_batch(&topic, batch).expect("send");
    }
    log.close().expect("close");
    settle();
    let t0 = Instant::now();
    let mut m = MirrorToKafka::new(&dir, &cluster.bootstrap).id(format!("bench-{size}-{run}"));
    if let Some(n) = std::env::var("MIRROR_BENCH_TXN_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        m = m
            .max_transaction_records(n)
            .max_transaction_bytes(n * (size + 64));
    }
    let r = m.run().expect("mirror");
    let took = t0.elapsed();
    assert_eq!(r.records, n);
    std::fs::remove_dir_all(&dir).ok();
    MirrorRate {
        whole: n as f64 / took.as_secs_f64(),
        copying: n as f64 / r.copying.as_secs_f64(),
        txn: r.copying / r.transactions.max(1) as u32,
    }
}

/// Kafka's producer perf test: `n` records of `size` bytes, acks=all,
/// idempotent, in transactions of `txn`; records/s.
fn perf_test(
    cluster: &Cluster,
    n: u64,
    size: usize,
    txn: Duration,
    run: u32,
    props: &[&str],
) -> f64 {
    let topic = format!("perf-{size}-{run}-{}", props.len());
    streamlog_bridge::kafka::create_topic(&cluster.bootstrap, &topic, 3, &[]).expect("create");
    settle();
    let t0 = Instant::now();
    let out = java("org.apache.kafka.tools.ProducerPerformance")
        .args(["--topic", &topic, "--num-records", &n.to_string()])
        .args(["--record-size", &size.to_string(), "--throughput", "-1"])
        .args(["--transactional-id", &topic])
        .args([
            "--transaction-duration-ms",
            &txn.as_millis().max(1).to_string(),
        ])
        .args([
            "--producer-props",
            &format!("bootstrap.servers={}", cluster.bootstrap),
        ])
        .args(["acks=all", "enable.idempotence=true"])
        .args(props)
        .stderr(Stdio::null())
        .output()
        .expect("run ProducerPerformance");
    let took = t0.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    // Its own figure, from the final line: "N records sent, X records/sec ...".
    let own = text
        .lines()
        .rev()
        .find(|l| l.contains("records sent"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|f| f.split(' ').next())
        .and_then(|f| f.parse::<f64>().ok());
    own.unwrap_or(n as f64 / took.as_secs_f64())
}

/// Appends records on a Log one at a time while a following mirror copies
/// them; the time from append to receipt by a read_committed consumer.
fn follow_lag(cluster: &Cluster, samples: usize) -> (Duration, Duration) {
    let dir = std::env::temp_dir().join(format!("mirror-lag-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = Log::open(&dir).expect("open");
    log.create_topic("lag", TopicConfig::new()).expect("create");
    log.producer()
        .send("lag", Record::new(b"warm".to_vec()))
        .expect("send");
    let stop = Arc::new(AtomicBool::new(false));
    let mirror = {
        let (dir, b, stop) = (dir.clone(), cluster.bootstrap.clone(), stop.clone());
        std::thread::spawn(move || {
            MirrorToKafka::new(dir, b)
                .id("bench-lag")
                .follow(true)
                .stop_flag(stop)
                .run()
                .expect("follow")
        })
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cluster.bootstrap)
        .set("group.id", "bench-lag")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "5")
        .set("log_level", "3")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("lag", 0, Offset::Beginning)
        .expect("tpl");
    // The topic exists once the mirror has started.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if consumer
            .fetch_metadata(Some("lag"), Duration::from_secs(5))
            .is_ok_and(|m| {
                m.topics()
                    .first()
                    .is_some_and(|t| !t.partitions().is_empty())
            })
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror never created the topic"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    consumer.assign(&tpl).expect("assign");
    let wait_for = |value: &[u8]| loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_secs(10)) {
            if m.payload() == Some(value) {
                return;
            }
        }
    };
    wait_for(b"warm");
    let producer = log.producer();
    let mut lags = Vec::with_capacity(samples);
    for i in 0..samples {
        let v = format!("sample {i} {}", now_ms());
        let t0 = Instant::now();
        producer
            .send("lag", Record::new(v.as_bytes()))
            .expect("send");
        wait_for(v.as_bytes());
        lags.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    mirror.join().expect("mirror thread");
    log.close().expect("close");
    std::fs::remove_dir_all(&dir).ok();
    lags.sort();
    (lags[lags.len() / 2], lags[lags.len() * 99 / 100])
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cluster = Cluster::start();
    println!(
        "cluster: three KRaft brokers on loopback, up in {:.1} s",
        cluster.started_in.as_secs_f64()
    );
    let passes: u32 = std::env::var("MIRROR_BENCH_PASSES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let only = std::env::var("MIRROR_BENCH_ONLY").unwrap_or_default();
    let sizes: Vec<(usize, u64)> = [(100, 1_000_000), (1024, 300_000)]
        .into_iter()
        .filter(|(size, _)| only.is_empty() || only == size.to_string())
        .collect();
    // The brokers' JVMs compile their produce paths during the first
    // seconds of load (C2 compiler threads were a third of the machine's
    // CPU in a profile of a cold run): an untimed mirror and perf test
    // first, so that neither side of the first pass pays for it.
    if !sizes.is_empty() {
        let warm = mirror_throughput(&cluster, 300_000, 100, 90);
        perf_test(&cluster, 300_000, 100, warm.txn, 90, &[]);
        let big = ["batch.size=1000000", "linger.ms=5"];
        perf_test(&cluster, 300_000, 100, warm.txn, 91, &big);
    }
    for &(size, n) in &sizes {
        let mut ratios = Vec::new();
        let mut txn = None;
        for pass in 0..passes {
            // Odd passes run the perf test first, with the previous pass's
            // transaction duration, so that neither side always runs on a
            // cluster the other has just loaded.
            let perf_first = pass % 2 == 1 && txn.is_some();
            let perf_pair = |txn: Duration| {
                // The Java client's batches (16 KiB by default) are
                // smaller than librdkafka's (1 MB): also with the
                // mirror's batching.
                let big = ["batch.size=1000000", "linger.ms=5"];
                (
                    perf_test(&cluster, n, size, txn, pass, &[]),
                    perf_test(&cluster, n, size, txn, pass, &big),
                )
            };
            let (m, (perf, big)) = if perf_first {
                let pair = perf_pair(txn.unwrap_or_default());
                (mirror_throughput(&cluster, n, size, pass), pair)
            } else {
                let m = mirror_throughput(&cluster, n, size, pass);
                let pair = perf_pair(m.txn);
                (m, pair)
            };
            txn = Some(m.txn);
            let ceiling = perf.max(big);
            ratios.push(m.copying / ceiling);
            println!(
                "{size} B x {n}: mirror {:.0} records/s while copying ({:.1} MB/s; {:.0}/s with \
                 start-up; transactions of {} ms); \
                 kafka-producer-perf-test {:.0} records/s (defaults), {:.0} (batch.size 1 MB){}: \
                 mirror / best = {:.2}x",
                m.copying,
                m.copying * size as f64 / 1e6,
                m.whole,
                m.txn.as_millis(),
                perf,
                big,
                if perf_first { ", run first" } else { "" },
                m.copying / ceiling
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "{size} B: mirror / best over {passes} passes: min {:.2}x, median {:.2}x, max {:.2}x",
            ratios[0],
            ratios[ratios.len() / 2],
            ratios[ratios.len() - 1]
        );
    }
    if !(only.is_empty() || only == "lag") {
        return;
    }
    let (p50, p99) = follow_lag(&cluster, 500);
    println!(
        "--follow lag, append on the Log to receipt on Kafka (read_committed), 500 samples: p50 {:.1} ms, p99 {:.1} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}
