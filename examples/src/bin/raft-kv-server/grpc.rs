//! The etcd v3 gRPC services (KV, Watch, Lease, Cluster, Maintenance) on top
//! of a raft-kv member.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prost::Message as _;
use raft_kv::{Error, Op, Response, Role, WatchMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response as Reply, Status, Streaming};

use crate::etcd::{key_not_provided, member_id, to_status, Shared, ETCD_VERSION};
use crate::pb;

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
}

/// Converts a library range result to etcd's, with a header.
pub fn range_reply(ctx: &crate::etcd::Ctx, r: raft_kv::RangeResponse) -> pb::RangeResponse {
    pb::RangeResponse { header: ctx.header(r.revision), kvs: r.kvs, more: r.more, count: r.count }
}

/// Converts a library put result to etcd's.
pub fn put_reply(ctx: &crate::etcd::Ctx, r: raft_kv::PutResponse) -> pb::PutResponse {
    pb::PutResponse { header: ctx.header(r.revision), prev_kv: r.prev_kv }
}

/// Converts a library delete result to etcd's.
pub fn delete_reply(ctx: &crate::etcd::Ctx, r: raft_kv::DeleteRangeResponse) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse { header: ctx.header(r.revision), deleted: r.deleted, prev_kvs: r.prev_kvs }
}

/// Converts a library transaction result to etcd's (recursively).
pub fn txn_reply(ctx: &crate::etcd::Ctx, r: raft_kv::TxnResponse) -> pb::TxnResponse {
    use pb::response_op::Response as P;
    use raft_kv::response_op::Response as L;
    let responses = r
        .responses
        .into_iter()
        .map(|op| pb::ResponseOp {
            response: op.response.map(|resp| match resp {
                L::Range(x) => P::ResponseRange(range_reply(ctx, x)),
                L::Put(x) => P::ResponsePut(put_reply(ctx, x)),
                L::DeleteRange(x) => P::ResponseDeleteRange(delete_reply(ctx, x)),
                L::Txn(x) => P::ResponseTxn(txn_reply(ctx, x)),
            }),
        })
        .collect();
    pb::TxnResponse { header: ctx.header(r.revision), succeeded: r.succeeded, responses }
}

fn unexpected() -> Status {
    Status::internal("etcdserver: unexpected response")
}

/// Shared by the gRPC and HTTP handlers: the etcd operations with
/// validation, returning etcd's message types.
impl Api {
    /// KV.Range.
    pub async fn do_range(&self, req: raft_kv::RangeRequest) -> Result<pb::RangeResponse, Status> {
        self.ctx.metrics.request("Range");
        if req.key.is_empty() {
            return Err(key_not_provided());
        }
        let r = self.ctx.range(req).await?;
        Ok(range_reply(&self.ctx, r))
    }

    /// KV.Put.
    pub async fn do_put(&self, req: raft_kv::PutRequest) -> Result<pb::PutResponse, Status> {
        self.ctx.metrics.request("Put");
        if req.key.is_empty() {
            return Err(key_not_provided());
        }
        self.ctx.check_size(req.encoded_len())?;
        match self.ctx.propose(Op::Put(req)).await? {
            Response::Put(r) => Ok(put_reply(&self.ctx, r)),
            _ => Err(unexpected()),
        }
    }

    /// KV.DeleteRange.
    pub async fn do_delete(&self, req: raft_kv::DeleteRangeRequest) -> Result<pb::DeleteRangeResponse, Status> {
        self.ctx.metrics.request("DeleteRange");
        if req.key.is_empty() {
            return Err(key_not_provided());
        }
        match self.ctx.propose(Op::DeleteRange(req)).await? {
            Response::DeleteRange(r) => Ok(delete_reply(&self.ctx, r)),
            _ => Err(unexpected()),
        }
    }

    /// KV.Txn. A transaction of reads only is served as a proposal too (it
    /// is linearizable either way).
    pub async fn do_txn(&self, req: raft_kv::TxnRequest) -> Result<pb::TxnResponse, Status> {
        self.ctx.metrics.request("Txn");
        self.ctx.check_txn(&req)?;
        self.ctx.check_size(req.encoded_len())?;
        match self.ctx.propose(Op::Txn(req)).await? {
            Response::Txn(r) => Ok(txn_reply(&self.ctx, r)),
            _ => Err(unexpected()),
        }
    }

