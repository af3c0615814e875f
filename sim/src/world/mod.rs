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
//!
//! The [`World`] and its event loop live here, with starting, crashing and
//! retiring members; the rest is split by concern: `pump` (the driver pump
//! and the simulated disk), `faults`, `admin` (membership changes),
//! `clients` (the workload), `watch_driver` (the watches), `checks` (leases,
//! convergence, final checks) and `report` (the result types).

mod admin;
mod checks;
mod clients;
mod faults;
mod pump;
mod queries;
mod replicated;
mod report;
mod txns;
mod watch_driver;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use raft_kv::{Config, DiskWrite, Driver, Error, MemEngine, Peer, Response};
use transport_mem::sim::SimNetwork;

use crate::checker::{Violation, ViolationKind};
use crate::config::{SimConfig, TICK};
use crate::history::{Record, Value, NEVER};
use crate::leases::{MemberClock, Probe};
use crate::rng::{SimRng, Stream};
use crate::trace::Trace;
use admin::Admin;
use clients::{Client, ClientState};
use watch_driver::WatchSlot;

pub use report::{RunReport, RunStats};

/// Snapshot chunk size: small, so every snapshot travels in several chunks.
const SNAPSHOT_CHUNK_BYTES: usize = 512;

/// The [`OpId::record`] of membership-change proposals (not client records;
/// their `attempt` is the change's attempt sequence number).
pub const ADMIN_RECORD: u32 = u32::MAX;

/// The token the simulator hands to a [`Peer`] with each request: the
/// history record and the attempt it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpId {
    /// Index of the operation in the history.
    pub record: u32,
    /// Which attempt of that operation.
    pub attempt: u32,
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
    /// Reads handed off the peer (the production readers) and not yet
    /// run; lost if the member crashes (its clients are told).
    reads: Reads,
    /// Injected disk faults of this member's engine already answered (by
    /// the member stopping).
    faults_seen: u64,
    /// Its ticks, opens and spans as leader (for the lease checks).
    clock: MemberClock,
}

/// Reads a member handed to its (simulated) readers.
#[derive(Default)]
pub(super) struct Reads {
    pub(super) ranges: Vec<raft_kv::RangeJob<raft_kv::engine::MemSnapshot, OpId>>,
    pub(super) histories: Vec<raft_kv::HistoryJob<raft_kv::engine::MemSnapshot>>,
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
    /// The limit of each limited range read, by history record.
    range_limits: BTreeMap<usize, i64>,
    /// Linearizable point reads issued as a read barrier, by history
    /// record: the read to run once the barrier completes.
    barrier_reads: BTreeMap<usize, raft_kv::RangeRequest>,
    /// Members the clients are cut off from, until when.
    client_cut: BTreeMap<u64, u64>,
    /// What the clients know of each member's peer URLs.
    peer_urls: BTreeMap<u64, admin::UrlFacts>,
    /// Peer URL updates started.
    url_updates: u64,
    /// The member and request id each client write was proposed under.
    request_ids: BTreeMap<usize, (u64, u64)>,
    /// Writes being retried under their request id (member, id).
    same_id_retries: BTreeMap<usize, (u64, u64)>,
    /// The snapshot transport's bounded pipes.
    snapshot_pipes: pump::SnapshotPipes,
    /// Every `LeaseTimeToLive` answer, for the lease checks.
    lease_probes: Vec<Probe>,
    /// Members that refused a client's request over a corrupt read: (id,
    /// incarnation, deadline). Each must stop by itself (its next Ready
    /// fails) before the deadline.
    corrupt_refusals: Vec<(u64, u32, u64)>,
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
    // A small entry cache: raft reads a lagging follower's entries (and
    // their terms) from the engine, as production does under lag, so a
    // corrupt log entry is met.
    c.log_cache_entries = 4;
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
            reads: Reads::default(),
            faults_seen: 0,
            clock: MemberClock::default(),
        }
    }
}

impl Member {
    /// Records whether the member leads at `now`.
    fn set_leading(&mut self, leading: bool, now: u64) {
        note_leading(&mut self.was_leader, &mut self.clock, leading, now);
    }
}

