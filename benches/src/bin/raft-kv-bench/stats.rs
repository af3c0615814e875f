//! Latency summary: nearest-rank percentiles over every recorded latency.

/// Latency percentiles of one run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest request.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Summary {
    /// Summarises latencies (µs), sorting them in place. All zero when empty.
    pub fn of(lat: &mut [u64]) -> Summary {
        lat.sort_unstable();
        let mean = if lat.is_empty() { 0.0 } else { lat.iter().map(|&l| l as f64).sum::<f64>() / lat.len() as f64 };
        Summary {
            p50: percentile(lat, 0.50),
            p90: percentile(lat, 0.90),
            p99: percentile(lat, 0.99),
            p999: percentile(lat, 0.999),
            max: lat.last().copied().unwrap_or(0),
            mean,
        }
    }
}

/// The nearest-rank `p` quantile (`0 < p <= 1`) of ascending `sorted`: the
/// smallest value with at least a fraction `p` of the values at or below it.
/// 0 for an empty slice.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    // ceil(p * n) as a 1-based rank; the epsilon keeps 0.9 * 10 from
    // rounding up to 10 through floating-point error.
    let rank = ((p * n as f64) - 1e-9).ceil().clamp(1.0, n as f64) as usize;
    sorted[rank - 1]
}

/// Microseconds to milliseconds, rounded to 3 decimals (whole µs).
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&v, 0.5), 5);
        assert_eq!(percentile(&v, 0.9), 9);
        assert_eq!(percentile(&v, 0.99), 10);
        assert_eq!(percentile(&v, 1.0), 10);
        assert_eq!(percentile(&v, 0.0001), 1);
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 500);
        assert_eq!(percentile(&v, 0.99), 990);
        assert_eq!(percentile(&v, 0.999), 999);
        assert_eq!(percentile(&[42], 0.5), 42);
        assert_eq!(percentile(&[42], 0.999), 42);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn summary_sorts_and_summarises() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let s = Summary::of(&mut v);
        assert_eq!((s.p50, s.p90, s.p99, s.p999, s.max), (500, 900, 990, 999, 1000));
        assert!((s.mean - 500.5).abs() < 1e-9);
        assert_eq!(Summary::of(&mut []), Summary::default());
    }

    #[test]
    fn microseconds_to_milliseconds() {
        assert_eq!(ms(1500), 1.5);
        assert_eq!(ms(0), 0.0);
        assert_eq!(ms(123_456), 123.456);
    }
}
