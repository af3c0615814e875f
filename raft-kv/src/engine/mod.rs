//! The storage seam: everything above this module sees only [`Engine`].
//!
//! An engine is an ordered key-value store split into column families
//! ([`Cf`]), with atomic [`WriteBatch`]es that are either synced (durable when
//! `write` returns) or not, and point-in-time read views.
//!
//! Durability contract, shared by both engines: a synced write makes itself
//! *and every earlier write* durable (RocksDB's write-ahead log is shared by all
//! column families; [`MemEngine`] models the same). raft-kv relies on this:
//! state-machine batches are written unsynced and become durable with the next
//! synced raft-log write.

mod checksum;
mod maintain;
mod mem;
mod rocks;

pub use checksum::{crc32, CHECKSUM_BYTES};
pub use maintain::{DbSize, Maintain};
pub use mem::{DiskFault, MemEngine, MemSnapshot};
pub use rocks::RocksEngine;

use crate::Result;

/// A column family: a separate key space of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// The raft log: entries, hard state, conf state, truncation point.
    Raft,
    /// The MVCC key-value history.
    Kv,
    /// State-machine metadata written with each apply batch (applied index,
    /// revision, compact revision, conf state, members).
    Meta,
    /// Leases: id → granted TTL.
    Lease,
    /// Chunks of a snapshot being received, until it is installed.
    Staging,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 5] = [Cf::Raft, Cf::Kv, Cf::Meta, Cf::Lease, Cf::Staging];

    /// The column family's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Raft => "raft",
            Cf::Kv => "kv",
            Cf::Meta => "meta",
            Cf::Lease => "lease",
            Cf::Staging => "staging",
        }
    }

    /// The column families holding the replicated state machine (what a raft
    /// snapshot carries).
    pub const STATE_MACHINE: [Cf; 3] = [Cf::Kv, Cf::Meta, Cf::Lease];
}

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Set `key` to `value`.
    Put {
        /// Column family.
        cf: Cf,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// Column family.
        cf: Cf,
        /// Key.
        key: Vec<u8>,
    },
    /// Remove every key in `[start, end)`.
    DeleteRange {
        /// Column family.
        cf: Cf,
        /// First key removed.
        start: Vec<u8>,
        /// First key kept.
        end: Vec<u8>,
    },
}

/// A set of writes applied atomically: all or none survive a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
    bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        self.bytes += key.len() + value.len();
        self.ops.push(WriteOp::Put { cf, key, value });
    }

    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        let key = key.into();
        self.bytes += key.len();
        self.ops.push(WriteOp::Delete { cf, key });
    }

    /// Adds a range delete of `[start, end)`.
    pub fn delete_range(&mut self, cf: Cf, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) {
        let (start, end) = (start.into(), end.into());
        self.bytes += start.len() + end.len();
        self.ops.push(WriteOp::DeleteRange { cf, start, end });
    }

    /// Appends all operations of `other`, keeping their order.
    pub fn extend(&mut self, other: WriteBatch) {
        self.bytes += other.bytes;
        self.ops.extend(other.ops);
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Approximate payload size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// Takes the operations out, leaving the batch empty.
    pub fn take(&mut self) -> WriteBatch {
        std::mem::take(self)
    }
}

/// A scan visitor that may fail: gets each key and value, returns
/// `Ok(false)` to stop, an error to stop and fail the scan.
pub type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// Read access to an engine or to a point-in-time view of one.
pub trait ReadView {
    /// The value stored at `key`, if any.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits the keys of `cf` in `[start, end)` (to the end of the family
    /// when `end` is `None`) in ascending order. The visitor returns `false`
    /// to stop early.
    fn scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool)
        -> Result<()>;

    /// [`ReadView::scan`] with a visitor that may fail (a record that does
    /// not decode): the first error stops the scan and is returned.
    fn try_scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, visit: &mut Visitor<'_>) -> Result<()> {
        let mut failure = None;
        self.scan(cf, start, end, &mut |k, v| match visit(k, v) {
            Ok(go_on) => go_on,
            Err(e) => {
                failure = Some(e);
                false
            }
        })?;
        failure.map_or(Ok(()), Err)
    }
}

/// A storage engine: ordered column families, atomic batches, snapshots,
/// and [`Maintain`] (size estimates, defragmentation).
///
/// Engines are cheap handles (`Clone` shares the same store).
pub trait Engine: ReadView + Maintain + Clone + Send + Sync + 'static {
    /// A consistent read-only view frozen at the moment it was taken.
    type Snapshot: ReadView + Send + Sync + 'static;

    /// Applies `batch` atomically. With `sync`, the batch and every earlier
    /// write are durable when this returns.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()>;

    /// A point-in-time view of the whole store.
    fn snapshot(&self) -> Self::Snapshot;
}

/// Returns the smallest key strictly greater than every key starting with
/// `prefix`, or `None` when no such key exists (the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_non_ff_byte() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
