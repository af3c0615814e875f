//! [`World`]: one simulated cluster, its network, clients and faults, driven
//! by a virtual clock from one seed.
//!
//! The loop is a discrete-event simulation: at each step the clock jumps to
//! the earliest pending event (a member's tick, a message delivery, a client
//! action, a fault, a restart, a convergence check); everything due then runs
//! in a fixed order, and afterwards every member with work runs its
//! production [`Driver`] over one [`Peer::ready`] step; outbound messages go
//! to the [`SimNetwork`] with random delays, log writes to a simulated disk
//! that finishes them at random later rounds. Only ordered containers are iterated, and all randomness
//! comes from the seed's [`SimRng`] streams.

use std::collections::BTreeMap;

use raft_kv::{
    CompactionRequest, Compare, CompareResult, Config, DeleteRangeRequest, Error, LeaseGrantRequest,
    LeaseKeepAliveRequest, MemEngine, MemberPromoteRequest, MemberRemoveRequest, Peer, PutRequest, RangeRequest,
    Response, Role, TxnRequest, WatchMessage, WatchRequest, Watcher,
};
use raft_kv::{Completion, DiskWrite, Driver, Io};
use transport_mem::sim::{LinkFaults, SimNetwork};

use crate::checker::{check_history, Violation, ViolationKind};
use crate::config::{FaultKind, SimConfig, WorkloadMix, TICK};
use crate::history::{
    key_bytes, lease_key_bytes, parse_key, parse_value, Key, KvObs, Observed, Op, Outcome, Record, Value, NEVER,
};
use crate::leases::{check_leases, LeaseFacts, Removal};
use crate::rng::{SimRng, Stream};
use crate::trace::Trace;
use crate::watches::{check_watch, check_watch_open, Truth, WatchLog};

/// Snapshot chunk size: small, so every snapshot travels in several chunks.
const SNAPSHOT_CHUNK_BYTES: usize = 512;

/// Snapshot chunks a member sends per simulation step.
const SNAPSHOT_CHUNKS_PER_STEP: usize = 2;

/// The [`OpId::record`] of membership-change proposals (not client records;
/// their `attempt` is the change's attempt sequence number).
pub const ADMIN_RECORD: u32 = u32::MAX;

/// Attempts of one membership change before it is abandoned.
const ADMIN_MAX_ATTEMPTS: u32 = 60;

/// Voters a membership change never goes below.
const MIN_VOTERS: usize = 3;

/// Members (voters and learners) beyond the initial ones a run may add.
const EXTRA_MEMBERS: usize = 2;

/// The token the simulator hands to a [`Peer`] with each request: the
/// history record and the attempt it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpId {
    /// Index of the operation in the history.
    pub record: u32,
    /// Which attempt of that operation.
    pub attempt: u32,
}

/// Counters of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Client operations that completed with a result (watch opens
    /// included).
    pub ops_ok: u64,
    /// Writes whose outcome stayed unknown (timeout or crash).
    pub ops_unknown: u64,
    /// Operations definitely not applied (refused every attempt, or reads
    /// that failed).
    pub ops_failed: u64,
    /// Retries after a definite refusal (not leader, proposal dropped,
    /// member down).
    pub retries: u64,
    /// Member crashes.
    pub crashes: u64,
    /// Partitions (of every kind) started.
    pub partitions: u64,
    /// Leader transfers requested.
    pub transfers: u64,
    /// Learners added (fresh members with new ids; after a removal, a
    /// re-add).
    pub learners_added: u64,
    /// Learners promoted to voters.
    pub promotions: u64,
    /// Members removed.
    pub removals: u64,
    /// Removals of the member that was leader when the removal started.
    pub leader_removals: u64,
    /// Terms that had a leader.
    pub leader_terms: u64,
    /// Snapshot messages delivered (snapshot installs).
    pub snapshots: u64,
    /// Raft messages delivered.
    pub messages: u64,
    /// Unsynced batches lost to crashes.
    pub lost_batches: u64,
    /// Client watches opened (re-opens not counted).
    pub watches: u64,
    /// Watch re-opens after the member died.
    pub watch_reopens: u64,
    /// Watch opens refused as compacted, and watchers cancelled because
    /// history they had not caught up on was compacted.
    pub watch_compacted: u64,
    /// Event messages delivered to client watches.
    pub watch_messages: u64,
    /// Leases granted.
    pub leases: u64,
    /// Leases whose keys went by expiry (no client revoke).
    pub lease_expiries: u64,
    /// Leases whose keys went by a client revoke.
    pub lease_revokes: u64,
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Cluster size.
    pub members: usize,
    /// Hash of the whole trace: equal for equal seeds and configurations.
    pub trace_hash: u64,
    /// Virtual time at the end.
    pub sim_time: u64,
    /// Counters.
    pub stats: RunStats,
    /// Everything that went wrong (empty: the run passed).
    pub violations: Vec<Violation>,
    /// The recorded history.
    pub history: Vec<Record>,
}

impl RunReport {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

struct Member {
    id: u64,
    cfg: Config,
    engine: MemEngine,
    peer: Option<Peer<MemEngine, OpId>>,
    incarnation: u32,
    tick_period: u64,
    next_tick: u64,
    restart_at: u64,
    was_leader: bool,
    /// Removed from the cluster (confirmed): left out of every check.
    removed: bool,
    /// When a removed member is stopped for good.
    retire_at: u64,
    /// Stopped for good (after its removal).
    retired: bool,
    /// The production driver: Ready order, inline-or-writer, messages
    /// waiting for their write.
    driver: Driver<MemEngine>,
    /// Log writes submitted to the (simulated) log writer and not yet
    /// written; lost if the member crashes.
    log_queue: Vec<DiskWrite>,
    /// Physical compactions handed out and not yet run (the production
    /// background thread); lost if the member crashes.
    compactions: Vec<raft_kv::Compaction<MemEngine>>,
}

/// A membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Add a fresh learner with this (new) id.
    AddLearner(u64),
    /// Promote this learner.
    Promote(u64),
    /// Remove this member.
    Remove(u64),
}

/// Who holds a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchOwner {
    /// A client; re-opened on any member when its member dies.
    Client(usize),
    /// The simulator's all-keys observer of one member (the truth the
    /// watch checks use), re-opened when that member restarts.
    Observer,
}

/// One watch and its log.
struct WatchSlot {
    owner: WatchOwner,
    log: WatchLog,
    member: u64,
    incarnation: u32,
    handle: Option<Watcher>,
    reopen_at: u64,
}

/// The one membership change in flight, retried until done.
#[derive(Debug, Default)]
struct Admin {
    change: Option<Change>,
    attempts: u32,
    /// Sequence number of the current attempt (its token's `attempt`).
    seq: u32,
    /// The member holding the current attempt.
    in_flight: Option<u64>,
    /// Time of the next attempt.
    next_at: u64,
    /// Member to propose on next (the leader, as last told).
    hint: Option<u64>,
    /// The change removes the member that was leader when it started.
    of_leader: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Idle,
    InFlight { record: usize, member: u64 },
    Backoff { record: usize },
}

struct Client {
    state: ClientState,
    next_at: u64,
    remaining: usize,
    leader_hint: Option<u64>,
    last_revision: i64,
    /// What this client last saw of each key (for compare-and-swap).
    seen: BTreeMap<Key, Option<Value>>,
    /// The lease this client holds, if any.
    lease: Option<i64>,
}

/// One simulated cluster. See the module docs.
pub struct World {
    cfg: SimConfig,
    seed: u64,
    now: u64,
    net: SimNetwork,
    rng_net: SimRng,
    rng_fault: SimRng,
    rng_work: SimRng,
    rng_clock: SimRng,
    rng_disk: SimRng,
    members: Vec<Member>,
    clients: Vec<Client>,
    history: Vec<Record>,
    next_value: Value,
    next_fault: u64,
    heal_at: u64,
    healing: bool,
    heal_deadline: u64,
    next_check: u64,
    stopped: bool,
    trace: Trace,
    leaders: BTreeMap<u64, u64>,
    violations: Vec<Violation>,
    stats: RunStats,
    admin: Admin,
    next_member_id: u64,
    initial_members: usize,
    watches: Vec<WatchSlot>,
    /// The current members (indexes) once the run converged.
    converged: Vec<usize>,
    /// Every member a removal was proposed for (an abandoned removal may
    /// still apply later).
    removal_targets: Vec<u64>,
}

