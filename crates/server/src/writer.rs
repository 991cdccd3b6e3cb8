//! The few encodings the hand-written Fetch response needs, classic and
//! flexible.

/// Appends Kafka's primitive types to a buffer.
pub(crate) struct Writer {
    buf: Vec<u8>,
    flexible: bool,
}

impl Writer {
    pub fn new(flexible: bool) -> Self {
        Writer {
            buf: Vec::with_capacity(256),
            flexible,
        }
    }

    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// An array's length (compact: length + 1 as a varint).
    pub fn array_len(&mut self, n: usize) {
        if self.flexible {
            self.uvarint(n as u64 + 1);
        } else {
            self.i32(n as i32);
        }
    }

    /// A non-null string.
    pub fn string(&mut self, s: &str) {
        if self.flexible {
            self.uvarint(s.len() as u64 + 1);
        } else {
            self.i16(s.len() as i16);
        }
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// The length prefix of a non-null byte field whose bytes follow.
    pub fn bytes_len(&mut self, n: usize) {
        if self.flexible {
            self.uvarint(n as u64 + 1);
        } else {
            self.i32(n as i32);
        }
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// An empty tagged-field section.
    pub fn empty_tags(&mut self) {
        self.buf.push(0);
    }

    /// The bytes written so far, leaving the writer empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}
