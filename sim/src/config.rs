//! [`SimConfig`]: everything that shapes a run besides its seed.
//!
//! Time is virtual, in abstract units (think milliseconds): a member ticks
//! every [`TICK`] units (with per-member skew and per-tick jitter), so the
//! default election timeout is about 100 units.

use transport_mem::sim::LinkFaults;

use crate::trace::TraceLevel;

/// Nominal length of one raft tick, in virtual time units.
pub const TICK: u64 = 10;

/// Faults the simulator can inject. Each has a weight in [`FaultWeights`].
///
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Split the members into two random groups (both ways).
    Partition,
    /// Cut links from one random group to the other, one way only.
    OneWayPartition,
    /// Cut the current leader off from everyone (clients still reach it).
    IsolateLeader,
    /// Crash one member (sometimes all), losing unsynced writes; it
    /// restarts later.
    Crash,
    /// Ask the leader to hand leadership to a random member.
    TransferLeader,
    /// Change one member's tick rate.
    TickSkew,
    /// Change the random message faults (loss, duplicates, delays).
    NetWeather,
    /// Remove every partition.
    Heal,
    /// Start one membership change (one at a time): add a fresh learner
    /// (a new id and an empty engine, so it catches up by snapshot),
    /// promote it, remove a voter (sometimes the leader); removing and then
    /// adding is a re-add under a new id. At least 3 voters are kept.
    Membership,
    /// Arm a disk fault on one member's engine: a failed write, a failed
    /// fsync, or power lost after a few more writes (so the crash falls
    /// between any two writes, inside one step or inside `open`). The
    /// member must stop on it; it restarts later.
    Disk,
    /// Make one member's clock jump: forward (a few ticks fire at once, as
    /// after a stalled process catching up) or back (its ticks stop until
    /// the clock is where it was).
    ClockJump,
    /// Cut the clients off from one member for a while: requests sent to
    /// it reach it or not, and their answers are lost, so they time out
    /// with their outcome unknown.
    ClientPartition,
    /// One member loses its data directory: it stops, its directory is
    /// wiped, and as an operator would it is removed and a fresh member
    /// joins under a new id (member add, empty start, then promotion).
    DirLoss,
}

impl FaultKind {
    /// Every kind, in weight order.
    pub const ALL: [FaultKind; 13] = [
        FaultKind::Partition,
        FaultKind::OneWayPartition,
        FaultKind::IsolateLeader,
        FaultKind::Crash,
        FaultKind::TransferLeader,
        FaultKind::TickSkew,
        FaultKind::NetWeather,
        FaultKind::Heal,
        FaultKind::Membership,
        FaultKind::Disk,
        FaultKind::ClockJump,
        FaultKind::ClientPartition,
        FaultKind::DirLoss,
    ];
}

/// Relative weights of the fault kinds (0 disables one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultWeights {
    /// [`FaultKind::Partition`].
    pub partition: u32,
    /// [`FaultKind::OneWayPartition`].
    pub one_way: u32,
    /// [`FaultKind::IsolateLeader`].
    pub isolate_leader: u32,
    /// [`FaultKind::Crash`].
    pub crash: u32,
    /// [`FaultKind::TransferLeader`].
    pub transfer_leader: u32,
    /// [`FaultKind::TickSkew`].
    pub tick_skew: u32,
    /// [`FaultKind::NetWeather`].
    pub net_weather: u32,
    /// [`FaultKind::Heal`].
    pub heal: u32,
    /// [`FaultKind::Membership`].
    pub membership: u32,
    /// [`FaultKind::Disk`].
    pub disk: u32,
    /// [`FaultKind::ClockJump`].
    pub clock_jump: u32,
    /// [`FaultKind::ClientPartition`].
    pub client_partition: u32,
    /// [`FaultKind::DirLoss`].
    pub dir_loss: u32,
}

impl FaultWeights {
    /// The weights in [`FaultKind::ALL`] order.
    pub fn as_array(&self) -> [u32; 13] {
        [
            self.partition,
            self.one_way,
            self.isolate_leader,
            self.crash,
            self.transfer_leader,
            self.tick_skew,
            self.net_weather,
            self.heal,
            self.membership,
            self.disk,
            self.clock_jump,
            self.client_partition,
            self.dir_loss,
        ]
    }
}

impl Default for FaultWeights {
    fn default() -> Self {
        FaultWeights {
            partition: 3,
            one_way: 2,
            isolate_leader: 3,
            crash: 6,
            transfer_leader: 2,
            tick_skew: 1,
            net_weather: 2,
            heal: 2,
            membership: 6,
            disk: 5,
            clock_jump: 2,
            client_partition: 4,
            dir_loss: 1,
        }
    }
}

/// When and how hard faults strike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    /// Master switch.
    pub enabled: bool,
    /// Relative weights of the kinds.
    pub weights: FaultWeights,
    /// Time between two faults: drawn from `interval.0..=interval.1`.
    pub interval: (u64, u64),
    /// How long a partition lasts before it heals by itself.
    pub partition_time: (u64, u64),
    /// How long a crashed member stays down.
    pub down_time: (u64, u64),
    /// Chance that a crash takes down every member at once (power loss).
    pub crash_all: f64,
    /// Worst random message faults [`FaultKind::NetWeather`] may pick.
    pub worst_weather: LinkFaults,
    /// Message faults at the start of a run.
    pub initial_weather: LinkFaults,
    /// Tick periods a skewed member may get, in virtual units.
    pub tick_period: (u64, u64),
    /// Whether the network may duplicate forwarded proposals (`MsgPropose`).
    /// On by default (the core applies a duplicated command once; see the
    /// regression test `duplicated_proposal_is_applied_once`).
    pub duplicate_proposals: bool,
    /// Whether a crash may tear the batch at the log's tail.
    pub torn_writes: bool,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            enabled: true,
            weights: FaultWeights::default(),
            interval: (5 * TICK, 40 * TICK),
            partition_time: (10 * TICK, 80 * TICK),
            down_time: (5 * TICK, 60 * TICK),
            crash_all: 0.1,
            worst_weather: LinkFaults {
                drop: 0.15,
                duplicate: 0.1,
                min_delay: 1,
                max_delay: TICK,
                slow: 0.05,
                slow_delay: 10 * TICK,
            },
            initial_weather: LinkFaults {
                drop: 0.01,
                duplicate: 0.01,
                min_delay: 1,
                max_delay: 3,
                slow: 0.01,
                slow_delay: 3 * TICK,
            },
            tick_period: (TICK * 6 / 10, TICK * 16 / 10),
            duplicate_proposals: true,
            torn_writes: true,
        }
    }
}

