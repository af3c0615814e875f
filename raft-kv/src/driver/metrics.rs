//! Latency histograms of a running node, measured by the driver around the
//! engine (the sans-IO peer has no clock): synced writes (the raft log's
//! fsync, one per Ready) and unsynced writes (apply batches).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{Cf, DbSize, Engine, Maintain, ReadView, WriteBatch};
use crate::Result;

/// Upper bounds of the histogram buckets, in seconds (Prometheus `le`).
pub const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

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
        let h = Histogram::default();
        h.observe(Duration::from_secs(5));
        let s = h.snapshot();
        assert_eq!((s.count, s.cumulative.last().copied()), (1, Some(0)), "beyond every bound: only +Inf");
    }
}
