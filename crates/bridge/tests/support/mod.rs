//! Shared by the bridge's cluster tests.
#![allow(dead_code)]

pub mod cluster;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streamlog::{IsolationLevel, Log};

/// A record as both sides compare it: key, value, timestamp, headers.
pub type Rec = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    i64,
    Vec<(String, Option<Vec<u8>>)>,
);

/// Every committed record of `topic` on the Log in `dir`, per partition,
/// read by a read-only reader.
pub fn log_records(dir: &Path, topic: &str) -> BTreeMap<u32, Vec<Rec>> {
    let reader = Log::open_read_only(dir).expect("open read-only");
    let parts = reader.topic_config(topic).expect("topic").partition_count();
    let mut out = BTreeMap::new();
    for p in 0..parts {
        let tp = streamlog::TopicPartition::new(topic, p);
        let mut r = reader
            .partition_reader(&tp, 0, IsolationLevel::ReadCommitted)
            .expect("reader");
        let mut recs = Vec::new();
        loop {
            let f = r.read(10_000).expect("read");
            if f.is_empty() {
                break;
            }
            recs.extend(
                f.into_iter()
                    .map(|r| (r.key, r.value, r.timestamp, r.headers)),
            );
        }
        out.insert(p, recs);
    }
    out
}

/// Every record of `topic` on the cluster, per partition, read
/// `read_committed` by librdkafka from the start to the end now, with
/// each record's offset.
pub fn kafka_records(bootstrap: &str, topic: &str) -> BTreeMap<u32, Vec<(i64, Rec)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bridge-test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("log_level", "3")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let parts = md.topics()[0].partitions().len();
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out: BTreeMap<u32, Vec<(i64, Rec)>> =
        (0..parts as u32).map(|p| (p, Vec::new())).collect();
    let mut eof = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while eof.len() < parts {
        assert!(Instant::now() < deadline, "reading {topic} back timed out");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(m)) => {
                eof.remove(&m.partition());
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_owned(), x.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                let rec = (
                    m.key().map(<[u8]>::to_vec),
                    m.payload().map(<[u8]>::to_vec),
                    m.timestamp().to_millis().unwrap_or(-1),
                    headers,
                );
                out.get_mut(&(m.partition() as u32))
                    .expect("partition")
                    .push((m.offset(), rec));
            }
        }
    }
    out
}

/// Asserts that the cluster holds exactly the Log's committed records of
/// `topic`, in order per partition; returns how many.
pub fn assert_same(dir: &Path, bootstrap: &str, topic: &str) -> usize {
    let want = log_records(dir, topic);
    let got = kafka_records(bootstrap, topic);
    let mut n = 0;
    for (p, recs) in &want {
        let theirs: Vec<&Rec> = got
            .get(p)
            .map(|v| v.iter().map(|(_, r)| r).collect())
            .unwrap_or_default();
        assert_eq!(
            theirs.len(),
            recs.len(),
            "{topic}-{p}: {} records on the cluster, {} on the Log",
            theirs.len(),
            recs.len()
        );
        for (i, (a, b)) in recs.iter().zip(theirs).enumerate() {
            assert_eq!(a, b, "{topic}-{p}: record #{i} differs");
        }
        n += recs.len();
    }
    n
}

/// A small xorshift generator, seeded from the clock (the seed is printed
/// so a failure can be replayed with `BRIDGE_TEST_SEED`).
pub struct Rng(u64, u64);

impl Rng {
    pub fn from_time() -> Rng {
        let seed = std::env::var("BRIDGE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        Rng(seed, seed)
    }
    pub fn seed(&self) -> u64 {
        self.1
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One record as Kafka's console consumer prints it with the properties
/// `assert_same_java` sets.
fn console_line(p: u32, r: &Rec) -> String {
    let text = |b: &Option<Vec<u8>>| {
        b.as_ref().map_or("null".to_owned(), |v| {
            String::from_utf8_lossy(v).into_owned()
        })
    };
    let headers = if r.3.is_empty() {
        "NO_HEADERS".to_owned()
    } else {
        r.3.iter()
            .map(|(k, v)| {
                format!(
                    "{k}:{}",
                    v.as_ref()
                        .map_or("null".to_owned(), |v| String::from_utf8_lossy(v)
                            .into_owned())
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "CreateTime:{}\tPartition:{p}\t{headers}\t{}\t{}",
        r.2,
        text(&r.0),
        text(&r.1)
    )
}

/// Asserts with Apache Kafka's Java consumer (its console consumer,
/// `read_committed`) that the cluster holds exactly the Log's committed
/// records of `topic`, in order per partition; returns a summary.
pub fn assert_same_java(dir: &Path, bootstrap: &str, topic: &str) -> String {
    let want = log_records(dir, topic);
    let total: usize = want.values().map(Vec::len).sum();
    let out = cluster::java("org.apache.kafka.tools.consumer.ConsoleConsumer")
        .args([
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--from-beginning",
        ])
        .args([
            "--isolation-level",
            "read_committed",
            "--timeout-ms",
            "15000",
        ])
        .args(["--max-messages", &total.to_string()])
        .args(["--formatter-property", "print.timestamp=true"])
        .args(["--formatter-property", "print.partition=true"])
        .args(["--formatter-property", "print.headers=true"])
        .args(["--formatter-property", "print.key=true"])
        .args(["--formatter-property", "print.value=true"])
        .stderr(std::process::Stdio::null())
        .output()
        .expect("run Kafka's console consumer");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut got: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let p = line
            .split('\t')
            .find_map(|f| f.strip_prefix("Partition:"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected console consumer line {line:?}"));
        got.entry(p).or_default().push(line.to_owned());
    }
    for (p, recs) in &want {
        let theirs = got.remove(p).unwrap_or_default();
        let ours: Vec<String> = recs.iter().map(|r| console_line(*p, r)).collect();
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a, b, "Java client: {topic}-{p} record #{i}");
        }
        assert_eq!(theirs.len(), ours.len(), "Java client: {topic}-{p} count");
    }
    assert!(
        got.is_empty(),
        "Java client read partitions the Log does not have"
    );
    format!("{total} records through the Java client")
}
