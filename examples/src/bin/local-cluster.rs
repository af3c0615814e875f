//! A local three-member raft-kv cluster in one process.
//!
//! Each member runs on its own RocksDB under `./data/member-N` (or the
//! directory given as the first argument); the members talk over the
//! in-memory transport. Type commands on stdin:
//!
//! ```text
//! put KEY VALUE      get KEY      range PREFIX      del KEY
//! status             kill N       start N           compact REV      quit
//! ```
//!
//! Any member serves any command; `kill N` stops member N to watch the others
//! elect a new leader, `start N` brings it back from its data directory.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use raft_kv::{Config, DeleteRangeRequest, Node, RangeRequest, RocksEngine};
use transport_mem::MemNetwork;

const MEMBERS: [u64; 3] = [1, 2, 3];

struct Cluster {
    dir: PathBuf,
    net: MemNetwork,
    nodes: Vec<Option<Node>>,
}

impl Cluster {
    fn start(&mut self, id: u64) -> Result<()> {
        let path = self.dir.join(format!("member-{id}"));
        let engine = RocksEngine::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let b = Node::builder(Config::new(id).peers(MEMBERS.to_vec())).engine(engine);
        let t = self.net.join(id, b.mailbox());
        self.nodes[(id - 1) as usize] = Some(b.transport(t).start()?);
        Ok(())
    }

    fn kill(&mut self, id: u64) {
        self.net.leave(id);
        if let Some(n) = self.nodes[(id - 1) as usize].take() {
            n.shutdown();
        }
    }

    /// Some running member, preferring the leader.
    fn any(&self) -> Result<&Node> {
        let running: Vec<&Node> = self.nodes.iter().flatten().collect();
        for n in &running {
            if let Ok(s) = n.status() {
                if s.state.leader == n.id() {
                    return Ok(n);
                }
            }
        }
        running.first().copied().context("no member is running")
    }

    fn wait_for_leader(&self) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(l) =
                self.nodes.iter().flatten().filter_map(|n| n.status().ok()).map(|s| s.state.leader).find(|l| *l != 0)
            {
                return Ok(l);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("no leader elected within 10 s")
    }
}

fn run_command(c: &mut Cluster, words: &[&str]) -> Result<bool> {
    match words {
        ["put", k, v] => {
            let r = c.any()?.put(k.to_string(), v.to_string())?;
            println!("OK (revision {})", r.revision());
        }
        ["get", k] => match c.any()?.get(k.to_string())? {
            Some(kv) => println!("{}", String::from_utf8_lossy(&kv.value)),
            None => println!("(not found)"),
        },
        ["range", p] | ["range", p, ..] => {
            let r = c.any()?.range(RangeRequest::prefix(p.to_string()))?;
            for kv in &r.kvs {
                println!("{} = {}", String::from_utf8_lossy(&kv.key), String::from_utf8_lossy(&kv.value));
            }
            println!("({} keys at revision {})", r.count, r.revision());
        }
        ["del", k] => println!("deleted {}", c.any()?.delete_range(DeleteRangeRequest::key(k.to_string()))?.deleted),
        ["compact", rev] => {
            c.any()?.compact(rev.parse()?)?;
            println!("OK");
        }
        ["status"] => {
            for n in c.nodes.iter().flatten() {
                let s = n.status()?;
                println!(
                    "member {}: {:?} leader={} term={} applied={} revision={}",
                    s.state.id, s.state.role, s.state.leader, s.state.term, s.state.applied_index, s.state.revision
                );
            }
        }
        ["kill", id] => {
            c.kill(id.parse()?);
            println!("member {id} stopped");
        }
        ["start", id] => {
            c.start(id.parse()?)?;
            println!("member {id} started");
        }
        ["quit"] | ["exit"] => return Ok(false),
        [] => {}
        _ => println!(
            "commands: put K V | get K | range PREFIX | del K | compact REV | status | kill N | start N | quit"
        ),
    }
    Ok(true)
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "data".into()));
    let mut c = Cluster { dir, net: MemNetwork::new(0), nodes: MEMBERS.iter().map(|_| None).collect() };
    for id in MEMBERS {
        c.start(id)?;
    }
    let leader = c.wait_for_leader()?;
    println!("raft-kv: 3 members running under {}, leader is member {leader}", c.dir.display());
    println!("commands: put K V | get K | range PREFIX | del K | compact REV | status | kill N | start N | quit");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match run_command(&mut c, &words) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => println!("error: {e:#}"),
        }
    }
    for id in MEMBERS {
        c.kill(id);
    }
    Ok(())
}
