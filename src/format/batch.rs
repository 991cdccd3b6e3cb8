//! The batch: the unit of append, CRC and compression.
//!
//! Pure encode and decode with no I/O, so that fuzzing and miri can reach it.
//! Byte positions are constants chained from field sizes; FORMAT.md is the
//! prose version of this file and `tests::pins_exact_bytes` keeps the two
//! from drifting apart.

use std::borrow::Cow;
use std::cell::Cell;

use super::varint::{get_uvarint, get_varint, uvarint_len, varint_len, SliceWriter};
use crate::error::CorruptionKind;

// ---- header layout (little-endian) ----------------------------------------
pub(crate) const LENGTH_AT: usize = 0;
pub(crate) const CRC_AT: usize = LENGTH_AT + 4;
pub(crate) const MAGIC_AT: usize = CRC_AT + 4;
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
/// The CRC covers every byte from here to the end of the batch.
pub(crate) const CRC_FROM: usize = MAGIC_AT;

/// `b"SL"` read as a little-endian u16.
pub(crate) const MAGIC: u16 = u16::from_le_bytes(*b"SL");
/// The batch format version this build writes and reads.
pub(crate) const VERSION: u8 = 1;
/// Upper bound on one batch's encoded size (and on its decompressed records
/// section). Keeps every position inside a segment representable as `u32`.
pub(crate) const MAX_BATCH_BYTES: usize = (1 << 30) - 1;

// ---- attribute bits ---------------------------------------------------------
pub(crate) const CODEC_MASK: u16 = 0b111;
pub(crate) const CODEC_NONE: u16 = 0;
pub(crate) const CODEC_ZSTD: u16 = 4;
pub(crate) const ATTR_LOG_APPEND_TIME: u16 = 1 << 3;
pub(crate) const ATTR_TRANSACTIONAL: u16 = 1 << 4;
pub(crate) const ATTR_CONTROL: u16 = 1 << 5;
const ATTR_KNOWN: u16 = CODEC_MASK | ATTR_LOG_APPEND_TIME | ATTR_TRANSACTIONAL | ATTR_CONTROL;

/// Producer id written when no idempotent producer is involved.
pub(crate) const NO_PRODUCER_ID: i64 = -1;
pub(crate) const NO_PRODUCER_EPOCH: i16 = -1;
pub(crate) const NO_SEQUENCE: i32 = -1;

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

/// The decoded fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    /// Bytes that follow the length field.
    pub length: u32,
    pub crc: u32,
    pub version: u8,
    pub base_offset: u64,
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
        self.length as usize + CRC_AT
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

    /// Writes the header into the first `HEADER_LEN` bytes of `out`,
    /// including `self.crc` as given.
    pub fn write_to(&self, out: &mut [u8; HEADER_LEN]) {
        out[LENGTH_AT..CRC_AT].copy_from_slice(&self.length.to_le_bytes());
        out[CRC_AT..MAGIC_AT].copy_from_slice(&self.crc.to_le_bytes());
        out[MAGIC_AT..VERSION_AT].copy_from_slice(&MAGIC.to_le_bytes());
        out[VERSION_AT] = self.version;
        out[FLAGS_AT] = 0;
        out[BASE_OFFSET_AT..ATTRIBUTES_AT].copy_from_slice(&self.base_offset.to_le_bytes());
        out[ATTRIBUTES_AT..RESERVED_AT].copy_from_slice(&self.attributes.to_le_bytes());
        out[RESERVED_AT..LAST_OFFSET_DELTA_AT].copy_from_slice(&0u16.to_le_bytes());
        out[LAST_OFFSET_DELTA_AT..RECORD_COUNT_AT]
            .copy_from_slice(&self.last_offset_delta.to_le_bytes());
        out[RECORD_COUNT_AT..BASE_TIMESTAMP_AT].copy_from_slice(&self.record_count.to_le_bytes());
        out[BASE_TIMESTAMP_AT..MAX_TIMESTAMP_AT]
            .copy_from_slice(&self.base_timestamp.to_le_bytes());
        out[MAX_TIMESTAMP_AT..PRODUCER_ID_AT].copy_from_slice(&self.max_timestamp.to_le_bytes());
        out[PRODUCER_ID_AT..PRODUCER_EPOCH_AT].copy_from_slice(&self.producer_id.to_le_bytes());
        out[PRODUCER_EPOCH_AT..RESERVED2_AT].copy_from_slice(&self.producer_epoch.to_le_bytes());
        out[RESERVED2_AT..BASE_SEQUENCE_AT].copy_from_slice(&0u16.to_le_bytes());
        out[BASE_SEQUENCE_AT..HEADER_LEN].copy_from_slice(&self.base_sequence.to_le_bytes());
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
    /// A batch with a valid CRC whose version this build does not know.
    UnsupportedVersion(u8),
}

