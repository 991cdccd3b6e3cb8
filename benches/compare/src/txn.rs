//! Exactly-once workloads (streamlog only; the peers have no transactions):
//! a consume-transform-produce copy with and without transactions, and the
//! reopen after kill -9 of a log with open transactions.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamlog::{
    ConsumerConfig, Log, LogOptions, OffsetAndMetadata, OffsetReset, Record, SyncPolicy, TopicConfig,
    TopicPartition,
};

use crate::{fill, lat_res, rm, Dirs, Kind, Pool, Report, Res, Scale, ENGINES};

/// Records copied per second from `in` to `out`, in transactions of
/// `per_txn` records (`None`: the same loop without transactions, the
/// consumer committing its offsets every `per` records).
fn copy_rate(d: &Path, total: u64, per: usize, transactional: bool, durable: bool, pool: &Pool) -> f64 {
    let sync = if durable { SyncPolicy::EveryWrite } else { SyncPolicy::default() };
    let log = LogOptions::new().sync(sync).open(d).unwrap();
    log.create_topic("in", TopicConfig::new()).unwrap();
    log.create_topic("out", TopicConfig::new()).unwrap();
    let p = log.producer();
    let mut i = 0;
    while i < total {
        let recs: Vec<Record<'_>> = pool.batch(i, 1000).into_iter().map(Record::new).collect();
        i += recs.len() as u64;
        p.send_batch("in", recs).unwrap();
    }
    p.flush().unwrap();
    let mut c = log.consumer(
        ConsumerConfig::new()
            .group("copy")
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(per),
    );
    c.subscribe(&["in"]).unwrap();
    let mut tp = log.transactional_producer("copier").unwrap();
    let out = log.producer();
    let t = Instant::now();
    let mut copied = 0u64;
    while copied < total {
        let recs = c.poll(Duration::from_millis(100)).unwrap();
        if recs.is_empty() {
            continue;
        }
        let next = recs.get(recs.len() - 1).unwrap().offset() + 1;
        // The transform: the value as it is, keyless (one batch per poll).
        let batch: Vec<Record<'_>> = recs.iter().map(|r| Record::new(r.value().unwrap())).collect();
        let n = batch.len() as u64;
        if transactional {
            let mut txn = tp.begin_transaction().unwrap();
            txn.send_batch("out", batch).unwrap();
            let offsets = HashMap::from([(TopicPartition::new("in", 0), OffsetAndMetadata::new(next))]);
            txn.send_offsets_to_transaction(&offsets, &c.group_metadata()).unwrap();
            txn.commit().unwrap();
        } else {
            out.send_batch("out", batch).unwrap();
            c.commit().unwrap();
        }
        copied += n;
    }
    let rate = copied as f64 / t.elapsed().as_secs_f64();
    drop(c);
    log.close().unwrap();
    rate
}

pub fn w_txn(rep: &mut Report, dirs: &Dirs, sc: &Scale, pool: &Pool) {
    for (per, total) in [(1usize, sc.pick(2_000, 5_000)), (10, sc.pick(10_000, 30_000)), (1000, sc.pick(300_000, 1_000_000))] {
        let wl_txn = format!("copy 100 B, {per}/transaction");
        let wl_plain = format!("copy 100 B, commit per {per}, no transaction");
        let wl_durable = format!("copy 100 B, commit per {per}, no transaction, EveryWrite");
        // Alternate the loops, best of three each: the VM is noisy.
        let (mut best_txn, mut best_plain, mut best_durable) = (0f64, 0f64, 0f64);
        for _ in 0..3 {
            let d = dirs.fresh("txn");
            best_txn = best_txn.max(copy_rate(&d, total, per, true, false, pool));
            rm(&d);
            let d = dirs.fresh("plain");
            best_plain = best_plain.max(copy_rate(&d, total, per, false, false, pool));
            rm(&d);
            let d = dirs.fresh("durable");
            best_durable = best_durable.max(copy_rate(&d, total, per, false, true, pool));
            rm(&d);
        }
        let cell = |x: f64| Some(Res { rps: Some(x), ..Res::default() });
        for &e in ENGINES.iter() {
            let s = e == "streamlog";
            rep.add(&wl_txn, Kind::Rate, e, if s { cell(best_txn) } else { None });
            rep.add(&wl_plain, Kind::Rate, e, if s { cell(best_plain) } else { None });
            rep.add(&wl_durable, Kind::Rate, e, if s { cell(best_durable) } else { None });
        }
        rep.note(format!(
            "copy {per}/transaction: {:.0} records/s, {:.2}x the same loop without transactions ({:.0}/s, default SyncPolicy: no fsync), {:.2}x it under EveryWrite ({:.0}/s); {total} records, best of 3 each; a commit fsyncs the output, the offsets and the decision",
            best_txn,
            best_txn / best_plain,
            best_plain,
            best_txn / best_durable,
            best_durable
        ));
    }
}

