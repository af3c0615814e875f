//! Latency histograms of a running node, measured by the driver around the
//! engine (the sans-IO peer has no clock): synced writes (the raft log's
//! fsync, one per Ready) and unsynced writes (apply batches).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::input::Callback;
use crate::engine::{Cf, DbSize, Engine, Maintain, ReadView, WriteBatch};
use crate::Result;

/// Upper bounds of the histogram buckets, in seconds (Prometheus `le`):
/// etcd's for `etcd_disk_wal_fsync_duration_seconds` and
/// `etcd_disk_backend_commit_duration_seconds` (1 ms doubling 14 times), so
/// etcd's dashboards and alerts read them unchanged.
pub const BUCKETS: [f64; 14] =
    [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

/// A lock-free latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket; the last slot counts those above every bound.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// A copy of the current values.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let per_bucket: Vec<u64> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let mut cumulative = Vec::with_capacity(BUCKETS.len());
        let mut total = 0;
        for c in &per_bucket[..BUCKETS.len()] {
            total += c;
            cumulative.push(total);
        }
        HistogramSnapshot {
            cumulative,
            count: per_bucket.iter().sum(),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Histogram values in Prometheus form.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations `<=` each bound of [`BUCKETS`], cumulative.
    pub cumulative: Vec<u64>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Sum of all observations in seconds.
    pub sum_seconds: f64,
}

/// The measurements of one node.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Synced engine writes: the raft log's fsync per Ready.
    pub fsync: Histogram,
    /// Unsynced engine writes: apply batches (and commit-index updates).
    pub apply_write: Histogram,
    /// Peer messages refused before raft saw them (forged or malformed).
    pub refused_peer_messages: std::sync::atomic::AtomicU64,
    /// Proposals submitted on this node whose outcome is not known yet.
    pub proposals_pending: AtomicI64,
    /// Proposals submitted on this node that failed (not applied: no
    /// leader, stopped, refused, or an error applying them).
    pub proposals_failed: AtomicU64,
}

impl NodeMetrics {
    /// Wraps a proposal's callback so that it counts as pending until it
    /// completes (or is dropped unanswered), and as failed if it fails.
    pub(crate) fn track_proposal(self: &Arc<Self>, done: Callback) -> Callback {
        /// Decrements the pending count however the callback ends.
        struct Pending(Arc<NodeMetrics>);
        impl Drop for Pending {
            fn drop(&mut self) {
                self.0.proposals_pending.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.proposals_pending.fetch_add(1, Ordering::Relaxed);
        let pending = Pending(Arc::clone(self));
        Box::new(move |r| {
            if r.is_err() {
                pending.0.proposals_failed.fetch_add(1, Ordering::Relaxed);
            }
            drop(pending);
            done(r)
        })
    }
}

/// An engine wrapper that times writes into [`NodeMetrics`].
#[derive(Clone)]
pub struct TimedEngine<E> {
    inner: E,
    metrics: Arc<NodeMetrics>,
}

impl<E> TimedEngine<E> {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: E, metrics: Arc<NodeMetrics>) -> Self {
        TimedEngine { inner, metrics }
    }
}

impl<E: ReadView> ReadView for TimedEngine<E> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(cf, key)
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.inner.scan(cf, start, end, visit)
    }
}

impl<E: Engine> Engine for TimedEngine<E> {
    type Snapshot = E::Snapshot;

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let start = Instant::now();
        let r = self.inner.write(batch, sync);
        let h = if sync { &self.metrics.fsync } else { &self.metrics.apply_write };
        h.observe(start.elapsed());
        r
    }

    fn snapshot(&self) -> E::Snapshot {
        self.inner.snapshot()
    }
}

impl<E: Maintain> Maintain for TimedEngine<E> {
    fn db_size(&self) -> DbSize {
        self.inner.db_size()
    }

    fn defragment(&self) -> Result<()> {
        self.inner.defragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MemEngine;

    #[test]
    fn proposals_count_as_pending_until_answered_or_dropped() {
        let m = Arc::new(NodeMetrics::default());
        let ok = m.track_proposal(Box::new(|_| {}));
        let failed = m.track_proposal(Box::new(|_| {}));
        let dropped = m.track_proposal(Box::new(|_| {}));
        assert_eq!(m.proposals_pending.load(Ordering::Relaxed), 3);
        ok(Ok(crate::command::Response::Put(Default::default())));
        failed(Err(crate::Error::Stopped));
        drop(dropped);
        assert_eq!(m.proposals_pending.load(Ordering::Relaxed), 0);
        assert_eq!(m.proposals_failed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn timed_engine_sorts_writes_into_buckets() {
        let metrics = Arc::new(NodeMetrics::default());
        let e = TimedEngine::new(MemEngine::new(), Arc::clone(&metrics));
        e.write(WriteBatch::new(), true).unwrap();
        e.write(WriteBatch::new(), false).unwrap();
        e.write(WriteBatch::new(), false).unwrap();
        assert_eq!(metrics.fsync.snapshot().count, 1);
        let apply = metrics.apply_write.snapshot();
        assert_eq!(apply.count, 2);
        assert_eq!(apply.cumulative.last().copied(), Some(2), "fast writes fall in the last bound");
        assert_eq!(apply.cumulative.len(), 14, "etcd's buckets");
        let h = Histogram::default();
        h.observe(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!((s.count, s.cumulative.last().copied()), (1, Some(0)), "beyond every bound: only +Inf");
    }
}
