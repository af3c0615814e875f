//! Physical compaction: the [`KeepRule`] deciding which stored versions a
//! compaction drops, and the [`Compaction`] job that deletes them.

use super::encoding::{decode_key, Record};
use super::Mvcc;
use crate::engine::{Cf, Engine, ReadView, WriteBatch};
use crate::Result;

impl<E: Engine> Mvcc<E> {
    /// The physical part of the compactions committed so far, if any: a job
    /// to run on any thread (see [`Compaction`]). Its deletes come after the
    /// commit that recorded the compact revision, so a crash can never keep
    /// them without it.
    pub fn take_compaction(&mut self) -> Option<Compaction<E>> {
        if self.overlay.is_empty() && self.committed_compact_revision == self.compact_revision {
            let revision = self.pending_compaction.take()?;
            return Some(Compaction { engine: self.engine.clone(), view: self.engine.snapshot(), revision });
        }
        None
    }
}

/// Which stored versions a compaction at `revision` drops. Per key (versions
/// come newest first): every version above `revision` stays, and so does the
/// newest one at or below it unless that is a tombstone *below* it; the
/// rest go. A tombstone *at* the compact revision stays (until a later
/// compaction) so a watch from the compact revision still sees that delete
/// (etcd issue 18089, fixed the same way; found by the simulator).
pub(crate) struct KeepRule {
    revision: i64,
    key: Option<Vec<u8>>,
    kept: bool,
}

impl KeepRule {
    pub(crate) fn new(revision: i64) -> Self {
        KeepRule { revision, key: None, kept: false }
    }

    /// Feed every version in storage order; true if this one is dropped.
    pub(crate) fn drops(&mut self, user_key: &[u8], version_rev: i64, record: &[u8]) -> Result<bool> {
        if self.key.as_deref() != Some(user_key) {
            self.key = Some(user_key.to_vec());
            self.kept = false;
        }
        if version_rev > self.revision {
            return Ok(false);
        }
        let tombstone_below = if crate::mutation::active("compaction-drops-tombstone") {
            version_rev <= self.revision
        } else {
            version_rev < self.revision
        };
        let drop = self.kept
            || (tombstone_below && Record::is_tombstone(record)?)
            || (crate::mutation::active("compaction-drops-kept-version") && version_rev < self.revision);
        self.kept = true;
        Ok(drop)
    }
}

/// The physical part of a compaction: deletes the versions a compaction at
/// `revision` dropped, scanning a snapshot view taken after that compaction
/// was committed. Safe to run on any thread alongside new writes (it only
/// deletes versions at or below the compact revision, which are never
/// written again), and to lose in a crash (the next compaction's scan
/// covers whatever is left).
pub struct Compaction<E: Engine> {
    engine: E,
    view: E::Snapshot,
    revision: i64,
}

impl<E: Engine> std::fmt::Debug for Compaction<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compaction").field("revision", &self.revision).finish_non_exhaustive()
    }
}

impl<E: Engine> Compaction<E> {
    /// Versions deleted per engine batch (a key's versions never split).
    pub(super) const BATCH: usize = 4_096;

    /// The compact revision this job completes.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Deletes the dropped versions in batches of unsynced writes; returns
    /// how many were deleted. All of one key's dropped versions go in one
    /// batch, so a read never sees an older version uncovered by the
    /// deletion of a newer one.
    pub fn run(self) -> Result<usize> {
        self.run_until(&|| false)
    }

    /// [`Compaction::run`], stopping between batches once `stop()` says so
    /// (a member shutting down); what is left waits for the next compaction.
    pub fn run_until(self, stop: &dyn Fn() -> bool) -> Result<usize> {
        let mut keep = KeepRule::new(self.revision);
        let mut batch = WriteBatch::new();
        let mut deleted = 0;
        let mut failed = None;
        self.view.try_scan(Cf::Kv, b"", None, &mut |k, v| {
            let (user, rev) = decode_key(k)?;
            let new_key = keep.key.as_deref() != Some(&user[..]);
            if new_key && batch.len() >= Self::BATCH {
                if stop() {
                    return Ok(false);
                }
                deleted += batch.len();
                if let Err(e) = self.engine.write(batch.take(), false) {
                    failed = Some(e);
                    return Ok(false);
                }
            }
            if keep.drops(&user, rev, v)? {
                batch.delete(Cf::Kv, k.to_vec());
            }
            Ok(true)
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if !batch.is_empty() && !stop() {
            deleted += batch.len();
            self.engine.write(batch, false)?;
        }
        Ok(deleted)
    }
}
