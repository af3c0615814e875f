//! Watch checks: what each watch delivered, against the history the members
//! applied.
//!
//! A [`WatchLog`] is everything one watch delivered, across re-opens (a
//! watch dies with its member; the client re-opens it from the last
//! revision it saw + 1, on the same member or another). Its *spans* are
//! the revision intervals it is known to cover completely: from the start
//! revision of one open to the member's applied revision at the last time
//! the simulator drained the watcher while it was alive (events are
//! dispatched synchronously when a batch applies, so by then every event up
//! to that revision was sent).
//!
//! The truth is built the same way from *observers* — one all-keys watch
//! per member, pinned to it — and from each current member's MVCC history
//! above its compact revision at the end of the run ([`Truth`]). Sources
//! that cover the same revision must agree exactly (that is also a
//! cross-member check of the applied history). A revision's events are
//! compared in the order they came: a txn's writes share a revision, and
//! live delivery, history replay and the MVCC history all give them in the
//! order the txn applied them (etcd's sub-revisions). Each client watch must
//! then deliver revisions in strictly increasing order (no duplicates), each
//! revision's events must be exactly the truth's events of that revision
//! under the watch's prefix, in that order, and no revision of the truth
//! with such events may be missing inside the watch's spans (no gaps).
//!
//! Nothing here needs the run to have converged: spans hold only what a
//! member said it had delivered, and the truth only what its sources
//! covered, so on a run that stopped early the checks judge the prefix each
//! watch delivered against the history that can be proven.
//!
//! ```
//! use raft_kv::{Event, EventType, KeyValue};
//! use sim::watches::{check_watch, Truth, WatchLog};
//!
//! let put = |key: &str, rev: i64| Event {
//!     r#type: EventType::Put as i32,
//!     kv: Some(KeyValue { key: key.as_bytes().to_vec().into(), mod_revision: rev, ..Default::default() }),
//!     prev_kv: None,
//! };
//! let mut truth = Truth::default();
//! truth.add_source("m1", (2, 4), vec![put("k1", 2), put("k2", 3), put("k1", 4)]);
//! assert!(truth.violations.is_empty());
//! // A watch on "k" from revision 2 that missed revision 3: a gap.
//! let mut w = WatchLog::new("k", 2);
//! w.open(2);
//! w.deliver(2, vec![put("k1", 2)]);
//! w.deliver(4, vec![put("k1", 4)]);
//! w.cover(4);
//! assert!(!check_watch(&w, &truth).is_empty());
//! ```

use std::collections::BTreeMap;

use raft_kv::Event;

/// What one watch delivered. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchLog {
    /// The watched prefix (empty: every key).
    pub prefix: Vec<u8>,
    /// The first start revision.
    pub start: i64,
    /// Every `Events` message, in delivery order: (revision, events).
    pub received: Vec<(i64, Vec<Event>)>,
    /// Virtual time of each delivery (parallel to `received`).
    pub received_at: Vec<u64>,
    /// Revision intervals known to be covered completely.
    pub spans: Vec<(i64, i64)>,
    /// Why the watch ended for good, if it did.
    pub ended: Option<String>,
    /// Put events left out (`NOPUT`).
    pub no_put: bool,
    /// Delete events left out (`NODELETE`).
    pub no_delete: bool,
    /// Events carry the previous key-value.
    pub prev_kv: bool,
    /// `received.len()` at each open: the messages of one open follow it.
    pub opens: Vec<usize>,
    /// Progress notifications: `received.len()` when each came, and its
    /// revision.
    pub progress: Vec<(usize, i64)>,
}

impl WatchLog {
    /// A watch of `prefix` that starts at revision `start`.
    pub fn new(prefix: impl Into<Vec<u8>>, start: i64) -> Self {
        WatchLog {
            prefix: prefix.into(),
            start,
            received: Vec::new(),
            received_at: Vec::new(),
            spans: Vec::new(),
            ended: None,
            no_put: false,
            no_delete: false,
            prev_kv: false,
            opens: Vec::new(),
            progress: Vec::new(),
        }
    }

    /// The highest revision delivered, or `start - 1`.
    pub fn last_seen(&self) -> i64 {
        self.received.last().map_or(self.start - 1, |(r, _)| *r)
    }

    /// Records an open (or re-open) at `from`.
    pub fn open(&mut self, from: i64) {
        self.spans.push((from, from - 1));
        self.opens.push(self.received.len());
    }

    /// Records a progress notification at `revision`.
    pub fn progress_at(&mut self, revision: i64) {
        self.progress.push((self.received.len(), revision));
    }

    /// Records a delivered message.
    pub fn deliver(&mut self, revision: i64, events: Vec<Event>) {
        self.deliver_at(revision, events, 0);
    }

