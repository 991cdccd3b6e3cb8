//! streamlog's first batch layout (FORMAT.md §3.4): little-endian, CRC-32
//! (IEEE) over everything from the magic on, unsigned varints in three
//! record fields. Read forever; written only by tests and tools that need
//! v1 data (fixtures, fuzz seeds).

use super::common::{
    bad, check_headers, BatchHeader, DecodeError, RecordView, Version, CODEC_MASK, CODEC_NONE,
    CODEC_ZSTD, MAX_BATCH_BYTES, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use crate::error::CorruptionKind;
use crate::format::varint::{get_uvarint, get_varint};

// ---- header layout (little-endian) ----------------------------------------
pub(crate) const LENGTH_AT: usize = 0;
pub(crate) const CRC_AT: usize = LENGTH_AT + 4;
pub(crate) const MAGIC_AT: usize = CRC_AT + 4;
const _: () = assert!(MAGIC_AT == super::common::V1_MAGIC_AT);
pub(crate) const VERSION_AT: usize = MAGIC_AT + 2;
pub(crate) const FLAGS_AT: usize = VERSION_AT + 1;
pub(crate) const BASE_OFFSET_AT: usize = FLAGS_AT + 1;
pub(crate) const ATTRIBUTES_AT: usize = BASE_OFFSET_AT + 8;
pub(crate) const RESERVED_AT: usize = ATTRIBUTES_AT + 2;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = RESERVED_AT + 2;
pub(crate) const RECORD_COUNT_AT: usize = LAST_OFFSET_DELTA_AT + 4;
pub(crate) const BASE_TIMESTAMP_AT: usize = RECORD_COUNT_AT + 4;
pub(crate) const MAX_TIMESTAMP_AT: usize = BASE_TIMESTAMP_AT + 8;
pub(crate) const PRODUCER_ID_AT: usize = MAX_TIMESTAMP_AT + 8;
pub(crate) const PRODUCER_EPOCH_AT: usize = PRODUCER_ID_AT + 8;
pub(crate) const RESERVED2_AT: usize = PRODUCER_EPOCH_AT + 2;
pub(crate) const BASE_SEQUENCE_AT: usize = RESERVED2_AT + 2;
/// Size of the fixed batch header; the records section follows it.
pub(crate) const HEADER_LEN: usize = BASE_SEQUENCE_AT + 4;
const _: () = assert!(HEADER_LEN == super::common::V1_HEADER_LEN);
const _: () = assert!(CRC_AT == super::common::V1_LENGTH_OVERHEAD);
/// The CRC covers every byte from here to the end of the batch.
pub(crate) const CRC_FROM: usize = MAGIC_AT;

/// The magic bytes.
pub(crate) const MAGIC_BYTES: [u8; 2] = super::common::V1_MAGIC;
/// The version byte of v1 batches.
pub(crate) const VERSION: u8 = 1;

const ATTR_KNOWN: u16 = CODEC_MASK
    | super::common::ATTR_LOG_APPEND_TIME
    | super::common::ATTR_TRANSACTIONAL
    | super::common::ATTR_CONTROL;

#[inline]
fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}
#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
#[inline]
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Bounds and magic of the v1 header at the front of `buf`; no CRC.
#[inline]
pub(crate) fn peek_header(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    let h = peek_fixed_header(buf)?;
    if buf.len() < h.total_len() {
        return Err(DecodeError::Incomplete {
            needed: h.total_len(),
        });
    }
    Ok(h)
}

