//! [`NodeBuilder`]: wires a member's engine, transport and inbox, and starts
//! its node thread and log writer.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::core::peer::Peer;
use crate::driver::background::Background;
use crate::driver::blocking::Node;
use crate::driver::inbox::Inbox;
use crate::driver::input::{Callback, Input};
use crate::driver::local_reads::LocalReads;
use crate::driver::log_writer::LogWriter;
use crate::driver::mailbox::Mailbox;
use crate::driver::member::run;
use crate::driver::metrics::{NodeMetrics, TimedEngine};
use crate::driver::node::{AsyncNode, Shared};
use crate::driver::state::StateBoard;
use crate::driver::transport::Transport;
use crate::driver::Driver;
use crate::engine::Engine;
use crate::{Config, Error, Result};

impl Node {
    /// Starts building member `cfg.id`: `Node::builder(cfg).engine(e).transport(t).start()`.
    pub fn builder(cfg: Config) -> NodeBuilder<()> {
        NodeBuilder::new(cfg)
    }
}

/// Builds and starts a [`Node`]: `Node::builder(cfg).engine(e).transport(t).start()`.
pub struct NodeBuilder<E> {
    cfg: Config,
    engine: E,
    transport: Option<Box<dyn Transport>>,
    inbox: Arc<Inbox<Input>>,
}

impl NodeBuilder<()> {
    /// A builder for member `cfg.id` with no engine yet.
    pub(super) fn new(cfg: Config) -> Self {
        NodeBuilder { cfg, engine: (), transport: None, inbox: Arc::new(Inbox::new()) }
    }
}

impl<E> NodeBuilder<E> {
    /// The storage engine to run on.
    pub fn engine<E2: Engine>(self, engine: E2) -> NodeBuilder<E2> {
        NodeBuilder { cfg: self.cfg, engine, transport: self.transport, inbox: self.inbox }
    }

    /// The transport to the other members.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Box::new(transport));
        self
    }

    /// The node's inbox, for a transport to deliver into; available before
    /// the node starts so the transport can be wired first.
    pub fn mailbox(&self) -> Mailbox {
        Mailbox { inbox: Arc::clone(&self.inbox) }
    }
}

impl<E: Engine> NodeBuilder<E> {
    /// Opens the member on its engine and starts its thread.
    pub fn start(self) -> Result<Node> {
        let metrics = Arc::new(NodeMetrics::default());
        let engine = TimedEngine::new(self.engine, Arc::clone(&metrics));
        let peer: Peer<TimedEngine<E>, Callback> = Peer::open(self.cfg.clone(), engine.clone())?;
        let mut transport = self.transport.unwrap_or_else(|| Box::new(crate::driver::transport::NoTransport));
        let background = Background::scans(self.cfg.id)?;
        let readers = Arc::new(Background::readers(self.cfg.id)?);
        let local_reads = Arc::new(LocalReads::default());
        let writer = LogWriter::start(self.cfg.id, engine.clone(), Arc::clone(&self.inbox))?;
        let driver = Driver::new(engine);
        let auth = peer.auth_shared();
        let board = StateBoard::new(self.cfg.id);
        board.publish(peer.member_state());
        let (cfg, inbox, b, m) = (self.cfg.clone(), Arc::clone(&self.inbox), Arc::clone(&board), Arc::clone(&metrics));
        let (r, l) = (Arc::clone(&readers), Arc::clone(&local_reads));
        let (id, local) = (self.cfg.id, Arc::clone(&local_reads));
        let thread = std::thread::Builder::new()
            .name(format!("raft-kv-node-{}", cfg.id))
            .spawn(move || {
                // A panic (a bug) stops the member like a fatal error, so its
                // process exits and is restarted instead of running on
                // without a raft thread. (A corrupt read raft-rs panicked on
                // is caught in the peer and returned as an error.)
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(peer, driver, cfg, &inbox, &r, &l, &writer, transport.as_mut(), &b, &m)
                }));
                let fatal = ran.unwrap_or_else(|payload| {
                    let what = (payload.downcast_ref::<&str>().map(|s| s.to_string()))
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".into());
                    tracing::error!(id, panic = %what, "the node thread panicked; stopping member");
                    local.clear();
                    inbox.close();
                    Some(Error::Panicked(what))
                });
                writer.stop();
                r.stop();
                b.stop(fatal);
            })
            .map_err(|e| Error::Storage(crate::error::StorageError::new("cannot spawn node thread", e)))?;
        let shared = Arc::new(Shared {
            id: self.cfg.id,
            timeout: self.cfg.tick_interval * (self.cfg.request_timeout_ticks as u32 + 2),
            inbox: self.inbox,
            thread: Mutex::new(Some(thread)),
            metrics,
            board,
            background: Arc::new(background),
            readers,
            local_reads,
            auth,
        });
        Ok(Node { inner: AsyncNode { shared } })
    }
}
