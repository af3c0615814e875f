//! Deliberate bugs for the simulator's mutation suite (`make
//! sim-mutations`): each proves a checker can fail.
//!
//! A mutation exists only in a build with `--cfg raft_kv_mutations` in
//! `RUSTFLAGS`, which no feature and no release build sets; elsewhere
//! [`active`] is a constant `false` and every hook folds away. One such
//! build covers every mutation: [`select`] picks one by name at run time
//! (the simulator's `--mutation NAME`).
//!
//! A hook is one line at the bug's site: `if crate::mutation::active("name")`.

/// Every mutation: name and the bug it plants.
pub const ALL: &[(&str, &str)] = &[
    ("fsync-noop", "MemEngine's fsync makes nothing durable"),
    ("dedup-removed", "a duplicated proposal applies twice (no dedup check)"),
    ("dedup-not-persisted", "the dedup window is not written to the engine"),
    ("lease-half-ttl", "leases expire at half their TTL"),
    ("lease-three-quarter-ttl", "leases expire at three quarters of their TTL"),
    ("delete-range-no-revision", "a delete-range does not bump the revision"),
    ("local-linearizable-reads", "linearizable reads served from local state"),
    ("snapshot-drops-leases", "snapshots leave the leases out"),
    ("compaction-drops-kept-version", "physical compaction deletes the version it must keep"),
    ("compaction-drops-tombstone", "the tombstone at the compact revision is dropped (etcd #18089)"),
    ("conf-state-not-persisted", "the conf state is not written with its apply batch"),
    ("snapshot-keeps-members", "a snapshot install does not restore the member list"),
    ("removal-keeps-record", "a member removal leaves the member's record in place"),
    ("range-limit-off-by-one", "a range with a limit returns one key too many"),
    ("watch-drops-events", "watchers miss every seventh event"),
    ("append-ack-before-durable", "a follower's append responses leave before its write is durable"),
    ("write-error-ignored", "a failed engine write is reported as done"),
    ("crash-keeps-torn-write", "a torn write at the log tail survives a crash as if whole"),
    ("retry-gets-new-id", "a client's retry of a write is proposed under a new request id (dedup ignores it)"),
    ("member-update-ignored", "a MemberUpdate applies without changing the member's peer URLs"),
    ("watch-filter-ignored", "watches deliver the events their NOPUT/NODELETE filter leaves out"),
    ("progress-too-high", "a watch progress notification names a revision one above the store's"),
    ("corrupt-read-unchecked", "values read from the engine are not checked against their checksums"),
    ("corrupt-read-keeps-running", "a member that refused a corrupt read goes on running"),
];

#[cfg(raft_kv_mutations)]
static ACTIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// True when mutation `name` is the selected one (always false outside a
/// `raft_kv_mutations` build).
#[cfg(raft_kv_mutations)]
pub fn active(name: &str) -> bool {
    match ACTIVE.load(std::sync::atomic::Ordering::Relaxed) {
        0 => false,
        i => ALL.get(i - 1).is_some_and(|(n, _)| *n == name),
    }
}

/// True when mutation `name` is the selected one (always false outside a
/// `raft_kv_mutations` build).
#[cfg(not(raft_kv_mutations))]
#[inline(always)]
pub fn active(_name: &str) -> bool {
    false
}

/// Selects mutation `name` (`None`: no mutation) for the whole process.
/// False if this build has no mutations or the name is unknown.
pub fn select(name: Option<&str>) -> bool {
    #[cfg(raft_kv_mutations)]
    {
        let index = match name {
            None => 0,
            Some(n) => match ALL.iter().position(|(m, _)| *m == n) {
                Some(i) => i + 1,
                None => return false,
            },
        };
        ACTIVE.store(index, std::sync::atomic::Ordering::Relaxed);
        true
    }
    #[cfg(not(raft_kv_mutations))]
    {
        name.is_none()
    }
}

/// True in a build that carries the mutations.
pub const ENABLED: bool = cfg!(raft_kv_mutations);
