//! Watches: streams of the changes to a key, a range or a prefix.
//!
//! Events are produced when entries apply, on every member, so a watch on a
//! follower sees exactly the sequence a watch on the leader sees. A watch
//! that starts at a past revision first receives that history, read from
//! MVCC, then the live events, with no gap and no duplicate between the two
//! (both happen on the thread that applies).
//!
//! Delivery: one [`WatchMessage::Events`] per revision, holding every event
//! of that revision that matches (never split). A [`Watcher`] is read as a
//! `futures` stream or with blocking [`Watcher::recv_timeout`]; no thread
//! is spent per watch.
//!
//! A slow watcher never blocks apply or other watchers, and is not dropped
//! for being slow: it does what etcd's watchers do. Each watcher holds at
//! most `watch_buffer` undelivered messages. When it is full, the watcher
//! becomes *unsynced*: live events pass it by and it remembers the first
//! revision it has not received. Once its consumer has drained half the
//! buffer, [`WatchHub::catch_up`] (run on every tick) asks for the missed
//! revisions, at most the free room at a time: a [`Window`] that the peer
//! reads from an engine snapshot off its thread (a `HistoryJob`) and hands
//! back to [`WatchHub::history_read`]. Windows follow each other until the
//! watcher is level with the store and takes live events again. Only if
//! that history has been compacted away meanwhile is the watcher cancelled,
//! with the compact revision ([`WatchMessage::Canceled`]), as etcd cancels
//! a watcher whose next revision was compacted. A watch starting at a past
//! revision catches up the same way, so its history is never held whole in
//! memory either.
//!
//! # History to live: the hand-off contract
//!
//! A watcher's `next_rev` is the first revision it has not been given.
//! Live events reach only *synced* watchers, and a watcher is synced only
//! when `next_rev` is the store's revision + 1 at a point between apply
//! batches. An unsynced watcher has at most one window `[next_rev, until]`
//! in flight, with `until` at most the store's revision when it was asked
//! for (the snapshot it is read from is taken later, so it holds it). Live
//! events pass it by meanwhile. When the window comes back — on the
//! applying thread, between batches — its messages are queued, `next_rev`
//! becomes `until + 1`, and the watcher turns synced only if that is the
//! store's revision + 1 *now*; otherwise the next window covers what was
//! applied while this one was read. So every revision reaches a watcher
//! exactly once: from history up to `until`, live after it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use crate::api::{Event, RangeRequest};
use crate::core::mvcc::{KeyRange, Mvcc};
use crate::core::reads::HistoryRead;
use crate::engine::Engine;
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
        range.contains(ev.key()) && (!filtered || crate::mutation::active("watch-filter-ignored"))
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
        /// When the watch ended because the history it still needed was
        /// compacted: the compact revision (watch again from there); else 0.
        compact_revision: i64,
    },
}

/// The queue between the hub (on the applying thread) and a [`Watcher`].
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    messages: VecDeque<WatchMessage>,
    /// The hub has let go: after `messages`, the watch is over.
    closed: bool,
    /// The [`Watcher`] was dropped: the hub removes the entry.
    dropped: bool,
    waker: Option<Waker>,
}

impl Queue {
    fn new() -> Arc<Self> {
        Arc::new(Queue {
            state: Mutex::new(QueueState { messages: VecDeque::new(), closed: false, dropped: false, waker: None }),
            ready: Condvar::new(),
        })
    }

    /// Appends `msg`; false when the watcher is gone.
    fn push(&self, msg: WatchMessage) -> bool {
        let waker = {
            let mut s = self.state.lock();
            if s.dropped {
                return false;
            }
            s.messages.push_back(msg);
            s.waker.take()
        };
        self.ready.notify_one();
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Ends the watch with `msg` as its last message (no-op once ended).
    fn close(&self, msg: WatchMessage) {
        let waker = {
            let mut s = self.state.lock();
            if s.closed {
                return;
            }
            s.messages.push_back(msg);
            s.closed = true;
            s.waker.take()
        };
        self.ready.notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn len(&self) -> usize {
        self.state.lock().messages.len()
    }

    fn is_dropped(&self) -> bool {
        self.state.lock().dropped
    }
}

/// The receiving end of a watch: a `futures` [`Stream`](futures_core::Stream)
/// of [`WatchMessage`]s, or read with [`Watcher::recv_timeout`] and
/// [`Watcher::try_recv`]. Its last message is a [`WatchMessage::Canceled`].
/// Dropping it cancels the watch.
pub struct Watcher {
    id: u64,
    queue: Arc<Queue>,
    ended: bool,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("id", &self.id).field("ended", &self.ended).finish()
    }
}

impl Watcher {
    /// The watch id (unique per member).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Runs `f` when the watcher is dropped (the node uses it to remove the
    /// watch from its member at once).
    pub(crate) fn on_drop(&mut self, f: impl FnOnce() + Send + 'static) {
        self.on_drop = Some(Box::new(f));
    }

