//! Outbound side: one writer thread per (peer, lane) owns that connection.
//!
//! The thread waits for a queued message, dials when it has no connection
//! (and its backoff has expired), drains everything queued into one buffer
//! and writes it with one `write_all`. It shares the connection with
//! senders, which write to an idle lane themselves ([`crate::link`]).
//! While the peer is unreachable, queued messages are dropped and counted:
//! raft resends what matters.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use parking_lot::Mutex;
use raft_kv::RaftMessage;

use crate::ctx::Ctx;
use crate::doorbell::Doorbell;
use crate::handshake::{Handshake, HandshakeError, Lane, Verdict, REPLY_LEN};
use crate::link::{Frames, Link, Outlet};
use crate::metrics::{Counter, Tally};
use crate::tls::PeerStream;

/// How often an idle writer looks at the shutdown flag and its address.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// A peer's address, changeable while its writers run.
#[derive(Debug)]
pub(crate) struct PeerAddr {
    addr: Mutex<String>,
    generation: AtomicU64,
}

impl PeerAddr {
    pub(crate) fn new(addr: String) -> Self {
        PeerAddr { addr: Mutex::new(addr), generation: AtomicU64::new(0) }
    }

    /// Replaces the address; writers reconnect to the new one.
    pub(crate) fn set(&self, addr: String) {
        let mut cur = self.addr.lock();
        if *cur != addr {
            *cur = addr;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    pub(crate) fn get(&self) -> (String, u64) {
        let cur = self.addr.lock();
        (cur.clone(), self.generation.load(Ordering::Acquire))
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A clone of a writer's current socket, so shutdown can interrupt a write.
pub(crate) type ConnSlot = Arc<Mutex<Option<TcpStream>>>;

/// The state of one writer thread.
pub(crate) struct Writer {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) peer: u64,
    pub(crate) lane: Lane,
    pub(crate) rx: Receiver<RaftMessage>,
    pub(crate) addr: Arc<PeerAddr>,
    /// The connection, shared with senders that write to an idle lane.
    pub(crate) outlet: Arc<Outlet>,
    pub(crate) slot: ConnSlot,
    /// Where senders wake this writer (it parks on an empty queue).
    pub(crate) bell: Arc<Doorbell>,
    pub(crate) tally: Tally,
}

/// The writer's own view of its connection: the dialing schedule.
struct Conn {
    backoff: Duration,
    retry_at: Instant,
    ever_connected: bool,
    /// A failure was already logged at warn since the last success.
    failure_logged: bool,
}

/// Writes what a sender left on the link, then `buf`, then flushes (TLS
/// records buffered in rustls).
fn write_link(link: &mut Link, buf: &[u8]) -> std::io::Result<()> {
    let Some(stream) = link.stream.as_mut() else { return Ok(()) };
    stream.write_all(&link.rest)?;
    link.rest.clear();
    stream.write_all(buf)?;
    stream.flush()
}

impl Writer {
    pub(crate) fn run(self) {
        let cfg = &self.ctx.cfg;
        let mut conn = Conn {
            backoff: cfg.backoff_initial,
            retry_at: Instant::now(),
            ever_connected: false,
            failure_logged: false,
        };
        self.outlet.link.lock().generation = self.addr.generation();
        let mut buf = Vec::new();
        loop {
            if self.outlet.needs_writer.load(Ordering::Acquire) {
                self.finish(&mut conn);
            }
            let first = match self.rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    // Parks at once (no spin); a sender rings.
                    self.bell
                        .sleep(IDLE_POLL, || !self.rx.is_empty() || self.outlet.needs_writer.load(Ordering::Acquire));
                    if self.ctx.is_shutdown() {
                        break;
                    }
                    if self.rx.is_empty() {
                        self.follow_address(&mut conn);
                    }
                    continue;
                }
            };
            if self.ctx.is_shutdown() {
                break;
            }
            self.follow_address(&mut conn);
            if !self.connected() && !self.connect(&mut conn) {
                let dropped = 1 + self.rx.try_iter().count();
                self.outlet.queued.fetch_sub(dropped, Ordering::AcqRel);
                self.tally.add(Counter::Dropped, dropped as u64);
                continue;
            }
            let (popped, count, bytes, heartbeat) = self.coalesce(first, &mut buf);
            let mut link = self.outlet.link.lock();
            let failed = count > 0 && {
                // Sampled before the write, so an answer can never beat it.
                let sampled = heartbeat
                    && self.ctx.cfg.on_round_trip.is_some()
                    && self.tally.peer.heartbeat.sending(Instant::now());
                match write_link(&mut link, &buf) {
                    Ok(()) => {
                        self.tally.add(Counter::Sent, count);
                        self.tally.add(Counter::SentBytes, bytes);
                        conn.backoff = cfg.backoff_initial;
                        conn.failure_logged = false;
                        false
                    }
                    Err(e) => {
                        if sampled {
                            self.tally.peer.heartbeat.failed();
                        }
                        tracing::warn!(peer = self.peer, lane = ?self.lane, error = %e, "write failed; reconnecting");
                        self.tally.add(Counter::Dropped, count);
                        true
                    }
                }
            };
            self.outlet.queued.fetch_sub(popped, Ordering::AcqRel);
            if failed {
                self.disconnect(&mut link);
                drop(link);
                self.back_off(&mut conn);
                conn.failure_logged = true;
            }
        }
        self.disconnect(&mut self.outlet.link.lock());
    }

    /// Finishes what a sender left on the link: the tail of a frame, TLS
    /// records still in rustls, or a connection whose write failed.
    fn finish(&self, conn: &mut Conn) {
        let mut link = self.outlet.link.lock();
        self.outlet.needs_writer.store(false, Ordering::Release);
        let failed = link.broken || write_link(&mut link, &[]).is_err();
        if failed {
            if !link.broken {
                tracing::warn!(peer = self.peer, lane = ?self.lane, "write failed; reconnecting");
            }
            self.disconnect(&mut link);
            drop(link);
            self.back_off(conn);
        }
    }

    fn connected(&self) -> bool {
        self.outlet.link.lock().stream.is_some()
    }

    /// Encodes `first` and whatever else is queued (up to `max_write_bytes`)
    /// into `buf`; returns (messages taken from the queue, messages encoded,
    /// bytes, whether a heartbeat is among them). Messages over the frame
    /// limit are dropped here.
    fn coalesce(&self, first: RaftMessage, buf: &mut Vec<u8>) -> (usize, u64, u64, bool) {
        let cfg = &self.ctx.cfg;
        buf.clear();
        let (mut popped, mut frames) = (0, Frames::default());
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            popped += 1;
            frames.add(&msg, cfg.max_frame_bytes, buf, &self.tally);
            if buf.len() < cfg.max_write_bytes {
                next = self.rx.try_recv().ok();
            }
        }
        (popped, frames.count, buf.len() as u64, frames.heartbeat)
    }

