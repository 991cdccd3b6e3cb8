//! The transactions open at an offset, for a `ReadCommitted` reader that
//! starts there: a transaction that began before its start offset and is
//! still undecided there holds back everything after its first record.
//!
//! Found from the newest producer-state snapshot at or below the offset
//! (FORMAT.md §10.4: each producer's open transaction and its first
//! offset), then the batch headers from the snapshot to the offset: a
//! transactional batch opens its producer's transaction, a control batch
//! (a marker) ends it. Without a usable snapshot the walk starts at the
//! partition's first segment. Only headers are read (no bodies, no CRC).

use std::collections::HashMap;
use std::path::Path;

use super::files::{fits, with_listing, At, SegFile, SegReader};
use crate::error::{io_err, Result};
use crate::format::txn::decode_snapshot;
use crate::io::FileSystem;
use crate::storage::segment::{parse_segment_name, SNAPSHOT_EXT};

/// Producer ids with a transaction open at `offset` in partition directory
/// `dir`, with the first offset of each.
pub(super) fn open_at(fs: &dyn FileSystem, dir: &Path, offset: u64) -> Result<HashMap<i64, u64>> {
    with_listing(fs, dir, "walk the batches of", |segs| {
        try_open_at(fs, dir, segs, offset)
    })
}

/// One try; `None` when a segment vanished during the walk.
fn try_open_at(
    fs: &dyn FileSystem,
    dir: &Path,
    segs: &[SegFile],
    offset: u64,
) -> Result<Option<HashMap<i64, u64>>> {
    let Some(first) = segs.first().map(|s| s.base) else {
        return Ok(Some(HashMap::new()));
    };
    let (mut from, mut open) = (first, HashMap::new());
    let mut snaps: Vec<u64> = fs
        .read_dir(dir)
        .map_err(io_err("list", dir))?
        .iter()
        .filter_map(|n| parse_segment_name(n, SNAPSHOT_EXT))
        .filter(|&s| s >= first && s <= offset)
        .collect();
    snaps.sort_unstable();
    // The newest valid one; one being written (or deleted) fails its read
    // or its CRC, and the next older is tried.
    while let Some(s) = snaps.pop() {
        let path = dir.join(format!("{s:020}.{SNAPSHOT_EXT}"));
        let Ok(entries) = fs.read(&path).map(|b| decode_snapshot(&b)) else {
            continue;
        };
        let Ok(entries) = entries else {
            continue;
        };
        open = entries
            .iter()
            .filter_map(|e| {
                let first = u64::try_from(e.current_txn_first_offset).ok()?;
                Some((e.producer_id, first))
            })
            .collect();
        from = s;
        break;
    }
    for (i, seg) in segs.iter().enumerate() {
        if seg.base >= offset {
            break;
        }
        if segs.get(i + 1).is_some_and(|n| n.base <= from) {
            continue;
        }
        let last = i + 1 == segs.len();
        let Some(mut file) = SegReader::open(fs, seg)? else {
            return Ok(None);
        };
        let (mut pos, mut next) = (0, seg.base);
        while let At::Batch(h) = file.header_at(pos)? {
            if !fits(&h, next, last) || h.base_offset >= offset {
                break;
            }
            if h.base_offset >= from {
                if h.is_control() {
                    open.remove(&h.producer_id);
                } else if h.is_transactional() {
                    open.entry(h.producer_id).or_insert(h.base_offset);
                }
            }
            pos += h.total_len() as u64;
            next = h.next_offset();
        }
    }
    Ok(Some(open))
}