    /// Records a message delivered at virtual time `now`.
    pub fn deliver_at(&mut self, revision: i64, events: Vec<Event>, now: u64) {
        self.received.push((revision, events));
        self.received_at.push(now);
    }

    /// Records that the current open covers every revision up to `revision`.
    pub fn cover(&mut self, revision: i64) {
        if let Some(span) = self.spans.last_mut() {
            span.1 = span.1.max(revision);
        }
    }

    fn matches(&self, ev: &Event) -> bool {
        let filtered = if ev.is_delete() { self.no_delete } else { self.no_put };
        !filtered && ev.kv.as_ref().is_some_and(|kv| kv.key.starts_with(&self.prefix))
    }
}

/// The applied history as the observers and the members' MVCC saw it: the
/// events of every covered revision, every key.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// Events per covered revision (empty: a revision known to have none).
    events: BTreeMap<i64, (Vec<Event>, String)>,
    /// Disagreements between sources.
    pub violations: Vec<String>,
    /// The highest revision a compaction may have compacted to (an
    /// event at or below it may lack its previous key-value, as in etcd).
    pub compacted_to: i64,
}

fn strip(ev: &Event) -> Event {
    Event { prev_kv: None, ..ev.clone() }
}

impl Truth {
    /// Adds a source named `name` covering `span` completely with `events`
    /// (every key). Disagreements with earlier sources are recorded.
    pub fn add_source(&mut self, name: &str, span: (i64, i64), events: Vec<Event>) {
        let mut by_rev: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
        for ev in &events {
            let rev = ev.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            by_rev.entry(rev).or_default().push(strip(ev));
        }
        for rev in span.0.max(1)..=span.1 {
            let evs = by_rev.remove(&rev).unwrap_or_default();
            match self.events.get(&rev) {
                Some((known, by)) if *known != evs => {
                    if self.violations.len() < 5 {
                        self.violations.push(format!(
                            "revision {rev}: {by} saw {} events, {name} saw {}: {known:?} vs {evs:?}",
                            known.len(),
                            evs.len()
                        ));
                    }
                }
                Some(_) => {}
                None => {
                    self.events.insert(rev, (evs, name.to_string()));
                }
            }
        }
    }

    /// The events of `revision`, if it is covered.
    pub fn at(&self, revision: i64) -> Option<&[Event]> {
        self.events.get(&revision).map(|(e, _)| e.as_slice())
    }

    /// Every covered revision with events, in order.
    pub fn revisions(&self) -> impl Iterator<Item = (i64, &[Event])> {
        self.events.iter().filter(|(_, (e, _))| !e.is_empty()).map(|(r, (e, _))| (*r, e.as_slice()))
    }
}

/// Checks one watch against the truth; returns what is wrong.
pub fn check_watch(w: &WatchLog, truth: &Truth) -> Vec<String> {
    let mut out = Vec::new();
    let mut prev = w.start - 1;
    let mut got: BTreeMap<i64, &Vec<Event>> = BTreeMap::new();
    for (rev, events) in &w.received {
        if *rev <= prev {
            out.push(format!("revision {rev} delivered after revision {prev} (out of order or duplicate)"));
        }
        prev = prev.max(*rev);
        if events.is_empty() || events.iter().any(|e| !w.matches(e)) {
            out.push(format!("revision {rev}: empty or outside the prefix: {events:?}"));
        }
        got.insert(*rev, events);
    }
    for (rev, events) in &got {
        if let Some(known) = truth.at(*rev) {
            let want: Vec<Event> = known.iter().filter(|e| w.matches(e)).cloned().collect();
            let have: Vec<Event> = events.iter().map(strip).collect();
            if want != have {
                out.push(format!("revision {rev}: delivered {have:?}, the history has {want:?}"));
            }
        }
    }
    out.extend(check_prev_kvs(w, truth));
    out.extend(check_progress(w));
    for &(from, to) in &w.spans {
        for (rev, known) in truth.revisions() {
            if rev < from || rev > to || got.contains_key(&rev) {
                continue;
            }
            if known.iter().any(|e| w.matches(e)) {
                out.push(format!("revision {rev} missing (gap) inside covered span {from}..={to}"));
                break;
            }
        }
    }
    out.truncate(5);
    out
}

