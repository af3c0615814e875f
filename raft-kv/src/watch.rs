//! Watches: streams of the changes to a key, a range or a prefix.
//!
//! Events are produced when entries apply, on every member, so a watch on a
//! follower sees exactly the sequence a watch on the leader sees. A watch
//! that starts at a past revision first receives that history, read from
//! MVCC, then the live events, with no gap and no duplicate between the two
//! (both happen on the thread that applies).
//!
//! Delivery: one [`WatchMessage::Events`] per revision, holding every event
//! of that revision that matches (never split). A slow watcher never blocks
//! apply: each watcher has a bound on undelivered messages; when it is
//! exceeded the watcher is **cancelled** with a reason naming the revision
//! to watch again from (a resynchronising client re-watches from there and
//! gets the missed history). Cancelling is chosen over silent resync so a
//! consumer can never mistake a gap for quiet.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::Mutex;

use crate::api::{Event, RangeRequest};
use crate::engine::Engine;
use crate::mvcc::{KeyRange, Mvcc};
use crate::{Error, Result};

/// What to watch (etcd's `WatchCreateRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchRequest {
    /// First key (or the only key).
    pub key: Bytes,
    /// End of the range, exclusive; same rules as [`RangeRequest`].
    pub range_end: Bytes,
    /// First revision to report (0: only changes after now).
    pub start_revision: i64,
    /// Include each event's previous key-value.
    pub prev_kv: bool,
    /// Leave out put events.
    pub no_put: bool,
    /// Leave out delete events.
    pub no_delete: bool,
}

impl WatchRequest {
    /// Watches one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        WatchRequest { key: key.into(), ..Default::default() }
    }

    /// Watches every key starting with `prefix`.
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let r = RangeRequest::prefix(prefix);
        WatchRequest { key: r.key, range_end: r.range_end, ..Default::default() }
    }

    /// Watches `[start, end)`.
    pub fn range(start: impl Into<Bytes>, end: impl Into<Bytes>) -> Self {
        WatchRequest { key: start.into(), range_end: end.into(), ..Default::default() }
    }

    /// Starts at `revision` (replaying history from there).
    pub fn start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }

    /// Includes previous key-values.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    fn matches(&self, range: &KeyRange, ev: &Event) -> bool {
        let filtered = if ev.is_delete() { self.no_delete } else { self.no_put };
        range.contains(ev.key()) && !filtered
    }
}

/// What a watcher receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMessage {
    /// Every matching event of one revision.
    Events {
        /// The revision of the events.
        revision: i64,
        /// The events, in the order they were applied.
        events: Vec<Event>,
    },
    /// Every event up to `revision` has been delivered (sent on request).
    Progress {
        /// The store revision.
        revision: i64,
    },
    /// The watch ended; nothing follows.
    Canceled {
        /// Why.
        reason: String,
    },
}

/// The receiving end of a watch. Dropping it cancels the watch.
#[derive(Debug)]
pub struct Watcher {
    id: u64,
    rx: Receiver<WatchMessage>,
    reason: Arc<Mutex<Option<String>>>,
    ended: bool,
}

impl Watcher {
    /// The watch id (unique per member).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next message, waiting at most `timeout`. `None` on timeout or
    /// after the watch ended (its last message is a `Canceled`).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<WatchMessage> {
        if self.ended {
            return None;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(self.end()),
        }
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<WatchMessage> {
        if self.ended {
            return None;
        }
        match self.rx.try_recv() {
            Ok(m) => Some(m),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(self.end()),
        }
    }

    fn end(&mut self) -> WatchMessage {
        self.ended = true;
        let reason = self.reason.lock().take().unwrap_or_else(|| "watch closed".into());
        WatchMessage::Canceled { reason }
    }
}

struct Entry {
    req: WatchRequest,
    range: KeyRange,
    tx: Sender<WatchMessage>,
    reason: Arc<Mutex<Option<String>>>,
    /// The first revision not yet delivered.
    next_rev: i64,
}

/// The watchers of one member. Lives beside the state machine: events are
/// dispatched right after each apply batch commits.
pub struct WatchHub {
    watchers: BTreeMap<u64, Entry>,
    next_id: u64,
    /// Most undelivered messages a watcher may have before it is cancelled.
    buffer: usize,
}

impl WatchHub {
    /// A hub whose watchers may each fall `buffer` messages behind.
    pub fn new(buffer: usize) -> Self {
        WatchHub { watchers: BTreeMap::new(), next_id: 0, buffer: buffer.max(1) }
    }

