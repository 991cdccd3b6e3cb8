//! Unit tests of the mapped file: appends through the mapping and through
//! the file, views across unmapping, the appender's owner check.

use super::*;
use crate::io::std_fs::StdFs;

/// A fresh directory for one test, named after it and this process.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamlog-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// After each small append, the file space and pages ahead of it are
/// made ready, never past the reserved file space, and the prefaulted
/// stretch still reads as a zero tail to recovery's check.
#[test]
fn small_appends_prefault_ahead_within_the_reservation() {
    let dir = scratch_dir("prefault");
    let f = MappedFile::create(&StdFs, &dir.join("f"), 64 << 20).unwrap();
    let mut end = 0;
    for i in 0..5_000u32 {
        end = f.write_unpublished(&[i as u8 | 1; 100]).unwrap();
        f.publish(end);
        f.prepare_ahead(end, 100);
        let done = f.prefaulted.load(Ordering::Relaxed);
        let allocated = f.allocated.load(Ordering::Relaxed);
        // (u64::MAX: the kernel refused, and prefaulting is off.)
        assert!(
            done == u64::MAX || (done >= end && done <= allocated),
            "{done} {end} {allocated}"
        );
        // The next append finds its file space reserved: as far ahead
        // as the file is long, up to the prefault distance.
        assert!(
            allocated >= end + end.clamp(PAGE, PREFAULT_AHEAD),
            "{allocated} {end}"
        );
    }
    assert_eq!(end, 500_000);
    let v = f.view().unwrap();
    assert!(v
        .chunks(100)
        .enumerate()
        .all(|(i, c)| c == [i as u8 | 1; 100]));
    drop(v);
    let allocated = f.allocated.load(Ordering::Relaxed);
    f.publish(allocated);
    assert!(f.zeros_from(end));
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The writer's appender writes exactly what `write_unpublished` would,
/// and refuses a file it was not taken from.
#[test]
fn an_appender_writes_only_to_its_own_file() {
    let dir = scratch_dir("appender");
    let a = MappedFile::create(&StdFs, &dir.join("a"), 1 << 20).unwrap();
    let b = MappedFile::create(&StdFs, &dir.join("b"), 1 << 20).unwrap();
    let app = a.appender();
    let end = a.write_with(&app, b"hello").unwrap();
    a.publish(end);
    let end = a.write_unpublished(b" world").unwrap();
    a.publish(end);
    let big = vec![3u8; WRITE_THROUGH_FILE];
    let end = a.write_with(&app, &big).unwrap();
    a.publish(end);
    let v = a.view().unwrap();
    assert_eq!(&v[..11], b"hello world");
    assert!(v[11..].iter().all(|&x| x == 3));
    assert_eq!(v.len(), 11 + WRITE_THROUGH_FILE);
    drop(v);
    let wrong = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = b.write_with(&app, b"x");
    }));
    assert!(wrong.is_err());
    assert_eq!(b.len(), 0);
    drop((a, b, app));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The zero check over a preallocated tail asks the file system where
