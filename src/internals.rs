//! Pure format functions for fuzz targets, benches and tools, behind the
//! default-off `internals` feature. Not a stable API: it follows the format
//! code, not semver.

use crate::format::batch::{
    decode_batch, encode_record, records_section, v1, v2, DecodeError, EncodeHeader, EncodeRecord,
    EncodedBatch, RecordIter, Version, CODEC_ZSTD,
};
use crate::format::index::{lookup_offset, lookup_time, valid_offset_entries, valid_time_entries};
use std::borrow::Cow;

/// Bytes of a v2 batch header (Kafka's 61): the records section starts
/// here (FORMAT.md §3).
pub const BATCH_HEADER_LEN: usize = v2::HEADER_LEN;
/// Bytes of a v1 batch header (FORMAT.md §3.4).
pub const V1_BATCH_HEADER_LEN: usize = v1::HEADER_LEN;

/// A segment's layout, for the index functions below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// streamlog's first layout (little-endian entries).
    V1,
    /// Kafka's layout (big-endian entries), written by this build.
    V2,
}

impl From<Layout> for Version {
    fn from(l: Layout) -> Version {
        match l {
            Layout::V1 => Version::V1,
            Layout::V2 => Version::V2,
        }
    }
}

/// A batch decoded into owned parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    /// The layout: 2 (Kafka's record batch) or 1 (streamlog's first).
    pub version: u8,
    /// Size of the batch on disk.
    pub total_len: usize,
    /// Offset of the first record.
    pub base_offset: u64,
    /// v2's partition leader epoch (−1 for v1).
    pub leader_epoch: i32,
    /// Last offset minus base offset.
    pub last_offset_delta: u32,
    /// The attributes field (codec in bits 0-2).
    pub attributes: u16,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp, as stored.
    pub max_timestamp: i64,
    /// Producer id, epoch and base sequence (−1 when none).
    pub producer: (i64, i16, i32),
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
    /// Headers in order; a `None` value is null.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
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
    /// A valid batch of an unknown version (or attribute bit).
    UnsupportedVersion(u8),
    /// A valid batch compressed with a codec this build cannot read.
    UnsupportedCodec(u8),
}

impl From<DecodeError> for DecodeFailure {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Incomplete { needed } => DecodeFailure::Incomplete { needed },
            DecodeError::Corrupt(k) => DecodeFailure::Corrupt(k),
            DecodeError::UnsupportedVersion(v) => DecodeFailure::UnsupportedVersion(v),
            DecodeError::UnsupportedCodec(c) => DecodeFailure::UnsupportedCodec(c),
        }
    }
}

/// Decodes (and fully validates) the batch at the front of `bytes`, of
/// either layout.
///
/// # Errors
/// A typed [`DecodeFailure`]; never panics.
pub fn decode(bytes: &[u8]) -> Result<DecodedBatch, DecodeFailure> {
    let h = decode_batch(bytes)?;
    let section = records_section(&h, &bytes[..h.total_len()]).map_err(DecodeFailure::Corrupt)?;
    let mut records = Vec::with_capacity((h.record_count as usize).min(section.len() / 7));
    for r in RecordIter::new(&h, &section) {
        let r = r.map_err(DecodeFailure::Corrupt)?;
        let mut it = r.header_iter();
        let mut headers = Vec::new();
        while let Some((k, v)) = it.next_checked() {
            headers.push((k.to_owned(), v.map(<[u8]>::to_vec)));
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
        version: match h.version {
            Version::V1 => 1,
            Version::V2 => 2,
        },
        total_len: h.total_len(),
        base_offset: h.base_offset,
        leader_epoch: h.leader_epoch,
        last_offset_delta: h.last_offset_delta,
        attributes: h.attributes,
        base_timestamp: h.base_timestamp,
        max_timestamp: h.max_timestamp,
        producer: (h.producer_id, h.producer_epoch, h.base_sequence),
        crc: h.crc,
        records,
    })
}

/// Encodes a batch from its parts in its layout (zstd level 3 when the
/// codec bits say zstd). An uncompressed batch that [`decode`] accepted
/// re-encodes to the same bytes.
///
/// # Panics
/// If the batch exceeds the format's limits (1 GiB; v2: offsets within
/// `i32`).
pub fn encode(b: &DecodedBatch) -> Vec<u8> {
    let headers: Vec<Vec<EncodeHeader<'_>>> = b
        .records
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), v.as_deref().map(Cow::Borrowed)))
                .collect()
        })
        .collect();
    let records: Vec<EncodeRecord<'_>> = b
        .records
        .iter()
        .zip(&headers)
        .map(|(r, hs)| EncodeRecord {
            offset_delta: r.offset_delta,
            timestamp: r.timestamp,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: hs,
        })
        .collect();
    let zstd = (b.attributes & 0b111 == CODEC_ZSTD).then_some(3);
    if b.version == 1 {
        return v1::encode_batch_with(
            &records,
            b.base_offset,
            zstd,
            b.attributes,
            b.base_timestamp,
            b.max_timestamp,
            b.last_offset_delta,
        )
        .expect("batch within the format's limits");
    }
    let mut section = EncodedBatch::section_buffer(0);
    for e in &records {
        encode_record(&mut section, e, b.base_timestamp);
    }
    let mut batch = EncodedBatch::new(
        section,
        b.records.len() as u32,
        b.last_offset_delta,
        b.base_timestamp,
        b.max_timestamp,
        zstd,
    )
    .expect("batch within the format's limits");
    let (pid, epoch, seq) = b.producer;
    batch.set_raw_fields(b.attributes, b.leader_epoch, pid, epoch, seq);
    batch.seal(b.base_offset).to_vec()
}

