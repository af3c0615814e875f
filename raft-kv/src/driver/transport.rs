//! The seam between a node and its network.
//!
//! Outbound, a node hands batches of raft messages to its [`Transport`].
//! Inbound, a transport delivers what it receives into the node's
//! `Mailbox`.

use raft::eraftpb::Message;

/// Carries raft messages from one member to the others.
///
/// `send` must not block the node's thread for long: a transport queues,
/// coalesces and drops (when a peer is down or its queue is full) as it sees
/// fit. Raft tolerates lost, duplicated and reordered messages.
pub trait Transport: Send + 'static {
    /// Sends `msgs`; each carries its destination in `to`.
    fn send(&mut self, msgs: Vec<Message>);

    /// True when the transport can take another snapshot chunk for `to`
    /// now (flow control for snapshot streams). The default says yes.
    fn snapshot_room(&self, to: u64) -> bool {
        let _ = to;
        true
    }

    /// Told the members (with their peer URLs) whenever membership changes,
    /// and once at start. The default ignores it.
    fn set_members(&mut self, members: &[crate::api::Member]) {
        let _ = members;
    }
}

/// A transport that drops everything: for a single-member cluster.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTransport;

impl Transport for NoTransport {
    fn send(&mut self, _msgs: Vec<Message>) {}
}
