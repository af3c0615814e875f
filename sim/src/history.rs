//! The recorded client history: every operation with its invocation and
//! completion time (virtual) and what it observed.
//!
//! Keys are small integers (`k0`, `k1`, ... on the wire) and every write
//! carries a value unique to the run, so an observed value names the write
//! that produced it.

use std::collections::BTreeMap;
use std::fmt;

/// A key of the workload's key space (`k{n}` on the wire).
pub type Key = u32;

/// A value unique to one write of the run (decimal on the wire; 0 is never
/// used).
pub type Value = u64;

/// A completion time meaning "never completed": the outcome is unknown.
pub const NEVER: u64 = u64::MAX;

/// The wire form of key `k`.
pub fn key_bytes(k: Key) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

/// The wire form of the leased key holding `value` (`l{value}`: one key per
/// attach, outside the register model's `k` keys).
pub fn lease_key_bytes(value: Value) -> Vec<u8> {
    format!("l{value}").into_bytes()
}

/// The key a wire key names, if it is one of the workload's.
pub fn parse_key(bytes: &[u8]) -> Option<Key> {
    std::str::from_utf8(bytes.strip_prefix(b"k")?).ok()?.parse().ok()
}

/// The value a wire value names, if it is one of the workload's.
pub fn parse_value(bytes: &[u8]) -> Option<Value> {
    std::str::from_utf8(bytes).ok()?.parse().ok().filter(|v| *v != 0)
}

/// A client operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Put `value` at `key`.
    Put {
        /// The key.
        key: Key,
        /// Its new, unique value.
        value: Value,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: Key,
    },
    /// Compare-and-swap in one txn: if `key` holds `expect` (`None`: the key
    /// does not exist) put `value`, else read the key.
    Cas {
        /// The key.
        key: Key,
        /// The value expected (`None`: absent).
        expect: Option<Value>,
        /// The new, unique value.
        value: Value,
    },
    /// Read `keys` in one range request (one key, or the whole key space).
    Read {
        /// Every key the range covers.
        keys: Vec<Key>,
        /// Linearizable (ReadIndex) or serializable (local).
        linearizable: bool,
    },
    /// A range with options ([`Query`]) over `keys`, at the current
    /// revision or a past one; linearizable.
    Range {
        /// Every key the range covers, in key (byte) order.
        keys: Vec<Key>,
        /// The options.
        query: Query,
    },
    /// Delete every key of `keys` (one contiguous key range) in one
    /// request.
    DeleteRange {
        /// Every key the range covers.
        keys: Vec<Key>,
        /// Ask for the deleted key-values.
        prev_kv: bool,
    },
    /// A multi-op txn, possibly nested ([`Txn`]).
    Txn(Txn),
    /// Compact history up to `revision`.
    Compact {
        /// The compaction revision.
        revision: i64,
    },
    /// Grant a lease of `ttl` seconds.
    LeaseGrant {
        /// Requested TTL in seconds.
        ttl: i64,
    },
    /// Put `value` at the fresh key `l{value}`, attached to `lease`.
    LeasePut {
        /// The lease.
        lease: i64,
        /// The value (and key name).
        value: Value,
    },
    /// Renew `lease`.
    LeaseKeepAlive {
        /// The lease.
        lease: i64,
    },
    /// Revoke `lease` (deleting its keys).
    LeaseRevoke {
        /// The lease.
        lease: i64,
    },
}

impl Op {
    /// Whether the operation only reads (a failed read is definitely not
    /// applied).
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Read { .. } | Op::Range { .. })
    }

    /// The lease a lease operation names (not a grant's: it has none yet).
    pub fn lease(&self) -> Option<i64> {
        match self {
            Op::LeasePut { lease, .. } | Op::LeaseKeepAlive { lease } | Op::LeaseRevoke { lease } => Some(*lease),
            _ => None,
        }
    }
}

/// What a txn compare looks at, and the operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpTarget {
    /// The value (a missing key fails every value compare, as in etcd).
    Value(Value),
    /// The version (0: missing).
    Version(i64),
    /// The mod revision (0: missing).
    Mod(i64),
    /// The create revision (0: missing).
    Create(i64),
}

/// One compare of a txn: `key`'s `target` against its operand, by
/// `order` (`Equal`, `Greater`: target above operand, `Less`, or
/// `NotEqual`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmp {
    /// The key.
    pub key: Key,
    /// What is compared, with the operand.
    pub target: CmpTarget,
    /// The comparison.
    pub order: std::cmp::Ordering,
    /// Negated (`NotEqual` when `order` is `Equal`).
    pub not: bool,
}

impl Cmp {
    /// Evaluates the compare on the key's full state (`None`: missing).
    pub fn holds(&self, kv: Option<&KvObs>) -> bool {
        let have = match (self.target, kv) {
            (CmpTarget::Value(_), None) => return false,
            (CmpTarget::Value(v), Some(kv)) => kv.value.to_string().cmp(&v.to_string()),
            (CmpTarget::Version(n), kv) => kv.map_or(0, |k| k.version).cmp(&n),
            (CmpTarget::Mod(n), kv) => kv.map_or(0, |k| k.mod_revision).cmp(&n),
            (CmpTarget::Create(n), kv) => kv.map_or(0, |k| k.create_revision).cmp(&n),
        };
        (have == self.order) != self.not
    }
}

/// One operation of a txn branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Put a unique value.
    Put(Key, Value),
    /// Delete the key.
    Delete(Key),
    /// Read the key.
    Get(Key),
    /// A nested txn.
    Txn(Box<Txn>),
}

