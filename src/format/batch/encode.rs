//! Encoding v2 batches: records into a section, the section (maybe
//! compressed) behind a header, the CRC-32C, and the base offset last.

use std::borrow::Cow;
use std::cell::Cell;

use super::common::{
    BatchHeader, RecordView, Version, CODEC_NONE, CODEC_ZSTD, MAX_BATCH_BYTES, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID, NO_SEQUENCE,
};
use super::v2::{self, HEADER_LEN};
use crate::format::varint::{append_exact, varint_len, SliceWriter};

/// A header to encode: a name and a value, `None` for a null value.
pub(crate) type EncodeHeader<'r> = (Cow<'r, str>, Option<Cow<'r, [u8]>>);

/// What the encoder needs of one record.
pub(crate) struct EncodeRecord<'r> {
    pub offset_delta: u32,
    pub timestamp: i64,
    pub key: Option<&'r [u8]>,
    pub value: Option<&'r [u8]>,
    pub headers: &'r [EncodeHeader<'r>],
}

fn opt_len(b: Option<&[u8]>) -> usize {
    match b {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i64) + b.len(),
    }
}

/// The encoded size of a v2 record without its length prefix, relative to
/// a base timestamp.
#[inline]
pub(crate) fn record_body_len(r: &EncodeRecord<'_>, base_timestamp: i64) -> usize {
    let mut n = plain_body_len(
        r.timestamp.wrapping_sub(base_timestamp),
        r.offset_delta,
        r.key,
        r.value,
    ) - 1
        + varint_len(r.headers.len() as i64);
    for (k, v) in r.headers {
        n += varint_len(k.len() as i64) + k.len() + opt_len(v.as_deref());
    }
    n
}

/// [`record_body_len`] of a record without headers (the usual one), from
/// its deltas.
#[inline(always)]
pub(crate) fn plain_body_len(
    timestamp_delta: i64,
    offset_delta: u32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> usize {
    1 + varint_len(timestamp_delta)
        + varint_len(i64::from(offset_delta))
        + opt_len(key)
        + opt_len(value)
        + 1
}

/// Appends one encoded v2 record to a records section.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn encode_record(out: &mut Vec<u8>, r: &EncodeRecord<'_>, base_timestamp: i64) {
    encode_record_body(out, r, base_timestamp, record_body_len(r, base_timestamp));
}

#[inline(always)]
fn opt(w: &mut SliceWriter<'_>, b: Option<&[u8]>) {
    w.varint(b.map_or(-1, |b| b.len() as i64));
    if let Some(b) = b {
        w.bytes(b);
    }
}

/// [`encode_record`] for a caller that already knows the body length
/// ([`record_body_len`] with the same base timestamp).
///
/// The record's room is reserved in `out` first and the fields are then
/// written into it, which costs one length check per field instead of a
/// capacity check per byte. A `body` that disagrees with the record panics
/// (a caller's bug) and never writes a wrong length prefix.
#[inline]
pub(crate) fn encode_record_body(
    out: &mut Vec<u8>,
    r: &EncodeRecord<'_>,
    base_timestamp: i64,
    body: usize,
) {
    append_exact(out, varint_len(body as i64) + body, |mut w| {
        write_record(&mut w, r, base_timestamp, body);
        w
    });
}

/// Writes one record, length prefix first, whose body length is `body`
/// ([`record_body_len`] with the same base timestamp).
#[inline]
pub(crate) fn write_record(
    w: &mut SliceWriter<'_>,
    r: &EncodeRecord<'_>,
    base_timestamp: i64,
    body: usize,
) {
    w.varint(body as i64);
    let body_start = w.written();
    w.byte(0);
    w.varint(r.timestamp.wrapping_sub(base_timestamp));
    w.varint(i64::from(r.offset_delta));
    opt(w, r.key);
    opt(w, r.value);
    w.varint(r.headers.len() as i64);
    for (k, v) in r.headers {
        w.varint(k.len() as i64);
        w.bytes(k.as_bytes());
        opt(w, v.as_deref());
    }
    assert_eq!(
        w.written() - body_start,
        body,
        "record body length miscomputed"
    );
}

