//! The `streamlog` command line, end to end: group administration,
//! `dump` and `verify`, and the read-only commands on the committed
//! fixtures. Topics, produce and consume are in `cli.rs`.
#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use common::{segment_files, TestDir};
use streamlog::{ConsumerConfig, Log, OffsetReset};
use support::{cli, json_lines, ok, s, stderr, stdout};

#[test]
fn groups_list_describe_reset_and_delete() {
    let dir = TestDir::new("cli-groups");
    let d = s(dir.path());
    ok(&["topics", "create", d, "t", "--partitions", "2"], None);
    let lines: String = (0..40)
        .map(|i| {
            format!(
                "{{\"value\":\"v{i}\",\"partition\":{},\"timestamp\":{}}}\n",
                i % 2,
                i * 1000
            )
        })
        .collect();
    ok(&["produce", d, "t", "--format", "json"], Some(&lines));
    ok(
        &[
            "consume",
            d,
            "t",
            "--group",
            "g",
            "--from-beginning",
            "--max",
            "10",
        ],
        None,
    );
    assert_eq!(ok(&["groups", "list", d], None), "g\n");
    let out = ok(&["groups", "describe", d, "g"], None);
    assert!(out.contains("members\tnone"), "{out}");

    let committed = || {
        let log = Log::open(dir.path()).unwrap();
        let v: Vec<u64> = log
            .committed_offsets("g")
            .iter()
            .map(|(_, o)| o.offset())
            .collect();
        log.close().unwrap();
        v
    };
    let before = committed();
    let plan = ok(
        &[
            "groups",
            "reset-offsets",
            d,
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--dry-run",
        ],
        None,
    );
    assert!(plan.contains("g\tt\t0\t"), "{plan}");
    assert_eq!(committed(), before, "--dry-run changes nothing");

    for (args, want) in [
        (vec!["--to-offset", "3"], vec![3, 3]),
        (vec!["--shift-by", "5"], vec![8, 8]),
        (vec!["--shift-by", "-100"], vec![0, 0]),
        (vec!["--to-latest"], vec![20, 20]),
        (vec!["--to-offset", "1000"], vec![20, 20]),
        (vec!["--to-datetime", "10000"], vec![5, 5]),
        (vec!["--to-datetime", "1970-01-01T00:00:11Z"], vec![6, 5]),
        (vec!["--to-earliest"], vec![0, 0]),
    ] {
        let mut a = vec![
            "groups",
            "reset-offsets",
            d,
            "g",
            "--topic",
            "t",
            "--execute",
        ];
        a.extend(args.iter().copied());
        ok(&a, None);
        assert_eq!(committed(), want, "{args:?}");
    }
    // An in-process member resumes exactly where the reset put it.
    ok(
        &[
            "groups",
            "reset-offsets",
            d,
            "g",
            "--topic",
            "t",
            "--to-offset",
            "7",
            "--execute",
        ],
        None,
    );
    let log = Log::open(dir.path()).unwrap();
    let mut c = log.consumer(
        ConsumerConfig::new()
            .group("g")
            .auto_offset_reset(OffsetReset::Latest)
            .enable_auto_commit(false),
    );
    c.subscribe(&["t"]).unwrap();
    let got = c.poll(std::time::Duration::from_secs(5)).unwrap();
    let mut firsts: Vec<(u32, u64)> = Vec::new();
    for r in got.iter() {
        if !firsts.iter().any(|(p, _)| *p == r.partition()) {
            firsts.push((r.partition(), r.offset()));
        }
    }
    firsts.sort();
    assert_eq!(firsts, [(0, 7), (1, 7)]);
    // While the member is live the log is in use: both refused, nothing changed.
    for args in [
        vec![
            "groups",
            "reset-offsets",
            d,
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--execute",
        ],
        vec![
            "groups",
            "reset-offsets",
            d,
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--dry-run",
        ],
        vec!["groups", "delete", d, "g"],
    ] {
        let o = cli(&args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&o).contains("open for writing by process"),
            "{}",
            stderr(&o)
        );
    }
    let out = ok(&["groups", "describe", d, "g"], None);
    assert!(
        out.contains("members\tunknown: the log is open in process"),
        "{out}"
    );
    drop(c);
    log.close().unwrap();
    assert_eq!(committed(), vec![7, 7]);
    ok(&["groups", "delete", d, "g"], None);
    assert_eq!(ok(&["groups", "list", d], None), "");
    let o = cli(&["groups", "describe", d, "g"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn dump_and_verify_with_json_and_damage() {
    let dir = TestDir::new("cli-verify");
    let d = s(dir.path());
    ok(
        &["topics", "create", d, "t", "--config", "segment.bytes=4096"],
        None,
    );
    let lines: String = (0..100).map(|i| format!("value number {i}\n")).collect();
    ok(&["produce", d, "t"], Some(&lines));
    let out = ok(&["verify", d, "--json"], None);
    let v = json_lines(&out);
    assert_eq!(v.last().unwrap()["problems"], 0, "{out}");
    let seg = segment_files(&dir.join("t-0"), "log").remove(0);
    let out = ok(&["dump", s(&seg)], None);
    assert!(out.contains("crc=ok") && out.contains("offset=0"), "{out}");
    let batches = json_lines(&ok(&["dump", s(&seg), "--json"], None));
    assert_eq!(batches[0]["records"][0]["value"], "value number 0");
    assert_eq!(batches[0]["crc_ok"], true);
    assert_eq!(batches[0]["format_version"], 2);

    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[70] ^= 0xff; // inside the first batch's records
    std::fs::write(&seg, &bytes).unwrap();
    let o = cli(&["verify", d], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let line = stdout(&o).lines().next().unwrap().to_owned();
    assert!(line.starts_with(s(&seg)), "names the path: {line}");
    assert!(
        line.contains("at byte 0 (offset 0): CRC mismatch"),
        "{line}"
    );
    let v = json_lines(&stdout(&cli(&["verify", d, "--json"], None)));
    assert_eq!(v[0]["offset"], 0);
    assert_eq!(v[0]["position"], 0);
    let o = cli(&["dump", s(&seg)], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("crc=BAD"));
}

#[test]
fn regression_verify_fails_where_open_would() {
    // Bug: `verify` exited 0 on logs that `Log::open` rejects (a garbage
    // topic registry, a missing partition directory) and on `/etc`.
    let dir = TestDir::new("cli-verify-open");
    let d = s(dir.path());
    ok(&["topics", "create", d, "t", "--partitions", "2"], None);
    ok(&["verify", d], None);
    std::fs::remove_dir_all(dir.join("t-1")).unwrap();
    assert!(Log::open(dir.path()).is_err());
    let o = cli(&["verify", d], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("t-1"), "{}", stdout(&o));

    let dir = TestDir::new("cli-verify-registry");
    let d = s(dir.path());
    ok(&["topics", "create", d, "t"], None);
    std::fs::write(dir.join("topics.registry"), b"garbage\n").unwrap();
    assert!(Log::open(dir.path()).is_err());
    let o = cli(&["verify", d], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("topics.registry"), "{}", stdout(&o));

    let o = cli(&["verify", "/etc"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("not a streamlog log directory"));
}

#[test]
fn read_only_commands_read_both_layouts_of_the_committed_fixtures_unchanged() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    for (name, topic) in [("v1", "users"), ("v2", "users")] {
        let dir = TestDir::new(&format!("cli-fixture-{name}"));
        common::copy_dir(&fixtures.join(name), dir.path());
        let snapshot = || -> Vec<(std::path::PathBuf, Vec<u8>)> {
            let mut v = Vec::new();
            for e in walk(dir.path()) {
                v.push((e.clone(), std::fs::read(&e).unwrap()));
            }
            v.sort();
            v
        };
        let before = snapshot();
        let d = s(dir.path());
        assert!(ok(&["topics", "list", d], None).contains(topic));
        ok(&["topics", "describe", d, topic], None);
        let v = ok(&["verify", d], None);
        assert!(v.ends_with(" 0 problems\n"), "{name}: {v}");
        let recs = json_lines(&ok(
            &["consume", d, topic, "--from-beginning", "--format", "json"],
            None,
        ));
        assert!(!recs.is_empty(), "{name}");
        let seg = segment_files(&dir.join(&format!("{topic}-0")), "log").remove(0);
        let batches = json_lines(&ok(&["dump", s(&seg), "--json"], None));
        let version = if name == "v1" { 1 } else { 2 };
        assert!(
            batches
                .iter()
                .all(|b| b["format_version"] == version && b["crc_ok"] == true),
            "{name}"
        );
        let dumped: usize = batches
            .iter()
            .map(|b| b["records"].as_array().unwrap().len())
            .sum();
        assert!(dumped > 0);
        for g in ok(&["groups", "list", d], None).lines() {
            ok(&["groups", "describe", d, g], None);
        }
        assert_eq!(
            snapshot(),
            before,
            "{name}: a read-only command changed the log"
        );
    }
    let bad = TestDir::new("cli-fixture-bad-crc");
    common::copy_dir(&fixtures.join("v1-bad-crc"), bad.path());
    let o = cli(&["verify", s(bad.path())], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
