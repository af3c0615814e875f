//! The log writer: the thread that makes a member's log writes durable,
//! merging what queued up during one fsync into the next (group commit).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::core::ready::DiskWrite;
use crate::driver::inbox::Inbox;
use crate::driver::input::Input;
use crate::engine::Engine;
use crate::{Error, Result};

/// The member's log writer: a thread that makes each [`DiskWrite`] durable
/// while the node thread goes on, then reports it with
/// [`Input::Persisted`]. Whatever queued up during one fsync goes into the
/// next engine batch and fsync together (group commit across Readies).
pub(super) struct LogWriter {
    queue: Arc<Inbox<Option<DiskWrite>>>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    pub(super) fn start<E: Engine>(id: u64, engine: E, node: Arc<Inbox<Input>>) -> Result<LogWriter> {
        let queue = Arc::new(Inbox::new());
        let q = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name(format!("raft-kv-log-{id}"))
            .spawn(move || write_log(&engine, &q, &node))
            .map_err(|e| Error::Storage(crate::error::StorageError::new("cannot spawn log writer thread", e)))?;
        Ok(LogWriter { queue, thread: Some(thread) })
    }

    pub(super) fn submit(&self, write: DiskWrite) {
        // Refused only after `stop`, when nothing waits for the outcome.
        let _ = self.queue.push(Some(write));
    }

    /// Stops the writer after the writes queued so far.
    pub(super) fn stop(mut self) {
        let _ = self.queue.push(None);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The log writer thread's loop.
fn write_log<E: Engine>(engine: &E, queue: &Inbox<Option<DiskWrite>>, node: &Inbox<Input>) {
    let mut taken = Vec::new();
    loop {
        queue.take_all(&mut taken, Duration::from_secs(1));
        let stop_requested = taken.iter().any(Option::is_none);
        let merged = DiskWrite::merge(taken.drain(..).flatten());
        let mut stop = stop_requested;
        if let Some(write) = merged {
            let report = match write.write_to(engine) {
                Ok(number) => Input::Persisted(number),
                Err(e) => Input::WriteFailed(e),
            };
            let failed = matches!(report, Input::WriteFailed(_));
            if node.push(report).is_err() || failed {
                stop = true;
            }
        }
        if stop {
            queue.close();
            return;
        }
    }
}
