//! Unsigned LEB128 and zig-zag varints, as used inside a batch's records.
//!
//! Decoding never panics: a truncated or over-long varint is reported as
//! `None`, and the caller turns it into a typed corruption error.

/// The longest encoding of a `u64` (10 bytes of 7 bits).
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zig-zag encoded, so that small negative numbers stay short.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// The number of bytes `put_uvarint(v)` writes.
#[inline]
pub(crate) fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// The number of bytes `put_varint(v)` writes.
#[inline]
pub(crate) fn varint_len(v: i64) -> usize {
    uvarint_len(((v << 1) ^ (v >> 63)) as u64)
}

/// Reads an unsigned varint from the front of `buf`, returning the value and
/// the bytes consumed. Rejects truncation and encodings longer than 10 bytes
/// or whose tenth byte carries more than the top bit of a `u64`.
#[inline]
pub(crate) fn get_uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    // One- and two-byte encodings (every length, delta and count of a
    // record below 16 KiB) skip the loop.
    match *buf {
        [b0, ..] if b0 < 0x80 => return Some((u64::from(b0), 1)),
        [b0, b1, ..] if b1 < 0x80 => {
            if b1 == 0 {
                return None;
            }
            return Some((u64::from(b0 & 0x7f) | u64::from(b1) << 7, 2));
        }
        _ => {}
    }
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(MAX_VARINT_LEN) {
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            // Reject non-minimal encodings (a trailing 0x00 continuation), so
            // that every accepted byte string re-encodes identically.
            if i > 0 && b == 0 {
                return None;
            }
            return Some((v, i + 1));
        }
    }
    None
}

/// Reads a zig-zag varint from the front of `buf`.
#[inline]
pub(crate) fn get_varint(buf: &[u8]) -> Option<(i64, usize)> {
    let (u, n) = get_uvarint(buf)?;
    Some((((u >> 1) as i64) ^ -((u & 1) as i64), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edge_values() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16383,
            16384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(out.len(), uvarint_len(v));
            assert_eq!(get_uvarint(&out), Some((v, out.len())));
        }
        for v in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            assert_eq!(get_varint(&out), Some((v, out.len())));
        }
    }

    #[test]
    fn pins_known_encodings() {
        let mut out = Vec::new();
        put_uvarint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        put_varint(&mut out, -1);
        assert_eq!(out, [0x01]);
        out.clear();
        put_varint(&mut out, 1);
        assert_eq!(out, [0x02]);
    }

    #[test]
    fn rejects_truncated_overlong_and_non_minimal() {
        assert_eq!(get_uvarint(&[]), None);
        assert_eq!(get_uvarint(&[0x80]), None);
        assert_eq!(get_uvarint(&[0xff; 11]), None);
        assert_eq!(
            get_uvarint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
        assert_eq!(get_uvarint(&[0x80, 0x00]), None);
    }

    /// The loop alone, as a reference for the short-encoding fast path.
    fn reference(buf: &[u8]) -> Option<(u64, usize)> {
        let mut v: u64 = 0;
        for (i, &b) in buf.iter().enumerate().take(MAX_VARINT_LEN) {
            if i == MAX_VARINT_LEN - 1 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return (i == 0 || b != 0).then_some((v, i + 1));
            }
        }
        None
    }

    #[test]
    fn fast_path_agrees_with_the_loop_on_every_short_input() {
        // Every byte pair natively; under miri (1000x slower) a sample that
        // still covers each branch: the edges of both byte ranges.
        let bytes: Vec<u8> = if cfg!(miri) {
            vec![0, 1, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff]
        } else {
            (0..=255).collect()
        };
        for &a in &bytes {
            assert_eq!(get_uvarint(&[a]), reference(&[a]));
            for &b in &bytes {
                assert_eq!(get_uvarint(&[a, b]), reference(&[a, b]));
                for c in [0u8, 1, 0x7f, 0x80, 0xff] {
                    assert_eq!(get_uvarint(&[a, b, c]), reference(&[a, b, c]));
                }
            }
        }
    }
}
