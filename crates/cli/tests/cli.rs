//! The `streamlog` command line, end to end.
#[path = "../../../tests/common/mod.rs"]
mod common;

use common::{segment_files, TestDir};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn cli(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn setup(dir: &TestDir) {
    let log = streamlog::Log::open(dir.path()).unwrap();
    log.create_topic(
        "t",
        streamlog::TopicConfig::new()
            .partitions(2)
            .segment_bytes(1024),
    )
    .unwrap();
    log.close().unwrap();
}

#[test]
fn produce_consume_topics_describe_groups() {
    let dir = TestDir::new("cli");
    setup(&dir);
    let d = dir.path().to_str().unwrap();
    let lines: String = (0..50)
        .map(|i| format!("key{}:value {i}\n", i % 5))
        .collect();
    let o = cli(&["produce", d, "t", "--separator", ":"], Some(&lines));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli(&["topics", d], None);
    assert_eq!(text(&o), "t\tpartitions=2\n");
    let o = cli(&["describe", d, "t"], None);
    assert!(o.status.success());
    let ends: u64 = text(&o)
        .lines()
        .skip(2)
        .map(|l| l.split('\t').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(ends, 50);
    let o = cli(
        &["consume", d, "t", "--from-beginning", "--group", "ops"],
        None,
    );
    let out = text(&o);
    assert_eq!(out.lines().count(), 50, "{out}");
    assert!(out.contains("\"key3\"\t\"value 3\""), "{out}");
    let o = cli(&["groups", d], None);
    let out = text(&o);
    assert!(out.lines().any(|l| l.starts_with("ops\tt-0\t")), "{out}");
    assert!(
        out.lines().skip(1).all(|l| l.ends_with("\t0")),
        "no lag after consuming everything: {out}"
    );
    let o = cli(&["consume", d, "t", "--group", "ops"], None);
    assert_eq!(text(&o), "", "the group resumes at its commit");
}

#[test]
fn dump_and_verify_report_damage() {
    let dir = TestDir::new("cli-verify");
    setup(&dir);
    let d = dir.path().to_str().unwrap();
    let lines: String = (0..100).map(|i| format!("value number {i}\n")).collect();
    assert!(cli(&["produce", d, "t"], Some(&lines)).status.success());
    let o = cli(&["verify", d], None);
    assert!(o.status.success(), "{}", text(&o));
    let seg = segment_files(&dir.join("t-0"), "log").remove(0);
    let o = cli(&["dump", seg.to_str().unwrap()], None);
    let out = text(&o);
    assert!(out.contains("crc=ok") && out.contains("offset=0"), "{out}");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let o = cli(&["verify", d], None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("CRC mismatch"), "{}", text(&o));
    assert!(text(&cli(&["dump", seg.to_str().unwrap()], None)).contains("crc=BAD"));
}

#[test]
fn a_second_process_gets_locked() {
    let dir = TestDir::new("cli-lock");
    setup(&dir);
    let log = streamlog::Log::open(dir.path()).unwrap();
    let o = cli(&["topics", dir.path().to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already open"),
        "{o:?}"
    );
    log.close().unwrap();
    assert!(cli(&["topics", dir.path().to_str().unwrap()], None)
        .status
        .success());
}

#[test]
fn bad_usage_is_explained() {
    let o = cli(&["frobnicate"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("usage"));
}