/// A txn: if every compare holds run `then`, else `otherwise`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// The compares.
    pub compares: Vec<Cmp>,
    /// The success branch.
    pub then: Vec<TxnOp>,
    /// The failure branch.
    pub otherwise: Vec<TxnOp>,
}

/// What one executed txn operation answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResult {
    /// A put.
    Put,
    /// A delete, and how many keys it deleted.
    Delete(i64),
    /// A read: the key-value, or missing.
    Get(Option<KvObs>),
    /// A nested txn.
    Txn(TxnResult),
}

/// What a txn answered: the branch taken and each of its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether every compare held.
    pub succeeded: bool,
    /// The taken branch's results, in order.
    pub results: Vec<TxnOpResult>,
}

/// What a range sorts by (etcd's sort targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// The key.
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value (bytes).
    Value,
}

/// The options of an [`Op::Range`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// At most this many keys (0: no limit).
    pub limit: i64,
    /// The sort target and order (`None`: etcd's default, ascending keys).
    pub sort: Option<(SortBy, bool)>,
    /// Only the count.
    pub count_only: bool,
    /// Key-values without values.
    pub keys_only: bool,
    /// Mod revision filter (0: none), inclusive.
    pub min_mod: i64,
    /// See `min_mod`.
    pub max_mod: i64,
    /// Create revision filter (0: none), inclusive.
    pub min_create: i64,
    /// See `min_create`.
    pub max_create: i64,
    /// Read at this past revision (0: the current one).
    pub revision: i64,
}

impl Query {
    /// Whether a revision filter is set (keys it leaves out may exist).
    pub fn filtered(&self) -> bool {
        self.min_mod != 0 || self.max_mod != 0 || self.min_create != 0 || self.max_create != 0
    }

    /// Whether `kv` passes the revision filters.
    pub fn admits(&self, kv: &KvObs) -> bool {
        let within = |min: i64, max: i64, v: i64| (min == 0 || v >= min) && (max == 0 || v <= max);
        within(self.min_mod, self.max_mod, kv.mod_revision)
            && within(self.min_create, self.max_create, kv.create_revision)
    }
}

/// A key's state as a read saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KvObs {
    /// The value (names the write).
    pub value: Value,
    /// The key's version.
    pub version: i64,
    /// The revision of the write.
    pub mod_revision: i64,
    /// The revision that created the key.
    pub create_revision: i64,
}

/// What a successful operation observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A put applied at `revision`.
    Put {
        /// Header revision (the put's revision).
        revision: i64,
    },
    /// A delete applied.
    Delete {
        /// Header revision.
        revision: i64,
        /// Keys deleted (0 or 1).
        deleted: i64,
    },
    /// A compare-and-swap applied.
    Cas {
        /// Header revision.
        revision: i64,
        /// Whether the compare held (and the put happened).
        succeeded: bool,
        /// On failure: the key's state as the failure branch read it.
        current: Option<KvObs>,
    },
    /// A read.
    Read {
        /// Header revision: the state the read saw.
        revision: i64,
        /// The keys present, by key; keys of the op missing here were absent.
        kvs: BTreeMap<Key, KvObs>,
    },
    /// A range with options answered.
    Range {
        /// Header revision.
        revision: i64,
        /// The key-values returned, in response order (value 0 with
        /// `keys_only`).
        kvs: Vec<(Key, KvObs)>,
        /// The response's count.
        count: i64,
        /// The response's `more`.
        more: bool,
    },
    /// A read at a past revision refused as compacted.
    Compacted,
    /// A multi-op txn applied.
    Txn {
        /// Header revision (every write of the txn is at it).
        revision: i64,
        /// The answer.
        result: TxnResult,
    },
    /// A multi-key delete applied.
    DeleteRange {
        /// Header revision.
        revision: i64,
        /// Keys deleted.
        deleted: i64,
        /// The deleted key-values (with `prev_kv`).
        prev: Vec<(Key, KvObs)>,
    },
    /// A compaction applied (or was refused as already compacted).
    Compact,
    /// A lease granted.
    LeaseGranted {
        /// Its id.
        id: i64,
        /// Its TTL in seconds.
        ttl: i64,
    },
    /// A keep-alive applied.
    LeaseKept,
    /// A revoke applied.
    LeaseRevoked {
        /// Header revision (the keys' deletion, if it had keys).
        revision: i64,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still running.
    Pending,
    /// Succeeded with this observation.
    Ok(Observed),
    /// Definitely not applied (every attempt was refused, or a read failed).
    NotApplied,
    /// Timed out or lost to a crash: may or may not have applied.
    Unknown,
}

/// One operation of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The client that issued it (`usize::MAX`: the harness's final reads).
    pub client: usize,
    /// The operation.
    pub op: Op,
    /// Virtual time of invocation.
    pub invoke: u64,
    /// Virtual time of completion ([`NEVER`] while pending or unknown).
    pub complete: u64,
    /// The outcome.
    pub outcome: Outcome,
    /// The member that served the last attempt (0: none yet).
    pub member: u64,
    /// That member's incarnation (restart count) when it served it.
    pub incarnation: u32,
    /// Attempts made (retries after a definite refusal).
    pub attempts: u32,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let complete = if self.complete == NEVER { "inf".to_string() } else { self.complete.to_string() };
        write!(
            f,
            "[{}..{}] c{} {:?} -> {:?} (m{}#{}, {} attempts)",
            self.invoke, complete, self.client, self.op, self.outcome, self.member, self.incarnation, self.attempts
        )
    }
}
