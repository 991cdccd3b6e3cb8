//! What the kernel charges to put appended bytes into the page cache, by
//! the size of each write and by how the file's space is made, with none of
//! streamlog's code: 440 MiB written in pieces of CHUNK bytes, three passes,
//! each on a fresh file after `sync(2)` and a 3 s pause.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml --bin writes -- MODE [CHUNK] [AHEAD]
//! ```
//! MODE:
//! - `append`: `write()` to a file opened `O_APPEND` that grows as it is
//!   written (raw's way);
//! - `pwrite`: `pwrite()` into 1 GiB reserved first with `posix_fallocate`
//!   (streamlog's way for appends of 16 KiB or more);
//! - `zeros`: as `pwrite`, with zeros written through the file in 1 MiB
//!   pieces up to AHEAD bytes past each write once fewer than half of them
//!   are left, so the page cache holds the pages before the data lands;
//! - `populate`: as `pwrite`, with the pages up to AHEAD ahead set up
//!   through a shared mapping (`MADV_POPULATE_WRITE`) instead.
//!
//! CHUNK defaults to 118,000 bytes (a batch of 1,000 records of 100 B in
//! Kafka's format), AHEAD to 2 MiB. Prints nanoseconds per 118 bytes (one
//! such record) and GB/s. The file lives in the current directory (or
//! `$WRITES_DIR`) and is removed afterwards.

use std::fs::OpenOptions;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

const TOTAL: usize = 440 << 20;
const CAPACITY: usize = 1 << 30;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("pwrite").to_string();
    let chunk: usize = args.get(2).map_or(118_000, |s| s.parse().expect("CHUNK"));
    let ahead: usize = args.get(3).map_or(2 << 20, |s| s.parse().expect("AHEAD"));
    assert!(["append", "pwrite", "zeros", "populate"].contains(&mode.as_str()), "unknown MODE {mode}");
    let dir = std::env::var("WRITES_DIR").unwrap_or_else(|_| ".".into());
    let src: Vec<u8> = (0..chunk).map(|i| (i * 7) as u8).collect();
    static ZEROS: [u8; 1 << 20] = [0; 1 << 20];
    for _ in 0..3 {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        std::thread::sleep(Duration::from_secs(3));
        let path = std::path::Path::new(&dir).join(format!("writes-{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let f = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .append(mode == "append")
            .open(&path)
            .unwrap();
        let fd = f.as_raw_fd();
        if mode != "append" {
            // SAFETY: a valid descriptor and range.
            assert_eq!(unsafe { libc::posix_fallocate(fd, 0, CAPACITY as i64) }, 0);
        }
        // SAFETY: the file is at least CAPACITY long (fallocate above) and
        // this process alone writes it.
        let map = (mode == "populate")
            .then(|| unsafe { memmap::map(fd) });
        let t = Instant::now();
        let (mut off, mut ready) = (0usize, 0usize);
        while off + chunk <= TOTAL {
            let ends_at = off + chunk;
            if (mode == "zeros" || mode == "populate") && ready < ends_at + ahead / 2 {
                let end = (ends_at + ahead).min(CAPACITY);
                let start = ready.max(off) & !4095;
                if mode == "zeros" {
                    let mut at = start;
                    while at < end {
                        let n = (end - at).min(ZEROS.len());
                        // SAFETY: the source is a static buffer of at least n bytes.
                        let w = unsafe { libc::pwrite(fd, ZEROS.as_ptr().cast(), n, at as i64) };
                        assert_eq!(w, n as isize);
                        at += n;
                    }
                } else if let Some(m) = map {
                    // SAFETY: [start, end) lies inside the mapping.
                    let rc = unsafe { libc::madvise(m.add(start).cast(), end - start, libc::MADV_POPULATE_WRITE) };
                    assert_eq!(rc, 0, "madvise");
                }
                ready = end;
            }
            // SAFETY: the source holds chunk bytes.
            let w = unsafe {
                if mode == "append" {
                    libc::write(fd, src.as_ptr().cast(), chunk)
                } else {
                    libc::pwrite(fd, src.as_ptr().cast(), chunk, off as i64)
                }
            };
            assert_eq!(w, chunk as isize);
            off = ends_at;
        }
        let el = t.elapsed().as_secs_f64();
        println!(
            "{mode} chunk {chunk}: {:.1} ns per 118 B, {:.2} GB/s",
            el * 1e9 / (off as f64 / 118.0),
            off as f64 / el / 1e9
        );
        if let Some(m) = map {
            // SAFETY: unmaps what `memmap::map` mapped.
            unsafe { memmap::unmap(m) };
        }
        drop(f);
        let _ = std::fs::remove_file(&path);
    }
}

mod memmap {
    /// Maps the first `CAPACITY` bytes of `fd`, shared and writable.
    ///
    /// # Safety
    /// The file must be at least that long.
    pub unsafe fn map(fd: i32) -> *mut u8 {
        let p = libc::mmap(
            std::ptr::null_mut(),
            super::CAPACITY,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        p.cast()
    }

    /// # Safety
    /// `p` must come from [`map`] and not be used afterwards.
    pub unsafe fn unmap(p: *mut u8) {
        libc::munmap(p.cast(), super::CAPACITY);
    }
}