/// A child for the reopen benchmark: leaves transactions open in ten
/// partitions, then appends plain batches until it is killed.
pub fn child_crash_txn(d: &Path) {
    let pool = Pool::new(1024);
    let log = Log::open(d).unwrap();
    let _ = log.create_topic("txn", TopicConfig::new().partitions(10));
    let mut producers: Vec<_> = (0..10).map(|i| log.transactional_producer(&format!("t{i}")).unwrap()).collect();
    let mut txns: Vec<_> = producers.iter_mut().map(|p| p.begin_transaction().unwrap()).collect();
    for (i, t) in txns.iter_mut().enumerate() {
        t.send_to("txn", i as u32, Record::new(&b"open"[..])).unwrap();
    }
    let p = log.producer();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut i = 0u64;
    loop {
        let recs: Vec<Record<'_>> = pool.batch(i, 1000).into_iter().map(Record::new).collect();
        i += 1000;
        p.send_batch("t", recs).unwrap();
    }
}

pub fn w_txn_open(rep: &mut Report, dirs: &Dirs, sc: &Scale, pool: &Pool) {
    let me = std::env::current_exe().unwrap();
    for (bytes, label) in [(32u64 << 20, "32MiB"), (sc.pick(256u64 << 20, 2 << 30), if sc.quick { "256MiB" } else { "2GiB" })] {
        let wl = format!("open after kill -9, 10 open transactions, {label} (to first poll)");
        let d = dirs.fresh("txn-open");
        fill("streamlog", &d, bytes, pool);
        let mut v = Vec::new();
        let mut aborted = 0;
        for i in 0..3 {
            let mut child = Command::new(&me)
                .args(["--child", "crash-txn", "streamlog", d.to_str().unwrap()])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "ready", "child said {line:?}");
            std::thread::sleep(Duration::from_millis(300));
            child.kill().unwrap();
            child.wait().unwrap();
            // Open to the first record polled, as `timed_open` measures.
            let t = Instant::now();
            let log = Log::open(&d).unwrap();
            let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest).enable_auto_commit(false));
            c.assign(&[TopicPartition::new("t", 0)]).unwrap();
            while c.poll(Duration::from_millis(100)).unwrap().is_empty() {}
            let us = t.elapsed().as_secs_f64() * 1e6;
            aborted = log.recovery_report().transactions_aborted;
            assert_eq!(aborted, 10, "the open must abort the ten open transactions");
            drop(c);
            drop(log);
            if i > 0 {
                v.push(us);
            }
        }
        for &e in ENGINES.iter() {
            rep.add(&wl, Kind::Time, e, if e == "streamlog" { Some(lat_res(v.clone())) } else { None });
        }
        rep.note(format!("{wl}: each open aborted the {aborted} transactions the killed child left open; warm-up + 2 measured"));
        rm(&d);
    }
}
