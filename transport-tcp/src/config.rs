//! [`TcpConfig`]: every tunable of a transport, with documented defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::TransportError;
use crate::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::rtt::RoundTripHook;
use crate::tls::PeerTls;

/// Configuration of one member's transport.
///
/// ```
/// use transport_tcp::TcpConfig;
/// let cfg = TcpConfig::new(1, 0x5eed, "127.0.0.1:0".parse().unwrap())
///     .peer(2, "10.0.0.2:2380")
///     .peer(3, "http://node3:2380");
/// assert_eq!(cfg.peers[&3], "http://node3:2380");
/// assert_eq!(cfg.max_frame_bytes, 64 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// This member's id (non-zero); inbound handshakes must name it.
    pub id: u64,
    /// Cluster id; both ends of a connection must agree on it.
    pub cluster_id: u64,
    /// Address to listen on for peers (port 0 picks a free one).
    pub listen_addr: SocketAddr,
    /// Initial address book: member id → `host:port` (an `http://` or
    /// `https://` prefix is accepted and ignored). Host names are resolved at each dial. This
    /// member's own id is ignored.
    pub peers: BTreeMap<u64, String>,
    /// Largest frame body sent or accepted. Default 64 MiB.
    pub max_frame_bytes: usize,
    /// Raft messages queued per peer before new ones are dropped.
    /// Default 4 096.
    pub queue_capacity: usize,
    /// Snapshot messages queued per peer before new ones are dropped.
    /// Default 4.
    pub snapshot_queue_capacity: usize,
    /// A writer stops coalescing queued messages into one write at this
    /// many bytes. Default 4 MiB.
    pub max_write_bytes: usize,
    /// Timeout of one dial. Default 1 s.
    pub connect_timeout: Duration,
    /// Time a handshake may take, either side. Default 5 s.
    pub handshake_timeout: Duration,
    /// A write blocked this long closes the connection. Default 10 s.
    pub write_timeout: Duration,
    /// First reconnect delay after a failure. Default 50 ms.
    pub backoff_initial: Duration,
    /// Reconnect delays double up to this. Default 2 s.
    pub backoff_max: Duration,
    /// Inbound connections served at once; more are closed. Default 1 024.
    pub max_inbound_connections: usize,
    /// Longest [`shutdown`](crate::TcpHandle::shutdown) waits for threads.
    /// Default 2 s.
    pub shutdown_timeout: Duration,
    /// TLS on both lanes, accepted and dialed; `None` (the default) is
    /// cleartext. Both ends of a cluster must agree.
    pub tls: Option<PeerTls>,
    /// Called with each peer's measured heartbeat round trip (see
    /// [`RoundTripHook`]); `None` (the default) measures nothing.
    pub on_round_trip: Option<RoundTripHook>,
}

impl TcpConfig {
    /// Defaults for member `id` of cluster `cluster_id`, listening on
    /// `listen_addr`.
    pub fn new(id: u64, cluster_id: u64, listen_addr: SocketAddr) -> Self {
        TcpConfig {
            id,
            cluster_id,
            listen_addr,
            peers: BTreeMap::new(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            queue_capacity: 4_096,
            snapshot_queue_capacity: 4,
            max_write_bytes: 4 << 20,
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            max_inbound_connections: 1_024,
            shutdown_timeout: Duration::from_secs(2),
            tls: None,
            on_round_trip: None,
        }
    }

    /// Adds (or replaces) a peer's address.
    pub fn peer(mut self, id: u64, addr: impl Into<String>) -> Self {
        self.peers.insert(id, addr.into());
        self
    }

    /// Sets the reconnect backoff: first delay and cap.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// Runs both lanes over TLS.
    pub fn tls(mut self, tls: PeerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the largest frame body sent or accepted.
    pub fn max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), TransportError> {
        let bad = |what: &str| Err(TransportError::InvalidConfig(what.to_string()));
        if self.id == 0 {
            return bad("id must be non-zero");
        }
        if self.max_frame_bytes == 0 || self.max_frame_bytes > u32::MAX as usize {
            return bad("max_frame_bytes must be in 1..=u32::MAX");
        }
        if self.queue_capacity == 0 || self.snapshot_queue_capacity == 0 || self.max_inbound_connections == 0 {
            return bad("queue capacities and max_inbound_connections must be positive");
        }
        if self.backoff_initial.is_zero() || self.backoff_initial > self.backoff_max {
            return bad("backoff_initial must be positive and at most backoff_max");
        }
        if self.connect_timeout.is_zero() || self.handshake_timeout.is_zero() || self.write_timeout.is_zero() {
            return bad("timeouts must be positive");
        }
        for addr in self.peers.values() {
            normalize_addr(addr)?;
        }
        Ok(())
    }
}

/// `host:port` from `addr`, which may carry an `http://` or `https://`
/// prefix (etcd's peer URLs; whether a connection is TLS is the
/// configuration's [`tls`](TcpConfig::tls), not the scheme) and a trailing
/// `/`.
pub(crate) fn normalize_addr(addr: &str) -> Result<String, TransportError> {
    let s = addr.trim();
    let s = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://")).unwrap_or(s);
    let s = s.strip_suffix('/').unwrap_or(s);
    let ok = match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && !s.contains('/') && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    };
    if ok {
        Ok(s.to_string())
    } else {
        Err(TransportError::InvalidAddress(addr.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(normalize_addr("http://a:1/").unwrap(), "a:1");
        assert_eq!(normalize_addr("[::1]:2380").unwrap(), "[::1]:2380");
        assert_eq!(normalize_addr("https://a:1").unwrap(), "a:1");
        for bad in ["a", ":1", "a:0", "a:x", "ftp://a:1", "a:99999", ""] {
            assert!(normalize_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation() {
        let ok = TcpConfig::new(1, 1, "127.0.0.1:0".parse().unwrap());
        assert!(ok.validate().is_ok());
        assert!(TcpConfig { id: 0, ..ok.clone() }.validate().is_err());
        assert!(ok.clone().max_frame_bytes(0).validate().is_err());
        assert!(ok.clone().backoff(Duration::from_secs(3), Duration::from_secs(1)).validate().is_err());
        assert!(ok.peer(2, "nope").validate().is_err());
    }
}
