//! Field encoding for IPC messages.

use std::fmt;

/// Appends fields to a message buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn with_capacity(cap: usize) -> Self {
        Encoder {
            buf: Vec::with_capacity(cap),
        }
    }

    /// Reuses `buf` (cleared) as the message buffer.
    pub fn from_vec(mut buf: Vec<u8>) -> Self {
        buf.clear();
        Encoder { buf }
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A string: `u32` length, the bytes, a NUL.
    pub fn str(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
        self.buf.push(0);
        self
    }
    /// An optional string: absent is length `u32::MAX`.
    pub fn opt_str(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(v) => self.str(v),
            None => self.u32(u32::MAX),
        }
    }
    /// Raw bytes to the end of the message.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// A message that ended early or held a bad length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed IPC message")
    }
}

impl std::error::Error for DecodeError {}

/// Reads fields from a received message.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError)?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    /// A string without its NUL.
    pub fn str(&mut self) -> Result<&'a [u8], DecodeError> {
        self.str_nul().map(|s| &s[..s.len() - 1])
    }
    /// A string with its trailing NUL, ready to be used as a C string.
    pub fn str_nul(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        let s = self.take(len.checked_add(1).ok_or(DecodeError)?)?;
        if s[len] != 0 {
            return Err(DecodeError);
        }
        Ok(s)
    }
    pub fn opt_str_nul(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let save = self.pos;
        if self.u32()? == u32::MAX {
            return Ok(None);
        }
        self.pos = save;
        self.str_nul().map(Some)
    }
    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
    pub fn position(&self) -> usize {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut e = Encoder::default();
        e.u8(7)
            .u16(500)
            .u64(u64::MAX - 1)
            .i64(-1)
            .f64(1.5)
            .str(b"GET")
            .opt_str(None)
            .opt_str(Some(b""))
            .raw(b"tail");
        let v = e.into_vec();
        let mut d = Decoder::new(&v);
        assert_eq!(d.u8(), Ok(7));
        assert_eq!(d.u16(), Ok(500));
        assert_eq!(d.u64(), Ok(u64::MAX - 1));
        assert_eq!(d.i64(), Ok(-1));
        assert_eq!(d.f64(), Ok(1.5));
        assert_eq!(d.str_nul(), Ok(&b"GET\0"[..]));
        assert_eq!(d.opt_str_nul(), Ok(None));
        assert_eq!(d.opt_str_nul(), Ok(Some(&b"\0"[..])));
        assert_eq!(d.rest(), b"tail");
    }

    #[test]
    fn truncated_and_lying_lengths_are_errors() {
        let mut e = Encoder::default();
        e.str(b"hello");
        let v = e.into_vec();
        assert_eq!(Decoder::new(&v[..6]).str(), Err(DecodeError));
        let mut bad = v.clone();
        bad[0] = 200; // length beyond the buffer
        assert_eq!(Decoder::new(&bad).str(), Err(DecodeError));
        let mut no_nul = v;
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(Decoder::new(&no_nul).str(), Err(DecodeError));
    }
}
