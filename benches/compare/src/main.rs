//! Comparison harness: streamlog against a hand-written baseline and peers.
//! See shared BENCHMARKS.md. Run:
//!   cargo run --release --manifest-path benches/compare/Cargo.toml -- [--quick] [--json PATH]

mod cost;
mod engines;
mod repeat;
mod server;
mod txn;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engines::*;
use streamlog::{
    Compression, ConsumerConfig, Log, LogOptions, OffsetReset, Record, SyncPolicy, TopicConfig,
    TopicPartition,
};

// ---------------------------------------------------------------- data

/// JSON-like values, about 5x compressible with zstd level 1: fields from
/// small vocabularies, numbers with random digits.
struct Pool {
    vals: Vec<Vec<u8>>,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const EVENTS: &[&str] = &["click", "view", "purchase", "add_to_cart", "login", "logout", "search", "share"];
const PAGES: &[&str] = &["/home", "/products", "/products/item", "/cart", "/checkout", "/account", "/search", "/help/faq"];
const COUNTRIES: &[&str] = &["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "ES", "IT"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Mobile/15E148",
];
const TAGS: &[&str] = &["new", "sale", "featured", "clearance", "premium", "gift", "eco", "limited"];

fn make_value(size: usize, rng: &mut Rng) -> Vec<u8> {
    let mut s = format!(
        "{{\"id\":{},\"user\":\"u{:05}\",\"event\":\"{}\",\"page\":\"{}\",\"ts\":17000{:08},\"country\":\"{}\"",
        rng.next() % 100_000_000,
        rng.next() % 5000,
        rng.pick(EVENTS),
        rng.pick(PAGES),
        rng.next() % 100_000_000,
        rng.pick(COUNTRIES),
    );
    let mut i = 0;
    while s.len() < size {
        match i % 4 {
            0 => s.push_str(&format!(",\"ua\":\"{}\"", rng.pick(AGENTS))),
            1 => s.push_str(&format!(",\"price\":{}.{:02},\"sid\":\"{:08x}\"", rng.next() % 500, rng.next() % 100, rng.next() as u32)),
            2 => s.push_str(&format!(",\"tags\":[\"{}\",\"{}\"]", rng.pick(TAGS), rng.pick(TAGS))),
            _ => s.push_str(&format!(",\"ref\":\"{}?q={}&r={}\",\"n\":{}", rng.pick(PAGES), rng.pick(TAGS), rng.next() % 1_000_000, rng.next() % 100_000)),
        }
        i += 1;
    }
    let mut v = s.into_bytes();
    v.truncate(size - 1);
    v.push(b'}');
    v
}

impl Pool {
    fn new(size: usize) -> Pool {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ size as u64);
        Pool { vals: (0..4096).map(|_| make_value(size, &mut rng)).collect() }
    }
    fn get(&self, i: u64) -> &[u8] {
        &self.vals[(i % self.vals.len() as u64) as usize]
    }
    fn batch(&self, start: u64, n: usize) -> Vec<&[u8]> {
        (0..n as u64).map(|i| self.get(start + i)).collect()
    }
}

// ---------------------------------------------------------------- results

#[derive(Clone, Copy, Default, Debug)]
struct Res {
    rps: Option<f64>,
    mbps: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
    /// CPU time and page faults per record, where the row measures them.
    cost: Option<cost::Cost>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// records/s, higher is better
    Rate,
    /// MB/s, higher is better (compressed)
    Mbps,
    /// p99 latency
    P99,
    /// p50 time per operation
    Time,
    /// MiB in mb_per_s
    Mem,
}

struct Row {
    workload: String,
    kind: Kind,
    cells: Vec<(String, Option<Res>)>,
}

struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    fn add(&mut self, workload: &str, kind: Kind, engine: &str, r: Option<Res>) {
        if let Some(row) = self.rows.iter_mut().find(|x| x.workload == workload) {
            row.cells.push((engine.to_string(), r));
        } else {
            self.rows.push(Row { workload: workload.into(), kind, cells: vec![(engine.into(), r)] });
        }
        let shown = r.map_or("n/a".to_string(), |r| fmt_primary(kind, &r));
        eprintln!("  {workload:<48} {engine:<13} {shown}");
    }
    fn note(&mut self, s: String) {
        eprintln!("  note: {s}");
        self.notes.push(s);
    }
}

fn primary(kind: Kind, r: &Res) -> Option<f64> {
    match kind {
        Kind::Rate => r.rps,
        Kind::Mbps | Kind::Mem => r.mbps,
        Kind::P99 => r.p99,
        Kind::Time => r.p50,
    }
}

fn fmt_primary(kind: Kind, r: &Res) -> String {
    match kind {
        Kind::Rate => match (r.rps, r.mbps, r.p99) {
            (Some(x), _, Some(p)) => format!("{:.2}k/s p99 {:.0}us", x / 1e3, p),
            (Some(x), Some(m), None) => format!("{:.2}M/s {:.0}MB/s", x / 1e6, m),
            (Some(x), None, None) => format!("{:.2}M/s", x / 1e6),
            _ => "?".into(),
        },
        Kind::Mbps => format!("{:.0}MB/s", r.mbps.unwrap_or(f64::NAN)),
        Kind::P99 => format!(
            "{:.0}/{:.0}/{:.0}us",
            r.p50.unwrap_or(f64::NAN),
            r.p99.unwrap_or(f64::NAN),
            r.p999.unwrap_or(f64::NAN)
        ),
        Kind::Time => {
            let us = r.p50.unwrap_or(f64::NAN);
            if us >= 10_000.0 {
                format!("{:.1}ms", us / 1000.0)
            } else {
                format!("{:.1}us", us)
            }
        }
        Kind::Mem => format!("{:.0}MiB", r.mbps.unwrap_or(f64::NAN)),
    }
}

pub(crate) fn pct(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    (at(0.5), at(0.99), at(0.999))
}

