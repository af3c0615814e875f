//! Leases: time-limited ownership of keys.
//!
//! Lease records (id → granted TTL) are replicated state in [`Cf::Lease`];
//! grant, revoke and keep-alive are log entries, so every member agrees on
//! which leases exist and which keys they hold. *Time* is not replicated:
//! each member's [`Lessor`] tracks expiry in its own ticks, and only the
//! leader acts on it, by proposing a revoke — so all members delete a
//! lease's keys at the same revision. A member that becomes leader (or
//! restarts) gives every lease its full TTL again rather than expiring
//! everything at once, as etcd does: a lease may outlive its TTL across a
//! leader change, never expire early.
//!
//! Keep-alives travel through the log too (any member can take one), which
//! costs an entry per renewal but needs no leader-forwarding RPC.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;

use crate::api::{Event, LeaseTimeToLiveResponse};
use crate::engine::{Cf, ReadView, WriteBatch};
use crate::{Error, Result};

struct Lease {
    /// Granted TTL in seconds.
    ttl: i64,
    /// Tick at which the lease expires (this member's clock).
    expiry: u64,
    /// Attached live keys.
    keys: BTreeSet<Bytes>,
    /// Tick of the last revoke proposed for expiry, if any.
    revoking_since: Option<u64>,
    /// Keep-alives applied so far (replicated: stored with the lease).
    renewals: u64,
}

/// The leases of one member. See the module docs.
pub struct Lessor {
    leases: BTreeMap<i64, Lease>,
    tick: Duration,
}

pub(crate) fn lease_key(id: i64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Ticks of length `tick` in `ttl` seconds (rounded up).
fn ticks_in(tick: Duration, ttl: i64) -> u64 {
    let ms = tick.as_millis().max(1) as u64;
    let ticks = (ttl.max(0) as u64).saturating_mul(1000).div_ceil(ms);
    if crate::mutation::active("lease-half-ttl") {
        return ticks / 2;
    }
    if crate::mutation::active("lease-three-quarter-ttl") {
        return ticks * 3 / 4;
    }
    ticks
}

/// A lease record: granted TTL and keep-alive count (both BE).
pub(crate) fn lease_value(ttl: i64, renewals: u64) -> Vec<u8> {
    let mut v = ttl.to_be_bytes().to_vec();
    v.extend_from_slice(&renewals.to_be_bytes());
    v
}

/// Decodes a lease record: id, granted TTL, keep-alive count.
pub(crate) fn decode_lease(k: &[u8], v: &[u8]) -> Result<(i64, i64, u64)> {
    let ttl = v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_be_bytes);
    let renewals = v.get(8..).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
    let (Ok(id), Some(ttl), Some(renewals)) = (<[u8; 8]>::try_from(k), ttl, renewals) else {
        return Err(Error::Corruption(format!("lease record {k:02x?}")));
    };
    Ok((i64::from_be_bytes(id), ttl, renewals))
}

impl Lessor {
    /// Loads the leases stored in `view`, attaching `leased_keys`; every
    /// lease gets its full TTL from tick `now`.
    pub fn open(view: &impl ReadView, leased_keys: Vec<(Bytes, i64)>, now: u64, tick: Duration) -> Result<Self> {
        let mut lessor = Lessor { leases: BTreeMap::new(), tick };
        view.try_scan(Cf::Lease, b"", None, &mut |k, v| {
            let (id, ttl, renewals) = decode_lease(k, v)?;
            let expiry = now.saturating_add(ticks_in(tick, ttl));
            let lease = Lease { ttl, expiry, keys: BTreeSet::new(), revoking_since: None, renewals };
            lessor.leases.insert(id, lease);
            Ok(true)
        })?;
        for (key, id) in leased_keys {
            if let Some(l) = lessor.leases.get_mut(&id) {
                l.keys.insert(key);
            }
        }
        Ok(lessor)
    }

    /// True when lease `id` exists.
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Ids of every lease.
    pub fn ids(&self) -> Vec<i64> {
        self.leases.keys().copied().collect()
    }

