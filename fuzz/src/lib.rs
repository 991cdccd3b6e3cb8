//! Helpers shared by the fuzz targets.
//!
//! Every batch is CRC-protected, so a mutated input almost never gets past
//! the CRC check. The targets therefore run each input twice: as given, and
//! with the CRCs of its batches recomputed (each in its own layout: v2's
//! CRC-32C, v1's CRC-32), so that the code behind the CRC gate (header
//! checks, zstd, record parsing, index building) is reached.

pub use streamlog::internals::fix_crcs;
