//! The codecs of exactly-once, all in Kafka's layouts (big-endian):
//!
//! - `__transaction_state` records: key `(version i16 = 0, transactional
//!   id string)`, value `TransactionLogValue` version 0 (read: 0 and 1);
//! - aborted-transaction index entries (`.txnindex`, 34 bytes);
//! - producer-state snapshots (`.snapshot`, version 1, CRC-32C).
//!
//! Pure functions, no I/O; FORMAT.md §10 specifies every byte, and the
//! tests below pin its examples.

use super::batch::v2::crc32c;

/// The version of the `__transaction_state` key this build writes.
pub(crate) const TXN_KEY_VERSION: i16 = 0;
/// The version of the `__transaction_state` value this build writes.
pub(crate) const TXN_VALUE_VERSION: i16 = 0;

/// Where a transactional id's transaction stands, with Kafka's codes
/// (`TransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnStatus {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnStatus {
    fn from_code(c: i8) -> Option<TxnStatus> {
        use TxnStatus::*;
        Some(match c {
            0 => Empty,
            1 => Ongoing,
            2 => PrepareCommit,
            3 => PrepareAbort,
            4 => CompleteCommit,
            5 => CompleteAbort,
            6 => Dead,
            7 => PrepareEpochFence,
            _ => return None,
        })
    }
}

/// One `__transaction_state` value: the state of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnLogValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    /// The partitions of the transaction, by topic, in order.
    pub partitions: Vec<(String, Vec<i32>)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

/// A `__transaction_state` key for `id`.
pub(crate) fn encode_txn_key(id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + id.len());
    out.extend_from_slice(&TXN_KEY_VERSION.to_be_bytes());
    put_str(&mut out, id);
    out
}

/// The transactional id of a `__transaction_state` key.
pub(crate) fn decode_txn_key(key: &[u8]) -> Result<String, String> {
    let mut r = Reader(key);
    let v = r.i16()?;
    if v != TXN_KEY_VERSION {
        return Err(format!("transaction key version {v} is not 0"));
    }
    let id = r.string()?;
    r.end()?;
    Ok(id)
}

/// A `__transaction_state` value, version 0.
pub(crate) fn encode_txn_value(v: &TxnLogValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&TXN_VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&v.producer_id.to_be_bytes());
    out.extend_from_slice(&v.producer_epoch.to_be_bytes());
    out.extend_from_slice(&v.timeout_ms.to_be_bytes());
    out.push(v.status as u8);
    out.extend_from_slice(&(v.partitions.len() as i32).to_be_bytes());
    for (topic, parts) in &v.partitions {
        put_str(&mut out, topic);
        out.extend_from_slice(&(parts.len() as i32).to_be_bytes());
        for p in parts {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&v.last_update_ms.to_be_bytes());
    out.extend_from_slice(&v.start_ms.to_be_bytes());
    out
}

/// A `__transaction_state` value of version 0 or 1 (Kafka's flexible
/// layout: compact strings and arrays, tagged fields, which are skipped).
pub(crate) fn decode_txn_value(bytes: &[u8]) -> Result<TxnLogValue, String> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    let flexible = match version {
        0 => false,
        1 => true,
        v => return Err(format!("transaction value version {v} is not 0 or 1")),
    };
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let code = r.i8()?;
    let status =
        TxnStatus::from_code(code).ok_or_else(|| format!("unknown transaction status {code}"))?;
    let count = r.array_len(flexible)?;
    let mut partitions = Vec::new();
    for _ in 0..count.unwrap_or(0) {
        let topic = if flexible {
            r.compact_string()?
        } else {
            r.string()?
        };
        // Kafka's schema makes only the topic array nullable.
        let n = r
            .array_len(flexible)?
            .ok_or_else(|| "null partition array".to_string())?;
        let mut ids = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            ids.push(r.i32()?);
        }
        if flexible {
            r.skip_tags()?;
        }
        partitions.push((topic, ids));
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    if flexible {
        r.skip_tags()?;
    }
    r.end()?;
    Ok(TxnLogValue {
        producer_id,
        producer_epoch,
        timeout_ms,
        status,
        partitions,
        last_update_ms,
        start_ms,
    })
}

/// The size of one `.txnindex` entry.
pub(crate) const ABORTED_TXN_LEN: usize = 34;
/// The version of `.txnindex` entries.
pub(crate) const ABORTED_TXN_VERSION: i16 = 0;

/// One aborted transaction in one partition: the producer, its first and
/// last offset there (the last is the ABORT marker's), and the last
/// stable offset once it was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    pub last_offset: u64,
    pub last_stable_offset: u64,
}

