//! kill -9 crash test (`harness = false`).
//!
//! The binary re-executes itself as a child process (selected by the
//! `STREAMLOG_CRASH_CHILD_DIR` environment variable). The child opens a log
//! with `SyncPolicy::EveryWrite`, appends numbered records from several
//! threads (`send_to`, keyed `send` and `send_batch`) and runs a
//! consumer-group member that polls and commits; it prints one line to
//! stdout for every acknowledged record and every acknowledged commit. The
//! parent kills it with SIGKILL after a random delay, reopens the log and
//! checks the durability contract of README.md ("Guarantees"):
//!
//! 1. each partition is a dense prefix from offset 0: no gaps, no
//!    duplicate offsets, and what an earlier check saw is still there;
//! 2. every acknowledged record (of this and every earlier cycle) is at
//!    exactly its acknowledged partition and offset, with its value;
//! 3. no record appears twice; each producer thread's records form a prefix
//!    of its sequence (a returned `send` survives a process crash); every
//!    batch is all there or not at all;
//! 4. committed offsets never point past the end of a partition, and an
//!    acknowledged commit is not lost;
//! 5. reading never fails (no corrupt record is returned).
//!
//! Every fifth cycle the parent skips the check, so the next child itself
//! recovers a killed log and appends to it ("chained" crashes); every eighth
//! cycle kills the child within a few milliseconds of its start, often while
//! it is opening (and recovering) the log.
//!
//! Environment: `STREAMLOG_CRASH_CYCLES` (default 50), `STREAMLOG_CRASH_SEED`
//! (default: from the clock; printed at the start and on failure).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use streamlog::{
    ConsumerConfig, Error, Log, LogOptions, OffsetAndMetadata, OffsetReset, Record, RecoveryReport,
    SyncPolicy, TopicConfig, TopicPartition,
};

const ENV_CHILD_DIR: &str = "STREAMLOG_CRASH_CHILD_DIR";
const ENV_CHILD_CYCLE: &str = "STREAMLOG_CRASH_CHILD_CYCLE";
const ENV_CHILD_SEED: &str = "STREAMLOG_CRASH_CHILD_SEED";
const ENV_CYCLES: &str = "STREAMLOG_CRASH_CYCLES";
const ENV_SEED: &str = "STREAMLOG_CRASH_SEED";

const TOPIC: &str = "t";
const GROUP: &str = "g";
const PARTITIONS: u32 = 3;
const PRODUCERS: u16 = 4;
const SEGMENT_BYTES: u64 = 64 << 10;
const DEFAULT_CYCLES: u32 = 50;

fn main() {
    if let Ok(dir) = std::env::var(ENV_CHILD_DIR) {
        child(PathBuf::from(dir));
    }
    // Honour `--list` and a name filter, like libtest, so that
    // `cargo test some_other_test` does not run this binary's cycles.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("kill9_crash: test");
        return;
    }
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-')) {
        if !"kill9_crash".contains(filter.as_str()) {
            println!("0 passed, 0 failed, 1 filtered out");
            return;
        }
    }
    parent();
}

// ---------------------------------------------------------------- values

/// What a record's 16-byte value says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Val {
    cycle: u32,
    thread: u16,
    /// Records in the `send_batch` call (1 for `send`/`send_to`).
    batch_len: u8,
    /// Position of this record in its batch.
    batch_idx: u8,
    seq: u64,
}

impl Val {
    fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.cycle.to_le_bytes());
        b[4..6].copy_from_slice(&self.thread.to_le_bytes());
        b[6] = self.batch_len;
        b[7] = self.batch_idx;
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Val> {
        let b: &[u8; 16] = b.try_into().ok()?;
        let v = Val {
            cycle: u32::from_le_bytes(b[0..4].try_into().ok()?),
            thread: u16::from_le_bytes(b[4..6].try_into().ok()?),
            batch_len: b[6],
            batch_idx: b[7],
            seq: u64::from_le_bytes(b[8..16].try_into().ok()?),
        };
        (v.batch_len >= 1 && v.batch_idx < v.batch_len && v.thread < PRODUCERS).then_some(v)
    }

    /// Identity of the write: unique across the whole test.
    fn id(&self) -> (u32, u16, u64) {
        (self.cycle, self.thread, self.seq)
    }
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 so that close seeds give unrelated streams, never 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

