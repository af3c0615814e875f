//! [`Node`]: the blocking handle of a running member — [`AsyncNode`]'s
//! calls, each waited for.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::api::{
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, KeyValue, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseRevokeResponse, LeaseTimeToLiveResponse, Member, MembersResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, TxnRequest, TxnResponse,
};
use crate::command::{Op, Response};
use crate::core::status::{MemberState, Status};
use crate::core::watch::{WatchRequest, Watcher};
use crate::driver::call::Call;
use crate::driver::input::Callback;
use crate::driver::metrics::NodeMetrics;
use crate::driver::node::AsyncNode;
use crate::{Error, Result};

/// A running member, driven from blocking code: the methods of
/// [`AsyncNode`], each waiting for its outcome (at most the request
/// timeout, then [`Error::Timeout`]). Cheap to clone, `Send + Sync`; the
/// member stops when [`Node::shutdown`] is called or the last handle is
/// dropped.
///
/// Writes go through raft and return once committed by a quorum that
/// persisted them and applied on this member. Reads are linearizable unless
/// the request asks for `serializable`.
#[derive(Clone)]
pub struct Node {
    pub(super) inner: AsyncNode,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.inner.shared.id).finish()
    }
}

impl Node {
    /// The same member with async methods.
    pub fn to_async(&self) -> AsyncNode {
        self.inner.clone()
    }

    /// The async handle this blocking one wraps.
    pub fn as_async(&self) -> &AsyncNode {
        &self.inner
    }

    fn wait<T>(&self, c: Call<T>) -> Result<T> {
        c.wait(self.inner.shared.timeout)
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.inner.id()
    }

    /// Latency histograms of the member's synced (fsync) and apply writes.
    pub fn metrics(&self) -> &NodeMetrics {
        self.inner.metrics()
    }

    /// See [`AsyncNode::state`].
    pub fn state(&self) -> MemberState {
        self.inner.state()
    }

    /// See [`AsyncNode::propose_with`].
    pub fn propose_with(&self, op: Op, done: Callback) {
        self.inner.propose_with(op, done)
    }

    /// See [`AsyncNode::range_with`].
    pub fn range_with(&self, req: RangeRequest, done: Callback) {
        self.inner.range_with(req, done)
    }

    /// See [`AsyncNode::propose_as_user`]; waits for the outcome.
    pub fn propose_as_user(&self, op: Op, auth: Option<crate::command::AuthInfo>) -> Result<Response> {
        self.wait(self.inner.propose_as_user(op, auth))
    }

    /// See [`AsyncNode::auth_change`]; waits for the auth revision after it.
    pub fn auth_change(&self, change: crate::command::AuthChange) -> Result<u64> {
        self.wait(self.inner.auth_change(change))
    }

    /// See [`AsyncNode::auth_state`].
    pub fn auth_state(&self) -> std::sync::Arc<crate::AuthState> {
        self.inner.auth_state()
    }

    /// Proposes `op` and waits for its outcome.
    pub fn propose(&self, op: Op) -> Result<Response> {
        self.wait(self.inner.propose(op))
    }

    /// Writes `value` at `key`.
    pub fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<PutResponse> {
        self.wait(self.inner.put(key, value))
    }

    /// Runs a put request.
    pub fn put_request(&self, req: PutRequest) -> Result<PutResponse> {
        self.wait(self.inner.put_request(req))
    }

