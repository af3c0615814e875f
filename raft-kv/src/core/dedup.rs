//! The window of recently applied command ids: a command applies at most
//! once even if its proposal was duplicated on the way to the leader.
//!
//! The window is replicated state: every member records the same ids at the
//! same indexes and so decides alike. It lives in `Cf::Meta` as
//! `req/ ‖ index (u64 BE) → member (u64 BE) ‖ id (u64 BE)` (records of older
//! releases hold the id alone: member 0), written with each apply batch. A
//! command is known by its proposer *and* id, so two members' ids never
//! collide. Keyed
//! by index, records leaving the window are pruned with one range delete
//! every `PRUNE_STEP` entries rather than one delete per command.

use std::collections::{HashSet, VecDeque};

use crate::engine::{Cf, ReadView, WriteBatch};
use crate::{keys, Error, Result};

/// How many recently applied command ids are remembered.
pub(crate) const DEDUP_WINDOW: usize = 100_000;

/// Records that fell out of the window are deleted in steps of this many
/// indexes.
const PRUNE_STEP: u64 = 4_096;

/// A command's cluster-unique key: proposing member and request id.
pub(crate) type RequestKey = (u64, u64);

/// Recently applied command ids, oldest first.
pub(crate) struct AppliedIds {
    by_index: VecDeque<(u64, RequestKey)>,
    ids: HashSet<RequestKey>,
    window: usize,
    /// Persisted records below this index are already deleted.
    pruned_below: u64,
}

impl AppliedIds {
    /// Loads the newest `window` records from the engine.
    pub(crate) fn load(view: &impl ReadView, window: usize) -> Result<Self> {
        let mut by_index = VecDeque::new();
        let end = crate::engine::prefix_end(keys::APPLIED_REQUEST_PREFIX);
        view.try_scan(Cf::Meta, keys::APPLIED_REQUEST_PREFIX, end.as_deref(), &mut |k, v| {
            let index = k.get(keys::APPLIED_REQUEST_PREFIX.len()..).and_then(|b| <[u8; 8]>::try_from(b).ok());
            let key = match v.len() {
                8 => <[u8; 8]>::try_from(v).ok().map(|id| (0, u64::from_be_bytes(id))),
                16 => match (<[u8; 8]>::try_from(&v[..8]), <[u8; 8]>::try_from(&v[8..])) {
                    (Ok(m), Ok(id)) => Some((u64::from_be_bytes(m), u64::from_be_bytes(id))),
                    _ => None,
                },
                _ => None,
            };
            let (Some(index), Some(key)) = (index, key) else {
                return Err(Error::Corruption(format!("applied request record {k:02x?}")));
            };
            by_index.push_back((u64::from_be_bytes(index), key));
            Ok(true)
        })?;
        while by_index.len() > window {
            by_index.pop_front();
        }
        let ids = by_index.iter().map(|&(_, id)| id).collect();
        Ok(AppliedIds { by_index, ids, window, pruned_below: 0 })
    }

    /// Records that command `key` applied at `index` (staged in `wb`);
    /// false if it had applied before, so this copy must be skipped.
    pub(crate) fn record(&mut self, key: RequestKey, index: u64, wb: &mut WriteBatch) -> bool {
        if !self.ids.insert(key) && !crate::mutation::active("dedup-removed") {
            return false;
        }
        self.by_index.push_back((index, key));
        let mut value = key.0.to_be_bytes().to_vec();
        value.extend_from_slice(&key.1.to_be_bytes());
        if !crate::mutation::active("dedup-not-persisted") {
            wb.put(Cf::Meta, keys::applied_request_key(index), value);
        }
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
        assert!(ids.record((1, 10), 1, &mut wb));
        assert!(ids.record((1, 11), 2, &mut wb));
        assert!(!ids.record((1, 10), 3, &mut wb), "duplicate refused");
        assert!(ids.record((1, 12), 4, &mut wb));
        assert!(ids.record((1, 13), 5, &mut wb));
        e.write(wb, true).expect("write");
        // The window holds 11, 12 and 13 now; 10 left it, so a late copy of
        // it would apply again, on every member alike, also after a reload.
        let mut reloaded = AppliedIds::load(&e, 3).expect("reload");
        let mut wb = WriteBatch::new();
        assert!(!reloaded.record((1, 11), 6, &mut wb));
        assert!(!reloaded.record((1, 12), 7, &mut wb));
        assert!(!reloaded.record((1, 13), 8, &mut wb));
        assert!(reloaded.record((1, 10), 9, &mut wb));
        assert!(ids.record((1, 10), 9, &mut WriteBatch::new()));
    }

    #[test]
    fn ids_of_different_members_never_collide_and_old_records_load() {
        let e = MemEngine::new();
        let mut ids = AppliedIds::load(&e, 10).expect("load");
        let mut wb = WriteBatch::new();
        // Members 0x1_0001 and 0x2_0001 share their low 16 bits.
        assert!(ids.record((0x1_0001, 7), 1, &mut wb));
        assert!(ids.record((0x2_0001, 7), 2, &mut wb), "another member's request 7 is a different request");
        // A record of an older release: the id alone.
        wb.put(Cf::Meta, keys::applied_request_key(3), 99u64.to_be_bytes().to_vec());
        e.write(wb, true).expect("write");
        let mut reloaded = AppliedIds::load(&e, 10).expect("reload");
        let mut wb = WriteBatch::new();
        assert!(!reloaded.record((0x2_0001, 7), 4, &mut wb));
        assert!(!reloaded.record((0, 99), 5, &mut wb), "old record kept as member 0");
        assert!(reloaded.record((0x1_0001, 99), 6, &mut wb));
    }

    #[test]
    fn old_records_are_pruned_in_steps() {
        let e = MemEngine::new();
        let mut ids = AppliedIds::load(&e, 100).expect("load");
        for i in 1..=(PRUNE_STEP + 200) {
            let mut wb = WriteBatch::new();
            assert!(ids.record((1, 1_000_000 + i), i, &mut wb));
            e.write(wb, false).expect("write");
        }
        let left = count_records(&e);
        assert!(left >= 100 && left < 100 + PRUNE_STEP as usize, "{left} records left");
        let reloaded = AppliedIds::load(&e, 100).expect("reload");
        assert_eq!(reloaded.by_index, ids.by_index);
        assert_eq!(reloaded.ids, ids.ids);
    }
}
