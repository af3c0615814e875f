//! The watch driver: opening, re-opening, draining and checking the
//! clients' watches and the members' all-keys observers.

use raft_kv::{WatchMessage, WatchRequest, Watcher};

use super::World;
use crate::checker::ViolationKind;
use crate::config::TICK;
use crate::history::{Outcome, NEVER};
use crate::watches::{check_watch, check_watch_open, Truth, WatchLog};

/// Who holds a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WatchOwner {
    /// A client; re-opened on any member when its member dies.
    Client(usize),
    /// The simulator's all-keys observer of one member (the truth the
    /// watch checks use), re-opened when that member restarts.
    Observer,
}

/// One watch and its log.
pub(super) struct WatchSlot {
    pub(super) owner: WatchOwner,
    pub(super) log: WatchLog,
    pub(super) member: u64,
    pub(super) incarnation: u32,
    pub(super) handle: Option<Watcher>,
    pub(super) reopen_at: u64,
}

impl World {
    /// Opens (or re-opens) member `i`'s all-keys observer from the revision
    /// after the last it saw.
    pub(super) fn open_observer(&mut self, i: usize) {
        let id = self.members[i].id;
        let w = match self.watches.iter().position(|w| w.owner == WatchOwner::Observer && w.member == id) {
            Some(w) => w,
            None => {
                self.watches.push(WatchSlot {
                    owner: WatchOwner::Observer,
                    log: WatchLog::new(Vec::new(), 1),
                    member: id,
                    incarnation: 0,
                    handle: None,
                    reopen_at: NEVER,
                });
                self.watches.len() - 1
            }
        };
        let mut from = self.watches[w].log.last_seen() + 1;
        // Twice at most: the second time from above the compact revision
        // (a gap in this observer; other sources may cover it).
        for _ in 0..2 {
            match self.open_watch(w, i, from) {
                Err(compact) => from = compact + 1,
                Ok(()) => return,
            }
        }
    }

    /// A client opens a watch on a random member: of the workload's keys
    /// (`k`), from `from`, or else from now or from a past revision it saw.
    pub(super) fn open_client_watch(&mut self, c: usize, from: Option<i64>) {
        let ids = self.client_ids();
        let Some(&member) = self.rng_work.pick(&ids) else { return };
        let start = if let Some(from) = from {
            from
        } else if self.rng_work.chance(0.5) {
            0
        } else {
            1 + self.rng_work.below(self.clients[c].last_revision.max(0) as u64 + 1) as i64
        };
        let mut log = WatchLog::new(b"k".to_vec(), start);
        // Filters (never both: such a watch sees nothing) and prev_kv.
        match self.rng_work.below(6) {
            0 => log.no_put = true,
            1 => log.no_delete = true,
            _ => {}
        }
        log.prev_kv = self.rng_work.chance(0.4);
        self.watches.push(WatchSlot {
            owner: WatchOwner::Client(c),
            log,
            member,
            incarnation: 0,
            handle: None,
            reopen_at: NEVER,
        });
        let w = self.watches.len() - 1;
        self.stats.watches += 1;
        self.trace.event(self.now, format_args!("c{c} watches k* from {start} on m{member} (w{w})"));
        match self.index_of(member) {
            Some(i) if self.members[i].peer.is_some() => {
                // A compacted start ends the watch (checked in open_watch).
                let _ = self.open_watch(w, i, start);
            }
            _ => self.watches[w].reopen_at = self.now + TICK,
        }
    }

    /// Re-opens a client watch whose member died: on the same member if it
    /// is up again, else on a random live one.
    pub(super) fn reopen_watch(&mut self, w: usize) {
        self.watches[w].reopen_at = NEVER;
        let up: Vec<usize> = (0..self.members.len())
            .filter(|&i| !self.members[i].removed && !self.members[i].retired && self.members[i].peer.is_some())
            .collect();
        let same = up.iter().copied().find(|&i| self.members[i].id == self.watches[w].member);
        let Some(i) = same.or_else(|| self.rng_work.pick(&up).copied()) else {
            self.watches[w].reopen_at = self.now + TICK;
            return;
        };
        self.stats.watch_reopens += 1;
        let from = self.watches[w].log.last_seen() + 1;
        let _ = self.open_watch(w, i, from);
    }

    /// Opens watch `w` on member `i` from `start` (0: from now), checking
    /// that it fails with `Compacted` exactly when it must. `Err` carries
    /// the compact revision of a refused open.
    fn open_watch(&mut self, w: usize, i: usize, start: i64) -> Result<(), i64> {
        let m = &mut self.members[i];
        let (id, incarnation) = (m.id, m.incarnation);
        let Some(peer) = m.peer.as_mut() else { return Ok(()) };
        let (revision, compact) = (peer.mvcc().revision(), peer.mvcc().compact_revision());
        let slot = &mut self.watches[w];
        let mut req = if slot.log.prefix.is_empty() {
            WatchRequest::range(vec![0u8], vec![0u8])
        } else {
            WatchRequest::prefix(slot.log.prefix.clone())
        };
        req.no_put = slot.log.no_put;
        req.no_delete = slot.log.no_delete;
        req.prev_kv = slot.log.prev_kv;
        let result = peer.watch(req.start_revision(start));
        let verdict = check_watch_open(start, revision, compact, &result.as_ref().map(|_| ()).map_err(Clone::clone));
        slot.member = id;
        slot.incarnation = incarnation;
        let out = match result {
            Ok(handle) => {
                let from = if start == 0 { revision + 1 } else { start };
                if slot.log.received.is_empty() && slot.log.spans.is_empty() {
                    slot.log.start = from;
                }
                slot.log.open(from);
                slot.handle = Some(handle);
                Ok(())
            }
            Err(e) => {
                self.stats.watch_compacted += 1;
                if slot.owner != WatchOwner::Observer {
                    slot.log.ended = Some(format!("{e}"));
                }
                self.trace.event(self.now, format_args!("w{w} from {start} on m{id}: {e}"));
                Err(compact)
            }
        };
        if let Some(detail) = verdict {
            self.violate(ViolationKind::WatchCompacted, format!("w{w} on m{id}: {detail}"));
        }
        out
    }