fn lat_res(v: Vec<f64>) -> Res {
    let (a, b, c) = pct(v);
    Res { p50: Some(a), p99: Some(b), p999: Some(c), ..Default::default() }
}

// ---------------------------------------------------------------- dirs

struct Dirs {
    root: PathBuf,
    n: AtomicUsize,
}
impl Dirs {
    fn new() -> Dirs {
        let root = std::env::temp_dir().join(format!("streamlog-compare-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        Dirs { root, n: AtomicUsize::new(0) }
    }
    fn fresh(&self, tag: &str) -> PathBuf {
        let p = self.root.join(format!("{}-{}", tag, self.n.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&p);
        p
    }
}
impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
fn rm(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
}
fn dir_bytes(p: &Path) -> u64 {
    let mut t = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            t += if m.is_dir() { dir_bytes(&e.path()) } else { m.len() };
        }
    }
    t
}
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

// ---------------------------------------------------------------- workloads

struct Scale {
    quick: bool,
}
impl Scale {
    fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }
}

fn size_name(size: usize) -> &'static str {
    if size == 100 { "100B" } else { "1KiB" }
}

/// Writes back every dirty page on the machine before a pass, untimed, so
/// that no pass pays for the previous one's (or an earlier row's)
/// writeback: on 2 vCPUs the flusher threads otherwise take CPU and disk
/// from whoever runs next. Every timed write, e2e and durable pass starts
/// with it.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// The engines `--engines a,b` names (all when it is not given): a quicker
/// loop while working on one row. Full runs for README use every engine.
static SELECTED: std::sync::OnceLock<Option<Vec<String>>> = std::sync::OnceLock::new();

fn selected(e: &str) -> bool {
    SELECTED.get().and_then(Option::as_ref).is_none_or(|v| v.iter().any(|x| x == e))
}

/// append-batched (and read on the same data).
fn w_batched_and_read(rep: &mut Report, dirs: &Dirs, sc: &Scale, size: usize, pool: &Pool) {
    let n: u64 = if size == 100 { sc.pick(1_000_000, 4_000_000) } else { sc.pick(150_000, 1_000_000) };
    let measured = sc.pick(1, 3);
    let wl = format!("append-batched {} (os-buffered)", size_name(size));
    let rl = format!("read {} (crc-checked)", size_name(size));
    let dl = format!("read {} (crc-checked, default consumer settings)", size_name(size));
    for &e in ENGINES.iter() {
        if e == "redb-default" || !selected(e) {
            rep.add(&wl, Kind::Rate, e, None);
            rep.add(&rl, Kind::Rate, e, None);
            rep.add(&dl, Kind::Rate, e, None);
            continue;
        }
        // Pass 0 warms up (appends and a read); each later pass appends a
        // fresh store and reads it twice, the second read measured. The
        // median pass is reported: this machine's noise is larger than a
        // single pass can average out.
        let (mut appends, mut reads, mut defaults) = (Vec::new(), Vec::new(), Vec::new());
        for pass in 0..=measured {
            settle();
            let d = dirs.fresh(e);
            let mut st = open_store(e, &d, Mode::Buffered, 1);
            let (t, u) = (Instant::now(), cost::usage());
            append_batches(&mut *st, n, pool);
            let el = t.elapsed().as_secs_f64();
            if pass > 0 {
                appends.push((el, cost::Usage::since(u, n)));
            }
            // A warm-up read, then the harness's settings, then the defaults.
            for read in 0..3 {
                let (t, u) = (Instant::now(), cost::usage());
                let (got, bytes) = if read == 2 { st.read_all_defaults() } else { st.read_all() };
                let el = t.elapsed().as_secs_f64();
                let c = cost::Usage::since(u, n);
                assert_eq!(got, n, "{e}: read {got} of {n}");
                match (pass, read) {
                    (0, _) | (_, 0) => {}
                    (_, 1) => reads.push((el, bytes, c)),
                    _ => defaults.push((el, bytes, c)),
                }
            }
            drop(st);
            rm(&d);
        }
        appends.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        let (el, c) = appends[appends.len() / 2];
        rep.add(&wl, Kind::Rate, e, Some(Res {
            rps: Some(n as f64 / el),
            mbps: Some((n * size as u64) as f64 / el / 1e6),
            cost: Some(c),
            ..Default::default()
        }));
        for (label, mut v) in [(&rl, reads), (&dl, defaults)] {
            v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            let (el, bytes, c) = v[v.len() / 2];
            rep.add(label, Kind::Rate, e, Some(Res {
                rps: Some(n as f64 / el),
                mbps: Some(bytes as f64 / el / 1e6),
                cost: Some(c),
                ..Default::default()
            }));
        }
    }
    if !sc.quick {
        rep.note(format!("{wl} / {rl}: median of {measured} measured passes after a warm-up pass, each on a fresh store, after sync(2)"));
    }
}

/// append-single: one call per record; the record survives a process crash
/// on return.
fn w_single(rep: &mut Report, dirs: &Dirs, sc: &Scale, size: usize, pool: &Pool) {
    let n: u64 = if size == 100 { sc.pick(200_000, 1_000_000) } else { sc.pick(100_000, 500_000) };
    let measured = sc.pick(1, 3);
    let wl = format!("append-single {} (os-buffered, crash-safe)", size_name(size));
    for &e in ENGINES.iter() {
        if e.starts_with("redb") || !selected(e) {
            // redb-none: a non-durable commit does not survive a process
            // crash; redb-default fsyncs every commit (see the durable rows).
            rep.add(&wl, Kind::Rate, e, None);
            continue;
        }
        let mut times = Vec::new();
        for pass in 0..=measured {
            settle();
            let d = dirs.fresh(e);
            let mut st = open_store(e, &d, Mode::Buffered, 1);
            let (t, u) = (Instant::now(), cost::usage());
            for i in 0..n {
                st.append_one(pool.get(i));
            }
            let el = t.elapsed().as_secs_f64();
            if pass > 0 {
                times.push((el, cost::Usage::since(u, n)));
            }
            drop(st);
            rm(&d);
        }
        times.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        let (el, c) = times[times.len() / 2];
        rep.add(&wl, Kind::Rate, e, Some(Res {
            rps: Some(n as f64 / el),
            mbps: Some((n * size as u64) as f64 / el / 1e6),
            cost: Some(c),
            ..Default::default()
        }));
    }
    if !sc.quick {
        rep.note(format!("{wl}: median of {measured} measured passes after a warm-up pass, each after sync(2)"));
    }
}

