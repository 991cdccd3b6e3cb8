//! Unsigned LEB128 and zig-zag varints, as used inside a batch's records.
//!
//! Decoding never panics: a truncated or over-long varint is reported as
//! `None`, and the caller turns it into a typed corruption error.

/// The longest encoding of a `u64` (10 bytes of 7 bits).
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Appends `v` as an unsigned LEB128 varint: the plain loop, kept as the
/// reference [`SliceWriter`] is tested against (and v1's test encoder).
#[cfg(any(test, feature = "internals"))]
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zig-zag encoded, so that small negative numbers stay short.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// The number of bytes `put_uvarint(v)` writes: one per started group of 7
/// significant bits, and one for zero.
#[inline]
pub(crate) fn uvarint_len(v: u64) -> usize {
    if v < 0x80 {
        return 1;
    }
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes varints and byte strings into a slice sized in advance, so that
/// encoding a record makes one length check per field rather than a
/// capacity check per byte. Writing past the end panics: the caller sized
/// the slice wrongly, a bug.
pub(crate) struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> SliceWriter<'a> {
    #[inline]
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter { buf, pos: 0 }
    }

    /// Bytes written so far.
    #[inline]
    pub fn written(&self) -> usize {
        self.pos
    }

    #[inline]
    pub fn byte(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }

    #[inline]
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }

    /// Writes `v` as an unsigned LEB128 varint.
    #[inline]
    pub fn uvarint(&mut self, mut v: u64) {
        if v < 0x80 {
            return self.byte(v as u8);
        }
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// Writes `v` zig-zag encoded.
    #[inline]
    pub fn varint(&mut self, v: i64) {
        self.uvarint(((v << 1) ^ (v >> 63)) as u64);
    }
}

/// The number of bytes `put_varint(v)` writes.
#[inline]
pub(crate) fn varint_len(v: i64) -> usize {
    uvarint_len(((v << 1) ^ (v >> 63)) as u64)
}

/// Reads an unsigned varint from the front of `buf`, returning the value and
/// the bytes consumed. Rejects truncation and encodings longer than 10 bytes
/// or whose tenth byte carries more than the top bit of a `u64`.
#[inline(always)]
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
#[inline(always)]
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
    fn lengths_match_the_encoding_at_every_bit_width() {
        for bits in 0..=64u32 {
            for v in [
                1u64.checked_shl(bits).map_or(0, |b| b - 1),
                1u64.checked_shl(bits).unwrap_or(0),
            ] {
                let mut out = Vec::new();
                put_uvarint(&mut out, v);
                assert_eq!(uvarint_len(v), out.len(), "{v}");
            }
        }
    }

    #[test]
    fn slice_writer_writes_the_same_bytes_as_put() {
        let mut expected = Vec::new();
        for v in [0u64, 127, 128, 300, 16384, u64::MAX] {
            put_uvarint(&mut expected, v);
        }
        expected.extend_from_slice(b"xyz");
        put_varint(&mut expected, i64::MIN);
        put_varint(&mut expected, -1);
        expected.push(7);
        let mut got = vec![0u8; expected.len()];
        let mut w = SliceWriter::new(&mut got);
        for v in [0u64, 127, 128, 300, 16384, u64::MAX] {
            w.uvarint(v);
        }
        w.bytes(b"xyz");
        w.varint(i64::MIN);
        w.varint(-1);
        w.byte(7);
        assert_eq!(w.written(), expected.len());
        assert_eq!(got, expected);
    }

    #[test]
    #[should_panic]
    fn slice_writer_refuses_to_write_past_the_end() {
        let mut buf = [0u8; 1];
        let mut w = SliceWriter::new(&mut buf);
        w.uvarint(128);
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
