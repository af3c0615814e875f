//! [`Ctx`]: what the transport's threads share (configuration, counters,
//! live inbound connections, the threads to join at shutdown).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::config::TcpConfig;
use crate::error::TransportError;
use crate::handshake::{Handshake, Lane};
use crate::metrics::{Counters, Tally};

/// What every transport thread shares. Holds no queue senders, so threads
/// never keep themselves alive through it.
pub(crate) struct Ctx {
    pub(crate) cfg: TcpConfig,
    pub(crate) shutdown: AtomicBool,
    pub(crate) totals: Arc<Counters>,
    pub(crate) per_peer: Mutex<BTreeMap<u64, Arc<Counters>>>,
    /// Live inbound connections by (sender, lane), to close one that a newer
    /// connection from the same sender supersedes, and all at shutdown.
    pub(crate) inbound: Mutex<HashMap<(u64, Lane), (u64, TcpStream)>>,
    pub(crate) next_conn_id: AtomicU64,
    pub(crate) inbound_active: AtomicUsize,
    /// Inbound connections still in their handshake, by remote address.
    pub(crate) handshaking: Mutex<HashMap<IpAddr, usize>>,
    /// Live inbound connections from senders outside the address book.
    pub(crate) unknown_active: AtomicUsize,
    /// The member ids in the address book: their connections always get a
    /// slot (one per sender and lane; a newer one supersedes the older).
    pub(crate) known: Mutex<BTreeSet<u64>>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Ctx {
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Counters of `peer` plus the totals.
    pub(crate) fn tally(&self, peer: u64) -> Tally {
        let peer = self.per_peer.lock().entry(peer).or_default().clone();
        Tally { peer, total: self.totals.clone() }
    }

    /// Spawns a named thread that shutdown will wait for.
    pub(crate) fn spawn(&self, name: String, f: impl FnOnce() + Send + 'static) -> Result<(), TransportError> {
        let handle = std::thread::Builder::new().name(name).spawn(f).map_err(TransportError::Spawn)?;
        let mut threads = self.threads.lock();
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
        Ok(())
    }

    /// Counts a connection from `ip` entering its handshake; false (and not
    /// counted) when `limit` from that address are in theirs already.
    pub(crate) fn start_handshake(&self, ip: IpAddr, limit: usize) -> bool {
        let mut h = self.handshaking.lock();
        let n = h.entry(ip).or_default();
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` left its handshake.
    pub(crate) fn end_handshake(&self, ip: IpAddr) {
        let mut h = self.handshaking.lock();
        if let Some(n) = h.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                h.remove(&ip);
            }
        }
    }

    /// Records an accepted connection, closing the one it replaces.
    pub(crate) fn register_inbound(&self, hs: &Handshake, stream: &TcpStream) -> u64 {
        let id = self.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let Ok(clone) = stream.try_clone() else { return id };
        if let Some((_, old)) = self.inbound.lock().insert((hs.from, hs.lane), (id, clone)) {
            tracing::debug!(from = hs.from, lane = ?hs.lane, "newer connection supersedes an older one");
            let _ = old.shutdown(Shutdown::Both);
        }
        id
    }

    /// Forgets connection `id` unless a newer one took its place.
    pub(crate) fn unregister_inbound(&self, hs: &Handshake, id: u64) {
        let mut inbound = self.inbound.lock();
        if inbound.get(&(hs.from, hs.lane)).is_some_and(|(cur, _)| *cur == id) {
            inbound.remove(&(hs.from, hs.lane));
        }
    }
}