/// The configuration of member `id` (`peers`: the voters of a new cluster;
/// empty for a member that joins later).
fn member_config(cfg: &SimConfig, id: u64, peers: Vec<u64>) -> Config {
    let mut c = Config::new(id).peers(peers).snapshot_entries(cfg.snapshot_entries, cfg.log_keep_entries);
    c.election_ticks = 10;
    c.max_election_ticks = 11;
    c.heartbeat_ticks = 1;
    c.request_timeout_ticks = cfg.request_timeout_ticks;
    c.unsafe_local_reads = cfg.unsafe_local_reads;
    c.snapshot_chunk_bytes = SNAPSHOT_CHUNK_BYTES;
    c
}

impl Member {
    fn new(id: u64, cfg: Config, first_tick: u64) -> Self {
        let engine = MemEngine::new();
        Member {
            id,
            cfg,
            engine: engine.clone(),
            peer: None,
            incarnation: 0,
            tick_period: TICK,
            next_tick: first_tick,
            restart_at: 0,
            was_leader: false,
            removed: false,
            retire_at: NEVER,
            retired: false,
            driver: Driver::new(engine.clone()),
            log_queue: Vec::new(),
            compactions: Vec::new(),
        }
    }
}

impl World {
    /// A fresh cluster for `seed`.
    pub fn new(seed: u64, cfg: SimConfig) -> Self {
        let n = cfg.members.max(1) as u64;
        let voters: Vec<u64> = (1..=n).collect();
        let mut rng_clock = SimRng::new(seed, Stream::Clocks);
        let members = voters
            .iter()
            .map(|&id| Member::new(id, member_config(&cfg, id, voters.clone()), 1 + rng_clock.below(TICK)))
            .collect();
        let clients = (0..cfg.clients)
            .map(|c| Client {
                state: ClientState::Idle,
                next_at: 10 * TICK + c as u64,
                remaining: cfg.ops_per_client,
                leader_hint: None,
                last_revision: 0,
                seen: BTreeMap::new(),
                lease: None,
            })
            .collect();
        let mut rng_fault = SimRng::new(seed, Stream::Faults);
        let next_fault = if cfg.faults.enabled {
            20 * TICK + rng_fault.between(cfg.faults.interval.0, cfg.faults.interval.1)
        } else {
            NEVER
        };
        let mut net = SimNetwork::new(cfg.faults.initial_weather);
        if !cfg.faults.duplicate_proposals {
            net.never_duplicate(raft::eraftpb::MessageType::MsgPropose);
        }
        World {
            net,
            trace: Trace::new(cfg.trace),
            cfg,
            seed,
            now: 0,
            rng_net: SimRng::new(seed, Stream::Network),
            rng_fault,
            rng_work: SimRng::new(seed, Stream::Workload),
            rng_clock,
            rng_disk: SimRng::new(seed, Stream::Disk),
            members,
            clients,
            history: Vec::new(),
            next_value: 1,
            next_fault,
            heal_at: NEVER,
            healing: false,
            heal_deadline: NEVER,
            next_check: NEVER,
            stopped: false,
            leaders: BTreeMap::new(),
            violations: Vec::new(),
            stats: RunStats::default(),
            admin: Admin { next_at: NEVER, ..Admin::default() },
            next_member_id: n + 1,
            initial_members: n as usize,
            watches: Vec::new(),
            converged: Vec::new(),
            removal_targets: Vec::new(),
        }
    }

    /// Runs the whole scenario: workload under faults, heal, convergence,
    /// final checks.
    pub fn run(mut self) -> RunReport {
        let ids: Vec<usize> = (0..self.members.len()).collect();
        for i in ids {
            self.start_member(i);
        }
        while !self.stopped {
            let next = self.next_event();
            if next == NEVER {
                self.violate(ViolationKind::Convergence, "simulation ran out of events".into());
                break;
            }
            self.now = next;
            self.step();
            if !self.healing && (self.workload_done() || self.now >= self.cfg.workload_time) {
                self.start_heal();
            }
            if self.healing && self.now >= self.next_check && !self.stopped {
                if self.check_converged() {
                    break;
                }
                if self.now >= self.heal_deadline {
                    let detail = self.status_summary();
                    self.violate(ViolationKind::Convergence, format!("no convergence after heal:\n{detail}"));
                    break;
                }
                self.next_check = self.now + 5 * TICK;
            }
        }
        self.finish()
    }

    fn violate(&mut self, kind: ViolationKind, detail: String) {
        self.trace.event(self.now, format_args!("VIOLATION {kind:?}: {detail}"));
        self.violations.push(Violation { kind, detail });
    }

    fn workload_done(&self) -> bool {
        self.clients.iter().all(|c| c.remaining == 0 && c.state == ClientState::Idle)
    }

    fn next_event(&self) -> u64 {
        let mut t = self.net.next_delivery().unwrap_or(NEVER);
        for m in &self.members {
            t = t.min(match &m.peer {
                Some(p) if p.is_streaming_snapshots() => self.now + 1,
                Some(_) => m.next_tick,
                None => m.restart_at,
            });
            t = t.min(m.retire_at);
        }
        t = t.min(self.admin.next_at);
        for w in &self.watches {
            t = t.min(w.reopen_at);
        }
        for c in &self.clients {
            t = t.min(c.next_at);
        }
        if !self.healing {
            t = t.min(self.next_fault);
        }
        t.min(self.heal_at).min(self.next_check)
    }

