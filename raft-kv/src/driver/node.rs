//! [`AsyncNode`]: the handle of a running member, every operation a
//! [`Call`].
//!
//! A handle pushes requests into the member's inbox; the node thread
//! (`member.rs`) owns the `Peer`, takes the whole inbox at once, and runs its
//! `Driver`, so many concurrent proposals share one Ready and one network
//! write per peer. Finished requests complete their `Call`s from the node
//! thread. `Node` (`blocking.rs`) is the same calls waited for.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::api::{
    AlarmAction, AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, KeyValue, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse, Member, MemberPromoteRequest,
    MemberRemoveRequest, MembersResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest,
    TxnResponse,
};
use futures_core::Stream as _;

use crate::command::{AuthChange, AuthInfo, LeaseRevoke, MemberUpdate, Op, Response};
use crate::core::auth::{AuthShared, AuthState, SimpleTokens};
use crate::core::status::{MemberState, Status};
use crate::core::watch::{WatchRequest, Watcher};
use crate::driver::background::Background;
use crate::driver::call::{call, Call, Responder, SharedResponder};
use crate::driver::inbox::{Inbox, INBOX_LIMIT};
use crate::driver::input::{Callback, Input, Local, LocalFn, ScanJob};
use crate::driver::local_reads::LocalReads;
use crate::driver::metrics::NodeMetrics;
use crate::driver::state::{StateBoard, StateChanges};
use crate::{Error, Result};

pub(super) struct Shared {
    pub(super) metrics: Arc<NodeMetrics>,
    pub(super) id: u64,
    /// How long a blocking caller waits for an answer.
    pub(super) timeout: Duration,
    pub(super) inbox: Arc<Inbox<Input>>,
    pub(super) thread: Mutex<Option<JoinHandle<()>>>,
    pub(super) board: Arc<StateBoard>,
    /// The thread for whole-store reads (hash, backup).
    pub(super) background: Arc<Background>,
    /// The member's readers (ranges, watch history), shared with the node
    /// thread.
    pub(super) readers: Arc<Background>,
    /// The applied state's latest view, for serializable ranges.
    pub(super) local_reads: Arc<LocalReads>,
    /// The auth state the node thread publishes, and its simple tokens.
    pub(super) auth: Arc<AuthShared>,
}

impl Shared {
    fn stop(&self) {
        let _ = self.inbox.push(Input::Shutdown);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        self.background.stop();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A response type the member produces for some request.
trait FromResponse: Sized {
    fn from_response(r: Response) -> Result<Self>;
}

macro_rules! from_response {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl FromResponse for $t {
            fn from_response(r: Response) -> Result<Self> {
                match r {
                    Response::$v(x) => Ok(x),
                    other => Err(Error::Corruption(format!("unexpected response kind: {other:?}"))),
                }
            }
        }
    )*};
}

from_response!(
    RangeResponse => Range,
    PutResponse => Put,
    DeleteRangeResponse => DeleteRange,
    TxnResponse => Txn,
    CompactionResponse => Compact,
    LeaseGrantResponse => LeaseGrant,
    LeaseRevokeResponse => LeaseRevoke,
    LeaseKeepAliveResponse => LeaseKeepAlive,
    MembersResponse => Members,
    u64 => Auth,
    AlarmResponse => Alarm,
);

