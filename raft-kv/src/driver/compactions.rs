//! Physical compactions of history, each on a thread of its own.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::engine::Engine;

/// Physical compactions running on threads of their own: deleting a large
/// history takes seconds, which must not stall the member. Stopped (between
/// batches) and joined when the member stops.
#[derive(Default)]
pub(super) struct Compactions {
    stop: Arc<std::sync::atomic::AtomicBool>,
    running: Vec<JoinHandle<()>>,
}

impl Compactions {
    pub(super) fn start<E: Engine>(&mut self, id: u64, job: crate::core::mvcc::Compaction<E>) {
        self.running.retain(|t| !t.is_finished());
        let revision = job.revision();
        let stop = Arc::clone(&self.stop);
        let spawned = std::thread::Builder::new().name(format!("raft-kv-compact-{id}")).spawn(move || {
            let started = Instant::now();
            match job.run_until(&|| stop.load(std::sync::atomic::Ordering::Relaxed)) {
                Ok(n) => tracing::info!(id, revision, deleted = n, took = ?started.elapsed(), "history compacted"),
                Err(e) => tracing::warn!(id, revision, error = %e, "physical compaction failed; the next one retries"),
            }
        });
        match spawned {
            Ok(t) => self.running.push(t),
            Err(e) => {
                tracing::warn!(id, revision, error = %e, "cannot start physical compaction; the next one retries")
            }
        }
    }

    pub(super) fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.running {
            let _ = t.join();
        }
    }
}