/// How the e2e producer keeps its fixed rate between sends.
#[derive(Clone, Copy, PartialEq)]
enum Pacing {
    /// Sleeps until the next send is due (sending at once when late), as a
    /// producer with nothing else to do would. With the default timer
    /// slack a sleep lasts at least ~50 us, so sends come in small groups
    /// at the same average rate.
    Sleep,
    /// Busy-waits for the next send time: holds one of the two vCPUs.
    Spin,
}

/// end-to-end latency: producer at a fixed rate, consumer blocked in poll
/// (default `ConsumerConfig`, which spins up to 150 us only while records
/// arrive closer together than that on average).
fn w_e2e(rep: &mut Report, dirs: &Dirs, sc: &Scale, size: usize, pool: &Pool, pacing: Pacing) {
    let rate = 50_000u64;
    let n: u64 = sc.pick(25_000, 250_000);
    let how = match pacing {
        Pacing::Sleep => "producer sleeps",
        Pacing::Spin => "producer spins",
    };
    let wl = format!("e2e-latency {} @50k/s, {how} (os-buffered)", size_name(size));
    for &e in ENGINES.iter() {
        if e != "streamlog" {
            rep.add(&wl, Kind::P99, e, None);
            continue;
        }
        let mut res = None;
        for pass in 0..2 {
            // As every timed pass: after sync(2), so that the writeback of
            // what earlier rows wrote does not land in this one (in one
            // full run without it, 100 B with a sleeping producer had a
            // p50 of 11-13 µs and a p99 of 1.6-3.7 ms, against 3 and 10 µs
            // for the row run on its own just after).
            settle();
            let d = dirs.fresh(e);
            let log = LogOptions::new().sync(SyncPolicy::OsBuffered).open(&d).unwrap();
            log.create_topic("t", TopicConfig::new()).unwrap();
            let base = Instant::now();
            let ready = Arc::new(AtomicBool::new(false));
            let (log2, ready2) = (log.clone(), ready.clone());
            let cons = std::thread::spawn(move || {
                let mut c = log2.consumer(
                    ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest).enable_auto_commit(false),
                );
                c.assign(&[TopicPartition::new("t", 0)]).unwrap();
                let mut lats = Vec::with_capacity(n as usize);
                ready2.store(true, Ordering::Release);
                while (lats.len() as u64) < n {
                    let recs = c.poll(Duration::from_millis(200)).unwrap();
                    let now = base.elapsed().as_nanos() as u64;
                    for r in &recs {
                        let v = r.value().unwrap();
                        let ts = u64::from_le_bytes(v[..8].try_into().unwrap());
                        lats.push((now - ts) as f64 / 1000.0);
                    }
                }
                lats
            });
            while !ready.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(20));
            let prod = log.producer();
            let mut buf = pool.get(0).to_vec();
            let start = Instant::now();
            for i in 0..n {
                let target = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                match pacing {
                    Pacing::Sleep => {
                        let now = Instant::now();
                        if target > now {
                            std::thread::sleep(target - now);
                        }
                    }
                    Pacing::Spin => {
                        while Instant::now() < target {
                            std::hint::spin_loop();
                        }
                    }
                }
                buf.copy_from_slice(pool.get(i));
                let ts = base.elapsed().as_nanos() as u64;
                buf[..8].copy_from_slice(&ts.to_le_bytes());
                prod.send_to("t", 0, Record::new(&buf[..])).unwrap();
            }
            let lats = cons.join().unwrap();
            if pass == 1 {
                res = Some(lat_res(lats));
            }
            log.close().unwrap();
            rm(&d);
        }
        rep.add(&wl, Kind::P99, e, res);
    }
}

