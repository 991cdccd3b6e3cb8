//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory under the system temp dir, removed on drop.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "streamlog-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        TestDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies a directory tree. Copying the directory of a live log captures
/// exactly what a `kill -9` at that moment would leave: everything written
/// through the mappings is in the page cache, and nothing else happened.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != ".lock" {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The segment `.log` files of a partition directory, sorted.
pub fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// All `(offset, value)` pairs of a partition from `from`, via a consumer.
pub fn read_all(
    log: &streamlog::Log,
    topic: &str,
    partition: u32,
    from: u64,
) -> Vec<(u64, Vec<u8>)> {
    use streamlog::{ConsumerConfig, TopicPartition};
    let tp = TopicPartition::new(topic, partition);
    let mut c = log.consumer(ConsumerConfig::new().max_poll_records(10_000));
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, from).unwrap();
    let end = log.partition_info(&tp).unwrap().end_offset;
    let mut out = Vec::new();
    while c.position(&tp).unwrap() < end {
        let recs = c.poll(std::time::Duration::from_secs(5)).unwrap();
        assert!(
            !recs.is_empty(),
            "poll returned nothing before the end offset"
        );
        for r in &recs {
            out.push((
                r.offset(),
                r.value().map(<[u8]>::to_vec).unwrap_or_default(),
            ));
        }
    }
    out
}

/// Bitwise CRC-32 (IEEE), independent of the crate's implementation.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Reads partition `tp` from the start until a poll fails or the data runs
/// out; returns the error, if one came.
pub fn first_read_error(
    log: &streamlog::Log,
    tp: &streamlog::TopicPartition,
) -> Option<streamlog::Error> {
    use streamlog::{ConsumerConfig, OffsetReset};
    let mut c = log.consumer(
        ConsumerConfig::new()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(1000),
    );
    c.assign(std::slice::from_ref(tp)).unwrap();
    for _ in 0..10_000 {
        match c.poll(std::time::Duration::ZERO) {
            Ok(r) if r.is_empty() => return None,
            Ok(_) => {}
            Err(e) => return Some(e),
        }
    }
    None
}
