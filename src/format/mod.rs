//! The on-disk format: pure encoding and decoding, no I/O.
//!
//! FORMAT.md is the specification; the tests in these modules pin its bytes.
//! Every codec is here: batches and records (`batch`, `varint`), index
//! entries (`index`), the framing of metadata files (`meta`) and the lines
//! inside them (`registry`, `checkpoint`), and the records of
//! `__consumer_offsets` (`offsets`), and exactly-once's records and files
//! (`txn`: `__transaction_state`, `.txnindex`, `.snapshot`).

pub(crate) mod batch;
pub(crate) mod checkpoint;
pub(crate) mod index;
pub(crate) mod meta;
pub(crate) mod offsets;
pub(crate) mod registry;
pub(crate) mod txn;
pub(crate) mod varint;