    /// Number of active watchers.
    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    /// True when no watcher is active.
    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// True when some watcher wants previous values.
    pub fn wants_prev_values(&self) -> bool {
        self.watchers.values().any(|w| w.req.prev_kv)
    }

    /// Creates a watcher, first queueing the history from its start revision
    /// (which must not be compacted).
    pub fn create<E: Engine>(&mut self, req: WatchRequest, mvcc: &Mvcc<E>) -> Result<Watcher> {
        if req.key.is_empty() {
            return Err(Error::invalid("key is not provided"));
        }
        if !req.range_end.is_empty() && req.range_end[..] != [0] && req.range_end < req.key {
            return Err(Error::invalid("range_end is below key"));
        }
        if req.start_revision < 0 {
            return Err(Error::invalid("negative start revision"));
        }
        let current = mvcc.revision();
        let (tx, rx) = crossbeam_channel::unbounded();
        let range = KeyRange::new(&req.key, &req.range_end);
        let mut next_rev = current + 1;
        if req.start_revision != 0 && req.start_revision <= current {
            let history = mvcc.history(&req.key, &req.range_end, req.start_revision)?;
            for (revision, events) in group_by_revision(&history, &req, &range) {
                // The receiver is ours: this cannot fail.
                let _ = tx.send(WatchMessage::Events { revision, events });
            }
        } else if req.start_revision > current {
            next_rev = req.start_revision;
        }
        self.next_id += 1;
        let reason = Arc::new(Mutex::new(None));
        let id = self.next_id;
        self.watchers.insert(id, Entry { req, range, tx, reason: Arc::clone(&reason), next_rev });
        Ok(Watcher { id, rx, reason, ended: false })
    }

    /// Cancels watcher `id` (no-op if unknown).
    pub fn cancel(&mut self, id: u64) {
        if let Some(w) = self.watchers.remove(&id) {
            *w.reason.lock() = Some("canceled by request".into());
        }
    }

    /// Sends watcher `id` a progress notification at `revision`.
    pub fn progress(&mut self, id: u64, revision: i64) {
        if let Some(w) = self.watchers.get(&id) {
            if w.tx.send(WatchMessage::Progress { revision }).is_err() {
                self.watchers.remove(&id);
            }
        }
    }

    /// After a snapshot replaced the state machine: replays to each watcher
    /// the history it has not seen yet, or cancels it when that history was
    /// compacted away.
    pub fn resync<E: Engine>(&mut self, mvcc: &Mvcc<E>) {
        let current = mvcc.revision();
        self.watchers.retain(|_, w| {
            if w.next_rev > current {
                return true;
            }
            match mvcc.history(&w.req.key, &w.req.range_end, w.next_rev) {
                Ok(history) => {
                    for (revision, events) in group_by_revision(&history, &w.req, &w.range) {
                        if w.tx.send(WatchMessage::Events { revision, events }).is_err() {
                            return false;
                        }
                    }
                    w.next_rev = current + 1;
                    true
                }
                Err(e) => {
                    *w.reason.lock() = Some(format!("{e}; watch again"));
                    false
                }
            }
        });
    }

    /// Delivers applied events (in revision order) to every matching watcher.
    pub fn dispatch(&mut self, events: &[Event]) {
        if events.is_empty() || self.watchers.is_empty() {
            return;
        }
        let buffer = self.buffer;
        self.watchers.retain(|_, w| {
            for (revision, evs) in group_by_revision(events, &w.req, &w.range) {
                if revision < w.next_rev {
                    continue;
                }
                if w.tx.len() >= buffer {
                    *w.reason.lock() = Some(format!(
                        "watcher fell behind by more than {buffer} revisions; watch again from revision {}",
                        w.next_rev
                    ));
                    return false;
                }
                if w.tx.send(WatchMessage::Events { revision, events: evs }).is_err() {
                    return false; // the Watcher was dropped
                }
                w.next_rev = revision + 1;
            }
            true
        });
    }
}

/// The events matching `req`, grouped per revision, `prev_kv` kept only when
/// asked for.
fn group_by_revision(events: &[Event], req: &WatchRequest, range: &KeyRange) -> Vec<(i64, Vec<Event>)> {
    let mut out: Vec<(i64, Vec<Event>)> = Vec::new();
    for ev in events.iter().filter(|ev| req.matches(range, ev)) {
        let mut ev = ev.clone();
        if !req.prev_kv {
            ev.prev_kv = None;
        }
        let rev = ev.revision();
        match out.last_mut() {
            Some((r, evs)) if *r == rev => evs.push(ev),
            _ => out.push((rev, vec![ev])),
        }
    }
    out
}