/// Recomputes the CRC of every batch in the chain of batches at the front
/// of `bytes` (each batch's length field says where the next one starts;
/// each batch in its own layout), stopping at the first length that does
/// not fit. Returns `None` when nothing changed. Fuzz targets use it to get
/// mutated bytes past the CRC gate.
pub fn fix_crcs(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    let mut pos = 0usize;
    let mut changed = false;
    while out.len() - pos >= v2::HEADER_LEN {
        let b = &mut out[pos..];
        let (total, crc_at, crc) = match crate::format::batch::version_of(b) {
            Version::V1 => {
                if b.len() < v1::HEADER_LEN {
                    break;
                }
                let total = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize + v1::CRC_AT;
                if total < v1::HEADER_LEN || total > b.len() {
                    break;
                }
                let crc = crc32fast::hash(&b[v1::CRC_FROM..total]).to_le_bytes();
                (total, v1::CRC_AT, crc)
            }
            Version::V2 => {
                let len = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                let Ok(total) = usize::try_from(i64::from(len) + v2::LENGTH_OVERHEAD as i64) else {
                    break;
                };
                if total < v2::HEADER_LEN || total > b.len() {
                    break;
                }
                let crc = v2::crc32c(&b[v2::CRC_FROM..total]).to_be_bytes();
                (total, v2::CRC_AT, crc)
            }
        };
        if b[crc_at..crc_at + 4] != crc {
            b[crc_at..crc_at + 4].copy_from_slice(&crc);
            changed = true;
        }
        pos += total;
    }
    changed.then_some(out)
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
    /// The segment's layout (from its first batch).
    pub layout: Layout,
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
        layout: match s.cursor.version() {
            Version::V1 => Layout::V1,
            Version::V2 => Layout::V2,
        },
        offset_index: s.offsets,
        time_index: s.times,
    }
}

/// How many leading entries of an offset index are valid.
pub fn valid_offset_index_entries(bytes: &[u8], layout: Layout) -> usize {
    valid_offset_entries(bytes, layout.into())
}

/// How many leading entries of a time index are valid.
pub fn valid_time_index_entries(bytes: &[u8], layout: Layout) -> usize {
    valid_time_entries(bytes, layout.into())
}

/// The last valid offset-index entry `(relative offset, position)` with a
/// relative offset `<= target`.
pub fn offset_index_lookup(bytes: &[u8], target: u32, layout: Layout) -> Option<(u32, u32)> {
    let n = valid_offset_entries(bytes, layout.into());
    lookup_offset(bytes, n, target, layout.into()).map(|e| (e.rel, e.pos))
}

/// [`offset_index_lookup`] over the first `n` entries, which the caller
/// has validated (no recount): the search alone.
pub fn offset_index_lookup_in(
    bytes: &[u8],
    n: usize,
    target: u32,
    layout: Layout,
) -> Option<(u32, u32)> {
    lookup_offset(bytes, n.min(bytes.len() / 8), target, layout.into()).map(|e| (e.rel, e.pos))
}

/// [`time_index_lookup`] over the first `n` validated entries.
pub fn time_index_lookup_in(
    bytes: &[u8],
    n: usize,
    target: i64,
    layout: Layout,
) -> Option<(i64, u32)> {
    lookup_time(bytes, n.min(bytes.len() / 12), target, layout.into()).map(|e| (e.ts, e.rel))
}

/// The last valid time-index entry `(timestamp, relative offset)` with a
/// timestamp `< target`.
pub fn time_index_lookup(bytes: &[u8], target: i64, layout: Layout) -> Option<(i64, u32)> {
    let n = valid_time_entries(bytes, layout.into());
    lookup_time(bytes, n, target, layout.into()).map(|e| (e.ts, e.rel))
}

/// `__transaction_state` keys, values and the other exactly-once files
/// (FORMAT.md §10), decoded and re-encoded: each function returns the
/// canonical encoding of what it decoded, or why the bytes were refused.
pub mod txn {
    use crate::format::txn::{self, AbortedTxn};

    /// A `__transaction_state` key: the transactional id.
    ///
    /// # Errors
    /// Why the key was refused.
    pub fn decode_key(bytes: &[u8]) -> Result<String, String> {
        txn::decode_txn_key(bytes)
    }

    /// A `__transaction_state` key for `id`.
    pub fn encode_key(id: &str) -> Vec<u8> {
        txn::encode_txn_key(id)
    }

    /// A `__transaction_state` value (version 0 or 1) re-encoded as
    /// version 0.
    ///
    /// # Errors
    /// Why the value was refused.
    pub fn canonical_value(bytes: &[u8]) -> Result<Vec<u8>, String> {
        txn::decode_txn_value(bytes).map(|v| txn::encode_txn_value(&v))
    }

    /// A producer-state snapshot re-encoded.
    ///
    /// # Errors
    /// Why the snapshot was refused.
    pub fn canonical_snapshot(bytes: &[u8]) -> Result<Vec<u8>, String> {
        txn::decode_snapshot(bytes).map(|e| txn::encode_snapshot(&e))
    }

    /// The entries of a `.txnindex` file that decode, re-encoded.
    pub fn canonical_txn_index(bytes: &[u8]) -> Vec<u8> {
        AbortedTxn::decode_all(bytes)
            .iter()
            .flat_map(|a| a.encode())
            .collect()
    }

    /// The next producer-id block of a `producer-ids` file.
    ///
    /// # Errors
    /// Why the file was refused.
    pub fn decode_producer_ids(bytes: &[u8]) -> Result<i64, String> {
        txn::decode_producer_ids(bytes)
    }
}
