//! README.md's "Operating a log" examples, run in order in a fresh
//! directory: each `$ ` line through bash (with `streamlog` on the PATH),
//! exit status 0 and stdout exactly as the lines under it show (a line
//! ending in `...` matches any line starting with what comes before).
#[path = "../../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use common::TestDir;

/// `(command, expected stdout lines)` of every console block in the
/// section.
fn examples(readme: &str) -> Vec<(String, Vec<String>)> {
    let start = readme
        .find("## Operating a log")
        .expect("README has an \"Operating a log\" section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = line == "```console";
            continue;
        }
        if !in_block {
            continue;
        }
        match line.strip_prefix("$ ") {
            Some(cmd) => out.push((cmd.to_owned(), Vec::new())),
            None => out
                .last_mut()
                .expect("output before any command")
                .1
                .push(line.to_owned()),
        }
    }
    out
}

fn matches(want: &[String], got: &str) -> bool {
    let got: Vec<&str> = got.lines().collect();
    got.len() == want.len()
        && want
            .iter()
            .zip(&got)
            .all(|(w, g)| match w.strip_suffix("...") {
                Some(prefix) => g.starts_with(prefix),
                None => w == g,
            })
}

#[test]
fn operating_a_log_examples_run_as_shown() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let examples = examples(&readme);
    let commands: Vec<&str> = examples
        .iter()
        .map(|(c, _)| c.split_whitespace().nth(1).unwrap_or_default())
        .collect();
    for sub in [
        "topics",
        "produce",
        "consume",
        "groups",
        "dump",
        "verify",
        "serve",
        "completions",
    ] {
        assert!(
            examples
                .iter()
                .any(|(c, _)| c.contains(&format!("streamlog {sub} "))),
            "no example of `streamlog {sub}` in {commands:?}"
        );
    }
    for sub in [
        "create",
        "list",
        "describe",
        "alter",
        "delete",
        "reset-offsets",
    ] {
        assert!(
            examples
                .iter()
                .any(|(c, _)| c.contains(&format!(" {sub} ./data"))),
            "no example of `{sub}`"
        );
    }
    let dir = TestDir::new("readme-cli");
    std::fs::create_dir_all(dir.path()).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_streamlog")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (cmd, want) in &examples {
        let o = Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {cmd}")])
            .current_dir(dir.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "`{cmd}` failed: {}\n{got}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            matches(want, &got),
            "`{cmd}` printed\n{got}\nREADME shows\n{}",
            want.join("\n")
        );
    }
    assert!(dir.join("streamlog.bash").exists());
}
