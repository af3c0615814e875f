//! The one error type of the raft-kv library.
//!
//! Every variant is something a caller can act on: retry elsewhere
//! ([`Error::NotLeader`]), retry later ([`Error::Timeout`],
//! [`Error::ProposalDropped`]), fix the request ([`Error::InvalidArgument`],
//! [`Error::Compacted`], [`Error::FutureRevision`]) or give up
//! ([`Error::Stopped`], [`Error::Storage`], [`Error::Corruption`]).

/// The result type used throughout raft-kv.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in raft-kv.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request must be served by the leader and this member does not
    /// know one (an election is in progress). Retry after a short pause.
    #[error("no leader known; retry later (last known leader: {leader:?})")]
    NotLeader {
        /// The id of the leader this member last heard of, if any.
        leader: Option<u64>,
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
    /// No member has that id.
    #[error("member not found")]
    MemberNotFound,
    /// A member with that id or peer URL exists already.
    #[error("member already exists (same id or peer URL)")]
    MemberExists,
    /// A learner cannot be promoted until it has caught up with the leader.
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// The node has been shut down.
    #[error("node stopped")]
    Stopped,
    /// The request is malformed; the message says why.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The storage engine failed (I/O error, RocksDB error).
    #[error("storage error: {0}")]
    Storage(String),
    /// Stored or received data could not be decoded.
    #[error("corrupt data: {0}")]
    Corruption(String),
    /// Raft refused the operation (for example an invalid configuration).
    #[error("raft error: {0}")]
    Raft(String),
}

impl Error {
    /// A shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// True when retrying the same request (possibly on another member)
    /// may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::NotLeader { .. } | Error::ProposalDropped | Error::Timeout)
    }
}

impl From<raft::Error> for Error {
    fn from(e: raft::Error) -> Self {
        match e {
            raft::Error::ProposalDropped => Error::ProposalDropped,
            raft::Error::Store(raft::StorageError::Other(inner)) => Error::Storage(inner.to_string()),
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
