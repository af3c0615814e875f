//! The Watch service: [`watch_stream`], one task per stream of watches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_util::StreamExt;
use raft_kv::pb::etcdserverpb as pb;
use raft_kv::{Error, WatchMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamMap;
use tonic::{Request, Response as Reply, Status, Streaming};

use super::{Api, ResponseStream};
use crate::authn::Identity;
use crate::etcd::{to_status, Shared};
use crate::require_leader::{no_leader, RequireLeader, NO_LEADER_CHECKS};
use examples::services;

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
///
/// Each watch is checked against `id`'s read permissions when it is
/// created; a refused one is created and cancelled at once, as etcd does.
/// With `require_leader` (clientv3's `WithRequireLeader`), the stream ends
/// with etcd's "etcdserver: no leader" once the member has had no leader for
/// [`NO_LEADER_CHECKS`] election timeouts in a row.
pub fn watch_stream<S>(ctx: Shared, id: Identity, input: S, require_leader: bool) -> ResponseStream<pb::WatchResponse>
where
    S: Stream<Item = Result<pb::WatchRequest, Status>> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<pb::WatchResponse, Status>>(64);
    tokio::spawn(run_watch_stream(ctx, id, input, tx, require_leader));
    Box::pin(ReceiverStream::new(rx))
}

async fn run_watch_stream<S>(
    ctx: Shared,
    id: Identity,
    mut input: S,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    require_leader: bool,
) where
    S: Stream<Item = Result<pb::WatchRequest, Status>> + Send + Unpin + 'static,
{
    let mut leader_check = tokio::time::interval(ctx.election_timeout.max(Duration::from_millis(10)));
    leader_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut no_leader_checks = 0u32;
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
                        if let Err(denied) = ctx.auth.check_read(&ctx.node, &id, &c.key, &c.range_end) {
                            resp.canceled = true;
                            // Go's rendering of the status, as etcd sends it.
                            resp.cancel_reason = format!("rpc error: code = {:?} desc = {}", denied.code(), denied.message());
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
            _ = leader_check.tick(), if require_leader => {
                no_leader_checks = if ctx.node.state().leader == 0 { no_leader_checks + 1 } else { 0 };
                if no_leader_checks >= NO_LEADER_CHECKS {
                    let _ = tx.send(Err(no_leader())).await;
                    break;
                }
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
        let id = Identity::of(&req);
        let require_leader = req.extensions().get::<RequireLeader>().is_some();
        Ok(Reply::new(watch_stream(self.ctx.clone(), id, req.into_inner(), require_leader)))
    }
}
