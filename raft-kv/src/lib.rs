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
//! The crate has three layers, each a module:
//!
//! - **the sans-IO core** (`core`): the raft member and its state machine
//!   (peer, raft log, MVCC store, watches, leases, membership, snapshots),
//!   with no threads, clocks or sockets; each step's work comes out as one
//!   `Ready` value;
//! - **the engine seam** ([`engine`]): the storage traits, RocksDB for
//!   production and an in-memory engine with a crash model;
//! - **the driver** (`driver`): the one component that carries out a
//!   `Ready` under the durability rules, and the production node around it
//!   (the member's thread, its inbox, log writer, metrics, and the
//!   [`Node`] / [`AsyncNode`] handles), with the [`Transport`] seam.
//!
//! An embedder needs only what is re-exported here. The core and the driver
//! component are public with the `sans-io` feature, for drivers of one's
//! own (the simulator is one). The request and response types are etcd's
//! wire messages, generated once from `proto/` into [`pb`] and re-exported
//! by [`api`].

pub mod api;
pub mod command;
pub mod config;
pub mod engine;
pub mod error;
pub mod hash;
pub mod mutation;
pub mod pb;

#[cfg(feature = "sans-io")]
pub mod core;
#[cfg(not(feature = "sans-io"))]
#[allow(dead_code)]
mod core;
#[cfg(feature = "sans-io")]
pub mod driver;
#[cfg(not(feature = "sans-io"))]
#[allow(dead_code)]
mod driver;
pub(crate) mod keys;

pub use api::*;
pub use command::{AuthChange, AuthInfo, AuthOp, LeaseRevoke, MemberUpdate, Op, Response, SimpleToken};
pub use config::Config;
pub use core::auth::{Access, AuthShared, AuthState, SimpleTokens, ROOT};
pub use core::export::{Export, Version};
pub use core::import::Importer;
pub use core::recovery::force_new_cluster;
pub use core::status::{MemberState, Role, Status};
pub use core::watch::{WatchMessage, WatchRequest, Watcher};
pub use driver::blocking::Node;
pub use driver::builder::NodeBuilder;
pub use driver::call::Call;
pub use driver::input::Callback;
pub use driver::mailbox::Mailbox;
pub use driver::metrics;
pub use driver::node::AsyncNode;
pub use driver::state::StateChanges;
pub use driver::transport::{NoTransport, Transport};
pub use engine::{Engine, MemEngine, RocksEngine};
pub use error::{AuthError, Error, InvalidRequest, Result, StorageError};
pub use raft::eraftpb::Message as RaftMessage;

#[cfg(feature = "sans-io")]
pub use core::{
    mvcc::{Compaction, MvccView},
    peer::Peer,
    reads::{HistoryJob, HistoryRead, RangeJob},
    ready::{Completion, DiskWrite, LogWrite, Ready},
};
#[cfg(feature = "sans-io")]
pub use driver::{Driver, Io};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctest;
