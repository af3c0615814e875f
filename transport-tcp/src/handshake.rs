//! The handshake that opens every connection.
//!
//! The dialing member writes a fixed 30-byte [`Handshake`]:
//!
//! ```text
//! +-------------+-------------+----------+-----------------+-------------+-----------+
//! | magic "RKVT"| version: u8 | lane: u8 | cluster id: u64 | from: u64   | to: u64   |
//! +-------------+-------------+----------+-----------------+-------------+-----------+
//!   integers big-endian; lane 0 = raft messages, 1 = snapshots
//! ```
//!
//! The acceptor answers with two bytes, its version and a [`Verdict`], and
//! closes the connection unless the verdict is `Accepted`. After that the
//! connection carries [frames](crate::frame) from the dialer only.
//!
//! ```
//! use transport_tcp::handshake::{Handshake, Lane, Verdict};
//!
//! let hs = Handshake::new(Lane::Raft, 42, 1, 2);
//! let back = Handshake::decode(&hs.encode())?;
//! assert_eq!(back, hs);
//! assert_eq!(back.check(42, 2), Verdict::Accepted);
//! assert_eq!(back.check(43, 2), Verdict::WrongCluster);
//! assert_eq!(back.check(42, 3), Verdict::WrongReceiver);
//! # Ok::<(), transport_tcp::handshake::HandshakeError>(())
//! ```

use std::io;

/// First bytes of every connection.
pub const MAGIC: [u8; 4] = *b"RKVT";
/// Handshake version this build speaks.
pub const HANDSHAKE_VERSION: u8 = 1;
/// Length of an encoded [`Handshake`].
pub const HANDSHAKE_LEN: usize = 30;
/// Length of the acceptor's reply: version and verdict.
pub const REPLY_LEN: usize = 2;

/// Which stream of a peer pair a connection carries. Snapshots have their own
/// connection so a large one never delays heartbeats and appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// Every raft message except snapshots.
    Raft = 0,
    /// `MsgSnapshot` messages.
    Snapshot = 1,
}

impl Lane {
    /// Both lanes, in index order.
    pub const ALL: [Lane; 2] = [Lane::Raft, Lane::Snapshot];

    /// The lane that carries `msg`.
    pub fn of(msg: &raft_kv::RaftMessage) -> Lane {
        if msg.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
            Lane::Snapshot
        } else {
            Lane::Raft
        }
    }

    /// Position in [`Lane::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The acceptor's answer to a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The connection may carry frames.
    Accepted = 0,
    /// Bad magic, an unknown version or lane.
    Unsupported = 1,
    /// The dialer belongs to another cluster.
    WrongCluster = 2,
    /// The dialer wanted another member (e.g. a stale address).
    WrongReceiver = 3,
    /// The sender id is 0 or the receiver's own.
    BadSender = 4,
    /// The acceptor has no connection slot left for a sender outside its
    /// address book (retry later).
    Busy = 5,
}

impl Verdict {
    fn from_byte(b: u8) -> Option<Verdict> {
        Some(match b {
            0 => Verdict::Accepted,
            1 => Verdict::Unsupported,
            2 => Verdict::WrongCluster,
            3 => Verdict::WrongReceiver,
            4 => Verdict::BadSender,
            5 => Verdict::Busy,
            _ => return None,
        })
    }

    /// The two-byte reply carrying this verdict.
    pub fn reply(self) -> [u8; REPLY_LEN] {
        [HANDSHAKE_VERSION, self as u8]
    }

