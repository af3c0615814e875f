//! The sans-IO core: one raft member and its state machine, with no
//! threads, clocks or sockets.
//!
//! - [`peer`]: [`peer::Peer`], the member — raft-rs's `RawNode` over
//!   [`raftlog`], the state machine ([`mvcc`], [`lease`], [`membership`],
//!   [`dedup`], [`auth`], [`alarm`]) and [`watch`]es; inputs in, one [`ready::Ready`] value out per
//!   step;
//! - [`ready`]: that value and the order a driver must carry it out in;
//! - [`batching`]: one step's appends to a follower merged into one message;
//! - [`snapshot`]: raft snapshots of the state machine, streamed in chunks;
//! - [`status`]: what a member reports about itself;
//! - [`export`], [`import`]: the state machine read out record by record, and
//!   a new member laid out from records (etcd snapshot files).
//! - [`recovery`]: a survivor restarting alone (`force_new_cluster`).
//! - [`integrity`]: the first corrupt read any of a member's readers met,
//!   which stops the member.
//!
//! Everything here reaches storage only through the `Engine` seam
//! (`crate::engine`); the driver (`crate::driver`) supplies time, network
//! and the log writer.

pub mod alarm;
pub mod auth;
pub mod batching;
pub mod dedup;
pub mod export;
pub mod import;
pub mod integrity;
pub mod lease;
pub mod membership;
pub mod mvcc;
pub mod peer;
pub mod raftlog;
pub mod reads;
pub mod ready;
pub mod recovery;
pub mod snapshot;
pub mod status;
pub mod watch;
