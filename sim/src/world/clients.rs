//! Clients and the workload: picking operations, sending attempts,
//! handling completions and recording them in the history.

use std::collections::BTreeMap;

use raft_kv::{
    CompactionRequest, Compare, CompareResult, DeleteRangeRequest, Error, LeaseGrantRequest, LeaseKeepAliveRequest,
    PutRequest, RangeRequest, Response, TxnRequest,
};

use super::queries::{check_range_shape, delete_range_request, observe_delete_range, range_request};
use super::txns::{observe_txn, txn_request};
use super::watch_driver::WatchOwner;
use super::{OpId, World, ADMIN_RECORD};
use crate::checker::ViolationKind;
use crate::config::{WorkloadMix, TICK};
use crate::history::{
    key_bytes, lease_key_bytes, parse_key, parse_value, Key, KvObs, Observed, Op, Outcome, Record, Value, NEVER,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientState {
    Idle,
    InFlight {
        record: usize,
        member: u64,
    },
    Backoff {
        record: usize,
    },
    /// Sent to a member the clients are cut off from: times out.
    Lost {
        record: usize,
    },
}

pub(super) struct Client {
    pub(super) state: ClientState,
    pub(super) next_at: u64,
    pub(super) remaining: usize,
    pub(super) leader_hint: Option<u64>,
    pub(super) last_revision: i64,
    /// What this client last saw of each key (for compare-and-swap).
    pub(super) seen: BTreeMap<Key, Option<Value>>,
    /// The lease this client holds, if any.
    pub(super) lease: Option<i64>,
    /// Revision of this client's last delete that removed a key (0: none).
    pub(super) last_delete: i64,
    /// A watch to open from this revision next: the compact revision of a
    /// compaction at a delete (its tombstone must stay in history).
    pub(super) watch_from: Option<i64>,
}

impl World {
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
            3 => {
                // Half the whole-space ranges set a limit (the answer then
                // tells only the keys up to the last one returned).
                if keys > 1 && self.rng_work.chance(0.5) {
                    let limit = 1 + self.rng_work.below(u64::from(keys) - 1) as i64;
                    self.range_limits.insert(self.history.len(), limit);
                }
                Op::Read { keys: (0..keys).collect(), linearizable: true }
            }
            4 => Op::Delete { key },
            5 => {
                let value = fresh();
                let expect = match self.clients[c].seen.get(&key) {
                    Some(seen) if self.rng_work.chance(0.8) => *seen,
                    _ => None,
                };
                Op::Cas { key, expect, value }
            }
            // Half the compactions are at the client's last delete: the
            // tombstone at the compact revision must survive (etcd #18089).
            6 if self.clients[c].last_delete > 0 && self.rng_work.chance(0.5) => {
                Op::Compact { revision: self.clients[c].last_delete }
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
            9 => self.new_query(c),
            10 => self.new_delete_range(),
            11 => Op::Txn(self.new_txn(c)),
            _ => Op::Read { keys: vec![key], linearizable: true },
        }
    }

    pub(super) fn client_act(&mut self, c: usize) {
        match self.clients[c].state {
            ClientState::Idle => {
                if self.healing || self.clients[c].remaining == 0 {
                    return;
                }
                let kind = self.rng_work.weighted(&self.cfg.mix.as_array()).unwrap_or(1);
                let watching = self.watches.iter().filter(|w| w.owner == WatchOwner::Client(c)).count();
                if kind == 7 && watching < WorkloadMix::WATCHES_PER_CLIENT {
                    self.open_client_watch(c, None);
                    self.done_at_once(c);
                    return;
                }
                // One more watch, from a compaction's delete.
                if let Some(from) = self.clients[c].watch_from.take() {
                    if watching <= WorkloadMix::WATCHES_PER_CLIENT {
                        self.open_client_watch(c, Some(from));
                        self.done_at_once(c);
                        return;
                    }
                }
                // A fifth of the lease operations ask a member for the
                // client's lease's time to live (answered locally).
                if let Some(lease) = self.clients[c].lease.filter(|_| kind == 8 && self.rng_work.chance(0.2)) {
                    let up: Vec<usize> = (0..self.members.len())
                        .filter(|&i| !self.members[i].removed && self.members[i].peer.is_some())
                        .collect();
                    if let Some(&i) = self.rng_work.pick(&up) {
                        self.probe_lease(i, lease);
                    }
                    self.done_at_once(c);
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
            ClientState::Lost { record } => {
                // The answer was lost: a write is retried under its request
                // id (if it has one), as after a timeout.
                if !self.history[record].op.is_read() && self.retry_same_id(c, record) {
                    return;
                }
                let outcome = if self.history[record].op.is_read() { Outcome::NotApplied } else { Outcome::Unknown };
                self.finish_op(c, record, outcome);
            }
            ClientState::InFlight { .. } => {}
        }
    }

    /// Client `c` finished an operation without a round trip (a watch
    /// opened, a lease's time to live asked).
    fn done_at_once(&mut self, c: usize) {
        self.stats.ops_ok += 1;
        let client = &mut self.clients[c];
        client.remaining -= 1;
        let (lo, hi) = self.cfg.think;
        client.next_at = self.now + self.rng_work.between(lo, hi).max(1);
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
        // A retry under the same request id goes to the member that gave
        // the id (it alone completes it).
        let same_id = self.same_id_retries.get(&record).copied();
        let member = match same_id {
            Some((member, _)) => member,
            None => {
                let ids = self.client_ids();
                match self.clients[c].leader_hint {
                    Some(l) if ids.contains(&l) && self.rng_work.chance(0.75) => l,
                    _ => *self.rng_work.pick(&ids).unwrap_or(&1),
                }
            }
        };
        let Some(i) = self.index_of(member) else { return };
        let m = &mut self.members[i];
        let Some(peer) = m.peer.as_mut().filter(|_| !m.retired) else {
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
        // Cut off from the clients: the request reaches the member or not,
        // and its answer is lost either way.
        let cut = self.client_cut.get(&member).is_some_and(|&until| until > self.now);
        if cut {
            self.stats.requests_cut += 1;
            self.clients[c].state = ClientState::Lost { record };
            self.clients[c].next_at = self.now + self.cfg.request_timeout_ticks * TICK;
            if self.rng_work.chance(0.5) {
                return;
            }
        }
        let write = match &rec.op {
            Op::Read { keys, linearizable } => {
                let mut req =
                    if keys.len() == 1 { RangeRequest::key(key_bytes(keys[0])) } else { RangeRequest::prefix("k") };
                if let Some(&limit) = self.range_limits.get(&record) {
                    req.limit = limit;
                }
                if !linearizable {
                    req = req.serializable();
                }
                // Deterministic (no draw from the rng): every other record.
                let barrier = self.cfg.barrier_reads
                    && *linearizable
                    && keys.len() == 1
                    && !self.range_limits.contains_key(&record)
                    && record.is_multiple_of(2);
                if barrier {
                    self.barrier_reads.insert(record, req);
                    peer.read_barrier(token);
                } else {
                    peer.read(req, token);
                }
                None
            }
            Op::Range { keys, query } => {
                peer.read(range_request(keys, query), token);
                None
            }
            Op::Put { key, value } => Some(raft_kv::Op::Put(PutRequest::new(key_bytes(*key), value.to_string()))),
            Op::Delete { key } => Some(raft_kv::Op::DeleteRange(DeleteRangeRequest::key(key_bytes(*key)))),
            Op::DeleteRange { keys, prev_kv } => Some(raft_kv::Op::DeleteRange(delete_range_request(keys, *prev_kv))),
            Op::Cas { key, expect, value } => {
                let cmp = match expect {
                    Some(e) => Compare::value(key_bytes(*key), CompareResult::Equal, e.to_string()),
                    None => Compare::version(key_bytes(*key), CompareResult::Equal, 0),
                };
                let txn = TxnRequest::new()
                    .when(cmp)
                    .and_then(PutRequest::new(key_bytes(*key), value.to_string()))
                    .or_else(RangeRequest::key(key_bytes(*key)));
                Some(raft_kv::Op::Txn(txn))
            }
            Op::Compact { revision } => {
                Some(raft_kv::Op::Compact(CompactionRequest { revision: *revision, physical: false }))
            }
            Op::LeaseGrant { ttl } => Some(raft_kv::Op::LeaseGrant(LeaseGrantRequest { ttl: *ttl, id: 0 })),
            Op::LeasePut { lease, value } => {
                let put = PutRequest { lease: *lease, ..PutRequest::new(lease_key_bytes(*value), value.to_string()) };
                Some(raft_kv::Op::Put(put))
            }
            Op::Txn(txn) => Some(raft_kv::Op::Txn(txn_request(txn))),
            Op::LeaseKeepAlive { lease } => Some(raft_kv::Op::LeaseKeepAlive(LeaseKeepAliveRequest { id: *lease })),
            Op::LeaseRevoke { lease } => Some(raft_kv::Op::LeaseRevoke(raft_kv::LeaseRevoke::new(*lease))),
        };
        if let Some(write) = write {
            match same_id {
                Some((_, id)) => {
                    self.stats.same_id_retries += 1;
                    peer.propose_retry(write, id, token)
                }
                None => {
                    let before = peer.last_request_id();
                    peer.propose(write, token);
                    let id = peer.last_request_id().filter(|id| Some(*id) != before);
                    if let Some(id) = id {
                        self.request_ids.insert(record, (member, id));
                    }
                }
            }
        }
        if !cut {
            self.clients[c].state = ClientState::InFlight { record, member };
        }
    }

    /// After a timeout or a lost connection: most times (4 in 5) a client
    /// retries a plain write under the request id it was given (the outcome
    /// is then unknown however the retry ends, unless it succeeds); true if
    /// it does.
    fn retry_same_id(&mut self, c: usize, record: usize) -> bool {
        let retriable = matches!(
            self.history[record].op,
            Op::Put { .. } | Op::Delete { .. } | Op::Cas { .. } | Op::DeleteRange { .. } | Op::Txn(_)
        );
        let Some(&key) = self.request_ids.get(&record).filter(|_| retriable) else { return false };
        if self.healing || !self.rng_work.chance(0.8) {
            return false;
        }
        self.same_id_retries.insert(record, key);
        self.backoff(c, record, None);
        true
    }

    /// A read barrier completed at applied index `at`: the client reads the
    /// member's applied state as the server's caller thread would (a view
    /// published at `at` or later: the member's applied state now).
    fn read_after_barrier(&mut self, record: usize, at: u64) -> raft_kv::Result<Response> {
        let Some(req) = self.barrier_reads.get(&record).cloned() else {
            return Err(Error::Corruption(format!("read index {at} for #{record}, which sent no barrier")));
        };
        let member = self.history[record].member;
        let Some(peer) = self.index_of(member).and_then(|i| self.members[i].peer.as_ref()) else {
            return Err(Error::Stopped);
        };
        let applied = peer.applied_index();
        assert!(applied >= at, "member {member} answered a barrier at {at} with its applied index at {applied}");
        self.stats.barrier_reads += 1;
        peer.mvcc().view().range(&req).map(Response::Range)
    }

    pub(super) fn on_completion(&mut self, token: OpId, result: raft_kv::Result<Response>) {
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
        let result = match result {
            Ok(Response::ReadIndex(at)) => self.read_after_barrier(record, at),
            other => other,
        };
        let rec = &self.history[record];
        let is_read = rec.op.is_read();
        if matches!(result, Err(Error::Timeout | Error::Stopped)) && !is_read && self.retry_same_id(c, record) {
            return;
        }
        let rec = &self.history[record];
        match result {
            Ok(resp) => match self.observe(record, resp) {
                Ok(obs) => {
                    self.narrow_limited_read(record, &obs);
                    self.finish_op(c, record, Outcome::Ok(obs))
                }
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
            // The member refused wrong bytes from its disk: it stops.
            Err(Error::Corruption(_))
                if self.index_of(rec.member).is_some_and(|i| self.members[i].engine.corrupted()) =>
            {
                self.refused_corrupt_read(rec.member);
                self.finish_op(c, record, if is_read { Outcome::NotApplied } else { Outcome::Unknown })
            }
            Err(Error::Compacted { .. }) if matches!(rec.op, Op::Compact { .. }) => {
                self.finish_op(c, record, Outcome::Ok(Observed::Compact))
            }
            Err(Error::Compacted { .. }) if matches!(rec.op, Op::Range { query, .. } if query.revision > 0) => {
                self.stats.compacted_reads += 1;
                self.finish_op(c, record, Outcome::Ok(Observed::Compacted))
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

    /// A range cut short by its limit tells nothing of the keys after the
    /// last one it returned: they leave the operation's key list, so the
    /// checker does not read them as absent.
    fn narrow_limited_read(&mut self, record: usize, obs: &Observed) {
        let (Some(&limit), Observed::Read { kvs, .. }) = (self.range_limits.get(&record), obs) else { return };
        let Some(last) = kvs.keys().map(|&k| key_bytes(k)).max() else { return };
        if (kvs.len() as i64) < limit {
            return;
        }
        if let Op::Read { keys, .. } = &mut self.history[record].op {
            keys.retain(|&k| key_bytes(k) <= last);
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
        let keys_only = matches!(op, Op::Range { query, .. } if query.keys_only);
        let kv_obs = |kv: &raft_kv::KeyValue| -> Result<(Key, KvObs), String> {
            let key = parse_key(&kv.key).ok_or_else(|| format!("unknown key {:?}", kv.key))?;
            let value = match parse_value(&kv.value) {
                None if keys_only && kv.value.is_empty() => 0,
                v => v.ok_or_else(|| format!("unknown value {:?}", kv.value))?,
            };
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
                if let Some(&limit) = self.range_limits.get(&record) {
                    let n = r.kvs.len() as i64;
                    if n > limit || r.count < n || r.more != (r.count > n) {
                        return Err(format!(
                            "range with limit {limit} returned {n} keys, count {}, more {}",
                            r.count, r.more
                        ));
                    }
                }
                if r.kvs.windows(2).any(|w| w[0].key >= w[1].key) {
                    return Err("range keys not in ascending order".into());
                }
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
            (Op::Range { keys, query }, Response::Range(r)) => {
                let kvs = r.kvs.iter().map(kv_obs).collect::<Result<Vec<_>, _>>()?;
                check_range_shape(keys, query, &kvs, r.count, r.more)?;
                Ok(Observed::Range { revision: r.revision(), kvs, count: r.count, more: r.more })
            }
            (Op::DeleteRange { keys, prev_kv }, Response::DeleteRange(d)) => {
                let prev = d.prev_kvs.iter().map(kv_obs).collect::<Result<Vec<_>, _>>()?;
                observe_delete_range(keys, *prev_kv, d.revision(), d.deleted, prev)
            }
            (Op::Txn(txn), Response::Txn(t)) => {
                Ok(Observed::Txn { revision: t.revision(), result: observe_txn(txn, &t)? })
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
        // A write retried under its request id may have applied once,
        // however its retries ended.
        let outcome = match outcome {
            Outcome::NotApplied if self.same_id_retries.contains_key(&record) => Outcome::Unknown,
            o => o,
        };
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
                (Op::Delete { key }, Observed::Delete { revision, deleted }) => {
                    client.seen.insert(*key, None);
                    client.last_revision = client.last_revision.max(*revision);
                    if *deleted > 0 {
                        client.last_delete = *revision;
                    }
                }
                (Op::Compact { revision }, Observed::Compact) if *revision == client.last_delete => {
                    client.watch_from = Some(*revision);
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
                (Op::Range { query, .. }, Observed::Range { revision, .. }) if query.revision == 0 => {
                    client.last_revision = client.last_revision.max(*revision);
                }
                (Op::Range { .. }, Observed::Range { .. }) => self.stats.past_reads += 1,
                (Op::DeleteRange { keys, .. }, Observed::DeleteRange { revision, .. }) => {
                    for k in keys {
                        client.seen.insert(*k, None);
                    }
                    client.last_revision = client.last_revision.max(*revision);
                }
                (Op::Txn(_), Observed::Txn { revision, .. }) => {
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
}
