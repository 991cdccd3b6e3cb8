//! Helpers shared by the fuzz targets.
//!
//! Every batch is CRC-protected, so a mutated input almost never gets past
//! the CRC check. The targets therefore run each input twice: as given, and
//! with the CRCs of its batches recomputed, so that the code behind the CRC
//! gate (header checks, zstd, record parsing, index building) is reached.

/// Batch header length (FORMAT.md §3).
pub const HEADER_LEN: usize = 64;
/// CRC field position; the CRC covers bytes 8 .. end of batch.
const CRC_AT: usize = 4;
const CRC_FROM: usize = 8;

/// Recomputes the CRC of every batch in the chain of batches at the front of
/// `bytes` (each batch's length field says where the next one starts),
/// stopping at the first length that does not fit. Returns `None` when
/// nothing changed.
pub fn fix_crcs(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    let mut pos = 0usize;
    let mut changed = false;
    while out.len() - pos >= HEADER_LEN {
        let len = u32::from_le_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
        let total = len + CRC_AT;
        if total < HEADER_LEN || total > out.len() - pos {
            break;
        }
        let crc = crc32fast::hash(&out[pos + CRC_FROM..pos + total]).to_le_bytes();
        if out[pos + CRC_AT..pos + CRC_FROM] != crc {
            out[pos + CRC_AT..pos + CRC_FROM].copy_from_slice(&crc);
            changed = true;
        }
        pos += total;
    }
    changed.then_some(out)
}