    /// Reads a reply written by [`Verdict::reply`].
    pub fn from_reply(reply: [u8; REPLY_LEN]) -> Result<Verdict, HandshakeError> {
        Verdict::from_byte(reply[1]).ok_or(HandshakeError::BadReply(reply))
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The connection does not start with [`MAGIC`].
    #[error("bad magic {0:02x?}: not a raft-kv peer connection")]
    BadMagic([u8; 4]),
    /// A handshake version this build does not speak.
    #[error("unsupported handshake version {0}")]
    Version(u8),
    /// An unknown lane byte.
    #[error("unknown lane {0}")]
    Lane(u8),
    /// The acceptor's reply is not a verdict.
    #[error("malformed handshake reply {0:02x?}")]
    BadReply([u8; REPLY_LEN]),
    /// The acceptor refused the connection.
    #[error("peer refused the connection: {0:?}")]
    Refused(Verdict),
    /// The TLS handshake failed: a certificate that does not verify, a peer
    /// that does not speak TLS, or it took too long.
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// The socket failed (refused, reset, timed out...).
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// What a dialer says about itself and the member it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Which lane the connection carries.
    pub lane: Lane,
    /// Cluster the dialer belongs to.
    pub cluster_id: u64,
    /// The dialer's member id.
    pub from: u64,
    /// The member id the dialer expects to reach.
    pub to: u64,
}

impl Handshake {
    /// A handshake from `from` to `to` in cluster `cluster_id`.
    pub fn new(lane: Lane, cluster_id: u64, from: u64, to: u64) -> Self {
        Handshake { lane, cluster_id, from, to }
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut b = [0u8; HANDSHAKE_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = HANDSHAKE_VERSION;
        b[5] = self.lane as u8;
        b[6..14].copy_from_slice(&self.cluster_id.to_be_bytes());
        b[14..22].copy_from_slice(&self.from.to_be_bytes());
        b[22..30].copy_from_slice(&self.to.to_be_bytes());
        b
    }

    /// Parses the wire form.
    pub fn decode(b: &[u8; HANDSHAKE_LEN]) -> Result<Self, HandshakeError> {
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != MAGIC {
            return Err(HandshakeError::BadMagic(magic));
        }
        if b[4] != HANDSHAKE_VERSION {
            return Err(HandshakeError::Version(b[4]));
        }
        let lane = match b[5] {
            0 => Lane::Raft,
            1 => Lane::Snapshot,
            other => return Err(HandshakeError::Lane(other)),
        };
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(w)
        };
        Ok(Handshake { lane, cluster_id: u64_at(6), from: u64_at(14), to: u64_at(22) })
    }

    /// The verdict of member `own_id` of cluster `cluster_id` on this handshake.
    pub fn check(&self, cluster_id: u64, own_id: u64) -> Verdict {
        if self.cluster_id != cluster_id {
            Verdict::WrongCluster
        } else if self.to != own_id {
            Verdict::WrongReceiver
        } else if self.from == 0 || self.from == own_id {
            Verdict::BadSender
        } else {
            Verdict::Accepted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rejects_garbage() {
        let mut b = Handshake::new(Lane::Snapshot, 1, 2, 3).encode();
        b[5] = 7;
        assert!(matches!(Handshake::decode(&b), Err(HandshakeError::Lane(7))));
        b[4] = 2;
        assert!(matches!(Handshake::decode(&b), Err(HandshakeError::Version(2))));
        b[0] = b'X';
        assert!(matches!(Handshake::decode(&b), Err(HandshakeError::BadMagic(_))));
    }

    #[test]
    fn verdicts() {
        let hs = Handshake::new(Lane::Raft, 9, 1, 2);
        assert_eq!(Handshake::new(Lane::Raft, 9, 0, 2).check(9, 2), Verdict::BadSender);
        assert_eq!(Handshake::new(Lane::Raft, 9, 2, 2).check(9, 2), Verdict::BadSender);
        assert_eq!(hs.check(9, 2), Verdict::Accepted);
        for v in [Verdict::Accepted, Verdict::WrongCluster, Verdict::BadSender] {
            assert_eq!(Verdict::from_reply(v.reply()).unwrap(), v);
        }
        assert!(Verdict::from_reply([1, 99]).is_err());
    }
}
