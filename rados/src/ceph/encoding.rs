//! Ceph's own wire encoding (`include/encoding.h`), for the stock messages and class
//! requests we exchange with Ceph: little-endian integers, strings as `u32 length` +
//! bytes, and versioned structs as `u8 struct_v, u8 compat, u32 length` + body
//! (`ENCODE_START` … `ENCODE_FINISH`).
//!
//! Decoders are bounds-checked (a short buffer is a [`DecodeError`], never a panic) and
//! accept newer versions with more trailing fields, as `DECODE_FINISH` skips to the
//! length. Our own records use the contract's envelope instead (`rbd_cg_contract`).

use std::fmt;

/// Why a buffer did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DecodeError {}

/// A little-endian reader over a byte slice; every read is bounds-checked.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// A `u8`.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A string: `u32` length + bytes, which must be UTF-8.
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let len = self.u32(what)? as usize;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
    }

    /// `ENCODE_START` header: returns (struct_v, a reader over exactly the body). Refuses a
    /// struct whose `compat` is newer than `max_compat`.
    pub fn versioned(&mut self, max_compat: u8, what: &'static str) -> Result<(u8, Reader<'a>), DecodeError> {
        let struct_v = self.u8(what)?;
        let compat = self.u8(what)?;
        if compat > max_compat {
            return Err(DecodeError("incompatible struct version"));
        }
        let len = self.u32(what)? as usize;
        Ok((struct_v, Reader { buf: self.take(len, what)? }))
    }
}

/// A little-endian writer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A `u8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A little-endian `i32`.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A little-endian `i64`.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A string: `u32` length + bytes. Every string we encode is a short name; a length
    /// beyond `u32` cannot occur (it is clamped, and the receiver then refuses it).
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    /// Raw bytes, without a length.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// `ENCODE_START(v, compat)` … `ENCODE_FINISH` around what `body` writes.
    pub fn versioned(&mut self, v: u8, compat: u8, body: impl FnOnce(&mut Writer)) -> &mut Self {
        let mut inner = Writer::default();
        body(&mut inner);
        self.u8(v).u8(compat).u32(u32::try_from(inner.buf.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(&inner.buf);
        self
    }

    /// The bytes written so far (the writer is left empty).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// A value in Ceph's encoding (a request we send).
pub trait Encode {
    /// Appends the encoding to `w`.
    fn encode(&self, w: &mut Writer);

    /// The encoding alone.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode(&mut w);
        w.finish()
    }
}

/// A value in Ceph's encoding (a reply we receive).
pub trait Decode: Sized {
    /// Reads one value from `r`.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes `buf`; trailing bytes are allowed (newer senders append fields).
    fn from_bytes(buf: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(buf))
    }
}

/// No request data.
impl Encode for () {
    fn encode(&self, _w: &mut Writer) {}
}

/// No reply data (anything sent back is ignored).
impl Decode for () {
    fn decode(_r: &mut Reader<'_>) -> Result<(), DecodeError> {
        Ok(())
    }
}

/// A Ceph string.
impl Encode for String {
    fn encode(&self, w: &mut Writer) {
        w.string(self);
    }
}

/// A Ceph string.
impl Decode for String {
    fn decode(r: &mut Reader<'_>) -> Result<String, DecodeError> {
        r.string("truncated string")
    }
}

/// A `u64` (e.g. `snapid_t`).
impl Encode for u64 {
    fn encode(&self, w: &mut Writer) {
        w.u64(*self);
    }
}

/// A `u64` (e.g. `snapid_t`).
impl Decode for u64 {
    fn decode(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
        r.u64("truncated u64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_versions_round_trip_and_truncation_is_an_error() {
        let mut w = Writer::default();
        w.versioned(2, 1, |w| {
            w.string("ab").u64(7);
        });
        let bytes = w.finish();
        assert_eq!(bytes, [2, 1, 14, 0, 0, 0, 2, 0, 0, 0, b'a', b'b', 7, 0, 0, 0, 0, 0, 0, 0]);
        let mut r = Reader::new(&bytes);
        let (v, mut body) = r.versioned(1, "x").unwrap();
        assert_eq!((v, body.string("s").unwrap(), body.u64("n").unwrap()), (2, "ab".to_owned(), 7));
        assert!(Reader::new(&bytes).versioned(0, "x").is_err(), "compat 1 needs a reader of 1");
        for cut in 0..bytes.len() {
            let mut r = Reader::new(&bytes[..cut]);
            let decoded = r.versioned(1, "x").and_then(|(_, mut b)| Ok((b.string("s")?, b.u64("n")?)));
            assert!(decoded.is_err(), "{cut} bytes decoded");
        }
        assert!(String::from_bytes(&[1, 0, 0, 0, 0xff]).is_err());
        assert!(String::from_bytes(&[5, 0, 0, 0, b'a']).is_err());
    }
}