    /// Applies a grant: stores the lease and starts its clock.
    pub fn grant(&mut self, id: i64, ttl: i64, now: u64, wb: &mut WriteBatch) -> Result<()> {
        if id <= 0 {
            return Err(Error::invalid("lease id must be positive"));
        }
        if ttl <= 0 {
            return Err(Error::invalid("lease TTL must be positive"));
        }
        if self.leases.contains_key(&id) {
            return Err(Error::LeaseExists);
        }
        wb.put(Cf::Lease, lease_key(id).to_vec(), lease_value(ttl, 0));
        let expiry = now.saturating_add(ticks_in(self.tick, ttl));
        self.leases.insert(id, Lease { ttl, expiry, keys: BTreeSet::new(), revoking_since: None, renewals: 0 });
        Ok(())
    }

    /// The keys attached to lease `id`, for its revoke.
    pub fn keys(&self, id: i64) -> Result<Vec<Bytes>> {
        self.leases.get(&id).map(|l| l.keys.iter().cloned().collect()).ok_or_else(not_found)
    }

    /// Applies the removal of lease `id` (its keys were deleted by the caller).
    pub fn remove(&mut self, id: i64, wb: &mut WriteBatch) -> Result<()> {
        self.leases.remove(&id).ok_or_else(not_found)?;
        wb.delete(Cf::Lease, lease_key(id).to_vec());
        Ok(())
    }

    /// Applies a keep-alive: the lease gets its full TTL again from `now`
    /// and its renewal count goes up (staged in `wb`). Returns the TTL.
    pub fn renew(&mut self, id: i64, now: u64, wb: &mut WriteBatch) -> Result<i64> {
        let tick = self.tick;
        let l = self.leases.get_mut(&id).ok_or_else(not_found)?;
        l.expiry = now.saturating_add(ticks_in(tick, l.ttl));
        l.revoking_since = None;
        l.renewals += 1;
        wb.put(Cf::Lease, lease_key(id).to_vec(), lease_value(l.ttl, l.renewals));
        Ok(l.ttl)
    }

    /// A keep-alive on the leader, not replicated: lease `id` gets its full
    /// TTL again from `now` in this member's clock only. `None` when the
    /// lease is unknown here or its revoke is already proposed (then the
    /// keep-alive must go through the log, where the revoke's condition sees
    /// it). Returns the TTL.
    pub fn renew_in_place(&mut self, id: i64, now: u64) -> Option<i64> {
        let tick = self.tick;
        let l = self.leases.get_mut(&id).filter(|l| l.revoking_since.is_none())?;
        l.expiry = now.saturating_add(ticks_in(tick, l.ttl));
        Some(l.ttl)
    }

    /// How many keep-alives lease `id` has had.
    pub fn renewals(&self, id: i64) -> Option<u64> {
        self.leases.get(&id).map(|l| l.renewals)
    }

    /// Gives every lease its full TTL from `now` (on becoming leader).
    pub fn extend_all(&mut self, now: u64) {
        let tick = self.tick;
        for l in self.leases.values_mut() {
            l.expiry = now.saturating_add(ticks_in(tick, l.ttl));
            l.revoking_since = None;
        }
    }

    /// Leases expired at `now` that need a revoke proposed (not proposed
    /// yet, or proposed more than `retry` ticks ago without effect), with
    /// their renewal counts: the revoke applies only if no keep-alive
    /// applied in between.
    pub fn expired(&mut self, now: u64, retry: u64, limit: usize) -> Vec<(i64, u64)> {
        let mut out = Vec::new();
        for (id, l) in self.leases.iter_mut() {
            if out.len() >= limit {
                break; // the rest are due next tick
            }
            let due = l.expiry <= now;
            let stale = l.revoking_since.is_none_or(|t| now >= t + retry);
            if due && stale {
                l.revoking_since = Some(now);
                out.push((*id, l.renewals));
            }
        }
        out
    }

    /// Tracks key attachment from applied events.
    pub fn on_events(&mut self, events: &[Event]) {
        for ev in events {
            let Some(kv) = &ev.kv else { continue };
            let prev_lease = ev.prev_kv.as_ref().map_or(0, |p| p.lease);
            let new_lease = if ev.is_delete() { 0 } else { kv.lease };
            if prev_lease != 0 && prev_lease != new_lease {
                if let Some(l) = self.leases.get_mut(&prev_lease) {
                    l.keys.remove(&kv.key);
                }
            }
            if new_lease != 0 {
                if let Some(l) = self.leases.get_mut(&new_lease) {
                    l.keys.insert(kv.key.clone());
                }
            }
        }
    }

