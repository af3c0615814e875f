//! raft-kv: an embeddable, replicated, durable, linearizable key-value store
//! with etcd's data model.
//!
//! A program starts one [`Node`] per member, each on its own [`engine`]
//! (RocksDB in production) and [`Transport`]; the members elect a leader with
//! raft (tikv's raft-rs) and apply the same commands in the same order.
//!
//! ```
//! use raft_kv::{engine::RocksEngine, Config, Node, RangeRequest};
//!
//! let dir = tempfile::tempdir()?;
//! // A single-member cluster; see the README for three members.
//! let node = Node::builder(Config::new(1).peers(vec![1]))
//!     .engine(RocksEngine::open(dir.path())?)
//!     .start()?;
//! node.wait_leader(std::time::Duration::from_secs(10))?;
//! node.put("/app/a", "1")?;
//! node.put("/app/b", "2")?;
//! let r = node.range(RangeRequest::prefix("/app/"))?;
//! assert_eq!(r.kvs.len(), 2);
//! assert_eq!(r.kvs[1].value, "2");
//! node.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same member is an async API: [`Node::to_async`] gives an
//! [`AsyncNode`] whose operations are [`Call`]s, futures that need no
//! particular runtime; a [`Watcher`] is a `futures` stream, and
//! [`AsyncNode::state_changes`] reports leader changes without polling.
//! Errors are typed ([`Error`], [`InvalidRequest`], both `#[non_exhaustive]`).
//!
//! ```
//! use futures_util::StreamExt;
//! use raft_kv::{engine::RocksEngine, Config, Node, WatchMessage, WatchRequest};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = tempfile::tempdir()?;
//!     let node = Node::builder(Config::new(1).peers(vec![1]))
//!         .engine(RocksEngine::open(dir.path())?)
//!         .start()?
//!         .to_async();
//!     node.wait_leader().await?;
//!     let mut watch = node.watch(WatchRequest::key("/config")).await?;
//!     let put = node.put("/config", "v2").await?;
//!     let Some(WatchMessage::Events { revision, .. }) = watch.next().await else { panic!() };
//!     assert_eq!(revision, put.revision());
//!     node.shutdown();
//!     Ok(())
//! }
//! ```
//!
//! Layers, bottom up: [`engine`] (the storage seam), [`raftlog`] (raft's
//! storage on an engine), [`mvcc`] (the state machine), [`peer`] (the sans-IO
//! raft member), [`node`] (the production driver thread, and the blocking
//! and async handles) and [`transport`]. The request and response types are
//! etcd's wire messages, generated once from `proto/` into [`pb`] and
//! re-exported by [`api`].

pub mod api;
mod call;
pub mod command;
pub mod config;
mod dedup;
pub mod driver;
pub mod engine;
pub mod error;
/// Non-cryptographic hashing (64-bit FNV-1a).
pub mod hash;
mod inbox;
pub mod keys;
pub mod lease;
pub mod membership;
pub mod metrics;
pub mod mvcc;
pub mod node;
pub mod pb;
pub mod peer;
pub mod raftlog;
pub mod ready;
pub mod snapshot;
pub mod state;
pub mod transport;
pub mod watch;

pub use api::*;
pub use call::Call;
pub use command::{LeaseRevoke, MemberUpdate, Op, Response};
pub use config::Config;
pub use driver::{Driver, Io};
pub use engine::{Engine, MemEngine, RocksEngine};
pub use error::{Error, InvalidRequest, Result, StorageError};
pub use node::{AsyncNode, Callback, Node, NodeBuilder};
pub use peer::{Peer, Role, Status};
pub use raft::eraftpb::Message as RaftMessage;
pub use ready::{Completion, DiskWrite, LogWrite, Ready};
pub use state::{MemberState, StateChanges};
pub use transport::{Mailbox, NoTransport, Transport};
pub use watch::{WatchMessage, WatchRequest, Watcher};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctest;
