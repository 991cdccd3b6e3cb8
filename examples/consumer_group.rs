//! Three workers in one consumer group share a topic. One leaves part way;
//! the others take over its partitions from its last commit. At the end the
//! example checks that every record was processed, and that the only
//! records processed twice are ones the leaver processed but never
//! committed.
//!
//! ```text
//! cargo run --release --example consumer_group
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use streamlog::{Assignor, ConsumerConfig, Log, OffsetReset, Record, TopicConfig, TopicPartition};

const RECORDS: u64 = 60_000;
const PARTITIONS: u32 = 6;

/// (worker, partition, offset) for every record processed.
type Processed = Arc<Mutex<Vec<(usize, u32, u64)>>>;

fn main() -> Result<(), streamlog::Error> {
    let log = Log::temporary()?;
    log.create_topic("jobs", TopicConfig::new().partitions(PARTITIONS))?;
    let producer = log.producer();
    for i in 0..RECORDS {
        producer.send(
            "jobs",
            Record::new(format!("job {i}").into_bytes()).key(i.to_le_bytes().to_vec()),
        )?;
    }

    let processed: Processed = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    // What the leaver had committed when it left, per partition.
    let leaver_commits: Arc<Mutex<HashMap<u32, u64>>> = Arc::default();

    let workers: Vec<_> = (0..3usize)
        .map(|w| {
            let (log, processed, done, leaver_commits) = (
                log.clone(),
                processed.clone(),
                done.clone(),
                leaver_commits.clone(),
            );
            thread::spawn(move || -> Result<usize, streamlog::Error> {
                let mut c = log.consumer(
                    ConsumerConfig::new()
                        .group("workers")
                        .assignor(Assignor::CooperativeSticky)
                        .auto_offset_reset(OffsetReset::Earliest)
                        .enable_auto_commit(false)
                        .max_poll_records(500),
                );
                c.subscribe(&["jobs"])?;
                let mut mine = 0usize;
                let mut polls = 0;
                while !done.load(Ordering::SeqCst) {
                    let records = c.poll(Duration::from_millis(50))?;
                    for r in &records {
                        processed
                            .lock()
                            .expect("lock")
                            .push((w, r.partition(), r.offset()));
                        mine += 1;
                    }
                    polls += 1;
                    if w == 2 && polls == 20 {
                        // The leaver: it processed this last poll's records
                        // but leaves without committing them.
                        let mut commits = leaver_commits.lock().expect("lock");
                        for tp in c.assignment() {
                            if let Some(o) = c.committed(&tp)? {
                                commits.insert(tp.partition, o);
                            }
                        }
                        let owning: Vec<String> =
                            c.assignment().iter().map(|tp| tp.to_string()).collect();
                        println!(
                            "worker 2 leaves after {mine} records, owning {}",
                            owning.join(", ")
                        );
                        c.close()?;
                        return Ok(mine);
                    }
                    c.commit()?;
                }
                Ok(mine)
            })
        })
        .collect();

    // Wait until every offset has been processed at least once.
    loop {
        let distinct: HashSet<(u32, u64)> = processed
            .lock()
            .expect("lock")
            .iter()
            .map(|&(_, p, o)| (p, o))
            .collect();
        if distinct.len() as u64 == RECORDS {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    done.store(true, Ordering::SeqCst);
    for (w, h) in workers.into_iter().enumerate() {
        let n = h.join().expect("worker panicked")?;
        println!("worker {w} processed {n} records");
    }

    // Check: everything processed; duplicates only past the leaver's last
    // commit on a partition it owned.
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
    for p in 0..PARTITIONS {
        let end = log
            .partition_info(&TopicPartition::new("jobs", p))?
            .end_offset;
        assert!(
            (0..end).all(|o| count.contains_key(&(p, o))),
            "partition {p} has unprocessed records"
        );
    }
    println!(
        "all {RECORDS} records processed; {duplicates} processed twice, all of them records the leaver never committed"
    );
    Ok(())
}
