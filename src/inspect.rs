//! Read-only inspection of segment files and log directories, for tools
//! like the `streamlog` command line (`dump`, `verify`), behind the
//! default-off `inspect` feature. Nothing here takes the directory lock or
//! changes a file; every read goes through the crate's I/O seam.

use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};
use crate::format::batch::{
    codec_name, decode_batch, peek_header, records_section, v2, version_of, DecodeError,
    RecordIter, Version,
};
use crate::format::index::{
    offset_entry, time_entry, valid_offset_entries, valid_time_entries, OFFSET_ENTRY_LEN,
    TIME_ENTRY_LEN,
};
use crate::io::std_fs::StdFs;
use crate::io::FileSystem;
use crate::log::open::{read_checkpoint, read_registry};
use crate::log::state::{CHECKPOINT_FILE, LOCK_FILE, REGISTRY_FILE};

/// A compaction's cleaned copy, complete, about to replace its inputs.
const SWAP_EXT: &str = "log.swap";
use crate::storage::segment::{
    entry_matches, parse_segment_name, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT,
};

/// One batch of a segment file, as [`dump_segment`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchInfo {
    /// Byte position in the file.
    pub position: u64,
    /// Bytes on disk.
    pub size: u64,
    /// First and last offset.
    pub base_offset: u64,
    /// The batch's last offset.
    pub last_offset: u64,
    /// Records in the batch.
    pub record_count: u32,
    /// The batch layout: 2 (Kafka's record batch, magic 2) or 1
    /// (streamlog's first layout).
    pub format_version: u8,
    /// Kafka's codec name: `"none"`, `"zstd"` (or `"gzip"`, `"snappy"`,
    /// `"lz4"`, which this build cannot read).
    pub compression: &'static str,
    /// Whether the batch is a transaction's.
    pub transactional: bool,
    /// Whether the batch is a control batch (a transaction marker).
    pub control: bool,
    /// The producer id, −1 when none.
    pub producer_id: i64,
    /// The producer epoch, −1 when none.
    pub producer_epoch: i16,
    /// The first record's sequence number, −1 when none.
    pub base_sequence: i32,
    /// Smallest and largest record timestamps (ms).
    pub base_timestamp: i64,
    /// The largest record timestamp (ms).
    pub max_timestamp: i64,
    /// Whether the CRC matched.
    pub crc_ok: bool,
    /// The records, when the batch is valid.
    pub records: Vec<RecordInfo>,
    /// Why the records of a CRC-valid batch do not decode (a bad record
    /// or compressed payload), if they do not: the records before the
    /// damage are in `records`.
    pub malformed: Option<String>,
}

/// One record inside a [`BatchInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordInfo {
    /// The offset.
    pub offset: u64,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// The key, `None` when null.
    pub key: Option<Vec<u8>>,
    /// The value, `None` when null.
    pub value: Option<Vec<u8>>,
    /// Header names and values, `None` for a null value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// For a control record: `"commit"` or `"abort"` (a transaction
    /// marker), or `"unknown"`.
    pub control: Option<&'static str>,
}

/// What [`dump_segment`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentDump {
    /// The batches, in file order.
    pub batches: Vec<BatchInfo>,
    /// Where and why reading stopped before the end of the file.
    pub stopped: Option<(u64, String)>,
}

/// Reads every batch of a segment file (`.log`), checking each CRC.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) if the file cannot be read. Damage is
/// reported in the result, not as an error.
pub fn dump_segment(path: &Path) -> Result<SegmentDump> {
    // A device or a pipe (`/dev/zero`) would be read forever.
    let meta = std::fs::metadata(path).map_err(io_err("read", path))?;
    if !meta.is_file() {
        return Err(io_err("read", path)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file; a segment is a partition directory's .log file",
        )));
    }
    let data = StdFs.read(path).map_err(io_err("read", path))?;
    Ok(dump_bytes(&data))
}

