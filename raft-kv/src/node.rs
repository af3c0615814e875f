//! [`Node`]: the production driver of a [`Peer`].
//!
//! One thread per member owns the `Peer`. Each loop it takes everything in its
//! inbox (client requests and raft messages, handled `max_batch` at a time),
//! ticks when the interval has passed, and runs one
//! [`Peer::handle_ready_async`]: so many concurrent proposals share one Ready
//! and one network write per peer. The Ready's log write goes to a second
//! thread, the log writer, which merges whatever queued up during its last
//! fsync into the next one (group commit) and reports back with
//! `Input::Persisted`; an idle member writes inline instead. Finished requests
//! are completed through their callbacks on the node thread.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use raft::eraftpb::Message;

use crate::api::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, KeyValue, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::api::{Member, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest, MembersResponse};
use crate::command::{Op, Response};
use crate::engine::Engine;
use crate::inbox::{reply, Inbox, NoReply};
use crate::metrics::{NodeMetrics, TimedEngine};
use crate::peer::{LogWrite, Peer, Status};
use crate::transport::{Mailbox, Transport};
use crate::watch::{WatchRequest, Watcher};
use crate::{Config, Error, Result};

/// A callback that receives a request's outcome (on the node thread: keep
/// it short, e.g. send on a channel).
pub type Callback = Box<dyn FnOnce(Result<Response>) + Send>;

/// What a node thread receives.
pub(crate) enum Input {
    Raft(Message),
    Propose(Op, Callback),
    Read(RangeRequest, Callback),
    /// Runs a closure on the member (status, watches, lease queries...).
    Local(LocalFn),
    /// The log writer made every write up to this Ready number durable.
    Persisted(u64),
    /// The log writer failed; the member must stop.
    WriteFailed(Error),
    Shutdown,
}

/// A closure run on the node thread against its member.
pub(crate) type LocalFn = Box<dyn FnOnce(&mut dyn Local) + Send>;

/// What a node thread does on the member for local requests: the part of
/// [`Peer`]'s API that needs no consensus round.
pub(crate) trait Local {
    fn status(&self) -> Status;
    fn campaign(&mut self) -> Result<()>;
    fn transfer_leader(&mut self, to: u64);
    fn watch(&mut self, req: WatchRequest) -> Result<Watcher>;
    fn cancel_watch(&mut self, id: u64);
    fn watch_progress(&mut self, id: u64);
    fn lease_time_to_live(&self, id: i64, keys: bool) -> LeaseTimeToLiveResponse;
    fn leases(&self) -> Vec<i64>;
    fn hash(&self, revision: i64) -> Result<u64>;
    fn members(&self) -> Vec<Member>;
    fn backup(&self) -> Result<Vec<u8>>;
}

impl<E: Engine> Local for Peer<E, Callback> {
    fn status(&self) -> Status {
        Peer::status(self)
    }
    fn campaign(&mut self) -> Result<()> {
        Peer::campaign(self)
    }
    fn transfer_leader(&mut self, to: u64) {
        Peer::transfer_leader(self, to)
    }
    fn watch(&mut self, req: WatchRequest) -> Result<Watcher> {
        Peer::watch(self, req)
    }
    fn cancel_watch(&mut self, id: u64) {
        Peer::cancel_watch(self, id)
    }
    fn watch_progress(&mut self, id: u64) {
        Peer::watch_progress(self, id)
    }
    fn lease_time_to_live(&self, id: i64, keys: bool) -> LeaseTimeToLiveResponse {
        Peer::lease_time_to_live(self, id, keys)
    }
    fn leases(&self) -> Vec<i64> {
        Peer::leases(self)
    }
    fn hash(&self, revision: i64) -> Result<u64> {
        self.mvcc().hash(revision)
    }
    fn members(&self) -> Vec<Member> {
        Peer::members(self)
    }
    fn backup(&self) -> Result<Vec<u8>> {
        Peer::backup(self)
    }
}

/// Builds and starts a [`Node`]: `Node::builder(cfg).engine(e).transport(t).start()`.
pub struct NodeBuilder<E> {
    cfg: Config,
    engine: E,
    transport: Option<Box<dyn Transport>>,
    inbox: Arc<Inbox<Input>>,
}

impl<E> NodeBuilder<E> {
    /// The storage engine to run on.
    pub fn engine<E2: Engine>(self, engine: E2) -> NodeBuilder<E2> {
        NodeBuilder { cfg: self.cfg, engine, transport: self.transport, inbox: self.inbox }
    }

