//! What new file blocks cost a group-committed durable append, with none of
//! streamlog's code: writers append 1 KiB records to one file with `pwrite`
//! and wait until an fdatasync covers them; one writer at a time leads a
//! sync (after gathering the writers it woke last time, as streamlog's
//! group commit does), up to `INFLIGHT` syncs at once, each on its own
//! file descriptor.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml --bin blocks -- THREADS BLOCKS [INFLIGHT] [nogather]
//! ```
//! BLOCKS is how the file's space is made: `written` (512 MiB of zeros
//! written and synced first, so no block is new), `fallocate` (unwritten
//! blocks, turned into written ones by the syncs that cover them),
//! `prepared` (`fallocate`, then the pages 256 KiB ahead set up through a
//! mapping, as streamlog prepared them until 2026-12-06) or `zeroed`
//! (`fallocate`, then zeros written and synced by the writer whose record
//! leaves less than half of `ZERO_CHUNK_KIB` (default 1024) zeroed ahead,
//! a stretch of that size at a time, as streamlog does now). Prints records/s and records per
//! fdatasync over 4 s after a 1 s warm-up. The file lives in the current
//! directory (or `$BLOCKS_DIR`) and is removed afterwards.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const RECORD: u64 = 1024;
const FILE: u64 = 512 << 20;
const AHEAD: u64 = 256 << 10;
const PAGE: u64 = 4096;

#[derive(Default)]
struct Syncs {
    durable: u64,
    started: u64,
    busy: Vec<bool>,
    waiting: u64,
    woken: u64,
}

struct Shared {
    end: Mutex<(u64, u64)>,
    syncs: Mutex<Syncs>,
    done: Condvar,
    fds: Vec<File>,
    gather: bool,
    count: AtomicU64,
    fsyncs: AtomicU64,
    stop: AtomicBool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: blocks THREADS written|fallocate|prepared|zeroed [INFLIGHT] [nogather]";
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).expect(usage);
    let blocks = args.get(2).cloned().expect(usage);
    let inflight: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let gather = args.get(4).is_none_or(|s| s != "nogather");
    let dir = std::env::var("BLOCKS_DIR").unwrap_or_else(|_| ".".into());
    let path = std::path::Path::new(&dir).join(format!("blocks-{}.dat", std::process::id()));
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    match blocks.as_str() {
        "written" => {
            let zeros = vec![0u8; 1 << 20];
            for i in 0..FILE >> 20 {
                f.write_all_at(&zeros, i << 20).unwrap();
            }
        }
        "fallocate" | "prepared" | "zeroed" => {
            // SAFETY: a plain system call on a descriptor we own.
            let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, FILE as libc::off_t) };
            assert_eq!(rc, 0, "posix_fallocate");
        }
        _ => panic!("{usage}"),
    }
    f.sync_all().unwrap();
    let map = if blocks == "prepared" {
        // SAFETY: a shared mapping of our own file, used only for madvise.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FILE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Some(p as usize)
    } else {
        None
    };
    let fds = (0..inflight)
        .map(|_| OpenOptions::new().write(true).open(&path).unwrap())
        .collect();
    let sh = Arc::new(Shared {
        end: Mutex::new((0, 0)),
        syncs: Mutex::new(Syncs {
            busy: vec![false; inflight],
            ..Syncs::default()
        }),
        done: Condvar::new(),
        fds,
        gather,
        count: AtomicU64::new(0),
        fsyncs: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let zero_chunk: u64 = if blocks == "zeroed" {
        std::env::var("ZERO_CHUNK_KIB")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1024)
            << 10
    } else {
        0
    };
    let writers: Vec<_> = (0..threads)
        .map(|_| {
            let (sh, f) = (sh.clone(), f.try_clone().unwrap());
            std::thread::spawn(move || writer(&sh, &f, map, zero_chunk))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let (c0, s0, t) = (
        sh.count.load(Ordering::Relaxed),
        sh.fsyncs.load(Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(4));
    let (c1, s1) = (
        sh.count.load(Ordering::Relaxed),
        sh.fsyncs.load(Ordering::Relaxed),
    );
    let el = t.elapsed().as_secs_f64();
    sh.stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    println!(
        "{threads} writers, {blocks} blocks, {inflight} in flight, gather {gather}: {:.0} records/s, {:.1} records per fdatasync",
        (c1 - c0) as f64 / el,
        (c1 - c0) as f64 / (s1 - s0).max(1) as f64
    );
    let _ = std::fs::remove_file(&path);
}

fn writer(sh: &Shared, f: &File, map: Option<usize>, zero_chunk: u64) {
    let record = vec![7u8; RECORD as usize];
    let zeros = vec![0u8; zero_chunk as usize];
    while !sh.stop.load(Ordering::Relaxed) {
        let mine = {
            let mut end = sh.end.lock().unwrap();
            let (at, prepared) = *end;
            f.write_all_at(&record, at).unwrap();
            end.0 = at + RECORD;
            if zero_chunk > 0 && end.1 < end.0 + zero_chunk / 2 && end.1 < FILE {
                let from = end.1.max(end.0);
                f.write_all_at(&zeros, from).unwrap();
                f.sync_data().unwrap();
                end.1 = from + zero_chunk;
            }
            if let Some(base) = map {
                if prepared < end.0 + AHEAD / 4 * 3 {
                    let from = prepared.max(end.0) / PAGE * PAGE;
                    let to = ((end.0 + AHEAD) / PAGE * PAGE).min(FILE);
                    // SAFETY: a range inside our mapping; populating pages
                    // changes no byte of the file.
                    unsafe {
                        libc::madvise(
                            (base + from as usize) as *mut _,
                            (to - from) as usize,
                            libc::MADV_POPULATE_WRITE,
                        );
                    }
                    end.1 = to;
                }
            }
            end.0
        };
        wait_durable(sh, mine);
        sh.count.fetch_add(1, Ordering::Relaxed);
    }
}

fn wait_durable(sh: &Shared, mine: u64) {
    let mut s = sh.syncs.lock().unwrap();
    loop {
        if s.durable >= mine || sh.stop.load(Ordering::Relaxed) {
            return;
        }
        if s.started < mine {
            if let Some(slot) = s.busy.iter().position(|b| !b) {
                s.busy[slot] = true;
                let expect = s.woken;
                drop(s);
                lead(sh, slot, mine, expect);
                s = sh.syncs.lock().unwrap();
                continue;
            }
        }
        s.waiting += 1;
        s = sh.done.wait(s).unwrap();
    }
}

fn lead(sh: &Shared, slot: usize, mine: u64, expect: u64) {
    let start = Instant::now();
    while sh.gather
        && sh.syncs.lock().unwrap().waiting < expect
        && start.elapsed() < Duration::from_micros(500)
        && !sh.stop.load(Ordering::Relaxed)
    {
        std::thread::yield_now();
    }
    let covered = sh.end.lock().unwrap().0.max(mine);
    {
        let mut s = sh.syncs.lock().unwrap();
        s.started = s.started.max(covered);
    }
    // SAFETY: a plain system call on a descriptor we own.
    let rc = unsafe { libc::fdatasync(sh.fds[slot].as_raw_fd()) };
    assert_eq!(rc, 0, "fdatasync");
    sh.fsyncs.fetch_add(1, Ordering::Relaxed);
    let mut s = sh.syncs.lock().unwrap();
    s.durable = s.durable.max(covered);
    s.busy[slot] = false;
    s.woken = std::mem::take(&mut s.waiting);
    sh.done.notify_all();
}