// ----------------------------------------------------------------- child

/// Reports a failure inside the child and exits with a status the parent
/// tells apart from SIGKILL.
fn die(what: &str) -> ! {
    eprintln!("crash child {}: {what}", std::process::id());
    std::process::exit(3)
}

fn env_num(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| die(&format!("{name} missing or not a number")))
}

/// Writes complete lines under the stdout lock, then flushes: an
/// acknowledgement is on the pipe before the next operation starts.
fn emit(lines: &str) {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(lines.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        die("stdout closed");
    }
}

fn child(dir: PathBuf) -> ! {
    let cycle = env_num(ENV_CHILD_CYCLE) as u32;
    let seed = env_num(ENV_CHILD_SEED);
    let log = LogOptions::new()
        .sync(SyncPolicy::EveryWrite)
        .open(&dir)
        .unwrap_or_else(|e| die(&format!("open {}: {e}", dir.display())));
    let config = TopicConfig::new()
        .partitions(PARTITIONS)
        .segment_bytes(SEGMENT_BYTES);
    match log.create_topic(TOPIC, config) {
        Ok(()) | Err(Error::TopicExists { .. }) => {}
        Err(e) => die(&format!("create_topic: {e}")),
    }
    let report = log.recovery_report();
    emit(&format!(
        "ready clean={} truncations={}\n",
        report.clean_shutdown,
        report.truncations.len()
    ));

    let mut handles = Vec::new();
    for thread in 0..PRODUCERS {
        let producer = log.producer();
        let mut rng = Rng::new(seed ^ (u64::from(thread) + 1).wrapping_mul(0x1000_0001));
        handles.push(thread::spawn(move || {
            let mut seq = 0u64;
            loop {
                let val = |seq: u64, batch_len: u8, batch_idx: u8| Val {
                    cycle,
                    thread,
                    batch_len,
                    batch_idx,
                    seq,
                };
                let mut lines = String::new();
                match rng.next() % 10 {
                    0..=4 => {
                        let p = (rng.next() % u64::from(PARTITIONS)) as u32;
                        let v = val(seq, 1, 0);
                        let md = producer
                            .send_to(TOPIC, p, Record::new(v.encode().to_vec()))
                            .unwrap_or_else(|e| die(&format!("send_to: {e}")));
                        lines += &ack_line(md.partition(), md.offset(), &v);
                        seq += 1;
                    }
                    5..=6 => {
                        let v = val(seq, 1, 0);
                        let key = format!("k{}", rng.next() % 64).into_bytes();
                        let md = producer
                            .send(TOPIC, Record::new(v.encode().to_vec()).key(key))
                            .unwrap_or_else(|e| die(&format!("send: {e}")));
                        lines += &ack_line(md.partition(), md.offset(), &v);
                        seq += 1;
                    }
                    _ => {
                        // Keyless: the whole call is one atomic batch in one
                        // partition.
                        let n = rng.range(2, 8) as u8;
                        let vals: Vec<Val> =
                            (0..n).map(|i| val(seq + u64::from(i), n, i)).collect();
                        let recs = vals
                            .iter()
                            .map(|v| Record::new(v.encode().to_vec()))
                            .collect();
                        let mds = producer
                            .send_batch(TOPIC, recs)
                            .unwrap_or_else(|e| die(&format!("send_batch: {e}")));
                        if mds.len() != vals.len() {
                            die(&format!(
                                "send_batch returned {} metadata for {n}",
                                mds.len()
                            ));
                        }
                        for (md, v) in mds.iter().zip(&vals) {
                            lines += &ack_line(md.partition(), md.offset(), v);
                        }
                        seq += u64::from(n);
                    }
                }
                emit(&lines);
            }
        }));
    }

    let member = log.consumer(
        ConsumerConfig::new()
            .group(GROUP)
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false)
            .max_poll_records(2_000),
    );
    let mut commit_rng = Rng::new(seed ^ 0xC0FF_EE00);
    handles.push(thread::spawn(move || {
        let mut member = member;
        member
            .subscribe(&[TOPIC])
            .unwrap_or_else(|e| die(&format!("subscribe: {e}")));
        // Next offset expected from each partition, once known.
        let mut next: HashMap<u32, u64> = HashMap::new();
        let mut last_commit = Instant::now();
        let mut commit_every = Duration::from_millis(commit_rng.range(2, 30));
        loop {
            let recs = member
                .poll(Duration::from_millis(20))
                .unwrap_or_else(|e| die(&format!("group poll: {e}")));
            for r in &recs {
                let p = r.partition();
                let expected = match next.get(&p) {
                    Some(&n) => n,
                    None => {
                        let tp = TopicPartition::new(TOPIC, p);
                        member
                            .committed(&tp)
                            .unwrap_or_else(|e| die(&format!("committed: {e}")))
                            .unwrap_or(0)
                    }
                };
                if r.offset() != expected {
                    die(&format!(
                        "group member read {TOPIC}-{p}@{} ({:?}) but expected offset \
                         {expected} ({}); generation {:?}, assignment {:?}, {} records in \
                         this poll, committed {:?}",
                        r.offset(),
                        r.value().and_then(Val::decode),
                        if next.contains_key(&p) {
                            "after the records it read before"
                        } else {
                            "its committed offset"
                        },
                        member.generation(),
                        member.assignment(),
                        recs.len(),
                        member.committed(&TopicPartition::new(TOPIC, p)),
                    ));
                }
                if r.value().and_then(Val::decode).is_none() {
                    die(&format!(
                        "group member read a malformed value at {TOPIC}-{p}@{}",
                        r.offset()
                    ));
                }
                next.insert(p, expected + 1);
            }
            if !next.is_empty() && last_commit.elapsed() >= commit_every {
                let offsets: HashMap<TopicPartition, OffsetAndMetadata> = next
                    .iter()
                    .map(|(&p, &o)| {
                        (
                            TopicPartition::new(TOPIC, p),
                            OffsetAndMetadata::new(o).metadata(format!("cycle {cycle}")),
                        )
                    })
                    .collect();
                member
                    .commit_offsets(&offsets)
                    .unwrap_or_else(|e| die(&format!("commit_offsets: {e}")));
                let mut lines = String::new();
                for (&p, &o) in &next {
                    lines += &format!("commit {p} {o}\n");
                }
                emit(&lines);
                last_commit = Instant::now();
                commit_every = Duration::from_millis(commit_rng.range(2, 30));
            }
        }
    }));
    for h in handles {
        if h.join().is_err() {
            die("a thread panicked");
        }
    }
    die("threads returned")
}

