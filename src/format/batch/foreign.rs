//! Validating record batches that come from outside (a Kafka client's
//! produce request), before they are appended unchanged but for their base
//! offset and leader epoch (FORMAT.md §3.7).
//!
//! Stricter than reading a batch from disk: a client may only send what a
//! Kafka producer writes. Every length is checked against the input before
//! it is used, nothing is allocated by a length the input claims (only a
//! zstd section grows, as its real output arrives, up to a limit), and
//! every failure names the batch's position in the input.

use std::borrow::Cow;
use std::ops::Range;

use super::common::{
    BatchHeader, DecodeError, Version, ATTR_CONTROL, ATTR_DELETE_HORIZON, ATTR_LOG_APPEND_TIME,
    ATTR_TRANSACTIONAL, CODEC_MASK, CODEC_ZSTD, MAX_BATCH_BYTES,
};
use super::{decode_batch, decompress, v2, version_of, RecordIter};
use crate::error::CorruptionKind;
use crate::format::varint::varint_len;

/// What the appending partition allows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The largest record, encoded alone (the topic's `max_record_bytes`).
    pub max_record_bytes: u64,
    /// Whether transactional batches are accepted: only through a
    /// transaction's own path (`Log::append_transactional_batches`), which
    /// checks that the partition belongs to the open transaction.
    pub transactional: bool,
}

/// One validated batch of the input.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub header: BatchHeader,
    /// Where it lies in the input.
    pub range: Range<usize>,
}

/// Why an input batch was refused: its position in the input and what is
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub position: usize,
    pub kind: CorruptionKind,
    /// Set when the batch is refused only because a record is over the
    /// size limit: that record's size.
    pub too_large: Option<u64>,
}

fn refuse(position: usize, reason: &'static str) -> Refused {
    Refused {
        position,
        kind: CorruptionKind::BadRecord { reason },
        too_large: None,
    }
}

/// Why one batch was refused.
enum Why {
    Bad(&'static str),
    TooLarge(u64),
}

impl From<&'static str> for Why {
    fn from(reason: &'static str) -> Why {
        Why::Bad(reason)
    }
}

/// Validates every batch of `input` (one or more whole v2 batches back to
/// back, as a produce request carries them): CRC, lengths, magic,
/// attributes (no control batch, no transaction, create time, a codec
/// streamlog reads), the record count against the offset range, offset
/// deltas `0, 1, 2, …`, the largest timestamp, every record's fields and
/// size, and, for zstd, a decompressed size within what the records may
/// take.
pub(crate) fn validate(input: &[u8], limits: Limits) -> Result<Vec<Checked>, Refused> {
    if input.is_empty() {
        return Err(refuse(0, "no batch in the input"));
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let rest = &input[pos..];
        if version_of(rest) != Version::V2 {
            return Err(refuse(pos, "not a Kafka record batch (magic 2)"));
        }
        let h = decode_batch(rest).map_err(|e| Refused {
            position: pos,
            too_large: None,
            kind: match e {
                DecodeError::Corrupt(k) => k,
                DecodeError::Incomplete { needed } => CorruptionKind::Truncated {
                    needed: needed as u64,
                    available: rest.len() as u64,
                },
                DecodeError::UnsupportedVersion(_) => CorruptionKind::BadRecord {
                    reason: "a batch magic or attribute this build does not support",
                },
                DecodeError::UnsupportedCodec(_) => CorruptionKind::BadCompression {
                    reason: "gzip, snappy and lz4 are not supported; use zstd or none",
                },
            },
        })?;
        check_one(&h, &rest[..h.total_len()], limits).map_err(|why| match why {
            Why::Bad(reason) => refuse(pos, reason),
            Why::TooLarge(size) => Refused {
                too_large: Some(size),
                ..refuse(pos, "a record larger than the topic's max_record_bytes")
            },
        })?;
        out.push(Checked {
            header: h,
            range: pos..pos + h.total_len(),
        });
        pos += h.total_len();
    }
    Ok(out)
}

fn check_one(h: &BatchHeader, bytes: &[u8], limits: Limits) -> Result<(), Why> {
    if h.attributes & ATTR_CONTROL != 0 {
        return Err("control batches are written by the log, not by clients".into());
    }
    if h.attributes & ATTR_TRANSACTIONAL != 0 && !limits.transactional {
        return Err("a transactional batch outside a transaction (a transactional producer writes through its transaction)".into());
    }
    if h.attributes & (ATTR_LOG_APPEND_TIME | ATTR_DELETE_HORIZON) != 0 {
        return Err(
            "log-append time and delete horizons are set by the log, not by clients".into(),
        );
    }
    let idempotent = h.producer_id >= 0;
    if idempotent && (h.producer_epoch < 0 || h.base_sequence < 0) {
        return Err("a producer id without an epoch and a base sequence".into());
    }
    if !idempotent && h.producer_id != -1 {
        return Err("a negative producer id other than -1".into());
    }
    if h.record_count == 0 {
        return Err("an empty batch".into());
    }
    if u64::from(h.record_count) != u64::from(h.last_offset_delta) + 1 {
        return Err("the record count does not match the offset range".into());
    }
    let n = u64::from(h.record_count);
    // What the records may take when decompressed: each at most the limit
    // (plus its length prefix), and never more than a batch may hold.
    let max_section = n
        .saturating_mul(limits.max_record_bytes.saturating_add(5))
        .min(MAX_BATCH_BYTES as u64) as usize;
    let raw = &bytes[v2::HEADER_LEN..];
    let section: Cow<'_, [u8]> = match h.attributes & CODEC_MASK {
        CODEC_ZSTD => {
            let reason = "a zstd section that does not decompress within the size limit";
            Cow::Owned(decompress(raw, max_section).map_err(|_| Why::Bad(reason))?)
        }
        _ => Cow::Borrowed(raw),
    };
    let mut max_ts = i64::MIN;
    for (expected, r) in RecordIter::new(h, &section).enumerate() {
        let r = r.map_err(|_| Why::Bad("a malformed record"))?;
        if r.offset_delta as usize != expected {
            return Err("record offset deltas are not 0, 1, 2, ...".into());
        }
        max_ts = max_ts.max(h.base_timestamp.wrapping_add(r.timestamp_delta));
        // The record's size encoded alone (timestamp and offset deltas 0),
        // as the producer's limit measures it.
        let body = r.raw.len() - prefix_len(r.raw);
        let alone =
            body - varint_len(r.timestamp_delta) - varint_len(i64::from(r.offset_delta)) + 2;
        let size = (varint_len(alone as i64) + alone) as u64;
        if size > limits.max_record_bytes {
            return Err(Why::TooLarge(size));
        }
    }
    if max_ts != h.max_timestamp {
        return Err("the batch's max timestamp is not its records' largest".into());
    }
    Ok(())
}

/// The length of a record's length prefix (a varint: its bytes up to the
/// first without the high bit).
fn prefix_len(raw: &[u8]) -> usize {
    raw.iter()
        .position(|b| b & 0x80 == 0)
        .map_or(raw.len(), |i| i + 1)
}
