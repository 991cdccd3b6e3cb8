//! What both batch layouts share: the decoded header, the errors, the
//! attribute bits, and records and headers as views into a section. The
//! layouts (`v1`, `v2`) and the writer (`encode`) build on this; nothing
//! here knows either layout's byte positions beyond the few constants that
//! tell them apart.

use crate::error::CorruptionKind;
use crate::format::varint::{get_uvarint, get_varint};

/// v1: where the magic sits, and what it is.
pub(crate) const V1_MAGIC_AT: usize = 8;
pub(crate) const V1_MAGIC: [u8; 2] = *b"SL";
/// v1: the fixed header's size, and the bytes before the length field's
/// count starts.
pub(crate) const V1_HEADER_LEN: usize = 64;
pub(crate) const V1_LENGTH_OVERHEAD: usize = 4;
/// v2 (Kafka's `RECORD_BATCH_OVERHEAD` and `LOG_OVERHEAD`).
pub(crate) const V2_HEADER_LEN: usize = 61;
pub(crate) const V2_LENGTH_OVERHEAD: usize = 12;

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
pub(crate) const MAX_HEADER_LEN: usize = V1_HEADER_LEN;

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
    if buf.get(V1_MAGIC_AT..V1_MAGIC_AT + 2) == Some(&V1_MAGIC[..]) {
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
            Version::V1 => self.length as usize + V1_LENGTH_OVERHEAD,
            Version::V2 => self.length as usize + V2_LENGTH_OVERHEAD,
        }
    }
    /// Where the records section starts.
    #[inline]
    pub fn header_len(&self) -> usize {
        match self.version {
            Version::V1 => V1_HEADER_LEN,
            Version::V2 => V2_HEADER_LEN,
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
pub(crate) const NEWEST_VERSION: u8 = 2;

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

/// A length-prefixed byte string: −1 is null.
#[inline]
pub(crate) fn take_bytes(buf: &[u8], len: i64) -> Option<(Option<&[u8]>, usize)> {
    if len == -1 {
        return Some((None, 0));
    }
    let len = usize::try_from(len).ok()?;
    buf.get(..len).map(|b| (Some(b), len))
}

/// Walks `count` encoded headers once, so that a malformed one is caught
/// when its record is decoded and the public iterator over them can never
/// fail. Returns the packed count on success.
#[inline(always)]
pub(crate) fn check_headers(buf: &[u8], count: u32, version: Version) -> Option<u32> {
    if count == 0 {
        return buf.is_empty().then_some(HeaderIter::packed(0, version));
    }
    check_some_headers(buf, count, version)
}

#[inline(never)]
fn check_some_headers(buf: &[u8], count: u32, version: Version) -> Option<u32> {
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
    #[inline]
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