impl From<CorruptionKind> for DecodeError {
    fn from(k: CorruptionKind) -> Self {
        DecodeError::Corrupt(k)
    }
}

/// Reads the fields needed to walk a segment: bounds and magic only, no CRC.
/// Used by index rebuilds; every read of record data goes through
/// [`decode_batch`] instead.
pub(crate) fn peek_header(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Incomplete { needed: HEADER_LEN });
    }
    let length = u32_at(buf, LENGTH_AT);
    let total = length as usize + CRC_AT;
    if !(HEADER_LEN..=MAX_BATCH_BYTES).contains(&total) {
        return Err(CorruptionKind::BadLength { length }.into());
    }
    let magic = u16_at(buf, MAGIC_AT);
    if magic != MAGIC {
        return Err(CorruptionKind::BadMagic { found: magic }.into());
    }
    let h = BatchHeader {
        length,
        crc: u32_at(buf, CRC_AT),
        version: buf[VERSION_AT],
        base_offset: u64_at(buf, BASE_OFFSET_AT),
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
        return Err(CorruptionKind::BadRecord {
            reason: "offset range overflows u64",
        }
        .into());
    }
    if buf.len() < total {
        return Err(DecodeError::Incomplete { needed: total });
    }
    Ok(h)
}

/// The base offset a batch header at the front of `buf` claims, if the
/// bytes look like a header (long enough, the magic in place), without
/// needing the rest of the batch or checking anything else.
pub(crate) fn claimed_base_offset(buf: &[u8]) -> Option<u64> {
    (buf.len() >= HEADER_LEN && u16_at(buf, MAGIC_AT) == MAGIC).then(|| u64_at(buf, BASE_OFFSET_AT))
}

/// Validates one whole batch at the front of `buf`: bounds, magic, CRC,
/// version and the header's own invariants. On success the batch occupies
/// `buf[..header.total_len()]`.
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
    if h.version != VERSION {
        return Err(DecodeError::UnsupportedVersion(h.version));
    }
    if bytes[FLAGS_AT] != 0
        || u16_at(bytes, RESERVED_AT) != 0
        || u16_at(bytes, RESERVED2_AT) != 0
        || h.attributes & !ATTR_KNOWN != 0
    {
        return Err(CorruptionKind::BadRecord {
            reason: "reserved header bits are set",
        }
        .into());
    }
    // Version 1 reserves the producer fields for idempotent producers and
    // always writes -1 there; anything else is not a v1 batch.
    if h.producer_id != NO_PRODUCER_ID
        || h.producer_epoch != NO_PRODUCER_EPOCH
        || h.base_sequence != NO_SEQUENCE
    {
        return Err(CorruptionKind::BadRecord {
            reason: "reserved producer fields are set",
        }
        .into());
    }
    match h.codec() {
        CODEC_NONE | CODEC_ZSTD => {}
        _ => {
            return Err(CorruptionKind::BadRecord {
                reason: "unknown compression codec",
            }
            .into())
        }
    }
    if u64::from(h.record_count) > u64::from(h.last_offset_delta) + 1 {
        return Err(CorruptionKind::BadRecord {
            reason: "record count exceeds the batch's offset range",
        }
        .into());
    }
    Ok(h)
}

/// The records section of a validated batch, decompressed when needed.
/// Borrowed when the batch is uncompressed.
pub(crate) fn records_section<'a>(
    h: &BatchHeader,
    batch: &'a [u8],
) -> Result<Cow<'a, [u8]>, CorruptionKind> {
    let raw = &batch[HEADER_LEN..h.total_len()];
    match h.codec() {
        CODEC_ZSTD => decompress(raw).map(Cow::Owned),
        _ => Ok(Cow::Borrowed(raw)),
    }
}

