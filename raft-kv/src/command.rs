//! The state-machine commands carried in raft log entries.
//!
//! Each normal entry's data is one encoded [`Command`]: a format version, a
//! request id (so the member that proposed it can complete its caller when the
//! entry applies) and the operation.
//!
//! Operations carry etcd's wire messages, except where the log needs more
//! than a client may say: [`LeaseRevoke`] (a conditional revoke) and
//! [`MemberUpdate`] (a member publishing its name and client URLs) are
//! command types of their own whose extra fields no client request reaches.
//! Their field numbers keep the log format of earlier releases.

use prost::Message as _;

use crate::api::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeResponse, Member,
    MemberPromoteRequest, MemberRemoveRequest, MembersResponse, PutRequest, PutResponse, RangeResponse, TxnRequest,
    TxnResponse,
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
    /// Request id, unique among the proposing member's requests (boot
    /// count ‖ counter). Commands written before `member` existed carry
    /// the member's low bits in it instead.
    #[prost(uint64, tag = "2")]
    pub id: u64,
    /// The proposing member's full id (0 in commands from older releases):
    /// with `id`, unique across the cluster.
    #[prost(uint64, tag = "14")]
    pub member: u64,
    /// The operation.
    #[prost(oneof = "Op", tags = "3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 30")]
    pub op: Option<Op>,
    /// Who asked, as the proposer authenticated them, and the auth revision
    /// it checked the request against (etcd's request header): applied
    /// under a newer auth state, a command on key ranges is refused with
    /// [`AuthError::OldRevision`](crate::AuthError::OldRevision) for the
    /// proposer to check again. `None`: a trusted caller (the embedding
    /// program, or the member itself), never checked.
    #[prost(message, optional, tag = "15")]
    pub auth: Option<AuthInfo>,
}

/// The user a request runs as and the auth revision it was checked at.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthInfo {
    /// The user name (empty: no user was given).
    #[prost(string, tag = "1")]
    pub user: String,
    /// The auth store revision the proposer checked the request at.
    #[prost(uint64, tag = "2")]
    pub revision: u64,
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
    LeaseRevoke(LeaseRevoke),
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
    MemberUpdate(MemberUpdate),
    /// Change users, roles, permissions or the enabled flag, or register a
    /// simple token.
    #[prost(message, tag = "16")]
    Auth(AuthOp),
    /// Raise or clear an alarm (`core::alarm`). Tag 30 leaves room for
    /// other command types in between.
    #[prost(message, tag = "30")]
    Alarm(AlarmRequest),
}

/// An auth store change: etcd's Auth requests, with passwords already
/// hashed by the proposer (only the bcrypt hash enters the log).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthOp {
    /// The change.
    #[prost(oneof = "AuthChange", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12")]
    pub change: Option<AuthChange>,
}

/// One auth store change.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AuthChange {
    /// Turn authentication on (needs `root` with the `root` role).
    #[prost(message, tag = "1")]
    Enable(crate::pb::etcdserverpb::AuthEnableRequest),
    /// Turn authentication off.
    #[prost(message, tag = "2")]
    Disable(crate::pb::etcdserverpb::AuthDisableRequest),
    /// Register a simple token for a user whose password the proposer
    /// checked.
    #[prost(message, tag = "3")]
    Authenticate(SimpleToken),
    /// Add a user (`hashed_password` set, `password` empty).
    #[prost(message, tag = "4")]
    UserAdd(crate::pb::etcdserverpb::AuthUserAddRequest),
    /// Delete a user.
    #[prost(message, tag = "5")]
    UserDelete(crate::pb::etcdserverpb::AuthUserDeleteRequest),
    /// Change a user's password (`hashed_password` set, `password` empty).
    #[prost(message, tag = "6")]
    UserChangePassword(crate::pb::etcdserverpb::AuthUserChangePasswordRequest),
    /// Grant a role to a user.
    #[prost(message, tag = "7")]
    UserGrantRole(crate::pb::etcdserverpb::AuthUserGrantRoleRequest),
    /// Revoke a role from a user.
    #[prost(message, tag = "8")]
    UserRevokeRole(crate::pb::etcdserverpb::AuthUserRevokeRoleRequest),
    /// Add a role.
    #[prost(message, tag = "9")]
    RoleAdd(crate::pb::etcdserverpb::AuthRoleAddRequest),
    /// Delete a role (and take it from every user).
    #[prost(message, tag = "10")]
    RoleDelete(crate::pb::etcdserverpb::AuthRoleDeleteRequest),
    /// Grant (or change the type of) a key-range permission.
    #[prost(message, tag = "11")]
    RoleGrantPermission(crate::pb::etcdserverpb::AuthRoleGrantPermissionRequest),
    /// Revoke a key-range permission.
    #[prost(message, tag = "12")]
    RoleRevokePermission(crate::pb::etcdserverpb::AuthRoleRevokePermissionRequest),
}