/// [`write_record`] for a record without headers, from its deltas and its
/// body length ([`plain_body_len`]): the producer's loop for the usual
/// record, with nothing between the fields but their writes.
#[inline(always)]
pub(crate) fn write_plain_record(
    w: &mut SliceWriter<'_>,
    timestamp_delta: i64,
    offset_delta: u32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    body: usize,
) {
    w.varint(body as i64);
    let body_start = w.written();
    w.byte(0);
    w.varint(timestamp_delta);
    w.varint(i64::from(offset_delta));
    opt(w, key);
    opt(w, value);
    w.byte(0);
    assert_eq!(
        w.written() - body_start,
        body,
        "record body length miscomputed"
    );
}

/// A v2 batch encoded except for its base offset, which is assigned under
/// the partition's append lock. The CRC does not cover the base offset, so
/// it is computed before the lock is taken, and sealing only writes eight
/// bytes.
///
/// The batch lives in one buffer: `HEADER_LEN` bytes reserved for the
/// header, then the payload, so the whole batch reaches the segment in one
/// copy.
pub(crate) struct EncodedBatch {
    pub header: BatchHeader,
    /// The log's clock when the producer encoded it (0: unknown), so the
    /// append need not read the clock again.
    pub now_ms: i64,
    buf: Vec<u8>,
    /// How the partition's sequence goes in under its lock.
    seq: SeqAssign,
}

/// A producer's identity in a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerFields {
    pub id: i64,
    pub epoch: i16,
    pub transactional: bool,
}

/// How a batch's base sequence is set under the append lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeqAssign {
    /// It is not: the batch carries its own (or none).
    Fixed,
    /// Written, and the CRC recomputed: for small batches, whose CRC
    /// costs less than the patch's factor.
    Recompute,
    /// Written, and the CRC patched with this factor (see
    /// [`v2::crc_patch`]), computed before the lock.
    Patch(u32),
}

/// Batches up to this size get their CRC recomputed when the sequence is
/// assigned; larger ones are patched.
const RECOMPUTE_MAX: usize = 2048;

fn seq_assign(batch_len: usize) -> SeqAssign {
    if batch_len <= RECOMPUTE_MAX {
        SeqAssign::Recompute
    } else {
        SeqAssign::Patch(v2::crc_zeros_factor(batch_len - v2::RECORD_COUNT_AT))
    }
}

/// A thread keeps its last batch buffer up to this capacity for its next
/// batch: a send of one small record otherwise spends more in `malloc` and
/// `free` than in copying its bytes.
const SPARE_MAX: usize = 256 << 10;

/// Larger buffers go back to a pool the whole process shares, holding at
/// most this many bytes in all. A batch of a thousand 1 KiB records needs a
/// megabyte: allocated afresh for every batch, it came from `mmap` or a
/// trimmed heap once the allocator's thresholds had moved, and each batch
/// paid a megabyte of page faults and zeroing (the harness's 1 KiB batched
/// appends ran at 0.61-0.77x raw after other engines had run in the same
/// process, 0.93x with the pool). Shared and bounded, the pool costs a
/// service with many producer threads at most this much memory.
pub(crate) const BIG_SPARES_MAX: usize = 16 << 20;

