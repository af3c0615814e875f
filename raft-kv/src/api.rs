//! Request and response types of the key-value API, with etcd's semantics.
//!
//! These are protobuf messages (prost): the write requests travel inside raft
//! log entries (see [`crate::command`]), and field names and numbers follow
//! etcd's `etcdserverpb`/`mvccpb` so a server can translate one-to-one.

use bytes::Bytes;

/// A key's value and metadata at some revision (etcd's `mvccpb.KeyValue`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct KeyValue {
    /// The key.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// Revision of the write that created the key (since its last deletion).
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    /// Revision of the last write to the key.
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    /// Number of writes since the key was created (1 after creation).
    #[prost(int64, tag = "4")]
    pub version: i64,
    /// The value (empty when a range asked for keys only).
    #[prost(bytes = "bytes", tag = "5")]
    pub value: Bytes,
    /// The lease attached to the key, 0 for none.
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// Order of a range's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SortOrder {
    /// Key order (ascending), unless a sort target other than the key is set.
    None = 0,
    /// Ascending by the sort target.
    Ascend = 1,
    /// Descending by the sort target.
    Descend = 2,
}

/// What a range is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SortTarget {
    /// The key.
    Key = 0,
    /// The version.
    Version = 1,
    /// The create revision.
    Create = 2,
    /// The mod revision.
    Mod = 3,
    /// The value.
    Value = 4,
}

/// Read keys (etcd's `RangeRequest`).
///
/// `key` alone reads one key; with `range_end` it reads `[key, range_end)`;
/// `range_end == "\0"` reads every key `>= key`; `key == range_end == "\0"`
/// reads everything. Use the constructors for the common cases.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RangeRequest {
    /// First key (or the only key).
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// End of the range, exclusive; see the type's docs.
    #[prost(bytes = "bytes", tag = "2")]
    pub range_end: Bytes,
    /// At most this many keys (0: no limit).
    #[prost(int64, tag = "3")]
    pub limit: i64,
    /// Read at this revision (0: the current one).
    #[prost(int64, tag = "4")]
    pub revision: i64,
    /// Result order.
    #[prost(enumeration = "SortOrder", tag = "5")]
    pub sort_order: i32,
    /// Sort key.
    #[prost(enumeration = "SortTarget", tag = "6")]
    pub sort_target: i32,
    /// Serve from the local member without a linearizability check.
    #[prost(bool, tag = "7")]
    pub serializable: bool,
    /// Return keys and metadata without values.
    #[prost(bool, tag = "8")]
    pub keys_only: bool,
    /// Return only the count.
    #[prost(bool, tag = "9")]
    pub count_only: bool,
    /// Keep only keys with `mod_revision >=` this (0: no bound).
    #[prost(int64, tag = "10")]
    pub min_mod_revision: i64,
    /// Keep only keys with `mod_revision <=` this (0: no bound).
    #[prost(int64, tag = "11")]
    pub max_mod_revision: i64,
    /// Keep only keys with `create_revision >=` this (0: no bound).
    #[prost(int64, tag = "12")]
    pub min_create_revision: i64,
    /// Keep only keys with `create_revision <=` this (0: no bound).
    #[prost(int64, tag = "13")]
    pub max_create_revision: i64,
}

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
        let key: Bytes = prefix.into();
        if key.is_empty() {
            return Self::range(Bytes::from_static(b"\0"), Bytes::from_static(b"\0"));
        }
        let end = crate::engine::prefix_end(&key).map(Bytes::from).unwrap_or_else(|| Bytes::from_static(b"\0"));
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

/// The result of a range (etcd's `RangeResponse`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RangeResponse {
    /// The store revision the read was served at.
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// The keys (empty with `count_only`).
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
    /// True when `limit` cut the result short.
    #[prost(bool, tag = "3")]
    pub more: bool,
    /// Number of keys in the range (before `limit`).
    #[prost(int64, tag = "4")]
    pub count: i64,
}