fn ack_line(partition: u32, offset: u64, v: &Val) -> String {
    format!(
        "ack {partition} {offset} {} {} {} {}\n",
        v.thread, v.seq, v.batch_len, v.batch_idx
    )
}

// ---------------------------------------------------------------- parent

/// What one child said before it died.
#[derive(Default)]
struct ChildOutput {
    ready: bool,
    /// `(partition, offset, value)`.
    acks: Vec<(u32, u64, Val)>,
    /// `(partition, committed offset)`.
    commits: Vec<(u32, u64)>,
    /// A line cut by the kill (ignored).
    partial: bool,
    /// Whether the child found a cleanly closed log, and the torn tails its
    /// own recovery cut.
    clean: bool,
    truncations: usize,
}

/// Everything known across cycles.
#[derive(Default)]
struct State {
    /// Acknowledged records: `(partition, offset) -> value`.
    acks: HashMap<(u32, u64), Val>,
    /// Largest acknowledged commit per partition.
    max_commit: HashMap<u32, u64>,
    /// Commits printed since the last check.
    pending_commits: Vec<(u32, u64)>,
    /// Each partition's records at the last check.
    seen: Vec<Vec<[u8; 16]>>,
    ack_checks: u64,
    commit_checks: u64,
    truncations: usize,
    checks: u32,
    early_kills: u32,
    chained: u32,
    child_truncations: usize,
    child_recoveries: u32,
    partial_lines: u32,
    /// Reopens that resumed an active segment near its end (same boot).
    resumed: u32,
}