    /// KV.Compact.
    pub async fn do_compact(&self, req: raft_kv::CompactionRequest) -> Result<pb::CompactionResponse, Status> {
        self.ctx.metrics.request("Compact");
        match self.ctx.propose(Op::Compact(req)).await? {
            Response::Compact(r) => Ok(pb::CompactionResponse { header: self.ctx.header(r.revision) }),
            _ => Err(unexpected()),
        }
    }

    /// Lease.LeaseGrant.
    pub async fn do_lease_grant(&self, req: raft_kv::LeaseGrantRequest) -> Result<pb::LeaseGrantResponse, Status> {
        self.ctx.metrics.request("LeaseGrant");
        match self.ctx.propose(Op::LeaseGrant(req)).await {
            Ok(Response::LeaseGrant(r)) => Ok(pb::LeaseGrantResponse {
                header: self.ctx.latest_header(),
                id: r.id,
                ttl: r.ttl,
                error: String::new(),
            }),
            Ok(_) => Err(unexpected()),
            Err(s) if s.message().contains("exists") => {
                Err(Status::failed_precondition("etcdserver: lease already exists"))
            }
            Err(s) => Err(s),
        }
    }

    /// Lease.LeaseRevoke.
    pub async fn do_lease_revoke(&self, req: raft_kv::LeaseRevokeRequest) -> Result<pb::LeaseRevokeResponse, Status> {
        self.ctx.metrics.request("LeaseRevoke");
        match self.ctx.propose(Op::LeaseRevoke(req)).await? {
            Response::LeaseRevoke(r) => Ok(pb::LeaseRevokeResponse { header: self.ctx.header(r.revision) }),
            _ => Err(unexpected()),
        }
    }

    /// Lease.LeaseTimeToLive.
    pub async fn do_lease_ttl(&self, req: pb::LeaseTimeToLiveRequest) -> Result<pb::LeaseTimeToLiveResponse, Status> {
        self.ctx.metrics.request("LeaseTimeToLive");
        let (id, keys) = (req.id, req.keys);
        let r = self.ctx.blocking(move |n| n.lease_time_to_live(id, keys)).await?;
        Ok(pb::LeaseTimeToLiveResponse {
            header: self.ctx.latest_header(),
            id: r.id.max(id),
            ttl: r.ttl,
            granted_ttl: r.granted_ttl,
            keys: r.keys,
        })
    }

    /// Maintenance.Status.
    pub async fn do_status(&self) -> Result<pb::StatusResponse, Status> {
        self.ctx.metrics.request("Status");
        let s = self.ctx.refresh_status().await?;
        Ok(pb::StatusResponse {
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
        })
    }

    /// The client URL of the current leader, for requests only it can serve.
    async fn leader_url(&self) -> Result<Option<String>, Status> {
        let st = self.ctx.refresh_status().await?;
        if st.leader == 0 {
            return Err(to_status(Error::NotLeader { leader: None }));
        }
        if st.leader == st.id {
            return Ok(None);
        }
        let members = self.ctx.blocking(|n| n.member_list()).await?;
        let url = members.into_iter().find(|m| m.id == st.leader).and_then(|m| m.client_urls.into_iter().next());
        match url {
            Some(u) => Ok(Some(u)),
            None => Err(Status::unavailable("etcdserver: not leader")),
        }
    }
}

#[tonic::async_trait]
impl pb::kv_server::Kv for Api {
    async fn range(&self, req: Request<raft_kv::RangeRequest>) -> Result<Reply<pb::RangeResponse>, Status> {
        self.do_range(req.into_inner()).await.map(Reply::new)
    }

    async fn put(&self, req: Request<raft_kv::PutRequest>) -> Result<Reply<pb::PutResponse>, Status> {
        self.do_put(req.into_inner()).await.map(Reply::new)
    }

    async fn delete_range(
        &self,
        req: Request<raft_kv::DeleteRangeRequest>,
    ) -> Result<Reply<pb::DeleteRangeResponse>, Status> {
        self.do_delete(req.into_inner()).await.map(Reply::new)
    }