/// Write one key (etcd's `PutRequest`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PutRequest {
    /// The key; must not be empty.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// The value.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
    /// Lease to attach (0: none).
    #[prost(int64, tag = "3")]
    pub lease: i64,
    /// Return the previous key-value.
    #[prost(bool, tag = "4")]
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    #[prost(bool, tag = "5")]
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    #[prost(bool, tag = "6")]
    pub ignore_lease: bool,
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

/// The result of a put.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PutResponse {
    /// The revision of the write.
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// The previous key-value, when asked for and present.
    #[prost(message, optional, tag = "2")]
    pub prev_kv: Option<KeyValue>,
}

/// Delete a key or a range (etcd's `DeleteRangeRequest`); the range rules
/// are those of [`RangeRequest`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeleteRangeRequest {
    /// First key (or the only key).
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// End of the range, exclusive.
    #[prost(bytes = "bytes", tag = "2")]
    pub range_end: Bytes,
    /// Return the deleted key-values.
    #[prost(bool, tag = "3")]
    pub prev_kv: bool,
}

impl DeleteRangeRequest {
    /// Deletes one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        DeleteRangeRequest { key: key.into(), ..Default::default() }
    }

    /// Deletes every key starting with `prefix`.
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let r = RangeRequest::prefix(prefix);
        DeleteRangeRequest { key: r.key, range_end: r.range_end, prev_kv: false }
    }

    /// Asks for the deleted key-values in the response.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}

/// The result of a delete.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeleteRangeResponse {
    /// The store revision after the delete (unchanged when nothing was deleted).
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// Number of keys deleted.
    #[prost(int64, tag = "2")]
    pub deleted: i64,
    /// The deleted key-values, when asked for.
    #[prost(message, repeated, tag = "3")]
    pub prev_kvs: Vec<KeyValue>,
}

/// How a [`Compare`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareResult {
    /// `==`
    Equal = 0,
    /// `>`
    Greater = 1,
    /// `<`
    Less = 2,
    /// `!=`
    NotEqual = 3,
}

/// What a [`Compare`] looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareTarget {
    /// The key's version.
    Version = 0,
    /// The key's create revision.
    Create = 1,
    /// The key's mod revision.
    Mod = 2,
    /// The key's value.
    Value = 3,
    /// The key's lease.
    Lease = 4,
}

/// The operand of a [`Compare`].
pub mod compare {
    use bytes::Bytes;

    /// The value a key's target is compared with.
    #[derive(Clone, PartialEq, Eq, prost::Oneof)]
    pub enum TargetUnion {
        /// For [`super::CompareTarget::Version`].
        #[prost(int64, tag = "4")]
        Version(i64),
        /// For [`super::CompareTarget::Create`].
        #[prost(int64, tag = "5")]
        CreateRevision(i64),
        /// For [`super::CompareTarget::Mod`].
        #[prost(int64, tag = "6")]
        ModRevision(i64),
        /// For [`super::CompareTarget::Value`].
        #[prost(bytes = "bytes", tag = "7")]
        Value(Bytes),
        /// For [`super::CompareTarget::Lease`].
        #[prost(int64, tag = "8")]
        Lease(i64),
    }
}

/// One condition of a transaction (etcd's `Compare`). With `range_end`, every
/// key in the range must satisfy it.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Compare {
    /// The comparison.
    #[prost(enumeration = "CompareResult", tag = "1")]
    pub result: i32,
    /// What is compared.
    #[prost(enumeration = "CompareTarget", tag = "2")]
    pub target: i32,
    /// The key.
    #[prost(bytes = "bytes", tag = "3")]
    pub key: Bytes,
    /// The operand; must match `target`.
    #[prost(oneof = "compare::TargetUnion", tags = "4, 5, 6, 7, 8")]
    pub target_union: Option<compare::TargetUnion>,
    /// Optional end of a key range, as in [`RangeRequest`].
    #[prost(bytes = "bytes", tag = "64")]
    pub range_end: Bytes,
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

