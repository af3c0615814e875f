//! [`Maintain`]: what an operator asks of the store itself — how big it is
//! and to give back the space dead data holds (etcd's `Status.dbSize`,
//! `dbSizeInUse` and `Defragment`).

use crate::Result;

/// The store's size as the engine estimates it, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbSize {
    /// Everything the store occupies (etcd's `dbSize`): what the backend
    /// quota is measured against.
    pub total: u64,
    /// The part holding live data (etcd's `dbSizeInUse`); the rest is
    /// space a [`Maintain::defragment`] can give back.
    pub in_use: u64,
}

/// Size estimates and defragmentation, beside reads and writes.
pub trait Maintain {
    /// The store's size; cheap enough to call every tick (a few property
    /// reads, no scan).
    fn db_size(&self) -> DbSize;

    /// Rewrites the whole store so deleted and overwritten data stops
    /// taking space. May take long: call it off any latency-sensitive
    /// thread. Reads and writes go on meanwhile.
    fn defragment(&self) -> Result<()>;
}
