//! Frame codec: `u32 LE body length | i32 LE seqno | body`, with a strict per-direction seqno.
//!
//! Sans-IO: the decoder consumes bytes from a buffer the caller fills, the encoder appends to one
//! the caller drains. Both directions start at seqno 0 and count up by one per frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Error;

/// Smallest body the reference accepts (one constructor id).
pub const MIN_FRAME_LEN: u32 = 4;
/// Largest body the reference accepts.
pub const MAX_FRAME_LEN: u32 = 1 << 24;
/// Bytes before the body: length and seqno.
pub const FRAME_HEADER_LEN: usize = 8;

/// One received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its sequence number.
    pub seqno: i32,
    /// The TL body.
    pub body: Bytes,
}

/// Splits a byte stream into frames, checking length bounds and sequence numbers.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_len: u32,
    next_seqno: i32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder accepting bodies of at most `max_len` bytes (clamped to the protocol maximum).
    pub fn new(max_len: u32) -> Self {
        Self {
            max_len: max_len.clamp(MIN_FRAME_LEN, MAX_FRAME_LEN),
            next_seqno: 0,
        }
    }

    /// The seqno the next frame must carry.
    pub fn next_seqno(&self) -> i32 {
        self.next_seqno
    }

    /// Bytes the buffer must hold before the next frame can be decoded, if known; lets the caller
    /// reserve exactly once for large frames.
    pub fn bytes_needed(&self, buf: &[u8]) -> usize {
        if buf.len() < FRAME_HEADER_LEN {
            return FRAME_HEADER_LEN;
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        FRAME_HEADER_LEN + len.min(self.max_len) as usize
    }

    /// Takes one complete frame off the front of `buf`, or returns `Ok(None)` if more bytes are
    /// needed. An error leaves the stream unusable.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if !(MIN_FRAME_LEN..=self.max_len).contains(&len) {
            return Err(Error::BadLength {
                len,
                min: MIN_FRAME_LEN,
                max: self.max_len,
            });
        }
        let seqno = i32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if seqno != self.next_seqno {
            return Err(Error::BadSeqno {
                expected: self.next_seqno,
                found: seqno,
            });
        }
        let total = FRAME_HEADER_LEN + len as usize;
        if buf.len() < total {
            return Ok(None);
        }
        buf.advance(FRAME_HEADER_LEN);
        let body = buf.split_to(len as usize).freeze();
        self.next_seqno = self.next_seqno.wrapping_add(1);
        Ok(Some(Frame { seqno, body }))
    }
}

/// Numbers outgoing frames.
#[derive(Debug, Clone, Default)]
pub struct FrameEncoder {
    next_seqno: i32,
}

impl FrameEncoder {
    /// A fresh encoder starting at seqno 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The seqno the next frame will carry.
    pub fn next_seqno(&self) -> i32 {
        self.next_seqno
    }

    /// Appends one frame carrying `body`.
    pub fn encode(&mut self, body: &[u8], out: &mut BytesMut) -> Result<(), Error> {
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
            return Err(Error::BadLength {
                len,
                min: MIN_FRAME_LEN,
                max: MAX_FRAME_LEN,
            });
        }
        out.reserve(FRAME_HEADER_LEN + body.len());
        out.put_u32_le(len);
        out.put_i32_le(self.next_seqno);
        out.put_slice(body);
        self.next_seqno = self.next_seqno.wrapping_add(1);
        Ok(())
    }
}