fn decompress(raw: &[u8]) -> Result<Vec<u8>, CorruptionKind> {
    use std::io::Read;
    let size = match zstd::zstd_safe::get_frame_content_size(raw) {
        Ok(Some(n)) if n <= MAX_BATCH_BYTES as u64 => n as usize,
        _ => {
            return Err(CorruptionKind::BadCompression {
                reason: "missing or oversized zstd frame content size",
            })
        }
    };
    let bad = |reason| CorruptionKind::BadCompression { reason };
    // Stream rather than trust the declared size with one allocation: the
    // buffer only grows as fast as real output arrives.
    let mut dec = zstd::stream::read::Decoder::with_buffer(raw)
        .map_err(|_| bad("zstd frame failed to decompress"))?
        .single_frame();
    let mut out = Vec::with_capacity(size.min(1 << 20));
    (&mut dec)
        .take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| bad("zstd frame failed to decompress"))?;
    if out.len() != size {
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
    pub header_count: u32,
    /// The whole encoded record, length prefix included. Relative to the
    /// batch's base offset and timestamp, so it can be copied verbatim into
    /// a batch with the same base (compaction does).
    pub raw: &'a [u8],
}

/// Iterates the records of a section, validating every length, that offset
/// deltas strictly increase and stay within `last_offset_delta`, and that the
/// count matches the header. Yields an error once and then stops.
pub(crate) struct RecordIter<'a> {
    buf: &'a [u8],
    remaining: u32,
    last_delta: Option<u32>,
    max_delta: u32,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    pub fn new(h: &BatchHeader, section: &'a [u8]) -> Self {
        RecordIter {
            buf: section,
            remaining: h.record_count,
            last_delta: None,
            max_delta: h.last_offset_delta,
            failed: false,
        }
    }

    fn bad(&mut self, reason: &'static str) -> Option<Result<RecordView<'a>, CorruptionKind>> {
        self.failed = true;
        Some(Err(CorruptionKind::BadRecord { reason }))
    }
}

fn take_bytes(buf: &[u8], len: i64) -> Option<(Option<&[u8]>, usize)> {
    if len == -1 {
        return Some((None, 0));
    }
    let len = usize::try_from(len).ok()?;
    buf.get(..len).map(|b| (Some(b), len))
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, CorruptionKind>;

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
        let Some((body_len, n)) = get_uvarint(self.buf) else {
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
        match parse_body(body) {
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

fn parse_body(body: &[u8]) -> Option<RecordView<'_>> {
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
    let (key, n) = take_bytes(body.get(p..)?, klen)?;
    p += n;
    let (vlen, n) = get_varint(body.get(p..)?)?;
    p += n;
    let (value, n) = take_bytes(body.get(p..)?, vlen)?;
    p += n;
    let (count, n) = get_uvarint(body.get(p..)?)?;
    let header_count = u32::try_from(count).ok()?;
    p += n;
    let headers = body.get(p..)?;
    // Walk the headers once so that a malformed one is caught here and the
    // public iterator over them can never fail.
    let mut h = HeaderIter {
        buf: headers,
        remaining: header_count,
    };
    for _ in 0..header_count {
        h.next_checked()?;
    }
    if !h.buf.is_empty() {
        return None;
    }
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

/// Iterates encoded headers: `(uvarint key len, UTF-8 key, uvarint value
/// len, value)` each.
#[derive(Debug, Clone)]
pub(crate) struct HeaderIter<'a> {
    pub buf: &'a [u8],
    pub remaining: u32,
}

impl<'a> HeaderIter<'a> {
    pub fn next_checked(&mut self) -> Option<(&'a str, &'a [u8])> {
        if self.remaining == 0 {
            return None;
        }
        let (klen, n) = get_uvarint(self.buf)?;
        let rest = self.buf.get(n..)?;
        let key = rest.get(..usize::try_from(klen).ok()?)?;
        let key = std::str::from_utf8(key).ok()?;
        let rest = rest.get(key.len()..)?;
        let (vlen, n) = get_uvarint(rest)?;
        let rest = rest.get(n..)?;
        let value = rest.get(..usize::try_from(vlen).ok()?)?;
        self.buf = rest.get(value.len()..)?;
        self.remaining -= 1;
        Some((key, value))
    }
}

// ---- encoding ---------------------------------------------------------------

/// What the encoder needs of one record.
pub(crate) struct EncodeRecord<'r> {
    pub offset_delta: u32,
    pub timestamp: i64,
    pub key: Option<&'r [u8]>,
    pub value: Option<&'r [u8]>,
    pub headers: &'r [(Cow<'r, str>, Cow<'r, [u8]>)],
}

fn opt_len(b: Option<&[u8]>) -> usize {
    match b {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i64) + b.len(),
    }
}

