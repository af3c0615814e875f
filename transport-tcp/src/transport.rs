//! [`TcpTransport`] (what the node owns) and [`TcpHandle`] (what the rest of
//! the program keeps: address book, metrics, shutdown).

use std::collections::{BTreeMap, HashMap};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use parking_lot::Mutex;
use raft_kv::{Mailbox, RaftMessage, Transport};

use crate::config::{normalize_addr, TcpConfig};
use crate::ctx::Ctx;
use crate::doorbell::Doorbell;
use crate::error::TransportError;
use crate::handshake::Lane;
use crate::link::{Direct, Outlet};
use crate::metrics::{Counter, Metrics, Tally};
use crate::reader::accept_loop;
use crate::writer::{ConnSlot, PeerAddr, Writer};

/// One lane's way to its writer thread: the queue, the connection it
/// shares with senders (who write to an idle lane themselves), the
/// connection slot (so shutdown can interrupt a write) and the writer's
/// doorbell.
struct Outbox {
    tx: Sender<RaftMessage>,
    outlet: Arc<Outlet>,
    slot: ConnSlot,
    bell: Arc<Doorbell>,
}

/// One peer's outbound lanes.
struct PeerEntry {
    addr: Arc<PeerAddr>,
    lanes: [Outbox; 2],
    tally: Tally,
}

impl PeerEntry {
    /// Interrupts the lanes' connections; writers exit once the entry (and
    /// so their queue senders) is dropped.
    fn close(&self) {
        for lane in &self.lanes {
            if let Some(s) = lane.slot.lock().take() {
                let _ = s.shutdown(Shutdown::Both);
            }
            lane.bell.ring();
        }
    }
}

struct Inner {
    ctx: Arc<Ctx>,
    local_addr: SocketAddr,
    peers: Mutex<HashMap<u64, PeerEntry>>,
}

impl Inner {
    fn add_peer(&self, id: u64, addr: &str) -> Result<(), TransportError> {
        let addr = normalize_addr(addr)?;
        if id == self.ctx.cfg.id {
            return Ok(());
        }
        self.ctx.known.lock().insert(id);
        let mut peers = self.peers.lock();
        if self.ctx.is_shutdown() {
            return Err(TransportError::Shutdown);
        }
        if let Some(p) = peers.get(&id) {
            p.addr.set(addr);
            return Ok(());
        }
        let peer_addr = Arc::new(PeerAddr::new(addr));
        let tally = self.ctx.tally(id);
        let lanes = [
            self.spawn_writer(id, Lane::Raft, &peer_addr, &tally)?,
            self.spawn_writer(id, Lane::Snapshot, &peer_addr, &tally)?,
        ];
        peers.insert(id, PeerEntry { addr: peer_addr, lanes, tally });
        Ok(())
    }

    /// Starts the writer of one lane to peer `id`; returns its queue and
    /// connection slot.
    fn spawn_writer(&self, id: u64, lane: Lane, addr: &Arc<PeerAddr>, tally: &Tally) -> Result<Outbox, TransportError> {
        let cfg = &self.ctx.cfg;
        let cap = if lane == Lane::Snapshot { cfg.snapshot_queue_capacity } else { cfg.queue_capacity };
        let (tx, rx) = crossbeam_channel::bounded(cap);
        let slot = ConnSlot::default();
        let bell = Arc::new(Doorbell::default());
        let outlet = Arc::new(Outlet::default());
        let writer = Writer {
            ctx: self.ctx.clone(),
            peer: id,
            lane,
            rx,
            addr: addr.clone(),
            outlet: Arc::clone(&outlet),
            slot: slot.clone(),
            bell: Arc::clone(&bell),
            tally: tally.clone(),
        };
        let lane_name = if lane == Lane::Snapshot { "snap" } else { "raft" };
        self.ctx.spawn(format!("raft-kv-tcp-out-{id}-{lane_name}"), move || writer.run())?;
        Ok(Outbox { tx, outlet, slot, bell })
    }

    /// True when peer `to`'s snapshot lane has queue space (or the peer is
    /// unknown, in which case chunks are dropped and counted anyway).
    fn snapshot_room(&self, to: u64) -> bool {
        let peers = self.peers.lock();
        peers.get(&to).is_none_or(|p| {
            let tx = &p.lanes[Lane::Snapshot.index()].tx;
            tx.len() < tx.capacity().unwrap_or(usize::MAX)
        })
    }