/// Decodes the batches of a segment's contents.
fn dump_bytes(data: &[u8]) -> SegmentDump {
    let mut pos = 0usize;
    let mut batches = Vec::new();
    let mut stopped = None;
    while pos < data.len() {
        let rest = &data[pos..];
        let h = match peek_header(rest) {
            Ok(h) => h,
            Err(e) => {
                let why = if rest.iter().all(|&b| b == 0) {
                    "zero-filled (preallocated) space".to_owned()
                } else {
                    describe(&e)
                };
                stopped = Some((pos as u64, why));
                break;
            }
        };
        let mut info = BatchInfo {
            position: pos as u64,
            size: h.total_len() as u64,
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            record_count: h.record_count,
            format_version: match h.version {
                Version::V1 => 1,
                Version::V2 => 2,
            },
            compression: codec_name(h.codec() as u8),
            transactional: h.is_transactional(),
            control: h.is_control(),
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            base_timestamp: h.base_timestamp,
            max_timestamp: h.max_timestamp,
            crc_ok: false,
            records: Vec::new(),
            malformed: None,
        };
        match decode_batch(rest) {
            Ok(h) => {
                info.crc_ok = true;
                let batch = &rest[..h.total_len()];
                let section = records_section(&h, batch);
                if let Err(k) = &section {
                    info.malformed = Some(k.to_string());
                }
                if let Ok(section) = section {
                    for r in RecordIter::new(&h, &section) {
                        let r = match r {
                            Ok(r) => r,
                            Err(k) => {
                                info.malformed = Some(k.to_string());
                                break;
                            }
                        };
                        let mut hs = r.header_iter();
                        let mut headers = Vec::new();
                        while let Some((k, v)) = hs.next_checked() {
                            headers.push((k.to_owned(), v.map(<[u8]>::to_vec)));
                        }
                        let control =
                            h.is_control()
                                .then(|| match r.key.and_then(v2::parse_control_key) {
                                    Some(v2::ControlType::Commit) => "commit",
                                    Some(v2::ControlType::Abort) => "abort",
                                    None => "unknown",
                                });
                        info.records.push(RecordInfo {
                            offset: h.base_offset + u64::from(r.offset_delta),
                            timestamp: h.base_timestamp.wrapping_add(r.timestamp_delta),
                            key: r.key.map(<[u8]>::to_vec),
                            value: r.value.map(<[u8]>::to_vec),
                            headers,
                            control,
                        });
                    }
                }
            }
            Err(e) => {
                batches.push(info);
                stopped = Some((pos as u64, describe(&e)));
                break;
            }
        }
        pos += h.total_len();
        batches.push(info);
    }
    SegmentDump { batches, stopped }
}

fn describe(e: &DecodeError) -> String {
    match e {
        DecodeError::Incomplete { needed } => format!("a batch of {needed} bytes is cut off"),
        DecodeError::Corrupt(k) => k.to_string(),
        DecodeError::UnsupportedVersion(v) => {
            format!("format version {v} (or a feature of it) is not supported")
        }
        DecodeError::UnsupportedCodec(c) => {
            format!(
                "compressed with {}, which this build cannot read",
                codec_name(*c)
            )
        }
    }
}

/// One problem found by [`verify_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The damaged file.
    pub path: PathBuf,
    /// Byte position, when it applies.
    pub position: Option<u64>,
    /// The offset of the damaged batch, or the first offset that could not
    /// be read, when it applies.
    pub offset: Option<u64>,
    /// What is wrong.
    pub what: String,
}

/// What [`verify_dir`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segment files read.
    pub segments: usize,
    /// Batches whose CRC was checked.
    pub batches: usize,
    /// Everything wrong. Empty means the directory is consistent.
    pub problems: Vec<Problem>,
}

/// Checks what [`Log::open`](crate::Log::open) needs (the topic registry,
/// a directory for every partition it names, the checkpoint), then every
/// batch's CRC, the offset order within and across segments, and the
/// consistency of every index, in every partition directory under `dir`.
/// Zero-filled space at the end of a partition's last segment (left by a
/// crash) is not a problem. A directory that holds no log (no
/// `topics.registry` and no `.lock`) is one problem.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) if `dir` is not a directory or cannot be
/// listed.
pub fn verify_dir(dir: &Path) -> Result<VerifyReport> {
    verify_dir_with_progress(dir, |_, _| {})
}

