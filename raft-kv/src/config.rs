//! [`Config`]: every tunable of a member, with documented defaults.

use std::time::Duration;

/// Configuration of one member.
///
/// ```
/// use raft_kv::Config;
/// let cfg = Config::new(1).peers(vec![1, 2, 3]);
/// assert_eq!(cfg.election_ticks, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This member's id; non-zero and unique in the cluster.
    pub id: u64,
    /// The voters of a new cluster. Used only the first time a member starts
    /// on an empty engine; leave empty for a member joining an existing
    /// cluster (it learns the configuration from the leader).
    pub peers: Vec<u64>,
    /// Interval of one raft tick (driver only). Default 100 ms.
    pub tick_interval: Duration,
    /// Ticks without a heartbeat before a follower campaigns. Default 10.
    pub election_ticks: usize,
    /// Upper bound (exclusive) of the randomized election timeout, in ticks;
    /// 0 means raft's default of `2 * election_ticks`. raft-rs draws the
    /// timeout from an unseeded thread-local RNG, so the simulator sets this
    /// to `election_ticks + 1` (a fixed timeout) and randomizes elections
    /// through its seeded tick schedule instead. Default 0.
    pub max_election_ticks: usize,
    /// Ticks between leader heartbeats. Default 1.
    pub heartbeat_ticks: usize,
    /// Ticks after which a pending request fails with `Timeout`. Default 50
    /// (5 s at the default tick).
    pub request_timeout_ticks: u64,
    /// Largest encoded request accepted, in bytes. Default 1.5 MiB (etcd's).
    pub max_request_bytes: usize,
    /// Most operations in one transaction branch. Default 128 (etcd's).
    pub max_txn_ops: usize,
    /// Compact the raft log once this many entries have been applied since
    /// the last compaction. Default 10 000.
    pub snapshot_entries: u64,
    /// Entries kept in the log after a compaction, so slightly slow followers
    /// catch up from the log instead of a snapshot. Default 1 000.
    pub log_keep_entries: u64,
    /// Recent log entries cached in memory. Default 4 096.
    pub log_cache_entries: usize,
    /// Largest append message, in bytes. Default 1 MiB.
    pub max_size_per_msg: u64,
    /// Most append messages in flight to one follower. Default 256.
    pub max_inflight_msgs: usize,
    /// Pre-vote (a partitioned member cannot disrupt the cluster). Default on.
    pub pre_vote: bool,
    /// Check quorum (a leader cut off from a quorum steps down). Default on.
    pub check_quorum: bool,
    /// Most commands the driver takes from its inbox per loop (one Ready).
    /// Default 4 096.
    pub max_batch: usize,
    /// **Breaks linearizability — never set outside tests.** Serves
    /// linearizable reads from local state without a ReadIndex round, so a
    /// deposed leader or a lagging follower returns stale data. It exists so
    /// the simulator can prove its linearizability checker catches the bug.
    /// Default off.
    pub unsafe_local_reads: bool,
    /// Size of a snapshot chunk in bytes. Default 1 MiB.
    pub snapshot_chunk_bytes: usize,
    /// Names and URLs of the initial members (optional; by id, matching
    /// `peers`). Members not listed start with an empty name and no URLs.
    pub initial_members: Vec<crate::api::Member>,
    /// Undelivered messages (one per revision) a watcher may hold before it
    /// is cancelled as too slow. Default 4 096.
    pub watch_buffer: usize,
    /// Proposals this member may have waiting to apply (its own and those
    /// it forwarded); past it, a proposal fails at once with
    /// `TooManyRequests` ("etcdserver: too many requests"). Default 16 384.
    pub max_pending_proposals: usize,
    /// The most key and value bytes one range returns; past it the read
    /// stops and fails with `ResponseTooLarge` (gRPC's "trying to send
    /// message larger than max"). Default 2 GiB − 1, etcd's gRPC send limit.
    pub max_response_bytes: usize,
    /// The database size (the engine's [`DbSize::total`]) past which a
    /// write that takes space raises this member's NOSPACE alarm and is
    /// refused with `NoSpace`, etcd's `--quota-backend-bytes`; 0 means no
    /// quota. Default 0 (the server sets etcd's 2 GiB).
    ///
    /// [`DbSize::total`]: crate::engine::DbSize::total
    pub quota_backend_bytes: u64,
}

impl Config {
    /// Defaults for member `id`.
    pub fn new(id: u64) -> Self {
        Config {
            id,
            peers: Vec::new(),
            tick_interval: Duration::from_millis(100),
            election_ticks: 10,
            max_election_ticks: 0,
            heartbeat_ticks: 1,
            request_timeout_ticks: 50,
            max_request_bytes: 3 * 1024 * 1024 / 2,
            max_txn_ops: 128,
            snapshot_entries: 10_000,
            log_keep_entries: 1_000,
            log_cache_entries: 4_096,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            pre_vote: true,
            check_quorum: true,
            max_batch: 4_096,
            unsafe_local_reads: false,
            watch_buffer: 4_096,
            max_pending_proposals: 16_384,
            max_response_bytes: i32::MAX as usize,
            quota_backend_bytes: 0,
            initial_members: Vec::new(),
            snapshot_chunk_bytes: 1 << 20,
        }
    }

    /// Sets the voters of a new cluster.
    pub fn peers(mut self, peers: Vec<u64>) -> Self {
        self.peers = peers;
        self
    }

    /// Sets the tick interval.
    pub fn tick_interval(mut self, d: Duration) -> Self {
        self.tick_interval = d;
        self
    }

    /// Sets when the raft log is compacted.
    pub fn snapshot_entries(mut self, applied_entries: u64, keep: u64) -> Self {
        self.snapshot_entries = applied_entries;
        self.log_keep_entries = keep;
        self
    }
}
