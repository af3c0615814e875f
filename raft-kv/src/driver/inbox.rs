//! The node thread's inbox (callers' replies are in [`crate::driver::call`]).
//!
//! It is a mutex and a condition variable rather than a channel, for the
//! hot path: the node thread takes *everything* waiting with one lock and one
//! `Vec` swap (group commit wants the whole backlog at once), and a sender
//! wakes the thread only when it is actually asleep (measured with `perf`,
//! see ARCHITECTURE.md).

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::Error;

/// How many requests from callers and transports may wait in a member's
/// inbox: past it a request fails at once ("too many requests") and a raft
/// message is dropped, so a flood costs bounded memory. (The node thread
/// empties the inbox in one take, so this bounds its backlog as well.)
pub(crate) const INBOX_LIMIT: usize = 65_536;

/// A many-producer, one-consumer queue drained in batches.
pub(crate) struct Inbox<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

struct State<T> {
    queue: Vec<T>,
    /// The consumer is blocked in [`Inbox::take_all`].
    sleeping: bool,
    /// The consumer is gone: pushes fail.
    closed: bool,
}

impl<T> Inbox<T> {
    /// An empty, open inbox.
    pub(crate) fn new() -> Self {
        Inbox { state: Mutex::new(State { queue: Vec::new(), sleeping: false, closed: false }), ready: Condvar::new() }
    }

    /// Queues `item`; gives it back if the consumer has closed the inbox.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        self.push_within(item, usize::MAX).map_err(|(item, _)| item)
    }

    /// [`Inbox::push`] for requests from outside, which must not queue
    /// without bound: refuses `item` with [`Error::TooManyRequests`] when
    /// `limit` items wait already ([`Error::Stopped`] once closed). One lock
    /// for the check and the push.
    pub(crate) fn push_within(&self, item: T, limit: usize) -> Result<(), (T, Error)> {
        let mut s = self.state.lock();
        if s.closed {
            return Err((item, Error::Stopped));
        }
        if s.queue.len() >= limit {
            return Err((item, Error::TooManyRequests));
        }
        s.queue.push(item);
        let wake = s.sleeping;
        s.sleeping = false;
        drop(s);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Moves everything queued into `out` (which should be empty), waiting
    /// up to `timeout` for the first item.
    pub(crate) fn take_all(&self, out: &mut Vec<T>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock();
        while s.queue.is_empty() {
            s.sleeping = true;
            if self.ready.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        s.sleeping = false;
        std::mem::swap(&mut s.queue, out);
    }

    /// True when nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.state.lock().queue.is_empty()
    }

    /// Refuses further pushes and returns what is still queued.
    pub(crate) fn close(&self) -> Vec<T> {
        let mut s = self.state.lock();
        s.closed = true;
        std::mem::take(&mut s.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn take_all_returns_everything_in_order_and_wakes_on_push() {
        let inbox = Arc::new(Inbox::new());
        let mut out = Vec::new();
        inbox.take_all(&mut out, Duration::from_millis(10));
        assert!(out.is_empty(), "times out empty");
        let producer = {
            let inbox = Arc::clone(&inbox);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                for i in 0..5 {
                    inbox.push(i).expect("open");
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 5 {
            inbox.take_all(&mut out, Duration::from_secs(10));
            got.append(&mut out);
        }
        producer.join().expect("producer");
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn close_refuses_pushes_and_hands_back_the_rest() {
        let inbox = Inbox::new();
        inbox.push(1).expect("open");
        assert_eq!(inbox.close(), vec![1]);
        assert_eq!(inbox.push(2), Err(2));
    }

    #[test]
    fn push_within_refuses_past_the_limit_and_after_close() {
        let inbox = Inbox::new();
        inbox.push_within(1, 2).expect("room");
        inbox.push_within(2, 2).expect("room");
        assert!(matches!(inbox.push_within(3, 2), Err((3, Error::TooManyRequests))));
        // The node thread's own inputs are never refused for being many.
        inbox.push(4).expect("open");
        let mut out = Vec::new();
        inbox.take_all(&mut out, Duration::ZERO);
        assert_eq!(out, vec![1, 2, 4]);
        inbox.push_within(5, 2).expect("room again once taken");
        inbox.close();
        assert!(matches!(inbox.push_within(6, 2), Err((6, Error::Stopped))));
    }
}
