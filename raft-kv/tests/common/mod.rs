//! A cluster of raft-kv nodes on real RocksDB in temp dirs, connected by
//! transport-mem, for integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use raft_kv::{Config, Mailbox, Node, RocksEngine};
use tempfile::TempDir;
use transport_mem::MemNetwork;

/// How long any wait in these tests may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct Cluster {
    pub net: MemNetwork,
    pub ids: Vec<u64>,
    dirs: Vec<TempDir>,
    nodes: Vec<Option<Node>>,
    /// Each running member's inbox, for tests that forge peer messages.
    mailboxes: Vec<Option<Mailbox>>,
    initial: usize,
    cfg: Box<dyn Fn(u64) -> Config + Send + Sync>,
}

pub fn test_config(id: u64, peers: &[u64]) -> Config {
    let mut cfg = Config::new(id).peers(peers.to_vec()).tick_interval(Duration::from_millis(20));
    cfg.request_timeout_ticks = 100;
    cfg
}

impl Cluster {
    /// Starts `n` members with the test configuration.
    pub fn start(n: u64) -> Cluster {
        Self::start_with(n, |cfg| cfg)
    }

    /// Starts `n` members, letting `tweak` adjust each configuration.
    pub fn start_with(n: u64, tweak: impl Fn(Config) -> Config + Send + Sync + 'static) -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let ids: Vec<u64> = (1..=n).collect();
        let peers = ids.clone();
        let mut c = Cluster {
            net: MemNetwork::new(42),
            dirs: ids.iter().map(|_| tempfile::tempdir().expect("tempdir")).collect(),
            nodes: ids.iter().map(|_| None).collect(),
            mailboxes: ids.iter().map(|_| None).collect(),
            initial: ids.len(),
            ids,
            cfg: Box::new(move |id| tweak(test_config(id, &peers))),
        };
        for id in c.ids.clone() {
            c.restart(id);
        }
        c
    }

    /// Starts a new member `id` (the next id) with an empty data dir and no
    /// initial peers, to join after a `member_add`.
    pub fn start_joiner(&mut self, id: u64) {
        assert_eq!(id as usize, self.ids.len() + 1, "joiners take the next id");
        self.ids.push(id);
        self.dirs.push(tempfile::tempdir().expect("tempdir"));
        self.nodes.push(None);
        self.mailboxes.push(None);
        self.restart(id);
    }

    /// (Re)starts member `id` on its data dir.
    pub fn restart(&mut self, id: u64) {
        let i = (id - 1) as usize;
        assert!(self.nodes[i].is_none(), "member {id} is running");
        let engine = RocksEngine::open(self.dirs[i].path()).expect("open engine");
        let mut cfg = (self.cfg)(id);
        if id as usize > self.initial {
            cfg.peers.clear(); // a joiner learns the configuration from the leader
        }
        let b = Node::builder(cfg).engine(engine);
        self.mailboxes[i] = Some(b.mailbox());
        let t = self.net.join(id, b.mailbox());
        self.nodes[i] = Some(b.transport(t).start().expect("start node"));
    }

    /// Stops member `id` (its data stays).
    pub fn stop(&mut self, id: u64) {
        let i = (id - 1) as usize;
        self.net.leave(id);
        if let Some(n) = self.nodes[i].take() {
            n.shutdown();
        }
    }

    /// Member `id`'s inbox, as a peer (or an attacker) reaches it.
    pub fn mailbox(&self, id: u64) -> &Mailbox {
        self.mailboxes[(id - 1) as usize].as_ref().expect("member was started")
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes[(id - 1) as usize].as_ref().expect("member is running")
    }

    pub fn running(&self) -> Vec<u64> {
        self.ids.iter().copied().filter(|id| self.nodes[(*id - 1) as usize].is_some()).collect()
    }

    /// Waits until a running member (not in `except`) is leader and all
    /// running members outside `except` agree on it.
    pub fn leader_among(&self, members: &[u64]) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let leaders: Vec<u64> =
                members.iter().map(|id| self.node(*id).status().map(|s| s.state.leader).unwrap_or(0)).collect();
            if leaders[0] != 0 && members.contains(&leaders[0]) && leaders.iter().all(|l| *l == leaders[0]) {
                let s = self.node(leaders[0]).status().expect("status");
                if s.state.role == raft_kv::Role::Leader {
                    return leaders[0];
                }
            }
            assert!(Instant::now() < deadline, "no leader among {members:?}: {leaders:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn leader(&self) -> u64 {
        self.leader_among(&self.running())
    }

    /// Waits until every running member has applied the same index as the
    /// leader and reports the same revision; returns that revision.
    pub fn converge(&self) -> i64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let st: Vec<_> = self.running().iter().map(|id| self.node(*id).status().expect("status")).collect();
            let max_applied = st.iter().map(|s| s.state.applied_index).max().unwrap_or(0);
            if st.iter().all(|s| s.state.applied_index == max_applied && s.state.revision == st[0].state.revision) {
                return st[0].state.revision;
            }
            assert!(Instant::now() < deadline, "members did not converge: {st:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().filter_map(Option::take) {
            n.shutdown();
        }
    }
}

/// Retries `f` while it fails with a retryable error, until PATIENCE.
pub fn retry<T>(mut f: impl FnMut() -> raft_kv::Result<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if e.is_retryable() && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("request failed: {e}"),
        }
    }
}