/// The encoded size of a record without its length prefix, relative to a
/// base timestamp.
pub(crate) fn record_body_len(r: &EncodeRecord<'_>, base_timestamp: i64) -> usize {
    let mut n = 1
        + varint_len(r.timestamp.wrapping_sub(base_timestamp))
        + uvarint_len(u64::from(r.offset_delta))
        + opt_len(r.key)
        + opt_len(r.value)
        + uvarint_len(r.headers.len() as u64);
    for (k, v) in r.headers {
        n += uvarint_len(k.len() as u64) + k.len() + uvarint_len(v.len() as u64) + v.len();
    }
    n
}

/// Appends one encoded record to a records section.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn encode_record(out: &mut Vec<u8>, r: &EncodeRecord<'_>, base_timestamp: i64) {
    encode_record_body(out, r, base_timestamp, record_body_len(r, base_timestamp));
}

/// [`encode_record`] for a caller that already knows the body length
/// ([`record_body_len`] with the same base timestamp).
///
/// The record's room is made in `out` first and the fields are then
/// written into it, which costs one length check per field instead of a
/// capacity check per byte. A `body` that disagrees with the record panics
/// (a caller's bug) and never writes a wrong length prefix.
pub(crate) fn encode_record_body(
    out: &mut Vec<u8>,
    r: &EncodeRecord<'_>,
    base_timestamp: i64,
    body: usize,
) {
    let start = out.len();
    let total = uvarint_len(body as u64) + body;
    out.resize(start + total, 0);
    let mut w = SliceWriter::new(&mut out[start..]);
    w.uvarint(body as u64);
    w.byte(0);
    w.varint(r.timestamp.wrapping_sub(base_timestamp));
    w.uvarint(u64::from(r.offset_delta));
    w.varint(r.key.map_or(-1, |k| k.len() as i64));
    if let Some(k) = r.key {
        w.bytes(k);
    }
    w.varint(r.value.map_or(-1, |v| v.len() as i64));
    if let Some(v) = r.value {
        w.bytes(v);
    }
    w.uvarint(r.headers.len() as u64);
    for (k, v) in r.headers {
        w.uvarint(k.len() as u64);
        w.bytes(k.as_bytes());
        w.uvarint(v.len() as u64);
        w.bytes(v);
    }
    assert_eq!(w.written(), total, "record body length miscomputed");
}

/// A batch encoded except for its base offset, which is assigned under the
/// partition's append lock. The payload's CRC is computed outside the lock
/// and combined with the header's.
///
/// The batch lives in one buffer: `HEADER_LEN` bytes reserved for the
/// header, then the payload, so that sealing writes the header in place and
/// the whole batch reaches the segment in one copy.
pub(crate) struct EncodedBatch {
    pub header: BatchHeader,
    buf: Vec<u8>,
    payload_crc: Option<crc32fast::Hasher>,
}

/// Payloads at least this large have their CRC computed before the append
/// lock is taken.
const COMBINE_THRESHOLD: usize = 16 << 10;

/// A fresh CRC state. `Hasher::new` looks up the CPU's features every
/// time, which costs a single small send as much as hashing half its bytes;
/// a clone of one made once does not.
fn crc_hasher() -> crc32fast::Hasher {
    static PROTO: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    PROTO.get_or_init(crc32fast::Hasher::new).clone()
}

/// A thread keeps its last batch buffer up to this capacity for its next
/// batch: a send of one small record otherwise spends more in `malloc` and
/// `free` than in copying its bytes.
const SPARE_MAX: usize = 256 << 10;