fn parent() {
    let started = Instant::now();
    let cycles: u32 = match std::env::var(ENV_CYCLES) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{ENV_CYCLES}={s:?} is not a number")),
        Err(_) => DEFAULT_CYCLES,
    };
    let seed: u64 = match std::env::var(ENV_SEED) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{ENV_SEED}={s:?} is not a number")),
        Err(_) => {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            t ^ u64::from(std::process::id()).rotate_left(32)
        }
    };
    println!("crash: {cycles} cycles, seed {seed} (rerun with {ENV_SEED}={seed})");
    let dir = std::env::temp_dir().join(format!("streamlog-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe().expect("current_exe");
    let mut rng = Rng::new(seed);
    let mut st = State {
        seen: vec![Vec::new(); PARTITIONS as usize],
        ..State::default()
    };

    for cycle in 0..cycles {
        let child_seed = rng.next();
        let early = cycle % 8 == 7;
        let check = cycle % 5 != 4 || cycle + 1 == cycles;
        let delay = if early {
            Duration::from_micros(rng.range(0, 15_000))
        } else {
            Duration::from_millis(rng.range(20, 300))
        };
        let fail = |what: String, report: Option<&RecoveryReport>| -> ! {
            let report = match report {
                Some(r) => format!("\nrecovery report: {r:#?}"),
                None => String::new(),
            };
            panic!(
                "crash: VIOLATION in cycle {cycle} of {cycles} (seed {seed}; rerun with \
                 {ENV_SEED}={seed} {ENV_CYCLES}={cycles}); log dir kept at {}:\n{what}{report}",
                dir.display()
            )
        };
        let out = run_child(&exe, &dir, cycle, child_seed, early, delay)
            .unwrap_or_else(|e| fail(e, None));
        if early {
            st.early_kills += 1;
        }
        if out.partial {
            st.partial_lines += 1;
        }
        if out.ready && !out.clean {
            st.child_recoveries += 1;
        }
        st.child_truncations += out.truncations;
        for &(p, off, v) in &out.acks {
            if let Some(old) = st.acks.insert((p, off), v) {
                fail(
                    format!("{TOPIC}-{p}@{off} acknowledged twice: first {old:?}, now {v:?}"),
                    None,
                );
            }
        }
        for &(p, off) in &out.commits {
            let m = st.max_commit.entry(p).or_insert(0);
            *m = (*m).max(off);
        }
        st.pending_commits.extend_from_slice(&out.commits);
        if !check {
            st.chained += 1;
            continue;
        }
        let log = LogOptions::new()
            .sync(SyncPolicy::EveryWrite)
            .open(&dir)
            .unwrap_or_else(|e| fail(format!("reopen failed: {e}"), None));
        let report = log.recovery_report().clone();
        if let Err(e) = verify(&log, cycle, &mut st) {
            fail(e, Some(&report));
        }
        st.truncations += report.truncations.len();
        st.resumed += u32::from(report.segments_resumed > 0);
        st.checks += 1;
        log.close()
            .unwrap_or_else(|e| fail(format!("close failed: {e}"), Some(&report)));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let records: usize = st.seen.iter().map(Vec::len).sum();
    println!(
        "crash: {cycles} cycles passed, {} acks checked, {} commits checked \
         ({} distinct acks, {records} records in the log, {} checks, {} chained crashes, \
         {} early kills, {} torn tails truncated on reopen, {} by children in {} recoveries, \
         {} cut ack lines, {} reopens resumed near the end) \
         in {:.1} s, seed {seed}",
        st.ack_checks,
        st.commit_checks,
        st.acks.len(),
        st.checks,
        st.chained,
        st.early_kills,
        st.truncations,
        st.child_truncations,
        st.child_recoveries,
        st.partial_lines,
        st.resumed,
        started.elapsed().as_secs_f64()
    );
    // On Linux every check follows a kill on this boot: the same-boot path
    // must have been taken (a segment with fewer than two index entries is
    // scanned whole, so not every time).
    let has_boot_id = std::fs::read("/proc/sys/kernel/random/boot_id").is_ok();
    if has_boot_id && st.checks >= 10 {
        assert!(st.resumed > 0, "no reopen took the same-boot path");
    }
    println!("{cycles} passed, 0 failed");
}

/// Runs one child to its SIGKILL and returns what it printed.
fn run_child(
    exe: &Path,
    dir: &Path,
    cycle: u32,
    seed: u64,
    early: bool,
    delay: Duration,
) -> Result<ChildOutput, String> {
    let mut child = Command::new(exe)
        .env(ENV_CHILD_DIR, dir)
        .env(ENV_CHILD_CYCLE, cycle.to_string())
        .env(ENV_CHILD_SEED, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", exe.display()))?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut stderr = child.stderr.take().ok_or("no child stderr")?;
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let reader = thread::spawn(move || read_output(stdout, cycle, ready_tx));
    let err_reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let outcome = (|| -> Result<(), String> {
        if !early {
            match ready_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(()) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err("the child did not open the log within 60 s".into())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the child closed stdout before opening the log".into())
                }
            }
        }
        thread::sleep(delay);
        if let Some(status) = child.try_wait().map_err(|e| format!("try_wait: {e}"))? {
            return Err(format!(
                "the child exited by itself before the kill: {status}"
            ));
        }
        Ok(())
    })();
    // Kill in every case, so that no child outlives a failing parent.
    let killed = child.kill();
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    let err_text = err_reader.join().unwrap_or_default();
    let with_stderr = |e: String| format!("{e}\nchild stderr:\n{}", err_text.trim_end());
    outcome.map_err(with_stderr)?;
    killed.map_err(|e| with_stderr(format!("kill: {e}")))?;
    check_killed(status).map_err(with_stderr)?;
    if !err_text.trim().is_empty() {
        return Err(with_stderr("the child wrote to stderr".into()));
    }
    let out = reader
        .join()
        .map_err(|_| "the stdout reader panicked".to_string())??;
    if !early && !out.ready {
        return Err("no ready line".into());
    }
    Ok(out)
}

#[cfg(unix)]
fn check_killed(status: std::process::ExitStatus) -> Result<(), String> {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(9) => Ok(()),
        _ => Err(format!("the child did not die of SIGKILL: {status}")),
    }
}

