//! The one error type of the raft-kv library.
//!
//! Every variant is something a caller can act on: retry elsewhere
//! ([`Error::NotLeader`]), retry later ([`Error::NoLeader`],
//! [`Error::Timeout`], [`Error::ProposalDropped`]), fix the request
//! ([`Error::Invalid`], [`Error::Compacted`], [`Error::FutureRevision`]) or
//! give up ([`Error::Stopped`], [`Error::Storage`], [`Error::Corruption`]).
//! Both enums are `#[non_exhaustive]`: match them with a wildcard arm.

use std::sync::Arc;

/// The result type used throughout raft-kv.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in raft-kv.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request needs the leader and this member knows none (an
    /// election is in progress). Retry after a short pause.
    #[error("no leader")]
    NoLeader,
    /// The request must be served by the leader, and that is member
    /// `leader`, not this one. Send it there.
    #[error("not leader; the leader is member {leader:x}")]
    NotLeader {
        /// The id of the leader.
        leader: u64,
    },
    /// The proposal was lost because leadership changed before it committed.
    /// It was *not* applied; the caller may retry it.
    #[error("proposal dropped by a leadership change; it was not applied")]
    ProposalDropped,
    /// The requested revision has been compacted away.
    #[error("required revision {requested} has been compacted (compact revision {compact_revision})")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The store's compact revision: the oldest revision still readable.
        compact_revision: i64,
    },
    /// The requested revision is newer than the store's current revision.
    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The store's current revision.
        current: i64,
    },
    /// The request did not complete in time. A write that timed out may or
    /// may not have been applied.
    #[error("request timed out; its outcome is unknown")]
    Timeout,
    /// The lease does not exist (never granted, expired or revoked).
    #[error("requested lease not found")]
    LeaseNotFound,
    /// A lease with that id exists already.
    #[error("lease already exists")]
    LeaseExists,
    /// No member has that id.
    #[error("member not found")]
    MemberNotFound,
    /// A member with that id or peer URL exists already.
    #[error("member already exists (same id or peer URL)")]
    MemberExists,
    /// A learner cannot be promoted until it has caught up with the leader.
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// Only a learner can be promoted.
    #[error("can only promote a learner member")]
    MemberNotLearner,
    /// The member already has `max_pending_proposals` proposals waiting to
    /// apply; retry later.
    #[error("too many requests")]
    TooManyRequests,
    /// A member's database passed its quota and the NOSPACE alarm is
    /// raised: writes that take space are refused until an operator makes
    /// room (delete, compact, defragment) and disarms the alarm.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// The CORRUPT alarm is raised: writes are refused until it is cleared.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// The node has been shut down.
    #[error("node stopped")]
    Stopped,
    /// The request is malformed; the reason's `Display` is etcd's message.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// Refused by authentication or RBAC (etcd's message in `Display`).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A range would return more key and value bytes than the member's
    /// `max_response_bytes`; it stopped reading there. The message is
    /// gRPC's for a message over its send limit, as etcd clients see it.
    #[error("grpc: trying to send message larger than max ({size} vs. {max})")]
    ResponseTooLarge {
        /// Bytes gathered when the read stopped (more than `max`).
        size: usize,
        /// The bound.
        max: usize,
    },
    /// A raft message from another member was refused (misaddressed or
    /// not meant for the network).
    #[error("bad peer message: {0}")]
    BadPeerMessage(String),
    /// A raft message from a member removed from the cluster, dropped as
    /// etcd drops them (a removed member must not disturb the cluster, e.g.
    /// by campaigning with a higher term).
    #[error("message from removed member {0}")]
    FromRemovedMember(u64),
    /// The storage engine failed (I/O error, RocksDB error).
    #[error("storage error: {0}")]
    Storage(#[source] StorageError),
    /// Stored or received data could not be decoded.
    #[error("corrupt data: {0}")]
    Corruption(String),
    /// Raft refused the operation (for example an invalid configuration).
    #[error("raft error: {0}")]
    Raft(String),
    /// The member's thread panicked (a bug): the member stopped.
    #[error("internal error: the member's thread panicked: {0}")]
    Panicked(String),
}