/// One operation inside a transaction.
pub mod request_op {
    /// The operation.
    #[derive(Clone, PartialEq, Eq, prost::Oneof)]
    pub enum Request {
        /// A read.
        #[prost(message, tag = "1")]
        Range(super::RangeRequest),
        /// A write.
        #[prost(message, tag = "2")]
        Put(super::PutRequest),
        /// A delete.
        #[prost(message, tag = "3")]
        DeleteRange(super::DeleteRangeRequest),
        /// A nested transaction.
        #[prost(message, tag = "4")]
        Txn(super::TxnRequest),
    }
}

/// One operation of a transaction branch (etcd's `RequestOp`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RequestOp {
    /// The operation.
    #[prost(oneof = "request_op::Request", tags = "1, 2, 3, 4")]
    pub request: Option<request_op::Request>,
}

impl From<RangeRequest> for RequestOp {
    fn from(r: RangeRequest) -> Self {
        RequestOp { request: Some(request_op::Request::Range(r)) }
    }
}
impl From<PutRequest> for RequestOp {
    fn from(r: PutRequest) -> Self {
        RequestOp { request: Some(request_op::Request::Put(r)) }
    }
}
impl From<DeleteRangeRequest> for RequestOp {
    fn from(r: DeleteRangeRequest) -> Self {
        RequestOp { request: Some(request_op::Request::DeleteRange(r)) }
    }
}
impl From<TxnRequest> for RequestOp {
    fn from(r: TxnRequest) -> Self {
        RequestOp { request: Some(request_op::Request::Txn(r)) }
    }
}

/// The result of one transaction operation.
pub mod response_op {
    /// The result.
    #[derive(Clone, PartialEq, Eq, prost::Oneof)]
    pub enum Response {
        /// Of a read.
        #[prost(message, tag = "1")]
        Range(super::RangeResponse),
        /// Of a write.
        #[prost(message, tag = "2")]
        Put(super::PutResponse),
        /// Of a delete.
        #[prost(message, tag = "3")]
        DeleteRange(super::DeleteRangeResponse),
        /// Of a nested transaction.
        #[prost(message, tag = "4")]
        Txn(super::TxnResponse),
    }
}

/// The result of one operation of a transaction (etcd's `ResponseOp`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ResponseOp {
    /// The result.
    #[prost(oneof = "response_op::Response", tags = "1, 2, 3, 4")]
    pub response: Option<response_op::Response>,
}

/// A transaction: if every compare holds, run `success`, else `failure`,
/// atomically at one revision (etcd's `TxnRequest`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TxnRequest {
    /// The conditions.
    #[prost(message, repeated, tag = "1")]
    pub compare: Vec<Compare>,
    /// Operations run when all conditions hold.
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
    /// Operations run otherwise.
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<RequestOp>,
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

/// The result of a transaction.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TxnResponse {
    /// The store revision after the transaction.
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// Whether the success branch ran.
    #[prost(bool, tag = "2")]
    pub succeeded: bool,
    /// One result per operation of the branch that ran.
    #[prost(message, repeated, tag = "3")]
    pub responses: Vec<ResponseOp>,
}

/// Drop history below a revision (etcd's `CompactionRequest`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CompactionRequest {
    /// Keep the state at this revision and everything after it.
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// Accepted for compatibility; compaction is always applied before the
    /// response.
    #[prost(bool, tag = "2")]
    pub physical: bool,
}

/// The result of a compaction.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CompactionResponse {
    /// The store revision when the compaction was applied.
    #[prost(int64, tag = "1")]
    pub revision: i64,
}

/// What happened to a key (etcd's `mvccpb.Event.EventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EventType {
    /// The key was written.
    Put = 0,
    /// The key was deleted.
    Delete = 1,
}

