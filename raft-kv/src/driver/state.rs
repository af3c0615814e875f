//! [`MemberState`]: what a member's node thread last published about itself
//! (leader, term, role, indexes, revision), readable at any time without a
//! round trip to the node thread, and observable as it changes — with
//! [`StateChanges`] (a `futures` stream) or `StateBoard::wait_change`
//! (blocking) — so nobody has to poll for a leader.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::core::status::MemberState;

/// Where the node thread publishes its [`MemberState`].
pub(crate) struct StateBoard {
    inner: Mutex<Inner>,
    changed: Condvar,
}

struct Inner {
    state: MemberState,
    /// Bumped on every change of leader, term, role or liveness.
    version: u64,
    /// Why the member stopped, when it stopped on a fatal error.
    fatal: Option<crate::Error>,
    wakers: Vec<Waker>,
}

impl StateBoard {
    pub(crate) fn new(id: u64) -> Arc<Self> {
        Arc::new(StateBoard {
            inner: Mutex::new(Inner { state: MemberState::initial(id), version: 0, fatal: None, wakers: Vec::new() }),
            changed: Condvar::new(),
        })
    }

    /// Publishes `state`; wakes observers if its role-level part changed.
    pub(crate) fn publish(&self, state: MemberState) {
        let wakers = {
            let mut g = self.inner.lock();
            if g.state == state {
                return;
            }
            let role_change = g.state.differs_in_role(&state);
            g.state = state;
            if !role_change {
                return;
            }
            g.version += 1;
            std::mem::take(&mut g.wakers)
        };
        self.changed.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Marks the member stopped, with the fatal error that stopped it.
    pub(crate) fn stop(&self, fatal: Option<crate::Error>) {
        let mut st = self.current();
        st.stopped = true;
        if fatal.is_some() {
            self.inner.lock().fatal = fatal;
        }
        self.publish(st);
    }

    pub(crate) fn current(&self) -> MemberState {
        self.inner.lock().state
    }

    pub(crate) fn fatal(&self) -> Option<crate::Error> {
        self.inner.lock().fatal.clone()
    }

    fn version(&self) -> u64 {
        self.inner.lock().version
    }

    /// Blocks until the role-level state differs from version `seen` or
    /// `deadline` passes; returns the state and its version.
    pub(crate) fn wait_change(&self, seen: u64, deadline: Instant) -> (MemberState, u64) {
        let mut g = self.inner.lock();
        while g.version == seen && !g.state.stopped {
            if self.changed.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        (g.state, g.version)
    }

    /// Blocks until `pred` holds for the state or `deadline` passes;
    /// returns the last state seen.
    pub(crate) fn wait_for(&self, deadline: Instant, pred: impl Fn(&MemberState) -> bool) -> MemberState {
        let mut seen = self.version();
        loop {
            let st = self.current();
            if pred(&st) || st.stopped || Instant::now() >= deadline {
                return st;
            }
            let (_, v) = self.wait_change(seen, deadline);
            seen = v;
        }
    }
}

/// A stream of a member's [`MemberState`] each time its leader, term, role
/// or liveness changes, starting with the current state. Ends after the
/// member stops. Changes in between two polls are coalesced: the stream
/// yields the newest state, never a stale one.
pub struct StateChanges {
    board: Arc<StateBoard>,
    /// The version last yielded (`None`: nothing yielded yet).
    seen: Option<u64>,
    done: bool,
}

impl std::fmt::Debug for StateChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateChanges").field("seen", &self.seen).finish()
    }
}

impl StateChanges {
    pub(crate) fn new(board: Arc<StateBoard>) -> Self {
        StateChanges { board, seen: None, done: false }
    }
}

impl futures_core::Stream for StateChanges {
    type Item = MemberState;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<MemberState>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut g = self.board.inner.lock();
        if self.seen != Some(g.version) {
            let st = g.state;
            let v = g.version;
            drop(g);
            self.seen = Some(v);
            self.done = st.stopped;
            return Poll::Ready(Some(st));
        }
        if !g.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            g.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
