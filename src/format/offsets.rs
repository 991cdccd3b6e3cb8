//! The records of the internal `__consumer_offsets` topic (FORMAT.md §8):
//! the key and value codecs and how a replayed record applies to the
//! in-memory image of committed offsets. A stored record has a key
//! `(group, topic, partition)` and a value holding the committed offset;
//! the latest record per key wins, and a null value deletes.

use std::collections::HashMap;

use crate::error::CorruptionKind;
use crate::group::offsets::{OffsetAndMetadata, OffsetKey};
use crate::record::TopicPartition;

const KEY_VERSION: u16 = 1;
const VALUE_VERSION: u16 = 1;

fn put_str16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Key: version u16, group (u16 length + UTF-8), topic (u16 length +
/// UTF-8), partition u32; all little-endian.
pub(crate) fn encode_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + tp.topic.len());
    out.extend_from_slice(&KEY_VERSION.to_le_bytes());
    put_str16(&mut out, group);
    put_str16(&mut out, &tp.topic);
    out.extend_from_slice(&tp.partition.to_le_bytes());
    out
}

/// Value: version u16, offset u64, commit timestamp i64, metadata (u32
/// length + UTF-8).
pub(crate) fn encode_value(o: &OffsetAndMetadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(22 + o.metadata.len());
    out.extend_from_slice(&VALUE_VERSION.to_le_bytes());
    out.extend_from_slice(&o.offset.to_le_bytes());
    out.extend_from_slice(&o.commit_timestamp.to_le_bytes());
    out.extend_from_slice(&(o.metadata.len() as u32).to_le_bytes());
    out.extend_from_slice(o.metadata.as_bytes());
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(a))
    }
    fn str(&mut self, n: usize) -> Option<String> {
        std::str::from_utf8(self.take(n)?).ok().map(str::to_owned)
    }
}

fn malformed(what: &'static str) -> CorruptionKind {
    CorruptionKind::BadRecord { reason: what }
}

/// Decodes a key. `Ok(None)` for a key version this build does not know
/// (written by a newer streamlog; skipped, as Kafka does).
pub(crate) fn decode_key(b: &[u8]) -> Result<Option<OffsetKey>, CorruptionKind> {
    let mut r = Reader(b);
    let bad = || malformed("malformed __consumer_offsets key");
    if r.u16().ok_or_else(bad)? != KEY_VERSION {
        return Ok(None);
    }
    let n = r.u16().ok_or_else(bad)? as usize;
    let group = r.str(n).ok_or_else(bad)?;
    let n = r.u16().ok_or_else(bad)? as usize;
    let topic = r.str(n).ok_or_else(bad)?;
    let p = r.u32().ok_or_else(bad)?;
    if !r.0.is_empty() {
        return Err(bad());
    }
    Ok(Some((group, topic, p)))
}

/// Decodes a value. `Ok(None)` for an unknown value version.
pub(crate) fn decode_value(b: &[u8]) -> Result<Option<OffsetAndMetadata>, CorruptionKind> {
    let mut r = Reader(b);
    let bad = || malformed("malformed __consumer_offsets value");
    if r.u16().ok_or_else(bad)? != VALUE_VERSION {
        return Ok(None);
    }
    let offset = r.u64().ok_or_else(bad)?;
    let commit_timestamp = r.u64().ok_or_else(bad)? as i64;
    let n = r.u32().ok_or_else(bad)? as usize;
    let metadata = r.str(n).ok_or_else(bad)?;
    if !r.0.is_empty() {
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

    #[test]
    fn pins_key_and_value_bytes() {
        let k = encode_key("g", &TopicPartition::new("t", 2));
        assert_eq!(k, [1, 0, 1, 0, b'g', 1, 0, b't', 2, 0, 0, 0]);
        let mut o = OffsetAndMetadata::new(7).metadata("m");
        o.commit_timestamp = 5;
        let v = encode_value(&o);
        assert_eq!(
            v,
            [1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'm']
        );
        assert_eq!(decode_key(&k), Ok(Some(("g".into(), "t".into(), 2))));
        assert_eq!(decode_value(&v), Ok(Some(o)));
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
        apply(&mut map, Some(&[9, 0, 1, 2]), Some(&[1])).unwrap();
        assert!(apply(&mut map, Some(&k[..5]), None).is_err());
        assert!(apply(&mut map, None, None).is_err());
        assert!(decode_value(&[1, 0, 1]).is_err());
    }
}