    /// The transport to the other members.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Box::new(transport));
        self
    }

    /// The node's inbox, for a transport to deliver into; available before
    /// the node starts so the transport can be wired first.
    pub fn mailbox(&self) -> Mailbox {
        Mailbox { inbox: Arc::clone(&self.inbox) }
    }
}

impl<E: Engine> NodeBuilder<E> {
    /// Opens the member on its engine and starts its thread.
    pub fn start(self) -> Result<Node> {
        let metrics = Arc::new(NodeMetrics::default());
        let engine = TimedEngine::new(self.engine, Arc::clone(&metrics));
        let peer: Peer<TimedEngine<E>, Callback> = Peer::open(self.cfg.clone(), engine.clone())?;
        let mut transport = self.transport.unwrap_or_else(|| Box::new(crate::transport::NoTransport));
        let writer = LogWriter::start(self.cfg.id, engine, Arc::clone(&self.inbox))?;
        let (cfg, inbox) = (self.cfg.clone(), Arc::clone(&self.inbox));
        let thread = std::thread::Builder::new()
            .name(format!("raft-kv-node-{}", cfg.id))
            .spawn(move || {
                run(peer, cfg, &inbox, &writer, transport.as_mut());
                writer.stop();
            })
            .map_err(|e| Error::Storage(format!("cannot spawn node thread: {e}")))?;
        Ok(Node {
            shared: Arc::new(Shared {
                id: self.cfg.id,
                timeout: self.cfg.tick_interval * (self.cfg.request_timeout_ticks as u32 + 2),
                inbox: self.inbox,
                thread: Mutex::new(Some(thread)),
                metrics,
            }),
        })
    }
}

struct Shared {
    metrics: Arc<NodeMetrics>,
    id: u64,
    timeout: Duration,
    inbox: Arc<Inbox<Input>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn stop(&self) {
        let _ = self.inbox.push(Input::Shutdown);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running member: a handle to its thread. Cheap to clone, `Send + Sync`;
/// the member stops when [`Node::shutdown`] is called or the last handle is
/// dropped.
///
/// Writes go through raft and return once committed by a quorum that
/// persisted them and applied on this member. Reads are linearizable unless
/// the request asks for `serializable`.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.shared.id).finish()
    }
}

impl Node {
    /// Starts building member `cfg.id`.
    pub fn builder(cfg: Config) -> NodeBuilder<()> {
        NodeBuilder { cfg, engine: (), transport: None, inbox: Arc::new(Inbox::new()) }
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Latency histograms of the member's synced (fsync) and apply writes.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.shared.metrics
    }

    fn submit(&self, input: Input) -> Result<()> {
        self.shared.inbox.push(input).map_err(|_| Error::Stopped)
    }

    /// Proposes `op`; `done` receives the outcome.
    pub fn propose_with(&self, op: Op, done: Callback) {
        if let Err(Input::Propose(_, done)) = self.shared.inbox.push(Input::Propose(op, done)) {
            done(Err(Error::Stopped));
        }
    }

    /// Reads a range; `done` receives the outcome.
    pub fn range_with(&self, req: RangeRequest, done: Callback) {
        if let Err(Input::Read(_, done)) = self.shared.inbox.push(Input::Read(req, done)) {
            done(Err(Error::Stopped));
        }
    }

    fn wait(&self, f: impl FnOnce(Callback)) -> Result<Response> {
        let (slot, waiter) = reply();
        f(Box::new(move |res| slot.set(res)));
        waiter.wait(self.shared.timeout).unwrap_or_else(|e| Err(no_reply(e)))
    }

    /// Proposes `op` and waits for its outcome.
    pub fn propose(&self, op: Op) -> Result<Response> {
        self.wait(|cb| self.propose_with(op, cb))
    }

    /// Writes `value` at `key`.
    pub fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<PutResponse> {
        self.put_request(PutRequest::new(key, value))
    }

