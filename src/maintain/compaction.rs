//! Log compaction: keep the latest record per key, in place of the sealed
//! segments, through a crash-safe file swap.
//!
//! The key map holds full keys (no hashing), so a record is never dropped
//! because two keys collide. Cleaned batches keep their base offset, base
//! timestamp and last offset; retained records are copied verbatim (their
//! deltas are relative to the unchanged base). Consecutive segments are
//! cleaned into one output segment while the output stays under
//! `segment_bytes`; each output ends with the last batch of its last input
//! (kept even when empty), so segment boundaries stay contiguous.
//!
//! Transactions (Kafka's cleaner rules): nothing at or past the last stable
//! offset is cleaned; records of aborted transactions are removed whatever
//! their key, and never count as a key's latest value; only committed,
//! durable records below the last stable offset supersede older ones;
//! transaction markers are always kept (Kafka removes them once their
//! transaction's data is gone and the delete retention has passed; keeping
//! them costs one small batch per transaction and partition, and is never
//! wrong). Producer state does not depend on the cleaned segments: it is
//! kept in snapshots at or above the active segment.
//!
//! The swap (FORMAT.md §7): write `<base>.log.cleaned`, fsync; rename it to
//! `<base>.log.swap`, fsync the directory; rename every input's files to
//! `*.deleted`; rename the swap to `<base>.log`, fsync the directory; write
//! the new indexes; delete the `*.deleted` files. Recovery resolves every
//! intermediate state (`storage::recovery::resolve_swaps`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::retention::ms;
use crate::error::{io_err, Error, Result};
use crate::format::batch::v2::parse_control_key;
use crate::format::batch::{
    decode_batch, rebuild_v2, records_section, EncodedBatch, RecordIter, RecordView, Version,
    CODEC_MASK,
};
use crate::io::{FileSystem, OpenMode};
use crate::storage::mapped::MappedFile;
use crate::storage::partition::txn::AbortedFilter;
use crate::storage::partition::Partition;
use crate::storage::recovery::scan::scan_segment;
use crate::storage::segment::{
    segment_path, Part, Segment, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT,
};
use crate::topic::config::Compression;

/// Most key bytes the key map holds in one pass; a larger key set is
/// cleaned over several passes, as Kafka's cleaner does.
const MAP_BUDGET: usize = 64 << 20;

/// What one compaction pass did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Cleaned {
    pub segments_removed: u64,
    pub bytes_reclaimed: u64,
    pub records_removed: u64,
}

struct Latest {
    offset: u64,
}

/// One record as compaction sees it.
struct Rec<'a> {
    /// The base offset of its batch.
    batch: u64,
    offset: u64,
    key: Option<&'a [u8]>,
    tombstone: bool,
    timestamp: i64,
    /// The record, copied verbatim when kept in a batch of the same
    /// layout, re-encoded otherwise.
    view: RecordView<'a>,
}

/// Whether compaction keeps a record.
type Keep<'a> = dyn Fn(&Rec<'_>) -> bool + 'a;