    async fn txn(&self, req: Request<raft_kv::TxnRequest>) -> Result<Reply<pb::TxnResponse>, Status> {
        self.do_txn(req.into_inner()).await.map(Reply::new)
    }

    async fn compact(&self, req: Request<raft_kv::CompactionRequest>) -> Result<Reply<pb::CompactionResponse>, Status> {
        self.do_compact(req.into_inner()).await.map(Reply::new)
    }
}

/// Watches of one stream: the client's watch id → the member's watcher id
/// and the flag that stops its pump.
type StreamWatches = Arc<Mutex<HashMap<i64, (u64, Arc<AtomicBool>)>>>;

/// Starts a thread that moves a watcher's messages into `out` as etcd
/// responses until the watch ends, `stop` is set or `out` closes. With
/// `progress_notify`, a watch that has been quiet for the server's progress
/// interval gets a progress notification (an empty response at the current
/// revision), as etcd sends them.
pub fn pump_watch(
    ctx: Shared,
    mut watcher: raft_kv::Watcher,
    watch_id: i64,
    progress_notify: bool,
    stop: Arc<AtomicBool>,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    on_end: impl FnOnce() + Send + 'static,
) {
    let spawned = std::thread::Builder::new().name(format!("watch-{watch_id}")).spawn(move || {
        let mut quiet_since = std::time::Instant::now();
        while !stop.load(Ordering::Acquire) && !out.is_closed() {
            let Some(msg) = watcher.recv_timeout(Duration::from_millis(200)) else {
                if progress_notify && quiet_since.elapsed() >= ctx.watch_progress_interval {
                    // The progress message comes back through the watcher,
                    // after any events it still holds.
                    let _ = ctx.node.watch_progress(watcher.id());
                    quiet_since = std::time::Instant::now();
                }
                continue;
            };
            quiet_since = std::time::Instant::now();
            let (resp, last) = match msg {
                WatchMessage::Events { revision, events } => {
                    (pb::WatchResponse { header: ctx.header(revision), watch_id, events, ..Default::default() }, false)
                }
                WatchMessage::Progress { revision } => {
                    (pb::WatchResponse { header: ctx.header(revision), watch_id, ..Default::default() }, false)
                }
                WatchMessage::Canceled { reason } => (
                    pb::WatchResponse {
                        header: ctx.latest_header(),
                        watch_id,
                        canceled: true,
                        cancel_reason: reason,
                        ..Default::default()
                    },
                    true,
                ),
            };
            if out.blocking_send(Ok(resp)).is_err() || last {
                break;
            }
        }
        on_end();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a watch thread");
    }
}

/// Converts an etcd watch-create request to the library's.
pub fn watch_request(c: &pb::WatchCreateRequest) -> raft_kv::WatchRequest {
    raft_kv::WatchRequest {
        key: c.key.clone(),
        range_end: c.range_end.clone(),
        start_revision: c.start_revision,
        prev_kv: c.prev_kv,
        no_put: c.filters.contains(&(pb::watch_create_request::FilterType::Noput as i32)),
        no_delete: c.filters.contains(&(pb::watch_create_request::FilterType::Nodelete as i32)),
    }
}

/// Creates one watch and answers like etcd: `created`, then (for a
/// compacted start revision) a cancel carrying the compact revision.
/// Returns the member's watcher, if the watch is live.
pub async fn create_watch(
    ctx: &Shared,
    c: &pb::WatchCreateRequest,
    watch_id: i64,
    out: &mpsc::Sender<Result<pb::WatchResponse, Status>>,
) -> Option<raft_kv::Watcher> {
    let req = watch_request(c);
    let node = ctx.node.clone();
    let created = match tokio::task::spawn_blocking(move || node.watch(req)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Stopped),
    };
    let header = ctx.latest_header();
    let _ =
        out.send(Ok(pb::WatchResponse { header: header.clone(), watch_id, created: true, ..Default::default() })).await;
    match created {
        Ok(w) => Some(w),
        Err(e) => {
            // Like etcd: the watch is created, then cancelled; a compacted
            // start revision is reported with the compact revision.
            let compact_revision = match e {
                Error::Compacted { compact_revision, .. } => compact_revision,
                _ => 0,
            };
            let resp = pb::WatchResponse {
                header,
                watch_id,
                canceled: true,
                compact_revision,
                cancel_reason: to_status(e).message().to_string(),
                ..Default::default()
            };
            let _ = out.send(Ok(resp)).await;
            None
        }
    }
}

