//! The core crate's `consumer_group` example, written once against the
//! bridge's [`Produce`] and [`Consume`] traits and run on either side:
//! three workers in one consumer group share a topic; one leaves part way
//! and the others take over its partitions from its last commit. At the
//! end it checks that every record was processed, and that the only
//! records processed twice are ones the leaver processed but never
//! committed.
//!
//! ```text
//! cargo run -p streamlog-bridge --example consumer_group                      # on a Log
//! cargo run -p streamlog-bridge --example consumer_group -- --kafka HOST:PORT # on Kafka
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use streamlog::{Assignor, ConsumerConfig, Log, OffsetReset, TopicConfig};
use streamlog_bridge::{Consume, KafkaConsumer, KafkaProducer, Produce, ProducerRecord, Result};

const RECORDS: u64 = 60_000;
const PARTITIONS: u32 = 6;

/// (worker, partition, offset) for every record processed.
type Processed = Arc<Mutex<Vec<(usize, u32, u64)>>>;

/// The application: produce, then consume in a group of three that loses
/// a member. Knows nothing of which side it runs on.
pub fn run<P, C, F>(producer: &P, topic: &str, new_worker: F) -> Result<()>
where
    P: Produce,
    C: Consume,
    F: Fn() -> Result<C> + Send + Sync + 'static,
{
    let mut sent = HashSet::new();
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(5_000) {
        let batch = chunk
            .iter()
            .map(|i| {
                ProducerRecord::new(format!("job {i}").into_bytes()).key(i.to_le_bytes().to_vec())
            })
            .collect();
        sent.extend(producer.send_batch(topic, batch)?);
    }

    let processed: Processed = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let leaver_commits: Arc<Mutex<HashMap<u32, u64>>> = Arc::default();
    let new_worker = Arc::new(new_worker);

    let workers: Vec<_> = (0..3usize)
        .map(|w| {
            let (processed, done, leaver_commits, new_worker) = (
                processed.clone(),
                done.clone(),
                leaver_commits.clone(),
                new_worker.clone(),
            );
            let topic = topic.to_owned();
            thread::spawn(move || -> Result<usize> {
                let mut c = new_worker()?;
                c.subscribe(&[&topic])?;
                let (mut mine, mut polls) = (0usize, 0);
                while !done.load(Ordering::SeqCst) {
                    let records = c.poll(Duration::from_millis(50))?;
                    for r in &records {
                        processed
                            .lock()
                            .expect("lock")
                            .push((w, r.partition, r.offset));
                        mine += 1;
                    }
                    if !records.is_empty() {
                        polls += 1;
                    }
                    if w == 2 && polls == 20 {
                        // The leaver processed this last poll's records but
                        // leaves without committing them.
                        let mut commits = leaver_commits.lock().expect("lock");
                        for tp in c.assignment() {
                            if let Some(o) = c.committed(&tp)? {
                                commits.insert(tp.partition, o);
                            }
                        }
                        println!(
                            "worker 2 leaves after {mine} records, owning {:?}",
                            c.assignment()
                        );
                        c.close()?;
                        return Ok(mine);
                    }
                    c.commit()?;
                }
                c.close()?;
                Ok(mine)
            })
        })
        .collect();

    // Wait until every record sent has been processed at least once.
    loop {
        let distinct: HashSet<(u32, u64)> = processed
            .lock()
            .expect("lock")
            .iter()
            .map(|&(_, p, o)| (p, o))
            .collect();
        if sent.iter().all(|s| distinct.contains(s)) {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    done.store(true, Ordering::SeqCst);
    for (w, h) in workers.into_iter().enumerate() {
        let n = h.join().expect("worker panicked")?;
        println!("worker {w} processed {n} records");
    }

    // Duplicates only past the leaver's last commit on a partition it owned.
    let all = processed.lock().expect("lock").clone();
    let mut count: HashMap<(u32, u64), usize> = HashMap::new();
    for &(_, p, o) in &all {
        *count.entry((p, o)).or_default() += 1;
    }
    let commits = leaver_commits.lock().expect("lock").clone();
    let leaver: HashSet<(u32, u64)> = all
        .iter()
        .filter(|r| r.0 == 2)
        .map(|&(_, p, o)| (p, o))
        .collect();
    let mut duplicates = 0;
    for (&(p, o), &n) in &count {
        if n > 1 {
            duplicates += n - 1;
            let uncommitted = leaver.contains(&(p, o)) && commits.get(&p).is_none_or(|&c| o >= c);
            assert!(
                uncommitted,
                "record {p}@{o} was processed {n} times but had been committed"
            );
        }
    }
    println!(
        "all {RECORDS} records processed; {duplicates} processed twice, all of them records the leaver never committed"
    );
    Ok(())
}

/// The application on a temporary Log.
pub fn on_log() -> Result<()> {
    let log = Log::temporary()?;
    log.create_topic("jobs", TopicConfig::new().partitions(PARTITIONS))?;
    let l = log.clone();
    run(&log.producer(), "jobs", move || {
        Ok(l.consumer(
            ConsumerConfig::new()
                .group("workers")
                .assignor(Assignor::CooperativeSticky)
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false)
                .max_poll_records(500),
        ))
    })
}

/// The application on the Kafka cluster at `bootstrap`, on topic `topic`
/// (created with six partitions) and group `group`.
pub fn on_kafka(bootstrap: &str, topic: &str, group: &str) -> Result<()> {
    streamlog_bridge::kafka::create_topic(bootstrap, topic, PARTITIONS, &[])?;
    let (b, g) = (bootstrap.to_owned(), group.to_owned());
    run(&KafkaProducer::new(bootstrap)?, topic, move || {
        KafkaConsumer::with_config(
            &b,
            &g,
            &[(
                "partition.assignment.strategy".into(),
                "cooperative-sticky".into(),
            )],
        )
    })
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--kafka") {
        Some(i) => {
            let bootstrap = args.get(i + 1).expect("--kafka HOST:PORT");
            on_kafka(bootstrap, "jobs", "workers")
        }
        None => on_log(),
    }
}
