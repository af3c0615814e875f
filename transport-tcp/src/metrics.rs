//! Counters of what a transport did, for logs and Prometheus export.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::rtt::HeartbeatProbe;

/// One counter of [`Metrics`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Sent,
    SentBytes,
    Dropped,
    Received,
    ReceivedBytes,
    Connects,
    Reconnects,
    ConnectFailures,
    HandshakesRejected,
    FramesRejected,
}

const COUNTERS: usize = 10;

/// Live counters; [`Counters::snapshot`] reads them. A peer's also hold its
/// sampled heartbeat, shared by its writer and the reader of its messages.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    counts: [AtomicU64; COUNTERS],
    pub(crate) heartbeat: HeartbeatProbe,
}

impl Counters {
    pub(crate) fn add(&self, c: Counter, n: u64) {
        self.counts[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Metrics {
        let get = |c: Counter| self.counts[c as usize].load(Ordering::Relaxed);
        Metrics {
            messages_sent: get(Counter::Sent),
            bytes_sent: get(Counter::SentBytes),
            messages_dropped: get(Counter::Dropped),
            messages_received: get(Counter::Received),
            bytes_received: get(Counter::ReceivedBytes),
            connects: get(Counter::Connects),
            reconnects: get(Counter::Reconnects),
            connect_failures: get(Counter::ConnectFailures),
            handshakes_rejected: get(Counter::HandshakesRejected),
            frames_rejected: get(Counter::FramesRejected),
        }
    }
}

/// Counts one peer's events into its own counters and the transport's totals.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub(crate) peer: Arc<Counters>,
    pub(crate) total: Arc<Counters>,
}

impl Tally {
    pub(crate) fn add(&self, c: Counter, n: u64) {
        self.peer.add(c, n);
        self.total.add(c, n);
    }
}

/// Counters of a transport, in total or for one peer. All are monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Raft messages written to a connection.
    pub messages_sent: u64,
    /// Frame bytes written (headers included).
    pub bytes_sent: u64,
    /// Outbound messages dropped: queue full, peer down or unknown, write
    /// failed, or larger than the frame limit.
    pub messages_dropped: u64,
    /// Raft messages received and handed to the node.
    pub messages_received: u64,
    /// Frame bytes received (headers included).
    pub bytes_received: u64,
    /// Outbound connections established (handshake accepted).
    pub connects: u64,
    /// Outbound connections established again after an earlier one was lost.
    pub reconnects: u64,
    /// Failed dials or handshakes.
    pub connect_failures: u64,
    /// Inbound handshakes refused (wrong cluster or receiver, garbage).
    pub handshakes_rejected: u64,
    /// Inbound connections closed for a malformed or oversized frame.
    pub frames_rejected: u64,
}