type SendFn = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Builds a thread-safe durable append for an engine (fdatasync or the
/// engine's own durable commit before return).
/// Counts the fdatasyncs of an engine that reports them (streamlog).
type SyncCount = Box<dyn Fn() -> Option<u64> + Send>;

fn durable_sender(e: &str, d: &Path) -> (SendFn, Box<dyn FnOnce() + Send>, SyncCount) {
    let none: SyncCount = Box::new(|| None);
    match e {
        "raw" => {
            let st = Arc::new(Mutex::new(Raw::open(d, Mode::Durable)));
            (Arc::new(move |v: &[u8]| st.lock().unwrap().append_one(v)), Box::new(|| {}), none)
        }
        "streamlog" => {
            let sl = Sl::open(d, Mode::Durable, Compression::None, 1);
            let p = sl.producer();
            let (log, counted) = (sl.log.clone(), sl.log.clone());
            (
                Arc::new(move |v: &[u8]| {
                    p.send_to("t", 0, Record::new(v)).unwrap();
                }),
                Box::new(move || {
                    log.close().unwrap();
                }),
                Box::new(move || Some(counted.metrics().fsyncs)),
            )
        }
        "commitlog" => {
            let st = Arc::new(Mutex::new(Cl::open(d, Mode::Durable)));
            (Arc::new(move |v: &[u8]| st.lock().unwrap().append_one(v)), Box::new(|| {}), none)
        }
        "redb-default" => {
            let st = Arc::new(Mutex::new(Rdb::open(d, redb::Durability::Immediate)));
            (Arc::new(move |v: &[u8]| st.lock().unwrap().append_one(v)), Box::new(|| {}), none)
        }
        "fjall" => {
            let fj = Fj::open(d, Mode::Durable);
            let (db, ks) = (fj.db.clone(), fj.ks.clone());
            let next = AtomicU64::new(0);
            (
                Arc::new(move |v: &[u8]| {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    ks.insert(&k.to_be_bytes()[..], v).unwrap();
                    db.persist(fjall::PersistMode::SyncData).unwrap();
                }),
                Box::new(|| {}),
                none,
            )
        }
        _ => unreachable!(),
    }
}

fn w_durable(rep: &mut Report, dirs: &Dirs, sc: &Scale, size: usize, pool: &Pool) {
    let dur = Duration::from_millis(sc.pick(600, 2000));
    rep.note(format!("durable {}: load average before: {}", size_name(size), loadavg()));
    for threads in [1usize, 2, 4, 8, 16, 32] {
        let wl = format!("durable {} {}t (fdatasync per write)", size_name(size), threads);
        for &e in ENGINES.iter() {
            // commitlog 0.2's flush() calls File::flush (a no-op) on the
            // segment: it has no durable append, so it gets n/a here.
            if e == "redb-none" || e == "commitlog" || (e == "raw" && threads > 1) {
                rep.add(&wl, Kind::Rate, e, None);
                continue;
            }
            let mut res = None;
            for pass in 0..2 {
                settle();
                let d = dirs.fresh(e);
                std::fs::create_dir_all(&d).unwrap();
                let (send, close, syncs) = durable_sender(e, &d);
                let syncs_before = syncs();
                let stop = Arc::new(AtomicBool::new(false));
                let (t, u) = (Instant::now(), cost::usage());
                let hs: Vec<_> = (0..threads)
                    .map(|ti| {
                        let (send, stop) = (send.clone(), stop.clone());
                        let vals: Vec<Vec<u8>> = (0..64).map(|i| pool.get((ti * 64 + i) as u64).to_vec()).collect();
                        std::thread::spawn(move || {
                            let mut lats = Vec::new();
                            let mut i = 0;
                            while !stop.load(Ordering::Relaxed) {
                                let t0 = Instant::now();
                                send(&vals[i % 64]);
                                lats.push(t0.elapsed().as_secs_f64() * 1e6);
                                i += 1;
                            }
                            lats
                        })
                    })
                    .collect();
                std::thread::sleep(dur);
                stop.store(true, Ordering::Relaxed);
                let mut lats = Vec::new();
                for h in hs {
                    lats.extend(h.join().unwrap());
                }
                let el = t.elapsed().as_secs_f64();
                let c = cost::Usage::since(u, lats.len() as u64);
                let synced = syncs().zip(syncs_before).map(|(a, b)| a - b);
                drop(send);
                close();
                rm(&d);
                if pass == 1 {
                    let n = lats.len() as f64;
                    if let Some(f) = synced.filter(|&f| f > 0) {
                        rep.note(format!("{wl}: {e} {:.1} records per fdatasync", n / f as f64));
                    }
                    let mut r = lat_res(lats);
                    r.rps = Some(n / el);
                    r.mbps = Some(n * size as f64 / el / 1e6);
                    r.cost = Some(c);
                    res = Some(r);
                }
            }
            rep.add(&wl, Kind::Rate, e, res);
        }
    }
    rep.note(format!("durable {}: load average after: {}", size_name(size), loadavg()));
    rep.note("durable: commitlog n/a because CommitLog::flush() does not fsync the segment file (File::flush is a no-op); redb-none n/a (not durable); raw = write()+fdatasync per record, 1 thread; each pass runs for a fixed time after an equal warm-up pass".into());
}

/// compressed: streamlog with zstd level 1 against zstd alone on the same
/// blocks (shown in the raw column): the records sections streamlog
/// compresses, 1000 records each, framing included, built with the
/// crate's own encoder. zstd alone on the bare values, without the
/// framing, is reported in a note.
fn w_compressed(rep: &mut Report, dirs: &Dirs, sc: &Scale, size: usize, pool: &Pool) {
    let total: u64 = sc.pick(100 << 20, 1 << 30);
    let n = total / size as u64;
    let wl = format!("compressed {} zstd-1 (input MB/s)", size_name(size));
    // zstd alone, on the bare values and on streamlog's records sections
    let section = |i: u64, k: u64| -> Vec<u8> {
        let records = (0..k)
            .map(|j| streamlog::internals::DecodedRecord {
                offset_delta: j as u32,
                timestamp: 0,
                key: None,
                value: Some(pool.get(i + j).to_vec()),
                headers: Vec::new(),
            })
            .collect();
        let b = streamlog::internals::DecodedBatch {
            version: 2,
            leader_epoch: 0,
            producer: (-1, -1, -1),
            total_len: 0,
            base_offset: 0,
            last_offset_delta: k as u32 - 1,
            attributes: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            crc: 0,
            records,
        };
        streamlog::internals::encode(&b)[streamlog::internals::BATCH_HEADER_LEN..].to_vec()
    };
    let mut blocks: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut i = 0;
    while i < n {
        let k = 1000.min(n - i);
        blocks.push((section(i, k), k));
        i += k;
    }
    let mut res = None;
    let mut zratio = 0.0;
    let mut bare = (0.0, 0.0);
    for pass in 0..2 {
        let mut comp = zstd::bulk::Compressor::new(1).unwrap();
        let mut block = Vec::with_capacity(1000 * (size + 8));
        let (mut inb, mut outb) = (0u64, 0u64);
        let t = Instant::now();
        let mut i = 0;
        while i < n {
            block.clear();
            let k = 1000.min(n - i);
            for j in 0..k {
                block.extend_from_slice(pool.get(i + j));
            }
            let c = comp.compress(&block).unwrap();
            inb += block.len() as u64;
            outb += c.len() as u64;
            i += k;
        }
        let el = t.elapsed().as_secs_f64();
        let (mut secb, mut soutb) = (0u64, 0u64);
        let t = Instant::now();
        for (b, _) in &blocks {
            let c = comp.compress(b).unwrap();
            secb += b.len() as u64;
            soutb += c.len() as u64;
        }
        let sel = t.elapsed().as_secs_f64();
        if pass == 1 {
            // Input MB/s counts the values alone in every column, as for
            // streamlog.
            res = Some(Res { rps: Some(n as f64 / sel), mbps: Some(inb as f64 / sel / 1e6), ..Default::default() });
            bare = (inb as f64 / el / 1e6, inb as f64 / outb as f64);
            zratio = inb as f64 / soutb as f64;
            let _ = secb;
        }
    }
    rep.add(&wl, Kind::Mbps, "raw", res);
    let mut res = None;
    let mut sratio = 0.0;
    for pass in 0..2 {
        let d = dirs.fresh("streamlog-z");
        let sl = Sl::open(&d, Mode::Buffered, Compression::Zstd(1), 1);
        let p = sl.producer();
        let t = Instant::now();
        let mut i = 0;
        while i < n {
            let k = 1000.min(n - i) as usize;
            let recs: Vec<Record<'_>> = (0..k as u64).map(|j| Record::new(pool.get(i + j))).collect();
            p.send_batch("t", recs).unwrap();
            i += k as u64;
        }
        let el = t.elapsed().as_secs_f64();
        sl.log.close().unwrap();
        if pass == 1 {
            res = Some(Res {
                rps: Some(n as f64 / el),
                mbps: Some((n * size as u64) as f64 / el / 1e6),
                ..Default::default()
            });
            sratio = (n * size as u64) as f64 / dir_bytes(&d) as f64;
        }
        rm(&d);
    }
    rep.add(&wl, Kind::Mbps, "streamlog", res);
    for e in ["commitlog", "redb-none", "redb-default", "fjall"] {
        rep.add(&wl, Kind::Mbps, e, None);
    }
    let sl_mbps = rep.rows.last().and_then(|r| r.cells.iter().find(|c| c.0 == "streamlog")).and_then(|c| c.1.as_ref()).and_then(|r| r.mbps);
    rep.note(format!(
        "compressed {}: raw = zstd-1 alone on streamlog's own records sections (1000 records, framing included); value bytes / compressed bytes {:.2}x; streamlog on-disk ratio {:.2}x (input bytes / directory bytes after close). zstd-1 alone on the bare values (no framing): {:.0} MB/s, ratio {:.2}x; streamlog / that = {}",
        size_name(size), zratio, sratio, bare.0, bare.1,
        sl_mbps.map_or("n/a".to_string(), |m| format!("{:.2}x", m / bare.0))
    ));
}

/// Time to a first successful read after open.
/// Opens the store and reads its first record. Returns the record's length,
/// the time from `t` to the moment it was read, and the open store, so that
/// closing it (streamlog's close syncs what the killed writer left in the
/// page cache) is not part of the figure.
fn first_read(e: &str, d: &Path, t: Instant) -> (usize, f64, Box<dyn std::any::Any>) {
    let done = |len: usize, store: Box<dyn std::any::Any>| (len, t.elapsed().as_secs_f64() * 1e6, store);
    match e {
        "raw" => {
            use std::io::Read;
            let mut f = std::fs::File::open(d.join("raw.log")).unwrap();
            let mut h = [0u8; 8];
            f.read_exact(&mut h).unwrap();
            let len = u32::from_le_bytes(h[..4].try_into().unwrap()) as usize;
            let mut v = vec![0u8; len];
            f.read_exact(&mut v).unwrap();
            assert_eq!(crc32fast::hash(&v), u32::from_le_bytes(h[4..].try_into().unwrap()));
            done(len, Box::new(f))
        }
        "streamlog" => {
            let log = Log::open(d).unwrap();
            let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest).enable_auto_commit(false));
            c.assign(&[TopicPartition::new("t", 0)]).unwrap();
            loop {
                let r = c.poll(Duration::from_millis(100)).unwrap();
                if let Some(x) = r.get(0) {
                    let len = x.value().unwrap().len();
                    drop(r);
                    return done(len, Box::new((c, log)));
                }
            }
        }
        "commitlog" => {
            let st = Cl::open(d, Mode::Buffered);
            let len = st.first();
            done(len, Box::new(st))
        }
        "redb-none" | "redb-default" => {
            let st = Rdb::open(d, redb::Durability::None);
            let len = st.first();
            done(len, Box::new(st))
        }
        "fjall" => {
            let st = Fj::open(d, Mode::Buffered);
            let len = st.first();
            done(len, Box::new(st))
        }
        _ => unreachable!(),
    }
}

