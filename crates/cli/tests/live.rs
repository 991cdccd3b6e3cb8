//! Reading a live log: another process holds the log open for writing,
//! appends continuously and runs retention and compaction, while
//! `streamlog consume --follow` prints every record exactly once, in order,
//! and the other read-only commands work.
//!
//! In its own test binary: the writer is this binary run again as a child.
#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestDir;
use streamlog::{Log, OffsetAndMetadata, Record, TopicConfig, TopicPartition};
use support::{bin, cli, json_lines, ok, s, stderr};

const RECORDS: u32 = 4000;

fn wait_for(path: &Path) {
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "timed out waiting for {path:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The writer process: appends RECORDS records with unique keys, paced,
/// running retention and compaction as it goes, then holds the log open
/// until told to stop.
#[test]
fn writer_role() {
    let Ok(dir) = std::env::var("STREAMLOG_LIVE_WRITER") else {
        return;
    };
    let dir = Path::new(&dir);
    let log = Log::open(dir).unwrap();
    log.commit_offsets(
        "g",
        &[(TopicPartition::new("live", 0), OffsetAndMetadata::new(0))],
    )
    .unwrap();
    std::fs::write(dir.join("ready"), b"").unwrap();
    wait_for(&dir.join("go"));
    let p = log.producer();
    let mut removed = 0;
    for i in 0..RECORDS {
        let v = format!("{i:06}{}", "x".repeat(90));
        p.send_to(
            "live",
            0,
            Record::new(v.into_bytes()).key(i.to_be_bytes().to_vec()),
        )
        .unwrap();
        // Each filler supersedes the one before: compaction removes them.
        p.send_to("live", 0, Record::new(&b"filler"[..]).key(&b"f"[..]))
            .unwrap();
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(2));
        }
        if i % 250 == 249 {
            removed += log.maintain().unwrap().records_removed;
            removed += log.compact("live").unwrap().records_removed;
        }
    }
    log.maintain().unwrap();
    std::fs::write(dir.join("written"), removed.to_string()).unwrap();
    wait_for(&dir.join("stop"));
    log.close().unwrap();
}

#[test]
fn follow_a_log_another_process_writes_with_retention_and_compaction() {
    let dir = TestDir::new("cli-live");
    let d = s(dir.path());
    {
        let log = Log::open(dir.path()).unwrap();
        let cfg = TopicConfig::new()
            .segment_bytes(8 << 10)
            .segment_index_bytes(4096)
            .set_kafka_config("cleanup.policy", "compact,delete")
            .unwrap()
            .set_kafka_config("retention.bytes", "262144")
            .unwrap()
            .set_kafka_config("min.cleanable.dirty.ratio", "0.01")
            .unwrap();
        log.create_topic("live", cfg).unwrap();
        log.close().unwrap();
    }
    let mut writer = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer_role", "--nocapture", "--test-threads=1"])
        .env("STREAMLOG_LIVE_WRITER", dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&dir.join("ready"));
    // The log is locked; a writing command is refused, reading ones work.
    let o = cli(&["topics", "delete", d, "live"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("open for writing by process"),
        "{}",
        stderr(&o)
    );
    assert_eq!(ok(&["topics", "list", d], None), "live\n");

    let mut follower = bin()
        .args([
            "consume",
            d,
            "live",
            "--from-beginning",
            "--follow",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(dir.join("go"), b"").unwrap();

    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    // Every record with its own key exactly once and in order; fillers
    // compaction removed before the follower reached them may be missing.
    let mut seen = 0u32;
    let mut last: Option<u64> = None;
    while seen < RECORDS {
        let line = lines.next().expect("the follower stopped early").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let offset = v["offset"].as_u64().unwrap();
        assert!(
            last.is_none_or(|l| offset > l),
            "out of order or twice: {line}"
        );
        last = Some(offset);
        let value = v["value"].as_str().unwrap();
        if value == "filler" {
            continue;
        }
        assert_eq!(&value[..6], format!("{seen:06}"), "{line}");
        assert_eq!(offset, u64::from(seen) * 2, "{line}");
        seen += 1;
    }
    wait_for(&dir.join("written"));
    let removed: u64 = std::fs::read_to_string(dir.join("written"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        removed > 0,
        "compaction rewrote no segment under the follower"
    );
    // Nothing more, not even after compaction rewrote what it had read.
    std::thread::sleep(Duration::from_millis(300));
    follower.kill().unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(
        rest.iter().all(|l| l.contains("\"filler\"")
            && l.contains(&format!("\"offset\":{}", u64::from(RECORDS) * 2 - 1))),
        "printed twice or late: {rest:?}"
    );
    let err = std::io::read_to_string(follower.stderr.take().unwrap()).unwrap();
    assert!(
        !err.contains("deleted"),
        "the follower missed records: {err}"
    );
    follower.wait().unwrap();

    // Retention ran: the log no longer starts at 0.
    let out = ok(&["topics", "describe", d, "live"], None);
    let row = out.lines().find(|l| l.starts_with("0\t")).unwrap();
    let cols: Vec<u64> = row.split('\t').map(|c| c.parse().unwrap()).collect();
    assert!(cols[1] > 0, "retention deleted nothing: {row}");
    assert_eq!(cols[2], u64::from(RECORDS) * 2, "{row}");
    // Still locked by the writer: read-only commands see it all.
    let from_start = json_lines(&ok(
        &[
            "consume",
            d,
            "live",
            "--from-beginning",
            "--format",
            "json",
            "--max",
            "1",
        ],
        None,
    ));
    assert_eq!(from_start[0]["offset"], cols[1]);
    let g = ok(&["groups", "describe", d, "g"], None);
    assert!(g.contains("unknown: the log is open in process"), "{g}");
    let end = RECORDS * 2;
    assert!(g.contains(&format!("g\tlive\t0\t0\t{end}\t{end}")), "{g}");
    assert_eq!(ok(&["groups", "list", d], None), "g\n");
    let v = ok(&["verify", d], None);
    assert!(v.ends_with("0 problems\n"), "{v}");
    let before: Vec<_> = std::fs::read_dir(dir.join("live-0"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!before.is_empty());

    std::fs::write(dir.join("stop"), b"").unwrap();
    assert!(writer.wait().unwrap().success());
}
