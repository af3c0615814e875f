//! Request and response types of the key-value API, with etcd's semantics.
//!
//! These *are* etcd's wire messages (generated into [`crate::pb`] from the
//! `.proto` files): a server passes them to and from the library without
//! conversion. This module re-exports them under short names and adds
//! constructors for the common cases. A response's `header` is left empty
//! by the library: the server that answers fills it in.

use bytes::Bytes;

pub use crate::pb::etcdserverpb::alarm_request::AlarmAction;
pub use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget};
pub use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
pub use crate::pb::etcdserverpb::{
    compare, request_op, response_op, AlarmMember, AlarmRequest, AlarmResponse, AlarmType, CompactionRequest,
    CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse, Member, MemberPromoteRequest, MemberRemoveRequest, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
pub use crate::pb::mvccpb::event::EventType;
pub use crate::pb::mvccpb::{Event, KeyValue};

impl RangeRequest {
    /// Reads one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        RangeRequest { key: key.into(), ..Default::default() }
    }

    /// Reads `[start, end)`.
    pub fn range(start: impl Into<Bytes>, end: impl Into<Bytes>) -> Self {
        RangeRequest { key: start.into(), range_end: end.into(), ..Default::default() }
    }

    /// Reads every key starting with `prefix` (every key for an empty prefix).
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let (key, end) = prefix_range(prefix.into());
        Self::range(key, end)
    }

    /// Reads every key `>= key`.
    pub fn from_key(key: impl Into<Bytes>) -> Self {
        Self::range(key, Bytes::from_static(b"\0"))
    }

    /// Sets the limit.
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    /// Reads at `revision`.
    pub fn at_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    /// Serves the read locally (serializable) instead of linearizably.
    pub fn serializable(mut self) -> Self {
        self.serializable = true;
        self
    }

    /// Sorts by `target` in `order`.
    pub fn sorted(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.sort_target = target as i32;
        self.sort_order = order as i32;
        self
    }
}

/// The `[key, range_end)` pair that covers every key starting with
/// `prefix` (every key for an empty prefix), as etcd clients compute it.
pub(crate) fn prefix_range(prefix: Bytes) -> (Bytes, Bytes) {
    if prefix.is_empty() {
        return (Bytes::from_static(b"\0"), Bytes::from_static(b"\0"));
    }
    let end = crate::engine::prefix_end(&prefix).map(Bytes::from).unwrap_or_else(|| Bytes::from_static(b"\0"));
    (prefix, end)
}

impl PutRequest {
    /// A put of `value` at `key`.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        PutRequest { key: key.into(), value: value.into(), ..Default::default() }
    }

    /// Asks for the previous key-value in the response.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Attaches a lease.
    pub fn with_lease(mut self, lease: i64) -> Self {
        self.lease = lease;
        self
    }
}

impl DeleteRangeRequest {
    /// Deletes one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        DeleteRangeRequest { key: key.into(), ..Default::default() }
    }

    /// Deletes every key starting with `prefix`.
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let (key, range_end) = prefix_range(prefix.into());
        DeleteRangeRequest { key, range_end, prev_kv: false }
    }

    /// Asks for the deleted key-values in the response.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}

impl Compare {
    fn new(key: impl Into<Bytes>, result: CompareResult, target: CompareTarget, operand: compare::TargetUnion) -> Self {
        Compare {
            result: result as i32,
            target: target as i32,
            key: key.into(),
            target_union: Some(operand),
            range_end: Bytes::new(),
        }
    }

    /// Compares the key's value.
    pub fn value(key: impl Into<Bytes>, result: CompareResult, value: impl Into<Bytes>) -> Self {
        Self::new(key, result, CompareTarget::Value, compare::TargetUnion::Value(value.into()))
    }

    /// Compares the key's version (0 when the key does not exist).
    pub fn version(key: impl Into<Bytes>, result: CompareResult, version: i64) -> Self {
        Self::new(key, result, CompareTarget::Version, compare::TargetUnion::Version(version))
    }

    /// Compares the key's create revision.
    pub fn create_revision(key: impl Into<Bytes>, result: CompareResult, rev: i64) -> Self {
        Self::new(key, result, CompareTarget::Create, compare::TargetUnion::CreateRevision(rev))
    }

    /// Compares the key's mod revision.
    pub fn mod_revision(key: impl Into<Bytes>, result: CompareResult, rev: i64) -> Self {
        Self::new(key, result, CompareTarget::Mod, compare::TargetUnion::ModRevision(rev))
    }

    /// Compares the key's lease.
    pub fn lease(key: impl Into<Bytes>, result: CompareResult, lease: i64) -> Self {
        Self::new(key, result, CompareTarget::Lease, compare::TargetUnion::Lease(lease))
    }
}

impl From<RangeRequest> for RequestOp {
    fn from(r: RangeRequest) -> Self {
        RequestOp { request: Some(request_op::Request::RequestRange(r)) }
    }
}
impl From<PutRequest> for RequestOp {
    fn from(r: PutRequest) -> Self {
        RequestOp { request: Some(request_op::Request::RequestPut(r)) }
    }
}
impl From<DeleteRangeRequest> for RequestOp {
    fn from(r: DeleteRangeRequest) -> Self {
        RequestOp { request: Some(request_op::Request::RequestDeleteRange(r)) }
    }
}
impl From<TxnRequest> for RequestOp {
    fn from(r: TxnRequest) -> Self {
        RequestOp { request: Some(request_op::Request::RequestTxn(r)) }
    }
}

impl TxnRequest {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a condition.
    pub fn when(mut self, c: Compare) -> Self {
        self.compare.push(c);
        self
    }

    /// Adds an operation to the success branch.
    pub fn and_then(mut self, op: impl Into<RequestOp>) -> Self {
        self.success.push(op.into());
        self
    }

    /// Adds an operation to the failure branch.
    pub fn or_else(mut self, op: impl Into<RequestOp>) -> Self {
        self.failure.push(op.into());
        self
    }
}

impl Event {
    /// The event's revision.
    pub fn revision(&self) -> i64 {
        self.kv.as_ref().map_or(0, |kv| kv.mod_revision)
    }

    /// The changed key.
    pub fn key(&self) -> &[u8] {
        self.kv.as_ref().map_or(&[][..], |kv| &kv.key[..])
    }

    /// True for a delete.
    pub fn is_delete(&self) -> bool {
        self.r#type == EventType::Delete as i32
    }
}

impl Member {
    /// A member with `id` reachable at `peer_urls` (name and client URLs
    /// are published by the member itself once it runs).
    pub fn new(id: u64, peer_urls: Vec<String>) -> Self {
        Member { id, peer_ur_ls: peer_urls, ..Default::default() }
    }
}

/// The members after a membership change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MembersResponse {
    /// The member the request was about.
    pub member: Option<Member>,
    /// Every member after the change.
    pub members: Vec<Member>,
}

/// The header the library puts on a response: the store revision it was
/// served or applied at. Cluster id, member id and term are the server's to
/// fill in.
pub(crate) fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

macro_rules! revision_accessor {
    ($($t:ty),* $(,)?) => {$(
        impl $t {
            /// The store revision in the response's header (0 without one).
            pub fn revision(&self) -> i64 {
                self.header.as_ref().map_or(0, |h| h.revision)
            }
        }
    )*};
}

revision_accessor!(
    RangeResponse,
    PutResponse,
    DeleteRangeResponse,
    TxnResponse,
    CompactionResponse,
    LeaseRevokeResponse,
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseTimeToLiveResponse,
);