/// Time to the first record read, in microseconds; the close afterwards is
/// not timed.
fn timed_open(e: &str, d: &Path) -> f64 {
    let (got, us, store) = first_read(e, d, Instant::now());
    assert!(got > 0);
    drop(store);
    us
}

/// Appends records `0..n` of the pool in batches of 1000, then finishes.
fn append_batches(st: &mut dyn Store, n: u64, pool: &Pool) {
    let mut i = 0;
    while i < n {
        let b = pool.batch(i, 1000.min((n - i) as usize));
        st.append_batch(&b);
        i += b.len() as u64;
    }
    st.finish();
}

fn fill(e: &str, d: &Path, bytes: u64, pool: &Pool) {
    let mut st = open_store(e, d, Mode::Buffered, 1);
    append_batches(&mut *st, bytes / 1024, pool);
}

fn w_open(rep: &mut Report, dirs: &Dirs, sc: &Scale, pool: &Pool) {
    let bytes: u64 = sc.pick(256 << 20, 2 << 30);
    let label = if sc.quick { "256MiB" } else { "2GiB" };
    let wc = format!("open clean {label} (to first poll)");
    let wk = format!("open after kill -9 {label} (to first poll)");
    let me = std::env::current_exe().unwrap();
    for &e in ENGINES.iter() {
        if e == "redb-default" {
            rep.add(&wc, Kind::Time, e, None);
            rep.add(&wk, Kind::Time, e, None);
            continue;
        }
        let d = dirs.fresh(e);
        fill(e, &d, bytes, pool);
        // clean: warm-up, then 3 measured
        let mut v = Vec::new();
        for i in 0..4 {
            let us = timed_open(e, &d);
            if i > 0 {
                v.push(us);
            }
        }
        rep.add(&wc, Kind::Time, e, Some(lat_res(v)));
        if e == "raw" {
            // No recovery to do: a crash leaves the same file.
            rep.add(&wk, Kind::Time, e, None);
            rm(&d);
            continue;
        }
        // crash: a child appends in a loop and is killed; warm-up + 2 measured
        let mut v = Vec::new();
        for i in 0..3 {
            let mut child = Command::new(&me)
                .args(["--child", "crash", e, d.to_str().unwrap()])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "ready", "{e}: child said {line:?}");
            std::thread::sleep(Duration::from_millis(300));
            child.kill().unwrap();
            child.wait().unwrap();
            let us = timed_open(e, &d);
            if i > 0 {
                v.push(us);
            }
        }
        rep.add(&wk, Kind::Time, e, Some(lat_res(v)));
        rm(&d);
    }
}

