//! Kafka's record batch, magic 2 (`DefaultRecordBatch`), byte for byte
//! (FORMAT.md §3): big-endian header fields, CRC-32C over the attributes to
//! the end, zig-zag varint record fields, −1 for a null key, value or
//! header value.
//!
//! The CRC does not cover the base offset, the length, the partition
//! leader epoch or the magic: the base offset is assigned when a batch is
//! appended, without touching its records or its CRC.

use super::common::{
    bad, check_headers, BatchHeader, DecodeError, RecordView, Version, ATTR_CONTROL,
    ATTR_DELETE_HORIZON, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, CODEC_MASK, CODEC_NONE,
    CODEC_ZSTD, MAX_BATCH_BYTES,
};
use crate::error::CorruptionKind;
use crate::format::varint::get_varint;

// ---- header layout (big-endian) -------------------------------------------
pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const LENGTH_AT: usize = BASE_OFFSET_AT + 8;
pub(crate) const LEADER_EPOCH_AT: usize = LENGTH_AT + 4;
pub(crate) const MAGIC_AT: usize = LEADER_EPOCH_AT + 4;
pub(crate) const CRC_AT: usize = MAGIC_AT + 1;
pub(crate) const ATTRIBUTES_AT: usize = CRC_AT + 4;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = ATTRIBUTES_AT + 2;
pub(crate) const BASE_TIMESTAMP_AT: usize = LAST_OFFSET_DELTA_AT + 4;
pub(crate) const MAX_TIMESTAMP_AT: usize = BASE_TIMESTAMP_AT + 8;
pub(crate) const PRODUCER_ID_AT: usize = MAX_TIMESTAMP_AT + 8;
pub(crate) const PRODUCER_EPOCH_AT: usize = PRODUCER_ID_AT + 8;
pub(crate) const BASE_SEQUENCE_AT: usize = PRODUCER_EPOCH_AT + 2;
pub(crate) const RECORD_COUNT_AT: usize = BASE_SEQUENCE_AT + 4;
/// Size of the fixed header (Kafka's `RECORD_BATCH_OVERHEAD`, 61).
pub(crate) const HEADER_LEN: usize = RECORD_COUNT_AT + 4;
const _: () = assert!(HEADER_LEN == super::common::V2_HEADER_LEN);
/// Bytes before the length field's count starts (Kafka's `LOG_OVERHEAD`).
pub(crate) const LENGTH_OVERHEAD: usize = LEADER_EPOCH_AT;
const _: () = assert!(LENGTH_OVERHEAD == super::common::V2_LENGTH_OVERHEAD);
const _: () = assert!(MAGIC as u16 == super::common::NEWEST_VERSION as u16);
/// The CRC covers every byte from here to the end of the batch.
pub(crate) const CRC_FROM: usize = ATTRIBUTES_AT;

/// The magic byte of this layout.
pub(crate) const MAGIC: u8 = 2;
/// The partition leader epoch streamlog writes: a single-node log has one
/// leader, in epoch 0, forever.
pub(crate) const LEADER_EPOCH: i32 = 0;

/// Attribute bits this build understands; any other set bit (with a valid
/// CRC) means a newer format.
pub(crate) const ATTR_KNOWN: u16 =
    CODEC_MASK | ATTR_LOG_APPEND_TIME | ATTR_TRANSACTIONAL | ATTR_CONTROL | ATTR_DELETE_HORIZON;