/// [`verify_dir`], calling `progress(bytes_checked, bytes_total)` after
/// each segment file (for a progress bar).
///
/// # Errors
/// As [`verify_dir`].
pub fn verify_dir_with_progress(
    dir: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport> {
    let fs = StdFs;
    let mut report = VerifyReport::default();
    if !fs.is_dir(dir) {
        let why = if fs.exists(dir) {
            "not a directory"
        } else {
            "no such directory"
        };
        return Err(io_err("verify", dir)(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            why,
        )));
    }
    if !verify_log_files(&fs, dir, &mut report) {
        return Ok(report);
    }
    let mut parts: Vec<PathBuf> = fs
        .read_dir(dir)
        .map_err(io_err("list", dir))?
        .into_iter()
        .map(|n| dir.join(n))
        .filter(|p| fs.is_dir(p))
        .collect();
    parts.sort();
    let total: u64 = parts
        .iter()
        .flat_map(|p| {
            fs.read_dir(p)
                .unwrap_or_default()
                .into_iter()
                .map(move |n| p.join(n))
        })
        .filter(|p| p.extension().is_some_and(|e| e == LOG_EXT))
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
        .sum();
    let mut done = 0u64;
    for p in parts {
        verify_partition(&fs, &p, &mut report, &mut |n| {
            done += n;
            progress(done, total.max(done));
        })?;
    }
    Ok(report)
}

/// The log's own files, as `Log::open` reads them. Returns false when
/// `dir` holds no log at all.
fn verify_log_files(fs: &StdFs, dir: &Path, report: &mut VerifyReport) -> bool {
    let mut problem = |path: PathBuf, what: String| {
        report.problems.push(Problem {
            path,
            position: None,
            offset: None,
            what,
        })
    };
    let registry = dir.join(REGISTRY_FILE);
    if !fs.exists(&registry) && !fs.exists(&dir.join(LOCK_FILE)) {
        problem(
            dir.to_owned(),
            format!("not a streamlog log directory: no {REGISTRY_FILE} and no {LOCK_FILE}"),
        );
        return false;
    }
    match read_registry(fs, dir) {
        Ok(topics) => {
            for (name, cfg) in topics {
                for p in 0..cfg.partition_count() {
                    let pdir = dir.join(format!("{name}-{p}"));
                    if !fs.is_dir(&pdir) {
                        problem(
                            pdir,
                            format!("partition {p} of topic {name:?} has no directory; the log cannot be opened"),
                        );
                    }
                }
            }
        }
        Err(e) => problem(
            registry,
            format!("the topic registry cannot be read; the log cannot be opened: {e}"),
        ),
    }
    if let Err(e) = read_checkpoint(fs, dir) {
        problem(
            dir.join(CHECKPOINT_FILE),
            format!("damaged checkpoint (an open ignores it and scans every segment): {e}"),
        );
    }
    true
}

