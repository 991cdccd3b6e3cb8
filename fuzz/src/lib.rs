//! Helpers shared by the fuzz targets.
//!
//! Every batch is CRC-protected, so a mutated input almost never gets past
//! the CRC check. The targets therefore run each input twice: as given, and
//! with the CRCs of its batches recomputed (each in its own layout: v2's
//! CRC-32C, v1's CRC-32), so that the code behind the CRC gate (header
//! checks, zstd, record parsing, index building) is reached.

pub use streamlog::internals::fix_crcs;

use streamlog::internals::Layout;

/// A `u32` index field in a layout's byte order (v1 little-, v2
/// big-endian). `b` must be 4 bytes.
pub fn u32_of(b: &[u8], l: Layout) -> u32 {
    let a: [u8; 4] = b.try_into().expect("4 bytes");
    match l {
        Layout::V1 => u32::from_le_bytes(a),
        Layout::V2 => u32::from_be_bytes(a),
    }
}

/// An `i64` index field in a layout's byte order. `b` must be 8 bytes.
pub fn i64_of(b: &[u8], l: Layout) -> i64 {
    let a: [u8; 8] = b.try_into().expect("8 bytes");
    match l {
        Layout::V1 => i64::from_le_bytes(a),
        Layout::V2 => i64::from_be_bytes(a),
    }
}
