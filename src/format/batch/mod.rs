//! The batch: the unit of append, CRC and compression.
//!
//! Two layouts exist on disk (FORMAT.md §3):
//! - **v2**, written by this build: Kafka's `DefaultRecordBatch` with magic
//!   2, byte for byte ([`v2`]);
//! - **v1**, streamlog's own first layout, still read ([`v1`]).
//!
//! A reader tells them apart from the batch's first bytes alone: a v1 batch
//! has the magic `"SL"` at bytes 8..10, where a v2 batch has the high half
//! of its big-endian batch length, which can never be `0x534C` (that length
//! is over the 1 GiB bound). Everything above this module sees one
//! [`BatchHeader`] and one record iterator for both.
//!
//! Pure encode and decode with no I/O, so that fuzzing and miri can reach
//! it. FORMAT.md is the prose version of this module and the tests pin its
//! examples byte for byte.

use std::borrow::Cow;

use super::varint::{get_uvarint, get_varint};
use crate::error::CorruptionKind;

mod encode;
pub(crate) mod v1;
pub(crate) mod v2;

#[cfg(test)]
mod tests;

pub(crate) use encode::encode_record_body;
#[cfg(any(test, feature = "internals"))]
pub(crate) use encode::{encode_record, EncodeHeader};
pub(crate) use encode::{record_body_len, EncodeRecord, EncodedBatch};

/// Upper bound on one batch's encoded size (and on its decompressed records
/// section). Keeps every position inside a segment representable.
pub(crate) const MAX_BATCH_BYTES: usize = (1 << 30) - 1;

// ---- attribute bits (the same in both layouts: Kafka's) ---------------------
pub(crate) const CODEC_MASK: u16 = 0b111;
pub(crate) const CODEC_NONE: u16 = 0;
pub(crate) const CODEC_ZSTD: u16 = 4;
pub(crate) const ATTR_LOG_APPEND_TIME: u16 = 1 << 3;
pub(crate) const ATTR_TRANSACTIONAL: u16 = 1 << 4;
pub(crate) const ATTR_CONTROL: u16 = 1 << 5;
/// v2 only: the base timestamp is the delete horizon set by Kafka's
/// cleaner. Read and kept; never written by streamlog.
pub(crate) const ATTR_DELETE_HORIZON: u16 = 1 << 6;

/// The longer of the two fixed headers: reading this many bytes is enough
/// to see any batch's header.
pub(crate) const MAX_HEADER_LEN: usize = v1::HEADER_LEN;

/// Producer id written when no idempotent producer is involved.
pub(crate) const NO_PRODUCER_ID: i64 = -1;
pub(crate) const NO_PRODUCER_EPOCH: i16 = -1;
pub(crate) const NO_SEQUENCE: i32 = -1;

/// The two batch layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Version {
    /// streamlog's own first layout: little-endian, CRC-32, `"SL"` magic.
    V1,
    /// Kafka's record batch, magic 2: big-endian, CRC-32C.
    V2,
}

/// The layout of the batch at the front of `buf`, from its first bytes.
/// Anything that is not a v1 batch is decoded (and rejected) as v2.
#[inline]
pub(crate) fn version_of(buf: &[u8]) -> Version {
    if buf.get(v1::MAGIC_AT..v1::MAGIC_AT + 2) == Some(&v1::MAGIC_BYTES[..]) {
        Version::V1
    } else {
        Version::V2
    }
}

/// The decoded fixed header of one batch, of either layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    /// Which layout the batch uses.
    pub version: Version,
    /// The stored length field (v1: bytes after it; v2: bytes after it,
    /// which starts at byte 12).
    pub length: u32,
    pub crc: u32,
    /// v1: the version byte (1); v2: the magic byte (2).
    pub magic: u8,
    pub base_offset: u64,
    /// v2's partition leader epoch (streamlog writes 0); −1 for v1.
    pub leader_epoch: i32,
    pub attributes: u16,
    pub last_offset_delta: u32,
    pub record_count: u32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchHeader {
    /// The whole batch's size on disk.
    #[inline]
    pub fn total_len(&self) -> usize {
        match self.version {
            Version::V1 => self.length as usize + v1::CRC_AT,
            Version::V2 => self.length as usize + v2::LENGTH_OVERHEAD,
        }
    }
    /// Where the records section starts.
    #[inline]
    pub fn header_len(&self) -> usize {
        match self.version {
            Version::V1 => v1::HEADER_LEN,
            Version::V2 => v2::HEADER_LEN,
        }
    }
    /// The offset of the batch's last record (kept even when compaction
    /// removes that record).
    #[inline]
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }
    /// The offset after this batch.
    #[inline]
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }
    #[inline]
    pub fn codec(&self) -> u16 {
        self.attributes & CODEC_MASK
    }
    /// Whether this is a control batch (a transaction marker): its records
    /// are never handed to applications.
    #[inline]
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    /// Whether the batch belongs to a transaction.
    #[inline]
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
}