/// Why a request is invalid. `Display` gives etcd's message for it, so a
/// server can pass it to etcd clients unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The request has no key.
    #[error("etcdserver: key is not provided")]
    KeyNotProvided,
    /// A transaction branch has more operations than allowed.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A transaction writes one key twice.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// `ignore_value` with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// `ignore_value` or `ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// The request is larger than the configured limit.
    #[error("etcdserver: request is too large")]
    TooLarge,
    /// A lease TTL beyond etcd's maximum (9 000 000 000 s).
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// A member without peer URLs.
    #[error("etcdserver: member peer URLs not provided")]
    NoPeerUrls,
    /// Anything else; the text says what.
    #[error("etcdserver: {0}")]
    Malformed(String),
}

/// Why authentication or an RBAC check refused a request. `Display` is
/// etcd's message, so a server passes it to etcd clients unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The user lacks the permission the request needs.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// Authentication is on and the request names no user.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// A wrong password, an unknown user, or a user without a password.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// A token that is unknown, expired or badly signed.
    #[error("etcdserver: invalid auth token")]
    InvalidToken,
    /// No such user.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// A user of that name exists.
    #[error("etcdserver: user name already exists")]
    UserExists,
    /// No such role.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// A role of that name exists.
    #[error("etcdserver: role name already exists")]
    RoleExists,
    /// A role with an empty name.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// Enabling auth without a `root` user.
    #[error("etcdserver: root user does not exist")]
    RootUserMissing,
    /// Enabling auth while `root` lacks the `root` role.
    #[error("etcdserver: root user does not have root role")]
    RootRoleMissing,
    /// Revoking a role the user does not have.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// Revoking a permission the role does not have.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// Granting an empty permission.
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    /// A change that would lock the cluster out (deleting root, taking the
    /// root role from root) while auth is on.
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// The request was checked against (or its JWT issued at) an older
    /// auth state than the one it meets; check it again (sign in again).
    /// etcd 3.5's text and code (Unknown) for it.
    #[error("auth: revision in header is old")]
    OldRevision,
    /// An auth call that needs authentication enabled.
    #[error("etcdserver: authentication is not enabled")]
    NotEnabled,
}

/// A storage failure, keeping the engine's error as its source.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}")]
pub struct StorageError {
    context: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    /// A failure described by `context`, caused by `source`.
    pub fn new(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StorageError { context: context.into(), source: Some(Arc::new(source)) }
    }

    /// A failure with no underlying error.
    pub fn msg(context: impl Into<String>) -> Self {
        StorageError { context: context.into(), source: None }
    }
}

impl PartialEq for StorageError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for StorageError {}

impl Error {
    /// A shorthand for [`InvalidRequest::Malformed`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(InvalidRequest::Malformed(msg.into()))
    }

    /// A shorthand for a [`StorageError`] without a source.
    pub fn storage(msg: impl Into<String>) -> Self {
        Error::Storage(StorageError::msg(msg))
    }

    /// "No leader" or "not leader, the leader is `leader`" (0: unknown).
    pub fn not_leader(leader: u64) -> Self {
        if leader == 0 {
            Error::NoLeader
        } else {
            Error::NotLeader { leader }
        }
    }

    /// True when retrying the same request (possibly on another member)
    /// may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::NoLeader
                | Error::NotLeader { .. }
                | Error::ProposalDropped
                | Error::Timeout
                | Error::TooManyRequests
        )
    }
}

impl From<raft::Error> for Error {
    fn from(e: raft::Error) -> Self {
        match e {
            raft::Error::ProposalDropped => Error::ProposalDropped,
            raft::Error::Store(raft::StorageError::Other(inner)) => Error::storage(inner.to_string()),
            other => Error::Raft(other.to_string()),
        }
    }
}

impl From<protobuf::ProtobufError> for Error {
    fn from(e: protobuf::ProtobufError) -> Self {
        Error::Corruption(e.to_string())
    }
}

impl From<prost::DecodeError> for Error {
    fn from(e: prost::DecodeError) -> Self {
        Error::Corruption(e.to_string())
    }
}