    fn remove_peer(&self, id: u64) -> bool {
        self.ctx.known.lock().remove(&id);
        let removed = self.peers.lock().remove(&id);
        removed.map(|p| p.close()).is_some()
    }

    fn send(&self, msgs: Vec<RaftMessage>) {
        let peers = self.peers.lock();
        // Each peer's raft messages of this call, in order, for one direct
        // write; snapshot chunks always go through their lane's queue.
        let mut raft: Vec<(u64, Vec<RaftMessage>)> = Vec::new();
        for msg in msgs {
            let Some(p) = peers.get(&msg.to) else {
                tracing::debug!(to = msg.to, "no address for peer; dropping message");
                self.ctx.totals.add(Counter::Dropped, 1);
                continue;
            };
            if Lane::of(&msg) == Lane::Snapshot {
                Self::enqueue(p, Lane::Snapshot, msg);
                continue;
            }
            match raft.iter_mut().find(|(to, _)| *to == msg.to) {
                Some((_, batch)) => batch.push(msg),
                None => raft.push((msg.to, vec![msg])),
            }
        }
        let cfg = &self.ctx.cfg;
        for (to, batch) in raft {
            let p = &peers[&to];
            let lane = &p.lanes[Lane::Raft.index()];
            let sample = cfg.on_round_trip.is_some();
            match lane.outlet.write_now(&batch, p.addr.generation(), cfg.max_frame_bytes, sample, &p.tally) {
                Direct::Done => {}
                Direct::RingWriter => lane.bell.ring(),
                Direct::Queue => {
                    for msg in batch {
                        Self::enqueue(p, Lane::Raft, msg);
                    }
                }
            }
        }
    }

