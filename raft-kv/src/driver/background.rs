//! [`Background`]: one thread per member for reads that scan the whole
//! store (hash, backup), so they never hold up the node thread.
//!
//! The node thread only takes an engine snapshot (cheap) and hands the scan
//! over; at most [`MAX_QUEUED`] such jobs wait, and past that a request fails
//! at once with [`Error::TooManyRequests`] instead of queueing without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::driver::inbox::Inbox;
use crate::{Error, Result};

/// Whole-store jobs queued or running at most, per member.
pub(crate) const MAX_QUEUED: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// The member's background thread (see the module docs).
pub(crate) struct Background {
    queue: Arc<Inbox<Option<Job>>>,
    queued: Arc<AtomicUsize>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Background {
    /// Starts the thread of member `id`.
    pub(crate) fn start(id: u64) -> Result<Background> {
        let queue: Arc<Inbox<Option<Job>>> = Arc::new(Inbox::new());
        let queued = Arc::new(AtomicUsize::new(0));
        let (q, n) = (Arc::clone(&queue), Arc::clone(&queued));
        let thread = std::thread::Builder::new()
            .name(format!("raft-kv-scan-{id}"))
            .spawn(move || {
                let mut taken = Vec::new();
                loop {
                    q.take_all(&mut taken, Duration::from_secs(1));
                    for job in taken.drain(..) {
                        match job {
                            Some(job) => {
                                job();
                                n.fetch_sub(1, Ordering::AcqRel);
                            }
                            None => {
                                q.close();
                                return;
                            }
                        }
                    }
                }
            })
            .map_err(|e| Error::Storage(crate::error::StorageError::new("cannot spawn scan thread", e)))?;
        Ok(Background { queue, queued, thread: Mutex::new(Some(thread)) })
    }

    /// Runs `job` on the thread, or fails with [`Error::TooManyRequests`]
    /// when [`MAX_QUEUED`] jobs are already waiting (`job` is not run).
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) -> Result<()> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::TooManyRequests);
        }
        if self.queue.push(Some(Box::new(job))).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// Stops the thread after the jobs queued so far, and joins it.
    pub(crate) fn stop(&self) {
        let _ = self.queue.push(None);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_past_the_bound_are_refused_and_the_rest_run_in_order() {
        let bg = Background::start(1).expect("start");
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (done, finished) = std::sync::mpsc::channel::<usize>();
        // The first job holds the thread until released.
        let d = done.clone();
        bg.run(move || {
            let _ = wait.recv();
            let _ = d.send(0);
        })
        .expect("first");
        for i in 1..MAX_QUEUED {
            let d = done.clone();
            bg.run(move || {
                let _ = d.send(i);
            })
            .expect("queued");
        }
        assert!(matches!(bg.run(|| {}), Err(Error::TooManyRequests)));
        release.send(()).expect("release");
        let order: Vec<usize> = (0..MAX_QUEUED).map(|_| finished.recv().expect("ran")).collect();
        assert_eq!(order, (0..MAX_QUEUED).collect::<Vec<_>>());
        bg.stop();
        assert!(matches!(bg.run(|| {}), Err(Error::Stopped)));
    }
}
