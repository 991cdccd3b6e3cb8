//! Producer ids: allocated in blocks of [`BLOCK`], each block recorded
//! durably in the `producer-ids` file before any id of it is handed out,
//! so that no id is ever given twice, across crashes too (Kafka allocates
//! blocks through its controller the same way).

use super::state::{LogInner, PidBlock};
use crate::error::{io_err, Error, Result};
use crate::format::txn::{decode_producer_ids, encode_producer_ids};

/// The root file holding the first id of the next unallocated block.
pub(crate) const PRODUCER_IDS_FILE: &str = "producer-ids";
/// Ids per block (Kafka's `ProducerIdsBlock` size).
pub(crate) const BLOCK: i64 = 1000;

impl LogInner {
    /// A new producer id, never handed out before in this log.
    ///
    /// # Errors
    /// `Io` if the next block cannot be recorded; `Corrupted` if the file
    /// is damaged.
    pub(crate) fn allocate_producer_id(&self) -> Result<i64> {
        let mut b = self.producer_ids.lock();
        if b.next >= b.end {
            let _admin = self.admin.lock();
            let start = self.read_next_block()?;
            let end = start.checked_add(BLOCK).ok_or(Error::IllegalState {
                what: "producer ids are exhausted",
            })?;
            self.write_atomic(PRODUCER_IDS_FILE, &encode_producer_ids(end))?;
            *b = PidBlock { next: start, end };
        }
        let id = b.next;
        b.next += 1;
        Ok(id)
    }

    /// The first id of the next block, from the file (0 without one).
    fn read_next_block(&self) -> Result<i64> {
        let path = self.dir.join(PRODUCER_IDS_FILE);
        let fs = &*self.shared.fs;
        if !fs.exists(&path) {
            return Ok(0);
        }
        let bytes = fs.read(&path).map_err(io_err("read", &path))?;
        decode_producer_ids(&bytes).map_err(|reason| {
            Error::corrupted(
                &path,
                0,
                None,
                crate::error::CorruptionKind::BadMetadata { reason },
            )
        })
    }
}
