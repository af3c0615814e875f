//! The node thread's inbox and the one-shot reply slot its blocking callers
//! wait on.
//!
//! Both are a mutex and a condition variable rather than channels, for the
//! hot path: the node thread takes *everything* waiting with one lock and one
//! `Vec` swap (group commit wants the whole backlog at once), and a sender
//! wakes the thread only when it is actually asleep. A waiting caller parks
//! at once instead of spinning: with tens of callers on two cores, the
//! spin-then-yield of a channel's receive cost more CPU than raft itself
//! (measured with `perf`, see ARCHITECTURE.md).

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

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
        let mut s = self.state.lock();
        if s.closed {
            return Err(item);
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

/// Why [`ReplyWaiter::wait`] returned no value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoReply {
    /// The timeout passed.
    Timeout,
    /// The [`Reply`] was dropped without a value (its request was dropped).
    Dropped,
}

struct Slot<T> {
    value: Mutex<(Option<T>, bool)>,
    ready: Condvar,
}

/// The filling half of a one-shot reply slot.
pub(crate) struct Reply<T> {
    slot: std::sync::Arc<Slot<T>>,
}

/// The waiting half of a one-shot reply slot.
pub(crate) struct ReplyWaiter<T> {
    slot: std::sync::Arc<Slot<T>>,
}

/// A one-shot slot: one thread fills it once, another waits on it.
pub(crate) fn reply<T>() -> (Reply<T>, ReplyWaiter<T>) {
    let slot = std::sync::Arc::new(Slot { value: Mutex::new((None, false)), ready: Condvar::new() });
    (Reply { slot: std::sync::Arc::clone(&slot) }, ReplyWaiter { slot })
}

impl<T> Reply<T> {
    /// Fills the slot and wakes the waiter.
    pub(crate) fn set(self, value: T) {
        self.slot.value.lock().0 = Some(value);
        // Drop marks the slot finished and wakes the waiter.
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        self.slot.value.lock().1 = true;
        self.slot.ready.notify_one();
    }
}

impl<T> ReplyWaiter<T> {
    /// Waits up to `timeout` for the value.
    pub(crate) fn wait(self, timeout: Duration) -> Result<T, NoReply> {
        let deadline = Instant::now() + timeout;
        let mut v = self.slot.value.lock();
        while !v.1 {
            if self.slot.ready.wait_until(&mut v, deadline).timed_out() {
                break;
            }
        }
        match v.0.take() {
            Some(value) => Ok(value),
            None if v.1 => Err(NoReply::Dropped),
            None => Err(NoReply::Timeout),
        }
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
    fn reply_wakes_the_waiter_times_out_or_reports_a_drop() {
        let (tx, rx) = reply::<u32>();
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.set(7)
        });
        assert_eq!(rx.wait(Duration::from_secs(10)), Ok(7));
        setter.join().expect("setter");

        let (tx, rx) = reply::<u32>();
        assert_eq!(rx.wait(Duration::from_millis(10)), Err(NoReply::Timeout));
        drop(tx);

        let (tx, rx) = reply::<u32>();
        std::thread::spawn(move || drop(tx));
        assert_eq!(rx.wait(Duration::from_secs(10)), Err(NoReply::Dropped));
    }
}