/// Records whether a member leads at `now`: its `was_leader` flag and its
/// clock's spans as leader (fields apart, for a caller holding its peer).
fn note_leading(was_leader: &mut bool, clock: &mut MemberClock, leading: bool, now: u64) {
    if leading && !*was_leader {
        clock.leading.push((now, NEVER));
    } else if !leading && *was_leader {
        if let Some(span) = clock.leading.last_mut() {
            span.1 = now;
        }
    }
    *was_leader = leading;
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
                last_delete: 0,
                watch_from: None,
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
            range_limits: BTreeMap::new(),
            barrier_reads: BTreeMap::new(),
            client_cut: BTreeMap::new(),
            peer_urls: BTreeMap::new(),
            url_updates: 0,
            request_ids: BTreeMap::new(),
            same_id_retries: BTreeMap::new(),
            snapshot_pipes: pump::SnapshotPipes::new(0),
            lease_probes: Vec::new(),
            corrupt_refusals: Vec::new(),
        }
    }

    /// Runs the whole scenario: workload under faults, heal, convergence,
    /// final checks.
    pub fn run(mut self) -> RunReport {
        self.simulate();
        self.finish()
    }

    /// The scenario up to the end-of-run checks: it ends converged, or on a
    /// violation (no convergence, a member that failed).
    fn simulate(&mut self) {
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
                // A removed member that has not heard yet keeps talking.
                Err(Error::FromRemovedMember(_)) => {}
                Err(e) => {
                    if self.member_failed(i, "step", e) {
                        return;
                    }
                }
            }
        }
        for i in 0..self.members.len() {
            let m = &mut self.members[i];
            if m.next_tick <= now {
                if let Some(peer) = m.peer.as_mut() {
                    peer.tick();
                    m.clock.ticks.push(now);
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
        self.check_corrupt_refusals();
        self.drain_watches();
    }

    fn start_member(&mut self, i: usize) {
        let m = &mut self.members[i];
        // Writes and compactions queued by an earlier incarnation died with it.
        m.log_queue.clear();
        m.driver.reset();
        m.compactions.clear();
        m.reads = Reads::default();
        match Peer::open(m.cfg.clone(), m.engine.clone()) {
            Ok(peer) => {
                m.peer = Some(peer);
                m.clock.opens.push(self.now);
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
            Err(e) if m.engine.faults_fired() > m.faults_seen => {
                // Power lost inside `open`: down again, restarts later.
                m.faults_seen = m.engine.faults_fired();
                let id = m.id;
                self.stats.disk_fault_stops += 1;
                self.trace.event(self.now, format_args!("m{id} loses power while opening: {e}"));
                self.crash_down(i);
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
            self.members[i].set_leading(false, self.now);
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
        self.members[i].set_leading(false, self.now);
        let id = self.members[i].id;
        let lost = peer.fail_all();
        drop(peer);
        let torn = self.crash_down(i);
        self.net.drop_to(id);
        self.trace.event(self.now, format_args!("m{id} crashes: {torn}, {} requests lost", lost.len()));
        self.lose_requests(id, lost);
    }

    /// The disk side of a crash of member `i` (up or opening): half the
    /// time the crash lands inside the tail write, which is torn (and must
    /// be dropped whole by recovery); otherwise a prefix of the unsynced
    /// batches survives, half the time none. Schedules the restart; returns what survived.
    fn crash_down(&mut self, i: usize) -> String {
        // Faults that fired in the incarnation going down are settled by its
        // going down: one that stopped on a corrupt read may have had a
        // write fail in the same step, and must not be taken on restart
        // for a member that went on after it.
        let fired = self.members[i].engine.faults_fired();
        self.members[i].faults_seen = fired;
        let engine = &self.members[i].engine;
        let unsynced = engine.unsynced_batches() as u64;
        // Half the crashes land inside the tail write: every batch before it
        // reached the disk, it is torn.
        // (the write power was lost in, if there is one).
        let in_flight = engine.unsynced_ops(unsynced as usize) > 0;
        let tear = self.cfg.faults.torn_writes && (in_flight || unsynced > 0 && self.rng_fault.chance(0.5));
        let keep = if tear {
            unsynced - u64::from(!in_flight)
        } else if self.rng_fault.chance(0.5) {
            0
        } else {
            self.rng_fault.below(unsynced + 1)
        };
        let torn_ops = engine.unsynced_ops(keep as usize) as u64;
        let what = if tear && torn_ops > 1 {
            let cut = 1 + self.rng_fault.below(torn_ops - 1);
            engine.crash_torn(keep as usize, cut as usize);
            self.stats.torn_writes += 1;
            format!("{keep} of {unsynced} unsynced batches survive, the next torn after {cut} of {torn_ops} ops")
        } else {
            engine.crash_keeping(keep as usize);
            format!("{keep} of {unsynced} unsynced batches survive")
        };
        self.stats.crashes += 1;
        self.stats.lost_batches += unsynced - keep;
        // Sometimes power goes again while the member reopens.
        if self.cfg.faults.enabled && self.cfg.faults.weights.disk > 0 && self.rng_fault.chance(0.1) {
            let after = self.rng_fault.below(3) as u32;
            self.members[i].engine.arm(raft_kv::engine::DiskFault::CrashAfter(after));
        }
        let (lo, hi) = self.cfg.faults.down_time;
        self.members[i].restart_at = if self.healing { self.now } else { self.now + self.rng_fault.between(lo, hi) };
        what
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
}