thread_local! {
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Hands a finished buffer back to this thread for its next batch, keeping
/// whichever of it and the current spare is larger.
fn give_back(buf: Vec<u8>) {
    if buf.capacity() <= SPARE_MAX {
        // (`try_with`: nothing to do while the thread is exiting.)
        let _ = SPARE.try_with(|s| {
            let old = s.take();
            s.set(if old.capacity() >= buf.capacity() {
                old
            } else {
                buf
            });
        });
    }
}

impl EncodedBatch {
    /// An empty records section with room reserved in front for the header:
    /// encode records into it, then pass it to [`EncodedBatch::new`]. Reuses
    /// the thread's spare buffer when it is large enough.
    pub fn section_buffer(capacity: usize) -> Vec<u8> {
        let want = HEADER_LEN + capacity;
        let mut v = SPARE.try_with(Cell::take).unwrap_or_default();
        if v.capacity() < want {
            v = Vec::with_capacity(want);
        }
        v.clear();
        v.resize(HEADER_LEN, 0);
        v
    }

    /// Builds a batch from a finished records section.
    ///
    /// `section` comes from [`section_buffer`](Self::section_buffer) and
    /// holds, after the reserved header space, `record_count` records
    /// encoded against `base_timestamp`; they are zstd-compressed here when
    /// `zstd_level` is set.
    pub fn new(
        section: Vec<u8>,
        record_count: u32,
        last_offset_delta: u32,
        base_timestamp: i64,
        max_timestamp: i64,
        zstd_level: Option<i32>,
    ) -> std::io::Result<Self> {
        debug_assert!(section.len() >= HEADER_LEN);
        let (buf, codec) = match zstd_level {
            Some(level) => {
                let compressed = compress_section(&section[HEADER_LEN..], level)?;
                give_back(section);
                (compressed, CODEC_ZSTD)
            }
            None => (section, CODEC_NONE),
        };
        let total = buf.len();
        if total > MAX_BATCH_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "batch exceeds the format's maximum size",
            ));
        }
        // A large payload's CRC is computed here, outside the append lock,
        // and combined with the header's under it. For a small one,
        // combining costs more than hashing it again under the lock.
        let payload = &buf[HEADER_LEN..];
        let payload_crc = (payload.len() >= COMBINE_THRESHOLD).then(|| {
            let mut h = crc_hasher();
            h.update(payload);
            h
        });
        Ok(EncodedBatch {
            header: BatchHeader {
                length: (total - CRC_AT) as u32,
                crc: 0,
                version: VERSION,
                base_offset: 0,
                attributes: codec,
                last_offset_delta,
                record_count,
                base_timestamp,
                max_timestamp,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                base_sequence: NO_SEQUENCE,
            },
            buf,
            payload_crc,
        })
    }

    /// The batch's size on disk.
    pub fn total_len(&self) -> usize {
        self.header.total_len()
    }

    /// Fixes the base offset, writes the header with its CRC in place and
    /// returns the finished batch.
    pub fn seal(&mut self, base_offset: u64) -> &[u8] {
        self.header.base_offset = base_offset;
        self.header.crc = 0;
        let mut head = [0u8; HEADER_LEN];
        self.header.write_to(&mut head);
        let mut crc = crc_hasher();
        match &self.payload_crc {
            Some(p) => {
                crc.update(&head[CRC_FROM..]);
                crc.combine(p);
            }
            None => {
                self.buf[..HEADER_LEN].copy_from_slice(&head);
                crc.update(&self.buf[CRC_FROM..]);
            }
        }
        self.header.crc = crc.finalize();
        head[CRC_AT..MAGIC_AT].copy_from_slice(&self.header.crc.to_le_bytes());
        self.buf[..HEADER_LEN].copy_from_slice(&head);
        &self.buf
    }

    /// The whole batch, as last sealed.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for EncodedBatch {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.buf));
    }
}

