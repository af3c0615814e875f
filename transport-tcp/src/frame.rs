//! Data frames: how raft messages travel after the handshake.
//!
//! Every raft message is one frame:
//!
//! ```text
//! +----------------+-------------+-----------------------------------+
//! | length: u32 BE | version: u8 | eraftpb::Message (protobuf 2)     |
//! +----------------+-------------+-----------------------------------+
//!   `length` counts the message bytes only (not itself, not the version)
//! ```
//!
//! A writer coalesces many frames into one `write` call; a reader splits the
//! byte stream back into frames with a [`FrameDecoder`]. A frame longer than
//! the configured maximum, of an unknown version, or whose body does not
//! decode is an error that closes the connection it arrived on.
//!
//! ```
//! use raft_kv::RaftMessage;
//! use transport_tcp::frame::{encode_message, FrameDecoder};
//!
//! let mut msg = RaftMessage::default();
//! msg.to = 2;
//! msg.from = 1;
//! let mut wire = Vec::new();
//! encode_message(&msg, 1 << 20, &mut wire)?;
//! encode_message(&msg, 1 << 20, &mut wire)?;
//!
//! let mut dec = FrameDecoder::new(1 << 20);
//! dec.extend(&wire);
//! assert_eq!(dec.next_message()?.map(|m| m.to), Some(2));
//! assert!(dec.next_message()?.is_some());
//! assert!(dec.next_message()?.is_none());
//! # Ok::<(), transport_tcp::frame::FrameError>(())
//! ```

use bytes::{Buf, BytesMut};
use protobuf::Message as _;
use raft_kv::RaftMessage;

/// Version byte of the frames this build writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before a frame's body: the length and the version.
pub const FRAME_HEADER_LEN: usize = 5;
/// Default largest frame body: 64 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 << 20;

/// Why a frame could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The body is longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the body.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The version byte is not one this build understands.
    #[error("unsupported frame version {0}")]
    Version(u8),
    /// The body is not a raft message.
    #[error("malformed raft message: {0}")]
    Decode(protobuf::ProtobufError),
    /// The body holds a field no raft message has (a group), refused before
    /// parsing (see the `groups` module).
    #[error("malformed raft message: {0}")]
    Malformed(&'static str),
    /// The message could not be encoded.
    #[error("cannot encode raft message: {0}")]
    Encode(protobuf::ProtobufError),
}

/// Appends `msg` as one frame to `buf`; returns the frame's length in bytes.
/// Fails without touching `buf` when the body would exceed `max` bytes.
pub fn encode_message(msg: &RaftMessage, max: usize, buf: &mut Vec<u8>) -> Result<usize, FrameError> {
    let len = msg.compute_size() as usize;
    if len > max || len > u32::MAX as usize {
        return Err(FrameError::TooLarge { len, max });
    }
    let start = buf.len();
    buf.reserve(FRAME_HEADER_LEN + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.push(FRAME_VERSION);
    if let Err(e) = write_cached(msg, buf) {
        buf.truncate(start);
        return Err(FrameError::Encode(e));
    }
    Ok(buf.len() - start)
}

/// Writes `msg` into `buf` with the sizes `compute_size` just cached.
fn write_cached(msg: &RaftMessage, buf: &mut Vec<u8>) -> protobuf::ProtobufResult<()> {
    let mut os = protobuf::CodedOutputStream::vec(buf);
    msg.write_to_with_cached_sizes(&mut os)?;
    os.flush()
}

/// Splits a byte stream into raft messages; bytes may arrive in any pieces.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max: usize,
}

impl FrameDecoder {
    /// A decoder that rejects frame bodies longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder { buf: BytesMut::new(), max }
    }

    /// Adds received bytes.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `None` until one has fully arrived. The
    /// header is checked as soon as it arrives, so an oversized frame is
    /// refused before its body is buffered.
    pub fn next_message(&mut self) -> Result<Option<RaftMessage>, FrameError> {
        if self.buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let version = self.buf[4];
        if version != FRAME_VERSION {
            return Err(FrameError::Version(version));
        }
        if self.buf.len() < FRAME_HEADER_LEN + len {
            self.buf.reserve(FRAME_HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(FRAME_HEADER_LEN);
        let body = self.buf.split_to(len).freeze();
        crate::groups::check(&body).map_err(FrameError::Malformed)?;
        RaftMessage::parse_from_carllerche_bytes(&body).map(Some).map_err(FrameError::Decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, MessageType};

    fn msg(n: u64) -> RaftMessage {
        let mut m = RaftMessage::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.index = n;
        m.entries.push(Entry { index: n + 1, term: 1, data: vec![7u8; n as usize].into(), ..Default::default() });
        m
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let mut wire = Vec::new();
        for n in 0..5 {
            encode_message(&msg(n), 1024, &mut wire).unwrap();
        }
        let mut dec = FrameDecoder::new(1024);
        let mut got = Vec::new();
        for b in &wire {
            dec.extend(std::slice::from_ref(b));
            while let Some(m) = dec.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, (0..5).map(msg).collect::<Vec<_>>());
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn encode_refuses_oversized() {
        let mut wire = vec![1, 2];
        assert!(matches!(encode_message(&msg(100), 50, &mut wire), Err(FrameError::TooLarge { .. })));
        assert_eq!(wire, vec![1, 2]);
    }

    #[test]
    fn decode_rejects_oversized_header_before_body() {
        let mut dec = FrameDecoder::new(16);
        dec.extend(&[0, 0, 0, 17, FRAME_VERSION]);
        assert!(matches!(dec.next_message(), Err(FrameError::TooLarge { len: 17, max: 16 })));
    }

    #[test]
    fn decode_rejects_unknown_version_and_garbage() {
        let mut dec = FrameDecoder::new(16);
        dec.extend(&[0, 0, 0, 1, 9, 0]);
        assert!(matches!(dec.next_message(), Err(FrameError::Version(9))));
        let mut dec = FrameDecoder::new(16);
        dec.extend(&[0, 0, 0, 3, FRAME_VERSION, 0xff, 0xff, 0xff]);
        assert!(matches!(dec.next_message(), Err(FrameError::Decode(_) | FrameError::Malformed(_))));
    }
}