/// data may be; it must still see every non-zero byte, whether written
/// through the file or through the mapping, and wherever it lies.
#[test]
fn zeros_from_sees_every_written_byte_of_a_preallocated_tail() {
    let dir = scratch_dir("zeros");
    let path = dir.join("f");
    let cap = 8 << 20;
    let f = MappedFile::create(&StdFs, &path, cap).unwrap();
    let end = f.write_unpublished(&[7u8; 100]).unwrap();
    f.publish(end);
    f.reserve(cap).unwrap();
    let file = f.handle().unwrap();
    // Published up to the whole preallocation, as recovery maps it.
    f.publish(cap);
    assert!(!f.zeros_from(0));
    assert!(f.zeros_from(100));
    assert!(f.zeros_from(cap));
    file.write_at(&[1], 5 << 20).unwrap();
    assert!(!f.zeros_from(100));
    assert!(f.zeros_from((5 << 20) + 1));
    file.write_at(&[0], 5 << 20).unwrap();
    assert!(f.zeros_from(100));
    // And it does so without reading: the untouched stretch is a hole
    // to the file system (ext4 and tmpfs report unwritten extents so).
    #[cfg(target_os = "linux")]
    assert_eq!(file.data_after(6 << 20).unwrap(), None);
    // SAFETY: inside the mapping and the allocated file; no reader.
    unsafe { f.map.read().as_ref().unwrap().write((7 << 20) + 3, &[9]) };
    assert!(!f.zeros_from(100));
    assert!(!f.zeros_from(7 << 20));
    assert!(f.zeros_from((7 << 20) + 4));
    f.release_handle();
    assert!(!f.zeros_from(100), "without a handle everything is read");
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `all_zero` sees a single set byte anywhere: in a block, in the tail
/// after the last whole block, at either end.
#[test]
fn all_zero_finds_any_set_byte() {
    for len in [0usize, 1, 15, 16, 63, 64, 65, 200, 4096 + 7] {
        let mut b = vec![0u8; len];
        assert!(super::all_zero(&b), "{len} zeros");
        for at in 0..len {
            b[at] = 0x80;
            assert!(!super::all_zero(&b), "byte {at} of {len}");
            b[at] = 0;
        }
    }
}

/// The prefetch after each small append is a hint only: appends that run
/// up to the end of the mapping (where the next append's lines would lie
/// past it) and prefetches of ranges past the mapping, or of addresses
/// that overflow, leave every byte as written.
#[test]
fn the_append_prefetch_never_touches_what_it_names() {
    let dir = scratch_dir("prefetch");
    let cap = 40_000u64;
    let f = MappedFile::create(&StdFs, &dir.join("f"), cap).unwrap();
    let mut end = 0;
    let mut i = 0u8;
    while end + 1_000 <= cap {
        i = i.wrapping_add(1) | 1;
        end = f.write_unpublished(&[i; 1_000]).unwrap();
        f.publish(end);
        f.prepare_ahead(end, 1_000);
    }
    assert_eq!(end, 40_000, "the last append ends at the mapping's end");
    {
        let map = f.map.read();
        let map = map.as_ref().unwrap();
        map.prefetch_for_write(cap as usize - 10, 2_048);
        map.prefetch_for_write(cap as usize + 4_096, 64);
        map.prefetch_for_write(usize::MAX - 5, 100);
        map.prefetch_for_write(0, 0);
    }
    let v = f.view().unwrap();
    let mut want = 0u8;
    for c in v.chunks(1_000) {
        want = want.wrapping_add(1) | 1;
        assert_eq!(c, [want; 1_000]);
    }
    drop(v);
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file whose small appends go through it has zeros written ahead of
/// them instead of pages prefaulted: the call says when (so the caller
/// syncs), the stretch never covers an appended byte nor passes the
/// reservation or the capacity, and each append finds at least half the
/// distance written.
#[test]
fn appends_through_the_file_have_zeros_written_ahead() {
    let dir = scratch_dir("zero-ahead");
    let capacity = 3 * ZERO_AHEAD;
    let f = MappedFile::create(&StdFs, &dir.join("f"), capacity).unwrap();
    f.set_small_writes_through_file(true);
    let (mut end, mut syncs, mut i) = (0u64, 0u32, 0u32);
    while end + 1_000 <= capacity {
        end = f.write_unpublished(&[i as u8 | 1; 1_000]).unwrap();
        f.publish(end);
        if f.prepare_ahead(end, 1_000) {
            syncs += 1;
        }
        let zeroed = f.zeroed.load(Ordering::Relaxed);
        assert!(zeroed <= f.allocated.load(Ordering::Relaxed).min(capacity));
        let want = (end + MappedFile::zero_distance(end) / 2).min(capacity);
        assert!(zeroed >= want, "{zeroed} {end}");
        assert!(!f.prepare_due(end, 1_000));
        // Pages are not set up through the mapping.
        assert_eq!(f.prefaulted.load(Ordering::Relaxed), 0);
        i += 1;
    }
    // From one page to `ZERO_AHEAD`, the stretch grows with the file;
    // then one call per half of it.
    assert!((10..=40).contains(&syncs), "{syncs}");
    let v = f.view().unwrap();
    assert!(v
        .chunks(1_000)
        .enumerate()
        .all(|(i, c)| c == [i as u8 | 1; 1_000]));
    drop(v);
    f.publish(capacity);
    assert!(f.zeros_from(end));
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}