    fn take(&mut self, s: &mut QueueState) -> Option<WatchMessage> {
        let msg = s.messages.pop_front();
        if msg.is_none() && s.closed {
            // Closed without a final message: cannot happen, but end cleanly.
            self.ended = true;
            return Some(WatchMessage::Canceled { reason: "watch closed".into(), compact_revision: 0 });
        }
        if s.closed && s.messages.is_empty() {
            self.ended = true;
        }
        msg
    }

    /// The next message, waiting at most `timeout`. `None` on timeout or
    /// after the watch ended.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<WatchMessage> {
        if self.ended {
            return None;
        }
        let deadline = Instant::now() + timeout;
        let queue = Arc::clone(&self.queue);
        let mut s = queue.state.lock();
        loop {
            if let Some(m) = self.take(&mut s) {
                return Some(m);
            }
            if queue.ready.wait_until(&mut s, deadline).timed_out() {
                return self.take(&mut s);
            }
        }
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<WatchMessage> {
        if self.ended {
            return None;
        }
        let queue = Arc::clone(&self.queue);
        let mut s = queue.state.lock();
        self.take(&mut s)
    }
}

impl futures_core::Stream for Watcher {
    type Item = WatchMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchMessage>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let queue = Arc::clone(&self.queue);
        let mut s = queue.state.lock();
        match self.take(&mut s) {
            Some(m) => Poll::Ready(Some(m)),
            None => {
                match &s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.queue.state.lock().dropped = true;
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

struct Entry {
    req: WatchRequest,
    range: KeyRange,
    queue: Arc<Queue>,
    /// The first revision not yet delivered.
    next_rev: i64,
    /// Fell behind: live events pass it by until [`WatchHub::catch_up`]
    /// has read the missed revisions from history.
    unsynced: bool,
    /// A window of history is being read for it.
    fetching: bool,
}

/// A window `[from, until]` of a watcher's history the hub asks for (see
/// the module docs); the peer reads it off its thread.
#[derive(Debug, Clone)]
pub struct Window {
    /// The watcher.
    pub watch: u64,
    /// Its `next_rev`.
    pub from: i64,
    /// The last revision to read (at most the store's revision).
    pub until: i64,
    /// What it watches.
    pub req: WatchRequest,
}

impl Entry {
    fn cancel(&self, reason: String, compact_revision: i64) {
        self.queue.close(WatchMessage::Canceled { reason, compact_revision });
    }
}

impl Drop for Entry {
    /// A watch the hub lets go of without a reason (its member stopped or
    /// crashed) still ends with a `Canceled`, so its reader can watch again
    /// elsewhere.
    fn drop(&mut self) {
        self.cancel("watch closed: the member stopped".into(), 0);
    }
}

/// The watchers of one member. Lives beside the state machine: events are
/// dispatched right after each apply batch commits.
///
/// Every operation is cheap in the number of watchers: watchers of a single
/// key are found from an index by key, so an applied event costs a lookup
/// plus a test per range watcher, and creating or cancelling a watch costs
/// a map insert or removal (the counts below are kept as watchers come and
/// go, never recomputed by a scan).
pub struct WatchHub {
    watchers: BTreeMap<u64, Entry>,
    /// Single-key watchers by their key.
    by_key: BTreeMap<Bytes, BTreeSet<u64>>,
    /// Watchers of a range or prefix.
    ranged: BTreeSet<u64>,
    next_id: u64,
    /// Most undelivered messages a watcher holds before it becomes unsynced.
    buffer: usize,
    /// The unsynced watchers (so `catch_up` visits only them).
    unsynced: BTreeSet<u64>,
    /// Number of watchers that asked for previous key-values.
    with_prev_kv: usize,
    /// Windows asked for and not yet taken by the peer.
    windows: Vec<Window>,
}

impl WatchHub {
    /// A hub whose watchers may each hold `buffer` undelivered messages.
    pub fn new(buffer: usize) -> Self {
        WatchHub {
            watchers: BTreeMap::new(),
            by_key: BTreeMap::new(),
            ranged: BTreeSet::new(),
            next_id: 0,
            buffer: buffer.max(2),
            unsynced: BTreeSet::new(),
            with_prev_kv: 0,
            windows: Vec::new(),
        }
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
        self.with_prev_kv > 0
    }

    /// Adds a watcher, keeping the index and counts.
    fn insert(&mut self, id: u64, entry: Entry) {
        if entry.req.range_end.is_empty() {
            self.by_key.entry(entry.req.key.clone()).or_default().insert(id);
        } else {
            self.ranged.insert(id);
        }
        if entry.unsynced {
            self.unsynced.insert(id);
        }
        self.with_prev_kv += usize::from(entry.req.prev_kv);
        self.watchers.insert(id, entry);
    }

    /// Removes a watcher, keeping the index and counts: the one way out.
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let w = self.watchers.remove(&id)?;
        if w.req.range_end.is_empty() {
            if let Some(ids) = self.by_key.get_mut(&w.req.key) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_key.remove(&w.req.key);
                }
            }
        } else {
            self.ranged.remove(&id);
        }
        self.unsynced.remove(&id);
        self.with_prev_kv -= usize::from(w.req.prev_kv);
        Some(w)
    }