#[tonic::async_trait]
impl pb::watch_server::Watch for Api {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(&self, req: Request<Streaming<pb::WatchRequest>>) -> Result<Reply<Self::WatchStream>, Status> {
        self.ctx.metrics.request("Watch");
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let watches: StreamWatches = Arc::default();
            let mut next_id: i64 = 0;
            while let Some(Ok(msg)) = input.next().await {
                use pb::watch_request::RequestUnion;
                match msg.request_union {
                    Some(RequestUnion::CreateRequest(c)) => {
                        let watch_id = if c.watch_id != 0 { c.watch_id } else { next_id };
                        next_id = next_id.max(watch_id) + 1;
                        if watches.lock().contains_key(&watch_id) {
                            let resp = pb::WatchResponse {
                                header: ctx.latest_header(),
                                watch_id,
                                created: true,
                                canceled: true,
                                cancel_reason: "etcdserver: duplicate watch ID".into(),
                                ..Default::default()
                            };
                            let _ = tx.send(Ok(resp)).await;
                            continue;
                        }
                        let Some(w) = create_watch(&ctx, &c, watch_id, &tx).await else { continue };
                        let stop = Arc::new(AtomicBool::new(false));
                        watches.lock().insert(watch_id, (w.id(), stop.clone()));
                        let ws = watches.clone();
                        pump_watch(ctx.clone(), w, watch_id, c.progress_notify, stop, tx.clone(), move || {
                            ws.lock().remove(&watch_id);
                        });
                    }
                    Some(RequestUnion::CancelRequest(c)) => {
                        let entry = watches.lock().get(&c.watch_id).cloned();
                        match entry {
                            Some((id, _)) => {
                                let _ = ctx.blocking(move |n| n.cancel_watch(id)).await;
                            }
                            None => {
                                let resp = pb::WatchResponse {
                                    header: ctx.latest_header(),
                                    watch_id: c.watch_id,
                                    canceled: true,
                                    ..Default::default()
                                };
                                let _ = tx.send(Ok(resp)).await;
                            }
                        }
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        let ids: Vec<u64> = watches.lock().values().map(|(id, _)| *id).collect();
                        if ids.is_empty() {
                            let _ = ctx.refresh_status().await;
                            let resp =
                                pb::WatchResponse { header: ctx.latest_header(), watch_id: -1, ..Default::default() };
                            let _ = tx.send(Ok(resp)).await;
                        }
                        for id in ids {
                            let _ = ctx.blocking(move |n| n.watch_progress(id)).await;
                        }
                    }
                    None => {}
                }
            }
            // The client went away: stop every pump (dropping a watcher
            // cancels it on the member).
            for (_, (_, stop)) in watches.lock().drain() {
                stop.store(true, Ordering::Release);
            }
        });
        Ok(Reply::new(ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl pb::lease_server::Lease for Api {
    async fn lease_grant(
        &self,
        req: Request<raft_kv::LeaseGrantRequest>,
    ) -> Result<Reply<pb::LeaseGrantResponse>, Status> {
        self.do_lease_grant(req.into_inner()).await.map(Reply::new)
    }

    async fn lease_revoke(
        &self,
        req: Request<raft_kv::LeaseRevokeRequest>,
    ) -> Result<Reply<pb::LeaseRevokeResponse>, Status> {
        self.do_lease_revoke(req.into_inner()).await.map(Reply::new)
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<pb::LeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<raft_kv::LeaseKeepAliveRequest>>,
    ) -> Result<Reply<Self::LeaseKeepAliveStream>, Status> {
        self.ctx.metrics.request("LeaseKeepAlive");
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            while let Some(Ok(k)) = input.next().await {
                let id = k.id;
                let resp = match ctx.propose(Op::LeaseKeepAlive(k)).await {
                    Ok(Response::LeaseKeepAlive(r)) => {
                        pb::LeaseKeepAliveResponse { header: ctx.latest_header(), id: r.id, ttl: r.ttl }
                    }
                    // etcd answers an unknown lease with TTL 0, not an error.
                    Err(s) if s.code() == tonic::Code::NotFound => {
                        pb::LeaseKeepAliveResponse { header: ctx.latest_header(), id, ttl: 0 }
                    }
                    Ok(_) => break,
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        break;
                    }
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Reply::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Reply<pb::LeaseTimeToLiveResponse>, Status> {
        self.do_lease_ttl(req.into_inner()).await.map(Reply::new)
    }

    async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Reply<pb::LeaseLeasesResponse>, Status> {
        self.ctx.metrics.request("LeaseLeases");
        let ids = self.ctx.blocking(|n| n.leases()).await?;
        let leases = ids.into_iter().map(|id| pb::LeaseStatus { id }).collect();
        Ok(Reply::new(pb::LeaseLeasesResponse { header: self.ctx.latest_header(), leases }))
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for Api {
    async fn member_add(&self, req: Request<pb::MemberAddRequest>) -> Result<Reply<pb::MemberAddResponse>, Status> {
        self.ctx.metrics.request("MemberAdd");
        let r = req.into_inner();
        if r.peer_ur_ls.is_empty() {
            return Err(Status::invalid_argument("etcdserver: member peer URLs not provided"));
        }
        let member = raft_kv::Member {
            id: member_id(&self.ctx.token, &r.peer_ur_ls),
            name: String::new(),
            peer_urls: r.peer_ur_ls,
            client_urls: Vec::new(),
            is_learner: r.is_learner,
        };
        match self.ctx.propose(Op::MemberAdd(member)).await? {
            Response::Members(m) => Ok(Reply::new(pb::MemberAddResponse {
                header: self.ctx.latest_header(),
                member: m.member,
                members: m.members,
            })),
            _ => Err(unexpected()),
        }
    }

    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Reply<pb::MemberRemoveResponse>, Status> {
        self.ctx.metrics.request("MemberRemove");
        let id = req.into_inner().id;
        let op = Op::MemberRemove(raft_kv::MemberRemoveRequest { id });
        match self.ctx.propose(op).await? {
            Response::Members(m) => {
                Ok(Reply::new(pb::MemberRemoveResponse { header: self.ctx.latest_header(), members: m.members }))
            }
            _ => Err(unexpected()),
        }
    }

    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Reply<pb::MemberUpdateResponse>, Status> {
        self.ctx.metrics.request("MemberUpdate");
        let r = req.into_inner();
        let op =
            Op::MemberUpdate(raft_kv::MemberUpdateRequest { id: r.id, peer_urls: r.peer_ur_ls, ..Default::default() });
        match self.ctx.propose(op).await? {
            Response::Members(m) => {
                Ok(Reply::new(pb::MemberUpdateResponse { header: self.ctx.latest_header(), members: m.members }))
            }
            _ => Err(unexpected()),
        }
    }

    async fn member_list(&self, _req: Request<pb::MemberListRequest>) -> Result<Reply<pb::MemberListResponse>, Status> {
        self.ctx.metrics.request("MemberList");
        let members = self.ctx.blocking(|n| n.member_list()).await?;
        Ok(Reply::new(pb::MemberListResponse { header: self.ctx.latest_header(), members }))
    }

    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Reply<pb::MemberPromoteResponse>, Status> {
        self.ctx.metrics.request("MemberPromote");
        let id = req.get_ref().id;
        let op = Op::MemberPromote(raft_kv::MemberPromoteRequest { id });
        match self.ctx.propose(op).await {
            Ok(Response::Members(m)) => {
                Ok(Reply::new(pb::MemberPromoteResponse { header: self.ctx.latest_header(), members: m.members }))
            }
            Ok(_) => Err(unexpected()),
            // Only the leader can judge a learner's progress: ask it.
            Err(s) if s.message() == "etcdserver: not leader" => match self.leader_url().await? {
                Some(url) => {
                    let mut client = pb::cluster_client::ClusterClient::connect(url)
                        .await
                        .map_err(|_| Status::unavailable("etcdserver: not leader"))?;
                    client.member_promote(pb::MemberPromoteRequest { id }).await
                }
                None => Err(s),
            },
            Err(s) => Err(s),
        }
    }
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for Api {
    async fn alarm(&self, _req: Request<pb::AlarmRequest>) -> Result<Reply<pb::AlarmResponse>, Status> {
        self.ctx.metrics.request("Alarm");
        Ok(Reply::new(pb::AlarmResponse { header: self.ctx.latest_header(), alarms: Vec::new() }))
    }

    async fn status(&self, _req: Request<pb::StatusRequest>) -> Result<Reply<pb::StatusResponse>, Status> {
        self.do_status().await.map(Reply::new)
    }

    async fn defragment(&self, _req: Request<pb::DefragmentRequest>) -> Result<Reply<pb::DefragmentResponse>, Status> {
        self.ctx.metrics.request("Defragment");
        Ok(Reply::new(pb::DefragmentResponse { header: self.ctx.latest_header() }))
    }

    async fn hash(&self, _req: Request<pb::HashRequest>) -> Result<Reply<pb::HashResponse>, Status> {
        self.ctx.metrics.request("Hash");
        let h = self.ctx.blocking(|n| n.hash(0)).await?;
        Ok(Reply::new(pb::HashResponse { header: self.ctx.latest_header(), hash: fold_hash(h) }))
    }

    async fn hash_kv(&self, req: Request<pb::HashKvRequest>) -> Result<Reply<pb::HashKvResponse>, Status> {
        self.ctx.metrics.request("HashKV");
        let rev = req.into_inner().revision;
        let st = self.ctx.refresh_status().await?;
        let h = self.ctx.blocking(move |n| n.hash(rev)).await?;
        Ok(Reply::new(pb::HashKvResponse {
            header: self.ctx.header(st.revision),
            hash: fold_hash(h),
            compact_revision: st.compact_revision,
            hash_revision: if rev > 0 { rev } else { st.revision },
        }))
    }

    type SnapshotStream = ReceiverStream<Result<pb::SnapshotResponse, Status>>;

    async fn snapshot(&self, _req: Request<pb::SnapshotRequest>) -> Result<Reply<Self::SnapshotStream>, Status> {
        self.ctx.metrics.request("Snapshot");
        let blob = etcd_snapshot_file(self.ctx.blocking(|n| n.backup()).await?);
        let (tx, rx) = mpsc::channel(4);
        let header = self.ctx.latest_header();
        tokio::spawn(async move {
            const CHUNK: usize = 64 * 1024;
            let total = blob.len();
            let mut sent = 0;
            for chunk in blob.chunks(CHUNK) {
                sent += chunk.len();
                let resp = pb::SnapshotResponse {
                    header: header.clone(),
                    remaining_bytes: (total - sent) as u64,
                    blob: bytes::Bytes::copy_from_slice(chunk),
                    version: ETCD_VERSION.into(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Reply::new(ReceiverStream::new(rx)))
    }

    async fn move_leader(&self, req: Request<pb::MoveLeaderRequest>) -> Result<Reply<pb::MoveLeaderResponse>, Status> {
        self.ctx.metrics.request("MoveLeader");
        let target = req.into_inner().target_id;
        let st = self.ctx.refresh_status().await?;
        if !st.voters.contains(&target) {
            return Err(Status::failed_precondition("etcdserver: bad leader transferee"));
        }
        if st.role != Role::Leader {
            // etcd requires this call on the leader; we forward it there.
            return match self.leader_url().await? {
                Some(url) => {
                    let mut client = pb::maintenance_client::MaintenanceClient::connect(url)
                        .await
                        .map_err(|_| Status::unavailable("etcdserver: not leader"))?;
                    client.move_leader(pb::MoveLeaderRequest { target_id: target }).await
                }
                None => Err(Status::unavailable("etcdserver: not leader")),
            };
        }
        self.ctx.blocking(move |n| n.move_leader(target)).await?;
        Ok(Reply::new(pb::MoveLeaderResponse { header: self.ctx.latest_header() }))
    }
}

/// etcd's hashes are 32-bit: fold the library's 64-bit hash.
fn fold_hash(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
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