/// Why a byte string is not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The buffer ends before the batch does: `needed` bytes in all. At the
    /// end of the last segment this is a torn write.
    Incomplete { needed: usize },
    /// The bytes are not a batch of any version.
    Corrupt(CorruptionKind),
    /// A batch with a valid CRC whose version (v1's version byte, v2's
    /// magic) or attribute bits this build does not know: written by a
    /// newer writer, never cut off as damage.
    UnsupportedVersion(u8),
    /// A valid batch compressed with a codec this build cannot decompress
    /// (Kafka's numbering: 1 gzip, 2 snappy, 3 lz4).
    UnsupportedCodec(u8),
}

/// The highest batch version this build reads.
pub(crate) const NEWEST_VERSION: u8 = v2::MAGIC;

/// Kafka's name of a compression codec number.
pub(crate) fn codec_name(codec: u8) -> &'static str {
    match codec {
        0 => "none",
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => "an unknown codec",
    }
}

impl DecodeError {
    /// The public error for a batch at `position` of `path` (holding
    /// `offset`, if known) that failed to decode; `available` is how many
    /// bytes the file had from `position` on.
    pub(crate) fn into_error(
        self,
        path: &std::path::Path,
        position: u64,
        offset: Option<u64>,
        available: u64,
    ) -> crate::Error {
        let path = path.to_owned();
        match self {
            DecodeError::UnsupportedVersion(v) => crate::Error::UnsupportedVersion {
                path,
                position,
                found: u32::from(v),
                supported: u32::from(NEWEST_VERSION),
            },
            DecodeError::UnsupportedCodec(c) => crate::Error::UnsupportedCompression {
                path,
                position,
                codec: codec_name(c),
            },
            DecodeError::Corrupt(kind) => crate::Error::corrupted(path, position, offset, kind),
            DecodeError::Incomplete { needed } => crate::Error::corrupted(
                path,
                position,
                offset,
                CorruptionKind::Truncated {
                    needed: needed as u64,
                    available,
                },
            ),
        }
    }
}

impl From<CorruptionKind> for DecodeError {
    fn from(k: CorruptionKind) -> Self {
        DecodeError::Corrupt(k)
    }
}

pub(crate) fn bad(reason: &'static str) -> DecodeError {
    DecodeError::Corrupt(CorruptionKind::BadRecord { reason })
}

/// Reads the fields needed to walk a segment: bounds and magic only, no CRC.
/// Used by index rebuilds and lookups; every read of record data goes
/// through [`decode_batch`] instead.
#[inline]
pub(crate) fn peek_header(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    match version_of(buf) {
        Version::V1 => v1::peek_header(buf),
        Version::V2 => v2::peek_header(buf),
    }
}

/// The base offset a batch header at the front of `buf` claims, if the
/// bytes look like a header of either layout (long enough, the magic in
/// place), without needing the rest of the batch or checking anything else.
pub(crate) fn claimed_base_offset(buf: &[u8]) -> Option<u64> {
    match version_of(buf) {
        Version::V1 => v1::claimed_base_offset(buf),
        Version::V2 => v2::claimed_base_offset(buf),
    }
}

/// Validates one whole batch at the front of `buf`: bounds, magic, CRC,
/// version and the header's own invariants. On success the batch occupies
/// `buf[..header.total_len()]`.
#[inline]
pub(crate) fn decode_batch(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    match version_of(buf) {
        Version::V1 => v1::decode_batch(buf),
        Version::V2 => v2::decode_batch(buf),
    }
}

