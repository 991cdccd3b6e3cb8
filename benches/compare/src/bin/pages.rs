//! What a guest's first touch of a page costs after the page sat free,
//! with no engine: touches 512 MiB of a fallocated file through a shared
//! mapping (page-cache pages, as a log's appends fill) and 512 MiB of
//! anonymous memory, one write per 4 KiB page, frees both (the file is
//! deleted), each after a pause, and again, printing the time per page
//! after each pause.
//!
//! On the 2-vCPU development VM (`results/2026-12-06-cold-pages.txt`,
//! three runs) a page of the file cost anywhere from 0.74 to 10.8 µs,
//! 0.74-10.8 µs even with no pause at all and 3.5-6.7 µs after a pause of
//! 3-5 s; anonymous memory cost 1.33-2.54 µs throughout. The cause is
//! inferred, not traced: the VM's virtio balloon reports free memory to
//! the host (feature bit 5; its module parameters name 2 MiB blocks), the
//! host drops what backs it, and the kernel builds a large page-cache
//! folio from such blocks, while 4 KiB anonymous pages mostly come from
//! smaller ones. About 35 records of 100 B (118 bytes on disk) fill a
//! 4 KiB page, so a cold page adds up to ~300 ns to each of them, for
//! every engine alike: the largest share of the write rows' noise on this
//! VM. Warming the page cache before each timed pass (a 1.5 GiB file set
//! up and deleted, or 1.5 GiB of anonymous memory touched and freed) was
//! tried in the harness and did not make the append-single ratios
//! steadier, so the harness does not warm; its machine line says whether
//! the guest reports free pages.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml --bin pages -- [PAUSES_IN_SECONDS...]
//! ```
//! The default pauses are `0 0 5 0 0.2 3 0`. The file lives in the current
//! directory (or `$PAGES_DIR`).

use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BYTES: usize = 512 << 20;
const PAGE: usize = 4096;

/// Touches `BYTES` of fresh memory, anonymous or (`file`) a fallocated
/// file's pages through a shared mapping, and frees it; returns the time
/// per page.
fn touch(file: bool) -> Duration {
    let path = std::env::var_os("PAGES_DIR")
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
        .join(format!("pages-{}.tmp", std::process::id()));
    let f = file.then(|| {
        let f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).expect("create the file");
        // SAFETY: a plain call on an open descriptor.
        assert_eq!(unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, BYTES as i64) }, 0, "fallocate failed");
        f
    });
    let (flags, fd) = match &f {
        Some(f) => (libc::MAP_SHARED, f.as_raw_fd()),
        None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
    };
    // SAFETY: a fresh mapping of `BYTES` (of a file that long, or
    // anonymous), written inside its bounds and unmapped once.
    let el = unsafe {
        let p = libc::mmap(std::ptr::null_mut(), BYTES, libc::PROT_READ | libc::PROT_WRITE, flags, fd, 0);
        assert_ne!(p, libc::MAP_FAILED, "mmap failed");
        let p = p.cast::<u8>();
        let t = Instant::now();
        for at in (0..BYTES).step_by(PAGE) {
            std::ptr::write_volatile(p.add(at), 1);
        }
        let el = t.elapsed();
        libc::munmap(p.cast(), BYTES);
        el
    };
    if f.is_some() {
        std::fs::remove_file(&path).expect("remove the file");
    }
    el / (BYTES / PAGE) as u32
}

/// Pauses `s` seconds before each of the two touches (with no pause, each
/// may reuse the pages freed just before it).
fn line(s: f64) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    std::thread::sleep(Duration::from_secs_f64(s));
    let file = us(touch(true));
    std::thread::sleep(Duration::from_secs_f64(s));
    let anon = us(touch(false));
    println!("  after a pause of {s:>4} s: file pages {file:>6.2} µs a page, anonymous {anon:>6.2} µs a page");
}

fn main() {
    let mut pauses: Vec<f64> = std::env::args().skip(1).map(|a| a.parse().expect("a pause in seconds")).collect();
    if pauses.is_empty() {
        pauses = vec![0.0, 0.0, 5.0, 0.0, 0.2, 3.0, 0.0];
    }
    println!("first touch of 512 MiB, each kind after its own pause (the first after the process's start)");
    line(0.0);
    for s in pauses {
        line(s);
    }
}