/// Calls `f(batch header, batch bytes, records)` for every batch of a
/// segment, in order, validating each.
fn for_each_batch(
    seg: &Arc<Segment>,
    mut f: impl FnMut(&crate::format::batch::BatchHeader, &[u8], &[Rec<'_>]),
) -> Result<()> {
    let data = seg.view(Part::Log).map_err(io_err("map", seg.log.path()))?;
    let mut pos = 0;
    while pos < data.len() {
        let bad = |k| Error::corrupted(seg.log.path(), pos as u64, None, k);
        let h = decode_batch(&data[pos..]).map_err(|e| {
            e.into_error(seg.log.path(), pos as u64, None, (data.len() - pos) as u64)
        })?;
        let bytes = &data[pos..pos + h.total_len()];
        let section = records_section(&h, bytes).map_err(bad)?;
        // Capacity from the bytes, not the header's count: a record takes at
        // least 7 bytes, and a crafted count must not allocate gigabytes.
        let mut recs = Vec::with_capacity((h.record_count as usize).min(section.len() / 7));
        for r in RecordIter::new(&h, &section) {
            let r = r.map_err(bad)?;
            recs.push(Rec {
                batch: h.base_offset,
                offset: h.base_offset + u64::from(r.offset_delta),
                // A control record's key is its marker type, not a record
                // key: markers are always kept.
                key: if h.is_control() { None } else { r.key },
                tombstone: r.value.is_none(),
                timestamp: h.base_timestamp.wrapping_add(r.timestamp_delta),
                view: r,
            });
        }
        f(&h, bytes, &recs);
        pos += h.total_len();
    }
    Ok(())
}

/// Cleans the partition's cleanable segments. `force` ignores the dirty
/// ratio.
pub(crate) fn compact(part: &Partition, now: i64, force: bool) -> Result<Cleaned> {
    let cfg = part.config().clone();
    let segs = part.segments();
    let sealed = &segs[..segs.len().saturating_sub(1)];
    // Segments holding a record younger than the compaction lag, and all
    // after them, are not cleanable yet.
    // Nor are segments reaching the last stable offset.
    let horizon = now.saturating_sub(ms(cfg.min_compaction_lag));
    let lso = part.last_stable_offset();
    let cleanable_n = sealed
        .iter()
        .take_while(|s| s.max_timestamp() <= horizon && s.next_offset() <= lso)
        .count();
    let mut cleanable: Vec<Arc<Segment>> = sealed[..cleanable_n].to_vec();
    let total: u64 = cleanable.iter().map(|s| s.log.len()).sum();
    let dirty: u64 = cleanable
        .iter()
        .filter(|s| s.next_offset() > part.cleaner_point())
        .map(|s| s.log.len())
        .sum();
    // A forced pass runs even with nothing dirty: it still removes
    // tombstones whose delete retention has passed.
    let ratio_low = dirty == 0 || (dirty as f64) / (total as f64) <= cfg.min_cleanable_dirty_ratio;
    if total == 0 || (!force && ratio_low) {
        return Ok(Cleaned::default());
    }
    // 0. The batches of aborted transactions, below the LSO.
    let aborted = aborted_batches(part, &segs, lso)?;
    // 1. The key map: the latest offset of every key, full keys compared.
    let mut latest: HashMap<Vec<u8>, Latest> = HashMap::new();
    let mut key_bytes = 0usize;
    let mut mapped = 0;
    for seg in &cleanable {
        for_each_batch(seg, |_, _, recs| {
            for r in recs.iter().filter(|r| !aborted.contains(&r.batch)) {
                if let Some(k) = r.key {
                    match latest.get_mut(k) {
                        Some(l) => l.offset = r.offset,
                        None => {
                            key_bytes += k.len() + 48;
                            latest.insert(k.to_vec(), Latest { offset: r.offset });
                        }
                    }
                }
            }
        })?;
        mapped += 1;
        if key_bytes > MAP_BUDGET {
            break;
        }
    }
    cleanable.truncate(mapped);
    // Later records (not cleaned this pass, the active segment included)
    // still supersede older ones of keys already in the map — but only
    // durable ones: a record a power cut could still take away must not
    // cause the record it supersedes to be removed. No new keys are added,
    // so the map stays within its budget. (Without the durability filter the
    // power-cut test fails, e.g. with STREAMLOG_POWER_CUT_SEED=33.)
    // Nor a record of a transaction that is still open or was aborted.
    let settled = part.durable_offset().min(lso);
    for seg in &segs[mapped..] {
        for_each_batch(seg, |_, _, recs| {
            let live = |r: &&Rec<'_>| r.offset < settled && !aborted.contains(&r.batch);
            for r in recs.iter().filter(live) {
                if let Some(l) = r.key.and_then(|k| latest.get_mut(k)) {
                    l.offset = r.offset;
                }
            }
        })?;
    }
    let delete_horizon = now.saturating_sub(ms(cfg.delete_retention));
    let keep = |r: &Rec<'_>| -> bool {
        if aborted.contains(&r.batch) {
            return false;
        }
        match r.key {
            None => true,
            Some(k) => {
                latest.get(k).is_some_and(|l| l.offset == r.offset)
                    && !(r.tombstone && r.timestamp < delete_horizon)
            }
        }
    };
    // 2. Group consecutive segments by their cleaned size.
    let mut sizes = Vec::with_capacity(cleanable.len());
    for seg in &cleanable {
        let mut size = 0u64;
        for_each_batch(seg, |_, _, recs| {
            let kept: u64 = recs
                .iter()
                .filter(|r| keep(r))
                .map(|r| r.view.raw.len() as u64)
                .sum();
            if kept > 0 {
                size += kept + 64;
            }
        })?;
        sizes.push(size + 64);
    }
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    let mut acc = 0;
    for (i, &s) in sizes.iter().enumerate() {
        if i > start && acc + s > cfg.segment_bytes {
            groups.push(start..i);
            start = i;
            acc = 0;
        }
        acc += s;
    }
    if start < cleanable.len() {
        groups.push(start..cleanable.len());
    }
    // 3. Clean and swap each group.
    let level = match cfg.compression {
        Compression::Zstd(l) => Some(l),
        Compression::None => None,
    };
    let mut out = Cleaned::default();
    for g in groups {
        let inputs = &cleanable[g];
        out.records_removed += clean_group(part, inputs, &keep, level, &mut out)?;
    }
    if let Some(last) = cleanable.last() {
        part.set_cleaner_point(last.next_offset());
    }
    Ok(out)
}

/// The base offsets of the batches below `lso` that belong to aborted
/// transactions (empty when the partition never aborted one).
fn aborted_batches(part: &Partition, segs: &[Arc<Segment>], lso: u64) -> Result<HashSet<u64>> {
    let mut out = HashSet::new();
    let from = segs.first().map_or(0, |s| s.base);
    let Some(mut filter) = AbortedFilter::new(part, from, lso) else {
        return Ok(out);
    };
    for seg in segs.iter().take_while(|s| s.base < lso) {
        let mut err = None;
        for_each_batch(seg, |h, _, recs| {
            if err.is_some() || h.base_offset >= lso {
                return;
            }
            let kind = || {
                Ok(recs
                    .first()
                    .and_then(|r| r.view.key)
                    .and_then(parse_control_key))
            };
            match filter.skip(h, kind) {
                Ok(true) => {
                    out.insert(h.base_offset);
                }
                Ok(false) => {}
                Err(e) => err = Some(e),
            }
        })?;
        if let Some(e) = err {
            return Err(e);
        }
    }
    Ok(out)
}

/// Writes the cleaned copy of `inputs` and swaps it in. Returns the number
/// of records removed.
fn clean_group(
    part: &Partition,
    inputs: &[Arc<Segment>],
    keep: &Keep<'_>,
    level: Option<i32>,
    stats: &mut Cleaned,
) -> Result<u64> {
    let fs = part.fs();
    let dir = part.dir.clone();
    let base = inputs[0].base;
    let cleaned_path = path_with(&dir, base, "log.cleaned");
    let file = fs
        .open(&cleaned_path, OpenMode::CreateTruncate)
        .map_err(io_err("create", &cleaned_path))?;
    let mut pos = 0u64;
    let mut removed = 0u64;
    let last_seg = inputs.len() - 1;
    let mut write_err = None;
    for (si, seg) in inputs.iter().enumerate() {
        let batches = count_batches(seg)?;
        let mut bi = 0;
        for_each_batch(seg, |h, bytes, recs| {
            bi += 1;
            if write_err.is_some() {
                return;
            }
            let is_last = si == last_seg && bi == batches;
            let kept: Vec<&Rec<'_>> = recs.iter().filter(|r| keep(r)).collect();
            removed += (recs.len() - kept.len()) as u64;
            let encoded: EncodedBatch;
            // v1 batches are always re-encoded: cleaned segments are v2.
            let same = h.version == Version::V2;
            let out: &[u8] = if same && kept.len() == recs.len() && (!recs.is_empty() || is_last) {
                bytes
            } else if kept.is_empty() && !is_last {
                return;
            } else {
                let views: Vec<RecordView<'_>> = kept.iter().map(|r| r.view).collect();
                let zstd = if h.attributes & CODEC_MASK == 0 {
                    None
                } else {
                    Some(level.unwrap_or(3))
                };
                match rebuild_v2(h, &views, zstd) {
                    Ok(b) => {
                        encoded = b;
                        encoded.bytes()
                    }
                    Err(e) => {
                        write_err = Some(Error::io("re-encode a batch for", &cleaned_path, e));
                        return;
                    }
                }
            };
            match file.write_at(out, pos) {
                Ok(()) => pos += out.len() as u64,
                Err(e) => write_err = Some(Error::io("write", &cleaned_path, e)),
            }
        })?;
    }
    let input_bytes: u64 = inputs.iter().map(|s| s.size_bytes()).sum();
    if let Some(e) = write_err {
        drop(file);
        let _ = fs.remove_file(&cleaned_path);
        return Err(e);
    }
    if removed == 0 && inputs.len() == 1 {
        // Nothing to gain: leave the segment as it is.
        drop(file);
        let _ = fs.remove_file(&cleaned_path);
        return Ok(0);
    }
    if part.syncs() {
        file.sync_data().map_err(io_err("sync", &cleaned_path))?;
    }
    drop(file);
    // From the first rename on, the directory is mid-swap: a failure leaves
    // it for recovery to finish, so the log is poisoned until reopened.
    let poison = |e: Error| {
        part.poison_with(&e);
        e
    };
    let swap_path = path_with(&dir, base, "log.swap");
    fs.rename(&cleaned_path, &swap_path)
        .map_err(io_err("rename", &cleaned_path))
        .map_err(poison)?;
    sync_dir(part, &*fs).map_err(poison)?;
    let mut doomed = Vec::new();
    for seg in inputs {
        for p in seg.paths() {
            let d = deleted_path(&p);
            if fs.exists(&p) {
                fs.rename(&p, &d)
                    .map_err(io_err("rename", &p))
                    .map_err(poison)?;
                doomed.push(d);
            }
        }
    }
    let log_path = segment_path(&dir, base, LOG_EXT);
    fs.rename(&swap_path, &log_path)
        .map_err(io_err("rename", &swap_path))
        .map_err(poison)?;
    sync_dir(part, &*fs).map_err(poison)?;
    // The new segment, with indexes rebuilt from it.
    let len = pos;
    let log = MappedFile::open(&*fs, &log_path, len, len)
        .map_err(io_err("map", &log_path))
        .map_err(poison)?;
    let scan = {
        let bytes = log
            .view()
            .map_err(io_err("map", &log_path))
            .map_err(poison)?;
        scan_segment(&bytes, base, part.config().index_interval_bytes)
    };
    let next = inputs[last_seg].next_offset();
    if scan.stop.is_some() || scan.next_offset != next {
        let e = Error::corrupted(
            &log_path,
            scan.valid_len,
            Some(scan.next_offset),
            crate::CorruptionKind::BadRecord {
                reason: "a cleaned segment does not cover its inputs",
            },
        );
        return Err(poison(e));
    }
    let times = scan.sealed_time_index(base, next);
    let offsets = write_index(part, &*fs, base, INDEX_EXT, &scan.offsets).map_err(poison)?;
    let times = write_index(part, &*fs, base, TIME_INDEX_EXT, &times).map_err(poison)?;
    let seg = Arc::new(Segment::from_parts(
        base,
        Version::V2,
        log,
        offsets,
        times,
        next,
        scan.cursor.max_ts,
    ));
    let new_size = seg.size_bytes();
    if !part.replace_segments(inputs, Some(seg)) {
        return Err(poison(Error::IllegalState {
            what: "the segments being compacted changed during compaction",
        }));
    }
    for d in doomed {
        let _ = fs.remove_file(&d);
    }
    // The cleaned copy holds no aborted record: the aborted-transaction
    // indexes of the other inputs describe nothing left (the first's now
    // belongs to the cleaned segment, whose base it shares).
    for seg in &inputs[1..] {
        let p = segment_path(&dir, seg.base, TXN_INDEX_EXT);
        if fs.exists(&p) {
            let _ = fs.remove_file(&p);
        }
    }
    stats.segments_removed += inputs.len() as u64 - 1;
    stats.bytes_reclaimed += input_bytes.saturating_sub(new_size);
    Ok(removed)
}

fn count_batches(seg: &Arc<Segment>) -> Result<usize> {
    let mut n = 0;
    for_each_batch(seg, |_, _, _| n += 1)?;
    Ok(n)
}

fn path_with(dir: &std::path::Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

fn deleted_path(p: &std::path::Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".deleted");
    PathBuf::from(s)
}

fn sync_dir(part: &Partition, fs: &dyn FileSystem) -> Result<()> {
    if part.syncs() {
        fs.sync_dir(&part.dir).map_err(io_err("sync", &part.dir))?;
    }
    Ok(())
}

fn write_index(
    part: &Partition,
    fs: &dyn FileSystem,
    base: u64,
    ext: &str,
    bytes: &[u8],
) -> Result<MappedFile> {
    let path = segment_path(&part.dir, base, ext);
    let f = fs
        .open(&path, OpenMode::CreateTruncate)
        .map_err(io_err("create", &path))?;
    f.write_at(bytes, 0).map_err(io_err("write", &path))?;
    drop(f);
    let len = bytes.len() as u64;
    MappedFile::open(fs, &path, len, len).map_err(io_err("map", &path))
}
