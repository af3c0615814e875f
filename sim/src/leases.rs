//! Lease checks: a leased key goes only when its lease is revoked or has
//! expired, and a lease's keys go at one revision on every member.
//!
//! Leased keys (`l{value}`, one per attach) are outside the register
//! model; what happened to them is read from the per-member all-keys
//! observers ([`crate::watches`]): a put event names the key's lease, a
//! later delete event of that key is the lease's revoke.
//!
//! Time: a lease expires on the leader's clock, `ttl_ticks` of its ticks
//! after the grant applied there, and a new leader restarts every TTL. The
//! simulator records every member's ticks and the spans it led
//! ([`MemberClock`]), so the check is on the clock of the member that could
//! have proposed the expiry, skew and all: a deletion with no client revoke
//! invoked is a violation unless some member, while leading, counted the
//! whole TTL between the grant's invocation (`start`) and the deletion. A
//! keep-alive that succeeds after the keys went is a violation too.
//! `LeaseTimeToLive` answers ([`Probe`]) are judged the same way: on the
//! member asked, no more left than granted, no less than its own clock
//! leaves since the grant, and the keys its store holds under the lease.
//! That leases eventually expire (once a leader is stable, within TTL and
//! slack) is checked at the end of a run (`world/checks.rs`).
//!
//! With `keep_alives` set, `start` is also the invocation of the last
//! keep-alive that succeeded (it applied before the revoke, or it would
//! have failed): an acknowledged keep-alive grants a full TTL. The core
//! honours that by making a leader's expiry revoke conditional on the
//! lease's renewal count (found with seeds 2 and 135 of the mixed sweep);
//! the check is on by default.
//!
//! ```
//! use sim::leases::{check_leases, Clocks, LeaseFacts, MemberClock, Removal};
//! let mut facts = LeaseFacts::default();
//! facts.grant(7, 100, 20); // lease 7 granted at t=100 for 20 ticks
//! // Member 1 leads throughout and ticks every 10 units.
//! let clock = MemberClock { ticks: (1..100).map(|t| t * 10).collect(), opens: vec![0], leading: vec![(5, u64::MAX)] };
//! let clocks = Clocks::from([(1, clock)]);
//! // Deleted at t=150, after 5 of the leader's ticks: early.
//! let early = vec![Removal { member: 1, lease: 7, key: b"l1".to_vec(), put_revision: 3, revision: 9, at: 150 }];
//! assert!(!check_leases(&facts, &early, &clocks, false).is_empty());
//! let late = vec![Removal { at: 300, ..early[0].clone() }];
//! assert!(check_leases(&facts, &late, &clocks, false).is_empty());
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

/// What the simulator saw of one member's clock: when it ticked, when it
/// (re)opened and when it led. A member's lessor counts its own ticks, so a
/// lease is judged on the clock of the member that acted on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberClock {
    /// Virtual times of its ticks, ascending.
    pub ticks: Vec<u64>,
    /// Virtual times it opened (started or restarted), ascending.
    pub opens: Vec<u64>,
    /// Spans it was leader, `[from, to]` (`to` is `u64::MAX` while it leads).
    pub leading: Vec<(u64, u64)>,
}

impl MemberClock {
    /// Ticks in `(from, to]`.
    pub fn ticks_between(&self, from: u64, to: u64) -> u64 {
        if to <= from {
            return 0;
        }
        let lo = self.ticks.partition_point(|&t| t <= from);
        let hi = self.ticks.partition_point(|&t| t <= to);
        (hi - lo) as u64
    }

    /// The last open at or before `at`, if any.
    pub fn last_open(&self, at: u64) -> Option<u64> {
        self.opens.iter().rev().find(|&&t| t <= at).copied()
    }

    /// The most ticks this member counted while leading inside `[from, to]`:
    /// what its lessor could have counted towards an expiry it proposed by
    /// `to` (leading restarts every lease's TTL).
    pub fn most_led_ticks(&self, from: u64, to: u64) -> Option<u64> {
        self.leading
            .iter()
            .filter(|&&(start, end)| start <= to && end >= from)
            .map(|&(start, end)| self.ticks_between(from.max(start), to.min(end)))
            .max()
    }
}

/// Every member's clock, by member id.
pub type Clocks = BTreeMap<u64, MemberClock>;