/// [`peek_header`] of a buffer that need only hold the fixed header (64
/// bytes), not the whole batch.
#[inline]
pub(crate) fn peek_fixed_header(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Incomplete { needed: HEADER_LEN });
    }
    let length = u32_at(buf, LENGTH_AT);
    let total = length as usize + CRC_AT;
    if !(HEADER_LEN..=MAX_BATCH_BYTES).contains(&total) {
        return Err(CorruptionKind::BadLength { length }.into());
    }
    let magic = u16_at(buf, MAGIC_AT);
    if magic != u16::from_le_bytes(MAGIC_BYTES) {
        return Err(CorruptionKind::BadMagic { found: magic }.into());
    }
    let h = BatchHeader {
        version: Version::V1,
        length,
        crc: u32_at(buf, CRC_AT),
        magic: buf[VERSION_AT],
        base_offset: u64_at(buf, BASE_OFFSET_AT),
        leader_epoch: -1,
        attributes: u16_at(buf, ATTRIBUTES_AT),
        last_offset_delta: u32_at(buf, LAST_OFFSET_DELTA_AT),
        record_count: u32_at(buf, RECORD_COUNT_AT),
        base_timestamp: u64_at(buf, BASE_TIMESTAMP_AT) as i64,
        max_timestamp: u64_at(buf, MAX_TIMESTAMP_AT) as i64,
        producer_id: u64_at(buf, PRODUCER_ID_AT) as i64,
        producer_epoch: u16_at(buf, PRODUCER_EPOCH_AT) as i16,
        base_sequence: u32_at(buf, BASE_SEQUENCE_AT) as i32,
    };
    // Checked here so that `next_offset()` can never overflow for any
    // header, even one whose CRC has not been verified yet.
    if h.base_offset
        .checked_add(u64::from(h.last_offset_delta) + 1)
        .is_none()
    {
        return Err(bad("offset range overflows u64"));
    }
    Ok(h)
}

/// The base offset a v1 header claims (see `batch::claimed_base_offset`).
pub(crate) fn claimed_base_offset(buf: &[u8]) -> Option<u64> {
    (buf.len() >= HEADER_LEN).then(|| u64_at(buf, BASE_OFFSET_AT))
}

/// Validates one whole v1 batch at the front of `buf`.
#[inline]
pub(crate) fn decode_batch(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    let h = peek_header(buf)?;
    let bytes = &buf[..h.total_len()];
    let actual = crc32fast::hash(&bytes[CRC_FROM..]);
    if actual != h.crc {
        return Err(CorruptionKind::CrcMismatch {
            stored: h.crc,
            computed: actual,
        }
        .into());
    }
    if h.magic != VERSION {
        return Err(DecodeError::UnsupportedVersion(h.magic));
    }
    if bytes[FLAGS_AT] != 0
        || u16_at(bytes, RESERVED_AT) != 0
        || u16_at(bytes, RESERVED2_AT) != 0
        || h.attributes & !ATTR_KNOWN != 0
    {
        return Err(bad("reserved header bits are set"));
    }
    // Version 1 reserves the producer fields for idempotent producers and
    // always writes -1 there; anything else is not a v1 batch.
    if h.producer_id != NO_PRODUCER_ID
        || h.producer_epoch != NO_PRODUCER_EPOCH
        || h.base_sequence != NO_SEQUENCE
    {
        return Err(bad("reserved producer fields are set"));
    }
    match h.codec() {
        CODEC_NONE | CODEC_ZSTD => {}
        _ => return Err(bad("unknown compression codec")),
    }
    if u64::from(h.record_count) > u64::from(h.last_offset_delta) + 1 {
        return Err(bad("record count exceeds the batch's offset range"));
    }
    Ok(h)
}

/// Parses one v1 record body (after its length prefix).
#[inline]
pub(crate) fn parse_body(body: &[u8]) -> Option<RecordView<'_>> {
    let (&attributes, mut p) = (body.first()?, 1usize);
    if attributes != 0 {
        return None;
    }
    let (timestamp_delta, n) = get_varint(body.get(p..)?)?;
    p += n;
    let (offset_delta, n) = get_uvarint(body.get(p..)?)?;
    let offset_delta = u32::try_from(offset_delta).ok()?;
    p += n;
    let (klen, n) = get_varint(body.get(p..)?)?;
    p += n;
    let (key, n) = super::common::take_bytes(body.get(p..)?, klen)?;
    p += n;
    let (vlen, n) = get_varint(body.get(p..)?)?;
    p += n;
    let (value, n) = super::common::take_bytes(body.get(p..)?, vlen)?;
    p += n;
    let (count, n) = get_uvarint(body.get(p..)?)?;
    let count = u32::try_from(count).ok()?;
    p += n;
    let headers = body.get(p..)?;
    let header_count = check_headers(headers, count, Version::V1)?;
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