    /// Hands `msg` to the writer of `p`'s `lane`; drops and counts it if the
    /// queue is full.
    fn enqueue(p: &PeerEntry, lane: Lane, msg: RaftMessage) {
        let lane = &p.lanes[lane.index()];
        lane.outlet.queued.fetch_add(1, Ordering::AcqRel);
        match lane.tx.try_send(msg) {
            Ok(()) => lane.bell.ring(),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                lane.outlet.queued.fetch_sub(1, Ordering::AcqRel);
                p.tally.add(Counter::Dropped, 1);
            }
        }
    }

    fn shutdown(&self) {
        if self.ctx.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        let peers = std::mem::take(&mut *self.peers.lock());
        for p in peers.values() {
            p.close();
        }
        drop(peers);
        for (_, (_, s)) in self.ctx.inbound.lock().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + self.ctx.cfg.shutdown_timeout;
        loop {
            let threads = std::mem::take(&mut *self.ctx.threads.lock());
            let (done, running): (Vec<_>, Vec<_>) = threads.into_iter().partition(|t| t.is_finished());
            for t in done {
                let _ = t.join();
            }
            if running.is_empty() {
                break;
            }
            self.ctx.threads.lock().extend(running);
            if Instant::now() >= deadline {
                tracing::warn!("transport threads still running after the shutdown timeout; leaving them");
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The TCP transport of one member: hand it to the node builder.
///
/// Dropping it (which the node does when it stops) shuts the transport down.
/// It dereferences to its [`TcpHandle`], so address-book and metrics
/// methods are available on it directly.
pub struct TcpTransport {
    handle: TcpHandle,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport").field("handle", &self.handle).finish()
    }
}

impl TcpTransport {
    /// Validates `cfg`, binds its listen address, starts accepting peer
    /// connections (delivering into `mailbox`) and starts writers for the
    /// configured peers.
    pub fn start(cfg: TcpConfig, mailbox: Mailbox) -> Result<TcpTransport, TransportError> {
        cfg.validate()?;
        let listener = TcpListener::bind(cfg.listen_addr)
            .map_err(|source| TransportError::Bind { addr: cfg.listen_addr, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| TransportError::Bind { addr: cfg.listen_addr, source })?;
        listener.set_nonblocking(true).map_err(|source| TransportError::Bind { addr: cfg.listen_addr, source })?;
        let peers: Vec<(u64, String)> = cfg.peers.iter().map(|(id, a)| (*id, a.clone())).collect();
        let ctx = Arc::new(Ctx {
            cfg,
            shutdown: AtomicBool::new(false),
            totals: Arc::default(),
            per_peer: Mutex::default(),
            inbound: Mutex::default(),
            next_conn_id: AtomicU64::new(0),
            inbound_active: AtomicUsize::new(0),
            handshaking: Mutex::default(),
            unknown_active: AtomicUsize::new(0),
            known: Mutex::default(),
            threads: Mutex::default(),
        });
        let handle = TcpHandle { inner: Arc::new(Inner { ctx: ctx.clone(), local_addr, peers: Mutex::default() }) };
        // From here on, dropping `transport` shuts down whatever started.
        let transport = TcpTransport { handle };
        let accept_ctx = ctx.clone();
        ctx.spawn(format!("raft-kv-tcp-accept-{}", ctx.cfg.id), move || accept_loop(accept_ctx, listener, mailbox))?;
        for (id, addr) in peers {
            transport.add_peer(id, &addr)?;
        }
        tracing::info!(id = ctx.cfg.id, %local_addr, "raft transport listening");
        Ok(transport)
    }

    /// A cheap, cloneable handle that outlives handing the transport to the
    /// node.
    pub fn handle(&self) -> TcpHandle {
        self.handle.clone()
    }
}

impl std::ops::Deref for TcpTransport {
    type Target = TcpHandle;

    fn deref(&self) -> &TcpHandle {
        &self.handle
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, msgs: Vec<RaftMessage>) {
        self.handle.inner.send(msgs);
    }

    /// Snapshot chunks are handed over only while the peer's snapshot lane
    /// has room, so a stream is paced by the connection instead of dropped.
    fn snapshot_room(&self, to: u64) -> bool {
        self.handle.inner.snapshot_room(to)
    }

    /// Follows the cluster's membership: every member is reached at its
    /// first peer URL, and peers that are no longer members are forgotten.
    /// An empty list (a joining member before its first snapshot) changes
    /// nothing, so the addresses it was started with stay usable.
    fn set_members(&mut self, members: &[raft_kv::Member]) {
        if members.is_empty() {
            return;
        }
        for m in members {
            let Some(url) = m.peer_ur_ls.first() else { continue };
            if let Err(e) = self.handle.add_peer(m.id, url) {
                tracing::warn!(peer = m.id, %url, error = %e, "cannot use a member's peer URL");
            }
        }
        for id in self.handle.peers().keys() {
            if !members.iter().any(|m| m.id == *id) {
                self.handle.remove_peer(*id);
            }
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.handle.inner.shutdown();
    }
}

/// Controls a running [`TcpTransport`]: its address book, metrics and
/// shutdown. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct TcpHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TcpHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpHandle")
            .field("id", &self.inner.ctx.cfg.id)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

impl TcpHandle {
    /// The address the transport listens on (with the real port when the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.inner.ctx.cfg.id
    }

    /// Adds peer `id` at `addr` (`host:port`, optionally `http://host:port`),
    /// or moves an existing peer to a new address (its connections are
    /// re-established there). This member's own id is ignored.
    pub fn add_peer(&self, id: u64, addr: &str) -> Result<(), TransportError> {
        self.inner.add_peer(id, addr)
    }

    /// Same as [`add_peer`](Self::add_peer): sets a peer's address.
    pub fn update_peer(&self, id: u64, addr: &str) -> Result<(), TransportError> {
        self.inner.add_peer(id, addr)
    }

    /// Forgets peer `id`: its queued messages are dropped, its connections
    /// closed and further messages to it dropped. Returns whether it was
    /// known.
    pub fn remove_peer(&self, id: u64) -> bool {
        self.inner.remove_peer(id)
    }

    /// The address book: peer id → `host:port`.
    pub fn peers(&self) -> BTreeMap<u64, String> {
        self.inner.peers.lock().iter().map(|(id, p)| (*id, p.addr.get().0)).collect()
    }

    /// Counters summed over all peers.
    pub fn metrics(&self) -> Metrics {
        self.inner.ctx.totals.snapshot()
    }

    /// Counters of each peer that has been sent to or heard from (including
    /// removed ones). Handshake rejections are counted in the totals only.
    pub fn peer_metrics(&self) -> BTreeMap<u64, Metrics> {
        self.inner.ctx.per_peer.lock().iter().map(|(id, c)| (*id, c.snapshot())).collect()
    }

    /// Stops every thread of the transport, waiting at most the configured
    /// `shutdown_timeout`. Idempotent; messages sent afterwards are dropped.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// Whether [`shutdown`](Self::shutdown) has run.
    pub fn is_shutdown(&self) -> bool {
        self.inner.ctx.is_shutdown()
    }
}