    /// Creates a watcher. A start revision in the past must not be
    /// compacted; its history is then delivered by catching up, whose
    /// first window is asked for at once.
    pub fn create<E: Engine>(&mut self, req: WatchRequest, mvcc: &Mvcc<E>) -> Result<Watcher> {
        if req.key.is_empty() {
            return Err(crate::error::InvalidRequest::KeyNotProvided.into());
        }
        if !req.range_end.is_empty() && req.range_end[..] != [0] && req.range_end < req.key {
            return Err(Error::invalid("range_end is below key"));
        }
        if req.start_revision < 0 {
            return Err(Error::invalid("negative start revision"));
        }
        let current = mvcc.revision();
        let mut next_rev = current + 1;
        let mut unsynced = false;
        if req.start_revision != 0 && req.start_revision <= current {
            if req.start_revision < mvcc.compact_revision() {
                return Err(Error::Compacted {
                    requested: req.start_revision,
                    compact_revision: mvcc.compact_revision(),
                });
            }
            next_rev = req.start_revision;
            unsynced = true;
        } else if req.start_revision > current {
            next_rev = req.start_revision;
        }
        self.next_id += 1;
        let id = self.next_id;
        let queue = Queue::new();
        let range = KeyRange::new(&req.key, &req.range_end);
        let entry = Entry { req, range, queue: Arc::clone(&queue), next_rev, unsynced, fetching: false };
        self.insert(id, entry);
        if unsynced {
            self.catch_up_one(id, current);
        }
        Ok(Watcher { id, queue, ended: false, on_drop: None })
    }

    /// Cancels watcher `id` (no-op if unknown).
    pub fn cancel(&mut self, id: u64) {
        if let Some(w) = self.remove(id) {
            w.cancel("canceled by request".into(), 0);
        }
    }

    /// Sends watcher `id` a progress notification at `revision` (the
    /// store's current revision), once everything before it was delivered;
    /// an unsynced watcher gets none (etcd skips those too).
    pub fn progress(&mut self, id: u64, revision: i64) {
        let Some(w) = self.watchers.get(&id) else { return };
        if w.unsynced {
            return;
        }
        let revision = revision + i64::from(crate::mutation::active("progress-too-high"));
        if !w.queue.push(WatchMessage::Progress { revision }) {
            self.remove(id);
        }
    }

    /// After a snapshot replaced the state machine: every watcher that has
    /// not seen the new revisions catches up from the new history (or is
    /// cancelled if that history was compacted away).
    pub fn resync<E: Engine>(&mut self, mvcc: &Mvcc<E>) {
        let current = mvcc.revision();
        for (id, w) in self.watchers.iter_mut() {
            if w.next_rev <= current && !w.unsynced {
                w.unsynced = true;
                self.unsynced.insert(*id);
            }
        }
        self.catch_up(mvcc);
    }

    /// Asks for the next window of history of every unsynced watcher
    /// whose consumer has drained half its buffer, at most its free room of
    /// revisions. Called on every tick (and after a snapshot install),
    /// between apply batches; free when all are synced.
    pub fn catch_up<E: Engine>(&mut self, mvcc: &Mvcc<E>) {
        if self.unsynced.is_empty() {
            return;
        }
        let current = mvcc.revision();
        let ids: Vec<u64> = self.unsynced.iter().copied().collect();
        for id in ids {
            self.catch_up_one(id, current);
        }
    }

    /// The revision through which watcher `id` has been given every event
    /// (queued for its reader) when the store is at `current`: `current`
    /// for a synced watcher, the revision before its next window for an
    /// unsynced one. `None` for an unknown watcher.
    pub fn delivered_through(&self, id: u64, current: i64) -> Option<i64> {
        let w = self.watchers.get(&id)?;
        Some(if w.unsynced { w.next_rev - 1 } else { current })
    }

    /// The windows asked for since the last call, for the peer to read.
    pub fn take_windows(&mut self) -> Vec<Window> {
        std::mem::take(&mut self.windows)
    }

    /// True when windows wait to be taken.
    pub fn has_windows(&self) -> bool {
        !self.windows.is_empty()
    }

