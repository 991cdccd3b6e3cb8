//! The `streamlog` command line, end to end, each subcommand on a real
//! directory, with JSON output parsed back: topics, produce, consume,
//! `--help`, usage errors. Groups, `dump`, `verify` and the committed
//! fixtures are in `admin.rs`.
#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use common::TestDir;
use streamlog::{Log, TopicPartition};
use support::{cli, json_lines, ok, s, stderr};

#[test]
fn topics_create_list_describe_alter_delete() {
    let dir = TestDir::new("cli-topics");
    let d = s(dir.path());
    ok(
        &[
            "topics",
            "create",
            d,
            "events",
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
            "--config",
            "cleanup.policy=compact",
        ],
        None,
    );
    ok(&["topics", "create", d, "other"], None);
    assert_eq!(ok(&["topics", "list", d], None), "events\nother\n");
    let out = ok(&["topics", "describe", d, "events"], None);
    assert!(out.contains("partitions\t3\n"), "{out}");
    assert!(out.contains("retention.ms\t3600000\n"), "{out}");
    assert!(out.contains("cleanup.policy\tcompact\n"), "{out}");
    assert!(out.contains("segment.bytes\t1073741824\n"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with(char::is_numeric))
            .count(),
        3,
        "{out}"
    );

    ok(
        &[
            "topics",
            "alter",
            d,
            "events",
            "--partitions",
            "5",
            "--config",
            "retention.bytes=1048576",
        ],
        None,
    );
    let out = ok(&["topics", "describe", d, "events"], None);
    assert!(out.contains("partitions\t5\n"), "{out}");
    assert!(out.contains("retention.bytes\t1048576\n"), "{out}");
    assert!(out.contains("retention.ms\t3600000\n"), "kept: {out}");
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.topic_config("events").unwrap().partition_count(), 5);
    log.close().unwrap();

    ok(&["topics", "delete", d, "other"], None);
    assert_eq!(ok(&["topics", "list", d], None), "events\n");
}

