//! Compaction keeps the latest record of every key, at its offset, in order.
mod common;

use common::{copy_dir, segment_files, TestDir};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use streamlog::{
    CleanupPolicy, Compression, ConsumerConfig, Log, LogOptions, ManualClock, OffsetAndMetadata,
    OffsetReset, Record, TopicConfig, TopicPartition,
};

/// Every record of partition 0: (offset, key, value).
type Rows = Vec<(u64, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn rows(log: &Log, topic: &str) -> Rows {
    let tp = TopicPartition::new(topic, 0);
    let end = log.partition_info(&tp).unwrap().end_offset;
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(100_000),
    );
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let mut out = Vec::new();
    while c.position(&tp).unwrap() < end {
        let recs = c.poll(Duration::ZERO).unwrap();
        assert!(!recs.is_empty());
        for r in &recs {
            out.push((
                r.offset(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
            ));
        }
    }
    out
}

/// The latest (offset, value) per key.
fn latest(rows: &Rows) -> BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)> {
    let mut m = BTreeMap::new();
    for (o, k, v) in rows {
        m.insert(k.clone().unwrap(), (*o, v.clone()));
    }
    m
}

fn compacted(cfg: TopicConfig) -> TopicConfig {
    cfg.cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(4096)
        .index_interval_bytes(256)
}

fn fill(log: &Log, keys: u32, rounds: u32) {
    let p = log.producer();
    for r in 0..rounds {
        for k in 0..keys {
            p.send(
                "t",
                Record::new(format!("v{r}-{k}").into_bytes()).key(format!("k{k}").into_bytes()),
            )
            .unwrap();
        }
    }
}

