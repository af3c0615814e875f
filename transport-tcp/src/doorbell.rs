//! [`Doorbell`]: how a writer thread sleeps on an empty queue without
//! spinning, and how a sender wakes it.
//!
//! crossbeam's blocking receive spins and then yields before it parks.
//! With a writer per peer and lane, woken for every few messages, that
//! spin-then-yield was 5.7% of a member's samples under 64 linearizable
//! readers (issue 17). A writer instead parks at once ([`Doorbell::sleep`])
//! and a sender rings after queueing ([`Doorbell::ring`]). Each side fences
//! between its write and its read, so a message queued while the writer
//! goes to sleep is seen by one of them: the writer finds it, or the sender
//! finds the writer asleep and wakes it.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread::{self, Thread};
use std::time::Duration;

/// One writer's wake-up (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    /// The writer is asleep, or about to be.
    sleeping: AtomicBool,
    /// The writer thread: the one that first sleeps.
    writer: OnceLock<Thread>,
}

impl Doorbell {
    /// Wakes the writer if it sleeps. Call after queueing a message, or
    /// after closing the queue.
    pub(crate) fn ring(&self) {
        fence(Ordering::SeqCst);
        // Only the first ringer of a sleep pays for the wake-up.
        if self.sleeping.swap(false, Ordering::Relaxed) {
            if let Some(writer) = self.writer.get() {
                writer.unpark();
            }
        }
    }

    /// Parks the writer for at most `timeout`, unless `ready` (its queue
    /// holds something) already. It may return early, without a message.
    pub(crate) fn sleep(&self, timeout: Duration, ready: impl Fn() -> bool) {
        self.writer.get_or_init(thread::current);
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !ready() {
            thread::park_timeout(timeout);
        }
        self.sleeping.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    /// A message queued while the writer goes to sleep never waits for the
    /// timeout: 2,000 hand-offs, each racing the writer's sleep, all within
    /// far less than 2,000 timeouts.
    #[test]
    fn a_ring_never_goes_unheard() {
        let bell = Arc::new(Doorbell::default());
        let (tx, rx) = crossbeam_channel::bounded::<u32>(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<u32>(1);
        let b = Arc::clone(&bell);
        let writer = thread::spawn(move || {
            for _ in 0..2_000 {
                loop {
                    if let Ok(v) = rx.try_recv() {
                        done_tx.send(v).unwrap();
                        break;
                    }
                    b.sleep(Duration::from_secs(10), || !rx.is_empty());
                }
            }
        });
        let started = Instant::now();
        for i in 0..2_000 {
            tx.send(i).unwrap();
            bell.ring();
            assert_eq!(done_rx.recv_timeout(Duration::from_secs(5)), Ok(i), "hand-off {i} was not heard");
        }
        writer.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(60));
    }
}
