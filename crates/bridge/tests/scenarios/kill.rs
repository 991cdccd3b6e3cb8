//! kill -9 of the mirror, 30 times, while the Log's owner keeps appending:
//! the cluster ends up with exactly the Log's committed records.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streamlog::{Log, TopicConfig};
use streamlog_bridge::MirrorToKafka;

use super::to_kafka::{fill, log_dir, unique};
use crate::support::cluster::{die_with_parent, Cluster};
use crate::support::{assert_same, assert_same_java, Rng};

/// How many times the mirror is killed.
pub const CYCLES: usize = 30;

/// This test binary re-run as a following mirror (see `child`).
pub fn spawn_mirror(dir: &std::path::Path, bootstrap: &str, id: &str) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.env("BRIDGE_TEST_ROLE", "mirror-to-kafka")
        .env("BRIDGE_DIR", dir)
        .env("BRIDGE_BOOTSTRAP", bootstrap)
        .env("BRIDGE_ID", id)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    die_with_parent(&mut cmd);
    cmd.spawn().expect("spawn the mirror")
}

/// The child's side: follow until killed.
pub fn mirror_child() {
    let var = |k: &str| std::env::var(k).expect(k);
    MirrorToKafka::new(var("BRIDGE_DIR"), var("BRIDGE_BOOTSTRAP"))
        .id(var("BRIDGE_ID"))
        .follow(true)
        .verbose(std::env::var_os("BRIDGE_TEST_VERBOSE").is_some())
        .max_transaction_records(300)
        .run()
        .expect("mirror child");
}

pub fn mirror_killed_30_times_copies_exactly(cluster: &mut Cluster) {
    let dir = log_dir("kill");
    let log = Log::open(&dir).expect("open");
    let topic = unique("kill");
    log.create_topic(&topic, TopicConfig::new().partitions(3))
        .expect("create");
    fill(&log, &topic, 0, 3_000);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, topic, stop) = (log.clone(), topic.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 3_000;
            while !stop.load(Ordering::SeqCst) {
                fill(&log, &topic, next, 200);
                next += 200;
                std::thread::sleep(Duration::from_millis(20));
            }
            next
        })
    };
    let id = unique("killed");
    let mut rng = Rng::from_time();
    println!("  seed {}", rng.seed());
    for cycle in 0..CYCLES {
        let mut child = spawn_mirror(&dir, &cluster.bootstrap, &id);
        // The first start creates the topics; later ones resume. A start
        // takes 1-2 s on a two-vCPU machine, so about half the kills hit
        // it (reading progress, fencing, claiming) and half hit copying.
        let ms = if cycle == 0 {
            4_000
        } else {
            200 + rng.below(4_000)
        };
        std::thread::sleep(Duration::from_millis(ms));
        child.kill().expect("kill -9");
        child.wait().expect("reap");
    }
    stop.store(true, Ordering::SeqCst);
    let appended = writer.join().expect("writer");
    // The last mirror runs to the end of what the Log holds.
    let t0 = std::time::Instant::now();
    let report = MirrorToKafka::new(&dir, &cluster.bootstrap)
        .id(&id)
        .run()
        .expect("final mirror");
    let n = assert_same(&dir, &cluster.bootstrap, &topic);
    let java = assert_same_java(&dir, &cluster.bootstrap, &topic);
    println!(
        "  {CYCLES} kills; {appended} sends (with aborted transactions) left {n} committed records; \
         the last run copied {} in {:.1} s; librdkafka and the Java client read exactly them ({java})",
        report.records,
        t0.elapsed().as_secs_f64()
    );
    log.close().expect("close");
    std::fs::remove_dir_all(&dir).ok();
}