thread_local! {
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

static BIG_SPARES: parking_lot::Mutex<Vec<Vec<u8>>> = parking_lot::Mutex::new(Vec::new());

/// An empty buffer with room for at least `want` bytes: this thread's
/// spare, a pooled one for a large `want`, or a new one.
fn take_buffer(want: usize) -> Vec<u8> {
    let mut v = if want > SPARE_MAX {
        let mut pool = BIG_SPARES.lock();
        // The smallest that fits, so that larger ones stay for larger needs.
        let best = (0..pool.len())
            .filter(|&i| pool[i].capacity() >= want)
            .min_by_key(|&i| pool[i].capacity());
        best.map(|i| pool.swap_remove(i)).unwrap_or_default()
    } else {
        SPARE.try_with(Cell::take).unwrap_or_default()
    };
    if v.capacity() < want {
        v = Vec::with_capacity(want);
    }
    v.clear();
    v
}

/// Hands a finished buffer back for a later batch: a small one to this
/// thread, keeping whichever of it and the current spare is larger; a
/// large one to the shared pool while the pool has room for it, else in
/// place of a smaller pooled one.
fn give_back(buf: Vec<u8>) {
    let cap = buf.capacity();
    if cap <= SPARE_MAX {
        // (`try_with`: nothing to do while the thread is exiting.)
        let _ = SPARE.try_with(|s| {
            let old = s.take();
            s.set(if old.capacity() >= cap { old } else { buf });
        });
    } else if cap <= BIG_SPARES_MAX {
        let mut pool = BIG_SPARES.lock();
        let held: usize = pool.iter().map(Vec::capacity).sum();
        if held + cap <= BIG_SPARES_MAX {
            pool.push(buf);
        } else if let Some(smaller) = pool
            .iter_mut()
            .filter(|v| v.capacity() < cap)
            .min_by_key(|v| v.capacity())
        {
            if held - smaller.capacity() + cap <= BIG_SPARES_MAX {
                *smaller = buf;
            }
        }
    }
}

/// The capacities of the shared pool's buffers (tests).
#[cfg(test)]
pub(crate) fn big_spare_capacities() -> Vec<usize> {
    BIG_SPARES.lock().iter().map(Vec::capacity).collect()
}

/// The capacity of this thread's spare buffer (tests).
#[cfg(test)]
pub(crate) fn spare_capacity() -> usize {
    SPARE.with(|s| {
        let v = s.take();
        let cap = v.capacity();
        s.set(v);
        cap
    })
}

impl EncodedBatch {
    /// An empty records section with room reserved in front for the header:
    /// encode records into it, then pass it to [`EncodedBatch::new`]. Reuses
    /// the thread's spare buffer when it is large enough.
    pub fn section_buffer(capacity: usize) -> Vec<u8> {
        let mut v = take_buffer(HEADER_LEN + capacity);
        v.resize(HEADER_LEN, 0);
        v
    }

    /// Builds a batch from a finished records section.
    ///
    /// `section` comes from [`section_buffer`](Self::section_buffer) and
    /// holds, after the reserved header space, `record_count` records
    /// encoded against `base_timestamp`; they are zstd-compressed here when
    /// `zstd_level` is set.
    ///
    /// # Errors
    /// `InvalidInput` if the batch exceeds the format's limits (1 GiB, or
    /// an offset range past `i32::MAX`); an error from zstd.
    pub fn new(
        section: Vec<u8>,
        record_count: u32,
        last_offset_delta: u32,
        base_timestamp: i64,
        max_timestamp: i64,
        zstd_level: Option<i32>,
    ) -> std::io::Result<Self> {
        Self::build(
            section,
            record_count,
            last_offset_delta,
            [base_timestamp, max_timestamp],
            zstd_level,
            None,
        )
    }

    /// [`new`](Self::new) for a producer's batch: its id, epoch and
    /// whether it is transactional go in before the CRC is computed, and
    /// the partition assigns the sequence under its lock
    /// ([`assign_sequence`](Self::assign_sequence)).
    pub fn for_producer(
        section: Vec<u8>,
        record_count: u32,
        base_timestamp: i64,
        max_timestamp: i64,
        zstd_level: Option<i32>,
        producer: ProducerFields,
    ) -> std::io::Result<Self> {
        Self::build(
            section,
            record_count,
            record_count.saturating_sub(1),
            [base_timestamp, max_timestamp],
            zstd_level,
            Some(producer),
        )
    }

    fn build(
        section: Vec<u8>,
        record_count: u32,
        last_offset_delta: u32,
        [base_timestamp, max_timestamp]: [i64; 2],
        zstd_level: Option<i32>,
        producer: Option<ProducerFields>,
    ) -> std::io::Result<Self> {
        debug_assert!(section.len() >= HEADER_LEN);
        let (mut buf, codec) = match zstd_level {
            Some(level) => {
                let compressed = compress_section(&section[HEADER_LEN..], level)?;
                give_back(section);
                (compressed, CODEC_ZSTD)
            }
            None => (section, CODEC_NONE),
        };
        let total = buf.len();
        let invalid = |what| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
        if total > MAX_BATCH_BYTES {
            return Err(invalid("batch exceeds the format's maximum size"));
        }
        let (Ok(lod), Ok(count)) = (
            i32::try_from(last_offset_delta),
            i32::try_from(record_count),
        ) else {
            return Err(invalid("batch spans more offsets than a Kafka batch can"));
        };
        let p = producer.unwrap_or(ProducerFields {
            id: NO_PRODUCER_ID,
            epoch: NO_PRODUCER_EPOCH,
            transactional: false,
        });
        let codec = if p.transactional {
            codec | super::common::ATTR_TRANSACTIONAL
        } else {
            codec
        };
        let seq = if producer.is_some() { 0 } else { NO_SEQUENCE };
        let header = BatchHeader {
            version: Version::V2,
            length: (total - v2::LENGTH_OVERHEAD) as u32,
            crc: 0,
            magic: v2::MAGIC,
            base_offset: 0,
            leader_epoch: v2::LEADER_EPOCH,
            attributes: codec,
            last_offset_delta,
            record_count,
            base_timestamp,
            max_timestamp,
            producer_id: p.id,
            producer_epoch: p.epoch,
            base_sequence: seq,
        };
        let h = &mut buf[..HEADER_LEN];
        h[v2::LENGTH_AT..v2::LEADER_EPOCH_AT]
            .copy_from_slice(&(header.length as i32).to_be_bytes());
        h[v2::LEADER_EPOCH_AT..v2::MAGIC_AT].copy_from_slice(&header.leader_epoch.to_be_bytes());
        h[v2::MAGIC_AT] = v2::MAGIC;
        h[v2::ATTRIBUTES_AT..v2::LAST_OFFSET_DELTA_AT]
            .copy_from_slice(&(codec as i16).to_be_bytes());
        h[v2::LAST_OFFSET_DELTA_AT..v2::BASE_TIMESTAMP_AT].copy_from_slice(&lod.to_be_bytes());
        h[v2::BASE_TIMESTAMP_AT..v2::MAX_TIMESTAMP_AT]
            .copy_from_slice(&base_timestamp.to_be_bytes());
        h[v2::MAX_TIMESTAMP_AT..v2::PRODUCER_ID_AT].copy_from_slice(&max_timestamp.to_be_bytes());
        h[v2::PRODUCER_ID_AT..v2::PRODUCER_EPOCH_AT].copy_from_slice(&p.id.to_be_bytes());
        h[v2::PRODUCER_EPOCH_AT..v2::BASE_SEQUENCE_AT].copy_from_slice(&p.epoch.to_be_bytes());
        h[v2::BASE_SEQUENCE_AT..v2::RECORD_COUNT_AT].copy_from_slice(&seq.to_be_bytes());
        h[v2::RECORD_COUNT_AT..HEADER_LEN].copy_from_slice(&count.to_be_bytes());
        let mut b = EncodedBatch {
            header,
            now_ms: 0,
            buf,
            seq: SeqAssign::Fixed,
        };
        if producer.is_some() {
            b.seq = seq_assign(b.buf.len());
        }
        // A small producer batch gets its CRC once, under the lock, with
        // its sequence; every other batch now.
        if b.seq != SeqAssign::Recompute {
            b.update_crc();
        }
        Ok(b)
    }

    /// A batch received from outside and validated by
    /// [`foreign::validate`](super::foreign::validate): its bytes, copied
    /// unchanged but for the leader epoch (streamlog's, outside the CRC);
    /// the base offset is written by [`seal`](Self::seal).
    pub fn from_foreign(bytes: &[u8], header: BatchHeader) -> Self {
        let mut buf = take_buffer(bytes.len());
        buf.extend_from_slice(bytes);
        buf[v2::LEADER_EPOCH_AT..v2::MAGIC_AT].copy_from_slice(&v2::LEADER_EPOCH.to_be_bytes());
        EncodedBatch {
            header: BatchHeader {
                leader_epoch: v2::LEADER_EPOCH,
                ..header
            },
            now_ms: 0,
            buf,
            seq: SeqAssign::Fixed,
        }
    }

    /// Recomputes the CRC after a header field it covers changed.
    fn update_crc(&mut self) {
        let crc = v2::crc_of(&self.buf);
        self.header.crc = crc;
        self.buf[v2::CRC_AT..v2::ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
    }

    /// A transaction marker: a control batch of one control record
    /// (COMMIT or ABORT) of producer `id` at `epoch`, transactional, with
    /// Kafka's key and value, timestamped `now`.
    pub fn marker(id: i64, epoch: i16, kind: v2::ControlType, now: i64) -> std::io::Result<Self> {
        let key = v2::control_key(kind);
        let value = v2::marker_value(0);
        let r = EncodeRecord {
            offset_delta: 0,
            timestamp: now,
            key: Some(&key),
            value: Some(&value),
            headers: &[],
        };
        let mut section = Self::section_buffer(32);
        encode_record_body(&mut section, &r, now, record_body_len(&r, now));
        let mut b = Self::new(section, 1, 0, now, now, None)?;
        b.header.attributes |= super::common::ATTR_CONTROL;
        // Markers carry no sequence (Kafka writes −1).
        b.set_producer(id, epoch, NO_SEQUENCE, true);
        Ok(b)
    }

    /// Marks the batch as a producer's whose sequence number the partition
    /// assigns under its append lock ([`assign_sequence`](Self::assign_sequence)):
    /// the CRC is computed now, with sequence 0, and patched then.
    /// Whether the partition assigns this batch's sequence number.
    #[inline]
    pub fn needs_sequence(&self) -> bool {
        self.seq != SeqAssign::Fixed
    }

    /// Sets the base sequence of a batch made by
    /// [`for_producer`](Self::for_producer): the CRC is recomputed for a
    /// small batch and patched for a large one, never a pass over a large
    /// batch under the append lock.
    #[inline]
    pub fn assign_sequence(&mut self, seq: i32) {
        debug_assert!(self.needs_sequence());
        let at = v2::BASE_SEQUENCE_AT..v2::RECORD_COUNT_AT;
        let old: [u8; 4] = self.header.base_sequence.to_be_bytes();
        let new = seq.to_be_bytes();
        self.buf[at].copy_from_slice(&new);
        let crc = match self.seq {
            SeqAssign::Patch(factor) => v2::crc_patch(self.header.crc, old, new, factor),
            _ => v2::crc_of(&self.buf),
        };
        self.header.base_sequence = seq;
        self.header.crc = crc;
        self.buf[v2::CRC_AT..v2::ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
    }

    /// Marks the batch as a producer's: its id, epoch and first sequence
    /// number, and whether it belongs to a transaction.
    pub fn set_producer(&mut self, id: i64, epoch: i16, base_sequence: i32, transactional: bool) {
        let h = &mut self.header;
        h.producer_id = id;
        h.producer_epoch = epoch;
        h.base_sequence = base_sequence;
        if transactional {
            h.attributes |= super::common::ATTR_TRANSACTIONAL;
        }
        let (attrs, b) = (h.attributes, &mut self.buf);
        b[v2::ATTRIBUTES_AT..v2::LAST_OFFSET_DELTA_AT]
            .copy_from_slice(&(attrs as i16).to_be_bytes());
        b[v2::PRODUCER_ID_AT..v2::PRODUCER_EPOCH_AT].copy_from_slice(&id.to_be_bytes());
        b[v2::PRODUCER_EPOCH_AT..v2::BASE_SEQUENCE_AT].copy_from_slice(&epoch.to_be_bytes());
        b[v2::BASE_SEQUENCE_AT..v2::RECORD_COUNT_AT].copy_from_slice(&base_sequence.to_be_bytes());
        self.update_crc();
    }

    /// Overwrites header fields the encoder chose (attributes, leader
    /// epoch, producer fields) and recomputes the CRC: for tools and fuzz
    /// targets that re-encode a decoded batch exactly.
    #[cfg(any(test, feature = "internals"))]
    pub fn set_raw_fields(
        &mut self,
        attributes: u16,
        leader_epoch: i32,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) {
        let h = &mut self.header;
        h.attributes = attributes;
        h.leader_epoch = leader_epoch;
        let b = &mut self.buf;
        b[v2::LEADER_EPOCH_AT..v2::MAGIC_AT].copy_from_slice(&leader_epoch.to_be_bytes());
        b[v2::ATTRIBUTES_AT..v2::LAST_OFFSET_DELTA_AT]
            .copy_from_slice(&(attributes as i16).to_be_bytes());
        self.set_producer(producer_id, producer_epoch, base_sequence, false);
    }

    /// The batch's size on disk.
    pub fn total_len(&self) -> usize {
        self.buf.len()
    }

    /// Fixes the base offset and returns the finished batch. The CRC does
    /// not cover the base offset: nothing else changes.
    #[inline]
    pub fn seal(&mut self, base_offset: u64) -> &[u8] {
        self.header.base_offset = base_offset;
        self.buf[v2::BASE_OFFSET_AT..v2::LENGTH_AT].copy_from_slice(&base_offset.to_be_bytes());
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

/// A v2 batch holding `records` of the batch `h` (of either layout), with
/// `h`'s base offset, base timestamp, last offset delta and producer
/// fields: records of a v2 batch are copied verbatim, those of a v1 batch
/// re-encoded (same deltas, keys, values, headers). Compaction uses it for
/// the records it keeps, fetches to hand out a v1 batch in Kafka's layout.
///
/// # Errors
/// From zstd, or a batch past the format's limits.
pub(crate) fn rebuild_v2(
    h: &BatchHeader,
    records: &[RecordView<'_>],
    zstd_level: Option<i32>,
) -> std::io::Result<EncodedBatch> {
    let mut section = EncodedBatch::section_buffer(records.iter().map(|r| r.raw.len()).sum());
    let mut max_ts = i64::MIN;
    let mut headers = Vec::new();
    for r in records {
        max_ts = max_ts.max(h.base_timestamp.wrapping_add(r.timestamp_delta));
        if h.version == Version::V2 {
            section.extend_from_slice(r.raw);
            continue;
        }
        headers.clear();
        let mut it = r.header_iter();
        while let Some((k, v)) = it.next_checked() {
            headers.push((Cow::Borrowed(k), v.map(Cow::Borrowed)));
        }
        let e = EncodeRecord {
            offset_delta: r.offset_delta,
            timestamp: h.base_timestamp.wrapping_add(r.timestamp_delta),
            key: r.key,
            value: r.value,
            headers: &headers,
        };
        encode_record_body(
            &mut section,
            &e,
            h.base_timestamp,
            record_body_len(&e, h.base_timestamp),
        );
    }
    if records.is_empty() {
        max_ts = h.base_timestamp;
    }
    let mut b = EncodedBatch::new(
        section,
        records.len() as u32,
        h.last_offset_delta,
        h.base_timestamp,
        max_ts,
        zstd_level,
    )?;
    if h.producer_id != NO_PRODUCER_ID || h.is_transactional() {
        b.set_producer(
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.is_transactional(),
        );
    }
    b.seal(h.base_offset);
    Ok(b)
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
