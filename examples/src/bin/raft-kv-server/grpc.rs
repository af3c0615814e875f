//! The etcd v3 gRPC services (KV, Watch, Lease, Cluster, Maintenance, Auth)
//! over a raft-kv member's async API.
//!
//! Requests are the library's own types (one schema), so a handler is a
//! check, one call to the member and a header. No handler blocks a thread:
//! every call is a future completed by the member's thread. The streaming
//! methods are written over plain `Stream`s ([`watch_stream`],
//! [`keep_alive_stream`], [`snapshot_stream`]) so the JSON gateway serves
//! them with the same code.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_util::StreamExt;
use prost::Message as _;
use raft_kv::pb::etcdserverpb as pb;
use raft_kv::{Error, Role, WatchMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamMap;
use tonic::{Request, Response as Reply, Status, Streaming};

use crate::etcd::{member_id, to_status, Shared, ETCD_VERSION};
use examples::services;

/// A boxed stream of responses, as tonic's streaming methods return them.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Implements every service over one shared context.
#[derive(Clone)]
pub struct Api {
    ctx: Shared,
}

impl Api {
    /// The services of `ctx`'s member.
    pub fn new(ctx: Shared) -> Self {
        Api { ctx }
    }

    fn count(&self, method: &'static str) {
        self.ctx.metrics.request(method);
    }
}

/// Gives a library result etcd's header (cluster, member, term). Responses
/// nested in a transaction keep the library's revision-only header, as
/// etcd's do.
trait Headed {
    fn headed(self, ctx: &crate::etcd::Ctx) -> Self;
}

macro_rules! headed {
    ($($t:ty),* $(,)?) => {$(
        impl Headed for $t {
            fn headed(mut self, ctx: &crate::etcd::Ctx) -> Self {
                self.header = ctx.complete(self.header.take());
                self
            }
        }
    )*};
}

headed!(
    pb::RangeResponse,
    pb::PutResponse,
    pb::DeleteRangeResponse,
    pb::TxnResponse,
    pb::CompactionResponse,
    pb::LeaseGrantResponse,
    pb::LeaseRevokeResponse,
    pb::LeaseKeepAliveResponse,
    pb::LeaseTimeToLiveResponse,
);

/// Runs a member call and gives its result etcd's header.
async fn answer<T: Headed>(ctx: &Shared, call: raft_kv::Call<T>) -> Result<Reply<T>, Status> {
    call.await.map(|r| Reply::new(r.headed(ctx))).map_err(to_status)
}

#[tonic::async_trait]
impl services::kv_server::Kv for Api {
    async fn range(&self, req: Request<pb::RangeRequest>) -> Result<Reply<pb::RangeResponse>, Status> {
        self.count("Range");
        // The member validates requests (an empty key is etcd's "key is not
        // provided"); the handlers only add what it cannot see.
        answer(&self.ctx, self.ctx.node.range(req.into_inner())).await
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Reply<pb::PutResponse>, Status> {
        self.count("Put");
        let req = req.into_inner();
        self.ctx.check_size(req.encoded_len())?;
        let started = Instant::now();
        let r = answer(&self.ctx, self.ctx.node.put_request(req)).await;
        self.ctx.metrics.observe_proposal(started.elapsed(), r.is_ok());
        r
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Reply<pb::DeleteRangeResponse>, Status> {
        self.count("DeleteRange");
        answer(&self.ctx, self.ctx.node.delete_range(req.into_inner())).await
    }

    /// A transaction of reads only is served as a proposal too (it is
    /// linearizable either way); the member checks `--max-txn-ops` and keys.
    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Reply<pb::TxnResponse>, Status> {
        self.count("Txn");
        let req = req.into_inner();
        self.ctx.check_size(req.encoded_len())?;
        let started = Instant::now();
        let r = answer(&self.ctx, self.ctx.node.txn(req)).await;
        self.ctx.metrics.observe_proposal(started.elapsed(), r.is_ok());
        r
    }

    async fn compact(&self, req: Request<pb::CompactionRequest>) -> Result<Reply<pb::CompactionResponse>, Status> {
        self.count("Compact");
        answer(&self.ctx, self.ctx.node.compact_request(req.into_inner())).await
    }
}

/// Converts an etcd watch-create request to the library's.
fn watch_request(c: &pb::WatchCreateRequest) -> raft_kv::WatchRequest {
    use pb::watch_create_request::FilterType;
    raft_kv::WatchRequest {
        key: c.key.clone(),
        range_end: c.range_end.clone(),
        start_revision: c.start_revision,
        prev_kv: c.prev_kv,
        no_put: c.filters.contains(&(FilterType::Noput as i32)),
        no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
    }
}

/// One watch of a stream: the member's id for it and its progress wishes.
struct WatchSlot {
    member_watch: u64,
    progress_notify: bool,
    last_sent: Instant,
}

/// The Watch service over any stream of requests (gRPC's, or the JSON
/// gateway's decoded body): one task per stream, however many watches it
/// carries, and no thread. Ends when the client goes away; a client that
/// only half-closes keeps its watches, as with etcd.
///
/// Backpressure is end to end: when the client reads slowly the task waits
/// on the response channel, the member's watchers fill up and fall behind,
/// and the member catches them up from history later (see
/// `raft_kv::watch`). Neither apply nor other streams wait.
pub fn watch_stream<S>(ctx: Shared, input: S) -> ResponseStream<pb::WatchResponse>
where
    S: Stream<Item = Result<pb::WatchRequest, Status>> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<pb::WatchResponse, Status>>(64);
    tokio::spawn(run_watch_stream(ctx, input, tx));
    Box::pin(ReceiverStream::new(rx))
}

async fn run_watch_stream<S>(ctx: Shared, mut input: S, tx: mpsc::Sender<Result<pb::WatchResponse, Status>>)
where
    S: Stream<Item = Result<pb::WatchRequest, Status>> + Send + Unpin + 'static,
{
    use pb::watch_request::RequestUnion;
    let mut watchers: StreamMap<i64, raft_kv::Watcher> = StreamMap::new();
    let mut slots: HashMap<i64, WatchSlot> = HashMap::new();
    let mut next_id: i64 = 0;
    let mut input_open = true;
    let interval = ctx.watch_progress_interval;
    let mut progress = tokio::time::interval(interval.min(Duration::from_secs(1)));
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let send = |resp: pb::WatchResponse| {
        let tx = tx.clone();
        async move { tx.send(Ok(resp)).await.is_ok() }
    };
    loop {
        tokio::select! {
            _ = tx.closed() => break,
            msg = input.next(), if input_open => {
                let Some(Ok(msg)) = msg else {
                    input_open = false;
                    continue;
                };
                match msg.request_union {
                    Some(RequestUnion::CreateRequest(c)) => {
                        let watch_id = if c.watch_id != 0 { c.watch_id } else { next_id };
                        next_id = next_id.max(watch_id) + 1;
                        let mut resp = pb::WatchResponse { header: ctx.header(0), watch_id, created: true, ..Default::default() };
                        if slots.contains_key(&watch_id) {
                            resp.canceled = true;
                            resp.cancel_reason = "etcdserver: duplicate watch ID".into();
                            if !send(resp).await { break }
                            continue;
                        }
                        match ctx.node.watch(watch_request(&c)).await {
                            Ok(w) => {
                                slots.insert(watch_id, WatchSlot { member_watch: w.id(), progress_notify: c.progress_notify, last_sent: Instant::now() });
                                watchers.insert(watch_id, w);
                                if !send(resp).await { break }
                            }
                            Err(e) => {
                                // Like etcd: the watch is created, then
                                // cancelled; a compacted start revision is
                                // reported with the compact revision.
                                if !send(resp.clone()).await { break }
                                resp.created = false;
                                resp.canceled = true;
                                if let Error::Compacted { compact_revision, .. } = e {
                                    resp.compact_revision = compact_revision;
                                }
                                resp.cancel_reason = to_status(e).message().to_string();
                                if !send(resp).await { break }
                            }
                        }
                    }
                    Some(RequestUnion::CancelRequest(c)) => {
                        // Dropping the watcher cancels it on the member.
                        watchers.remove(&c.watch_id);
                        slots.remove(&c.watch_id);
                        let resp = pb::WatchResponse { header: ctx.header(0), watch_id: c.watch_id, canceled: true, ..Default::default() };
                        if !send(resp).await { break }
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        if slots.is_empty() {
                            let resp = pb::WatchResponse { header: ctx.header(0), watch_id: -1, ..Default::default() };
                            if !send(resp).await { break }
                        }
                        for s in slots.values() {
                            // The notification comes back through the
                            // watcher, after the events it still holds.
                            drop(ctx.node.watch_progress(s.member_watch));
                        }
                    }
                    None => {}
                }
            }
            Some((watch_id, msg)) = watchers.next(), if !watchers.is_empty() => {
                let resp = match msg {
                    // Like etcd, the header carries the store's revision
                    // (a catching-up watcher's events are older than it).
                    WatchMessage::Events { revision, events } => {
                        pb::WatchResponse { header: ctx.header_not_before(revision), watch_id, events, ..Default::default() }
                    }
                    WatchMessage::Progress { revision } => pb::WatchResponse { header: ctx.header(revision), watch_id, ..Default::default() },
                    WatchMessage::Canceled { reason, compact_revision } => {
                        watchers.remove(&watch_id);
                        slots.remove(&watch_id);
                        pb::WatchResponse { header: ctx.header(0), watch_id, canceled: true, cancel_reason: reason, compact_revision, ..Default::default() }
                    }
                };
                if let Some(s) = slots.get_mut(&watch_id) {
                    s.last_sent = Instant::now();
                }
                if !send(resp).await { break }
            }
            _ = progress.tick() => {
                for s in slots.values_mut().filter(|s| s.progress_notify && s.last_sent.elapsed() >= interval) {
                    drop(ctx.node.watch_progress(s.member_watch));
                    s.last_sent = Instant::now();
                }
            }
        }
    }
    // Dropping the watchers cancels them on the member.
}

#[tonic::async_trait]
impl services::watch_server::Watch for Api {
    type WatchStream = ResponseStream<pb::WatchResponse>;

    async fn watch(&self, req: Request<Streaming<pb::WatchRequest>>) -> Result<Reply<Self::WatchStream>, Status> {
        self.count("Watch");
        Ok(Reply::new(watch_stream(self.ctx.clone(), req.into_inner())))
    }
}

/// The LeaseKeepAlive service over any stream of requests: one renewal per
/// request, answered in order; ends when the requests end.
pub fn keep_alive_stream<S>(ctx: Shared, mut input: S) -> ResponseStream<pb::LeaseKeepAliveResponse>
where
    S: Stream<Item = Result<pb::LeaseKeepAliveRequest, Status>> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let k = tokio::select! {
                _ = tx.closed() => return,
                k = input.next() => k,
            };
            let Some(Ok(k)) = k else { return };
            let resp = match ctx.node.lease_keep_alive(k.id).await {
                Ok(r) => r.headed(&ctx),
                // etcd answers an unknown lease with TTL 0, not an error.
                Err(Error::LeaseNotFound) => pb::LeaseKeepAliveResponse { header: ctx.header(0), id: k.id, ttl: 0 },
                Err(e) => {
                    let _ = tx.send(Err(to_status(e))).await;
                    return;
                }
            };
            if tx.send(Ok(resp)).await.is_err() {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

#[tonic::async_trait]
impl services::lease_server::Lease for Api {
    async fn lease_grant(&self, req: Request<pb::LeaseGrantRequest>) -> Result<Reply<pb::LeaseGrantResponse>, Status> {
        self.count("LeaseGrant");
        let r = req.into_inner();
        answer(&self.ctx, self.ctx.node.lease_grant(r.ttl, r.id)).await
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Reply<pb::LeaseRevokeResponse>, Status> {
        self.count("LeaseRevoke");
        answer(&self.ctx, self.ctx.node.lease_revoke(req.into_inner().id)).await
    }

    type LeaseKeepAliveStream = ResponseStream<pb::LeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Reply<Self::LeaseKeepAliveStream>, Status> {
        self.count("LeaseKeepAlive");
        Ok(Reply::new(keep_alive_stream(self.ctx.clone(), req.into_inner())))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Reply<pb::LeaseTimeToLiveResponse>, Status> {
        self.count("LeaseTimeToLive");
        let r = req.into_inner();
        let mut resp = answer(&self.ctx, self.ctx.node.lease_time_to_live(r.id, r.keys)).await?;
        resp.get_mut().id = r.id;
        Ok(resp)
    }

    async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Reply<pb::LeaseLeasesResponse>, Status> {
        self.count("LeaseLeases");
        let ids = self.ctx.node.leases().await.map_err(to_status)?;
        let leases = ids.into_iter().map(|id| pb::LeaseStatus { id }).collect();
        Ok(Reply::new(pb::LeaseLeasesResponse { header: self.ctx.header(0), leases }))
    }
}

#[tonic::async_trait]
impl services::cluster_server::Cluster for Api {
    async fn member_add(&self, req: Request<pb::MemberAddRequest>) -> Result<Reply<pb::MemberAddResponse>, Status> {
        self.count("MemberAdd");
        let r = req.into_inner();
        if r.peer_ur_ls.is_empty() {
            return Err(to_status(raft_kv::InvalidRequest::NoPeerUrls.into()));
        }
        let mut member = raft_kv::Member::new(member_id(&self.ctx.token, &r.peer_ur_ls), r.peer_ur_ls);
        member.is_learner = r.is_learner;
        let m = self.ctx.node.member_add(member).await.map_err(to_status)?;
        Ok(Reply::new(pb::MemberAddResponse { header: self.ctx.header(0), member: m.member, members: m.members }))
    }

    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Reply<pb::MemberRemoveResponse>, Status> {
        self.count("MemberRemove");
        let m = self.ctx.node.member_remove(req.into_inner().id).await.map_err(to_status)?;
        Ok(Reply::new(pb::MemberRemoveResponse { header: self.ctx.header(0), members: m.members }))
    }

    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Reply<pb::MemberUpdateResponse>, Status> {
        self.count("MemberUpdate");
        let r = req.into_inner();
        let m = self.ctx.node.member_update(r.id, r.peer_ur_ls).await.map_err(to_status)?;
        Ok(Reply::new(pb::MemberUpdateResponse { header: self.ctx.header(0), members: m.members }))
    }

    async fn member_list(&self, _req: Request<pb::MemberListRequest>) -> Result<Reply<pb::MemberListResponse>, Status> {
        self.count("MemberList");
        let members = self.ctx.node.member_list().await.map_err(to_status)?;
        Ok(Reply::new(pb::MemberListResponse { header: self.ctx.header(0), members }))
    }

    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Reply<pb::MemberPromoteResponse>, Status> {
        self.count("MemberPromote");
        let id = req.get_ref().id;
        match self.ctx.node.member_promote(id).await {
            Ok(m) => Ok(Reply::new(pb::MemberPromoteResponse { header: self.ctx.header(0), members: m.members })),
            // Only the leader can judge a learner's progress: ask it.
            Err(Error::NotLeader { leader }) => {
                let url = self.ctx.client_url(leader).await?;
                let mut client = services::cluster_client::ClusterClient::connect(url)
                    .await
                    .map_err(|_| Status::unavailable("etcdserver: not leader"))?;
                client.member_promote(pb::MemberPromoteRequest { id }).await
            }
            Err(e) => Err(to_status(e)),
        }
    }
}

/// etcd's hashes are 32-bit: fold the library's 64-bit hash.
fn fold_hash(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

/// A member backup as etcd's snapshot stream: 64 KiB chunks, each with the
/// bytes still to come.
pub fn snapshot_stream(ctx: Shared, blob: Vec<u8>) -> ResponseStream<pb::SnapshotResponse> {
    const CHUNK: usize = 64 * 1024;
    let blob = bytes::Bytes::from(etcd_snapshot_file(blob));
    let header = ctx.header(0);
    let total = blob.len();
    let chunks = (0..total.div_ceil(CHUNK).max(1)).map(move |i| {
        let (start, end) = (i * CHUNK, ((i + 1) * CHUNK).min(total));
        Ok(pb::SnapshotResponse {
            header,
            remaining_bytes: (total - end) as u64,
            blob: blob.slice(start..end),
            version: ETCD_VERSION.into(),
        })
    });
    Box::pin(tokio_stream::iter(chunks))
}

#[tonic::async_trait]
impl services::maintenance_server::Maintenance for Api {
    /// No alarms are raised by this member (no quota yet): GET lists none,
    /// and raising or clearing one by hand is accepted and changes nothing.
    async fn alarm(&self, _req: Request<pb::AlarmRequest>) -> Result<Reply<pb::AlarmResponse>, Status> {
        self.count("Alarm");
        Ok(Reply::new(pb::AlarmResponse { header: self.ctx.header(0), alarms: Vec::new() }))
    }

    async fn status(&self, _req: Request<pb::StatusRequest>) -> Result<Reply<pb::StatusResponse>, Status> {
        self.count("Status");
        let s = self.ctx.node.status().await.map_err(to_status)?;
        Ok(Reply::new(pb::StatusResponse {
            header: self.ctx.header(s.revision),
            version: ETCD_VERSION.to_string(),
            db_size: s.db_size as i64,
            leader: s.leader,
            raft_index: s.commit_index,
            raft_term: s.term,
            raft_applied_index: s.applied_index,
            errors: if s.leader == 0 { vec!["etcdserver: no leader".into()] } else { Vec::new() },
            db_size_in_use: s.db_size as i64,
            is_learner: s.learners.contains(&s.id),
        }))
    }

    /// RocksDB compacts in the background; there is nothing to defragment.
    async fn defragment(&self, _req: Request<pb::DefragmentRequest>) -> Result<Reply<pb::DefragmentResponse>, Status> {
        self.count("Defragment");
        Ok(Reply::new(pb::DefragmentResponse { header: self.ctx.header(0) }))
    }

    async fn hash(&self, _req: Request<pb::HashRequest>) -> Result<Reply<pb::HashResponse>, Status> {
        self.count("Hash");
        let h = self.ctx.node.hash(0).await.map_err(to_status)?;
        Ok(Reply::new(pb::HashResponse { header: self.ctx.header(0), hash: fold_hash(h) }))
    }

    async fn hash_kv(&self, req: Request<pb::HashKvRequest>) -> Result<Reply<pb::HashKvResponse>, Status> {
        self.count("HashKV");
        let rev = req.into_inner().revision;
        let st = self.ctx.node.state();
        let h = self.ctx.node.hash(rev).await.map_err(to_status)?;
        Ok(Reply::new(pb::HashKvResponse {
            header: self.ctx.header(st.revision),
            hash: fold_hash(h),
            compact_revision: st.compact_revision,
            hash_revision: if rev > 0 { rev } else { st.revision },
        }))
    }

    type SnapshotStream = ResponseStream<pb::SnapshotResponse>;

    async fn snapshot(&self, _req: Request<pb::SnapshotRequest>) -> Result<Reply<Self::SnapshotStream>, Status> {
        self.count("Snapshot");
        let blob = self.ctx.node.backup().await.map_err(to_status)?;
        Ok(Reply::new(snapshot_stream(self.ctx.clone(), blob)))
    }

    async fn move_leader(&self, req: Request<pb::MoveLeaderRequest>) -> Result<Reply<pb::MoveLeaderResponse>, Status> {
        self.count("MoveLeader");
        let target = req.into_inner().target_id;
        let st = self.ctx.node.status().await.map_err(to_status)?;
        if !st.voters.contains(&target) {
            return Err(Status::failed_precondition("etcdserver: bad leader transferee"));
        }
        if st.role != Role::Leader {
            // etcd requires this call on the leader; we forward it there.
            if st.leader == 0 {
                return Err(to_status(Error::NoLeader));
            }
            let url = self.ctx.client_url(st.leader).await?;
            let mut client = services::maintenance_client::MaintenanceClient::connect(url)
                .await
                .map_err(|_| Status::unavailable("etcdserver: not leader"))?;
            return client.move_leader(pb::MoveLeaderRequest { target_id: target }).await;
        }
        self.ctx.node.move_leader(target).await.map_err(to_status)?;
        Ok(Reply::new(pb::MoveLeaderResponse { header: self.ctx.header(0) }))
    }

    /// Downgrades need a second storage format to go back to; raft-kv has
    /// one. The target is checked like etcd checks it (one minor version
    /// below the cluster's), so VALIDATE answers as etcd does, and ENABLE
    /// of a valid target is refused.
    async fn downgrade(&self, req: Request<pb::DowngradeRequest>) -> Result<Reply<pb::DowngradeResponse>, Status> {
        use pb::downgrade_request::DowngradeAction;
        self.count("Downgrade");
        let r = req.into_inner();
        let action = DowngradeAction::try_from(r.action).unwrap_or(DowngradeAction::Validate);
        if action == DowngradeAction::Cancel {
            return Err(Status::failed_precondition("etcdserver: no inflight downgrade job"));
        }
        let parts = r.version.split('.').take(2).map(|p| p.parse::<u32>()).collect::<Result<Vec<_>, _>>();
        let target = match parts.as_deref() {
            Ok([major, minor]) => (*major, *minor),
            _ => return Err(Status::invalid_argument("etcdserver: wrong downgrade target version format")),
        };
        if target != (3, 4) {
            return Err(Status::invalid_argument("etcdserver: invalid downgrade target version"));
        }
        if action == DowngradeAction::Enable {
            return Err(Status::failed_precondition("etcdserver: raft-kv cannot downgrade its storage format"));
        }
        Ok(Reply::new(pb::DowngradeResponse {
            header: self.ctx.header(0),
            version: crate::etcd::CLUSTER_VERSION.into(),
        }))
    }
}

/// Authentication is not enabled on this server (users and roles arrive
/// with TLS and auth): status reports it off, lists are empty, and every
/// change or sign-in is refused with etcd's "not enabled" error.
fn auth_not_enabled() -> Status {
    Status::failed_precondition("etcdserver: authentication is not enabled")
}

#[tonic::async_trait]
impl services::auth_server::Auth for Api {
    async fn auth_enable(&self, _req: Request<pb::AuthEnableRequest>) -> Result<Reply<pb::AuthEnableResponse>, Status> {
        self.count("AuthEnable");
        Err(Status::failed_precondition("etcdserver: root user does not exist"))
    }

    async fn auth_disable(
        &self,
        _req: Request<pb::AuthDisableRequest>,
    ) -> Result<Reply<pb::AuthDisableResponse>, Status> {
        self.count("AuthDisable");
        Ok(Reply::new(pb::AuthDisableResponse { header: self.ctx.header(0) }))
    }

    async fn auth_status(&self, _req: Request<pb::AuthStatusRequest>) -> Result<Reply<pb::AuthStatusResponse>, Status> {
        self.count("AuthStatus");
        Ok(Reply::new(pb::AuthStatusResponse { header: self.ctx.header(0), enabled: false, auth_revision: 1 }))
    }

    async fn user_list(
        &self,
        _req: Request<pb::AuthUserListRequest>,
    ) -> Result<Reply<pb::AuthUserListResponse>, Status> {
        self.count("UserList");
        Ok(Reply::new(pb::AuthUserListResponse { header: self.ctx.header(0), users: Vec::new() }))
    }

    async fn role_list(
        &self,
        _req: Request<pb::AuthRoleListRequest>,
    ) -> Result<Reply<pb::AuthRoleListResponse>, Status> {
        self.count("RoleList");
        Ok(Reply::new(pb::AuthRoleListResponse { header: self.ctx.header(0), roles: Vec::new() }))
    }

    async fn user_get(&self, _req: Request<pb::AuthUserGetRequest>) -> Result<Reply<pb::AuthUserGetResponse>, Status> {
        self.count("UserGet");
        Err(Status::failed_precondition("etcdserver: user name not found"))
    }

    async fn role_get(&self, _req: Request<pb::AuthRoleGetRequest>) -> Result<Reply<pb::AuthRoleGetResponse>, Status> {
        self.count("RoleGet");
        Err(Status::failed_precondition("etcdserver: role name not found"))
    }

    async fn authenticate(
        &self,
        _req: Request<pb::AuthenticateRequest>,
    ) -> Result<Reply<pb::AuthenticateResponse>, Status> {
        self.count("authenticate");
        Err(auth_not_enabled())
    }

    async fn user_add(&self, _req: Request<pb::AuthUserAddRequest>) -> Result<Reply<pb::AuthUserAddResponse>, Status> {
        self.count("user_add");
        Err(auth_not_enabled())
    }

    async fn user_delete(
        &self,
        _req: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Reply<pb::AuthUserDeleteResponse>, Status> {
        self.count("user_delete");
        Err(auth_not_enabled())
    }

    async fn user_change_password(
        &self,
        _req: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Reply<pb::AuthUserChangePasswordResponse>, Status> {
        self.count("user_change_password");
        Err(auth_not_enabled())
    }

    async fn user_grant_role(
        &self,
        _req: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Reply<pb::AuthUserGrantRoleResponse>, Status> {
        self.count("user_grant_role");
        Err(auth_not_enabled())
    }

    async fn user_revoke_role(
        &self,
        _req: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Reply<pb::AuthUserRevokeRoleResponse>, Status> {
        self.count("user_revoke_role");
        Err(auth_not_enabled())
    }

    async fn role_add(&self, _req: Request<pb::AuthRoleAddRequest>) -> Result<Reply<pb::AuthRoleAddResponse>, Status> {
        self.count("role_add");
        Err(auth_not_enabled())
    }

    async fn role_delete(
        &self,
        _req: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Reply<pb::AuthRoleDeleteResponse>, Status> {
        self.count("role_delete");
        Err(auth_not_enabled())
    }

    async fn role_grant_permission(
        &self,
        _req: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Reply<pb::AuthRoleGrantPermissionResponse>, Status> {
        self.count("role_grant_permission");
        Err(auth_not_enabled())
    }

    async fn role_revoke_permission(
        &self,
        _req: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Reply<pb::AuthRoleRevokePermissionResponse>, Status> {
        self.count("role_revoke_permission");
        Err(auth_not_enabled())
    }
}

/// Frames a raft-kv backup the way etcdctl checks a downloaded snapshot:
/// etcd's files are whole 512-byte pages followed by the SHA-256 of those
/// pages. The backup is padded to a page multiple whose last 8 bytes hold
/// the backup's length (big-endian), then the digest is appended. The
/// content is raft-kv's backup format, not an etcd bbolt file.
pub fn etcd_snapshot_file(mut blob: Vec<u8>) -> Vec<u8> {
    use sha2::Digest;
    let len = blob.len() as u64;
    let padded = (blob.len() + 8).div_ceil(512) * 512;
    blob.resize(padded - 8, 0);
    blob.extend_from_slice(&len.to_be_bytes());
    let digest = sha2::Sha256::digest(&blob);
    blob.extend_from_slice(&digest);
    blob
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_file_has_etcds_shape() {
        for n in [0, 1, 503, 504, 505, 4096] {
            let f = etcd_snapshot_file(vec![7; n]);
            assert_eq!(f.len() % 512, 32, "{n}");
            let body = &f[..f.len() - 32];
            assert_eq!(u64::from_be_bytes(body[body.len() - 8..].try_into().unwrap()), n as u64);
        }
    }
}