fn verify_partition(
    fs: &dyn FileSystem,
    dir: &Path,
    report: &mut VerifyReport,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let names = fs.read_dir(dir).map_err(io_err("list", dir))?;
    // `(base, path, is a compaction's cleaned copy)`. A directory caught in
    // the middle of a compaction's swap (FORMAT.md §7) holds the cleaned
    // copy as `<base>.log.swap`, complete and synced, and the segments it
    // replaces as `.log` or already `.log.deleted`: verify the copy in
    // their place, as recovery would keep it.
    let mut segs: Vec<(u64, PathBuf, bool)> = Vec::new();
    let mut replaced: Vec<std::ops::Range<u64>> = Vec::new();
    for n in &names {
        if let Some(base) = parse_segment_name(n, SWAP_EXT) {
            let path = dir.join(n);
            let data = fs.read(&path).map_err(io_err("read", &path))?;
            let end = dump_bytes(&data)
                .batches
                .last()
                .map_or(base, |b| b.last_offset + 1);
            // Its inputs start at `base` and end by its end.
            replaced.push(base..end.max(base + 1));
            segs.push((base, path, true));
        }
    }
    for n in &names {
        if let Some(base) = parse_segment_name(n, LOG_EXT) {
            if !replaced.iter().any(|r| r.contains(&base)) {
                segs.push((base, dir.join(n), false));
            }
        }
    }
    segs.sort_by_key(|(b, ..)| *b);
    let mut expected: Option<u64> = None;
    for (i, (base, path, swap)) in segs.iter().enumerate() {
        let (base, swap, path) = (*base, *swap, path.clone());
        let last = i + 1 == segs.len();
        let data = fs.read(&path).map_err(io_err("read", &path))?;
        let dump = dump_bytes(&data);
        progress(data.len() as u64);
        report.segments += 1;
        report.batches += dump.batches.len();
        let mut problem = |position: Option<u64>, offset: Option<u64>, what: String| {
            report.problems.push(Problem {
                path: path.clone(),
                position,
                offset,
                what,
            })
        };
        if let Some(e) = expected {
            if e != base {
                problem(
                    None,
                    Some(e),
                    format!("segment starts at {base}, but the previous one ends at {e}"),
                );
            }
        }
        let mut next = base;
        for b in &dump.batches {
            if !b.crc_ok {
                problem(Some(b.position), Some(b.base_offset), "CRC mismatch".into());
            }
            if let Some(why) = &b.malformed {
                problem(Some(b.position), Some(b.base_offset), why.clone());
            }
            if b.base_offset < next {
                problem(
                    Some(b.position),
                    Some(b.base_offset),
                    format!("offset {} after {}", b.base_offset, next),
                );
            }
            next = b.last_offset + 1;
        }
        if let Some((pos, why)) = &dump.stopped {
            let tail_zeros = why.starts_with("zero-filled");
            if !(last && tail_zeros) {
                problem(Some(*pos), Some(next), why.clone());
            }
        }
        expected = Some(next);
        let version = version_of(&data);
        // Indexes: every valid entry must point at a batch with its offset
        // (v1: the batch's first offset; v2: its last, as Kafka checks).
        // A cleaned copy's indexes are rebuilt once it is swapped in.
        let idx_path = dir.join(format!("{base:020}.{INDEX_EXT}"));
        let idx = if swap {
            Err(())
        } else {
            fs.read(&idx_path).map_err(drop)
        };
        if let Ok(idx) = idx {
            let n = valid_offset_entries(&idx, version);
            if !last && n * OFFSET_ENTRY_LEN != idx.len() {
                report.problems.push(Problem {
                    path: idx_path.clone(),
                    position: Some((n * OFFSET_ENTRY_LEN) as u64),
                    offset: None,
                    what: "bytes after the valid entries of a sealed index".into(),
                });
            }
            for e in (0..n).filter_map(|i| offset_entry(&idx, i, version)) {
                let ok = data
                    .get(e.pos as usize..)
                    .and_then(|b| peek_header(b).ok())
                    .is_some_and(|h| entry_matches(version, &h, base, e));
                if !ok {
                    report.problems.push(Problem {
                        path: idx_path.clone(),
                        position: None,
                        offset: Some(base + u64::from(e.rel)),
                        what: format!(
                            "entry for offset {} points at no such batch (position {})",
                            base + u64::from(e.rel),
                            e.pos
                        ),
                    });
                }
            }
        }
        let time_path = dir.join(format!("{base:020}.{TIME_INDEX_EXT}"));
        let times = if swap {
            Err(())
        } else {
            fs.read(&time_path).map_err(drop)
        };
        if let Ok(t) = times {
            let n = valid_time_entries(&t, version);
            if !last && n * TIME_ENTRY_LEN != t.len() {
                report.problems.push(Problem {
                    path: time_path.clone(),
                    position: Some((n * TIME_ENTRY_LEN) as u64),
                    offset: None,
                    what: "bytes after the valid entries of a sealed time index".into(),
                });
            }
            // v2 (Kafka's check): an entry names the last offset of a
            // batch whose largest timestamp is the entry's.
            if version == Version::V2 {
                for e in (0..n).filter_map(|i| time_entry(&t, i, version)) {
                    let at = base + u64::from(e.rel);
                    let ok = dump
                        .batches
                        .iter()
                        .find(|b| b.last_offset >= at)
                        .is_some_and(|b| b.last_offset == at && b.max_timestamp == e.ts);
                    if !ok {
                        report.problems.push(Problem {
                            path: time_path.clone(),
                            position: None,
                            offset: Some(at),
                            what: format!(
                                "entry ({}, offset {at}) names no batch ending there with that largest timestamp",
                                e.ts
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}