#[test]
fn compaction_keeps_exactly_the_latest_value_of_every_key_in_order() {
    let dir = TestDir::new("compact");
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", compacted(TopicConfig::new()))
        .unwrap();
    fill(&log, 50, 40);
    let before = rows(&log, "t");
    let want = latest(&before);
    // Only durable records supersede older ones (a power cut could still
    // take a newer, unsynced one away): make everything durable first.
    log.flush().unwrap();
    let report = log.compact("t").unwrap();
    assert!(report.records_removed > 0, "{report:?}");
    let after = rows(&log, "t");
    assert!(after.len() < before.len());
    // Offsets only increase; every surviving record is unchanged.
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    for r in &after {
        assert!(before.contains(r));
    }
    assert_eq!(latest(&after), want);
    // Only the active segment may still hold superseded records.
    let active_base = *segment_files(&dir.join("t-0"), "log")
        .last()
        .map(|p| {
            p.file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .as_ref()
        .unwrap();
    for (o, k, _) in &after {
        if *o < active_base {
            assert_eq!(
                want[k.as_ref().unwrap()].0,
                *o,
                "superseded record kept at {o}"
            );
        }
    }
    // Writing and reading on after compaction, and across a reopen.
    log.producer()
        .send("t", Record::new(b"new").key(b"k1"))
        .unwrap();
    let after = rows(&log, "t");
    log.close().unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(rows(&log, "t"), after);
}

#[test]
fn tombstones_survive_the_delete_retention_then_disappear() {
    let clock = ManualClock::new(1_000_000);
    let log = LogOptions::new().clock(clock.clone()).temporary().unwrap();
    log.create_topic(
        "t",
        compacted(TopicConfig::new()).delete_retention(Duration::from_secs(60)),
    )
    .unwrap();
    let p = log.producer();
    p.send("t", Record::new(b"v").key(b"gone")).unwrap();
    p.send("t", Record::tombstone(b"gone")).unwrap();
    fill(&log, 20, 10);
    log.compact("t").unwrap();
    let tomb = |rows: &Rows| {
        rows.iter()
            .filter(|(_, k, v)| k.as_deref() == Some(b"gone") && v.is_none())
            .count()
    };
    let r = rows(&log, "t");
    assert_eq!(
        tomb(&r),
        1,
        "the tombstone is kept so consumers see the delete"
    );
    assert!(!r
        .iter()
        .any(|(_, k, v)| k.as_deref() == Some(b"gone") && v.is_some()));
    clock.advance(Duration::from_secs(61));
    log.compact("t").unwrap();
    let r = rows(&log, "t");
    assert_eq!(tomb(&r), 0, "after delete_retention the tombstone is gone");
    assert!(!r.iter().any(|(_, k, _)| k.as_deref() == Some(b"gone")));
}

#[test]
fn min_compaction_lag_protects_recent_records() {
    let clock = ManualClock::new(0);
    let log = LogOptions::new().clock(clock.clone()).temporary().unwrap();
    log.create_topic(
        "t",
        compacted(TopicConfig::new()).min_compaction_lag(Duration::from_secs(600)),
    )
    .unwrap();
    fill(&log, 10, 30);
    assert_eq!(log.compact("t").unwrap().records_removed, 0);
    clock.advance(Duration::from_secs(601));
    assert!(log.compact("t").unwrap().records_removed > 0);
}

#[test]
fn zstd_batches_and_a_hundred_thousand_keys_compact() {
    let log = Log::temporary().unwrap();
    log.create_topic(
        "t",
        TopicConfig::new()
            .cleanup_policy(CleanupPolicy::Compact)
            .compression(Compression::Zstd(1))
            .segment_bytes(1 << 20),
    )
    .unwrap();
    let p = log.producer();
    for round in 0..2u32 {
        for chunk in 0..100u32 {
            let recs = (0..1000u32)
                .map(|i| {
                    let k = chunk * 1000 + i;
                    Record::new(format!("{{\"round\":{round},\"key\":{k}}}").into_bytes())
                        .key(k.to_be_bytes().to_vec())
                })
                .collect();
            p.send_batch("t", recs).unwrap();
        }
    }
    p.send("t", Record::new(b"tail").key(b"tail")).unwrap();
    let before = rows(&log, "t");
    let want = latest(&before);
    assert_eq!(want.len(), 100_001);
    let report = log.compact("t").unwrap();
    assert!(report.records_removed > 0);
    let after = rows(&log, "t");
    assert_eq!(latest(&after), want);
    for (_, k, v) in &after {
        if k.as_deref() != Some(b"tail") {
            assert!(
                v.as_ref().unwrap().starts_with(b"{\"round\":1"),
                "only the latest round remains"
            );
        }
    }
}

#[test]
fn a_crash_at_every_step_of_the_swap_is_recovered() {
    // A cleanly closed, never compacted log, and the same log compacted.
    let original = TestDir::new("swap-orig");
    {
        let log = Log::open(original.path()).unwrap();
        log.create_topic("t", compacted(TopicConfig::new()))
            .unwrap();
        fill(&log, 30, 30);
        log.close().unwrap();
    }
    let done = TestDir::new("swap-done");
    copy_dir(original.path(), done.path());
    let want = {
        let log = Log::open(done.path()).unwrap();
        let want = latest(&rows(&log, "t"));
        log.compact("t").unwrap();
        assert_eq!(latest(&rows(&log, "t")), want);
        log.close().unwrap();
        want
    };
    let orig_segs = segment_files(&original.join("t-0"), "log");
    let done_segs = segment_files(&done.join("t-0"), "log");
    let cleaned = &done_segs[0];
    let cleaned_name = cleaned.file_name().unwrap().to_str().unwrap().to_owned();
    // The inputs the first cleaned segment replaced.
    let next_base = done_segs
        .get(1)
        .map(|p| {
            p.file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .unwrap();
    let inputs: Vec<_> = orig_segs
        .iter()
        .filter(|p| {
            p.file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                < next_base
        })
        .cloned()
        .collect();
    assert!(
        inputs.len() > 1,
        "the test needs several inputs per cleaned segment"
    );

    let states: Vec<(&str, Box<MakeState>)> = vec![
        (
            "cleaned file written",
            Box::new(|d: &Path| {
                std::fs::copy(cleaned, d.join(format!("{cleaned_name}.cleaned"))).unwrap();
            }),
        ),
        (
            "renamed to .swap",
            Box::new(|d: &Path| {
                std::fs::copy(cleaned, d.join(format!("{cleaned_name}.swap"))).unwrap();
            }),
        ),
        (
            "some inputs renamed to .deleted",
            Box::new(|d: &Path| {
                std::fs::copy(cleaned, d.join(format!("{cleaned_name}.swap"))).unwrap();
                for p in &inputs[..inputs.len() / 2] {
                    let name = p.file_name().unwrap().to_str().unwrap();
                    std::fs::rename(d.join(name), d.join(format!("{name}.deleted"))).unwrap();
                    let idx = name.replace(".log", ".index");
                    std::fs::rename(d.join(&idx), d.join(format!("{idx}.deleted"))).unwrap();
                }
            }),
        ),
        (
            "swap in place, inputs .deleted",
            Box::new(|d: &Path| {
                for p in &inputs {
                    let name = p.file_name().unwrap().to_str().unwrap();
                    std::fs::rename(d.join(name), d.join(format!("{name}.deleted"))).unwrap();
                }
                std::fs::copy(cleaned, d.join(&cleaned_name)).unwrap();
            }),
        ),
    ];
    for (what, make) in states {
        let dir = TestDir::new("swap-state");
        copy_dir(original.path(), dir.path());
        make(&dir.join("t-0"));
        let log = Log::open(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(latest(&rows(&log, "t")), want, "{what}");
        let names: Vec<String> = std::fs::read_dir(dir.join("t-0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !n.ends_with(".cleaned")
                && !n.ends_with(".swap")
                && !n.ends_with(".deleted")),
            "{what}: leftovers {names:?}"
        );
        // Still writable and compactable.
        log.producer()
            .send("t", Record::new(b"x").key(b"k0"))
            .unwrap();
        log.compact("t").unwrap();
    }
}

#[test]
fn the_offsets_topic_stays_small_under_a_million_commits() {
    let dir = TestDir::new("offsets-compact");
    let tp = TopicPartition::new("t", 0);
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", TopicConfig::new()).unwrap();
        for _ in 0..100 {
            log.producer().send("t", Record::new(b"x")).unwrap();
        }
        let mut c = log.consumer(ConsumerConfig::new().group("g").enable_auto_commit(false));
        c.assign(std::slice::from_ref(&tp)).unwrap();
        for i in 0..1_000_000u64 {
            let m = [(tp.clone(), OffsetAndMetadata::new(i % 100 + 1))]
                .into_iter()
                .collect();
            c.commit_offsets(&m).unwrap();
        }
        let before = dir_size(&dir.join("__consumer_offsets-0"));
        log.maintain().unwrap();
        let after = dir_size(&dir.join("__consumer_offsets-0"));
        let segments = segment_files(&dir.join("__consumer_offsets-0"), "log").len();
        assert!(segments <= 3, "{segments} segments left");
        assert!(after < before / 3, "{before} -> {after} bytes");
        assert!(after <= 2 * (16 << 20), "{after} bytes");
        assert_eq!(c.committed(&tp).unwrap(), Some(100));
        drop(c);
        log.close().unwrap();
    }
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(
        log.committed_offsets("g"),
        vec![(tp.clone(), log.committed_offsets("g")[0].1.clone())]
    );
    assert_eq!(log.committed_offsets("g")[0].1.offset(), 100);
}

/// Turns a copy of the original log into one crash state.
type MakeState<'a> = dyn Fn(&Path) + 'a;

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}
