//! The whole log against a plain model: random operations (create and
//! delete topics, send, send_batch, reads from any offset, commits,
//! maintain, clean reopen, power cut, process kill) on a log over the
//! simulated file system, each result checked against `Vec`s and
//! `HashMap`s. The log syncs every write (`EveryWrite`), so after a power
//! cut or a kill everything acknowledged must be back, exactly.
//!
//! Input layout: a stream of operations, each an opcode byte (mod 11: 0
//! create, 1 delete, 2 send, 3 send_batch, 4 read all, 5 read from an
//! offset, 6 commit, 7 maintain, 8 clean reopen, 9 power cut, 10 kill), a
//! topic byte, and the bytes the operation takes; at most 64 operations per
//! input. `LOG_MODEL_TRACE=1` prints each operation and every recovery
//! report while replaying an input.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use streamlog::testing::{open_sim, SimFs};
use streamlog::{
    ConsumerConfig, Error, Log, LogOptions, ManualClock, OffsetAndMetadata, Record, SyncPolicy,
    TopicConfig, TopicPartition,
};

const TOPICS: [&str; 3] = ["a", "b", "c"];
const DIR: &str = "/fuzz/log";

type Row = (Option<Vec<u8>>, Option<Vec<u8>>);

#[derive(Default)]
struct Model {
    /// Topic → partition → records in offset order.
    topics: BTreeMap<String, Vec<Vec<Row>>>,
    /// Group "g"'s commits.
    commits: HashMap<(String, u32), u64>,
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn bytes(&mut self, max: usize) -> Option<Vec<u8>> {
        let n = usize::from(self.byte()?) % (max + 1);
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a.to_vec())
    }
    /// An optional byte string: `None` when the flag byte is odd.
    fn maybe(&mut self, max: usize) -> Option<Option<Vec<u8>>> {
        let flag = self.byte()?;
        Some(if flag & 1 == 1 {
            None
        } else {
            Some(self.bytes(max)?)
        })
    }
}

struct World {
    fs: SimFs,
    clock: ManualClock,
    log: Option<Log>,
    seed: u64,
}

impl World {
    fn open(&mut self) {
        let opts = LogOptions::new()
            .sync(SyncPolicy::EveryWrite)
            .max_mapped_segments(2)
            .clock(self.clock.clone());
        self.log = Some(open_sim(&self.fs, DIR, opts).expect("open"));
        if std::env::var_os("LOG_MODEL_TRACE").is_some() {
            eprintln!("opened: {:?}", self.log().recovery_report());
        }
    }
    fn log(&self) -> &Log {
        self.log.as_ref().expect("open log")
    }
}

fn record(key: &Option<Vec<u8>>, value: &Option<Vec<u8>>) -> Record<'static> {
    let mut r = match value {
        Some(v) => Record::new(v.clone()),
        None => Record::tombstone(key.clone().unwrap_or_default()),
    };
    if let Some(k) = key {
        r = r.key(k.clone());
    }
    r
}

/// Reads a partition from `from` to its end and compares with the model.
fn check_read(log: &Log, model: &Model, topic: &str, p: u32, from: u64) {
    let rows = &model.topics[topic][p as usize];
    let tp = TopicPartition::new(topic, p);
    let info = log.partition_info(&tp).expect("partition info");
    assert_eq!(info.end_offset, rows.len() as u64, "{tp}: end");
    assert_eq!(info.start_offset, 0, "{tp}: start");
    let mut c = log.consumer(ConsumerConfig::new().max_poll_records(7));
    c.assign(std::slice::from_ref(&tp)).expect("assign");
    let from = from.min(rows.len() as u64);
    c.seek(&tp, from).expect("seek");
    let mut next = from;
    while next < rows.len() as u64 {
        let recs = c.poll(Duration::ZERO).expect("poll");
        assert!(!recs.is_empty(), "{tp}: nothing at {next}");
        for r in &recs {
            assert_eq!(r.offset(), next, "{tp}: offsets");
            let (k, v) = &rows[next as usize];
            assert_eq!(r.key(), k.as_deref(), "{tp}@{next}: key");
            // A keyless tombstone is sent with an empty key.
            let want_v = v.as_deref();
            assert_eq!(r.value(), want_v, "{tp}@{next}: value");
            next += 1;
        }
    }
    assert!(c.poll(Duration::ZERO).expect("poll at end").is_empty());
}

