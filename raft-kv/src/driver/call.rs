//! [`Call`]: the pending outcome of one request to a member, awaited as a
//! future (any executor) or waited for by a blocking caller.
//!
//! The node thread completes a request through a `Responder`; the caller
//! holds the matching `Call`. It is a mutex-protected slot with a condition
//! variable for blocking waiters and a [`Waker`] for async ones: a blocking
//! caller parks at once instead of spinning (with tens of callers on two
//! cores, a channel's spin-then-yield cost more CPU than raft itself,
//! measured with `perf`, see ARCHITECTURE.md), and an async caller needs no
//! particular runtime.
//!
//! A responder may also complete a call with work to do ([`Value::Later`]):
//! the caller's thread runs it when it takes the outcome. A linearizable
//! point read completes that way: the node thread confirms the read index
//! and hands over a view of the applied state, and the read itself runs on
//! the caller's thread, with no hand-off to a reader.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::{Error, Result};

struct Slot<T> {
    state: Mutex<State<T>>,
    filled: Condvar,
}

/// A call's outcome: ready, or to compute on the caller's thread.
enum Value<T> {
    Now(Result<T>),
    Later(Box<dyn FnOnce() -> Result<T> + Send>),
}

impl<T> Value<T> {
    /// The outcome (running a `Later` here: call with no lock held).
    fn take(self) -> Result<T> {
        match self {
            Value::Now(v) => v,
            Value::Later(f) => f(),
        }
    }
}

struct State<T> {
    value: Option<Value<T>>,
    /// The responder was dropped without answering.
    abandoned: bool,
    waker: Option<Waker>,
}

/// A new pending call and the responder that completes it.
pub(crate) fn call<T>() -> (Responder<T>, Call<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State { value: None, abandoned: false, waker: None }),
        filled: Condvar::new(),
    });
    (Responder { slot: Some(Arc::clone(&slot)) }, Call { slot })
}

/// The node thread's end of a [`Call`]. Dropping it unanswered completes
/// the call with [`Error::Stopped`].
pub(crate) struct Responder<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Responder<T> {
    /// Completes the call with `value`.
    pub(crate) fn send(mut self, value: Result<T>) {
        if let Some(slot) = self.slot.take() {
            slot.finish(Some(Value::Now(value)));
        }
    }

    /// Completes the call with `f`, which the caller's thread runs when it
    /// takes the outcome (see the module docs).
    pub(crate) fn send_later(mut self, f: impl FnOnce() -> Result<T> + Send + 'static) {
        if let Some(slot) = self.slot.take() {
            slot.finish(Some(Value::Later(Box::new(f))));
        }
    }

    /// A responder that can be held in two places — the work that answers
    /// and the code that may have to refuse it — of which the first to send
    /// completes the call.
    pub(crate) fn shared(self) -> SharedResponder<T> {
        SharedResponder(Arc::new(Mutex::new(Some(self))))
    }
}

/// See [`Responder::shared`]. Cheap to clone.
pub(crate) struct SharedResponder<T>(Arc<Mutex<Option<Responder<T>>>>);

impl<T> Clone for SharedResponder<T> {
    fn clone(&self) -> Self {
        SharedResponder(Arc::clone(&self.0))
    }
}

impl<T> SharedResponder<T> {
    /// Completes the call with `value`, unless it was completed already.
    pub(crate) fn send(&self, value: Result<T>) {
        let responder = self.0.lock().take();
        if let Some(r) = responder {
            r.send(value);
        }
    }
}

impl<T> Drop for Responder<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.finish(None);
        }
    }
}

impl<T> Slot<T> {
    fn finish(&self, value: Option<Value<T>>) {
        let waker = {
            let mut s = self.state.lock();
            match value {
                Some(v) => s.value = Some(v),
                None => s.abandoned = true,
            }
            s.waker.take()
        };
        self.filled.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The outcome of a request to a member: `.await` it, or [`Call::wait`]
/// for it from a blocking thread. Dropping it abandons the result (the
/// request itself still runs: a write may apply).
#[must_use = "a Call does nothing unless awaited or waited for"]
pub struct Call<T> {
    slot: Arc<Slot<T>>,
}

impl<T> std::fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").finish_non_exhaustive()
    }
}

impl<T> Call<T> {
    /// Blocks the calling thread until the outcome arrives, for at most
    /// `timeout` ([`Error::Timeout`] after that; the request's outcome is
    /// then unknown).
    pub fn wait(self, timeout: Duration) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut s = self.slot.state.lock();
        loop {
            if let Some(v) = s.value.take() {
                drop(s);
                return v.take();
            }
            if s.abandoned {
                return Err(Error::Stopped);
            }
            if self.slot.filled.wait_until(&mut s, deadline).timed_out() {
                let v = s.value.take();
                let gone = if s.abandoned { Error::Stopped } else { Error::Timeout };
                drop(s);
                return v.map_or(Err(gone), Value::take);
            }
        }
    }
}

impl<T> Future for Call<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut s = self.slot.state.lock();
        if let Some(v) = s.value.take() {
            drop(s);
            return Poll::Ready(v.take());
        }
        if s.abandoned {
            return Poll::Ready(Err(Error::Stopped));
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_wait_gets_value_timeout_or_stopped() {
        let (tx, rx) = call::<u32>();
        std::thread::spawn(move || tx.send(Ok(7)));
        assert_eq!(rx.wait(Duration::from_secs(5)), Ok(7));

        let (_tx, rx) = call::<u32>();
        assert_eq!(rx.wait(Duration::from_millis(10)), Err(Error::Timeout));

        let (tx, rx) = call::<u32>();
        drop(tx);
        assert_eq!(rx.wait(Duration::from_secs(5)), Err(Error::Stopped));
    }

    #[test]
    fn future_wakes_when_answered() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (tx, rx) = call::<&str>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(Ok("done"));
        });
        assert_eq!(rt.block_on(rx), Ok("done"));
        t.join().unwrap();
        let (tx, rx) = call::<&str>();
        drop(tx);
        assert_eq!(rt.block_on(rx), Err(Error::Stopped));
    }
}
