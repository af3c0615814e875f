//! Lease checks: a leased key goes only when its lease is revoked or has
//! expired, and a lease's keys go at one revision on every member.
//!
//! Leased keys (`l{value}`, one per attach) are outside the register
//! model; what happened to them is read from the per-member all-keys
//! observers ([`crate::watches`]): a put event names the key's lease, a
//! later delete event of that key is the lease's revoke.
//!
//! Time: a lease expires on the leader's clock, `ttl_ticks` of its ticks
//! after the grant applied there, and a new leader restarts every TTL.
//! Ticks are at least `min_tick` virtual units apart (the fastest skewed
//! clock), so expiry cannot be proposed before
//! `start + (ttl_ticks - 1) * min_tick`, where `start` is the invocation of
//! the grant. A deletion earlier than that is a violation unless a client
//! revoke of the lease was invoked by then. A keep-alive that succeeds
//! after the keys went is a violation too.
//!
//! With `keep_alives` set, `start` is also the invocation of the last
//! keep-alive that succeeded (it applied before the revoke, or it would
//! have failed): an acknowledged keep-alive grants a full TTL. The core
//! honours that by making a leader's expiry revoke conditional on the
//! lease's renewal count (found with seeds 2 and 135 of the mixed sweep);
//! the check is on by default.
//!
//! ```
//! use sim::leases::{check_leases, LeaseFacts, Removal};
//! let mut facts = LeaseFacts::default();
//! facts.grant(7, 100, 20); // lease 7 granted at t=100 for 20 ticks
//! // Deleted at t=150 on a clock whose ticks are >= 10 units apart: early.
//! let early = vec![Removal { member: 1, lease: 7, key: b"l1".to_vec(), put_revision: 3, revision: 9, at: 150 }];
//! assert!(!check_leases(&facts, &early, 10, false).is_empty());
//! let late = vec![Removal { at: 400, ..early[0].clone() }];
//! assert!(check_leases(&facts, &late, 10, false).is_empty());
//! ```

use std::collections::BTreeMap;

/// What the clients know about the leases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseFacts {
    /// Per lease: invocation time of its grant and its TTL in ticks.
    pub grants: BTreeMap<i64, (u64, u64)>,
    /// Per lease: invocation times of keep-alives that succeeded.
    pub keep_alives: BTreeMap<i64, Vec<u64>>,
    /// Per lease: invocation times of revokes that may have applied.
    pub revokes: BTreeMap<i64, Vec<u64>>,
}

impl LeaseFacts {
    /// Records a grant of `lease` invoked at `invoke` with `ttl_ticks`.
    pub fn grant(&mut self, lease: i64, invoke: u64, ttl_ticks: u64) {
        self.grants.insert(lease, (invoke, ttl_ticks));
    }

    /// Records a successful keep-alive invoked at `invoke`.
    pub fn keep_alive(&mut self, lease: i64, invoke: u64) {
        self.keep_alives.entry(lease).or_default().push(invoke);
    }

    /// Records a revoke invoked at `invoke` (whatever its outcome, unless
    /// it was definitely not applied).
    pub fn revoke(&mut self, lease: i64, invoke: u64) {
        self.revokes.entry(lease).or_default().push(invoke);
    }
}

/// A leased key's deletion as one member applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The member.
    pub member: u64,
    /// The key's lease (from its put event).
    pub lease: i64,
    /// The key.
    pub key: Vec<u8>,
    /// Revision of the key's put.
    pub put_revision: i64,
    /// Revision of the deletion.
    pub revision: i64,
    /// Virtual time the member applied it.
    pub at: u64,
}

/// Checks the removals of leased keys against the facts; `min_tick` is the
/// shortest possible interval between two ticks of any member.
pub fn check_leases(facts: &LeaseFacts, removals: &[Removal], min_tick: u64, keep_alives: bool) -> Vec<String> {
    let mut out = Vec::new();
    // One revision per lease, on every member.
    let mut revision_of: BTreeMap<i64, (i64, u64)> = BTreeMap::new();
    let mut first_at: BTreeMap<i64, u64> = BTreeMap::new();
    for r in removals {
        match revision_of.get(&r.lease) {
            Some((rev, m)) if *rev != r.revision => out.push(format!(
                "lease {}: keys deleted at revision {rev} (m{m}) and at {} (m{}, key {:?})",
                r.lease,
                r.revision,
                r.member,
                String::from_utf8_lossy(&r.key)
            )),
            Some(_) => {}
            None => {
                revision_of.insert(r.lease, (r.revision, r.member));
            }
        }
        if r.put_revision >= r.revision {
            out.push(format!("lease {}: key {:?} deleted before it was put", r.lease, String::from_utf8_lossy(&r.key)));
        }
        let t = first_at.entry(r.lease).or_insert(r.at);
        *t = (*t).min(r.at);
    }
    // Not before expiry, unless revoked.
    for (lease, at) in first_at {
        let Some(&(granted, ttl_ticks)) = facts.grants.get(&lease) else { continue };
        let renewed = facts.keep_alives.get(&lease).into_iter().flatten().copied().max().unwrap_or(0);
        if renewed > at {
            out.push(format!("lease {lease}: a keep-alive invoked at {renewed} succeeded after its keys went at {at}"));
        }
        let start = if keep_alives { granted.max(renewed.min(at)) } else { granted };
        let earliest = start + ttl_ticks.saturating_sub(1) * min_tick;
        let revoked = facts.revokes.get(&lease).into_iter().flatten().any(|&t| t <= at);
        if at < earliest && !revoked {
            out.push(format!(
                "lease {lease} (granted at {granted}, {ttl_ticks} ticks, last renewed at {renewed}): keys deleted at \
                 {at}, before {earliest}, with no revoke"
            ));
        }
    }
    out.truncate(5);
    out
}