/// A running member, driven from async code: every operation returns a
/// [`Call`], a future that needs no particular runtime (tokio, async-std,
/// a hand-rolled executor). Cheap to clone, `Send + Sync`; the member stops
/// when [`AsyncNode::shutdown`] is called or the last handle (async or
/// blocking) is dropped. [`Node`](crate::Node) is the same member with blocking methods.
///
/// There is no timer inside a `Call`: the member itself fails a request it
/// cannot finish with [`Error::Timeout`] after `request_timeout_ticks`.
///
/// ```
/// use futures_util::StreamExt;
/// use raft_kv::{engine::RocksEngine, Config, Node, RangeRequest, WatchMessage, WatchRequest};
///
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// # rt.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let node = Node::builder(Config::new(1).peers(vec![1]))
///     .engine(RocksEngine::open(dir.path())?)
///     .start()?
///     .to_async();
/// node.wait_leader().await?;
/// let mut watch = node.watch(WatchRequest::prefix("/app/")).await?;
/// node.put("/app/a", "1").await?;
/// let r = node.range(RangeRequest::prefix("/app/")).await?;
/// assert_eq!(r.kvs[0].value, "1");
/// match watch.next().await {
///     Some(WatchMessage::Events { events, .. }) => assert_eq!(events[0].key(), b"/app/a"),
///     other => panic!("{other:?}"),
/// }
/// node.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AsyncNode {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for AsyncNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncNode").field("id", &self.shared.id).finish()
    }
}

