//! The result of a run: [`RunReport`] and its counters, [`RunStats`].

use crate::checker::Violation;
use crate::history::Record;

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
    /// Faults injected (of every kind).
    pub faults: u64,
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
    /// Crashes that tore the batch at the log's tail.
    pub torn_writes: u64,
    /// Disk faults armed (failed write, failed fsync, power loss after
    /// some writes).
    pub disk_faults: u64,
    /// Members that stopped on a disk fault (and restarted later).
    pub disk_fault_stops: u64,
    /// Corrupt reads armed (one stored value read back with a bit flipped).
    pub corrupt_reads: u64,
    /// Members that stopped on a corrupt read they detected (and restarted
    /// later), or refused a client's read over one.
    pub corrupt_read_stops: u64,
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
    /// Clock jumps (forward and back).
    pub clock_jumps: u64,
    /// Times the clients were cut off from a member.
    pub client_partitions: u64,
    /// Requests whose answer a client partition lost.
    pub requests_cut: u64,
    /// Peer URL updates (MemberUpdate) acknowledged.
    pub member_updates: u64,
    /// Reads at a past revision answered.
    pub past_reads: u64,
    /// Reads refused as below the compact revision.
    pub compacted_reads: u64,
    /// Watch progress requests.
    pub progress_requests: u64,
    /// Writes re-proposed under their request id.
    pub same_id_retries: u64,
    /// Linearizable point reads served after a read barrier.
    pub barrier_reads: u64,
    /// Members that lost their data directory (and rejoined).
    pub dir_losses: u64,
    /// Snapshot chunks the full snapshot transport refused (sent later).
    pub snapshot_refusals: u64,
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