/// Checks the previous key-values a watch delivered: present exactly when
/// asked for and the key existed before the event (every delete; a put of
/// version > 1), the key's version just before (same key and create
/// revision, version one less, an earlier mod revision), and the very put
/// the truth has at that revision when it covers it.
fn check_prev_kvs(w: &WatchLog, truth: &Truth) -> Vec<String> {
    let mut out = Vec::new();
    for ev in w.received.iter().flat_map(|(_, e)| e) {
        let Some(kv) = &ev.kv else { continue };
        let existed = ev.is_delete() || kv.version > 1;
        let prev = match (&ev.prev_kv, w.prev_kv && existed) {
            (None, false) => continue,
            (None, true) if kv.mod_revision <= truth.compacted_to => continue,
            (Some(prev), true) => prev,
            (prev, _) => {
                out.push(format!("event {ev:?}: prev_kv {prev:?} (asked for: {})", w.prev_kv));
                continue;
            }
        };
        let version_ok = ev.is_delete() || prev.version + 1 == kv.version;
        let create_ok = ev.is_delete() || prev.create_revision == kv.create_revision;
        if prev.key != kv.key || prev.mod_revision >= kv.mod_revision || !version_ok || !create_ok {
            out.push(format!("event {ev:?}: prev_kv is not the key's previous version"));
            continue;
        }
        let known = truth.at(prev.mod_revision).map(|evs| {
            evs.iter().any(|e| !e.is_delete() && e.kv.as_ref().is_some_and(|k| k.key == prev.key && k == prev))
        });
        if known == Some(false) {
            out.push(format!("event {ev:?}: prev_kv {prev:?} is not the put the history has there"));
        }
    }
    out
}

/// Checks every progress notification against the messages of the same
/// open: at or above every revision delivered before it, and below every
/// revision delivered after it (a notification says all before it came).
fn check_progress(w: &WatchLog) -> Vec<String> {
    let mut out = Vec::new();
    for &(at, revision) in &w.progress {
        let start = w.opens.iter().copied().filter(|&o| o <= at).max().unwrap_or(0);
        let end = w.opens.iter().copied().find(|&o| o > at).unwrap_or(w.received.len());
        let (before, after) =
            (w.received.get(start..at).unwrap_or_default(), w.received.get(at..end).unwrap_or_default());
        if let Some((seen, _)) = before.iter().find(|(r, _)| *r > revision) {
            out.push(format!("progress at revision {revision} after revision {seen} was delivered"));
        }
        if let Some((next, _)) = after.iter().find(|(r, _)| *r <= revision) {
            out.push(format!("progress at revision {revision}, then revision {next} was delivered"));
        }
    }
    out
}

/// Checks the answer to opening a watch at `start` on a member at
/// `revision` with compact revision `compact`: it must fail with
/// `Compacted` exactly when history from `start` is gone.
///
/// ```
/// use raft_kv::Error;
/// use sim::watches::check_watch_open;
/// let compacted = Err(Error::Compacted { requested: 3, compact_revision: 5 });
/// assert!(check_watch_open(3, 9, 5, &compacted).is_none());
/// assert!(check_watch_open(3, 9, 5, &Ok(())).is_some());
/// assert!(check_watch_open(6, 9, 5, &compacted).is_some());
/// ```
pub fn check_watch_open(start: i64, revision: i64, compact: i64, result: &raft_kv::Result<()>) -> Option<String> {
    let gone = start != 0 && start <= revision && start < compact;
    match (gone, result) {
        (true, Err(raft_kv::Error::Compacted { compact_revision, .. })) if *compact_revision == compact => None,
        (false, Ok(())) => None,
        (_, r) => {
            Some(format!("watch from revision {start} (member at {revision}, compacted at {compact}) answered {r:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use raft_kv::{EventType, KeyValue};

    use super::*;

    fn put(key: &str, rev: i64) -> Event {
        let kv = KeyValue { key: key.as_bytes().to_vec().into(), mod_revision: rev, ..Default::default() };
        Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: None }
    }

    /// A txn's events are compared in the order they came: the txn put
    /// "k2" before "k1", so a watch that delivers them in key order is
    /// wrong, and two sources that disagree on the order disagree.
    #[test]
    fn a_revisions_events_keep_their_order() {
        let mut truth = Truth::default();
        truth.add_source("m1", (2, 2), vec![put("k2", 2), put("k1", 2)]);
        let mut w = WatchLog::new("k", 2);
        w.open(2);
        w.deliver(2, vec![put("k2", 2), put("k1", 2)]);
        w.cover(2);
        assert!(check_watch(&w, &truth).is_empty());
        let mut sorted = WatchLog::new("k", 2);
        sorted.open(2);
        sorted.deliver(2, vec![put("k1", 2), put("k2", 2)]);
        sorted.cover(2);
        assert!(!check_watch(&sorted, &truth).is_empty());
        truth.add_source("m2", (2, 2), vec![put("k1", 2), put("k2", 2)]);
        assert_eq!(truth.violations.len(), 1, "{:?}", truth.violations);
    }
}