/// Ticks an expiry may come early by: the tick the lessor counts its start
/// on, which the simulator may see on either side of the grant.
const SLACK_TICKS: u64 = 1;

/// Checks the removals of leased keys against the facts and the members'
/// clocks (`keep_alives`: an acknowledged keep-alive grants a full TTL).
pub fn check_leases(facts: &LeaseFacts, removals: &[Removal], clocks: &Clocks, keep_alives: bool) -> Vec<String> {
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
    // Not before expiry, unless revoked: the leader that proposed the expiry
    // counted the whole TTL on its own clock since the grant or renewal.
    for (lease, at) in first_at {
        let Some(&(granted, ttl_ticks)) = facts.grants.get(&lease) else { continue };
        let renewed = facts.keep_alives.get(&lease).into_iter().flatten().copied().max().unwrap_or(0);
        if renewed > at {
            out.push(format!("lease {lease}: a keep-alive invoked at {renewed} succeeded after its keys went at {at}"));
        }
        let start = if keep_alives { granted.max(renewed.min(at)) } else { granted };
        let revoked = facts.revokes.get(&lease).into_iter().flatten().any(|&t| t <= at);
        if revoked {
            continue;
        }
        let counted = clocks.iter().filter_map(|(&m, c)| Some((c.most_led_ticks(start, at)?, m))).max();
        if counted.is_none_or(|(ticks, _)| ticks + SLACK_TICKS < ttl_ticks) {
            let (ticks, m) = counted.unwrap_or((0, 0));
            out.push(format!(
                "lease {lease} (granted at {granted}, {ttl_ticks} ticks, last renewed at {renewed}): keys deleted at \
                 {at} with no revoke, when no leader had counted its TTL since {start} (most: m{m}, {ticks} ticks)"
            ));
        }
    }
    out.truncate(5);
    out
}

/// A `LeaseTimeToLive` answer of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The member asked.
    pub member: u64,
    /// The lease.
    pub lease: i64,
    /// Virtual time of the call.
    pub at: u64,
    /// Remaining TTL in seconds (-1: no such lease there).
    pub ttl: i64,
    /// Granted TTL in seconds.
    pub granted_ttl: i64,
    /// The keys it named, sorted.
    pub keys: Vec<Vec<u8>>,
    /// The keys the member's MVCC store holds under this lease, sorted.
    pub stored_keys: Vec<Vec<u8>>,
}

/// Checks `LeaseTimeToLive` answers: the granted TTL as granted, a
/// remaining TTL no longer than it and no shorter than what the member's
/// own clock leaves since the grant (or since it opened), and the lease's
/// keys as the member stores them.
pub fn check_probes(facts: &LeaseFacts, probes: &[Probe], clocks: &Clocks, tick_ms: u64) -> Vec<String> {
    let mut out = Vec::new();
    for p in probes.iter().filter(|p| p.ttl != -1) {
        let Some(&(granted, ttl_ticks)) = facts.grants.get(&p.lease) else { continue };
        let clock = clocks.get(&p.member).cloned().unwrap_or_default();
        // The member's lessor started the TTL no earlier than this.
        let start = clock.last_open(p.at).map_or(granted, |o| o.max(granted));
        let left_ticks = ttl_ticks.saturating_sub(clock.ticks_between(start, p.at) + SLACK_TICKS);
        let least = (left_ticks * tick_ms).div_ceil(1000) as i64;
        let granted_ttl = (ttl_ticks * tick_ms).div_ceil(1000) as i64;
        if p.ttl < least || p.ttl > p.granted_ttl || p.granted_ttl != granted_ttl {
            out.push(format!(
                "m{} at {}: lease {} (granted at {granted}, {granted_ttl} s) has {} s of {} s left; its clock leaves at \
                 least {least} s",
                p.member, p.at, p.lease, p.ttl, p.granted_ttl
            ));
        }
        if p.keys != p.stored_keys {
            out.push(format!(
                "m{} at {}: lease {} names keys {:?}, the store holds {:?} under it",
                p.member,
                p.at,
                p.lease,
                p.keys.iter().map(|k| String::from_utf8_lossy(k)).collect::<Vec<_>>(),
                p.stored_keys.iter().map(|k| String::from_utf8_lossy(k)).collect::<Vec<_>>()
            ));
        }
    }
    out.truncate(5);
    out
}