#[inline]
fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
#[inline]
fn i32_at(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
#[inline]
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The header fields, with bounds and field ranges checked but not the
/// magic or the CRC.
#[inline]
fn fields(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    let h = fixed_fields(buf)?;
    if buf.len() < h.total_len() {
        return Err(DecodeError::Incomplete {
            needed: h.total_len(),
        });
    }
    Ok(h)
}

/// [`fields`] of a buffer that need only hold the fixed header.
#[inline]
fn fixed_fields(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Incomplete { needed: HEADER_LEN });
    }
    let length = i32_at(buf, LENGTH_AT);
    let total = i64::from(length) + LENGTH_OVERHEAD as i64;
    if !(HEADER_LEN as i64..=MAX_BATCH_BYTES as i64).contains(&total) {
        return Err(CorruptionKind::BadLength {
            length: length as u32,
        }
        .into());
    }
    let base_offset = i64_at(buf, BASE_OFFSET_AT);
    let last_offset_delta = i32_at(buf, LAST_OFFSET_DELTA_AT);
    let record_count = i32_at(buf, RECORD_COUNT_AT);
    let h = BatchHeader {
        version: Version::V2,
        length: length as u32,
        crc: u32::from_be_bytes([
            buf[CRC_AT],
            buf[CRC_AT + 1],
            buf[CRC_AT + 2],
            buf[CRC_AT + 3],
        ]),
        magic: buf[MAGIC_AT],
        base_offset: base_offset as u64,
        leader_epoch: i32_at(buf, LEADER_EPOCH_AT),
        attributes: i16_at(buf, ATTRIBUTES_AT) as u16,
        last_offset_delta: last_offset_delta as u32,
        record_count: record_count as u32,
        base_timestamp: i64_at(buf, BASE_TIMESTAMP_AT),
        max_timestamp: i64_at(buf, MAX_TIMESTAMP_AT),
        producer_id: i64_at(buf, PRODUCER_ID_AT),
        producer_epoch: i16_at(buf, PRODUCER_EPOCH_AT),
        base_sequence: i32_at(buf, BASE_SEQUENCE_AT),
    };
    if h.magic == MAGIC {
        if base_offset < 0 || last_offset_delta < 0 || record_count < 0 {
            return Err(bad(
                "negative base offset, last offset delta or record count",
            ));
        }
        // Kafka's offsets are i64: the last one must be one too. Checked
        // here so that `next_offset()` can never overflow for any header,
        // even one whose CRC has not been verified yet (and the base offset
        // is outside the CRC).
        if base_offset
            .checked_add(i64::from(last_offset_delta))
            .is_none()
        {
            return Err(bad("offset range overflows i64"));
        }
    }
    Ok(h)
}

/// Bounds and magic of the v2 header at the front of `buf`; no CRC.
#[inline]
pub(crate) fn peek_header(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    let h = fields(buf)?;
    if h.magic != MAGIC {
        return Err(CorruptionKind::BadMagic {
            found: u16::from(h.magic),
        }
        .into());
    }
    Ok(h)
}

/// [`peek_header`] of a buffer that need only hold the fixed header (61
/// bytes), not the whole batch: for walking a segment through positioned
/// reads without reading batch bodies.
#[inline]
pub(crate) fn peek_fixed_header(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    let h = fixed_fields(buf)?;
    if h.magic != MAGIC {
        return Err(CorruptionKind::BadMagic {
            found: u16::from(h.magic),
        }
        .into());
    }
    Ok(h)
}

/// The base offset a v2 header claims (see `batch::claimed_base_offset`).
pub(crate) fn claimed_base_offset(buf: &[u8]) -> Option<u64> {
    if buf.len() < HEADER_LEN || buf[MAGIC_AT] != MAGIC {
        return None;
    }
    u64::try_from(i64_at(buf, BASE_OFFSET_AT)).ok()
}

/// The CRC-32C of a batch's covered bytes.
#[inline]
pub(crate) fn crc_of(batch: &[u8]) -> u32 {
    crc32c(&batch[CRC_FROM..])
}

/// CRC-32C (Castagnoli, Kafka's), by `crc-fast`.
#[inline]
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    // The algorithm's checksum is 32 bits wide, returned in a u64.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// CRC-32C's polynomial, bit-reflected.
const CRC32C_POLY: u32 = 0x82f6_3b78;

/// `a · b` modulo the CRC polynomial, both reflected (bit 31 is x⁰).
const fn gf2_mul(a: u32, mut b: u32) -> u32 {
    let mut p = 0;
    let mut m = 1u32 << 31;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
        }
        b = if b & 1 != 0 {
            (b >> 1) ^ CRC32C_POLY
        } else {
            b >> 1
        };
        m >>= 1;
    }
    p
}

