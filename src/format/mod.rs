//! The on-disk format: pure encoding and decoding, no I/O.
//!
//! FORMAT.md is the specification; the tests in these modules pin its bytes.

pub(crate) mod batch;
pub(crate) mod index;
pub(crate) mod meta;
pub(crate) mod varint;
