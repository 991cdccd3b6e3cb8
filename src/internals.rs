//! Pure format functions for fuzz targets, benches and tools, behind the
//! default-off `internals` feature. Not a stable API: it follows the format
//! code, not semver.

use crate::format::batch::{
    decode_batch, encode_record, records_section, DecodeError, EncodeRecord, EncodedBatch,
    HeaderIter, RecordIter, CODEC_ZSTD,
};
use crate::format::index::{lookup_offset, lookup_time, valid_offset_entries, valid_time_entries};
use std::borrow::Cow;

type Header<'a> = (Cow<'a, str>, Cow<'a, [u8]>);

/// Bytes of a batch header: the records section starts here (FORMAT.md).
pub const BATCH_HEADER_LEN: usize = crate::format::batch::HEADER_LEN;

/// A batch decoded into owned parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    /// Size of the batch on disk.
    pub total_len: usize,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Last offset minus base offset.
    pub last_offset_delta: u32,
    /// The attributes field (codec in bits 0-2).
    pub attributes: u16,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp, as stored.
    pub max_timestamp: i64,
    /// The stored CRC.
    pub crc: u32,
    /// The records.
    pub records: Vec<DecodedRecord>,
}

/// One record of a [`DecodedBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Offset minus the batch's base offset.
    pub offset_delta: u32,
    /// Timestamp (absolute, ms).
    pub timestamp: i64,
    /// Key; `None` is null.
    pub key: Option<Vec<u8>>,
    /// Value; `None` is null.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Why [`decode`] rejected its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeFailure {
    /// The input ends before the batch does.
    Incomplete {
        /// Bytes the batch needs.
        needed: usize,
    },
    /// Not a valid batch.
    Corrupt(crate::CorruptionKind),
    /// A valid batch of an unknown version.
    UnsupportedVersion(u8),
}

impl From<DecodeError> for DecodeFailure {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Incomplete { needed } => DecodeFailure::Incomplete { needed },
            DecodeError::Corrupt(k) => DecodeFailure::Corrupt(k),
            DecodeError::UnsupportedVersion(v) => DecodeFailure::UnsupportedVersion(v),
        }
    }
}

/// Decodes (and fully validates) the batch at the front of `bytes`.
///
/// # Errors
/// A typed [`DecodeFailure`]; never panics.
pub fn decode(bytes: &[u8]) -> Result<DecodedBatch, DecodeFailure> {
    let h = decode_batch(bytes)?;
    let section = records_section(&h, &bytes[..h.total_len()]).map_err(DecodeFailure::Corrupt)?;
    let mut records = Vec::with_capacity((h.record_count as usize).min(section.len() / 7));
    for r in RecordIter::new(&h, &section) {
        let r = r.map_err(DecodeFailure::Corrupt)?;
        let mut it = HeaderIter {
            buf: r.headers,
            remaining: r.header_count,
        };
        let mut headers = Vec::new();
        while let Some((k, v)) = it.next_checked() {
            headers.push((k.to_owned(), v.to_vec()));
        }
        records.push(DecodedRecord {
            offset_delta: r.offset_delta,
            timestamp: h.base_timestamp.wrapping_add(r.timestamp_delta),
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
            headers,
        });
    }
    Ok(DecodedBatch {
        total_len: h.total_len(),
        base_offset: h.base_offset,
        last_offset_delta: h.last_offset_delta,
        attributes: h.attributes,
        base_timestamp: h.base_timestamp,
        max_timestamp: h.max_timestamp,
        crc: h.crc,
        records,
    })
}

/// Encodes a batch from its parts (zstd level 3 when the codec bit says
/// zstd). An uncompressed batch that [`decode`] accepted re-encodes to the
/// same bytes.
///
/// # Panics
/// If the batch exceeds the format's 1 GiB limit.
pub fn encode(b: &DecodedBatch) -> Vec<u8> {
    let headers: Vec<Vec<Header<'_>>> = b
        .records
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_slice())))
                .collect()
        })
        .collect();
    let mut section = EncodedBatch::section_buffer(0);
    for (r, hs) in b.records.iter().zip(&headers) {
        let e = EncodeRecord {
            offset_delta: r.offset_delta,
            timestamp: r.timestamp,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: hs,
        };
        encode_record(&mut section, &e, b.base_timestamp);
    }
    let zstd = (b.attributes & 0b111 == CODEC_ZSTD).then_some(3);
    let mut batch = EncodedBatch::new(
        section,
        b.records.len() as u32,
        b.last_offset_delta,
        b.base_timestamp,
        b.max_timestamp,
        zstd,
    )
    .expect("batch within the format's limits");
    batch.header.attributes = b.attributes;
    batch.seal(b.base_offset).to_vec()
}

/// What a recovery scan of a segment's bytes concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanSummary {
    /// Bytes of valid batches from the start.
    pub valid_len: u64,
    /// The offset after the last valid batch.
    pub next_offset: u64,
    /// Why the scan stopped early (`None`: it reached the end).
    pub stop: Option<String>,
    /// The rebuilt offset index.
    pub offset_index: Vec<u8>,
    /// The rebuilt time index.
    pub time_index: Vec<u8>,
}

/// Runs recovery's scan over arbitrary segment bytes.
pub fn scan_segment(bytes: &[u8], base: u64, index_interval: u64) -> ScanSummary {
    let s = crate::storage::recovery::scan::scan_segment(bytes, base, index_interval.max(1));
    ScanSummary {
        valid_len: s.valid_len,
        next_offset: s.next_offset,
        stop: s.stop.map(|x| format!("{x:?}")),
        offset_index: s.offsets,
        time_index: s.times,
    }
}

/// How many leading entries of an offset index are valid.
pub fn valid_offset_index_entries(bytes: &[u8]) -> usize {
    valid_offset_entries(bytes)
}

/// How many leading entries of a time index are valid.
pub fn valid_time_index_entries(bytes: &[u8]) -> usize {
    valid_time_entries(bytes)
}

/// The last valid offset-index entry `(relative offset, position)` with a
/// relative offset `<= target`.
pub fn offset_index_lookup(bytes: &[u8], target: u32) -> Option<(u32, u32)> {
    let n = valid_offset_entries(bytes);
    lookup_offset(bytes, n, target).map(|e| (e.rel, e.pos))
}

/// [`offset_index_lookup`] over the first `n` entries, which the caller
/// has validated (no recount): the search alone.
pub fn offset_index_lookup_in(bytes: &[u8], n: usize, target: u32) -> Option<(u32, u32)> {
    lookup_offset(bytes, n.min(bytes.len() / 8), target).map(|e| (e.rel, e.pos))
}

/// [`time_index_lookup`] over the first `n` validated entries.
pub fn time_index_lookup_in(bytes: &[u8], n: usize, target: i64) -> Option<(i64, u32)> {
    lookup_time(bytes, n.min(bytes.len() / 12), target).map(|e| (e.ts, e.rel))
}

/// The last valid time-index entry `(timestamp, relative offset)` with a
/// timestamp `< target`.
pub fn time_index_lookup(bytes: &[u8], target: i64) -> Option<(i64, u32)> {
    let n = valid_time_entries(bytes);
    lookup_time(bytes, n, target).map(|e| (e.ts, e.rel))
}