    /// A window read from history came back; `current` is the store's
    /// revision now (between apply batches). Queues its messages and moves
    /// the watcher on: synced if it is level with the store, else the next
    /// window is asked for (see the module docs for why nothing is lost or
    /// repeated). A compacted window cancels the watcher as etcd does; a
    /// window not read (the readers were busy) is asked for again later.
    pub fn history_read(&mut self, read: HistoryRead, current: i64) {
        let HistoryRead { watch: id, from, until, events } = read;
        let Some(w) = self.watchers.get_mut(&id) else { return };
        if !w.fetching || w.next_rev != from {
            return; // not the window this watcher waits for
        }
        w.fetching = false;
        match events {
            None => {}
            Some(Ok(messages)) => {
                for (revision, events) in messages {
                    if !w.queue.push(WatchMessage::Events { revision, events }) {
                        self.remove(id); // the Watcher was dropped
                        return;
                    }
                }
                w.next_rev = until + 1;
                self.catch_up_one(id, current);
            }
            Some(Err(Error::Compacted { compact_revision, .. })) => {
                w.cancel(
                    format!(
                        "etcdserver: mvcc: required revision has been compacted; watch again from revision {compact_revision}"
                    ),
                    compact_revision,
                );
                self.remove(id);
            }
            Some(Err(e)) => {
                w.cancel(format!("{e}; watch again from revision {}", w.next_rev), 0);
                self.remove(id);
            }
        }
    }

    /// Moves unsynced watcher `id` on at store revision `current`: synced
    /// when level with it, else asks for its next window once its consumer
    /// has room (nothing while a window is in flight).
    fn catch_up_one(&mut self, id: u64, current: i64) {
        let Some(w) = self.watchers.get_mut(&id) else { return };
        if !w.unsynced || w.fetching {
            return;
        }
        if w.queue.is_dropped() {
            self.remove(id);
            return;
        }
        if w.next_rev > current {
            w.unsynced = false;
            self.unsynced.remove(&id);
            return;
        }
        let queued = w.queue.len();
        if queued > self.buffer / 2 {
            return; // wait for the consumer
        }
        // At most one message per revision: a window of `room` revisions
        // can never overfill the buffer.
        let room = (self.buffer - queued) as i64;
        let until = w.next_rev.saturating_add(room - 1).min(current);
        w.fetching = true;
        self.windows.push(Window { watch: id, from: w.next_rev, until, req: w.req.clone() });
    }

    /// Delivers applied events (in revision order) to every synced,
    /// matching watcher; a watcher whose buffer is full becomes unsynced.
    pub fn dispatch(&mut self, events: &[Event]) {
        if events.is_empty() || self.watchers.is_empty() {
            return;
        }
        // Which events concern which watcher: single-key watchers by lookup,
        // range watchers by test.
        let mut hits: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
        for ev in events {
            if crate::mutation::active("watch-drops-events")
                && ev.kv.as_ref().is_some_and(|kv| kv.mod_revision % 7 == 0)
            {
                continue;
            }
            for id in self.by_key.get(ev.key()).into_iter().flatten() {
                hits.entry(*id).or_default().push(ev);
            }
            for id in &self.ranged {
                if self.watchers.get(id).is_some_and(|w| w.range.contains(ev.key())) {
                    hits.entry(*id).or_default().push(ev);
                }
            }
        }
        let buffer = self.buffer;
        let mut gone = Vec::new();
        for (id, evs) in hits {
            let Some(w) = self.watchers.get_mut(&id) else { continue };
            if w.unsynced {
                continue;
            }
            for (revision, evs) in group_by_revision(evs, &w.req, &w.range, w.next_rev, i64::MAX) {
                if w.queue.len() >= buffer {
                    w.unsynced = true;
                    self.unsynced.insert(id);
                    if w.queue.is_dropped() {
                        gone.push(id);
                    }
                    break;
                }
                if !w.queue.push(WatchMessage::Events { revision, events: evs }) {
                    gone.push(id); // the Watcher was dropped
                    break;
                }
                w.next_rev = revision + 1;
            }
        }
        for id in gone {
            self.remove(id);
        }
    }
}

/// [`group_by_revision`] for a window read from history.
pub(crate) fn history_window(history: &[Event], req: &WatchRequest, from: i64, until: i64) -> Vec<(i64, Vec<Event>)> {
    let range = KeyRange::new(&req.key, &req.range_end);
    group_by_revision(history, req, &range, from, until)
}

/// The events matching `req` with revisions in `[from, until]`, grouped per
/// revision, `prev_kv` kept only when asked for.
fn group_by_revision<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    req: &WatchRequest,
    range: &KeyRange,
    from: i64,
    until: i64,
) -> Vec<(i64, Vec<Event>)> {
    let mut out: Vec<(i64, Vec<Event>)> = Vec::new();
    let in_window = |ev: &&Event| (from..=until).contains(&ev.revision());
    for ev in events.into_iter().filter(in_window).filter(|ev| req.matches(range, ev)) {
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