/// One change to one key, as watchers see it (etcd's `mvccpb.Event`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Event {
    /// Put or delete.
    #[prost(enumeration = "EventType", tag = "1")]
    pub r#type: i32,
    /// The key after the change. For a delete: the key, with `mod_revision`
    /// set to the delete's revision and everything else zero.
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
    /// The key before the change, if it existed (watchers get it only when
    /// they ask for `prev_kv`).
    #[prost(message, optional, tag = "3")]
    pub prev_kv: Option<KeyValue>,
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

/// Create a lease (etcd's `LeaseGrantRequest`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseGrantRequest {
    /// Time to live in seconds.
    #[prost(int64, tag = "1")]
    pub ttl: i64,
    /// The lease id; 0 lets the member choose one.
    #[prost(int64, tag = "2")]
    pub id: i64,
}

/// The granted lease.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseGrantResponse {
    /// The lease id.
    #[prost(int64, tag = "2")]
    pub id: i64,
    /// The granted time to live in seconds (at least the minimum TTL).
    #[prost(int64, tag = "3")]
    pub ttl: i64,
}

/// Revoke a lease, deleting its keys (etcd's `LeaseRevokeRequest`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseRevokeRequest {
    /// The lease id.
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// Revoke only if the lease was renewed exactly this many times. Set by
    /// a leader revoking a lease it saw expire, so a keep-alive that applies
    /// first wins (the keep-alive's caller was promised a full TTL). Not part
    /// of etcd's API; clients leave it unset.
    #[prost(uint64, optional, tag = "1000")]
    pub if_renewals: Option<u64>,
}

impl LeaseRevokeRequest {
    /// An unconditional revoke of lease `id`.
    pub fn new(id: i64) -> Self {
        LeaseRevokeRequest { id, if_renewals: None }
    }
}

/// The result of a revoke.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseRevokeResponse {
    /// The store revision after the attached keys were deleted.
    #[prost(int64, tag = "1")]
    pub revision: i64,
}

/// Renew a lease (etcd's `LeaseKeepAliveRequest`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseKeepAliveRequest {
    /// The lease id.
    #[prost(int64, tag = "1")]
    pub id: i64,
}

/// The renewed lease.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseKeepAliveResponse {
    /// The lease id.
    #[prost(int64, tag = "2")]
    pub id: i64,
    /// The new time to live in seconds.
    #[prost(int64, tag = "3")]
    pub ttl: i64,
}

/// A lease's remaining life (etcd's `LeaseTimeToLiveResponse`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseTimeToLiveResponse {
    /// The lease id.
    #[prost(int64, tag = "2")]
    pub id: i64,
    /// Remaining seconds; -1 when the lease does not exist (expired or revoked).
    #[prost(int64, tag = "3")]
    pub ttl: i64,
    /// The TTL the lease was granted with.
    #[prost(int64, tag = "4")]
    pub granted_ttl: i64,
    /// The attached keys, when asked for.
    #[prost(bytes = "bytes", repeated, tag = "5")]
    pub keys: Vec<Bytes>,
}

/// A cluster member (etcd's `etcdserverpb.Member`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Member {
    /// The member id (raft node id).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Human-readable name (empty until the member has started).
    #[prost(string, tag = "2")]
    pub name: String,
    /// URLs other members reach it at.
    #[prost(string, repeated, tag = "3")]
    pub peer_urls: Vec<String>,
    /// URLs clients reach it at.
    #[prost(string, repeated, tag = "4")]
    pub client_urls: Vec<String>,
    /// A learner receives the log but does not vote.
    #[prost(bool, tag = "5")]
    pub is_learner: bool,
}

/// Remove a member.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MemberRemoveRequest {
    /// The member id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

/// Promote a learner to a voter.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MemberPromoteRequest {
    /// The member id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

/// Change a member's peer URLs (etcd's `MemberUpdateRequest`), or publish its
/// name and client URLs when `publish` is set.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MemberUpdateRequest {
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

/// The members after a membership change.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MembersResponse {
    /// The member the request was about.
    #[prost(message, optional, tag = "1")]
    pub member: Option<Member>,
    /// Every member after the change.
    #[prost(message, repeated, tag = "2")]
    pub members: Vec<Member>,
}
