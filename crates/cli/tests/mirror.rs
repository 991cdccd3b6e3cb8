//! README "Outgrowing one machine", step by step, with the `streamlog`
//! command against a real three-broker Kafka cluster (started here with
//! the bridge's test harness): mirror with `--follow` while the
//! application writes, cut over once it has closed its Log, then the
//! application's consumers resume on Kafka at exactly the next record;
//! and the way back, `mirror --from`.

#[path = "../../bridge/tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamlog::{ConsumerConfig, Log, OffsetReset, Record, TopicConfig};
use streamlog_bridge::{Consume, KafkaConsumer};
use support::cluster::{die_with_parent, Cluster};

fn streamlog() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_streamlog"));
    die_with_parent(&mut c);
    c
}

/// Runs a `streamlog` command to its end; returns its stdout.
fn run_ok(args: &[&str]) -> String {
    let out = streamlog().args(args).output().expect("run streamlog");
    assert!(
        out.status.success(),
        "streamlog {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn append(log: &Log, from: u64, n: u64) {
    let p = log.producer();
    for i in from..from + n {
        p.send(
            "orders",
            Record::new(format!("order {i}").into_bytes())
                .key(format!("customer-{}", i % 13).into_bytes())
                .header("source", b"shop".to_vec()),
        )
        .expect("send");
    }
}

#[test]
fn migration_with_the_command_line() {
    let cluster = Cluster::start();
    println!("cluster up in {:.1} s", cluster.started_in.as_secs_f64());
    let b = cluster.bootstrap.as_str();
    let dir = std::env::temp_dir().join(format!("streamlog-migrate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().expect("utf-8 path");

    // The application: a Log with a topic, a producer and a consumer group
    // that has read part of it.
    let log = Log::open(&dir).expect("open");
    log.create_topic("orders", TopicConfig::new().partitions(3))
        .expect("create");
    append(&log, 0, 3_000);
    let mut billing = log.consumer(
        ConsumerConfig::new()
            .group("billing")
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false)
            .max_poll_records(400),
    );
    billing.subscribe(&["orders"]).expect("subscribe");
    let mut read = 0;
    while read < 1_000 {
        read += billing
            .poll(Duration::from_millis(100))
            .expect("poll")
            .len();
    }
    billing.commit().expect("commit");

    // Step 1: mirror with --follow while the application runs.
    let follow = streamlog()
        .args(["mirror", d, "--to", b, "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mirror --follow");
    append(&log, 3_000, 2_000);
    std::thread::sleep(Duration::from_secs(5));
    // SIGTERM: it stops at a transaction boundary and says what it did.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(follow.id() as i32, libc::SIGTERM) };
    let out = follow.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "mirror --follow exited with {}",
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("created topics orders"), "{text}");

    // Step 2: cut over. It waits while the application has the Log open...
    let mut cutover = streamlog()
        .args(["mirror", d, "--to", b, "--cutover"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mirror --cutover");
    append(&log, 5_000, 500);
    read = 0;
    while read < 700 {
        read += billing
            .poll(Duration::from_millis(100))
            .expect("poll")
            .len();
    }
    billing.commit().expect("commit");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        cutover.try_wait().expect("try_wait").is_none(),
        "cut over while the Log was open"
    );
    // ...and finishes once it is closed.
    let positions: Vec<(u32, u64)> = billing
        .assignment()
        .iter()
        .map(|tp| {
            (
                tp.partition,
                billing.committed(tp).expect("committed").expect("some"),
            )
        })
        .collect();
    billing.close().expect("close consumer");
    log.close().expect("close the Log");
    let t0 = Instant::now();
    let out = cutover.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cut-over failed: {text}");
    assert!(text.contains("cut over: the log has no writer"), "{text}");
    println!(
        "cut-over finished {:.1} s after the Log closed:\n{text}",
        t0.elapsed().as_secs_f64()
    );
    // Every record is on the cluster.
    assert_eq!(support::assert_same(&dir, b, "orders"), 5_500);

    // Step 3: the application's consumers switch to Kafka and resume at
    // exactly the next record of each partition.
    let on_log = support::log_records(&dir, "orders");
    let mut c = KafkaConsumer::new(b, "billing").expect("consumer");
    c.subscribe(&["orders"]).expect("subscribe");
    let mut got: std::collections::BTreeMap<u32, Vec<Vec<u8>>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let expected: usize = positions
        .iter()
        .map(|(p, o)| on_log[p].len() - *o as usize)
        .sum();
    let mut n = 0;
    while n < expected {
        assert!(Instant::now() < deadline, "read {n} of {expected} on Kafka");
        for r in c.poll(Duration::from_millis(200)).expect("poll") {
            got.entry(r.partition)
                .or_default()
                .push(r.value.expect("value"));
            n += 1;
        }
    }
    for (p, o) in &positions {
        // The Log's offsets are dense here (no transactions), so record
        // number == offset.
        let want: Vec<Vec<u8>> = on_log[p][*o as usize..]
            .iter()
            .map(|r| r.1.clone().expect("value"))
            .collect();
        assert_eq!(
            got.get(p).cloned().unwrap_or_default(),
            want,
            "partition {p} from offset {o}"
        );
    }
    assert!(
        c.poll(Duration::from_secs(2)).expect("poll").is_empty(),
        "re-delivered"
    );

    // The way back: a Kafka topic into a fresh Log.
    let back = dir.with_extension("back");
    let _ = std::fs::remove_dir_all(&back);
    let text = run_ok(&[
        "mirror",
        "--from",
        b,
        "--topics",
        "orders",
        back.to_str().expect("utf-8"),
    ]);
    assert!(text.contains("copied 5500 records"), "{text}");
    let copy = support::log_records(&back, "orders");
    assert_eq!(copy, on_log);
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&back).ok();
}
