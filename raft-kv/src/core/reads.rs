//! Reads a peer hands off its thread: [`RangeJob`]s (client ranges) and
//! [`HistoryJob`]s (windows of watch history), each over an engine snapshot
//! the peer took at its applied state, to run anywhere, later.
//!
//! A range job completes its caller itself. A history job's result,
//! [`HistoryRead`], goes back to the peer ([`crate::core::peer::Peer::history_read`]),
//! which delivers the window to its watcher on its own thread — the one
//! place watchers move between history and live events.

use std::sync::Arc;

use crate::api::{Event, RangeRequest};
use crate::command::Response;
use crate::core::mvcc::MvccView;
use crate::core::ready::Completion;
use crate::core::watch::WatchRequest;
use crate::engine::ReadView;
use crate::{Error, Result};

/// A client range to serve from a view (shared by every read the peer
/// serves in one step: one engine snapshot per ReadIndex batch, not per read).
pub struct RangeJob<V, T> {
    pub(crate) token: T,
    pub(crate) req: RangeRequest,
    pub(crate) view: Arc<MvccView<V>>,
}

impl<V: ReadView, T> RangeJob<V, T> {
    /// Reads the range; the caller's completion.
    pub fn run(self) -> Completion<T> {
        let res = self.view.range(&self.req).map(Response::Range);
        (self.token, res)
    }

    /// Gives up without reading, for reason `why` (the readers are
    /// saturated: [`Error::TooManyRequests`]): the caller's completion.
    pub fn refuse(self, why: Error) -> Completion<T> {
        (self.token, Err(why))
    }
}

impl<V, T> std::fmt::Debug for RangeJob<V, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeJob").field("key", &self.req.key).finish_non_exhaustive()
    }
}

/// A window `[from, until]` of one watcher's history to read from a view.
pub struct HistoryJob<V> {
    pub(crate) watch: u64,
    pub(crate) from: i64,
    pub(crate) until: i64,
    pub(crate) req: WatchRequest,
    pub(crate) view: Arc<MvccView<V>>,
}

impl<V: ReadView> HistoryJob<V> {
    /// Reads the window, already filtered for the watcher and grouped per
    /// revision; give the result to the peer.
    pub fn run(self) -> HistoryRead {
        let events = self
            .view
            .history_until(&self.req.key, &self.req.range_end, self.from, self.until)
            .map(|history| crate::core::watch::history_window(&history, &self.req, self.from, self.until));
        HistoryRead { watch: self.watch, from: self.from, until: self.until, events: Some(events) }
    }

    /// Gives up without reading (the readers are saturated): the peer
    /// tries the window again later.
    pub fn refuse(self) -> HistoryRead {
        HistoryRead { watch: self.watch, from: self.from, until: self.until, events: None }
    }
}

impl<V> std::fmt::Debug for HistoryJob<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryJob")
            .field("watch", &self.watch)
            .field("from", &self.from)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

/// A window of watch history as delivered: one message's events per
/// revision, oldest first.
pub(crate) type Messages = Vec<(i64, Vec<Event>)>;

/// The outcome of a [`HistoryJob`], for [`crate::core::peer::Peer::history_read`].
#[derive(Debug)]
pub struct HistoryRead {
    pub(crate) watch: u64,
    pub(crate) from: i64,
    pub(crate) until: i64,
    /// The window's messages per revision; `None` when it was not read.
    pub(crate) events: Option<Result<Messages>>,
}