    /// Runs a put request.
    pub fn put_request(&self, req: PutRequest) -> Result<PutResponse> {
        match self.propose(Op::Put(req))? {
            Response::Put(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Reads a range.
    pub fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        match self.wait(|cb| self.range_with(req, cb))? {
            Response::Range(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Reads one key (linearizably).
    pub fn get(&self, key: impl Into<Bytes>) -> Result<Option<KeyValue>> {
        Ok(self.range(RangeRequest::key(key))?.kvs.into_iter().next())
    }

    /// Deletes a key or a range.
    pub fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        match self.propose(Op::DeleteRange(req))? {
            Response::DeleteRange(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Runs a transaction.
    pub fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        match self.propose(Op::Txn(req))? {
            Response::Txn(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Drops history below `revision`.
    pub fn compact(&self, revision: i64) -> Result<CompactionResponse> {
        match self.propose(Op::Compact(CompactionRequest { revision, physical: false }))? {
            Response::Compact(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Runs `f` on the member's thread and returns its result.
    fn local<R: Send + 'static>(&self, f: impl FnOnce(&mut dyn Local) -> R + Send + 'static) -> Result<R> {
        let (slot, waiter) = reply();
        self.submit(Input::Local(Box::new(move |peer| slot.set(f(peer)))))?;
        waiter.wait(self.shared.timeout).map_err(no_reply)
    }

    /// The member's status.
    pub fn status(&self) -> Result<Status> {
        self.local(|p| p.status())
    }

    /// A hash of the key-value history up to `revision` (0: current), equal
    /// on members that applied the same entries (etcd's HashKV).
    pub fn hash(&self, revision: i64) -> Result<u64> {
        self.local(move |p| p.hash(revision))?
    }

    /// Watches keys; see [`crate::watch`]. Works on any member.
    pub fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        self.local(move |p| p.watch(req))?
    }

    /// Cancels watch `id` (its watcher receives a `Canceled`).
    pub fn cancel_watch(&self, id: u64) -> Result<()> {
        self.local(move |p| p.cancel_watch(id))
    }

    /// Asks for a progress notification on watch `id`.
    pub fn watch_progress(&self, id: u64) -> Result<()> {
        self.local(move |p| p.watch_progress(id))
    }

    /// Grants a lease of `ttl` seconds (`id` 0: the member picks one).
    pub fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse> {
        match self.propose(Op::LeaseGrant(LeaseGrantRequest { ttl, id }))? {
            Response::LeaseGrant(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Revokes a lease, deleting its keys.
    pub fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse> {
        match self.propose(Op::LeaseRevoke(LeaseRevokeRequest::new(id)))? {
            Response::LeaseRevoke(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Renews a lease to its full TTL.
    pub fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        match self.propose(Op::LeaseKeepAlive(LeaseKeepAliveRequest { id }))? {
            Response::LeaseKeepAlive(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// A lease's remaining life (`ttl == -1`: no such lease).
    pub fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        self.local(move |p| p.lease_time_to_live(id, keys))
    }

    /// Every lease id.
    pub fn leases(&self) -> Result<Vec<i64>> {
        self.local(|p| p.leases())
    }

    fn member_op(&self, op: Op) -> Result<MembersResponse> {
        match self.propose(op)? {
            Response::Members(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Adds a member (a learner when `member.is_learner`); `member.id` 0
    /// lets this member pick an id. Start the new member with an empty
    /// engine and no `peers`: the leader sends it a snapshot.
    pub fn member_add(&self, member: Member) -> Result<MembersResponse> {
        self.member_op(Op::MemberAdd(member))
    }

    /// Removes a member. Removing the leader makes it hand over leadership.
    pub fn member_remove(&self, id: u64) -> Result<MembersResponse> {
        self.member_op(Op::MemberRemove(MemberRemoveRequest { id }))
    }

    /// Promotes a learner to a voter; refused with
    /// [`Error::LearnerNotReady`] while it is far behind, and with
    /// [`Error::NotLeader`] on a member that is not the leader.
    pub fn member_promote(&self, id: u64) -> Result<MembersResponse> {
        self.member_op(Op::MemberPromote(MemberPromoteRequest { id }))
    }

    /// Changes a member's peer URLs.
    pub fn member_update(&self, id: u64, peer_urls: Vec<String>) -> Result<MembersResponse> {
        self.member_op(Op::MemberUpdate(MemberUpdateRequest { id, peer_urls, ..Default::default() }))
    }

    /// A consistent copy of this member's state machine (key-value history,
    /// leases, members) as of its applied index, in the raft snapshot
    /// format: what `etcdctl snapshot save` downloads.
    pub fn backup(&self) -> Result<Vec<u8>> {
        self.local(|p| p.backup())?
    }

    /// Every member, as this member has applied them.
    pub fn member_list(&self) -> Result<Vec<Member>> {
        self.local(|p| p.members())
    }

    /// Moves leadership to voter `to` and waits until it has it.
    pub fn move_leader(&self, to: u64) -> Result<()> {
        let deadline = Instant::now() + self.shared.timeout;
        loop {
            if self.status()?.leader == to {
                return Ok(());
            }
            self.transfer_leader(to)?;
            if Instant::now() >= deadline {
                return Err(Error::Timeout);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until this member knows a leader, for at most `timeout`;
    /// returns the leader's id.
    pub fn wait_leader(&self, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let leader = self.status()?.leader;
            if leader != 0 {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Makes this member campaign for leadership now.
    pub fn campaign(&self) -> Result<()> {
        self.local(|p| p.campaign())?
    }

    /// Asks the leader (this member must be it) to hand leadership to `to`.
    pub fn transfer_leader(&self, to: u64) -> Result<()> {
        self.local(move |p| p.transfer_leader(to))
    }

    /// Stops the member and waits for its thread; pending requests fail with
    /// [`Error::Stopped`]. Other handles then get `Stopped` too.
    pub fn shutdown(&self) {
        self.shared.stop();
    }
}

/// The error for a request that got no reply.
fn no_reply(e: NoReply) -> Error {
    match e {
        NoReply::Timeout => Error::Timeout,
        NoReply::Dropped => Error::Stopped,
    }
}

fn unexpected(r: Response) -> Error {
    Error::Corruption(format!("unexpected response kind: {r:?}"))
}

/// The node thread.
fn run<E: Engine>(
    mut peer: Peer<E, Callback>,
    cfg: Config,
    inbox: &Inbox<Input>,
    writer: &LogWriter<E>,
    transport: &mut dyn Transport,
) {
    let mut next_tick = Instant::now() + cfg.tick_interval;
    let mut stop = false;
    // What the inbox held at the last take, handled `max_batch` at a time.
    let mut pending: std::collections::VecDeque<Input> = std::collections::VecDeque::new();
    let mut compactions = Compactions::default();
    let mut taken = Vec::new();
    while !stop {
        if pending.is_empty() {
            let mut wait = next_tick.saturating_duration_since(Instant::now());
            if peer.has_ready() {
                wait = Duration::ZERO;
            } else if peer.is_streaming_snapshots() {
                wait = wait.min(Duration::from_millis(1));
            }
            // Group commit: everything waiting goes into the same Ready.
            inbox.take_all(&mut taken, wait);
            pending.extend(taken.drain(..));
        }
        for input in pending.drain(..pending.len().min(cfg.max_batch)) {
            match input {
                Input::Persisted(number) => peer.persisted(number, &mut |msgs| transport.send(msgs)),
                Input::WriteFailed(e) => {
                    tracing::error!(id = cfg.id, error = %e, "log write failed; stopping member");
                    stop = true;
                }
                input => stop |= handle(&mut peer, input),
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            peer.tick();
            next_tick += cfg.tick_interval;
            if next_tick < now {
                next_tick = now + cfg.tick_interval;
            }
        }
        if peer.has_ready() {
            match peer.handle_ready_async(&mut |msgs| transport.send(msgs), &mut |(cb, res)| cb(res)) {
                Ok(write) => {
                    if let Some(write) = write {
                        if peer.unpersisted_writes() == 1 && pending.is_empty() && inbox.is_empty() {
                            // Nothing else to do meanwhile: write here and save
                            // the two thread hand-offs (they cost more latency
                            // than they hide when the member is idle).
                            if let Err(e) = writer.write_inline(write, &mut peer, transport) {
                                tracing::error!(id = cfg.id, error = %e, "log write failed; stopping member");
                                stop = true;
                            }
                        } else {
                            writer.submit(write);
                        }
                    }
                    if let Some(job) = peer.take_compaction() {
                        compactions.start(cfg.id, job);
                    }
                    if let Some(members) = peer.take_members_changed() {
                        transport.set_members(&members);
                    }
                }
                Err(e) => {
                    tracing::error!(id = cfg.id, error = %e, "storage failure; stopping member");
                    stop = true;
                }
            }
        }
        if peer.is_streaming_snapshots() {
            match peer.snapshot_chunks(&mut |to| transport.snapshot_room(to), 4) {
                Ok(chunks) if !chunks.is_empty() => transport.send(chunks),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(id = cfg.id, error = %e, "storage failure; stopping member");
                    stop = true;
                }
            }
        }
    }
    // A stopped member leaves no thread behind holding its engine open.
    compactions.stop();
    for (cb, res) in peer.fail_all() {
        cb(res);
    }
    // Refuse new input and fail whatever is still queued.
    pending.extend(inbox.close());
    for input in pending {
        match input {
            Input::Propose(_, cb) | Input::Read(_, cb) => cb(Err(Error::Stopped)),
            _ => {}
        }
    }
    tracing::info!(id = cfg.id, "member stopped");
}

/// Handles one input; returns true on shutdown.
fn handle<E: Engine>(peer: &mut Peer<E, Callback>, input: Input) -> bool {
    match input {
        Input::Raft(msg) => {
            if let Err(e) = peer.step(msg) {
                tracing::debug!(id = peer.id(), error = %e, "dropped raft message");
            }
        }
        Input::Propose(op, cb) => peer.propose(op, cb),
        Input::Read(req, cb) => peer.read(req, cb),
        Input::Local(f) => f(peer),
        Input::Shutdown => return true,
        // Handled by the loop in `run`.
        Input::Persisted(_) | Input::WriteFailed(_) => {}
    }
    false
}

/// The member's log writer: a thread that makes each [`LogWrite`] durable
/// while the node thread goes on, then reports it with
/// [`Input::Persisted`]. Whatever queued up during one fsync goes into the
/// next engine batch and fsync together (group commit across Readies).
struct LogWriter<E> {
    queue: Arc<Inbox<Option<LogWrite>>>,
    thread: Option<JoinHandle<()>>,
    /// For writes done inline by the node thread (`write_inline`).
    engine: E,
}

impl<E: Engine> LogWriter<E> {
    fn start(id: u64, engine: E, node: Arc<Inbox<Input>>) -> Result<LogWriter<E>> {
        let queue = Arc::new(Inbox::new());
        let q = Arc::clone(&queue);
        let inline = engine.clone();
        let thread = std::thread::Builder::new()
            .name(format!("raft-kv-log-{id}"))
            .spawn(move || write_log(&engine, &q, &node))
            .map_err(|e| Error::Storage(format!("cannot spawn log writer thread: {e}")))?;
        Ok(LogWriter { queue, thread: Some(thread), engine: inline })
    }

    /// Writes `write` on the calling (node) thread and reports it to the
    /// peer. Only when no earlier write is still queued, so order holds.
    fn write_inline(&self, write: LogWrite, peer: &mut Peer<E, Callback>, transport: &mut dyn Transport) -> Result<()> {
        if !write.batch.is_empty() {
            self.engine.write(write.batch, write.sync)?;
        }
        peer.persisted(write.number, &mut |msgs| transport.send(msgs));
        Ok(())
    }

    fn submit(&self, write: LogWrite) {
        // Refused only after `stop`, when nothing waits for the outcome.
        let _ = self.queue.push(Some(write));
    }

    /// Stops the writer after the writes queued so far.
    fn stop(mut self) {
        let _ = self.queue.push(None);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The log writer thread's loop.
fn write_log<E: Engine>(engine: &E, queue: &Inbox<Option<LogWrite>>, node: &Inbox<Input>) {
    let mut taken = Vec::new();
    loop {
        queue.take_all(&mut taken, Duration::from_secs(1));
        let mut batch = crate::engine::WriteBatch::new();
        let (mut sync, mut last, mut stop) = (false, None, false);
        for item in taken.drain(..) {
            match item {
                Some(w) => {
                    batch.extend(w.batch);
                    sync |= w.sync;
                    last = Some(w.number);
                }
                None => stop = true,
            }
        }
        if let Some(number) = last {
            let res = if batch.is_empty() { Ok(()) } else { engine.write(batch, sync) };
            let report = match res {
                Ok(()) => Input::Persisted(number),
                Err(e) => Input::WriteFailed(e),
            };
            let failed = matches!(report, Input::WriteFailed(_));
            if node.push(report).is_err() || failed {
                stop = true;
            }
        }
        if stop {
            queue.close();
            return;
        }
    }
}

/// Physical compactions running on threads of their own: deleting a large
/// history takes seconds, which must not stall the member. Stopped (between
/// batches) and joined when the member stops.
#[derive(Default)]
struct Compactions {
    stop: Arc<std::sync::atomic::AtomicBool>,
    running: Vec<JoinHandle<()>>,
}

impl Compactions {
    fn start<E: Engine>(&mut self, id: u64, job: crate::mvcc::Compaction<E>) {
        self.running.retain(|t| !t.is_finished());
        let revision = job.revision();
        let stop = Arc::clone(&self.stop);
        let spawned = std::thread::Builder::new().name(format!("raft-kv-compact-{id}")).spawn(move || {
            let started = Instant::now();
            match job.run_until(&|| stop.load(std::sync::atomic::Ordering::Relaxed)) {
                Ok(n) => tracing::info!(id, revision, deleted = n, took = ?started.elapsed(), "history compacted"),
                Err(e) => tracing::warn!(id, revision, error = %e, "physical compaction failed; the next one retries"),
            }
        });
        match spawned {
            Ok(t) => self.running.push(t),
            Err(e) => {
                tracing::warn!(id, revision, error = %e, "cannot start physical compaction; the next one retries")
            }
        }
    }

    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.running {
            let _ = t.join();
        }
    }
}