/// Encodes a v1 batch, for tests and tools that need v1 data: the encoder
/// the first streamlog shipped, kept byte for byte (FORMAT.md §3.4). The
/// base timestamp is the first record's, the last offset delta the last
/// record's.
#[cfg(test)]
pub(crate) fn encode_batch(
    records: &[super::encode::EncodeRecord<'_>],
    base_offset: u64,
    zstd_level: Option<i32>,
) -> std::io::Result<Vec<u8>> {
    let base_ts = records.first().map_or(0, |r| r.timestamp);
    let max_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(base_ts);
    let last = records.last().map_or(0, |r| r.offset_delta);
    let codec = if zstd_level.is_some() {
        CODEC_ZSTD
    } else {
        CODEC_NONE
    };
    encode_batch_with(
        records,
        base_offset,
        zstd_level,
        codec,
        base_ts,
        max_ts,
        last,
    )
}

/// [`encode_batch`] with every header field given.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn encode_batch_with(
    records: &[super::encode::EncodeRecord<'_>],
    base_offset: u64,
    zstd_level: Option<i32>,
    attributes: u16,
    base_ts: i64,
    max_ts: i64,
    last_offset_delta: u32,
) -> std::io::Result<Vec<u8>> {
    use crate::format::varint::{put_uvarint, put_varint};
    let mut section = Vec::new();
    for r in records {
        let mut body = vec![0u8];
        put_varint(&mut body, r.timestamp.wrapping_sub(base_ts));
        put_uvarint(&mut body, u64::from(r.offset_delta));
        for part in [r.key, r.value] {
            put_varint(&mut body, part.map_or(-1, |b| b.len() as i64));
            body.extend_from_slice(part.unwrap_or_default());
        }
        put_uvarint(&mut body, r.headers.len() as u64);
        for (k, v) in r.headers {
            let v: &[u8] = v.as_deref().unwrap_or_default();
            put_uvarint(&mut body, k.len() as u64);
            body.extend_from_slice(k.as_bytes());
            put_uvarint(&mut body, v.len() as u64);
            body.extend_from_slice(v);
        }
        put_uvarint(&mut section, body.len() as u64);
        section.extend_from_slice(&body);
    }
    let payload = match zstd_level {
        Some(l) => zstd::bulk::compress(&section, l)?,
        None => section,
    };
    let total = HEADER_LEN + payload.len();
    let mut out = vec![0u8; HEADER_LEN];
    out.extend_from_slice(&payload);
    out[LENGTH_AT..CRC_AT].copy_from_slice(&((total - CRC_AT) as u32).to_le_bytes());
    out[MAGIC_AT..VERSION_AT].copy_from_slice(&MAGIC_BYTES);
    out[VERSION_AT] = VERSION;
    out[BASE_OFFSET_AT..ATTRIBUTES_AT].copy_from_slice(&base_offset.to_le_bytes());
    out[ATTRIBUTES_AT..RESERVED_AT].copy_from_slice(&attributes.to_le_bytes());
    out[LAST_OFFSET_DELTA_AT..RECORD_COUNT_AT].copy_from_slice(&last_offset_delta.to_le_bytes());
    out[RECORD_COUNT_AT..BASE_TIMESTAMP_AT].copy_from_slice(&(records.len() as u32).to_le_bytes());
    out[BASE_TIMESTAMP_AT..MAX_TIMESTAMP_AT].copy_from_slice(&base_ts.to_le_bytes());
    out[MAX_TIMESTAMP_AT..PRODUCER_ID_AT].copy_from_slice(&max_ts.to_le_bytes());
    out[PRODUCER_ID_AT..PRODUCER_EPOCH_AT].copy_from_slice(&NO_PRODUCER_ID.to_le_bytes());
    out[PRODUCER_EPOCH_AT..RESERVED2_AT].copy_from_slice(&NO_PRODUCER_EPOCH.to_le_bytes());
    out[BASE_SEQUENCE_AT..HEADER_LEN].copy_from_slice(&NO_SEQUENCE.to_le_bytes());
    let crc = crc32fast::hash(&out[CRC_FROM..]);
    out[CRC_AT..MAGIC_AT].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}
