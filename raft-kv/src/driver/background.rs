//! [`Background`]: a fixed pool of threads per member for reads that must
//! not hold up the node thread — whole-store scans (hash, backup) on one
//! pool, ranges and windows of watch history on another (the readers).
//!
//! The node thread only takes an engine snapshot (cheap) and hands the read
//! over: one channel hop, no thread per request. At most `bound` jobs are
//! queued or running per pool; past that a job is refused at once (the
//! caller answers [`Error::TooManyRequests`]) instead of queueing without
//! bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::{Error, Result};

/// Whole-store jobs queued or running at most, per member.
pub(crate) const MAX_QUEUED: usize = 4;

/// Reader threads per member (ranges and watch history).
pub(crate) const READER_THREADS: usize = 2;

/// Reads queued or running at most, per member; past it a range fails with
/// `TooManyRequests` (etcd's "etcdserver: too many requests").
pub(crate) const MAX_QUEUED_READS: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

/// A member's pool of background threads (see the module docs).
pub(crate) struct Background {
    queue: Mutex<Option<Sender<Job>>>,
    queued: Arc<AtomicUsize>,
    bound: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Background {
    /// Starts `threads` threads named `name-N` taking at most `bound` jobs.
    pub(crate) fn start(name: &str, threads: usize, bound: usize) -> Result<Background> {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = crossbeam_channel::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let (rx, n) = (rx.clone(), Arc::clone(&queued));
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    // Ends once the pool is stopped and the queue drained.
                    while let Ok(job) = rx.recv() {
                        job();
                        n.fetch_sub(1, Ordering::AcqRel);
                    }
                })
                .map_err(|e| Error::Storage(crate::error::StorageError::new("cannot spawn background thread", e)))?;
            handles.push(handle);
        }
        Ok(Background { queue: Mutex::new(Some(tx)), queued, bound, threads: Mutex::new(handles) })
    }

    /// The pool for whole-store scans of member `id`.
    pub(crate) fn scans(id: u64) -> Result<Background> {
        Background::start(&format!("raft-kv-scan-{id}"), 1, MAX_QUEUED)
    }

    /// The readers of member `id` (ranges, watch history).
    pub(crate) fn readers(id: u64) -> Result<Background> {
        Background::start(&format!("raft-kv-read-{id}"), READER_THREADS, MAX_QUEUED_READS)
    }

    /// Runs `job` on a thread of the pool, or fails with
    /// [`Error::TooManyRequests`] when `bound` jobs are already queued or
    /// running (`job` is not run), [`Error::Stopped`] after [`Background::stop`].
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) -> Result<()> {
        self.submit(job, |job| job()).map_err(|(_, e)| e)
    }

    /// Runs `run(job)` on a thread of the pool, or hands `job` back with
    /// the reason it was refused (as [`Background::run`]).
    pub(crate) fn submit<J: Send + 'static>(
        &self,
        job: J,
        run: impl FnOnce(J) + Send + 'static,
    ) -> std::result::Result<(), (J, Error)> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.bound {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err((job, Error::TooManyRequests));
        }
        let queue = self.queue.lock();
        let Some(tx) = queue.as_ref() else {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err((job, Error::Stopped));
        };
        // The threads only end once the sender is gone: this cannot fail.
        let _ = tx.send(Box::new(move || run(job)));
        Ok(())
    }

    /// Stops the pool after the jobs queued so far, and joins its threads.
    pub(crate) fn stop(&self) {
        drop(self.queue.lock().take());
        for t in std::mem::take(&mut *self.threads.lock()) {
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
        let bg = Background::scans(1).expect("start");
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

    #[test]
    fn readers_run_jobs_side_by_side_and_refuse_past_their_bound() {
        let pool = Background::start("test-read", 2, 3).expect("start");
        let (release, wait) = crossbeam_channel::unbounded::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        // Two jobs block at once: both threads are busy side by side.
        for _ in 0..2 {
            let (wait, started) = (wait.clone(), started.clone());
            pool.run(move || {
                let _ = started.send(());
                let _ = wait.recv();
            })
            .expect("run");
        }
        for _ in 0..2 {
            running.recv_timeout(std::time::Duration::from_secs(10)).expect("both threads run");
        }
        pool.run(|| {}).expect("third is queued");
        match pool.submit(7, |_| {}) {
            Err((7, Error::TooManyRequests)) => {}
            other => panic!("expected the job back with TooManyRequests, got {:?}", other.map_err(|(_, e)| e)),
        }
        drop(release);
        pool.stop();
    }
}