    fn step(&mut self) {
        let now = self.now;
        if self.heal_at <= now {
            self.heal_at = NEVER;
            self.net.heal();
            self.trace.event(now, format_args!("heal"));
        }
        if !self.healing && self.next_fault <= now {
            self.inject_fault();
            let (lo, hi) = self.cfg.faults.interval;
            self.next_fault = now + self.rng_fault.between(lo, hi).max(1);
        }
        for i in 0..self.members.len() {
            if self.members[i].retire_at <= now {
                self.retire(i);
            }
            if self.members[i].peer.is_none() && !self.members[i].retired && self.members[i].restart_at <= now {
                self.start_member(i);
            }
        }
        if self.admin.next_at <= now {
            self.admin.next_at = NEVER;
            self.admin_attempt();
        }
        while let Some(env) = self.net.pop_due(now) {
            self.trace.delivery(now, &env);
            self.stats.messages += 1;
            if env.msg.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                self.stats.snapshots += 1;
            }
            let Some(i) = self.index_of(env.to) else { continue };
            let m = &mut self.members[i];
            let Some(peer) = m.peer.as_mut() else { continue };
            match peer.step(env.msg) {
                Ok(()) => {}
                // A forwarded proposal that reaches a member without a
                // leader is dropped; its proposer times out.
                Err(Error::ProposalDropped) => {}
                Err(e) => self.violate(ViolationKind::CoreError, format!("m{} step: {e}", env.to)),
            }
        }
        for i in 0..self.members.len() {
            let m = &mut self.members[i];
            if m.next_tick <= now {
                if let Some(peer) = m.peer.as_mut() {
                    peer.tick();
                    let p = m.tick_period;
                    m.next_tick = now + p - p / 8 + self.rng_clock.below(p / 4 + 1);
                }
            }
        }
        for c in 0..self.clients.len() {
            if self.clients[c].next_at <= now {
                self.clients[c].next_at = NEVER;
                self.client_act(c);
            }
        }
        for w in 0..self.watches.len() {
            if self.watches[w].reopen_at <= now {
                self.reopen_watch(w);
            }
        }
        self.pump();
        self.drain_watches();
    }

    /// Runs every member's driver until none has work.
    fn pump(&mut self) {
        for round in 0..16 {
            let mut busy = false;
            for i in 0..self.members.len() {
                let m = &mut self.members[i];
                let id = m.id;
                let Some(peer) = m.peer.as_mut() else { continue };
                let mut io = SimIo::new(&mut m.log_queue, &mut m.compactions);
                // The log writer finishes its queue now or later (always by
                // the last round), like a disk of varying speed.
                let flush = !io.queue.is_empty() && (round == 15 || self.rng_disk.chance(0.6));
                if flush {
                    let merged = DiskWrite::merge(io.queue.drain(..));
                    let res = merged.map_or(Ok(()), |w| {
                        w.write_to(&m.engine).and_then(|number| m.driver.persisted(peer, number, &mut io))
                    });
                    if let Err(e) = res {
                        self.violate(ViolationKind::CoreError, format!("m{id} log write: {e}"));
                        self.stopped = true;
                        return;
                    }
                    busy = true;
                }
                // Background compactions run at some later step.
                if !io.compactions.is_empty() && self.rng_disk.chance(0.3) {
                    let failed = io.compactions.drain(..).map(|job| job.run()).find_map(|r| r.err());
                    if let Some(e) = failed {
                        self.violate(ViolationKind::CoreError, format!("m{id} compaction: {e}"));
                        self.stopped = true;
                        return;
                    }
                }
                let ready = peer.has_ready();
                let streaming = round == 0 && peer.is_streaming_snapshots();
                if !ready && !streaming && !io.has_output() {
                    continue;
                }
                // Half the time the member is "idle" and the driver writes
                // inline; otherwise the write queues for the writer.
                let idle = ready && self.rng_disk.chance(0.5);
                let res = if ready { m.driver.step(peer, idle, &mut io).map(|_| ()) } else { Ok(()) };
                busy |= ready || !io.queue.is_empty();
                let is_leader = peer.is_leader();
                // A removed member may lag forever: its terms are not checked.
                let new_term = (is_leader && !m.was_leader && !m.removed).then(|| peer.term());
                m.was_leader = is_leader;
                // Snapshots stream in chunks, a few per step (the simulated
                // transport always has room; loss and delay still apply).
                let chunks = if streaming {
                    peer.snapshot_chunks(&mut |_| true, SNAPSHOT_CHUNKS_PER_STEP)
                } else {
                    Ok(Vec::new())
                };
                let (out, done) = (std::mem::take(&mut io.out), std::mem::take(&mut io.done));
                self.net.send(self.now, id, out, &mut self.rng_net);
                match chunks {
                    Ok(chunks) => self.net.send(self.now, id, chunks, &mut self.rng_net),
                    Err(e) => {
                        self.violate(ViolationKind::CoreError, format!("m{id} snapshot_chunks: {e}"));
                        self.stopped = true;
                        return;
                    }
                }
                if let Some(term) = new_term {
                    self.stats.leader_terms += 1;
                    self.trace.event(self.now, format_args!("m{id} leader of term {term}"));
                    match self.leaders.get(&term) {
                        Some(&other) if other != id => self.violate(
                            ViolationKind::TwoLeaders,
                            format!("members {other} and {id} were both leader of term {term}"),
                        ),
                        _ => {
                            self.leaders.insert(term, id);
                        }
                    }
                }
                for (token, result) in done {
                    self.on_completion(token, result);
                }
                if let Err(e) = res {
                    self.violate(ViolationKind::CoreError, format!("m{id} ready: {e}"));
                    self.stopped = true;
                    return;
                }
            }
            if !busy {
                break;
            }
        }
    }

    fn start_member(&mut self, i: usize) {
        let m = &mut self.members[i];
        // Writes and compactions queued by an earlier incarnation died with it.
        m.log_queue.clear();
        m.driver.reset();
        m.compactions.clear();
        match Peer::open(m.cfg.clone(), m.engine.clone()) {
            Ok(peer) => {
                m.peer = Some(peer);
                m.incarnation += 1;
                m.restart_at = NEVER;
                m.was_leader = false;
                m.next_tick = self.now + 1 + self.rng_clock.below(m.tick_period);
                let (id, inc) = (m.id, m.incarnation);
                if inc > 1 {
                    self.trace.event(self.now, format_args!("m{id} restarts (incarnation {inc})"));
                }
                self.open_observer(i);
            }
            Err(e) => {
                let id = m.id;
                self.violate(ViolationKind::CoreError, format!("m{id} failed to open after restart: {e}"));
                self.stopped = true;
            }
        }
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    /// Stops a removed member for good.
    fn retire(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.retire_at = NEVER;
        m.retired = true;
        m.restart_at = NEVER;
        let id = m.id;
        self.trace.event(self.now, format_args!("m{id} retires (removed)"));
        if let Some(mut peer) = self.members[i].peer.take() {
            let lost = peer.fail_all();
            drop(peer);
            self.net.drop_to(id);
            self.lose_requests(id, lost);
        }
    }

    /// Every request member `id` held (and every client waiting on it) lost
    /// its connection: outcome unknown.
    fn lose_requests(&mut self, id: u64, lost: Vec<(OpId, raft_kv::Result<Response>)>) {
        for (token, _) in lost {
            self.on_completion(token, Err(Error::Stopped));
        }
        for c in 0..self.clients.len() {
            if let ClientState::InFlight { record, member } = self.clients[c].state {
                if member == id {
                    let attempt = self.history[record].attempts;
                    self.on_completion(OpId { record: record as u32, attempt }, Err(Error::Stopped));
                }
            }
        }
        if self.admin.in_flight == Some(id) {
            self.on_completion(OpId { record: ADMIN_RECORD, attempt: self.admin.seq }, Err(Error::Stopped));
        }
    }

    fn crash(&mut self, i: usize) {
        let Some(mut peer) = self.members[i].peer.take() else { return };
        let id = self.members[i].id;
        let lost = peer.fail_all();
        drop(peer);
        let unsynced = self.members[i].engine.unsynced_batches() as u64;
        let keep = if self.rng_fault.chance(0.5) { 0 } else { self.rng_fault.below(unsynced + 1) };
        self.members[i].engine.crash_keeping(keep as usize);
        self.stats.crashes += 1;
        self.stats.lost_batches += unsynced - keep;
        self.net.drop_to(id);
        let (lo, hi) = self.cfg.faults.down_time;
        self.members[i].restart_at = if self.healing { self.now } else { self.now + self.rng_fault.between(lo, hi) };
        self.trace.event(
            self.now,
            format_args!(
                "m{id} crashes: {} of {unsynced} unsynced batches survive, {} requests lost",
                keep,
                lost.len()
            ),
        );
        self.lose_requests(id, lost);
    }

    fn leader_index(&self) -> Option<usize> {
        self.members.iter().position(|m| !m.removed && m.peer.as_ref().is_some_and(|p| p.is_leader()))
    }

    /// Ids of the members not stopped for good.
    fn live_ids(&self) -> Vec<u64> {
        self.members.iter().filter(|m| !m.retired).map(|m| m.id).collect()
    }

    /// Ids of the members clients talk to (not removed).
    fn client_ids(&self) -> Vec<u64> {
        self.members.iter().filter(|m| !m.removed && !m.retired).map(|m| m.id).collect()
    }

    fn random_groups(&mut self) -> (Vec<u64>, Vec<u64>) {
        let ids = self.live_ids();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for id in ids {
            if self.rng_fault.chance(0.5) {
                a.push(id);
            } else {
                b.push(id);
            }
        }
        if a.is_empty() {
            a.extend(b.pop());
        } else if b.is_empty() {
            b.extend(a.pop());
        }
        (a, b)
    }

    fn schedule_heal(&mut self) {
        let (lo, hi) = self.cfg.faults.partition_time;
        self.heal_at = self.now + self.rng_fault.between(lo, hi);
        self.stats.partitions += 1;
    }

    fn inject_fault(&mut self) {
        let weights = self.cfg.faults.weights.as_array();
        let Some(kind) = self.rng_fault.weighted(&weights).and_then(|i| FaultKind::ALL.get(i).copied()) else {
            return;
        };
        let now = self.now;
        let all = self.live_ids();
        match kind {
            FaultKind::Partition | FaultKind::OneWayPartition => {
                if all.len() < 2 {
                    return;
                }
                let (a, b) = self.random_groups();
                if kind == FaultKind::Partition {
                    self.net.partition(&a, &b);
                } else {
                    self.net.partition_one_way(&a, &b);
                }
                self.trace.event(now, format_args!("fault {kind:?} {a:?} | {b:?}"));
                self.schedule_heal();
            }
            FaultKind::IsolateLeader => {
                let target = match self.leader_index() {
                    Some(i) => self.members[i].id,
                    None => *self.rng_fault.pick(&all).unwrap_or(&1),
                };
                self.net.isolate(target, &all);
                self.trace.event(now, format_args!("fault isolate m{target}"));
                self.schedule_heal();
            }
            FaultKind::Crash => {
                if self.rng_fault.chance(self.cfg.faults.crash_all) {
                    self.trace.event(now, format_args!("fault crash all members"));
                    for i in 0..self.members.len() {
                        self.crash(i);
                    }
                } else {
                    let up: Vec<usize> = (0..self.members.len()).filter(|i| self.members[*i].peer.is_some()).collect();
                    let leader = self.leader_index();
                    let target = match leader {
                        Some(l) if self.rng_fault.chance(0.4) => Some(l),
                        _ => self.rng_fault.pick(&up).copied(),
                    };
                    if let Some(i) = target {
                        self.trace.event(now, format_args!("fault crash m{}", self.members[i].id));
                        self.crash(i);
                    }
                }
            }
            FaultKind::TransferLeader => {
                if let Some(l) = self.leader_index() {
                    let ids = self.client_ids();
                    let to = *self.rng_fault.pick(&ids).unwrap_or(&1);
                    self.trace.event(now, format_args!("fault transfer leader m{} -> m{to}", self.members[l].id));
                    self.stats.transfers += 1;
                    if let Some(peer) = self.members[l].peer.as_mut() {
                        peer.transfer_leader(to);
                    }
                }
            }
            FaultKind::TickSkew => {
                let i = self.rng_fault.below(self.members.len() as u64) as usize;
                let (lo, hi) = self.cfg.faults.tick_period;
                let period = self.rng_fault.between(lo, hi).max(1);
                self.members[i].tick_period = period;
                self.trace.event(now, format_args!("fault m{} ticks every {period}", self.members[i].id));
            }
            FaultKind::NetWeather => {
                let w = self.cfg.faults.worst_weather;
                let faults = LinkFaults {
                    drop: w.drop * self.rng_fault.unit(),
                    duplicate: w.duplicate * self.rng_fault.unit(),
                    min_delay: w.min_delay,
                    max_delay: self.rng_fault.between(w.min_delay, w.max_delay),
                    slow: w.slow * self.rng_fault.unit(),
                    slow_delay: w.slow_delay,
                };
                self.net.set_faults(faults);
                self.trace.event(
                    now,
                    format_args!(
                        "fault weather drop {:.3} dup {:.3} delay {}..{} slow {:.3}",
                        faults.drop, faults.duplicate, faults.min_delay, faults.max_delay, faults.slow
                    ),
                );
            }
            FaultKind::Heal => {
                self.net.heal();
                self.heal_at = NEVER;
                self.trace.event(now, format_args!("fault heal"));
            }
            FaultKind::Membership => self.start_change(),
        }
    }

    // ---- membership changes ----

    /// Picks and starts a membership change, unless one is in flight.
    fn start_change(&mut self) {
        if self.admin.change.is_some() {
            return;
        }
        let Some(l) = self.leader_index() else { return };
        let Some(peer) = self.members[l].peer.as_ref() else { return };
        let status = peer.status();
        let leader = status.id;
        // A removal abandoned with its outcome unknown may have applied
        // since: a fully applied leader's configuration says.
        if status.applied_index == status.commit_index {
            for id in self.removal_targets.clone() {
                let gone = !status.voters.contains(&id) && !status.learners.contains(&id);
                if let Some(i) = self.index_of(id).filter(|&i| gone && !self.members[i].removed) {
                    self.trace.event(self.now, format_args!("m{id} was removed after all"));
                    self.mark_removed(i);
                }
            }
        }
        // A learner the cluster knows but we never started (its add timed
        // out and was abandoned): start it now.
        for &id in &status.learners {
            if self.index_of(id).is_none() {
                self.add_member(id);
            }
        }
        let change = if let Some(&learner) = status.learners.first() {
            Change::Promote(learner)
        } else {
            let started = self.members.iter().filter(|m| !m.removed && !m.retired).count();
            let can_add = started < self.initial_members + EXTRA_MEMBERS;
            let can_remove = status.voters.len() > MIN_VOTERS;
            if can_remove && (!can_add || self.rng_fault.chance(0.7)) {
                let target = if self.rng_fault.chance(0.4) {
                    leader
                } else {
                    *self.rng_fault.pick(&status.voters).unwrap_or(&leader)
                };
                self.removal_targets.push(target);
                Change::Remove(target)
            } else if can_add {
                let id = self.next_member_id;
                self.next_member_id += 1;
                Change::AddLearner(id)
            } else {
                return;
            }
        };
        let removed: Vec<u64> = self.members.iter().filter(|m| m.removed).map(|m| m.id).collect();
        let note = match (change, removed.last()) {
            (Change::AddLearner(_), Some(old)) => format!(" (re-adds removed m{old} under a new id)"),
            _ => String::new(),
        };
        self.trace.event(self.now, format_args!("fault membership {change:?}{note}"));
        self.admin = Admin {
            change: Some(change),
            seq: self.admin.seq,
            hint: Some(leader),
            next_at: NEVER,
            of_leader: change == Change::Remove(leader),
            ..Admin::default()
        };
        self.admin_attempt();
    }

    /// True when `change` shows in `members` (an applied view: never ahead
    /// of the truth).
    fn change_applied(change: Change, members: &[raft_kv::Member]) -> bool {
        let find = |id: u64| members.iter().find(|m| m.id == id);
        match change {
            Change::AddLearner(id) => find(id).is_some(),
            Change::Promote(id) => find(id).is_some_and(|m| !m.is_learner),
            Change::Remove(id) => find(id).is_none(),
        }
    }

    fn admin_attempt(&mut self) {
        let Some(change) = self.admin.change else { return };
        self.admin.attempts += 1;
        self.admin.in_flight = None;
        if self.admin.attempts > ADMIN_MAX_ATTEMPTS {
            self.trace.event(self.now, format_args!("membership {change:?} abandoned"));
            self.admin_done(None);
            return;
        }
        if let Some(l) = self.leader_index() {
            let applied = self.members[l].peer.as_ref().is_some_and(|p| Self::change_applied(change, &p.members()));
            if applied {
                self.admin_done(Some(change));
                return;
            }
        }
        let target = match self.admin.hint.and_then(|h| self.index_of(h)) {
            Some(i) if self.members[i].peer.is_some() && !self.members[i].retired => Some(i),
            _ => self.leader_index(),
        };
        let Some(i) = target else {
            self.admin_backoff(None);
            return;
        };
        self.admin.seq += 1;
        let token = OpId { record: ADMIN_RECORD, attempt: self.admin.seq };
        let op = match change {
            Change::AddLearner(id) => raft_kv::Op::MemberAdd(raft_kv::Member {
                id,
                name: format!("m{id}"),
                is_learner: true,
                ..Default::default()
            }),
            Change::Promote(id) => raft_kv::Op::MemberPromote(MemberPromoteRequest { id }),
            Change::Remove(id) => raft_kv::Op::MemberRemove(MemberRemoveRequest { id }),
        };
        self.admin.in_flight = Some(self.members[i].id);
        if let Some(peer) = self.members[i].peer.as_mut() {
            peer.propose(op, token);
        }
    }

    fn admin_backoff(&mut self, hint: Option<u64>) {
        self.admin.in_flight = None;
        self.admin.hint = hint;
        self.admin.next_at = self.now + 1 + self.rng_fault.below(3 * TICK);
    }

    fn admin_completion(&mut self, token: OpId, result: raft_kv::Result<Response>) {
        let Some(change) = self.admin.change else { return };
        if token.attempt != self.admin.seq || self.admin.in_flight.is_none() {
            return;
        }
        let id = match change {
            Change::AddLearner(id) | Change::Promote(id) | Change::Remove(id) => id,
        };
        match result {
            Ok(Response::Members(_)) => self.admin_done(Some(change)),
            Ok(other) => {
                self.violate(ViolationKind::BadResponse, format!("membership {change:?} answered {other:?}"));
                self.admin_done(None);
            }
            Err(Error::NotLeader { leader }) => self.admin_backoff(Some(leader)),
            Err(Error::NoLeader) => self.admin_backoff(None),
            // The outcome of an earlier attempt shows up as these refusals;
            // the next attempt checks the leader's members first.
            Err(Error::MemberExists | Error::MemberNotFound | Error::MemberNotLearner | Error::Invalid(_)) => {
                self.trace.event(self.now, format_args!("membership {change:?} refused: m{id} already changed?"));
                self.admin_backoff(None);
            }
            Err(_) => {
                let hint = self.admin.hint;
                self.admin_backoff(hint);
            }
        }
    }

    fn admin_done(&mut self, change: Option<Change>) {
        self.admin.change = None;
        self.admin.in_flight = None;
        self.admin.next_at = NEVER;
        let Some(change) = change else { return };
        self.trace.event(self.now, format_args!("membership {change:?} done"));
        match change {
            Change::AddLearner(id) => {
                self.stats.learners_added += 1;
                self.add_member(id);
            }
            Change::Promote(_) => self.stats.promotions += 1,
            Change::Remove(id) => {
                self.stats.removals += 1;
                self.stats.leader_removals += u64::from(self.admin.of_leader);
                if let Some(i) = self.index_of(id) {
                    self.mark_removed(i);
                }
            }
        }
    }

    /// Leaves member `i` out of the checks from now on and stops it a
    /// little later.
    fn mark_removed(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.removed = true;
        m.retire_at = self.now + TICK * (10 + self.rng_fault.below(40));
    }

    /// Starts a fresh member `id` (empty engine, no initial peers: it
    /// catches up by snapshot).
    fn add_member(&mut self, id: u64) {
        if self.index_of(id).is_some() {
            return;
        }
        let cfg = member_config(&self.cfg, id, Vec::new());
        self.members.push(Member::new(id, cfg, NEVER));
        let i = self.members.len() - 1;
        self.trace.event(self.now, format_args!("m{id} starts as a learner"));
        self.start_member(i);
    }

    fn start_heal(&mut self) {
        self.healing = true;
        self.net.heal();
        self.heal_at = NEVER;
        self.next_fault = NEVER;
        self.net.set_faults(LinkFaults { min_delay: 1, max_delay: 3, ..LinkFaults::reliable() });
        for m in &mut self.members {
            m.tick_period = TICK;
            if m.peer.is_none() && !m.retired {
                m.restart_at = self.now;
            }
        }
        self.heal_deadline = self.now + self.cfg.heal_time;
        self.next_check = self.now + 20 * TICK;
        self.trace.event(self.now, format_args!("heal everything; workload stops"));
    }

    // ---- watches ----

    /// Opens (or re-opens) member `i`'s all-keys observer from the revision
    /// after the last it saw.
    fn open_observer(&mut self, i: usize) {
        let id = self.members[i].id;
        let w = match self.watches.iter().position(|w| w.owner == WatchOwner::Observer && w.member == id) {
            Some(w) => w,
            None => {
                self.watches.push(WatchSlot {
                    owner: WatchOwner::Observer,
                    log: WatchLog::new(Vec::new(), 1),
                    member: id,
                    incarnation: 0,
                    handle: None,
                    reopen_at: NEVER,
                });
                self.watches.len() - 1
            }
        };
        let mut from = self.watches[w].log.last_seen() + 1;
        // Twice at most: the second time from above the compact revision
        // (a gap in this observer; other sources may cover it).
        for _ in 0..2 {
            match self.open_watch(w, i, from) {
                Err(compact) => from = compact + 1,
                Ok(()) => return,
            }
        }
    }

    /// A client opens a watch on a random member: of the workload's keys
    /// (`k`), from now or from a past revision it saw.
    fn open_client_watch(&mut self, c: usize) {
        let ids = self.client_ids();
        let Some(&member) = self.rng_work.pick(&ids) else { return };
        let start = if self.rng_work.chance(0.5) {
            0
        } else {
            1 + self.rng_work.below(self.clients[c].last_revision.max(0) as u64 + 1) as i64
        };
        self.watches.push(WatchSlot {
            owner: WatchOwner::Client(c),
            log: WatchLog::new(b"k".to_vec(), start),
            member,
            incarnation: 0,
            handle: None,
            reopen_at: NEVER,
        });
        let w = self.watches.len() - 1;
        self.stats.watches += 1;
        self.trace.event(self.now, format_args!("c{c} watches k* from {start} on m{member} (w{w})"));
        match self.index_of(member) {
            Some(i) if self.members[i].peer.is_some() => {
                // A compacted start ends the watch (checked in open_watch).
                let _ = self.open_watch(w, i, start);
            }
            _ => self.watches[w].reopen_at = self.now + TICK,
        }
    }

    /// Re-opens a client watch whose member died: on the same member if it
    /// is up again, else on a random live one.
    fn reopen_watch(&mut self, w: usize) {
        self.watches[w].reopen_at = NEVER;
        let up: Vec<usize> = (0..self.members.len())
            .filter(|&i| !self.members[i].removed && !self.members[i].retired && self.members[i].peer.is_some())
            .collect();
        let same = up.iter().copied().find(|&i| self.members[i].id == self.watches[w].member);
        let Some(i) = same.or_else(|| self.rng_work.pick(&up).copied()) else {
            self.watches[w].reopen_at = self.now + TICK;
            return;
        };
        self.stats.watch_reopens += 1;
        let from = self.watches[w].log.last_seen() + 1;
        let _ = self.open_watch(w, i, from);
    }

    /// Opens watch `w` on member `i` from `start` (0: from now), checking
    /// that it fails with `Compacted` exactly when it must. `Err` carries
    /// the compact revision of a refused open.
    fn open_watch(&mut self, w: usize, i: usize, start: i64) -> Result<(), i64> {
        let m = &mut self.members[i];
        let (id, incarnation) = (m.id, m.incarnation);
        let Some(peer) = m.peer.as_mut() else { return Ok(()) };
        let (revision, compact) = (peer.mvcc().revision(), peer.mvcc().compact_revision());
        let slot = &mut self.watches[w];
        let req = if slot.log.prefix.is_empty() {
            WatchRequest::range(vec![0u8], vec![0u8])
        } else {
            WatchRequest::prefix(slot.log.prefix.clone())
        };
        let result = peer.watch(req.start_revision(start));
        let verdict = check_watch_open(start, revision, compact, &result.as_ref().map(|_| ()).map_err(Clone::clone));
        slot.member = id;
        slot.incarnation = incarnation;
        let out = match result {
            Ok(handle) => {
                let from = if start == 0 { revision + 1 } else { start };
                if slot.log.received.is_empty() && slot.log.spans.is_empty() {
                    slot.log.start = from;
                }
                slot.log.open(from);
                slot.handle = Some(handle);
                Ok(())
            }
            Err(e) => {
                self.stats.watch_compacted += 1;
                if slot.owner != WatchOwner::Observer {
                    slot.log.ended = Some(format!("{e}"));
                }
                self.trace.event(self.now, format_args!("w{w} from {start} on m{id}: {e}"));
                Err(compact)
            }
        };
        if let Some(detail) = verdict {
            self.violate(ViolationKind::WatchCompacted, format!("w{w} on m{id}: {detail}"));
        }
        out
    }

    /// Takes every message the watches hold; a watch whose member died is
    /// re-opened (clients) or waits for the restart (observers).
    fn drain_watches(&mut self) {
        for w in 0..self.watches.len() {
            let slot = &mut self.watches[w];
            let (member, incarnation) = (slot.member, slot.incarnation);
            let Some(handle) = slot.handle.as_mut() else { continue };
            let mut ended = None;
            while let Some(msg) = handle.try_recv() {
                match msg {
                    WatchMessage::Events { revision, events } => {
                        if let WatchOwner::Client(_) = slot.owner {
                            self.stats.watch_messages += 1;
                        }
                        slot.log.deliver_at(revision, events, self.now);
                    }
                    WatchMessage::Progress { .. } => {}
                    WatchMessage::Canceled { reason, compact_revision } => {
                        if compact_revision > 0 {
                            self.stats.watch_compacted += 1;
                        }
                        ended = Some(reason);
                        break;
                    }
                }
            }
            if let Some(reason) = ended {
                slot.handle = None;
                if let WatchOwner::Client(_) = slot.owner {
                    slot.reopen_at = self.now + 1 + self.rng_work.below(2 * TICK);
                }
                self.trace.event(self.now, format_args!("w{w} on m{member} ends: {reason}"));
                continue;
            }
            let alive = self
                .index_of(member)
                .and_then(|i| self.members[i].peer.as_ref().map(|p| (self.members[i].incarnation, p)))
                .filter(|(inc, _)| *inc == incarnation)
                .map(|(_, p)| p.mvcc().revision());
            if let Some(revision) = alive {
                self.watches[w].log.cover(revision);
            }
        }
    }

    /// The watch checks (see [`crate::watches`]): the truth from every
    /// observer and every current member's MVCC history, then each watch.
    fn check_watches(&mut self, current: &[usize]) {
        self.drain_watches();
        let mut truth = Truth::default();
        for slot in self.watches.iter().filter(|s| s.owner == WatchOwner::Observer) {
            for &(from, to) in &slot.log.spans {
                let events =
                    slot.log.received.iter().filter(|(r, _)| (from..=to).contains(r)).flat_map(|(_, e)| e.clone());
                truth.add_source(&format!("observer of m{}", slot.member), (from, to), events.collect());
            }
        }
        for &i in current {
            let Some(p) = &self.members[i].peer else { continue };
            let mvcc = p.mvcc();
            let from = mvcc.compact_revision() + 1;
            match mvcc.history(&[0], &[0], from) {
                Ok(events) => {
                    truth.add_source(&format!("history of m{}", self.members[i].id), (from, mvcc.revision()), events)
                }
                Err(e) => self.violate(ViolationKind::CoreError, format!("m{} history: {e}", self.members[i].id)),
            }
        }
        for detail in std::mem::take(&mut truth.violations) {
            self.violate(ViolationKind::EventHistory, detail);
        }
        let mut found = Vec::new();
        for (w, slot) in self.watches.iter().enumerate() {
            for detail in check_watch(&slot.log, &truth) {
                found.push(format!("w{w} ({:?} of {:?}, on m{}): {detail}", slot.owner, slot.log.prefix, slot.member));
            }
        }
        for detail in found.into_iter().take(5) {
            self.violate(ViolationKind::Watch, detail);
        }
    }

    // ---- leases ----

    /// The lease checks (see [`crate::leases`]): leased keys' deletions as
    /// every member's observer saw them, against the clients' grants,
    /// keep-alives and revokes.
    fn check_leases(&mut self) {
        let tick_ms = member_config(&self.cfg, 1, Vec::new()).tick_interval.as_millis().max(1) as u64;
        let ttl_ticks = |ttl: i64| (ttl.max(0) as u64 * 1000).div_ceil(tick_ms);
        let mut facts = LeaseFacts::default();
        for rec in &self.history {
            match (&rec.op, &rec.outcome) {
                (Op::LeaseGrant { .. }, Outcome::Ok(Observed::LeaseGranted { id, ttl })) => {
                    facts.grant(*id, rec.invoke, ttl_ticks(*ttl))
                }
                (Op::LeaseKeepAlive { lease }, Outcome::Ok(_)) => facts.keep_alive(*lease, rec.invoke),
                (Op::LeaseRevoke { lease }, Outcome::Ok(_) | Outcome::Unknown) => facts.revoke(*lease, rec.invoke),
                _ => {}
            }
        }
        let mut removals = Vec::new();
        for slot in self.watches.iter().filter(|s| s.owner == WatchOwner::Observer) {
            let mut attached: BTreeMap<&[u8], (i64, i64)> = BTreeMap::new();
            for ((revision, events), at) in slot.log.received.iter().zip(&slot.log.received_at) {
                for ev in events {
                    let Some(kv) = ev.kv.as_ref().filter(|kv| kv.key.starts_with(b"l")) else { continue };
                    if !ev.is_delete() {
                        attached.insert(&kv.key, (kv.lease, *revision));
                    } else if let Some((lease, put_revision)) = attached.remove(&kv.key[..]) {
                        removals.push(Removal {
                            member: slot.member,
                            lease,
                            key: kv.key.to_vec(),
                            put_revision,
                            revision: *revision,
                            at: *at,
                        });
                    }
                }
            }
        }
        let mut gone: Vec<i64> = removals.iter().map(|r| r.lease).collect();
        gone.dedup();
        gone.sort_unstable();
        gone.dedup();
        for lease in gone {
            if facts.revokes.contains_key(&lease) {
                self.stats.lease_revokes += 1;
            } else {
                self.stats.lease_expiries += 1;
            }
        }
        let p = TICK.min(self.cfg.faults.tick_period.0);
        for detail in check_leases(&facts, &removals, p - p / 8, self.cfg.strict_keep_alive) {
            self.violate(ViolationKind::Lease, detail);
        }
    }

    // ---- clients ----

    fn new_op(&mut self, c: usize, kind: usize) -> Op {
        let keys = self.cfg.keys.max(1);
        let key = self.rng_work.below(u64::from(keys)) as Key;
        let mut fresh = || {
            let v = self.next_value;
            self.next_value += 1;
            v
        };
        match kind {
            0 => Op::Put { key, value: fresh() },
            2 => Op::Read { keys: vec![key], linearizable: false },
            3 => Op::Read { keys: (0..keys).collect(), linearizable: true },
            4 => Op::Delete { key },
            5 => {
                let value = fresh();
                let expect = match self.clients[c].seen.get(&key) {
                    Some(seen) if self.rng_work.chance(0.8) => *seen,
                    _ => None,
                };
                Op::Cas { key, expect, value }
            }
            6 if self.clients[c].last_revision > 1 => {
                Op::Compact { revision: 1 + self.rng_work.below(self.clients[c].last_revision as u64) as i64 }
            }
            8 => match self.clients[c].lease {
                None => Op::LeaseGrant { ttl: 2 + self.rng_work.below(3) as i64 },
                Some(lease) => match self.rng_work.below(20) {
                    0..=8 => Op::LeasePut { lease, value: fresh() },
                    9..=11 => Op::LeaseKeepAlive { lease },
                    12..=16 => Op::LeaseRevoke { lease },
                    // Forget the lease (it expires) and take a new one.
                    _ => {
                        self.clients[c].lease = None;
                        Op::LeaseGrant { ttl: 2 + self.rng_work.below(3) as i64 }
                    }
                },
            },
            _ => Op::Read { keys: vec![key], linearizable: true },
        }
    }

    fn client_act(&mut self, c: usize) {
        match self.clients[c].state {
            ClientState::Idle => {
                if self.healing || self.clients[c].remaining == 0 {
                    return;
                }
                let kind = self.rng_work.weighted(&self.cfg.mix.as_array()).unwrap_or(1);
                let watching = self.watches.iter().filter(|w| w.owner == WatchOwner::Client(c)).count();
                if kind == 7 && watching < WorkloadMix::WATCHES_PER_CLIENT {
                    self.open_client_watch(c);
                    self.stats.ops_ok += 1;
                    let client = &mut self.clients[c];
                    client.remaining -= 1;
                    let (lo, hi) = self.cfg.think;
                    client.next_at = self.now + self.rng_work.between(lo, hi).max(1);
                    return;
                }
                let op = self.new_op(c, kind);
                let record = self.history.len();
                self.trace.event(self.now, format_args!("c{c} invokes #{record} {op:?}"));
                self.history.push(Record {
                    client: c,
                    op,
                    invoke: self.now,
                    complete: NEVER,
                    outcome: Outcome::Pending,
                    member: 0,
                    incarnation: 0,
                    attempts: 0,
                });
                self.attempt(c, record);
            }
            ClientState::Backoff { record } => self.attempt(c, record),
            ClientState::InFlight { .. } => {}
        }
    }

    fn attempt(&mut self, c: usize, record: usize) {
        self.history[record].attempts += 1;
        let attempt = self.history[record].attempts;
        if attempt > self.cfg.max_attempts {
            self.finish_op(c, record, Outcome::NotApplied);
            return;
        }
        if attempt > 1 {
            self.stats.retries += 1;
        }
        let ids = self.client_ids();
        let member = match self.clients[c].leader_hint {
            Some(l) if ids.contains(&l) && self.rng_work.chance(0.75) => l,
            _ => *self.rng_work.pick(&ids).unwrap_or(&1),
        };
        let Some(i) = self.index_of(member) else { return };
        let m = &mut self.members[i];
        let Some(peer) = m.peer.as_mut() else {
            // Connection refused: nothing was sent, so retrying is safe.
            self.clients[c].leader_hint = None;
            self.clients[c].state = ClientState::Backoff { record };
            self.clients[c].next_at = self.now + TICK + self.rng_work.below(2 * TICK);
            return;
        };
        let rec = &mut self.history[record];
        rec.member = member;
        rec.incarnation = m.incarnation;
        let token = OpId { record: record as u32, attempt };
        match &rec.op {
            Op::Read { keys, linearizable } => {
                let mut req =
                    if keys.len() == 1 { RangeRequest::key(key_bytes(keys[0])) } else { RangeRequest::prefix("k") };
                if !linearizable {
                    req = req.serializable();
                }
                peer.read(req, token);
            }
            Op::Put { key, value } => {
                peer.propose(raft_kv::Op::Put(PutRequest::new(key_bytes(*key), value.to_string())), token)
            }
            Op::Delete { key } => {
                peer.propose(raft_kv::Op::DeleteRange(DeleteRangeRequest::key(key_bytes(*key))), token)
            }
            Op::Cas { key, expect, value } => {
                let cmp = match expect {
                    Some(e) => Compare::value(key_bytes(*key), CompareResult::Equal, e.to_string()),
                    None => Compare::version(key_bytes(*key), CompareResult::Equal, 0),
                };
                let txn = TxnRequest::new()
                    .when(cmp)
                    .and_then(PutRequest::new(key_bytes(*key), value.to_string()))
                    .or_else(RangeRequest::key(key_bytes(*key)));
                peer.propose(raft_kv::Op::Txn(txn), token);
            }
            Op::Compact { revision } => {
                peer.propose(raft_kv::Op::Compact(CompactionRequest { revision: *revision, physical: false }), token)
            }
            Op::LeaseGrant { ttl } => {
                peer.propose(raft_kv::Op::LeaseGrant(LeaseGrantRequest { ttl: *ttl, id: 0 }), token)
            }
            Op::LeasePut { lease, value } => {
                let put = PutRequest { lease: *lease, ..PutRequest::new(lease_key_bytes(*value), value.to_string()) };
                peer.propose(raft_kv::Op::Put(put), token)
            }
            Op::LeaseKeepAlive { lease } => {
                peer.propose(raft_kv::Op::LeaseKeepAlive(LeaseKeepAliveRequest { id: *lease }), token)
            }
            Op::LeaseRevoke { lease } => {
                peer.propose(raft_kv::Op::LeaseRevoke(raft_kv::LeaseRevoke::new(*lease)), token)
            }
        }
        self.clients[c].state = ClientState::InFlight { record, member };
    }

    fn on_completion(&mut self, token: OpId, result: raft_kv::Result<Response>) {
        if token.record == ADMIN_RECORD {
            self.admin_completion(token, result);
            return;
        }
        let record = token.record as usize;
        let Some(rec) = self.history.get(record) else { return };
        let c = rec.client;
        let current = matches!(self.clients[c].state, ClientState::InFlight { record: r, .. } if r == record)
            && rec.attempts == token.attempt;
        if !current {
            self.trace.event(self.now, format_args!("stale completion #{record}/{}", token.attempt));
            return;
        }
        let is_read = matches!(rec.op, Op::Read { .. });
        match result {
            Ok(resp) => match self.observe(record, resp) {
                Ok(obs) => self.finish_op(c, record, Outcome::Ok(obs)),
                Err(detail) => {
                    self.violate(ViolationKind::BadResponse, format!("{detail}: {}", self.history[record]));
                    self.finish_op(c, record, if is_read { Outcome::NotApplied } else { Outcome::Unknown });
                }
            },
            Err(Error::NotLeader { leader }) => self.backoff(c, record, Some(leader)),
            Err(Error::NoLeader) => self.backoff(c, record, None),
            Err(Error::ProposalDropped) => self.backoff(c, record, None),
            Err(Error::Timeout | Error::Stopped) => {
                self.finish_op(c, record, if is_read { Outcome::NotApplied } else { Outcome::Unknown })
            }
            Err(Error::Compacted { .. }) if matches!(rec.op, Op::Compact { .. }) => {
                self.finish_op(c, record, Outcome::Ok(Observed::Compact))
            }
            // The lease expired (or was revoked): definitely not applied.
            Err(Error::LeaseNotFound) if rec.op.lease().is_some() => {
                self.clients[c].lease = None;
                self.finish_op(c, record, Outcome::NotApplied);
            }
            Err(e) => {
                self.violate(ViolationKind::CoreError, format!("unexpected error {e}: {}", self.history[record]));
                self.finish_op(c, record, if is_read { Outcome::NotApplied } else { Outcome::Unknown });
            }
        }
    }

    fn backoff(&mut self, c: usize, record: usize, leader: Option<u64>) {
        let client = &mut self.clients[c];
        client.leader_hint = leader;
        client.state = ClientState::Backoff { record };
        client.next_at = self.now + 1 + self.rng_work.below(2 * TICK);
    }

    fn observe(&self, record: usize, resp: Response) -> Result<Observed, String> {
        let op = &self.history[record].op;
        let kv_obs = |kv: &raft_kv::KeyValue| -> Result<(Key, KvObs), String> {
            let key = parse_key(&kv.key).ok_or_else(|| format!("unknown key {:?}", kv.key))?;
            let value = parse_value(&kv.value).ok_or_else(|| format!("unknown value {:?}", kv.value))?;
            Ok((
                key,
                KvObs {
                    value,
                    version: kv.version,
                    mod_revision: kv.mod_revision,
                    create_revision: kv.create_revision,
                },
            ))
        };
        match (op, resp) {
            (Op::Put { .. }, Response::Put(p)) => Ok(Observed::Put { revision: p.revision() }),
            (Op::Delete { .. }, Response::DeleteRange(d)) => {
                Ok(Observed::Delete { revision: d.revision(), deleted: d.deleted })
            }
            (Op::Cas { key, .. }, Response::Txn(t)) => {
                let mut current = None;
                if !t.succeeded {
                    let Some(raft_kv::response_op::Response::ResponseRange(r)) =
                        t.responses.first().and_then(|r| r.response.clone())
                    else {
                        return Err("failed txn without a range response".into());
                    };
                    if let Some(kv) = r.kvs.first() {
                        let (k, obs) = kv_obs(kv)?;
                        if k != *key {
                            return Err(format!("txn read returned k{k}"));
                        }
                        current = Some(obs);
                    }
                }
                Ok(Observed::Cas { revision: t.revision(), succeeded: t.succeeded, current })
            }
            (Op::Read { keys, .. }, Response::Range(r)) => {
                let mut kvs = BTreeMap::new();
                for kv in &r.kvs {
                    let (k, obs) = kv_obs(kv)?;
                    if !keys.contains(&k) {
                        return Err(format!("range returned k{k}, outside the request"));
                    }
                    kvs.insert(k, obs);
                }
                Ok(Observed::Read { revision: r.revision(), kvs })
            }
            (Op::Compact { .. }, Response::Compact(_)) => Ok(Observed::Compact),
            (Op::LeaseGrant { .. }, Response::LeaseGrant(g)) => Ok(Observed::LeaseGranted { id: g.id, ttl: g.ttl }),
            (Op::LeasePut { .. }, Response::Put(p)) => Ok(Observed::Put { revision: p.revision() }),
            (Op::LeaseKeepAlive { .. }, Response::LeaseKeepAlive(_)) => Ok(Observed::LeaseKept),
            (Op::LeaseRevoke { .. }, Response::LeaseRevoke(r)) => Ok(Observed::LeaseRevoked { revision: r.revision() }),
            (_, other) => Err(format!("response {other:?} does not match the request")),
        }
    }

    fn finish_op(&mut self, c: usize, record: usize, outcome: Outcome) {
        let now = self.now;
        let rec = &mut self.history[record];
        rec.complete = if outcome == Outcome::Unknown { NEVER } else { now };
        match &outcome {
            Outcome::Ok(_) => self.stats.ops_ok += 1,
            Outcome::Unknown => self.stats.ops_unknown += 1,
            _ => self.stats.ops_failed += 1,
        }
        let client = &mut self.clients[c];
        if let Outcome::Ok(obs) = &outcome {
            match (&rec.op, obs) {
                (Op::Put { key, value }, Observed::Put { revision }) => {
                    client.seen.insert(*key, Some(*value));
                    client.last_revision = client.last_revision.max(*revision);
                }
                (Op::Delete { key }, Observed::Delete { revision, .. }) => {
                    client.seen.insert(*key, None);
                    client.last_revision = client.last_revision.max(*revision);
                }
                (Op::Cas { key, value, .. }, Observed::Cas { revision, succeeded, current }) => {
                    client.seen.insert(*key, if *succeeded { Some(*value) } else { current.map(|o| o.value) });
                    client.last_revision = client.last_revision.max(*revision);
                }
                (Op::Read { keys, .. }, Observed::Read { revision, kvs }) => {
                    for k in keys {
                        client.seen.insert(*k, kvs.get(k).map(|o| o.value));
                    }
                    client.last_revision = client.last_revision.max(*revision);
                }
                (Op::LeaseGrant { .. }, Observed::LeaseGranted { id, .. }) => {
                    client.lease = Some(*id);
                    self.stats.leases += 1;
                }
                (Op::LeasePut { .. }, Observed::Put { revision })
                | (Op::LeaseRevoke { .. }, Observed::LeaseRevoked { revision }) => {
                    client.last_revision = client.last_revision.max(*revision);
                    if matches!(rec.op, Op::LeaseRevoke { .. }) {
                        client.lease = None;
                    }
                }
                _ => {}
            }
        }
        rec.outcome = outcome;
        client.state = ClientState::Idle;
        client.remaining = client.remaining.saturating_sub(1);
        let (lo, hi) = self.cfg.think;
        client.next_at = now + self.rng_work.between(lo, hi).max(1);
        let line = format!("{}", self.history[record]);
        self.trace.event(now, format_args!("c{c} completes #{record} {line}"));
    }

    // ---- heal, convergence, final checks ----

    fn status_summary(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            match &m.peer {
                Some(p) => {
                    let s = p.status();
                    out.push_str(&format!(
                        "  m{}{} {:?} term {} leader {} commit {} applied {} last {} first {} revision {} voters {:?} learners {:?}\n",
                        m.id,
                        if m.removed { " (removed)" } else { "" },
                        s.role,
                        s.term,
                        s.leader,
                        s.commit_index,
                        s.applied_index,
                        s.last_index,
                        s.first_index,
                        s.revision,
                        s.voters,
                        s.learners
                    ));
                }
                None if m.retired => out.push_str(&format!("  m{} retired\n", m.id)),
                None => out.push_str(&format!("  m{} down\n", m.id)),
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.state != ClientState::Idle {
                out.push_str(&format!("  c{i} {:?}\n", c.state));
            }
        }
        out
    }

    /// True when the run may end: every client idle, every member up and
    /// applied to the leader's last index. Records a violation (and ends
    /// the run) if such members disagree on revision or hash.
    fn check_converged(&mut self) -> bool {
        if self.clients.iter().any(|c| c.state != ClientState::Idle) || self.admin.change.is_some() {
            return false;
        }
        // The current members: the leader's configuration. Removed members
        // may lag forever and are left out.
        let Some(l) = self.leader_index() else { return false };
        let Some(conf) = self.members[l].peer.as_ref().map(|p| p.status()) else { return false };
        let current: Vec<usize> = (0..self.members.len())
            .filter(|&i| {
                let m = &self.members[i];
                !m.removed && !m.retired && (conf.voters.contains(&m.id) || conf.learners.contains(&m.id))
            })
            .collect();
        let mut statuses = Vec::new();
        for &i in &current {
            let Some(p) = &self.members[i].peer else { return false };
            statuses.push(p.status());
        }
        let leaders: Vec<_> = statuses.iter().filter(|s| s.role == Role::Leader).collect();
        let [leader] = leaders.as_slice() else { return false };
        let (last, term) = (leader.last_index, leader.term);
        if !statuses.iter().all(|s| s.applied_index == last && s.commit_index == last && s.term == term) {
            return false;
        }
        let mut digests = Vec::new();
        for &i in &current {
            let m = &self.members[i];
            let Some(p) = &m.peer else { return false };
            let mvcc = p.mvcc();
            match mvcc.hash(0) {
                Ok(h) => digests.push((m.id, mvcc.revision(), mvcc.compact_revision(), h)),
                Err(e) => {
                    self.violate(ViolationKind::CoreError, format!("m{} hash: {e}", m.id));
                    return true;
                }
            }
        }
        let first = digests[0];
        if digests.iter().any(|d| (d.1, d.3) != (first.1, first.3)) {
            self.violate(
                ViolationKind::Convergence,
                format!("members applied index {last} but differ (id, revision, compact revision, hash): {digests:?}"),
            );
        }
        self.trace.event(self.now, format_args!("converged at index {last}: {digests:?}"));
        self.converged = current;
        true
    }

    fn finish(mut self) -> RunReport {
        let current = std::mem::take(&mut self.converged);
        if self.violations.is_empty() {
            self.final_checks(&current);
        }
        if self.violations.is_empty() && !current.is_empty() {
            self.check_watches(&current);
            self.check_leases();
        }
        if self.violations.is_empty() {
            let found = check_history(&self.history);
            for v in found {
                self.violate(v.kind, v.detail);
            }
        }
        RunReport {
            seed: self.seed,
            members: self.initial_members,
            trace_hash: self.trace.hash(),
            sim_time: self.now,
            stats: self.stats,
            violations: self.violations,
            history: self.history,
        }
    }

    /// Final reads (added to the history) and the lost-write check.
    fn final_checks(&mut self, current: &[usize]) {
        let keys: Vec<Key> = (0..self.cfg.keys.max(1)).collect();
        let mut finals = Vec::new();
        let mut problems = Vec::new();
        for m in current.iter().map(|&i| &self.members[i]) {
            let Some(p) = &m.peer else { continue };
            let mvcc = p.mvcc();
            match mvcc.range(&RangeRequest::prefix("k")) {
                Ok(r) => finals.push((m.id, r)),
                Err(e) => problems.push((ViolationKind::CoreError, format!("m{} final range: {e}", m.id))),
            }
            // No acknowledged write lost: each is in the member's history at
            // its revision (unless compacted away).
            let compact = mvcc.compact_revision();
            for rec in &self.history {
                let (key, value, revision) = match (&rec.op, &rec.outcome) {
                    (Op::Put { key, value }, Outcome::Ok(Observed::Put { revision })) => (*key, *value, *revision),
                    (Op::Cas { key, value, .. }, Outcome::Ok(Observed::Cas { revision, succeeded: true, .. })) => {
                        (*key, *value, *revision)
                    }
                    _ => continue,
                };
                if revision < compact {
                    continue;
                }
                let got = mvcc.range(&RangeRequest::key(key_bytes(key)).at_revision(revision));
                let ok = matches!(&got, Ok(r) if r.kvs.len() == 1
                    && parse_value(&r.kvs[0].value) == Some(value)
                    && r.kvs[0].mod_revision == revision);
                if !ok {
                    problems.push((
                        ViolationKind::LostWrite,
                        format!("m{}: acknowledged write missing at revision {revision}: {rec}; read {got:?}", m.id),
                    ));
                }
            }
        }
        for (kind, detail) in problems.into_iter().take(5) {
            self.violate(kind, detail);
        }
        let Some((_, resp)) = finals.first() else { return };
        let mut kvs = BTreeMap::new();
        for kv in &resp.kvs {
            match (parse_key(&kv.key), parse_value(&kv.value)) {
                (Some(k), Some(value)) => {
                    kvs.insert(
                        k,
                        KvObs {
                            value,
                            version: kv.version,
                            mod_revision: kv.mod_revision,
                            create_revision: kv.create_revision,
                        },
                    );
                }
                _ => self.violate(ViolationKind::BadResponse, format!("final state holds unknown {kv:?}")),
            }
        }
        self.history.push(Record {
            client: usize::MAX,
            op: Op::Read { keys, linearizable: true },
            invoke: self.now,
            complete: self.now,
            outcome: Outcome::Ok(Observed::Read { revision: resp.revision(), kvs }),
            member: finals[0].0,
            incarnation: 0,
            attempts: 1,
        });
    }
}