    /// Reads a range.
    pub fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.wait(self.inner.range(req))
    }

    /// Reads one key (linearizably).
    pub fn get(&self, key: impl Into<Bytes>) -> Result<Option<KeyValue>> {
        self.wait(self.inner.get(key))
    }

    /// Deletes a key or a range.
    pub fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        self.wait(self.inner.delete_range(req))
    }

    /// Runs a transaction.
    pub fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        self.wait(self.inner.txn(req))
    }

    /// Drops history below `revision`.
    pub fn compact(&self, revision: i64) -> Result<CompactionResponse> {
        self.wait(self.inner.compact(revision))
    }

    /// The member's status.
    pub fn status(&self) -> Result<Status> {
        self.wait(self.inner.status())
    }

    /// See [`AsyncNode::hash`].
    pub fn hash(&self, revision: i64) -> Result<u64> {
        self.wait(self.inner.hash(revision))
    }

    /// Watches keys; see [`Watcher`]. Works on any member.
    pub fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        self.wait(self.inner.watch(req))
    }

    /// Cancels watch `id` (its watcher receives a `Canceled`).
    pub fn cancel_watch(&self, id: u64) -> Result<()> {
        self.wait(self.inner.cancel_watch(id))
    }

    /// Asks for a progress notification on watch `id`.
    pub fn watch_progress(&self, id: u64) -> Result<()> {
        self.wait(self.inner.watch_progress(id))
    }

    /// Grants a lease of `ttl` seconds (`id` 0: the member picks one).
    pub fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse> {
        self.wait(self.inner.lease_grant(ttl, id))
    }

    /// Revokes a lease, deleting its keys.
    pub fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse> {
        self.wait(self.inner.lease_revoke(id))
    }

    /// Renews a lease to its full TTL.
    pub fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        self.wait(self.inner.lease_keep_alive(id))
    }

    /// A lease's remaining life (`ttl == -1`: no such lease).
    pub fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        self.wait(self.inner.lease_time_to_live(id, keys))
    }

    /// Every lease id.
    pub fn leases(&self) -> Result<Vec<i64>> {
        self.wait(self.inner.leases())
    }

    /// See [`AsyncNode::member_add`].
    pub fn member_add(&self, member: Member) -> Result<MembersResponse> {
        self.wait(self.inner.member_add(member))
    }

    /// See [`AsyncNode::member_remove`].
    pub fn member_remove(&self, id: u64) -> Result<MembersResponse> {
        self.wait(self.inner.member_remove(id))
    }

    /// See [`AsyncNode::member_promote`].
    pub fn member_promote(&self, id: u64) -> Result<MembersResponse> {
        self.wait(self.inner.member_promote(id))
    }

    /// Changes a member's peer URLs.
    pub fn member_update(&self, id: u64, peer_urls: Vec<String>) -> Result<MembersResponse> {
        self.wait(self.inner.member_update(id, peer_urls))
    }

    /// See [`AsyncNode::export`]; waits at most the request timeout.
    pub fn export<R: Send + 'static>(&self, f: impl FnOnce(crate::Export) -> Result<R> + Send + 'static) -> Result<R> {
        self.wait(self.inner.export(f))
    }

    /// See [`AsyncNode::alarm`].
    pub fn alarm(&self, req: crate::api::AlarmRequest) -> Result<crate::api::AlarmResponse> {
        self.wait(self.inner.alarm(req))
    }

    /// See [`AsyncNode::defragment`].
    pub fn defragment(&self) -> Result<()> {
        self.wait(self.inner.defragment())
    }

    /// Every member, as this member has applied them.
    pub fn member_list(&self) -> Result<Vec<Member>> {
        self.wait(self.inner.member_list())
    }

    /// See [`AsyncNode::move_leader`].
    pub fn move_leader(&self, to: u64) -> Result<()> {
        self.wait(self.inner.move_leader(to))
    }

    /// Waits until this member knows a leader, for at most `timeout`;
    /// returns the leader's id.
    pub fn wait_leader(&self, timeout: Duration) -> Result<u64> {
        let st = self.inner.shared.board.wait_for(Instant::now() + timeout, |s| s.leader != 0);
        match st {
            s if s.leader != 0 => Ok(s.leader),
            s if s.stopped => Err(Error::Stopped),
            _ => Err(Error::Timeout),
        }
    }

    /// Makes this member campaign for leadership now.
    pub fn campaign(&self) -> Result<()> {
        self.wait(self.inner.campaign())
    }

    /// Asks the leader (this member must be it) to hand leadership to `to`.
    pub fn transfer_leader(&self, to: u64) -> Result<()> {
        self.wait(self.inner.transfer_leader(to))
    }

    /// Stops the member and waits for its thread; pending requests fail with
    /// [`Error::Stopped`]. Other handles then get `Stopped` too.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }
}

impl AsyncNode {
    /// The same member with blocking methods.
    pub fn blocking(&self) -> Node {
        Node { inner: self.clone() }
    }
}
