//! The records of the internal `__consumer_offsets` topic (FORMAT.md §8):
//! the key and value codecs and how a replayed record applies to the
//! in-memory image of committed offsets. A stored record has a key
//! `(group, topic, partition)` and a value holding the committed offset;
//! the latest record per key wins, and a null value deletes.

use std::collections::HashMap;

use crate::error::CorruptionKind;
use crate::group::offsets::{OffsetAndMetadata, OffsetKey};
use crate::record::TopicPartition;

/// The key version streamlog writes: Kafka's `OffsetCommitKey`, record
/// type 1.
const KEY_VERSION: i16 = 1;
/// The value version streamlog writes: Kafka's `OffsetCommitValue` v3.
const VALUE_VERSION: i16 = 3;
/// The first two bytes of the little-endian key and value of streamlog's
/// own first schema (version 1, `01 00`), still read.
const OLD_SCHEMA: [u8; 2] = [1, 0];

fn put_str16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Key: Kafka's `OffsetCommitKey` v1 — version i16 = 1, group (an i16
/// length, then UTF-8), topic (likewise), partition i32; big-endian. Group
/// ids are at most 32,767 bytes (checked before anything is written).
pub(crate) fn encode_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + tp.topic.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_str16(&mut out, group);
    put_str16(&mut out, &tp.topic);
    out.extend_from_slice(&tp.partition.to_be_bytes());
    out
}

/// Value: Kafka's `OffsetCommitValue` v3 — version i16 = 3, offset i64,
/// leader epoch i32 (−1: none), metadata (an i16 length, then UTF-8),
/// commit timestamp i64; big-endian.
pub(crate) fn encode_value(o: &OffsetAndMetadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + o.metadata.len());
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&o.offset.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    put_str16(&mut out, &o.metadata);
    out.extend_from_slice(&o.commit_timestamp.to_be_bytes());
    out
}

/// Reads fixed-size integers, big-endian (`be`) or little-endian.
struct Reader<'a> {
    buf: &'a [u8],
    be: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.buf.get(..n)?, self.buf.get(n..)?);
        self.buf = b;
        Some(a)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        if !self.be {
            a.reverse();
        }
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }
    fn str(&mut self, n: usize) -> Option<String> {
        std::str::from_utf8(self.take(n)?).ok().map(str::to_owned)
    }
    /// Kafka's STRING: i16 length (non-negative), UTF-8.
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.u16()? as i16).ok()?;
        self.str(n)
    }
    /// Kafka's COMPACT_STRING: uvarint length + 1.
    fn compact_string(&mut self) -> Option<String> {
        let n = usize::try_from(self.uvarint()?.checked_sub(1)?).ok()?;
        self.str(n)
    }
    fn uvarint(&mut self) -> Option<u64> {
        let (v, n) = crate::format::varint::get_uvarint(self.buf)?;
        self.buf = &self.buf[n..];
        Some(v)
    }
    /// Kafka's tagged fields: a count, then (tag, size, bytes) each.
    fn skip_tagged_fields(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let n = usize::try_from(self.uvarint()?).ok()?;
            self.take(n)?;
        }
        Some(())
    }
    fn done(&self) -> bool {
        self.buf.is_empty()
    }
}

fn malformed(what: &'static str) -> CorruptionKind {
    CorruptionKind::BadRecord { reason: what }
}

/// Decodes a key: Kafka's offset-commit key (versions 0 and 1), or
/// streamlog's first, little-endian one. `Ok(None)` for a key of another
/// type or version (Kafka's group metadata, or a newer writer; skipped, as
/// Kafka does).
pub(crate) fn decode_key(b: &[u8]) -> Result<Option<OffsetKey>, CorruptionKind> {
    let bad = || malformed("malformed __consumer_offsets key");
    let old = b.get(..2) == Some(&OLD_SCHEMA[..]);
    let mut r = Reader { buf: b, be: !old };
    let version = r.u16().ok_or_else(bad)?;
    let (group, topic, p) = if old {
        let n = r.u16().ok_or_else(bad)? as usize;
        let group = r.str(n).ok_or_else(bad)?;
        let n = r.u16().ok_or_else(bad)? as usize;
        let topic = r.str(n).ok_or_else(bad)?;
        (group, topic, r.u32().ok_or_else(bad)?)
    } else {
        if version > 1 {
            return Ok(None);
        }
        let group = r.string().ok_or_else(bad)?;
        let topic = r.string().ok_or_else(bad)?;
        let p = r.u32().ok_or_else(bad)?;
        if p > i32::MAX as u32 {
            return Err(bad());
        }
        (group, topic, p)
    };
    if !r.done() {
        return Err(bad());
    }
    Ok(Some((group, topic, p)))
}