impl AsyncNode {
    /// This member's id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Latency histograms of the member's synced (fsync) and apply writes.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.shared.metrics
    }

    /// Leader, term, role, indexes and revision as the member last
    /// published them (after its latest step): no round trip.
    pub fn state(&self) -> MemberState {
        self.shared.board.current()
    }

    /// A stream of the member's state whenever its leader, term, role or
    /// liveness changes (starting with the current state).
    pub fn state_changes(&self) -> StateChanges {
        StateChanges::new(Arc::clone(&self.shared.board))
    }

    /// The error that stopped the member, if a fatal (storage) error did.
    /// A server should exit non-zero on it so its supervisor restarts it.
    pub fn fatal_error(&self) -> Option<Error> {
        self.shared.board.fatal()
    }

    fn submit(&self, input: Input) {
        // A refused input is dropped with its responder or callback inside,
        // which completes the call with `Stopped`.
        let _ = self.shared.inbox.push(input);
    }

    /// Proposes `op`; `done` receives the outcome on the node thread. The
    /// building block of the typed methods, for adapters of their own.
    pub fn propose_with(&self, op: Op, done: Callback) {
        self.propose_as_with(op, None, done)
    }

    /// Proposes `op` on behalf of a client authenticated as `auth`: with
    /// authentication enabled the command is checked against the auth
    /// state it applies under (etcd's rule), and fails with
    /// [`AuthError::OldRevision`](crate::AuthError::OldRevision) if that
    /// state is newer than `auth.revision` and the command touches key
    /// ranges — check again and resubmit.
    /// `None` is a trusted caller (what [`AsyncNode::propose_with`] sends).
    pub fn propose_as_with(&self, op: Op, auth: Option<AuthInfo>, done: Callback) {
        let done = self.shared.metrics.track_proposal(done);
        if let Err((Input::Propose(_, _, done), why)) =
            self.shared.inbox.push_within(Input::Propose(op, auth, done), INBOX_LIMIT)
        {
            done(Err(why));
        }
    }

    /// [`AsyncNode::propose_as_with`] as a [`Call`].
    pub fn propose_as_user(&self, op: Op, auth: Option<AuthInfo>) -> Call<Response> {
        let (tx, rx) = call();
        self.propose_as_with(op, auth, Box::new(move |r| tx.send(r)));
        rx
    }

    /// The auth store as of this member's last applied auth change: users,
    /// roles, permissions, enabled flag and revision (no round trip).
    pub fn auth_state(&self) -> Arc<AuthState> {
        self.shared.auth.state()
    }

    /// The simple tokens this member has registered (etcd's
    /// `--auth-token simple`), to validate a client's token.
    pub fn auth_tokens(&self) -> &SimpleTokens {
        self.shared.auth.tokens()
    }

    /// Changes the auth store through raft (etcd's Auth requests; passwords
    /// already hashed, see [`AuthChange`]); completes with the auth
    /// revision after the change, once applied here. Run as a trusted
    /// caller: use [`AsyncNode::propose_as_user`] for a client's request.
    pub fn auth_change(&self, change: AuthChange) -> Call<u64> {
        self.propose_as(Op::from(change))
    }

    /// Reads a range; `done` receives the outcome on one of the member's
    /// reader threads (or on the node thread when the read fails early).
    /// A serializable range is served from the applied state's latest view
    /// without the node thread (`local_reads.rs`): a single key at once, on
    /// the caller's thread (`done` runs before this returns: a point read
    /// costs less than a hand-off), a wider range on a reader; a
    /// linearizable one goes through the node thread and a ReadIndex round.
    pub fn range_with(&self, req: RangeRequest, done: Callback) {
        if req.serializable {
            if let Some(view) = self.shared.local_reads.latest() {
                // The view validates the request (as the node thread would).
                if req.range_end.is_empty() {
                    return done(view.range(&req).map(Response::Range));
                }
                let run = move |(req, done): (RangeRequest, Callback)| {
                    done(view.range(&req).map(Response::Range));
                };
                if let Err(((_, done), why)) = self.shared.readers.submit((req, done), run) {
                    done(Err(why));
                }
                return;
            }
        }
        if let Err((Input::Read(_, done), why)) = self.shared.inbox.push_within(Input::Read(req, done), INBOX_LIMIT) {
            done(Err(why));
        }
    }

    fn propose_as<T: FromResponse + Send + 'static>(&self, op: Op) -> Call<T> {
        let (tx, rx) = call();
        self.propose_with(op, Box::new(move |r| tx.send(r.and_then(T::from_response))));
        rx
    }

    /// Runs `f` on the member's thread; the call completes with its result.
    fn local<R: Send + 'static>(&self, f: impl FnOnce(&mut dyn Local) -> Result<R> + Send + 'static) -> Call<R> {
        self.submit_local(move |peer, tx| tx.send(f(peer)))
    }

    /// Queues `f` for the member's thread, with the call's responder; a
    /// full inbox answers at once with [`Error::TooManyRequests`].
    fn submit_local<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Local, SharedResponder<R>) + Send + 'static,
    ) -> Call<R> {
        let (tx, rx) = call();
        let tx = tx.shared();
        let answer = tx.clone();
        let input = Input::Local(Box::new(move |peer| f(peer, answer)));
        if let Err((_, why)) = self.shared.inbox.push_within(input, INBOX_LIMIT) {
            tx.send(Err(why));
        }
        rx
    }

    /// Prepares a whole-store read on the member's thread (`prepare` takes
    /// the engine snapshot) and runs it on the member's background thread,
    /// so the scan never holds up the member.
    fn scan<R: Send + 'static>(
        &self,
        prepare: impl FnOnce(&mut dyn Local) -> Result<ScanJob<R>> + Send + 'static,
    ) -> Call<R> {
        let background = Arc::clone(&self.shared.background);
        self.submit_local(move |peer, tx| match prepare(peer) {
            Ok(job) => {
                let answer = tx.clone();
                if let Err(e) = background.run(move || answer.send(job())) {
                    tx.send(Err(e));
                }
            }
            Err(e) => tx.send(Err(e)),
        })
    }

    /// Proposes `op` through raft; completes once it has applied here.
    pub fn propose(&self, op: Op) -> Call<Response> {
        let (tx, rx) = call();
        self.propose_with(op, Box::new(move |r| tx.send(r)));
        rx
    }

    /// Writes `value` at `key`.
    pub fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Call<PutResponse> {
        self.put_request(PutRequest::new(key, value))
    }

    /// Runs a put request.
    pub fn put_request(&self, req: PutRequest) -> Call<PutResponse> {
        self.propose_as(Op::Put(req))
    }

    /// Reads a range (linearizable unless the request is serializable). A
    /// linearizable read of one key runs on the thread that takes the
    /// outcome, once the node thread has confirmed its read index
    /// (`local_reads.rs`).
    pub fn range(&self, req: RangeRequest) -> Call<RangeResponse> {
        self.read_as(req, |r| r)
    }

    /// Reads one key (linearizably).
    pub fn get(&self, key: impl Into<Bytes>) -> Call<Option<KeyValue>> {
        self.read_as(RangeRequest::key(key), |r| r.kvs.into_iter().next())
    }

    /// Reads `req`, answering with `shape` of its response.
    fn read_as<T: Send + 'static>(&self, req: RangeRequest, shape: fn(RangeResponse) -> T) -> Call<T> {
        let (tx, rx) = call();
        let through_node = move |tx: Responder<T>| -> Callback {
            Box::new(move |r| tx.send(r.and_then(RangeResponse::from_response).map(shape)))
        };
        if req.serializable || !req.range_end.is_empty() {
            self.range_with(req, through_node(tx));
            return rx;
        }
        let (local_reads, inbox) = (Arc::clone(&self.shared.local_reads), Arc::clone(&self.shared.inbox));
        let done: Callback = Box::new(move |r| match r {
            // The view published at or after the read index (the node thread
            // publishes one whenever its applied index moves, before it
            // completes anything): read it on the caller's thread.
            Ok(Response::ReadIndex(index)) => match local_reads.latest_at() {
                Some((at, view)) if at >= index => tx.send_later(move || view.range(&req).map(shape)),
                // No view at the index (never expected): read on the node's
                // readers instead, after a second ReadIndex round.
                _ => {
                    let again = through_node(tx);
                    if let Err((Input::Read(_, again), why)) = inbox.push_within(Input::Read(req, again), INBOX_LIMIT) {
                        again(Err(why));
                    }
                }
            },
            Ok(other) => tx.send(RangeResponse::from_response(other).map(shape)),
            Err(e) => tx.send(Err(e)),
        });
        if let Err((Input::Barrier(done), why)) = self.shared.inbox.push_within(Input::Barrier(done), INBOX_LIMIT) {
            done(Err(why));
        }
        rx
    }

    /// Deletes a key or a range.
    pub fn delete_range(&self, req: DeleteRangeRequest) -> Call<DeleteRangeResponse> {
        self.propose_as(Op::DeleteRange(req))
    }

    /// Runs a transaction.
    pub fn txn(&self, req: TxnRequest) -> Call<TxnResponse> {
        self.propose_as(Op::Txn(req))
    }

    /// Drops history below `revision`.
    pub fn compact(&self, revision: i64) -> Call<CompactionResponse> {
        self.compact_request(CompactionRequest { revision, physical: false })
    }

    /// Runs a compaction request.
    pub fn compact_request(&self, req: CompactionRequest) -> Call<CompactionResponse> {
        self.propose_as(Op::Compact(req))
    }

    /// The member's full status (including its engine size).
    pub fn status(&self) -> Call<Status> {
        self.local(|p| Ok(p.status()))
    }

    /// A hash of the key-value history up to `revision` (0: current), equal
    /// on members that applied the same entries (etcd's HashKV).
    pub fn hash(&self, revision: i64) -> Call<u64> {
        self.scan(move |p| p.hash_job(revision))
    }

    /// Watches keys; see [`Watcher`]. Works on any member. The
    /// [`Watcher`] is a stream; dropping it cancels the watch.
    pub fn watch(&self, req: WatchRequest) -> Call<Watcher> {
        let inbox = Arc::clone(&self.shared.inbox);
        self.local(move |p| {
            let mut w = p.watch(req)?;
            let id = w.id();
            w.on_drop(move || {
                let cancel: LocalFn = Box::new(move |p| p.cancel_watch(id));
                let _ = inbox.push(Input::Local(cancel));
            });
            Ok(w)
        })
    }

    /// Cancels watch `id` (its watcher receives a `Canceled`).
    pub fn cancel_watch(&self, id: u64) -> Call<()> {
        self.local(move |p| {
            p.cancel_watch(id);
            Ok(())
        })
    }

    /// Asks for a progress notification on watch `id`.
    pub fn watch_progress(&self, id: u64) -> Call<()> {
        self.local(move |p| {
            p.watch_progress(id);
            Ok(())
        })
    }

    /// Grants a lease of `ttl` seconds (`id` 0: the member picks one).
    pub fn lease_grant(&self, ttl: i64, id: i64) -> Call<LeaseGrantResponse> {
        self.propose_as(Op::LeaseGrant(LeaseGrantRequest { ttl, id }))
    }

    /// Revokes a lease, deleting its keys.
    pub fn lease_revoke(&self, id: i64) -> Call<LeaseRevokeResponse> {
        self.propose_as(Op::LeaseRevoke(LeaseRevoke::new(id)))
    }

    /// Renews a lease to its full TTL.
    pub fn lease_keep_alive(&self, id: i64) -> Call<LeaseKeepAliveResponse> {
        self.propose_as(Op::LeaseKeepAlive(LeaseKeepAliveRequest { id }))
    }

    /// A lease's remaining life (`ttl == -1`: no such lease).
    pub fn lease_time_to_live(&self, id: i64, keys: bool) -> Call<LeaseTimeToLiveResponse> {
        self.local(move |p| Ok(p.lease_time_to_live(id, keys)))
    }

    /// Every lease id.
    pub fn leases(&self) -> Call<Vec<i64>> {
        self.local(|p| Ok(p.leases()))
    }

    /// Adds a member (a learner when `member.is_learner`); `member.id` 0
    /// lets this member pick an id. Start the new member with an empty
    /// engine and no `peers`: the leader sends it a snapshot.
    pub fn member_add(&self, member: Member) -> Call<MembersResponse> {
        self.propose_as(Op::MemberAdd(member))
    }

    /// Removes a member. Removing the leader makes it hand over leadership.
    pub fn member_remove(&self, id: u64) -> Call<MembersResponse> {
        self.propose_as(Op::MemberRemove(MemberRemoveRequest { id }))
    }

    /// Promotes a learner to a voter; refused with
    /// [`Error::LearnerNotReady`] while it is far behind, and with
    /// [`Error::NotLeader`] (naming the leader) on a member that is not it.
    pub fn member_promote(&self, id: u64) -> Call<MembersResponse> {
        self.propose_as(Op::MemberPromote(MemberPromoteRequest { id }))
    }

    /// Changes a member's peer URLs.
    pub fn member_update(&self, id: u64, peer_urls: Vec<String>) -> Call<MembersResponse> {
        self.propose_as(Op::MemberUpdate(MemberUpdate::peer_urls(id, peer_urls)))
    }

    /// Records this member's name and client URLs in the member list (what
    /// a server does once it is up, so `member list` shows them).
    pub fn member_publish(&self, name: String, client_urls: Vec<String>) -> Call<MembersResponse> {
        self.propose_as(Op::MemberUpdate(MemberUpdate::publish(self.shared.id, name, client_urls)))
    }

    /// Every member, as this member has applied them.
    pub fn member_list(&self) -> Call<Vec<Member>> {
        self.local(|p| Ok(p.members()))
    }

    /// Runs `f` on this member's background thread over an [`Export`] of
    /// its state machine as of its applied index (taken when the call
    /// reaches the member), and completes with what `f` returns: how a
    /// backup in another format is written without blocking the member or
    /// holding the store in memory. At most a few such jobs wait per
    /// member; past that, [`Error::TooManyRequests`].
    ///
    /// [`Export`]: crate::Export
    pub fn export<R: Send + 'static>(&self, f: impl FnOnce(crate::Export) -> Result<R> + Send + 'static) -> Call<R> {
        self.scan(move |p| {
            let ex = p.export();
            Ok(Box::new(move || f(ex)))
        })
    }

    /// etcd's Alarm call. `GET` lists the active alarms of the request's
    /// type (every alarm for `NONE`) as this member has applied them,
    /// without a consensus round; `ACTIVATE` and `DEACTIVATE` go through
    /// the log, so every member raises or clears the alarm at the same
    /// index. Disarming NOSPACE on a member still over its quota lets the
    /// next write that takes space raise it again.
    pub fn alarm(&self, req: AlarmRequest) -> Call<AlarmResponse> {
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => {
                let kind = req.alarm();
                self.local(move |p| Ok(AlarmResponse { header: None, alarms: p.alarms(kind) }))
            }
            Ok(_) => self.propose_as(Op::Alarm(req)),
            Err(_) => {
                let (tx, rx) = call();
                tx.send(Err(Error::invalid(format!("unknown alarm action {}", req.action))));
                rx
            }
        }
    }

    /// Every active alarm (a shorthand for an `alarm` GET of type `NONE`).
    pub fn alarm_list(&self) -> Call<AlarmResponse> {
        self.alarm(AlarmRequest { action: AlarmAction::Get as i32, member_id: 0, alarm: AlarmType::None as i32 })
    }

    /// Defragments this member's engine (RocksDB: a compaction of every
    /// column family's whole key range) on the member's background thread,
    /// and completes when it is done; the member goes on serving meanwhile.
    /// Only this member is defragmented, as with etcd.
    pub fn defragment(&self) -> Call<()> {
        self.scan(|p| Ok(p.defragment_job()))
    }

    /// Moves leadership to voter `to` (this member must be the leader) and
    /// completes once `to` has it, or with [`Error::Timeout`] after the
    /// request timeout.
    pub fn move_leader(&self, to: u64) -> Call<()> {
        let (tx, rx) = call();
        self.submit(Input::MoveLeader(to, Instant::now() + self.shared.timeout, tx));
        rx
    }

    /// Makes this member campaign for leadership now.
    pub fn campaign(&self) -> Call<()> {
        self.local(|p| p.campaign())
    }

    /// Asks the leader (this member must be it) to hand leadership to `to`,
    /// without waiting for the outcome.
    pub fn transfer_leader(&self, to: u64) -> Call<()> {
        self.local(move |p| {
            p.transfer_leader(to);
            Ok(())
        })
    }

    /// Completes once this member knows a leader, with the leader's id
    /// ([`Error::Stopped`] if the member stops first). Wrap it in your
    /// runtime's timeout to bound the wait.
    pub fn wait_leader(&self) -> impl std::future::Future<Output = Result<u64>> + Send + 'static {
        let mut changes = self.state_changes();
        std::future::poll_fn(move |cx| loop {
            match std::pin::Pin::new(&mut changes).poll_next(cx) {
                std::task::Poll::Ready(Some(st)) if st.stopped => return std::task::Poll::Ready(Err(Error::Stopped)),
                std::task::Poll::Ready(Some(st)) if st.leader != 0 => return std::task::Poll::Ready(Ok(st.leader)),
                std::task::Poll::Ready(Some(_)) => continue,
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(Err(Error::Stopped)),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        })
    }

    /// Stops the member and waits for its thread (briefly: pending requests
    /// fail with [`Error::Stopped`]). Other handles then get `Stopped` too.
    pub fn shutdown(&self) {
        self.shared.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::engine::MemEngine;
    use crate::{Config, Error, Node};

    #[test]
    fn a_panic_on_the_node_thread_stops_the_member_with_an_error() {
        let cfg = Config::new(1).peers(vec![1]).tick_interval(Duration::from_millis(10));
        let node = Node::builder(cfg).engine(MemEngine::new()).start().expect("start");
        let boom = node.inner.local(|_| -> crate::Result<()> { panic!("a bug on the node thread") });
        assert!(boom.wait(Duration::from_secs(5)).is_err(), "the call of the panicking input fails");
        let deadline = Instant::now() + Duration::from_secs(5);
        while node.inner.fatal_error().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let fatal = node.inner.fatal_error();
        assert!(matches!(&fatal, Some(Error::Panicked(what)) if what.contains("a bug")), "{fatal:?}");
        // Later calls fail at once instead of waiting on a dead thread.
        assert!(matches!(node.inner.status().wait(Duration::from_secs(5)), Err(Error::Stopped)));
    }
}
