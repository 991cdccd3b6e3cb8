//! Committed offsets, read-only: the `__consumer_offsets` partitions
//! replayed with the writer's own replay (`log::groups::OffsetsReplay`, the
//! code `open` runs) into a fresh group store. A transaction's offsets
//! count once its COMMIT marker is read and never after an ABORT; those of
//! a transaction still undecided at the end do not count.

use std::path::Path;
use std::sync::Arc;

use super::cursor::Cursor;
use crate::error::{Error, Result};
use crate::group::offsets::OFFSETS_TOPIC;
use crate::group::store::GroupStore;
use crate::io::FileSystem;
use crate::log::groups::{OffsetsReplay, PendingOffsets};
use crate::topic::config::TopicConfig;

/// The image of `__consumer_offsets` in `dir` (configured as `cfg`, or
/// absent), replayed from the first offset to the end of what is
/// readable now. A damaged batch in a finished segment ends its
/// partition's replay, as at open.
pub(super) fn replay(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    cfg: Option<&TopicConfig>,
) -> Result<GroupStore> {
    let store = GroupStore::default();
    let Some(cfg) = cfg else {
        return Ok(store);
    };
    let mut map = store.offsets();
    let mut pending = PendingOffsets::new();
    let mut skipped = Vec::new();
    for p in 0..cfg.partitions {
        let pdir = dir.join(format!("{OFFSETS_TOPIC}-{p}"));
        let mut cursor = Cursor::new(fs.clone(), pdir, 0, false)?;
        let mut from = 0;
        loop {
            let step = match cursor.next_batch() {
                Ok(s) => s,
                Err(Error::Corrupted { .. } | Error::UnsupportedVersion { .. }) => break,
                Err(e) => return Err(e),
            };
            let Some(b) = step.batch else {
                break;
            };
            let replay = OffsetsReplay {
                map: &mut map,
                pending: &mut pending,
                skipped: &mut skipped,
            };
            replay.batch(&b.header, b.bytes, (b.path, b.pos), from)?;
            from = b.header.next_offset();
        }
    }
    drop(map);
    Ok(store)
}