/// A member's outside world in the simulator: messages and completions
/// are collected for the step to deliver, log writes queue for the
/// simulated disk, compactions wait for a later step.
struct SimIo<'a> {
    out: Vec<raft_kv::RaftMessage>,
    done: Vec<Completion<OpId>>,
    queue: &'a mut Vec<DiskWrite>,
    compactions: &'a mut Vec<raft_kv::Compaction<MemEngine>>,
}

impl<'a> SimIo<'a> {
    fn new(queue: &'a mut Vec<DiskWrite>, compactions: &'a mut Vec<raft_kv::Compaction<MemEngine>>) -> Self {
        SimIo { out: Vec::new(), done: Vec::new(), queue, compactions }
    }

    fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.done.is_empty()
    }
}

impl Io<MemEngine, OpId> for SimIo<'_> {
    fn send(&mut self, msgs: Vec<raft_kv::RaftMessage>) {
        self.out.extend(msgs);
    }
    fn complete(&mut self, completion: Completion<OpId>) {
        self.done.push(completion);
    }
    fn submit(&mut self, write: DiskWrite) {
        self.queue.push(write);
    }
    fn compact(&mut self, job: raft_kv::Compaction<MemEngine>) {
        self.compactions.push(job);
    }
    fn members_changed(&mut self, _members: Vec<raft_kv::Member>) {}
}