impl AbortedTxn {
    /// The 34-byte `.txnindex` entry.
    pub(crate) fn encode(&self) -> [u8; ABORTED_TXN_LEN] {
        let mut out = [0u8; ABORTED_TXN_LEN];
        out[0..2].copy_from_slice(&ABORTED_TXN_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&(self.first_offset as i64).to_be_bytes());
        out[18..26].copy_from_slice(&(self.last_offset as i64).to_be_bytes());
        out[26..34].copy_from_slice(&(self.last_stable_offset as i64).to_be_bytes());
        out
    }

    /// Decodes the entries of a whole `.txnindex` file. A torn last entry
    /// (a crash while it was written) is left out; an entry of another
    /// version or with impossible offsets (a marker always follows the
    /// transaction's first record: first < last) ends the file there, so
    /// a zero-filled tail is never an entry.
    pub(crate) fn decode_all(bytes: &[u8]) -> Vec<AbortedTxn> {
        let mut out = Vec::with_capacity(bytes.len() / ABORTED_TXN_LEN);
        for e in bytes.chunks_exact(ABORTED_TXN_LEN) {
            let mut r = Reader(e);
            let parsed = (|| -> Result<Option<AbortedTxn>, String> {
                if r.i16()? != ABORTED_TXN_VERSION {
                    return Ok(None);
                }
                let (pid, first, last, lso) = (r.i64()?, r.i64()?, r.i64()?, r.i64()?);
                if first < 0 || last <= first || lso < 0 {
                    return Ok(None);
                }
                Ok(Some(AbortedTxn {
                    producer_id: pid,
                    first_offset: first as u64,
                    last_offset: last as u64,
                    last_stable_offset: lso as u64,
                }))
            })();
            match parsed {
                Ok(Some(a)) => out.push(a),
                _ => break,
            }
        }
        out
    }
}

/// The version of producer-state snapshots.
pub(crate) const SNAPSHOT_VERSION: i16 = 1;
/// The size of one snapshot entry.
pub(crate) const SNAPSHOT_ENTRY_LEN: usize = 46;
const SNAPSHOT_ENTRIES_AT: usize = 6;

/// One producer in a snapshot: Kafka's entry, the producer's last batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_offset: i64,
    /// The last batch's last sequence minus its first.
    pub offset_delta: i32,
    pub timestamp: i64,
    pub coordinator_epoch: i32,
    /// The first offset of the producer's open transaction, or −1.
    pub current_txn_first_offset: i64,
}

/// A snapshot file: version, CRC-32C of the entries section, entries.
pub(crate) fn encode_snapshot(entries: &[SnapshotEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + entries.len() * SNAPSHOT_ENTRY_LEN);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as i32).to_be_bytes());
    for e in entries {
        out.extend_from_slice(&e.producer_id.to_be_bytes());
        out.extend_from_slice(&e.epoch.to_be_bytes());
        out.extend_from_slice(&e.last_sequence.to_be_bytes());
        out.extend_from_slice(&e.last_offset.to_be_bytes());
        out.extend_from_slice(&e.offset_delta.to_be_bytes());
        out.extend_from_slice(&e.timestamp.to_be_bytes());
        out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        out.extend_from_slice(&e.current_txn_first_offset.to_be_bytes());
    }
    let crc = crc32c(&out[SNAPSHOT_ENTRIES_AT..]);
    out[2..6].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a snapshot file, checking its version, CRC and length.
pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<Vec<SnapshotEntry>, String> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version != SNAPSHOT_VERSION {
        return Err(format!("snapshot version {version} is not 1"));
    }
    let stored = r.i32()? as u32;
    let computed = crc32c(&bytes[SNAPSHOT_ENTRIES_AT..]);
    if stored != computed {
        return Err(format!(
            "snapshot CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let n = r.i32()?;
    let n = usize::try_from(n).map_err(|_| format!("negative entry count {n}"))?;
    if r.0.len() != n.saturating_mul(SNAPSHOT_ENTRY_LEN) {
        return Err(format!("{n} entries do not fill {} bytes", r.0.len()));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(SnapshotEntry {
            producer_id: r.i64()?,
            epoch: r.i16()?,
            last_sequence: r.i32()?,
            last_offset: r.i64()?,
            offset_delta: r.i32()?,
            timestamp: r.i64()?,
            coordinator_epoch: r.i32()?,
            current_txn_first_offset: r.i64()?,
        });
    }
    Ok(out)
}

/// The `producer-ids` file: a metadata file (§9 of FORMAT.md) of kind
/// `producer-ids` with one line, the first id of the next unallocated block.
pub(crate) fn encode_producer_ids(next: i64) -> Vec<u8> {
    super::meta::encode("producer-ids", &[format!("next {next}")])
}

/// The first id of the next unallocated block, from a `producer-ids` file.
pub(crate) fn decode_producer_ids(bytes: &[u8]) -> Result<i64, String> {
    let lines = super::meta::decode("producer-ids", bytes).map_err(|e| format!("{e:?}"))?;
    match lines.as_slice() {
        [line] => line
            .strip_prefix("next ")
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|&n| n >= 0)
            .ok_or_else(|| format!("expected \"next <id>\", found {line:?}")),
        _ => Err(format!("expected one line, found {}", lines.len())),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over big-endian fields; every read checks the length.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("cut off: {n} bytes wanted, {} left", self.0.len()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn i8(&mut self) -> Result<i8, String> {
        Ok(i8::from_be_bytes(self.arr()?))
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.arr()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.arr()?))
    }
    /// Kafka's unsigned varint: at most five bytes, at most `u32::MAX`.
    fn uvarint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(v)
                    .map(u64::from)
                    .map_err(|_| "varint past u32".to_string());
            }
        }
        Err("varint longer than 5 bytes".into())
    }
    fn utf8(b: &[u8]) -> Result<String, String> {
        String::from_utf8(b.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.i16()?;
        let n = usize::try_from(n).map_err(|_| format!("string length {n}"))?;
        Self::utf8(self.take(n)?)
    }
    fn compact_string(&mut self) -> Result<String, String> {
        let n = self.uvarint()?;
        let n = usize::try_from(n.checked_sub(1).ok_or("null string")?)
            .map_err(|_| "string too long".to_string())?;
        Self::utf8(self.take(n)?)
    }
    /// An array's length; `None` for a null array.
    fn array_len(&mut self, compact: bool) -> Result<Option<usize>, String> {
        let n: i64 = if compact {
            // 0 is null; the length is one less (at most u32::MAX, so no
            // overflow).
            self.uvarint()? as i64 - 1
        } else {
            i64::from(self.i32()?)
        };
        if n == -1 {
            return Ok(None);
        }
        if n < 0 {
            return Err(format!("array length {n}"));
        }
        // Every element takes at least one byte: a hostile count fails here.
        if n as u64 > self.0.len() as u64 {
            return Err(format!("array of {n} elements in {} bytes", self.0.len()));
        }
        Ok(Some(n as usize))
    }
    fn skip_tags(&mut self) -> Result<(), String> {
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let len = self.uvarint()?;
            self.take(usize::try_from(len).map_err(|_| "tag too long".to_string())?)?;
        }
        Ok(())
    }
    fn end(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes left over", self.0.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_key_bytes_are_pinned() {
        let k = encode_txn_key("copier-1");
        assert_eq!(k, b"\x00\x00\x00\x08copier-1");
        assert_eq!(decode_txn_key(&k).unwrap(), "copier-1");
        assert!(decode_txn_key(b"\x00\x01\x00\x00").is_err());
    }

    #[test]
    fn txn_value_bytes_are_pinned() {
        let v = TxnLogValue {
            producer_id: 1000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            status: TxnStatus::PrepareCommit,
            partitions: vec![("out".into(), vec![0, 2])],
            last_update_ms: 5,
            start_ms: 4,
        };
        let b = encode_txn_value(&v);
        let want: Vec<u8> = [
            &[0, 0][..],                           // version 0
            &1000i64.to_be_bytes(),                // producer id
            &[0, 3],                               // epoch
            &60_000i32.to_be_bytes(),              // timeout
            &[2],                                  // PrepareCommit
            &[0, 0, 0, 1],                         // one topic
            &[0, 3],                               // "out"
            b"out",                                //
            &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2], // partitions 0 and 2
            &5i64.to_be_bytes(),
            &4i64.to_be_bytes(),
        ]
        .concat();
        assert_eq!(b, want);
        assert_eq!(decode_txn_value(&b).unwrap(), v);
        for cut in 0..b.len() {
            assert!(decode_txn_value(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_partition_count_below_minus_one_is_refused() {
        // Found by the txn_files fuzz target: −1 is null, anything lower is
        // damage, not another null.
        let mut v = encode_txn_value(&TxnLogValue {
            producer_id: 7,
            producer_epoch: 0,
            timeout_ms: 0,
            status: TxnStatus::Empty,
            partitions: vec![],
            last_update_ms: 9,
            start_ms: -1,
        });
        v[17..21].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(decode_txn_value(&v).unwrap().partitions, vec![]);
        v[17..21].copy_from_slice(&(-2i32).to_be_bytes());
        assert!(decode_txn_value(&v).is_err());
        // A topic whose partition ids are null: not in Kafka's schema.
        let mut w = encode_txn_value(&TxnLogValue {
            producer_id: 7,
            producer_epoch: 0,
            timeout_ms: 0,
            status: TxnStatus::Ongoing,
            partitions: vec![("t".into(), vec![])],
            last_update_ms: 9,
            start_ms: -1,
        });
        w[24..28].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(decode_txn_value(&w).unwrap_err().contains("null"));
    }

    #[test]
    fn an_overlong_varint_is_refused_not_a_panic() {
        // Found by the txn_files fuzz target: a ten-byte varint length
        // overflowed `as i64 - 1`.
        let mut b = vec![0, 1];
        b.extend_from_slice(&7i64.to_be_bytes());
        b.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1]);
        b.extend_from_slice(&[0x80; 9]);
        b.push(0x01);
        assert!(decode_txn_value(&b).is_err());
    }

    #[test]
    fn txn_value_version_1_is_read() {
        // Kafka's flexible layout: compact string and arrays, tagged fields
        // (a NextProducerId tag here) that are skipped.
        let mut b = vec![0, 1];
        b.extend_from_slice(&7i64.to_be_bytes());
        b.extend_from_slice(&[0, 1]);
        b.extend_from_slice(&1000i32.to_be_bytes());
        b.push(1);
        b.push(2); // one topic
        b.push(2);
        b.push(b't');
        b.push(2); // one partition
        b.extend_from_slice(&3i32.to_be_bytes());
        b.push(0); // the topic's tags
        b.extend_from_slice(&9i64.to_be_bytes());
        b.extend_from_slice(&8i64.to_be_bytes());
        b.extend_from_slice(&[1, 1, 8]); // one tag: #1, 8 bytes
        b.extend_from_slice(&11i64.to_be_bytes());
        let v = decode_txn_value(&b).unwrap();
        assert_eq!(v.producer_id, 7);
        assert_eq!(v.status, TxnStatus::Ongoing);
        assert_eq!(v.partitions, vec![("t".to_string(), vec![3])]);
        assert_eq!((v.last_update_ms, v.start_ms), (9, 8));
    }

    #[test]
    fn aborted_txn_entry_is_34_bytes() {
        let a = AbortedTxn {
            producer_id: 5,
            first_offset: 10,
            last_offset: 20,
            last_stable_offset: 21,
        };
        let e = a.encode();
        let want: Vec<u8> = [
            &[0, 0][..],
            &5i64.to_be_bytes(),
            &10i64.to_be_bytes(),
            &20i64.to_be_bytes(),
            &21i64.to_be_bytes(),
        ]
        .concat();
        assert_eq!(e.to_vec(), want);
        let mut two = [e, e].concat();
        two.extend_from_slice(&e[..7]); // a torn third entry
        assert_eq!(AbortedTxn::decode_all(&two), vec![a, a]);
        // A zero-filled entry (a crash kept the length, not the bytes)
        // ends the file: first = last = 0 is no transaction.
        let zeros = [e.to_vec(), vec![0; ABORTED_TXN_LEN], e.to_vec()].concat();
        assert_eq!(AbortedTxn::decode_all(&zeros), vec![a]);
    }

    #[test]
    fn producer_ids_file_is_pinned() {
        let b = encode_producer_ids(2000);
        let text = std::str::from_utf8(&b).unwrap();
        assert!(
            text.starts_with("streamlog-producer-ids 1\nnext 2000\ncrc32 "),
            "{text}"
        );
        assert_eq!(decode_producer_ids(&b).unwrap(), 2000);
        let mut bad = b.clone();
        bad[30] ^= 1;
        assert!(decode_producer_ids(&bad).is_err());
    }

    #[test]
    fn snapshot_bytes_are_pinned() {
        let e = SnapshotEntry {
            producer_id: 1,
            epoch: 2,
            last_sequence: 3,
            last_offset: 4,
            offset_delta: 5,
            timestamp: 6,
            coordinator_epoch: 7,
            current_txn_first_offset: -1,
        };
        let b = encode_snapshot(&[e]);
        assert_eq!(b.len(), 10 + SNAPSHOT_ENTRY_LEN);
        assert_eq!(&b[..2], &[0, 1]);
        assert_eq!(&b[2..6], &crc32c(&b[6..]).to_be_bytes());
        assert_eq!(&b[6..10], &[0, 0, 0, 1]);
        assert_eq!(&b[10..18], &1i64.to_be_bytes());
        assert_eq!(&b[48..56], &(-1i64).to_be_bytes());
        assert_eq!(decode_snapshot(&b).unwrap(), vec![e]);
        let mut bad = b.clone();
        bad[20] ^= 1;
        assert!(decode_snapshot(&bad).unwrap_err().contains("CRC"));
        assert!(decode_snapshot(&b[..b.len() - 1]).is_err());
        assert_eq!(decode_snapshot(&encode_snapshot(&[])).unwrap(), vec![]);
    }
}