#[test]
fn produce_text_and_json_then_consume_json_round_trips() {
    let dir = TestDir::new("cli-produce");
    let d = s(dir.path());
    ok(&["topics", "create", d, "t", "--partitions", "2"], None);
    ok(
        &[
            "produce",
            d,
            "t",
            "--key-separator",
            "=",
            "--partition",
            "1",
            "--headers",
            "--null-value",
            "NULL",
        ],
        Some("src:cli,n:1\tk1=v1\n\tk2=NULL\n"),
    );
    ok(
        &["produce", d, "t", "--format", "json"],
        Some(concat!(
            r#"{"key":"j","value":{"base64":"AP8="},"headers":{"h":null},"partition":0,"timestamp":1700000000000}"#,
            "\n",
            r#"{"value":"plain","partition":0}"#,
            "\n"
        )),
    );
    let out = ok(
        &["consume", d, "t", "--from-beginning", "--format", "json"],
        None,
    );
    let mut recs = json_lines(&out);
    recs.sort_by_key(|r| (r["partition"].as_u64(), r["offset"].as_u64()));
    assert_eq!(recs.len(), 4, "{out}");
    assert_eq!(recs[0]["key"], "j");
    assert_eq!(recs[0]["value"], serde_json::json!({"base64": "AP8="}));
    assert_eq!(recs[0]["headers"], serde_json::json!({"h": null}));
    assert_eq!(recs[0]["timestamp"], 1_700_000_000_000i64);
    assert_eq!(recs[0]["topic"], "t");
    assert_eq!(recs[1]["value"], "plain");
    assert_eq!(recs[1]["key"], serde_json::Value::Null);
    assert_eq!(
        (recs[2]["partition"].as_u64(), recs[2]["offset"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(recs[2]["key"], "k1");
    assert_eq!(recs[2]["value"], "v1");
    assert_eq!(
        recs[2]["headers"],
        serde_json::json!({"src": "cli", "n": "1"})
    );
    assert_eq!(recs[3]["value"], serde_json::Value::Null, "a tombstone");

    // What consume printed as JSON, produce takes back unchanged.
    ok(&["topics", "create", d, "copy", "--partitions", "2"], None);
    let lines: String = recs
        .iter()
        .map(|r| {
            let mut o = r.clone();
            let m = o.as_object_mut().unwrap();
            for k in ["topic", "offset"] {
                m.remove(k);
            }
            format!("{o}\n")
        })
        .collect();
    ok(&["produce", d, "copy", "--format", "json"], Some(&lines));
    let back = ok(
        &["consume", d, "copy", "--from-beginning", "--format", "json"],
        None,
    );
    let mut back = json_lines(&back);
    back.sort_by_key(|r| (r["partition"].as_u64(), r["offset"].as_u64()));
    for (a, b) in recs.iter().zip(&back) {
        for k in [
            "partition",
            "offset",
            "timestamp",
            "key",
            "value",
            "headers",
        ] {
            assert_eq!(a[k], b[k], "{k}");
        }
    }
}

#[test]
fn consume_positions_text_raw_and_max() {
    let dir = TestDir::new("cli-consume");
    let d = s(dir.path());
    ok(&["topics", "create", d, "t"], None);
    let lines: String = (0..20)
        .map(|i| format!("{{\"value\":\"v{i}\",\"timestamp\":{}}}\n", 1000 + i * 10))
        .collect();
    ok(&["produce", d, "t", "--format", "json"], Some(&lines));
    assert_eq!(ok(&["consume", d, "t"], None), "", "default: from the end");
    let raw = ok(
        &["consume", d, "t", "--offset", "17", "--format", "raw"],
        None,
    );
    assert_eq!(raw, "v17\nv18\nv19\n");
    let text = ok(
        &["consume", d, "t", "--timestamp", "1150", "--max", "2"],
        None,
    );
    assert_eq!(
        text,
        "t-0\t15\t1150\tnull\t\tv15\nt-0\t16\t1160\tnull\t\tv16\n"
    );
    let rfc = ok(
        &[
            "consume",
            d,
            "t",
            "--timestamp",
            "1970-01-01T00:00:01.185Z",
            "--format",
            "raw",
        ],
        None,
    );
    assert_eq!(rfc, "v19\n");
    let o = cli(&["consume", d, "t", "--offset", "99"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("out of range"), "{}", stderr(&o));
}

#[test]
fn regression_consume_group_max_commits_only_what_it_printed() {
    // Bug: `consume --group G --max N` committed past records it never
    // printed (497 records skipped in one run).
    let dir = TestDir::new("cli-group-max");
    let d = s(dir.path());
    ok(&["topics", "create", d, "t"], None);
    let lines: String = (0..1000).map(|i| format!("r{i}\n")).collect();
    ok(&["produce", d, "t"], Some(&lines));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let out = ok(
            &[
                "consume",
                d,
                "t",
                "--group",
                "g",
                "--from-beginning",
                "--max",
                "3",
                "--format",
                "raw",
            ],
            None,
        );
        seen.extend(out.lines().map(str::to_owned));
    }
    let want: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
    assert_eq!(seen, want);
    let out = ok(&["groups", "describe", d, "g"], None);
    assert!(out.contains("g\tt\t0\t12\t1000\t988"), "{out}");
}

#[test]
fn regression_help_dev_zero_and_mistyped_dirs() {
    // Bugs: `--help` exited 2; `dump /dev/zero` hung; a mistyped DIR
    // silently created a new log.
    for args in [
        vec!["--help"],
        vec!["topics", "--help"],
        vec!["topics", "create", "--help"],
        vec!["consume", "--help"],
        vec!["groups", "reset-offsets", "--help"],
        vec!["dump", "--help"],
        vec!["completions", "bash"],
    ] {
        let out = ok(&args, None);
        assert!(!out.is_empty(), "{args:?}");
    }
    let o = cli(&["dump", "/dev/zero"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));

    let dir = TestDir::new("cli-typo");
    let typo = dir.join("no-such-log");
    for cmd in [
        vec!["topics", "list"],
        vec!["groups", "list"],
        vec!["verify"],
    ] {
        let mut a = cmd.clone();
        a.push(s(&typo));
        let o = cli(&a, None);
        assert_eq!(o.status.code(), Some(2), "{a:?}");
        assert!(stderr(&o).contains("no such directory"), "{}", stderr(&o));
    }
    for cmd in [
        vec!["topics", "describe", s(&typo), "t"],
        vec!["consume", s(&typo), "t"],
        vec!["produce", s(&typo), "t"],
        vec!["topics", "delete", s(&typo), "t"],
    ] {
        assert_eq!(cli(&cmd, Some("x\n")).status.code(), Some(2), "{cmd:?}");
    }
    assert!(!typo.exists(), "nothing created");
    // An existing directory that is not a log is not turned into one.
    std::fs::create_dir_all(dir.path()).unwrap();
    let o = cli(&["produce", s(dir.path()), "t"], Some("x\n"));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a streamlog log directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bad_input_is_refused_with_exit_code_2() {
    let dir = TestDir::new("cli-bad");
    let d = s(dir.path());
    ok(&["topics", "create", d, "t"], None);
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for (args, says) in [
        (vec!["frobnicate"], "unrecognized subcommand"),
        (vec!["topics", "list", d, "--frob"], "unexpected argument"),
        (
            vec!["topics", "create", d, "u", "--config", "no.such=1"],
            "no.such",
        ),
        (
            vec!["topics", "create", d, "u", "--config", "retention.ms=soon"],
            "retention.ms",
        ),
        (
            vec!["topics", "create", d, "u", "--config", "novalue"],
            "KEY=VALUE",
        ),
        (vec!["topics", "create", d, "../u"], "topic"),
        (vec!["topics", "alter", d, "t"], "required"),
        (
            vec!["topics", "alter", d, "t", "--partitions", "1"],
            "can only add",
        ),
        (vec!["topics", "describe", d, "nope"], "nope"),
        (vec!["topics", "list", s(&file)], "not a directory"),
        (
            vec![
                "groups",
                "reset-offsets",
                d,
                "g",
                "--topic",
                "t",
                "--to-earliest",
            ],
            "required",
        ),
        (
            vec!["consume", d, "t", "--group", "g", "--offset", "3"],
            "cannot be used with",
        ),
        (
            vec!["consume", d, "t", "--timestamp", "yesterday"],
            "RFC 3339",
        ),
        (
            vec!["consume", d, "t", "--partition", "4"],
            "no partition 4",
        ),
        (vec!["completions", "tcsh"], "invalid value"),
    ] {
        let o = cli(&args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    let o = cli(
        &["produce", d, "t", "--format", "json"],
        Some("{\"value\":1}\n"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 1"), "{}", stderr(&o));
    assert!(!dir.join("u-0").exists(), "a refused create makes nothing");
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.topics(), ["t"]);
    assert_eq!(
        log.partition_info(&TopicPartition::new("t", 0))
            .unwrap()
            .end_offset,
        0
    );
    log.close().unwrap();
}

#[test]
fn regression_refused_changes_change_nothing() {
    // Bugs (review): `topics alter --partitions 1 --config ...` on a
    // 2-partition topic exited 2 with the config applied; a refused
    // `topics create` left a new empty log behind; `topics create` turned
    // any non-empty directory into a log.
    let dir = TestDir::new("cli-refused");
    let d = s(dir.path());
    ok(&["topics", "create", d, "t", "--partitions", "2"], None);
    let o = cli(
        &[
            "topics",
            "alter",
            d,
            "t",
            "--partitions",
            "1",
            "--config",
            "retention.ms=5",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("can only add"), "{}", stderr(&o));
    let described = ok(&["topics", "describe", d, "t"], None);
    assert!(!described.contains("retention.ms\t5\n"), "{described}");
    ok(
        &[
            "topics",
            "alter",
            d,
            "t",
            "--partitions",
            "3",
            "--config",
            "retention.ms=5000",
        ],
        None,
    );
    let described = ok(&["topics", "describe", d, "t"], None);
    assert!(described.contains("partitions\t3\n"), "{described}");
    assert!(described.contains("retention.ms\t5000\n"), "{described}");

    let fresh = dir.join("fresh");
    let o = cli(&["topics", "create", s(&fresh), "bad/name"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(!fresh.exists(), "a refused create left a log behind");
    std::fs::create_dir(&fresh).unwrap();
    let o = cli(&["topics", "create", s(&fresh), "bad/name"], None);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(&fresh).unwrap().count(), 0);

    let notes = dir.join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("notes.txt"), b"mine").unwrap();
    let o = cli(&["topics", "create", s(&notes), "t"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&notes).unwrap().count(), 1);
}