    /// Reconnects to a changed address at once.
    fn follow_address(&self, conn: &mut Conn) {
        let generation = self.addr.generation();
        let mut link = self.outlet.link.lock();
        if generation != link.generation {
            link.generation = generation;
            self.disconnect(&mut link);
            conn.backoff = self.ctx.cfg.backoff_initial;
            conn.retry_at = Instant::now();
        }
    }

    /// Dials if the backoff allows; true when connected.
    fn connect(&self, conn: &mut Conn) -> bool {
        if Instant::now() < conn.retry_at {
            return false;
        }
        let (addr, generation) = self.addr.get();
        match self.dial(&addr) {
            Ok(stream) => {
                if conn.ever_connected {
                    self.tally.add(Counter::Reconnects, 1);
                }
                self.tally.add(Counter::Connects, 1);
                tracing::debug!(peer = self.peer, lane = ?self.lane, %addr, "connected");
                conn.ever_connected = true;
                *self.slot.lock() = stream.tcp().try_clone().ok();
                let mut link = self.outlet.link.lock();
                link.stream = Some(stream);
                link.generation = generation;
                true
            }
            Err(e) => {
                self.tally.add(Counter::ConnectFailures, 1);
                if conn.failure_logged {
                    tracing::debug!(peer = self.peer, lane = ?self.lane, %addr, error = %e, "cannot connect");
                } else {
                    tracing::warn!(peer = self.peer, lane = ?self.lane, %addr, error = %e, "cannot connect; retrying with backoff");
                    conn.failure_logged = true;
                }
                self.back_off(conn);
                false
            }
        }
    }

    fn back_off(&self, conn: &mut Conn) {
        conn.retry_at = Instant::now() + conn.backoff;
        conn.backoff = (conn.backoff * 2).min(self.ctx.cfg.backoff_max);
    }

    /// Drops the link's connection and whatever was left unwritten on it.
    fn disconnect(&self, link: &mut Link) {
        if let Some(s) = link.stream.take() {
            let _ = s.tcp().shutdown(Shutdown::Both);
        }
        if !link.rest.is_empty() {
            link.rest.clear();
            self.tally.add(Counter::Dropped, 1);
        }
        link.broken = false;
        *self.slot.lock() = None;
    }

    /// Connects to `addr` and runs the handshakes (TLS first, when the
    /// transport has it).
    fn dial(&self, addr: &str) -> Result<PeerStream, HandshakeError> {
        let cfg = &self.ctx.cfg;
        let mut last = None;
        for sa in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, cfg.connect_timeout) {
                Ok(stream) => return self.handshake(addr, stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("address resolved to nothing")).into())
    }

    fn handshake(&self, addr: &str, sock: TcpStream) -> Result<PeerStream, HandshakeError> {
        let cfg = &self.ctx.cfg;
        sock.set_nodelay(true)?;
        sock.set_write_timeout(Some(cfg.handshake_timeout))?;
        sock.set_read_timeout(Some(cfg.handshake_timeout))?;
        let mut stream = match &cfg.tls {
            Some(tls) => PeerStream::connect(tls, addr, sock, cfg.handshake_timeout).map_err(HandshakeError::Tls)?,
            None => PeerStream::Plain(sock),
        };
        let sock = stream.tcp();
        sock.set_write_timeout(Some(cfg.handshake_timeout))?;
        sock.set_read_timeout(Some(cfg.handshake_timeout))?;
        stream.write_all(&Handshake::new(self.lane, cfg.cluster_id, cfg.id, self.peer).encode())?;
        stream.flush()?;
        let mut reply = [0u8; REPLY_LEN];
        stream.read_exact(&mut reply)?;
        match Verdict::from_reply(reply)? {
            Verdict::Accepted => {}
            refused => return Err(HandshakeError::Refused(refused)),
        }
        let sock = stream.tcp();
        sock.set_write_timeout(Some(cfg.write_timeout))?;
        // A writer never reads after this; rustls might, so its reads are
        // bounded like the writes.
        sock.set_read_timeout(if stream.is_tls() { Some(cfg.write_timeout) } else { None })?;
        Ok(stream)
    }
}