    /// Lease `id`'s remaining time to live as this member sees it.
    pub fn time_to_live(&self, id: i64, now: u64, with_keys: bool) -> LeaseTimeToLiveResponse {
        match self.leases.get(&id) {
            None => LeaseTimeToLiveResponse { id, ttl: -1, ..Default::default() },
            Some(l) => {
                let left_ms = l.expiry.saturating_sub(now) as u128 * self.tick.as_millis();
                LeaseTimeToLiveResponse {
                    id,
                    ttl: left_ms.div_ceil(1000) as i64,
                    granted_ttl: l.ttl,
                    keys: if with_keys { l.keys.iter().cloned().collect() } else { Vec::new() },
                    header: None,
                }
            }
        }
    }
}

fn not_found() -> Error {
    Error::LeaseNotFound
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EventType, KeyValue};
    use crate::engine::{Engine, MemEngine};

    fn put_event(key: &str, lease: i64, prev_lease: Option<i64>) -> Event {
        let kv = KeyValue { key: Bytes::from(key.to_string()), lease, ..Default::default() };
        let prev_kv =
            prev_lease.map(|l| KeyValue { key: Bytes::from(key.to_string()), lease: l, ..Default::default() });
        Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv }
    }

    #[test]
    fn grant_attach_expire_and_reload() {
        let engine = MemEngine::new();
        let tick = Duration::from_millis(100);
        let mut l = Lessor::open(&engine, vec![], 0, tick).unwrap();
        let mut wb = WriteBatch::new();
        l.grant(7, 2, 0, &mut wb).unwrap();
        assert!(l.grant(7, 2, 0, &mut wb).is_err());
        assert!(l.grant(8, 0, 0, &mut wb).is_err());
        engine.write(wb, true).unwrap();
        l.on_events(&[put_event("a", 7, None), put_event("b", 7, None)]);
        l.on_events(&[put_event("b", 0, Some(7))]);
        assert_eq!(l.keys(7).unwrap(), vec![Bytes::from("a")]);
        assert!(l.expired(19, 10, usize::MAX).is_empty());
        assert_eq!(l.expired(20, 10, usize::MAX), vec![(7, 0)]);
        assert!(l.expired(25, 10, usize::MAX).is_empty(), "revoke already proposed");
        assert_eq!(l.expired(30, 10, usize::MAX), vec![(7, 0)], "retried after `retry` ticks");
        assert_eq!(l.time_to_live(7, 5, true).ttl, 2);
        assert_eq!(l.time_to_live(9, 5, true).ttl, -1);
        let mut wb = WriteBatch::new();
        l.renew(7, 30, &mut wb).unwrap();
        engine.write(wb, true).unwrap();
        assert_eq!(l.renewals(7), Some(1));
        assert!(l.expired(40, 10, usize::MAX).is_empty());

        // A mass expiry comes out at most `limit` leases at a time.
        let mut wb = WriteBatch::new();
        for id in 100..110 {
            l.grant(id, 1, 0, &mut wb).unwrap();
        }
        assert_eq!(l.expired(50, 1000, 4).len(), 4);
        assert_eq!(l.expired(50, 1000, 4).len(), 4, "the next ones on the next tick");
        assert_eq!(l.expired(50, 1000, 4).len(), 3, "eleven in all: lease 7 (renewed at 30, TTL 2 s) is due too");
        assert!(l.expired(50, 1000, 4).is_empty());

        let reloaded = Lessor::open(&engine, vec![(Bytes::from("a"), 7)], 100, tick).unwrap();
        assert_eq!(reloaded.ids(), vec![7]);
        assert_eq!(reloaded.keys(7).unwrap(), vec![Bytes::from("a")]);
        assert_eq!(reloaded.time_to_live(7, 100, false).ttl, 2, "full TTL after reload");
        assert_eq!(reloaded.renewals(7), Some(1), "the renewal count is replicated state");
        let mut wb = WriteBatch::new();
        let mut reloaded = reloaded;
        reloaded.remove(7, &mut wb).unwrap();
        assert_eq!(reloaded.remove(7, &mut wb), Err(Error::LeaseNotFound));
    }
}