/// The records section of a validated batch, decompressed when needed.
/// Borrowed when the batch is uncompressed.
pub(crate) fn records_section<'a>(
    h: &BatchHeader,
    batch: &'a [u8],
) -> Result<Cow<'a, [u8]>, CorruptionKind> {
    let raw = &batch[h.header_len()..h.total_len()];
    match h.codec() {
        CODEC_ZSTD => decompress(raw, MAX_BATCH_BYTES).map(Cow::Owned),
        _ => Ok(Cow::Borrowed(raw)),
    }
}

/// Decompresses one zstd frame of at most `limit` bytes of output. The
/// frame's declared content size, when it has one (streamlog's writer and
/// librdkafka declare it; Java's streaming compressor does not), must be
/// within the limit and must match the output exactly.
pub(crate) fn decompress(raw: &[u8], limit: usize) -> Result<Vec<u8>, CorruptionKind> {
    use std::io::Read;
    let bad = |reason| CorruptionKind::BadCompression { reason };
    let declared = match zstd::zstd_safe::get_frame_content_size(raw) {
        Ok(Some(n)) if n <= limit as u64 => Some(n as usize),
        Ok(Some(_)) => return Err(bad("zstd frame declares more than the size limit")),
        Ok(None) => None,
        Err(_) => return Err(bad("not a zstd frame")),
    };
    // Stream rather than trust a declared size with one allocation: the
    // buffer only grows as fast as real output arrives, and never past the
    // limit.
    let mut dec = zstd::stream::read::Decoder::with_buffer(raw)
        .map_err(|_| bad("zstd frame failed to decompress"))?
        .single_frame();
    let mut out = Vec::with_capacity(declared.unwrap_or(0).min(1 << 20));
    (&mut dec)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| bad("zstd frame failed to decompress"))?;
    if out.len() > limit {
        return Err(bad("zstd frame decompresses past the size limit"));
    }
    if declared.is_some_and(|n| n != out.len()) {
        return Err(bad("zstd frame decompressed to the wrong length"));
    }
    Ok(out)
}

/// One record inside a records section, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordView<'a> {
    pub offset_delta: u32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The encoded headers, starting after the header count.
    pub headers: &'a [u8],
    /// The header count, packed with the layout (see [`HeaderIter::packed`]).
    pub header_count: u32,
    /// The whole encoded record, length prefix included. Relative to the
    /// batch's base offset and timestamp, so it can be copied verbatim into
    /// a batch of the same layout with the same base (compaction does).
    pub raw: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// An iterator over the record's headers.
    pub fn header_iter(&self) -> HeaderIter<'a> {
        HeaderIter::unpack(self.headers, self.header_count)
    }
}

/// Iterates the records of a section, validating every length, that offset
/// deltas strictly increase and stay within `last_offset_delta`, and that the
/// count matches the header. Yields an error once and then stops.
pub(crate) struct RecordIter<'a> {
    buf: &'a [u8],
    remaining: u32,
    last_delta: Option<u32>,
    max_delta: u32,
    version: Version,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    pub fn new(h: &BatchHeader, section: &'a [u8]) -> Self {
        RecordIter {
            buf: section,
            remaining: h.record_count,
            last_delta: None,
            max_delta: h.last_offset_delta,
            version: h.version,
            failed: false,
        }
    }

    fn bad(&mut self, reason: &'static str) -> Option<Result<RecordView<'a>, CorruptionKind>> {
        self.failed = true;
        Some(Err(CorruptionKind::BadRecord { reason }))
    }
}