/// Everything the log says after a reopen equals the model.
fn check_all(log: &Log, model: &Model) {
    let names: Vec<String> = model.topics.keys().cloned().collect();
    assert_eq!(log.topics(), names, "topics");
    for (t, parts) in &model.topics {
        for p in 0..parts.len() as u32 {
            check_read(log, model, t, p, 0);
        }
    }
    let got: HashMap<(String, u32), u64> = log
        .committed_offsets("g")
        .into_iter()
        .map(|(tp, o)| ((tp.topic, tp.partition), o.offset()))
        .collect();
    assert_eq!(got, model.commits, "committed offsets");
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let seed = data
        .iter()
        .fold(7u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut w = World {
        fs: SimFs::new(None, seed),
        clock: ManualClock::new(1_700_000_000_000),
        log: None,
        seed,
    };
    w.open();
    let mut model = Model::default();
    for _ in 0..64 {
        let Some(op) = input.byte() else { break };
        let Some(t) = input.byte() else { break };
        let topic = TOPICS[usize::from(t) % TOPICS.len()];
        let exists = model.topics.contains_key(topic);
        w.clock.advance(Duration::from_millis(u64::from(op >> 4)));
        if std::env::var_os("LOG_MODEL_TRACE").is_some() {
            eprintln!("op {} on {topic} (exists: {exists})", op % 11);
        }
        match op % 11 {
            0 => {
                let parts = 1 + u32::from(t >> 6) % 3;
                let cfg = TopicConfig::new()
                    .partitions(parts)
                    .segment_bytes(1024)
                    .index_interval_bytes(64)
                    .segment_index_bytes(512);
                match w.log().create_topic(topic, cfg) {
                    Ok(()) => {
                        assert!(!exists, "{topic} created twice");
                        model
                            .topics
                            .insert(topic.into(), vec![Vec::new(); parts as usize]);
                    }
                    Err(Error::TopicExists { .. }) => assert!(exists),
                    Err(e) => panic!("create {topic}: {e}"),
                }
            }
            1 => match w.log().delete_topic(topic) {
                Ok(()) => {
                    assert!(exists);
                    model.topics.remove(topic);
                    model.commits.retain(|(tt, _), _| tt != topic);
                }
                Err(Error::UnknownTopic { .. }) => assert!(!exists),
                Err(e) => panic!("delete {topic}: {e}"),
            },
            2 => {
                let (Some(k), Some(v)) = (input.maybe(8), input.maybe(16)) else {
                    break;
                };
                let k = if v.is_none() {
                    Some(k.unwrap_or_default())
                } else {
                    k
                };
                let n = model.topics.get(topic).map_or(1, |p| p.len() as u32);
                let p = u32::from(t >> 2) % n;
                match w.log().producer().send_to(topic, p, record(&k, &v)) {
                    Ok(md) => {
                        let rows =
                            &mut model.topics.get_mut(topic).expect("sent to a topic")[p as usize];
                        assert_eq!(md.offset(), rows.len() as u64, "send offset");
                        rows.push((k, v));
                    }
                    Err(Error::UnknownTopic { .. }) => assert!(!exists),
                    Err(e) => panic!("send: {e}"),
                }
            }
            3 => {
                let Some(count) = input.byte() else { break };
                let mut rows = Vec::new();
                for _ in 0..1 + count % 6 {
                    let (Some(k), Some(v)) = (input.maybe(4), input.bytes(12)) else {
                        break;
                    };
                    rows.push((k, Some(v)));
                }
                if rows.is_empty() {
                    continue;
                }
                let recs = rows.iter().map(|(k, v)| record(k, v)).collect();
                match w.log().producer().send_batch(topic, recs) {
                    Ok(mds) => {
                        assert_eq!(mds.len(), rows.len());
                        let parts = model.topics.get_mut(topic).expect("sent to a topic");
                        for (md, row) in mds.iter().zip(rows) {
                            let r = &mut parts[md.partition() as usize];
                            assert_eq!(md.offset(), r.len() as u64, "batch offset");
                            r.push(row);
                        }
                    }
                    Err(Error::UnknownTopic { .. }) => assert!(!exists),
                    Err(e) => panic!("send_batch: {e}"),
                }
            }
            4 | 5 => {
                if let Some(parts) = model.topics.get(topic) {
                    let p = u32::from(t >> 2) % parts.len() as u32;
                    let from = if op % 11 == 4 { 0 } else { u64::from(op >> 2) };
                    check_read(w.log(), &model, topic, p, from);
                }
            }
            6 => {
                let Some(o) = input.byte() else { break };
                let Some(parts) = model.topics.get(topic) else {
                    continue;
                };
                let p = u32::from(t >> 2) % parts.len() as u32;
                let end = parts[p as usize].len() as u64;
                let tp = TopicPartition::new(topic, p);
                let mut c = w
                    .log()
                    .consumer(ConsumerConfig::new().group("g").enable_auto_commit(false));
                c.assign(std::slice::from_ref(&tp)).expect("assign");
                let offsets = [(tp, OffsetAndMetadata::new(u64::from(o)))]
                    .into_iter()
                    .collect();
                match c.commit_offsets(&offsets) {
                    Ok(()) => {
                        assert!(u64::from(o) <= end);
                        model.commits.insert((topic.into(), p), u64::from(o));
                    }
                    Err(Error::OffsetOutOfRange { .. }) => assert!(u64::from(o) > end),
                    Err(e) => panic!("commit: {e}"),
                }
            }
            7 => {
                w.log().maintain().expect("maintain");
            }
            8 => {
                w.log.take().expect("open log").close().expect("close");
                w.open();
                check_all(w.log(), &model);
            }
            9 => {
                // A power cut: everything acknowledged was synced.
                let image = w.fs.cut_now();
                drop(w.log.take());
                w.seed = w.seed.wrapping_add(1);
                w.fs = SimFs::from_image(&image, None, w.seed);
                w.open();
                check_all(w.log(), &model);
            }
            _ => {
                // A kill of the process: the page cache survives.
                w.fs.kill_now();
                drop(w.log.take());
                w.fs = SimFs::restart(&w.fs, None);
                w.open();
                check_all(w.log(), &model);
            }
        }
    }
    check_all(w.log(), &model);
});