impl FaultConfig {
    /// No faults at all, a reliable network with small delays.
    pub fn none() -> Self {
        FaultConfig {
            enabled: false,
            initial_weather: LinkFaults { min_delay: 1, max_delay: 3, ..LinkFaults::reliable() },
            ..FaultConfig::default()
        }
    }
}

/// Relative weights of client operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadMix {
    /// Put a unique value.
    pub put: u32,
    /// Linearizable read of one key.
    pub get: u32,
    /// Serializable read of one key.
    pub serializable_get: u32,
    /// Linearizable read of the whole key space.
    pub range: u32,
    /// Delete one key.
    pub delete: u32,
    /// Compare-and-swap.
    pub cas: u32,
    /// Compact history.
    pub compact: u32,
    /// Open a watch (on a random member, from now or from a past revision;
    /// at most [`WorkloadMix::WATCHES_PER_CLIENT`] per client).
    pub watch: u32,
    /// A lease operation: grant (when the client holds no lease), attach a
    /// fresh key, keep-alive, revoke, or let the lease expire.
    pub lease: u32,
    /// A range with random options (limit, sort, count_only, keys_only,
    /// revision filters), sometimes at a past revision.
    pub query: u32,
    /// Delete a run of keys in one request, sometimes with `prev_kv`.
    pub delete_range: u32,
    /// A multi-op txn (compares on value, version, mod or create
    /// revision; puts, deletes, reads and a nested txn in either branch).
    pub txn: u32,
}

impl Default for WorkloadMix {
    fn default() -> Self {
        WorkloadMix {
            put: 25,
            get: 25,
            serializable_get: 10,
            range: 5,
            delete: 8,
            cas: 25,
            compact: 2,
            watch: 2,
            lease: 16,
            query: 12,
            delete_range: 3,
            txn: 10,
        }
    }
}

impl WorkloadMix {
    /// Watches one client opens at most.
    pub const WATCHES_PER_CLIENT: usize = 2;

    /// The weights in a fixed order (put, get, serializable get, range,
    /// delete, cas, compact, watch, lease, query, delete range, txn).
    pub fn as_array(&self) -> [u32; 12] {
        [
            self.put,
            self.get,
            self.serializable_get,
            self.range,
            self.delete,
            self.cas,
            self.compact,
            self.watch,
            self.lease,
            self.query,
            self.delete_range,
            self.txn,
        ]
    }
}

/// Everything that shapes a run besides the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Cluster size (3 or 5 in CI; any size from 1 works).
    pub members: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations each client issues.
    pub ops_per_client: usize,
    /// Size of the key space.
    pub keys: u32,
    /// Operation mix.
    pub mix: WorkloadMix,
    /// Faults.
    pub faults: FaultConfig,
    /// Compact the raft log after this many applied entries (small, so
    /// compaction and snapshot installs happen in every run).
    pub snapshot_entries: u64,
    /// Entries kept after a log compaction.
    pub log_keep_entries: u64,
    /// Ticks before a pending request times out.
    pub request_timeout_ticks: u64,
    /// Client pause between operations: `think.0..=think.1` units.
    pub think: (u64, u64),
    /// Attempts a client makes after definite refusals before giving up.
    pub max_attempts: u32,
    /// The deliberately broken mode: linearizable reads served locally.
    pub unsafe_local_reads: bool,
    /// Half the linearizable point reads go as the server sends them: a
    /// read barrier ([`raft_kv::Peer::read_barrier`]), then the read on the
    /// client's side from a view of the member's applied state taken when
    /// the barrier completes. Off: every read is a range job (the traces of
    /// seeds pinned before barriers existed).
    pub barrier_reads: bool,
    /// Also require an acknowledged keep-alive to grant a full TTL (on by
    /// default: the core makes an expiry revoke conditional on no keep-alive
    /// having applied since; see [`crate::leases`]).
    pub strict_keep_alive: bool,
    /// Virtual time after which clients stop issuing operations.
    pub workload_time: u64,
    /// Virtual time allowed after heal for members to converge.
    pub heal_time: u64,
    /// What to print.
    pub trace: TraceLevel,
    /// Faults injected at most (shrinking lowers it; `u64::MAX`: no cap).
    pub max_faults: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            members: 3,
            clients: 4,
            ops_per_client: 30,
            keys: 4,
            mix: WorkloadMix::default(),
            faults: FaultConfig::default(),
            snapshot_entries: 16,
            log_keep_entries: 4,
            request_timeout_ticks: 30,
            think: (0, 2 * TICK),
            max_attempts: 20,
            unsafe_local_reads: false,
            barrier_reads: true,
            strict_keep_alive: true,
            workload_time: 3_000 * TICK,
            heal_time: 1_000 * TICK,
            trace: TraceLevel::Off,
            max_faults: u64::MAX,
        }
    }
}
