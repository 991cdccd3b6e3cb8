//! A bounded reader over one request frame: Kafka's primitive types, in
//! their classic and flexible (compact, tagged) encodings. Every length
//! read off the wire is checked against the bytes that remain before
//! anything is allocated, and strings and byte fields borrow from the frame,
//! so a request never costs more memory than a small multiple of its size.

use std::fmt;

/// Why a request could not be decoded: what was being read and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The field or item being read.
    pub what: &'static str,
    /// Its byte position in the request body.
    pub at: usize,
    /// What was wrong.
    pub problem: Problem,
}

/// What was wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The frame ended inside the field.
    Truncated,
    /// A length or count larger than the bytes left, or negative where
    /// null is not allowed.
    BadLength(i64),
    /// A varint longer than its type allows.
    BadVarint,
    /// A string that is not UTF-8.
    NotUtf8,
    /// Bytes left over after the request.
    Trailing(usize),
    /// A value out of its range.
    BadValue(i64),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad {} at byte {}: ", self.what, self.at)?;
        match self.problem {
            Problem::Truncated => write!(f, "the request ends inside it"),
            Problem::BadLength(n) => write!(f, "length {n} does not fit the request"),
            Problem::BadVarint => write!(f, "varint too long"),
            Problem::NotUtf8 => write!(f, "not UTF-8"),
            Problem::Trailing(n) => write!(f, "{n} bytes follow the request"),
            Problem::BadValue(v) => write!(f, "value {v} out of range"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The result of decoding part of a request.
pub type Result<T> = std::result::Result<T, DecodeError>;

/// Reads one request's fields in order. `flexible` selects the compact
/// encodings and tagged-field sections of Kafka's flexible versions.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    flexible: bool,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, in the flexible encoding or the classic one.
    pub fn new(buf: &'a [u8], flexible: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            flexible,
        }
    }

    /// Whether this is a flexible version.
    pub fn flexible(&self) -> bool {
        self.flexible
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The byte position reached.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn err<T>(&self, what: &'static str, problem: Problem) -> Result<T> {
        Err(DecodeError {
            what,
            at: self.pos,
            problem,
        })
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return self.err(what, Problem::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array_of<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// An `INT8`.
    pub fn i8(&mut self, what: &'static str) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array_of(what)?))
    }

    /// A `BOOLEAN`: any non-zero byte is true, as Kafka reads it.
    pub fn bool(&mut self, what: &'static str) -> Result<bool> {
        Ok(self.i8(what)? != 0)
    }

    /// An `INT16`.
    pub fn i16(&mut self, what: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array_of(what)?))
    }

    /// An `INT32`.
    pub fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array_of(what)?))
    }

    /// An `INT64`.
    pub fn i64(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array_of(what)?))
    }

    /// A `UUID`.
    pub fn uuid(&mut self, what: &'static str) -> Result<[u8; 16]> {
        self.array_of(what)
    }

    /// An `UNSIGNED_VARINT` (at most 5 bytes, as Kafka's `readUnsignedVarint`).
    pub fn uvarint(&mut self, what: &'static str) -> Result<u32> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.array_of::<1>(what)?[0];
            if i == 4 && b > 0x0f {
                return self.err(what, Problem::BadVarint);
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.err(what, Problem::BadVarint)
    }

    /// A length prefix: `INT16`/`INT32` classic, `UNSIGNED_VARINT` plus one
    /// compact. `None` for null.
    fn length(&mut self, what: &'static str, wide: bool) -> Result<Option<usize>> {
        let n: i64 = if self.flexible {
            i64::from(self.uvarint(what)?) - 1
        } else if wide {
            i64::from(self.i32(what)?)
        } else {
            i64::from(self.i16(what)?)
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => self.err(what, Problem::BadLength(n)),
            n if n as u64 > self.remaining() as u64 => self.err(what, Problem::BadLength(n)),
            n => Ok(Some(n as usize)),
        }
    }

    /// A `NULLABLE_STRING` (`COMPACT_` in flexible versions).
    pub fn nullable_str(&mut self, what: &'static str) -> Result<Option<&'a str>> {
        match self.length(what, false)? {
            None => Ok(None),
            Some(n) => {
                let at = self.pos;
                let s = self.take(n, what)?;
                std::str::from_utf8(s).map(Some).map_err(|_| DecodeError {
                    what,
                    at,
                    problem: Problem::NotUtf8,
                })
            }
        }
    }

    /// A `STRING`. A null is read as the empty string: real clients send
    /// null for some non-nullable strings, and Kafka accepts it.
    pub fn str(&mut self, what: &'static str) -> Result<&'a str> {
        Ok(self.nullable_str(what)?.unwrap_or(""))
    }

    /// A `NULLABLE_BYTES` (`COMPACT_` in flexible versions).
    pub fn nullable_bytes(&mut self, what: &'static str) -> Result<Option<&'a [u8]>> {
        match self.length(what, true)? {
            None => Ok(None),
            Some(n) => self.take(n, what).map(Some),
        }
    }

    /// A `BYTES`; null reads as empty.
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8]> {
        Ok(self.nullable_bytes(what)?.unwrap_or(&[]))
    }

    /// An `ARRAY` (`COMPACT_ARRAY` in flexible versions) of items read by
    /// `item`; null reads as empty (see [`nullable_array`](Self::nullable_array)). The count is checked against the bytes
    /// left (every item takes at least one), and the vector grows only as
    /// items are actually read.
    pub fn array<T>(
        &mut self,
        what: &'static str,
        item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        Ok(self.nullable_array(what, item)?.unwrap_or_default())
    }

    /// A nullable `ARRAY`: `None` for null.
    pub fn nullable_array<T>(
        &mut self,
        what: &'static str,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Option<Vec<T>>> {
        let Some(n) = self.length(what, true)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let before = self.pos;
            out.push(item(self)?);
            if self.pos == before {
                // An item that takes no bytes could repeat without bound.
                return self.err(what, Problem::BadLength(n as i64));
            }
        }
        Ok(Some(out))
    }

    /// The tagged-field section that ends each structure in flexible
    /// versions. Unknown tags are skipped; `known` reads a tag this server
    /// uses, given its bytes.
    pub fn tags(&mut self, mut known: impl FnMut(u32, &'a [u8])) -> Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let n = self.uvarint("tagged field count")?;
        if n as usize > self.remaining() {
            return self.err("tagged field count", Problem::BadLength(i64::from(n)));
        }
        for _ in 0..n {
            let tag = self.uvarint("tag")?;
            let len = self.uvarint("tagged field length")? as usize;
            let v = self.take(len, "tagged field")?;
            known(tag, v);
        }
        Ok(())
    }

    /// Skips a tagged-field section.
    pub fn skip_tags(&mut self) -> Result<()> {
        self.tags(|_, _| {})
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => self.err("request", Problem::Trailing(n)),
        }
    }

    /// A value that must lie in `range`.
    pub fn check<T: Into<i64> + Copy>(
        &self,
        what: &'static str,
        v: T,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<T> {
        if range.contains(&v.into()) {
            Ok(v)
        } else {
            self.err(what, Problem::BadValue(v.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_array_count_is_refused_before_allocating() {
        // i32::MAX items announced, 4 bytes present.
        let mut frame = i32::MAX.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0, 0, 0, 1]);
        let mut r = Reader::new(&frame, false);
        let e = r.array("topics", |r| r.i32("x")).unwrap_err();
        assert_eq!(e.problem, Problem::BadLength(i64::from(i32::MAX)));
        // The compact form: a 5-byte varint count.
        let frame = [0xff, 0xff, 0xff, 0xff, 0x0f, 1];
        let mut r = Reader::new(&frame, true);
        assert!(r.array("topics", |r| r.i8("x")).is_err());
    }

    #[test]
    fn strings_and_bytes_borrow_and_check_lengths() {
        let frame = [0, 2, b'h', b'i', 0xff, 0xff, 0, 0, 0, 9];
        let mut r = Reader::new(&frame, false);
        assert_eq!(r.str("a").unwrap(), "hi");
        assert_eq!(r.nullable_str("b").unwrap(), None);
        assert!(matches!(
            r.bytes("c").unwrap_err().problem,
            Problem::BadLength(9)
        ));
        let frame = [3, b'o', b'k', 0, 1];
        let mut r = Reader::new(&frame, true);
        assert_eq!(r.str("a").unwrap(), "ok");
        r.skip_tags().unwrap();
        assert_eq!(r.nullable_bytes("b").unwrap(), Some(&[][..]));
        r.finish().unwrap();
    }

    #[test]
    fn varints_longer_than_five_bytes_are_refused() {
        let mut r = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], true);
        assert_eq!(r.uvarint("v").unwrap_err().problem, Problem::BadVarint);
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f], true);
        assert_eq!(r.uvarint("v").unwrap(), u32::MAX);
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut r = Reader::new(&[0, 1, 0xff], false);
        assert_eq!(r.str("s").unwrap_err().problem, Problem::NotUtf8);
    }
}