/// A simple token issued to a user: every member registers it when the
/// entry applies, so it is valid on all of them (etcd's simple tokens).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SimpleToken {
    /// The user.
    #[prost(string, tag = "1")]
    pub user: String,
    /// The token.
    #[prost(string, tag = "2")]
    pub token: String,
    /// Its idle lifetime in seconds (the proposer's `--auth-token-ttl`).
    #[prost(uint64, tag = "3")]
    pub ttl_seconds: u64,
}

impl From<AuthChange> for Op {
    fn from(change: AuthChange) -> Self {
        Op::Auth(AuthOp { change: Some(change) })
    }
}

/// Revoke a lease, deleting its keys: etcd's `LeaseRevokeRequest` plus the
/// leader's condition for an expiry revoke.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseRevoke {
    /// The lease id.
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// Revoke only if the lease was renewed exactly this many times. Set by
    /// a leader revoking a lease it saw expire, so a keep-alive that applies
    /// first wins (the keep-alive's caller was promised a full TTL).
    #[prost(uint64, optional, tag = "1000")]
    if_renewals: Option<u64>,
}

impl LeaseRevoke {
    /// An unconditional revoke of lease `id` (what a client asks for).
    pub fn new(id: i64) -> Self {
        LeaseRevoke { id, if_renewals: None }
    }

    /// A revoke that applies only if the lease was renewed exactly
    /// `renewals` times.
    pub(crate) fn conditional(id: i64, renewals: u64) -> Self {
        LeaseRevoke { id, if_renewals: Some(renewals) }
    }

    /// The renewal count the revoke is conditional on.
    pub(crate) fn condition(&self) -> Option<u64> {
        self.if_renewals
    }
}

impl From<crate::api::LeaseRevokeRequest> for LeaseRevoke {
    fn from(r: crate::api::LeaseRevokeRequest) -> Self {
        LeaseRevoke::new(r.id)
    }
}

/// Change a member's peer URLs (etcd's `MemberUpdateRequest`), or, with
/// `publish`, record the name and client URLs a member publishes about
/// itself when it starts.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MemberUpdate {
    /// The member id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// New peer URLs.
    #[prost(string, repeated, tag = "2")]
    pub peer_urls: Vec<String>,
    /// With `publish`: the member's name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// With `publish`: the member's client URLs.
    #[prost(string, repeated, tag = "4")]
    pub client_urls: Vec<String>,
    /// Set name and client URLs instead of peer URLs.
    #[prost(bool, tag = "5")]
    pub publish: bool,
}

impl MemberUpdate {
    /// A change of member `id`'s peer URLs.
    pub fn peer_urls(id: u64, peer_urls: Vec<String>) -> Self {
        MemberUpdate { id, peer_urls, ..Default::default() }
    }

    /// Member `id` publishing its name and client URLs.
    pub fn publish(id: u64, name: String, client_urls: Vec<String>) -> Self {
        MemberUpdate { id, name, client_urls, publish: true, ..Default::default() }
    }
}

impl Op {
    /// True for operations that change raft membership.
    pub fn is_conf_change(&self) -> bool {
        matches!(self, Op::MemberAdd(_) | Op::MemberRemove(_) | Op::MemberPromote(_))
    }
}

impl Command {
    /// A command for `op`, request `id` of `member`.
    pub fn new(member: u64, id: u64, op: Op) -> Self {
        Command { format: FORMAT_VERSION, id, member, op: Some(op), auth: None }
    }

    /// The cluster-unique key of the request: proposer and id.
    pub fn request(&self) -> (u64, u64) {
        (self.member, self.id)
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
    /// Of an auth store change: the auth revision after it.
    Auth(u64),
    /// Of an alarm request.
    Alarm(AlarmResponse),
    /// Of a read barrier: the applied index the member had reached, at or
    /// past the read index.
    ReadIndex(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_round_trips_and_rejects_future_format() {
        let cmd = Command::new(3, 7, Op::Put(PutRequest::new("k", "v")));
        let bytes = cmd.encode_to_vec();
        assert_eq!(Command::decode(&bytes).unwrap(), cmd);
        let mut future = cmd.clone();
        future.format = FORMAT_VERSION + 1;
        assert!(matches!(Command::decode(&future.encode_to_vec()), Err(Error::Corruption(_))));
        assert!(matches!(Command::decode(b"\xff\xff\xff"), Err(Error::Corruption(_))));
    }
}