/// A length-prefixed byte string: −1 is null.
fn take_bytes(buf: &[u8], len: i64) -> Option<(Option<&[u8]>, usize)> {
    if len == -1 {
        return Some((None, 0));
    }
    let len = usize::try_from(len).ok()?;
    buf.get(..len).map(|b| (Some(b), len))
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, CorruptionKind>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if !self.buf.is_empty() {
                return self.bad("bytes after the last record");
            }
            return None;
        }
        self.remaining -= 1;
        let len = match self.version {
            Version::V1 => get_uvarint(self.buf),
            Version::V2 => {
                get_varint(self.buf).and_then(|(l, n)| Some((u64::try_from(l).ok()?, n)))
            }
        };
        let Some((body_len, n)) = len else {
            return self.bad("record length varint");
        };
        let Some(body) = usize::try_from(body_len)
            .ok()
            .and_then(|l| self.buf.get(n..n.checked_add(l)?))
        else {
            return self.bad("record length exceeds the batch");
        };
        let raw = self.buf.get(..n + body.len()).unwrap_or_default();
        let rest = self.buf.get(n + body.len()..).unwrap_or_default();
        let parsed = match self.version {
            Version::V1 => v1::parse_body(body),
            Version::V2 => v2::parse_body(body),
        };
        match parsed {
            Some(mut v) => {
                v.raw = raw;
                if let Some(prev) = self.last_delta {
                    if v.offset_delta <= prev {
                        return self.bad("offset deltas do not increase");
                    }
                }
                if v.offset_delta > self.max_delta {
                    return self.bad("offset delta beyond the batch's last offset");
                }
                self.last_delta = Some(v.offset_delta);
                self.buf = rest;
                Some(Ok(v))
            }
            None => self.bad("malformed record body"),
        }
    }
}

/// Walks `count` encoded headers once, so that a malformed one is caught
/// when its record is decoded and the public iterator over them can never
/// fail. Returns the packed count on success.
pub(crate) fn check_headers(buf: &[u8], count: u32, version: Version) -> Option<u32> {
    // Counts are bounded by the bytes they take (at least 2 per header),
    // so the layout bit above them is free.
    if count > HEADER_COUNT_MASK {
        return None;
    }
    let packed = HeaderIter::packed(count, version);
    let mut h = HeaderIter::unpack(buf, packed);
    for _ in 0..count {
        h.next_checked()?;
    }
    h.buf.is_empty().then_some(packed)
}

const HEADER_V1_BIT: u32 = 1 << 31;
const HEADER_COUNT_MASK: u32 = HEADER_V1_BIT - 1;

/// Iterates encoded headers. v1: `(uvarint name len, UTF-8 name, uvarint
/// value len, value)`; v2: the same with zig-zag varints and a value length
/// of −1 for a null value.
#[derive(Debug, Clone)]
pub(crate) struct HeaderIter<'a> {
    buf: &'a [u8],
    remaining: u32,
    version: Version,
}

impl<'a> HeaderIter<'a> {
    /// A header count and its layout in one `u32` (the count never needs
    /// the top bit), as records keep it.
    #[inline]
    pub fn packed(count: u32, version: Version) -> u32 {
        match version {
            Version::V1 => count | HEADER_V1_BIT,
            Version::V2 => count,
        }
    }

    /// Iterates the headers of `buf`, given the packed count.
    #[inline]
    pub fn unpack(buf: &'a [u8], packed: u32) -> Self {
        HeaderIter {
            buf,
            remaining: packed & HEADER_COUNT_MASK,
            version: if packed & HEADER_V1_BIT != 0 {
                Version::V1
            } else {
                Version::V2
            },
        }
    }

    /// The next header as `(name, value)`, `None` for a null value.
    /// `None` at the end or at a malformed header.
    pub fn next_checked(&mut self) -> Option<(&'a str, Option<&'a [u8]>)> {
        if self.remaining == 0 {
            return None;
        }
        let (klen, n) = match self.version {
            Version::V1 => get_uvarint(self.buf)?,
            Version::V2 => {
                let (l, n) = get_varint(self.buf)?;
                (u64::try_from(l).ok()?, n)
            }
        };
        let rest = self.buf.get(n..)?;
        let key = rest.get(..usize::try_from(klen).ok()?)?;
        let key = std::str::from_utf8(key).ok()?;
        let rest = rest.get(key.len()..)?;
        let (value, rest) = match self.version {
            Version::V1 => {
                let (vlen, n) = get_uvarint(rest)?;
                let rest = rest.get(n..)?;
                let value = rest.get(..usize::try_from(vlen).ok()?)?;
                (Some(value), rest.get(value.len()..)?)
            }
            Version::V2 => {
                let (vlen, n) = get_varint(rest)?;
                if vlen > i64::from(i32::MAX) {
                    return None;
                }
                let rest = rest.get(n..)?;
                let (value, used) = take_bytes(rest, vlen)?;
                (value, rest.get(used..)?)
            }
        };
        self.buf = rest;
        self.remaining -= 1;
        Some((key, value))
    }
}