/// `x^(8·2^k)` modulo the CRC polynomial, for k = 0..32.
const ZEROS_POW2: [u32; 32] = {
    let mut t = [0u32; 32];
    t[0] = 1 << (31 - 8); // x^8: one zero byte
    let mut k = 1;
    while k < 32 {
        t[k] = gf2_mul(t[k - 1], t[k - 1]);
        k += 1;
    }
    t
};

/// `x^(8·n)` modulo the CRC polynomial: what appending `n` zero bytes
/// multiplies a CRC register by. One multiplication per set bit of `n`.
pub(crate) fn crc_zeros_factor(n: usize) -> u32 {
    let mut p = 1u32 << 31; // x^0
    let mut k = 0;
    let mut n = n as u64;
    while n != 0 && k < 32 {
        if n & 1 != 0 {
            p = gf2_mul(ZEROS_POW2[k], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The CRC of a message after the bytes `old` at some position were
/// replaced by `new`, given the old CRC and `factor` =
/// [`crc_zeros_factor`] of the number of bytes after them. CRC-32C is
/// linear: the change is the raw CRC of the difference, carried through
/// the bytes that follow. Costs a few dozen instructions, not a pass over
/// the message, so it can run under the append lock.
pub(crate) fn crc_patch(crc: u32, old: [u8; 4], new: [u8; 4], factor: u32) -> u32 {
    let mut reg = 0u32;
    for i in 0..4 {
        reg ^= u32::from(old[i] ^ new[i]);
        for _ in 0..8 {
            reg = if reg & 1 != 0 {
                (reg >> 1) ^ CRC32C_POLY
            } else {
                reg >> 1
            };
        }
    }
    crc ^ gf2_mul(factor, reg)
}

/// Validates one whole v2 batch at the front of `buf`, in this order:
/// bounds (incomplete or `BadLength`), field ranges, the CRC, the magic
/// (a CRC-valid batch with another magic is `UnsupportedVersion`), the
/// attribute bits (a newer bit is `UnsupportedVersion` too), the codec
/// (gzip, snappy, lz4: `UnsupportedCodec`), the record count.
#[inline]
pub(crate) fn decode_batch(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    let h = fields(buf)?;
    let bytes = &buf[..h.total_len()];
    let (stored, actual) = match h.magic {
        // Kafka's legacy message formats: CRC-32 (IEEE) of the bytes from
        // the magic on, stored just before it.
        0 | 1 => (
            u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
            crc32fast::hash(&bytes[MAGIC_AT..]),
        ),
        _ => (h.crc, crc_of(bytes)),
    };
    if actual != stored {
        return Err(CorruptionKind::CrcMismatch {
            stored,
            computed: actual,
        }
        .into());
    }
    if h.magic != MAGIC || h.attributes & !ATTR_KNOWN != 0 {
        return Err(DecodeError::UnsupportedVersion(h.magic));
    }
    match h.codec() {
        CODEC_NONE | CODEC_ZSTD => {}
        c @ 1..=3 => return Err(DecodeError::UnsupportedCodec(c as u8)),
        _ => return Err(bad("unknown compression codec")),
    }
    if u64::from(h.record_count) > u64::from(h.last_offset_delta) + 1 {
        return Err(bad("record count exceeds the batch's offset range"));
    }
    Ok(h)
}

/// [`decode_batch`] without the CRC: the header of a whole v2 batch at the
/// front of `buf` when every check but the CRC passes (an uncompressed or
/// zstd batch of magic 2 with known attributes and a record count within
/// its offset range), else `None`, for [`decode_batch`] to say what is
/// wrong. A reader that will walk the records anyway checks the CRC after
/// them, while the bytes are in cache ([`verify_crc`]), instead of in a
/// pass of its own that is the bytes' first touch; nothing of the batch
/// may be used before that check passes.
#[inline]
pub(crate) fn decode_batch_unverified(buf: &[u8]) -> Option<BatchHeader> {
    let h = fields(buf).ok()?;
    let known = h.magic == MAGIC
        && h.attributes & !ATTR_KNOWN == 0
        && matches!(h.codec(), CODEC_NONE | CODEC_ZSTD)
        && u64::from(h.record_count) <= u64::from(h.last_offset_delta) + 1;
    known.then_some(h)
}

/// The CRC check [`decode_batch_unverified`] left out, on the batch's
/// bytes (`batch` is exactly the batch).
#[inline]
pub(crate) fn verify_crc(h: &BatchHeader, batch: &[u8]) -> Result<(), CorruptionKind> {
    let computed = crc_of(batch);
    if computed == h.crc {
        Ok(())
    } else {
        Err(CorruptionKind::CrcMismatch {
            stored: h.crc,
            computed,
        })
    }
}

/// An `i32` varint (Kafka's `varint`, zig-zag) from the front of `buf`.
#[inline(always)]
pub(crate) fn get_i32(buf: &[u8]) -> Option<(i32, usize)> {
    let (v, n) = get_varint(buf)?;
    Some((i32::try_from(v).ok()?, n))
}

/// Parses one v2 record body (after its length prefix).
#[inline(always)]
pub(crate) fn parse_body(body: &[u8]) -> Option<RecordView<'_>> {
    let (&attributes, mut p) = (body.first()?, 1usize);
    // Kafka reserves every bit of a record's attributes.
    if attributes != 0 {
        return None;
    }
    let (timestamp_delta, n) = get_varint(body.get(p..)?)?;
    p += n;
    let (offset_delta, n) = get_i32(body.get(p..)?)?;
    let offset_delta = u32::try_from(offset_delta).ok()?;
    p += n;
    let (klen, n) = get_i32(body.get(p..)?)?;
    p += n;
    let (key, n) = super::common::take_bytes(body.get(p..)?, i64::from(klen))?;
    p += n;
    let (vlen, n) = get_i32(body.get(p..)?)?;
    p += n;
    let (value, n) = super::common::take_bytes(body.get(p..)?, i64::from(vlen))?;
    p += n;
    let (count, n) = get_i32(body.get(p..)?)?;
    let count = u32::try_from(count).ok()?;
    p += n;
    let headers = body.get(p..)?;
    let header_count = check_headers(headers, count, Version::V2)?;
    Some(RecordView {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers,
        header_count,
        raw: &[],
    })
}

// ---- control records (transaction markers) --------------------------------

/// The type of a control record, from its key (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlType {
    /// The producer's transaction was aborted.
    Abort,
    /// The producer's transaction was committed.
    Commit,
}

impl ControlType {
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// The current control-record key version.
pub(crate) const CONTROL_KEY_VERSION: i16 = 0;
/// The current end-transaction-marker value version.
pub(crate) const MARKER_VALUE_VERSION: i16 = 0;

/// A control record's key: `(version i16, type i16)`, big-endian.
pub(crate) fn control_key(t: ControlType) -> [u8; 4] {
    let mut k = [0u8; 4];
    k[..2].copy_from_slice(&CONTROL_KEY_VERSION.to_be_bytes());
    k[2..].copy_from_slice(&t.code().to_be_bytes());
    k
}

/// An end-transaction marker's value: `(version i16, coordinator epoch
/// i32)`, big-endian.
pub(crate) fn marker_value(coordinator_epoch: i32) -> [u8; 6] {
    let mut v = [0u8; 6];
    v[..2].copy_from_slice(&MARKER_VALUE_VERSION.to_be_bytes());
    v[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    v
}

/// The type in a control record's key; `None` for a key too short, of an
/// unknown version, or of a type other than abort and commit (Kafka's
/// leader-change and snapshot records, which a partition log never holds).
pub(crate) fn parse_control_key(key: &[u8]) -> Option<ControlType> {
    let version = i16::from_be_bytes([*key.first()?, *key.get(1)?]);
    let code = i16::from_be_bytes([*key.get(2)?, *key.get(3)?]);
    if version != CONTROL_KEY_VERSION {
        return None;
    }
    match code {
        0 => Some(ControlType::Abort),
        1 => Some(ControlType::Commit),
        _ => None,
    }
}

/// An end-transaction marker's coordinator epoch; `None` if malformed.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn parse_marker_value(value: &[u8]) -> Option<i32> {
    if value.len() < 6 || i16::from_be_bytes([value[0], value[1]]) < 0 {
        return None;
    }
    Some(i32::from_be_bytes([value[2], value[3], value[4], value[5]]))
}
