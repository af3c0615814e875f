//! The state-machine commands carried in raft log entries.
//!
//! Each normal entry's data is one encoded [`Command`]: a format version, a
//! request id (so the member that proposed it can complete its caller when the
//! entry applies) and the operation.

use prost::Message as _;

use crate::api::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest, LeaseRevokeResponse, Member,
    MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest, MembersResponse, PutRequest, PutResponse,
    RangeResponse, TxnRequest, TxnResponse,
};
use crate::{Error, Result};

/// The command format this release writes. Readers accept this and older.
pub const FORMAT_VERSION: u32 = 1;

/// A replicated state-machine command.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    /// Format version ([`FORMAT_VERSION`]).
    #[prost(uint32, tag = "1")]
    pub format: u32,
    /// Cluster-unique request id chosen by the proposing member.
    #[prost(uint64, tag = "2")]
    pub id: u64,
    /// The operation.
    #[prost(oneof = "Op", tags = "3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13")]
    pub op: Option<Op>,
}

/// A state-machine operation.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Op {
    /// Write one key.
    #[prost(message, tag = "3")]
    Put(PutRequest),
    /// Delete keys.
    #[prost(message, tag = "4")]
    DeleteRange(DeleteRangeRequest),
    /// A transaction.
    #[prost(message, tag = "5")]
    Txn(TxnRequest),
    /// Drop old history.
    #[prost(message, tag = "6")]
    Compact(CompactionRequest),
    /// Create a lease (the id is always set by the proposer).
    #[prost(message, tag = "7")]
    LeaseGrant(LeaseGrantRequest),
    /// Revoke a lease and delete its keys.
    #[prost(message, tag = "8")]
    LeaseRevoke(LeaseRevokeRequest),
    /// Renew a lease.
    #[prost(message, tag = "9")]
    LeaseKeepAlive(LeaseKeepAliveRequest),
    /// Add a member (voter or learner); travels as a raft conf change.
    #[prost(message, tag = "10")]
    MemberAdd(Member),
    /// Remove a member; travels as a raft conf change.
    #[prost(message, tag = "11")]
    MemberRemove(MemberRemoveRequest),
    /// Promote a learner; travels as a raft conf change.
    #[prost(message, tag = "12")]
    MemberPromote(MemberPromoteRequest),
    /// Update a member's URLs or name.
    #[prost(message, tag = "13")]
    MemberUpdate(MemberUpdateRequest),
}

impl Op {
    /// True for operations that change raft membership.
    pub fn is_conf_change(&self) -> bool {
        matches!(self, Op::MemberAdd(_) | Op::MemberRemove(_) | Op::MemberPromote(_))
    }
}

impl Command {
    /// A command for `op` with request id `id`.
    pub fn new(id: u64, op: Op) -> Self {
        Command { format: FORMAT_VERSION, id, op: Some(op) }
    }

    /// Encodes the command for a log entry.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(self)
    }

    /// Decodes a command from a log entry, refusing formats from the future.
    pub fn decode(data: &[u8]) -> Result<Self> {
        let cmd = <Command as prost::Message>::decode(data)?;
        if cmd.format > FORMAT_VERSION {
            return Err(Error::Corruption(format!("command format {} is newer than {}", cmd.format, FORMAT_VERSION)));
        }
        Ok(cmd)
    }

    /// Encoded size in bytes.
    pub fn size(&self) -> usize {
        self.encoded_len()
    }
}

/// The result of applying (or, for ranges, serving) a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Of a range.
    Range(RangeResponse),
    /// Of a put.
    Put(PutResponse),
    /// Of a delete.
    DeleteRange(DeleteRangeResponse),
    /// Of a transaction.
    Txn(TxnResponse),
    /// Of a compaction.
    Compact(CompactionResponse),
    /// Of a lease grant.
    LeaseGrant(LeaseGrantResponse),
    /// Of a lease revoke.
    LeaseRevoke(LeaseRevokeResponse),
    /// Of a lease keep-alive.
    LeaseKeepAlive(LeaseKeepAliveResponse),
    /// Of a membership change.
    Members(MembersResponse),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_round_trips_and_rejects_future_format() {
        let cmd = Command::new(7, Op::Put(PutRequest::new("k", "v")));
        let bytes = cmd.encode_to_vec();
        assert_eq!(Command::decode(&bytes).unwrap(), cmd);
        let mut future = cmd.clone();
        future.format = FORMAT_VERSION + 1;
        assert!(matches!(Command::decode(&future.encode_to_vec()), Err(Error::Corruption(_))));
        assert!(matches!(Command::decode(b"\xff\xff\xff"), Err(Error::Corruption(_))));
    }
}
