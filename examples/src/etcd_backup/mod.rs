//! etcd 3.5's snapshot file, in both directions: [`write_snapshot`] lays
//! out a raft-kv member's state as etcd's backend database (a bbolt file,
//! see [`crate::bbolt`]) and [`read_snapshot`] loads one into a new
//! member's store.
//!
//! The layout is what etcd 3.5.1 writes (read from a real one's snapshot):
//! top-level buckets `alarm`, `auth` (`authEnabled`, `authRevision`),
//! `authRoles` and `authUsers` (`authpb` records by name), `cluster`
//! (`clusterVersion`), `key`, `lease`, `members` (JSON by hex id),
//! `members_removed` (`removed` by hex id) and `meta` (`confState`, `consistent_index`, `term`,
//! `scheduledCompactRev`, `finishedCompactRev`). Under `key`, each version
//! of each key sits at its *revision key*: the 8-byte big-endian main
//! revision, `_`, the 8-byte sub revision, and a trailing `t` for a
//! deletion; its value is an `mvccpb.KeyValue`. A lease is its 8-byte
//! big-endian id and a `leasepb.Lease`. A snapshot file is the database
//! followed by the SHA-256 of it.

mod read;
mod write;

pub use read::{read_snapshot, verify_hash, Restored};
pub use write::write_snapshot;

/// The etcd cluster version a raft-kv snapshot records.
pub const CLUSTER_VERSION: &str = "3.5.0";

/// Length of a revision key (without the deletion mark).
const REV_KEY_LEN: usize = 17;
/// The mark after a deletion's revision key.
const TOMBSTONE_MARK: u8 = b't';

/// The `auth` bucket's enabled flag (one byte, 1 for on).
const AUTH_ENABLED: &[u8] = b"authEnabled";
/// The `auth` bucket's revision (a big-endian u64).
const AUTH_REVISION: &[u8] = b"authRevision";
/// The value etcd puts under a removed member's id in `members_removed`.
const REMOVED_MARK: &[u8] = b"removed";

/// A member's key in `members` and `members_removed`: its id in hex,
/// without leading zeros (etcd's `types.ID` string).
fn member_key(id: u64) -> String {
    format!("{id:x}")
}

/// etcd's `leasepb.Lease`.
#[derive(Clone, PartialEq, prost::Message)]
struct Lease {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
    #[prost(int64, tag = "3")]
    remaining_ttl: i64,
}

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bbolt layer: the file is damaged or not bbolt.
    #[error("{0}")]
    Bbolt(#[from] crate::bbolt::Error),
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The member's store refused or failed.
    #[error("{0}")]
    Store(#[from] raft_kv::Error),
    /// The file is bbolt but not an etcd snapshot we can load.
    #[error("{0}")]
    Snapshot(String),
}

/// The result type of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// A revision key: main revision, `_`, sub revision (and `t` if deleted).
fn rev_key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(REV_KEY_LEN + 1);
    k.extend_from_slice(&main.to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&sub.to_be_bytes());
    if tombstone {
        k.push(TOMBSTONE_MARK);
    }
    k
}

/// A revision key's parts: main revision, sub revision and whether it
/// marks a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RevKey {
    main: i64,
    sub: i64,
    tombstone: bool,
}

/// The parts of a revision key (both revisions at most `i64::MAX`).
fn parse_rev_key(k: &[u8]) -> Option<RevKey> {
    let tombstone = match k.len() {
        REV_KEY_LEN => false,
        18 if k[REV_KEY_LEN] == TOMBSTONE_MARK => true,
        _ => return None,
    };
    if k[8] != b'_' {
        return None;
    }
    let main = i64::try_from(u64::from_be_bytes(k[..8].try_into().ok()?)).ok()?;
    let sub = i64::try_from(u64::from_be_bytes(k[9..REV_KEY_LEN].try_into().ok()?)).ok()?;
    Some(RevKey { main, sub, tombstone })
}

#[cfg(test)]
mod tests;
