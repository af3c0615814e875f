//! TCP transport between raft-kv members running in different processes or
//! hosts.
//!
//! Each member runs one [`TcpTransport`]: it listens for its peers and keeps
//! one long-lived connection to each peer it sends to (plus a second one,
//! opened on demand, for snapshots so a large snapshot never delays
//! heartbeats). A connection opens with a [handshake](handshake) that names
//! the cluster, the sender and the expected receiver; then it carries
//! length-prefixed, versioned [frames](frame), many per write.
//!
//! ```
//! use raft_kv::{engine::RocksEngine, Config, Node};
//! use std::time::Duration;
//! use transport_tcp::{TcpConfig, TcpTransport};
//!
//! let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir()).collect::<Result<_, _>>()?;
//! let mut handles = Vec::new();
//! let mut nodes = Vec::new();
//! for (id, dir) in (1..=3).zip(&dirs) {
//!     let b = Node::builder(Config::new(id).peers(vec![1, 2, 3])).engine(RocksEngine::open(dir.path())?);
//!     // Port 0: the OS picks one; peers are added once all addresses are known.
//!     let t = TcpTransport::start(TcpConfig::new(id, 0xC1, "127.0.0.1:0".parse()?), b.mailbox())?;
//!     handles.push(t.handle());
//!     nodes.push(b.transport(t).start()?);
//! }
//! for h in &handles {
//!     for other in &handles {
//!         h.add_peer(other.id(), &other.local_addr().to_string())?;
//!     }
//! }
//! for n in &nodes {
//!     n.wait_leader(Duration::from_secs(20))?;
//! }
//! nodes[1].put("greeting", "hello")?;
//! assert_eq!(nodes[2].get("greeting")?.map(|kv| kv.value), Some("hello".into()));
//! assert!(handles.iter().map(|h| h.metrics().messages_sent).sum::<u64>() > 0);
//! for n in &nodes {
//!     n.shutdown(); // drops the node's transport, which stops its threads
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Sending never blocks the node: a raft message to an idle connection is
//! written at once with a non-blocking send, others go into bounded
//! per-peer queues that writer threads drain; when a queue is full or its
//! peer unreachable, messages are dropped and counted in [`Metrics`] (raft
//! resends). Peers can
//! be added, moved and removed at runtime through a [`TcpHandle`], which
//! stays usable after the transport has been handed to the node.
//!
//! With [`TcpConfig::on_round_trip`] set, the transport measures each
//! peer's heartbeat round trip (see [`RoundTripHook`]).
//!
//! Wire format: see [`handshake`] and [`frame`].

mod config;
mod ctx;
mod doorbell;
mod error;
pub mod frame;
mod groups;
pub mod handshake;
mod link;
mod metrics;
mod reader;
mod rtt;
mod tls;
mod transport;
mod writer;

pub use config::TcpConfig;
pub use error::TransportError;
pub use metrics::Metrics;
pub use rtt::{RoundTripHook, ANSWER_WITHIN, SAMPLE_EVERY};
pub use tls::PeerTls;
pub use transport::{TcpHandle, TcpTransport};