    /// Takes every message the watches hold; a watch whose member died is
    /// re-opened (clients) or waits for the restart (observers).
    pub(super) fn drain_watches(&mut self) {
        for w in 0..self.watches.len() {
            let slot = &mut self.watches[w];
            let (member, incarnation) = (slot.member, slot.incarnation);
            let Some(handle) = slot.handle.as_mut() else { continue };
            let watch_id = handle.id();
            let mut ended = None;
            while let Some(msg) = handle.try_recv() {
                match msg {
                    WatchMessage::Events { revision, events } => {
                        if let WatchOwner::Client(_) = slot.owner {
                            self.stats.watch_messages += 1;
                        }
                        slot.log.deliver_at(revision, events, self.now);
                    }
                    WatchMessage::Progress { revision } => slot.log.progress_at(revision),
                    WatchMessage::Canceled { reason, compact_revision } => {
                        if compact_revision > 0 {
                            self.stats.watch_compacted += 1;
                        }
                        ended = Some(reason);
                        break;
                    }
                }
            }
            if let Some(reason) = ended {
                slot.handle = None;
                if let WatchOwner::Client(_) = slot.owner {
                    slot.reopen_at = self.now + 1 + self.rng_work.below(2 * TICK);
                }
                self.trace.event(self.now, format_args!("w{w} on m{member} ends: {reason}"));
                // A watch ended over a corrupt read: its member must stop.
                let corrupted = self.index_of(member).is_some_and(|i| self.members[i].engine.corrupted());
                if corrupted && reason.starts_with("corrupt data") {
                    self.refused_corrupt_read(member);
                }
                continue;
            }
            let alive = self
                .index_of(member)
                .and_then(|i| self.members[i].peer.as_ref().map(|p| (self.members[i].incarnation, p)))
                .filter(|(inc, _)| *inc == incarnation)
                .and_then(|(_, p)| p.watch_delivered(watch_id));
            // What the watcher has been given, not the member's revision: a
            // watcher catching up reads history off the member's thread.
            if let Some(revision) = alive {
                self.watches[w].log.cover(revision);
                // Now and then a client asks for a progress notification.
                if matches!(self.watches[w].owner, WatchOwner::Client(_)) && self.rng_work.chance(0.02) {
                    if let Some(peer) = self.index_of(member).and_then(|i| self.members[i].peer.as_mut()) {
                        peer.watch_progress(watch_id);
                        self.stats.progress_requests += 1;
                    }
                }
            }
        }
    }

    /// The watch checks (see [`crate::watches`]): the truth from every
    /// observer and the MVCC history of the members `sources`, then each
    /// watch. With `strict` (converged members) a history that cannot be
    /// read is a violation; otherwise (a run that stopped early, whose
    /// members may hold a corrupt read or a failed disk) that member is
    /// only left out of the truth.
    pub(super) fn check_watches(&mut self, sources: &[usize], strict: bool) {
        self.drain_watches();
        let mut truth = Truth::default();
        truth.compacted_to = self
            .history
            .iter()
            .filter_map(|r| match (&r.op, &r.outcome) {
                (crate::history::Op::Compact { revision }, Outcome::Ok(_) | Outcome::Unknown) => Some(*revision),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        for slot in self.watches.iter().filter(|s| s.owner == WatchOwner::Observer) {
            for &(from, to) in &slot.log.spans {
                let events =
                    slot.log.received.iter().filter(|(r, _)| (from..=to).contains(r)).flat_map(|(_, e)| e.clone());
                truth.add_source(&format!("observer of m{}", slot.member), (from, to), events.collect());
            }
        }
        for &i in sources {
            let Some(p) = &self.members[i].peer else { continue };
            let mvcc = p.mvcc();
            let from = mvcc.compact_revision() + 1;
            match mvcc.history(&[0], &[0], from) {
                Ok(events) => {
                    truth.add_source(&format!("history of m{}", self.members[i].id), (from, mvcc.revision()), events)
                }
                Err(e) if strict => {
                    self.violate(ViolationKind::CoreError, format!("m{} history: {e}", self.members[i].id))
                }
                Err(e) => self.trace.event(self.now, format_args!("m{} history left out: {e}", self.members[i].id)),
            }
        }
        for detail in std::mem::take(&mut truth.violations) {
            self.violate(ViolationKind::EventHistory, detail);
        }
        let mut found = Vec::new();
        for (w, slot) in self.watches.iter().enumerate() {
            for detail in check_watch(&slot.log, &truth) {
                found.push(format!("w{w} ({:?} of {:?}, on m{}): {detail}", slot.owner, slot.log.prefix, slot.member));
            }
        }
        for detail in found.into_iter().take(5) {
            self.violate(ViolationKind::Watch, detail);
        }
    }
}