/// Decodes a value: Kafka's offset-commit value (versions 0 to 4), or
/// streamlog's first, little-endian one. `Ok(None)` for an unknown
/// version.
pub(crate) fn decode_value(b: &[u8]) -> Result<Option<OffsetAndMetadata>, CorruptionKind> {
    let bad = || malformed("malformed __consumer_offsets value");
    let old = b.get(..2) == Some(&OLD_SCHEMA[..]);
    let mut r = Reader { buf: b, be: !old };
    let version = r.u16().ok_or_else(bad)? as i16;
    let (offset, metadata, commit_timestamp);
    if old {
        offset = r.u64().ok_or_else(bad)?;
        commit_timestamp = r.u64().ok_or_else(bad)? as i64;
        let n = r.u32().ok_or_else(bad)? as usize;
        metadata = r.str(n).ok_or_else(bad)?;
    } else {
        if !(0..=4).contains(&version) {
            return Ok(None);
        }
        offset = r.u64().filter(|&o| o <= i64::MAX as u64).ok_or_else(bad)?;
        if version >= 3 {
            r.u32().ok_or_else(bad)?; // leader epoch
        }
        metadata = if version >= 4 {
            r.compact_string()
        } else {
            r.string()
        }
        .ok_or_else(bad)?;
        commit_timestamp = r.u64().ok_or_else(bad)? as i64;
        if version == 1 {
            r.u64().ok_or_else(bad)?; // expire timestamp
        }
        if version >= 4 {
            r.skip_tagged_fields().ok_or_else(bad)?;
        }
    }
    if !r.done() {
        return Err(bad());
    }
    Ok(Some(OffsetAndMetadata {
        offset,
        metadata,
        commit_timestamp,
    }))
}

/// Applies one replayed record to the in-memory image.
pub(crate) fn apply(
    map: &mut HashMap<OffsetKey, OffsetAndMetadata>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<(), CorruptionKind> {
    let Some(key) = key else {
        return Err(malformed("__consumer_offsets record without a key"));
    };
    let Some(k) = decode_key(key)? else {
        return Ok(());
    };
    match value {
        None => {
            map.remove(&k);
        }
        Some(v) => {
            if let Some(o) = decode_value(v)? {
                map.insert(k, o);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FORMAT.md §8: Kafka's offset-commit key v1 and value v3.
    #[test]
    fn pins_key_and_value_bytes() {
        let k = encode_key("g", &TopicPartition::new("t", 2));
        assert_eq!(k, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]);
        let mut o = OffsetAndMetadata::new(7).metadata("m");
        o.commit_timestamp = 5;
        let v = encode_value(&o);
        #[rustfmt::skip]
        assert_eq!(
            v,
            [0, 3, 0, 0, 0, 0, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0, 1, b'm', 0, 0, 0, 0, 0, 0, 0, 5]
        );
        assert_eq!(decode_key(&k), Ok(Some(("g".into(), "t".into(), 2))));
        assert_eq!(decode_value(&v), Ok(Some(o)));
    }

    /// streamlog's first schema (little-endian, version 1) is still read.
    #[test]
    fn reads_the_first_schema() {
        let k = [1, 0, 1, 0, b'g', 1, 0, b't', 2, 0, 0, 0];
        let v = [
            1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'm',
        ];
        assert_eq!(decode_key(&k), Ok(Some(("g".into(), "t".into(), 2))));
        let mut o = OffsetAndMetadata::new(7).metadata("m");
        o.commit_timestamp = 5;
        assert_eq!(decode_value(&v), Ok(Some(o)));
    }

    /// Every Kafka value version a broker may have written (0 to 4), and
    /// Kafka's other key types skipped.
    #[test]
    fn reads_kafkas_value_versions() {
        let m = |v: i16, body: &[u8]| [&v.to_be_bytes()[..], body].concat();
        let off = 9i64.to_be_bytes();
        let ts = 4i64.to_be_bytes();
        let s = [0u8, 1, b'x'];
        let cases = [
            m(0, &[&off[..], &s, &ts].concat()),
            m(1, &[&off[..], &s, &ts, &ts].concat()),
            m(2, &[&off[..], &s, &ts].concat()),
            m(3, &[&off[..], &[0, 0, 0, 1], &s, &ts].concat()),
            // v4: compact string (length + 1), then one tagged field.
            m(
                4,
                &[&off[..], &[0, 0, 0, 1], &[2, b'x'], &ts, &[1, 0, 2, 7, 7]].concat(),
            ),
        ];
        for c in cases {
            let got = decode_value(&c).unwrap().unwrap();
            assert_eq!(
                (got.offset, got.metadata.as_str(), got.commit_timestamp),
                (9, "x", 4),
                "{c:?}"
            );
        }
        assert_eq!(decode_value(&m(5, &[1, 2, 3])), Ok(None));
        // Group metadata (type 2) is not an offset.
        assert_eq!(decode_key(&[0, 2, 0, 1, b'g']), Ok(None));
        // A negative offset is malformed.
        assert!(decode_value(&m(
            3,
            &[&(-1i64).to_be_bytes()[..], &[0; 4], &s, &ts].concat()
        ))
        .is_err());
    }

    #[test]
    fn replay_keeps_the_latest_and_honours_deletes() {
        let mut map = HashMap::new();
        let tp = TopicPartition::new("t", 0);
        let k = encode_key("g", &tp);
        apply(
            &mut map,
            Some(&k),
            Some(&encode_value(&OffsetAndMetadata::new(1))),
        )
        .unwrap();
        apply(
            &mut map,
            Some(&k),
            Some(&encode_value(&OffsetAndMetadata::new(9))),
        )
        .unwrap();
        assert_eq!(map[&("g".into(), "t".into(), 0)].offset, 9);
        apply(&mut map, Some(&k), None).unwrap();
        assert!(map.is_empty());
        // Unknown versions are skipped; malformed bytes are errors.
        apply(&mut map, Some(&[0, 9, 1, 2]), Some(&[1])).unwrap();
        assert!(apply(&mut map, Some(&k[..5]), None).is_err());
        assert!(apply(&mut map, None, None).is_err());
        assert!(decode_value(&[1, 0, 1]).is_err());
    }
}
