//! Unsigned LEB128 and zig-zag varints, as used inside a batch's records.
//!
//! Decoding never panics: a truncated or over-long varint is reported as
//! `None`, and the caller turns it into a typed corruption error.

use std::mem::MaybeUninit;

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
#[inline(always)]
pub(crate) fn uvarint_len(v: u64) -> usize {
    // One and two bytes (every length of a record under 8 KiB) by a
    // predictable branch: the general count's `bsr` and multiply sat on
    // the chain from a value's length to its record's length prefix.
    if v < 0x80 {
        return 1;
    }
    if v < 0x4000 {
        return 2;
    }
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes varints and byte strings into the spare capacity of a `Vec`,
/// sized in advance by [`append_exact`]: one length check per field rather
/// than a capacity check per byte, and no zero-filling of the room first
/// (a `resize` before writing cost a sixth of a batched append's encoding).
/// Writing past the end panics: the caller sized the room wrongly, a bug.
pub(crate) struct SliceWriter<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    pos: usize,
}

/// Appends exactly `total` bytes to `out`, written by `f`, which gets the
/// writer by value and hands it back (so that its fields live in
/// registers, not behind a reference reloaded after every copy). Panics,
/// leaving `out` as it was, if `f` writes more or fewer.
///
/// A whole batch's records go through one call: the writer's place and
/// room then stay in registers from record to record (a writer per record
/// kept them in memory and cost a batched append of 100 B records about
/// a tenth of its time).
#[inline]
#[allow(
    unsafe_code,
    reason = "writing into a Vec's spare room without zero-filling it first"
)]
pub(crate) fn append_exact(
    out: &mut Vec<u8>,
    total: usize,
    f: impl for<'w> FnOnce(SliceWriter<'w>) -> SliceWriter<'w>,
) {
    out.reserve(total);
    let start = out.len();
    let w = f(SliceWriter {
        buf: &mut out.spare_capacity_mut()[..total],
        pos: 0,
    });
    assert_eq!(w.pos, total, "encoded length miscomputed");
    // SAFETY: every write of the writer initialises the bytes from `pos`
    // on and advances `pos` past them, so `buf[..pos]`, the `total` bytes
    // after `start`, are initialised; `reserve` made the room.
    unsafe { out.set_len(start + total) };
}

impl SliceWriter<'_> {
    /// The next `n` bytes of the room, or a panic past its end. The place
    /// moves only once the room is there, and every caller fills all of it
    /// without a way to fail, so the bytes before `pos` are always
    /// initialised, even after a panic caught inside `append_exact`'s
    /// closure.
    #[inline(always)]
    fn room(&mut self, n: usize) -> &mut [MaybeUninit<u8>] {
        let end = self.pos + n;
        let room = &mut self.buf[self.pos..end];
        self.pos = end;
        room
    }

    /// Bytes written so far.
    #[inline(always)]
    pub fn written(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    pub fn byte(&mut self, b: u8) {
        self.room(1)[0] = MaybeUninit::new(b);
    }

    #[inline(always)]
    #[allow(unsafe_code, reason = "copying bytes into room not yet initialised")]
    pub fn bytes(&mut self, b: &[u8]) {
        let dst = self.room(b.len());
        // SAFETY: `dst` is exactly `b.len()` bytes of this writer's room,
        // `MaybeUninit<u8>` has `u8`'s layout, and a shared `b` cannot
        // overlap the exclusively borrowed room.
        unsafe {
            std::ptr::copy_nonoverlapping(b.as_ptr(), dst.as_mut_ptr().cast::<u8>(), b.len())
        };
    }

    /// Writes `v` as an unsigned LEB128 varint.
    #[inline(always)]
    pub fn uvarint(&mut self, mut v: u64) {
        if v < 0x80 {
            return self.byte(v as u8);
        }
        if v < 0x4000 {
            let two = self.room(2);
            two[0] = MaybeUninit::new((v as u8) | 0x80);
            two[1] = MaybeUninit::new((v >> 7) as u8);
            return;
        }
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// Writes `v` zig-zag encoded.
    #[inline(always)]
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
        for v in [0u64, 127, 128, 300, 16383, 16384, u64::MAX] {
            put_uvarint(&mut expected, v);
        }
        expected.extend_from_slice(b"xyz");
        put_varint(&mut expected, i64::MIN);
        put_varint(&mut expected, -1);
        expected.push(7);
        let mut got = b"ab".to_vec();
        append_exact(&mut got, expected.len(), |mut w| {
            for v in [0u64, 127, 128, 300, 16383, 16384, u64::MAX] {
                w.uvarint(v);
            }
            w.bytes(b"xyz");
            w.varint(i64::MIN);
            w.varint(-1);
            w.byte(7);
            assert_eq!(w.written(), expected.len());
            w
        });
        assert_eq!(&got[..2], b"ab");
        assert_eq!(got[2..], expected);
    }

    #[test]
    #[should_panic]
    fn slice_writer_refuses_to_write_past_the_end() {
        append_exact(&mut Vec::new(), 1, |mut w| {
            w.uvarint(128);
            w
        });
    }

    /// A write past the room, caught inside the closure, leaves the place
    /// where it was, and the writer handed back short of its total is
    /// refused with nothing added to the `Vec`.
    #[test]
    fn a_refused_write_does_not_move_the_place() {
        let mut v = Vec::new();
        let mut after = None;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            append_exact(&mut v, 4, |mut w| {
                w.byte(1);
                let past = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    w.bytes(&[9; 8]);
                }));
                assert!(past.is_err());
                after = Some(w.written());
                w
            });
        }));
        assert_eq!(after, Some(1));
        assert!(caught.is_err(), "a short writer was accepted");
        assert!(v.is_empty());
    }

    #[test]
    #[should_panic]
    fn slice_writer_refuses_a_short_write() {
        let mut v = b"ab".to_vec();
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            append_exact(&mut v, 3, |mut w| {
                w.uvarint(128);
                w
            });
        }))
        .is_err();
        assert!(refused);
        assert_eq!(v, b"ab");
        panic!("refused");
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