/// Compresses a records section into a new buffer with header space
/// reserved in front. The compression context is kept per thread: making a
/// new one per batch costs more than compressing a small batch.
fn compress_section(section: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static CTX: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let bound = zstd::zstd_safe::compress_bound(section.len());
    let mut out = Vec::with_capacity(HEADER_LEN + bound);
    out.resize(HEADER_LEN, 0);
    // Compressed straight in after the header space: the cursor starts
    // there, and nothing past what zstd writes is ever initialized.
    let mut cursor = std::io::Cursor::new(out);
    cursor.set_position(HEADER_LEN as u64);
    CTX.with(|cell| -> std::io::Result<usize> {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let (_, c) = slot.as_mut().expect("set above");
        c.compress_to_buffer(section, &mut cursor)
    })?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(
        offset_delta: u32,
        ts: i64,
        key: Option<&'static [u8]>,
        value: Option<&'static [u8]>,
    ) -> EncodeRecord<'static> {
        EncodeRecord {
            offset_delta,
            timestamp: ts,
            key,
            value,
            headers: &[],
        }
    }

    /// Plain, and zstd at `level` except under miri, which cannot run
    /// zstd's C code.
    fn codecs(level: i32) -> Vec<Option<i32>> {
        if cfg!(miri) {
            vec![None]
        } else {
            vec![None, Some(level)]
        }
    }

    fn build(records: &[EncodeRecord<'_>], base_offset: u64, zstd: Option<i32>) -> Vec<u8> {
        let base_ts = records[0].timestamp;
        let mut section = EncodedBatch::section_buffer(0);
        for r in records {
            encode_record(&mut section, r, base_ts);
        }
        let max_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(base_ts);
        let last = records.last().map(|r| r.offset_delta).unwrap_or(0);
        let mut b =
            EncodedBatch::new(section, records.len() as u32, last, base_ts, max_ts, zstd).unwrap();
        b.seal(base_offset).to_vec()
    }

    /// A batch encoded in a reused buffer (left over from a larger,
    /// different batch, plain or compressed) is byte for byte the batch a
    /// fresh thread encodes.
    #[test]
    fn reused_buffers_leave_nothing_behind() {
        let small = || [one(0, 7, Some(b"k"), Some(b"v"))];
        let fresh = std::thread::spawn(move || build(&small(), 3, None))
            .join()
            .unwrap();
        let big: Vec<EncodeRecord<'static>> = (0..500)
            .map(|i| one(i, 9 + i64::from(i), Some(&[0xAB; 40]), Some(&[0xCD; 90])))
            .collect();
        for zstd in codecs(1) {
            build(&big, 1_000, zstd);
            assert!(
                SPARE.with(|s| {
                    let v = s.take();
                    let cap = v.capacity();
                    s.set(v);
                    cap
                }) > fresh.len()
            );
            assert_eq!(build(&small(), 3, None), fresh);
        }
    }

    /// The example batch of FORMAT.md, byte for byte.
    #[test]
    fn pins_exact_bytes() {
        let headers = [(Cow::Borrowed("h"), Cow::Borrowed(&b"x"[..]))];
        let recs = [
            EncodeRecord {
                offset_delta: 0,
                timestamp: 1_700_000_000_000,
                key: Some(b"k1"),
                value: Some(b"v1"),
                headers: &headers,
            },
            one(1, 1_700_000_000_005, None, None),
        ];
        let bytes = build(&recs, 42, None);
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            // length = 86 - 4
            0x52, 0x00, 0x00, 0x00,
            // crc32 of bytes 8..86
            0x00, 0x00, 0x00, 0x00,
            // magic "SL", version 1, flags 0
            0x53, 0x4c, 0x01, 0x00,
            // base offset 42
            0x2a, 0, 0, 0, 0, 0, 0, 0,
            // attributes 0, reserved 0
            0x00, 0x00, 0x00, 0x00,
            // last offset delta 1, record count 2
            0x01, 0, 0, 0, 0x02, 0, 0, 0,
            // base timestamp 1_700_000_000_000 = 0x18BCFE56800
            0x00, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0, 0,
            // max timestamp 1_700_000_000_005
            0x05, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0, 0,
            // producer id -1, epoch -1, reserved 0, base sequence -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
            // record 0: body length 14, attributes 0, ts delta 0, offset delta 0,
            // key len 2 "k1", value len 2 "v1", 1 header: "h" = "x"
            0x0e, 0x00, 0x00, 0x00, 0x04, b'k', b'1', 0x04, b'v', b'1',
            0x01, 0x01, b'h', 0x01, b'x',
            // record 1: body length 6, attributes 0, ts delta +5 (zig-zag 10),
            // offset delta 1, key null, value null, 0 headers
            0x06, 0x00, 0x0a, 0x01, 0x01, 0x01, 0x00,
        ];
        assert_eq!(bytes.len(), expected.len());
        assert_eq!(bytes[..CRC_AT], expected[..CRC_AT]);
        assert_eq!(bytes[MAGIC_AT..], expected[MAGIC_AT..]);
        let crc = crc32fast::hash(&bytes[CRC_FROM..]);
        assert_eq!(bytes[CRC_AT..MAGIC_AT], crc.to_le_bytes());
        assert_eq!(crc, 0xbadb_b615, "FORMAT.md quotes this CRC");
        assert_eq!(
            bytes,
            format_md_example(),
            "FORMAT.md §3.3 differs from the encoder"
        );
    }

    /// The hex dump under "### 3.3" in FORMAT.md.
    fn format_md_example() -> Vec<u8> {
        let doc = include_str!("../../FORMAT.md");
        let section = &doc[doc.find("### 3.3").unwrap()..];
        let start = section.find("```text\n").unwrap() + 8;
        let end = start + section[start..].find("```").unwrap();
        section[start..end]
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    #[test]
    fn round_trips_with_and_without_zstd() {
        let recs: Vec<EncodeRecord<'_>> = (0..50)
            .map(|i| {
                one(
                    i,
                    1000 + i as i64,
                    Some(b"key"),
                    Some(b"some value that repeats"),
                )
            })
            .collect();
        for zstd in codecs(3) {
            let bytes = build(&recs, 7, zstd);
            let h = decode_batch(&bytes).unwrap();
            assert_eq!(h.base_offset, 7);
            assert_eq!(h.next_offset(), 57);
            let section = records_section(&h, &bytes).unwrap();
            let got: Vec<_> = RecordIter::new(&h, &section).map(|r| r.unwrap()).collect();
            assert_eq!(got.len(), 50);
            for (i, r) in got.iter().enumerate() {
                assert_eq!(r.offset_delta, i as u32);
                assert_eq!(h.base_timestamp + r.timestamp_delta, 1000 + i as i64);
                assert_eq!(r.key, Some(&b"key"[..]));
            }
        }
    }

    #[test]
    fn large_payloads_combine_crcs_correctly() {
        let big = vec![0x5a; COMBINE_THRESHOLD + 123];
        let recs = [EncodeRecord {
            offset_delta: 0,
            timestamp: 9,
            key: None,
            value: Some(&big),
            headers: &[],
        }];
        let bytes = build(&recs, 1, None);
        assert!(decode_batch(&bytes).is_ok());
    }

    #[test]
    fn null_and_empty_are_distinct() {
        let recs = [one(0, 1, Some(b""), None), one(1, 1, None, Some(b""))];
        let bytes = build(&recs, 0, None);
        let h = decode_batch(&bytes).unwrap();
        let got: Vec<_> = RecordIter::new(&h, &bytes[HEADER_LEN..])
            .map(|r| r.unwrap())
            .collect();
        assert_eq!((got[0].key, got[0].value), (Some(&b""[..]), None));
        assert_eq!((got[1].key, got[1].value), (None, Some(&b""[..])));
    }

    #[test]
    fn every_single_byte_flip_is_caught() {
        let recs = [one(0, 5, Some(b"k"), Some(b"value"))];
        let bytes = build(&recs, 3, None);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode_batch(&b).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn zeros_and_short_buffers_are_rejected() {
        assert_eq!(
            decode_batch(&[0u8; 10]),
            Err(DecodeError::Incomplete { needed: HEADER_LEN })
        );
        assert!(matches!(
            decode_batch(&[0u8; 100]),
            Err(DecodeError::Corrupt(CorruptionKind::BadLength {
                length: 0
            }))
        ));
        let bytes = build(&[one(0, 5, None, Some(b"v"))], 0, None);
        assert_eq!(
            decode_batch(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Incomplete {
                needed: bytes.len()
            })
        );
    }

    #[test]
    fn unknown_version_with_valid_crc_is_unsupported() {
        let mut bytes = build(&[one(0, 5, None, Some(b"v"))], 0, None);
        bytes[VERSION_AT] = 9;
        let crc = crc32fast::hash(&bytes[CRC_FROM..]);
        bytes[CRC_AT..MAGIC_AT].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_batch(&bytes),
            Err(DecodeError::UnsupportedVersion(9))
        );
    }
}