#[cfg(not(unix))]
fn check_killed(_status: std::process::ExitStatus) -> Result<(), String> {
    Ok(())
}

/// Reads the child's stdout to EOF. Only complete lines count: the kill may
/// cut the last one.
fn read_output(
    stdout: std::process::ChildStdout,
    cycle: u32,
    ready: mpsc::Sender<()>,
) -> Result<ChildOutput, String> {
    let mut r = BufReader::with_capacity(1 << 16, stdout);
    let mut out = ChildOutput::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading the child's stdout: {e}"))?;
        if n == 0 {
            return Ok(out);
        }
        if line.last() != Some(&b'\n') {
            out.partial = true;
            continue;
        }
        let text = std::str::from_utf8(&line[..line.len() - 1])
            .map_err(|_| format!("non-UTF-8 line from the child: {line:?}"))?;
        let bad = || format!("malformed line from the child: {text:?}");
        let mut f = text.split(' ');
        match f.next() {
            Some("ready") => {
                for kv in f {
                    match kv.split_once('=') {
                        Some(("clean", b)) => out.clean = b == "true",
                        Some(("truncations", n)) => {
                            out.truncations = n.parse().map_err(|_| bad())?
                        }
                        _ => return Err(bad()),
                    }
                }
                out.ready = true;
                let _ = ready.send(());
            }
            Some("ack") => {
                let mut num = || -> Result<u64, String> {
                    f.next().and_then(|s| s.parse().ok()).ok_or_else(bad)
                };
                let (p, off, thread, seq, blen, bidx) =
                    (num()?, num()?, num()?, num()?, num()?, num()?);
                let v = Val {
                    cycle,
                    thread: u16::try_from(thread).map_err(|_| bad())?,
                    batch_len: u8::try_from(blen).map_err(|_| bad())?,
                    batch_idx: u8::try_from(bidx).map_err(|_| bad())?,
                    seq,
                };
                out.acks
                    .push((u32::try_from(p).map_err(|_| bad())?, off, v));
            }
            Some("commit") => {
                let mut num = || -> Result<u64, String> {
                    f.next().and_then(|s| s.parse().ok()).ok_or_else(bad)
                };
                let (p, off) = (num()?, num()?);
                out.commits
                    .push((u32::try_from(p).map_err(|_| bad())?, off));
            }
            _ => return Err(bad()),
        }
    }
}

