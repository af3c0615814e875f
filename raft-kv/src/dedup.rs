//! The window of recently applied command ids: a command applies at most
//! once even if its proposal was duplicated on the way to the leader.
//!
//! The window is replicated state: every member records the same ids at the
//! same indexes and so decides alike. It lives in `Cf::Meta` as
//! `req/ ‖ index (u64 BE) → id (u64 BE)`, written with each apply batch. Keyed
//! by index, records leaving the window are pruned with one range delete
//! every [`PRUNE_STEP`] entries rather than one delete per command.

use std::collections::{HashSet, VecDeque};

use crate::engine::{Cf, ReadView, WriteBatch};
use crate::{keys, Error, Result};

/// How many recently applied command ids are remembered.
pub(crate) const DEDUP_WINDOW: usize = 100_000;

/// Records that fell out of the window are deleted in steps of this many
/// indexes.
const PRUNE_STEP: u64 = 4_096;

/// Recently applied command ids, oldest first.
pub(crate) struct AppliedIds {
    by_index: VecDeque<(u64, u64)>,
    ids: HashSet<u64>,
    window: usize,
    /// Persisted records below this index are already deleted.
    pruned_below: u64,
}

impl AppliedIds {
    /// Loads the newest `window` records from the engine.
    pub(crate) fn load(view: &impl ReadView, window: usize) -> Result<Self> {
        let mut by_index = VecDeque::new();
        let end = crate::engine::prefix_end(keys::APPLIED_REQUEST_PREFIX);
        let mut bad = None;
        view.scan(Cf::Meta, keys::APPLIED_REQUEST_PREFIX, end.as_deref(), &mut |k, v| {
            let index = k.get(keys::APPLIED_REQUEST_PREFIX.len()..).and_then(|b| <[u8; 8]>::try_from(b).ok());
            match (index, <[u8; 8]>::try_from(v)) {
                (Some(index), Ok(id)) => {
                    by_index.push_back((u64::from_be_bytes(index), u64::from_be_bytes(id)));
                    true
                }
                _ => {
                    bad = Some(k.to_vec());
                    false
                }
            }
        })?;
        if let Some(k) = bad {
            return Err(Error::Corruption(format!("applied request record {k:02x?}")));
        }
        while by_index.len() > window {
            by_index.pop_front();
        }
        let ids = by_index.iter().map(|&(_, id)| id).collect();
        Ok(AppliedIds { by_index, ids, window, pruned_below: 0 })
    }

    /// Records that command `id` applied at `index` (staged in `wb`); false
    /// if it had applied before, so this copy must be skipped.
    pub(crate) fn record(&mut self, id: u64, index: u64, wb: &mut WriteBatch) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.by_index.push_back((index, id));
        wb.put(Cf::Meta, keys::applied_request_key(index), id.to_be_bytes().to_vec());
        while self.by_index.len() > self.window {
            if let Some((_, old)) = self.by_index.pop_front() {
                self.ids.remove(&old);
            }
        }
        if let Some(&(oldest, _)) = self.by_index.front() {
            if oldest >= self.pruned_below + PRUNE_STEP {
                wb.delete_range(
                    Cf::Meta,
                    keys::applied_request_key(self.pruned_below),
                    keys::applied_request_key(oldest),
                );
                self.pruned_below = oldest;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, MemEngine};

    fn count_records(e: &MemEngine) -> usize {
        let end = crate::engine::prefix_end(keys::APPLIED_REQUEST_PREFIX);
        let mut n = 0;
        e.scan(Cf::Meta, keys::APPLIED_REQUEST_PREFIX, end.as_deref(), &mut |_, _| {
            n += 1;
            true
        })
        .expect("scan");
        n
    }

    #[test]
    fn duplicates_are_refused_within_the_window_and_survive_a_reload() {
        let e = MemEngine::new();
        let mut ids = AppliedIds::load(&e, 3).expect("load");
        let mut wb = WriteBatch::new();
        assert!(ids.record(10, 1, &mut wb));
        assert!(ids.record(11, 2, &mut wb));
        assert!(!ids.record(10, 3, &mut wb), "duplicate refused");
        assert!(ids.record(12, 4, &mut wb));
        assert!(ids.record(13, 5, &mut wb));
        e.write(wb, true).expect("write");
        // The window holds 11, 12 and 13 now; 10 left it, so a late copy of
        // it would apply again, on every member alike, also after a reload.
        let mut reloaded = AppliedIds::load(&e, 3).expect("reload");
        let mut wb = WriteBatch::new();
        assert!(!reloaded.record(11, 6, &mut wb));
        assert!(!reloaded.record(12, 7, &mut wb));
        assert!(!reloaded.record(13, 8, &mut wb));
        assert!(reloaded.record(10, 9, &mut wb));
        assert!(ids.record(10, 9, &mut WriteBatch::new()));
    }

    #[test]
    fn old_records_are_pruned_in_steps() {
        let e = MemEngine::new();
        let mut ids = AppliedIds::load(&e, 100).expect("load");
        for i in 1..=(PRUNE_STEP + 200) {
            let mut wb = WriteBatch::new();
            assert!(ids.record(1_000_000 + i, i, &mut wb));
            e.write(wb, false).expect("write");
        }
        let left = count_records(&e);
        assert!(left >= 100 && left < 100 + PRUNE_STEP as usize, "{left} records left");
        let reloaded = AppliedIds::load(&e, 100).expect("reload");
        assert_eq!(reloaded.by_index, ids.by_index);
        assert_eq!(reloaded.ids, ids.ids);
    }
}