fn child_crash(e: &str, d: &Path) {
    let pool = Pool::new(1024);
    let mut st = open_store(e, d, Mode::Buffered, 1);
    let mut i = 0u64;
    let b = pool.batch(0, 1000);
    st.append_batch(&b);
    println!("ready");
    std::io::stdout().flush().unwrap();
    loop {
        i += 1000;
        let b = pool.batch(i, 1000);
        st.append_batch(&b);
        st.finish();
    }
}

fn w_temporary(rep: &mut Report, sc: &Scale, dirs: &Dirs) {
    let n = sc.pick(200, 1000);
    let wl = "temporary cycle (open+topic+send+poll+drop)";
    for &e in ENGINES.iter() {
        let mut v = Vec::new();
        for pass in 0..2 {
            for _ in 0..n {
                let t = Instant::now();
                match e {
                    "streamlog" => {
                        let log = Log::temporary().unwrap();
                        log.create_topic("t", TopicConfig::new()).unwrap();
                        log.producer().send("t", Record::new(&b"hello"[..])).unwrap();
                        let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
                        c.assign(&[TopicPartition::new("t", 0)]).unwrap();
                        let r = c.poll(Duration::from_secs(1)).unwrap();
                        assert_eq!(r.len(), 1);
                        drop(c);
                        drop(log);
                    }
                    _ => {
                        let d = dirs.fresh("tmp");
                        {
                            let mut st = open_store(e, &d, Mode::Buffered, 1);
                            st.append_one(b"hello");
                            assert_eq!(st.read_all().0, 1);
                        }
                        rm(&d);
                    }
                }
                if pass == 1 {
                    v.push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
        rep.add(wl, Kind::Time, e, Some(lat_res(v)));
    }
    rep.note("temporary: peers (and raw) do the same cycle in a fresh directory that is removed afterwards; redb-default fsyncs its one commit".into());
}

/// Publishes a member's assignment size whenever it changes.
struct Publish(Arc<Vec<AtomicUsize>>, usize);

impl streamlog::RebalanceListener for Publish {
    fn on_partitions_revoked(&mut self, c: &mut streamlog::Consumer, _: &[TopicPartition]) {
        self.0[self.1].store(c.assignment().len(), Ordering::Release);
    }
    fn on_partitions_assigned(&mut self, c: &mut streamlog::Consumer, _: &[TopicPartition]) {
        self.0[self.1].store(c.assignment().len(), Ordering::Release);
    }
}

fn w_groups(rep: &mut Report, sc: &Scale, dirs: &Dirs) {
    let wl = "groups rebalance 3->4 members, 12 partitions";
    let cycles = sc.pick(4, 11);
    let d = dirs.fresh("groups");
    let log = LogOptions::new().open(&d).unwrap();
    log.create_topic("g", TopicConfig::new().partitions(12)).unwrap();
    // state per member: assignment size, published after each poll
    let state: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let spawn_member = |i: usize, stop: Arc<AtomicBool>| {
        let (log, state) = (log.clone(), state.clone());
        std::thread::spawn(move || {
            let mut c = log.consumer(ConsumerConfig::new().group("grp").auto_offset_reset(OffsetReset::Earliest));
            // The assignment is published the moment it is granted, inside
            // poll, so the figure is time to grant, not the poll timeout.
            c.set_rebalance_listener(Publish(state.clone(), i));
            c.subscribe(&["g"]).unwrap();
            while !stop.load(Ordering::Relaxed) {
                c.poll(Duration::from_millis(20)).unwrap();
                state[i].store(c.assignment().len(), Ordering::Release);
            }
            c.close().unwrap();
            // After close: closing revokes, which the listener publishes.
            state[i].store(0, Ordering::Release);
        })
    };
    let stop_all = Arc::new(AtomicBool::new(false));
    let base: Vec<_> = (0..3).map(|i| spawn_member(i, stop_all.clone())).collect();
    let wait = |want: &[usize]| {
        let t = Instant::now();
        loop {
            if (0..want.len()).all(|i| state[i].load(Ordering::Acquire) == want[i]) {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "group never settled");
            std::hint::spin_loop();
        }
    };
    wait(&[4, 4, 4]);
    let mut v = Vec::new();
    for cycle in 0..cycles {
        let stop4 = Arc::new(AtomicBool::new(false));
        let t = Instant::now();
        let h = spawn_member(3, stop4.clone());
        wait(&[3, 3, 3, 3]);
        if cycle > 0 {
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        stop4.store(true, Ordering::Relaxed);
        h.join().unwrap();
        wait(&[4, 4, 4, 0]);
    }
    stop_all.store(true, Ordering::Relaxed);
    for h in base {
        h.join().unwrap();
    }
    log.close().unwrap();
    rm(&d);
    for &e in ENGINES.iter() {
        rep.add(wl, Kind::Time, e, if e == "streamlog" { Some(lat_res(v.clone())) } else { None });
    }
    rep.note(format!("groups: range assignor (eager), {} measured cycles after a warm-up; time from the 4th member's subscribe to the last member's on_partitions_assigned with 3 partitions (members poll with a 20 ms timeout, which no longer bounds the figure)", cycles - 1));
}

// ---------------------------------------------------------------- memory

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

const MEM_PARTS: u32 = 100;

/// Child: append `bytes` of 1 KiB records across 100 partitions, or read
/// them back; print "VmHWM_KiB peak_RssAnon_KiB".
fn child_mem(op: &str, e: &str, d: &Path, bytes: u64) {
    let pool = Pool::new(1024);
    let mut peak_anon = 0;
    let sample = |peak_anon: &mut u64| *peak_anon = (*peak_anon).max(status_kib("RssAnon:"));
    // Stores: one per partition for raw and commitlog; one for the rest.
    let per_part = e == "raw" || e == "commitlog";
    let mut stores: Vec<Box<dyn Store>> = if per_part {
        (0..MEM_PARTS).map(|p| open_store(e, &d.join(format!("p{p}")), Mode::Buffered, 1)).collect()
    } else {
        vec![open_store(e, d, Mode::Buffered, MEM_PARTS)]
    };
    if op == "append" {
        let n = bytes / 1024;
        let per_batch = 100u64;
        let mut i = 0;
        let mut p = 0usize;
        while i < n {
            let b = pool.batch(i, per_batch as usize);
            let k = if per_part { p % stores.len() } else { 0 };
            stores[k].append_batch(&b);
            p += 1;
            i += per_batch;
            if p.is_multiple_of(100) {
                sample(&mut peak_anon);
            }
        }
        for s in stores.iter_mut() {
            s.finish();
        }
    } else {
        let mut total = 0;
        for s in stores.iter_mut() {
            total += s.read_all().0;
            sample(&mut peak_anon);
        }
        assert!(total > 0);
    }
    sample(&mut peak_anon);
    drop(stores);
    println!("{} {}", status_kib("VmHWM:"), peak_anon);
}

fn w_memory(rep: &mut Report, sc: &Scale, dirs: &Dirs) {
    let bytes: u64 = sc.pick(256 << 20, 2 << 30);
    let label = if sc.quick { "256MiB" } else { "2GiB" };
    let me = std::env::current_exe().unwrap();
    for &e in ENGINES.iter() {
        let d = dirs.fresh(e);
        std::fs::create_dir_all(&d).unwrap();
        for op in ["append", "read"] {
            let wh = format!("memory {op} {label}/100 partitions: VmHWM MiB");
            let wa = format!("memory {op} {label}/100 partitions: peak RssAnon MiB");
            if e == "redb-default" {
                rep.add(&wh, Kind::Mem, e, None);
                rep.add(&wa, Kind::Mem, e, None);
                continue;
            }
            let out = Command::new(&me)
                .args(["--child", &format!("mem-{op}"), e, d.to_str().unwrap(), &bytes.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success(), "{e} {op}: {}", String::from_utf8_lossy(&out.stderr));
            let s = String::from_utf8_lossy(&out.stdout);
            let f: Vec<f64> = s.split_whitespace().map(|x| x.parse::<f64>().unwrap() / 1024.0).collect();
            rep.add(&wh, Kind::Mem, e, Some(Res { mbps: Some(f[0]), ..Default::default() }));
            rep.add(&wa, Kind::Mem, e, Some(Res { mbps: Some(f[1]), ..Default::default() }));
        }
        rm(&d);
    }
    rep.note(format!(
        "memory: scaled down from 10 GiB to {label}; one child process per engine and phase; no warm-up pass; VmHWM includes resident mapped file pages; RssAnon sampled every 100 batches; raw and commitlog use one store per partition, redb/fjall one store (keys u64), streamlog one topic with 100 partitions (keyless batches round-robin)"
    ));
}

// ---------------------------------------------------------------- output

/// A table's first line: the workload column, then one column per engine.
fn header_line(w0: usize, cw: usize) -> String {
    let mut out = format!("{:<w0$}", "workload");
    for e in ENGINES {
        out.push_str(&format!(" | {:<cw$}", e));
    }
    out.push('\n');
    out
}

fn print_table(rep: &Report, header: &str) -> String {
    let mut out = String::new();
    out.push_str(header);
    out.push('\n');
    let w0 = rep.rows.iter().map(|r| r.workload.len()).max().unwrap_or(10).max(10);
    let cw = 26;
    out.push_str(&header_line(w0, cw));
    out.push_str(&"-".repeat(w0 + ENGINES.len() * (cw + 3)));
    out.push('\n');
    for row in &rep.rows {
        out.push_str(&format!("{:<w0$}", row.workload));
        let raw = row.cells.iter().find(|c| c.0 == "raw").and_then(|c| c.1).and_then(|r| primary(row.kind, &r));
        for e in ENGINES {
            let cell = row.cells.iter().find(|c| c.0 == e).and_then(|c| c.1);
            let s = match cell {
                None => "n/a".to_string(),
                Some(r) => {
                    let mut s = fmt_primary(row.kind, &r);
                    if e != "raw" {
                        if let (Some(a), Some(b)) = (primary(row.kind, &r), raw) {
                            s.push_str(&format!(" ({:.2}x)", a / b));
                        }
                    }
                    s
                }
            };
            out.push_str(&format!(" | {:<cw$}", s));
        }
        out.push('\n');
    }
    out.push_str("\n(NNx) = this engine's figure / raw's figure in the same row (rates: higher is faster; times, latencies, MiB: lower is better).\n");
    out.push_str("Rate rows: records/s and payload MB/s (durable rows: records/s and p99 send latency). e2e: p50/p99/p99.9 send-to-receive. open/temporary/groups: median time.\n");
    out.push_str(&cost_table(rep));
    out.push_str("Notes:\n");
    for n in &rep.notes {
        out.push_str(&format!("- {n}\n"));
    }
    out
}

/// The rows that measured their cost, each engine's CPU time and page
/// faults per record.
fn cost_table(rep: &Report) -> String {
    let rows: Vec<&Row> = rep.rows.iter().filter(|r| r.cells.iter().any(|c| c.1.is_some_and(|r| r.cost.is_some()))).collect();
    if rows.is_empty() {
        return String::new();
    }
    let w0 = rows.iter().map(|r| r.workload.len()).max().unwrap_or(10).max(10);
    let cw = 26;
    let mut out = String::from(
        "\nCost per record: user ns / system ns / minor page faults per 1000 records (getrusage of the whole process over the timed section; threads add up)\n",
    );
    out.push_str(&header_line(w0, cw));
    for row in rows {
        out.push_str(&format!("{:<w0$}", row.workload));
        for e in ENGINES {
            let cell = row.cells.iter().find(|c| c.0 == e).and_then(|c| c.1).and_then(|r| r.cost);
            let s = cell.map_or("n/a".to_string(), |c| c.cell());
            out.push_str(&format!(" | {:<cw$}", s));
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

fn json(rep: &Report) -> String {
    let f = |x: Option<f64>| match x {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "null".into(),
    };
    let mut rows = Vec::new();
    for row in &rep.rows {
        for e in ENGINES {
            let r = row.cells.iter().find(|c| c.0 == e).and_then(|c| c.1).unwrap_or_default();
            rows.push(format!(
                "  {{\"workload\": \"{}\", \"engine\": \"{}\", \"records_per_s\": {}, \"mb_per_s\": {}, \"p50_us\": {}, \"p99_us\": {}, \"p999_us\": {}}}",
                row.workload, e, f(r.rps), f(r.mbps), f(r.p50), f(r.p99), f(r.p999)
            ));
        }
    }
    format!("[\n{}\n]\n", rows.join(",\n"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let d = Path::new(&args[4]);
        match args[2].as_str() {
            "crash" => child_crash(&args[3], d),
            "crash-txn" => txn::child_crash_txn(d),
            "mem-append" => child_mem("append", &args[3], d, args[5].parse().unwrap()),
            "mem-read" => child_mem("read", &args[3], d, args[5].parse().unwrap()),
            x => panic!("unknown child {x}"),
        }
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let json_path = args.iter().position(|a| a == "--json").map(|i| PathBuf::from(&args[i + 1]));
    let only: Option<Vec<String>> =
        args.iter().position(|a| a == "--only").map(|i| args[i + 1].split(',').map(String::from).collect());
    let run = |w: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == w));
    SELECTED
        .set(args.iter().position(|a| a == "--engines").map(|i| args[i + 1].split(',').map(String::from).collect()))
        .expect("set once");
    let repeat: usize = args.iter().position(|a| a == "--repeat").map_or(1, |i| args[i + 1].parse().unwrap());
    let sc = Scale { quick };
    let dirs = Dirs::new();
    let mut rep = Report { rows: Vec::new(), notes: Vec::new() };
    let mut ranges = repeat::Ranges::default();
    let t0 = Instant::now();
    let p100 = Pool::new(100);
    let p1k = Pool::new(1024);
    let started = std::process::Command::new("date").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    eprintln!("streamlog compare ({}) temp dir {}", if quick { "quick" } else { "full" }, dirs.root.display());
    for pass in 0..repeat {
    if pass > 0 {
        eprintln!("pass {} of {repeat}", pass + 1);
        rep = Report { rows: Vec::new(), notes: Vec::new() };
    }
    for (size, pool) in [(100usize, &p100), (1024, &p1k)] {
        if run("batched") {
            w_batched_and_read(&mut rep, &dirs, &sc, size, pool);
        }
    }
    for (size, pool) in [(100usize, &p100), (1024, &p1k)] {
        if run("single") {
            w_single(&mut rep, &dirs, &sc, size, pool);
        }
    }
    for (size, pool) in [(100usize, &p100), (1024, &p1k)] {
        if run("e2e") {
            w_e2e(&mut rep, &dirs, &sc, size, pool, Pacing::Sleep);
            w_e2e(&mut rep, &dirs, &sc, size, pool, Pacing::Spin);
        }
    }
    if run("durable") {
        w_durable(&mut rep, &dirs, &sc, 100, &p100);
        if !quick {
            w_durable(&mut rep, &dirs, &sc, 1024, &p1k);
        }
    }
    for (size, pool) in [(100usize, &p100), (1024, &p1k)] {
        if run("compressed") {
            w_compressed(&mut rep, &dirs, &sc, size, pool);
        }
    }
    if run("temporary") {
        w_temporary(&mut rep, &sc, &dirs);
    }
    if run("open") {
        w_open(&mut rep, &dirs, &sc, &p1k);
    }
    if run("groups") {
        w_groups(&mut rep, &sc, &dirs);
    }
    if run("txn") {
        txn::w_txn(&mut rep, &dirs, &sc, &p100);
    }
    if run("txn-open") {
        txn::w_txn_open(&mut rep, &dirs, &sc, &p1k);
    }
    // Opt-in: it starts Apache Kafka (a JVM) and fetches its jars once.
    if only.as_ref().is_some_and(|o| o.iter().any(|x| x == "server")) {
        server::w_server(&mut rep, &dirs, &sc);
    }
    if run("memory") {
        w_memory(&mut rep, &sc, &dirs);
    }
    ranges.add(&rep);
    }
    let header = format!(
        "streamlog comparison harness, {} run, started {started}, took {:.0}s; load average at end: {}\n{}\ncommand: cargo run --release --manifest-path benches/compare/Cargo.toml -- {}{}",
        if quick { "--quick" } else { "full" },
        t0.elapsed().as_secs_f64(),
        loadavg(),
        repeat::machine(&dirs.root),
        args[1..].join(" "),
        if repeat > 1 { "\n(the table is the last pass; the ranges below cover every pass)" } else { "" }
    );
    let table = print_table(&rep, &header);
    println!("{table}");
    if repeat > 1 {
        println!("{}", ranges.render());
    }
    if let Some(p) = json_path {
        std::fs::write(&p, json(&rep)).unwrap();
        eprintln!("wrote {}", p.display());
    }
}