/// Reads every record of the reopened log and checks the contract.
fn verify(log: &Log, cycle: u32, st: &mut State) -> Result<(), String> {
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    let mut ends = Vec::new();
    for tp in &tps {
        let info = log
            .partition_info(tp)
            .map_err(|e| format!("partition_info({tp}): {e}"))?;
        if info.start_offset != 0 {
            return Err(format!(
                "{tp}: start offset {} (no retention runs)",
                info.start_offset
            ));
        }
        if info.durable_offset > info.end_offset {
            return Err(format!(
                "{tp}: durable offset {} past end {}",
                info.durable_offset, info.end_offset
            ));
        }
        ends.push(info.end_offset);
    }

    // 1 and 5: read everything; offsets dense from 0, every poll Ok.
    let mut parts: Vec<Vec<[u8; 16]>> = vec![Vec::new(); PARTITIONS as usize];
    let mut c = log.consumer(ConsumerConfig::new().max_poll_records(50_000));
    c.assign(&tps).map_err(|e| format!("assign: {e}"))?;
    for tp in &tps {
        c.seek(tp, 0).map_err(|e| format!("seek({tp}, 0): {e}"))?;
    }
    let mut ids: HashMap<(u32, u16, u64), (u32, u64)> = HashMap::new();
    loop {
        let done = (0..PARTITIONS as usize).all(|p| parts[p].len() as u64 >= ends[p]);
        if done {
            break;
        }
        let recs = c
            .poll(Duration::ZERO)
            .map_err(|e| format!("poll while reading back: {e}"))?;
        if recs.is_empty() {
            let have: Vec<usize> = parts.iter().map(Vec::len).collect();
            return Err(format!(
                "poll returned nothing before the end: read {have:?} of {ends:?}"
            ));
        }
        for r in &recs {
            let p = r.partition();
            let pv = &mut parts[p as usize];
            if r.offset() != pv.len() as u64 {
                return Err(format!(
                    "{TOPIC}-{p}: offset {} returned where {} was next (gap or duplicate)",
                    r.offset(),
                    pv.len()
                ));
            }
            if r.offset() >= ends[p as usize] {
                return Err(format!(
                    "{TOPIC}-{p}@{} is past the end offset {}",
                    r.offset(),
                    ends[p as usize]
                ));
            }
            let raw = r.value().unwrap_or_default();
            let v = Val::decode(raw)
                .filter(|v| v.cycle <= cycle)
                .ok_or_else(|| format!("{TOPIC}-{p}@{}: malformed value {raw:?}", r.offset()))?;
            // 3: no record twice.
            if let Some((p0, o0)) = ids.insert(v.id(), (p, r.offset())) {
                return Err(format!(
                    "duplicate record {v:?}: at {TOPIC}-{p0}@{o0} and {TOPIC}-{p}@{}",
                    r.offset()
                ));
            }
            pv.push(v.encode());
        }
    }
    // Nothing beyond the end either.
    let extra = c
        .poll(Duration::ZERO)
        .map_err(|e| format!("final poll: {e}"))?;
    if !extra.is_empty() {
        return Err(format!(
            "{} records past the end offsets {ends:?}",
            extra.len()
        ));
    }

    // What the last check saw is still there, unchanged.
    for (p, (old, new)) in st.seen.iter().zip(&parts).enumerate() {
        if new.len() < old.len() {
            return Err(format!(
                "{TOPIC}-{p} shrank from {} to {} records since the last check",
                old.len(),
                new.len()
            ));
        }
        if let Some(i) = (0..old.len()).find(|&i| old[i] != new[i]) {
            return Err(format!(
                "{TOPIC}-{p}@{i} changed since the last check: was {:?}, now {:?}",
                Val::decode(&old[i]),
                Val::decode(&new[i])
            ));
        }
    }

    // 2: every acknowledged record at its offset, with its value.
    for (&(p, off), v) in &st.acks {
        match parts.get(p as usize).and_then(|pv| pv.get(off as usize)) {
            Some(b) if *b == v.encode() => {}
            Some(b) => {
                return Err(format!(
                    "acknowledged {v:?} at {TOPIC}-{p}@{off}, found {:?} there",
                    Val::decode(b)
                ))
            }
            None => {
                return Err(format!(
                    "acknowledged {v:?} at {TOPIC}-{p}@{off} is missing (end offset {})",
                    ends.get(p as usize).copied().unwrap_or(0)
                ))
            }
        }
        st.ack_checks += 1;
    }

    // 3: each thread's writes form a prefix of its sequence (a `send` that
    // returned survives a process crash) and batches are whole.
    let mut per_thread: HashMap<(u32, u16), (u64, u64)> = HashMap::new();
    for (p, pv) in parts.iter().enumerate() {
        for (off, b) in pv.iter().enumerate() {
            let v = Val::decode(b).ok_or("value vanished")?;
            let e = per_thread.entry((v.cycle, v.thread)).or_insert((0, 0));
            e.0 = e.0.max(v.seq);
            e.1 += 1;
            if v.batch_len > 1 {
                let first = off as u64 - u64::from(v.batch_idx);
                for j in 0..u64::from(v.batch_len) {
                    let want = Val {
                        batch_idx: j as u8,
                        seq: v.seq - u64::from(v.batch_idx) + j,
                        ..v
                    };
                    if pv.get((first + j) as usize) != Some(&want.encode()) {
                        return Err(format!(
                            "batch of {v:?} at {TOPIC}-{p}@{off} is not whole: expected {want:?} \
                             at offset {}",
                            first + j
                        ));
                    }
                }
            }
        }
    }
    for (&(c, t), &(max, n)) in &per_thread {
        if n != max + 1 {
            return Err(format!(
                "cycle {c} thread {t}: {n} records present but sequence numbers reach {max}: \
                 a record whose send returned before a later one is missing"
            ));
        }
    }

    // 4: committed offsets within the log, acknowledged commits kept.
    for (p, off) in st.pending_commits.drain(..) {
        let end = ends[p as usize];
        if off > end {
            return Err(format!(
                "acknowledged commit {TOPIC}-{p} -> {off} is past the end offset {end}"
            ));
        }
        st.commit_checks += 1;
    }
    let committed = log.committed_offsets(GROUP);
    for (tp, o) in &committed {
        if tp.topic != TOPIC || tp.partition >= PARTITIONS {
            return Err(format!("group {GROUP} has an offset for unknown {tp}"));
        }
        let end = ends[tp.partition as usize];
        if o.offset() > end {
            return Err(format!(
                "committed {tp} -> {} is past the end offset {end}",
                o.offset()
            ));
        }
        st.commit_checks += 1;
    }
    for (&p, &max) in &st.max_commit {
        let got = committed
            .iter()
            .find(|(tp, _)| tp.partition == p)
            .map(|(_, o)| o.offset());
        if got.is_none_or(|g| g < max) {
            return Err(format!(
                "acknowledged commit {TOPIC}-{p} -> {max} lost: committed_offsets says {got:?}"
            ));
        }
    }

    st.seen = parts;
    Ok(())
}
