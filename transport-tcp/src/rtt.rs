//! Round trips to each peer over the raft path itself: the time from
//! writing a `MsgHeartbeat` to a peer to reading that peer's
//! `MsgHeartbeatResponse` (the peer's node thread answers it, so the figure
//! covers both sockets, both transports and the peer's raft loop, as
//! etcd's prober over the peer's HTTP endpoint does).
//!
//! Only the member that sends heartbeats (the leader) has round trips to
//! measure. A peer is sampled at most once per [`SAMPLE_EVERY`], one
//! heartbeat at a time: a heartbeat whose answer takes longer than
//! [`ANSWER_WITHIN`] is forgotten (lost, or the peer is down), so the state
//! is two instants per peer and the hook runs at most once a second per
//! peer. Heartbeats go out every heartbeat tick (100 ms by default), far
//! apart compared to a round trip, so an answer is the sampled heartbeat's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Shortest time between two samples of one peer.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// A heartbeat not answered within this is not sampled.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Receives each measured round trip: the peer's id and the time.
#[derive(Clone)]
pub struct RoundTripHook(pub(crate) Arc<dyn Fn(u64, Duration) + Send + Sync>);

impl RoundTripHook {
    /// A hook that calls `f` (from a transport thread: keep it cheap).
    pub fn new(f: impl Fn(u64, Duration) + Send + Sync + 'static) -> Self {
        RoundTripHook(Arc::new(f))
    }
}

impl std::fmt::Debug for RoundTripHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoundTripHook")
    }
}

/// One peer's sampled heartbeat: when it was written, and when the last
/// sample was taken.
#[derive(Debug, Default)]
pub(crate) struct HeartbeatProbe(Mutex<(Option<Instant>, Option<Instant>)>);

impl HeartbeatProbe {
    /// A heartbeat is about to be written at `now`: true if it is sampled.
    pub(crate) fn sending(&self, now: Instant) -> bool {
        let mut s = self.0.lock();
        let (sent, last) = *s;
        let in_flight = sent.is_some_and(|t| now.duration_since(t) < ANSWER_WITHIN);
        let too_soon = last.is_some_and(|t| now.duration_since(t) < SAMPLE_EVERY);
        if in_flight || too_soon {
            return false;
        }
        s.0 = Some(now);
        true
    }

    /// The sampled heartbeat was not written after all.
    pub(crate) fn failed(&self) {
        self.0.lock().0 = None;
    }

    /// A heartbeat answer arrived at `now`: the round trip, if a sampled
    /// heartbeat was waiting for it (in time).
    pub(crate) fn answered(&self, now: Instant) -> Option<Duration> {
        let mut s = self.0.lock();
        let took = now.duration_since(s.0.take()?);
        (took <= ANSWER_WITHIN).then(|| {
            s.1 = Some(now);
            took
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_heartbeat_at_a_time_at_most_once_a_second() {
        let p = HeartbeatProbe::default();
        let t0 = Instant::now();
        assert_eq!(p.answered(t0), None, "no heartbeat sampled yet");
        assert!(p.sending(t0));
        assert!(!p.sending(t0 + Duration::from_millis(100)), "one in flight");
        assert_eq!(p.answered(t0 + Duration::from_millis(3)), Some(Duration::from_millis(3)));
        assert_eq!(p.answered(t0 + Duration::from_millis(4)), None, "answered once");
        assert!(!p.sending(t0 + Duration::from_millis(500)), "sampled less than a second ago");
        let t1 = t0 + Duration::from_millis(1100);
        assert!(p.sending(t1));
        assert_eq!(p.answered(t1 + ANSWER_WITHIN + Duration::from_millis(1)), None, "answered too late");
        let t2 = t1 + Duration::from_secs(3);
        assert!(p.sending(t2));
        p.failed();
        assert_eq!(p.answered(t2 + Duration::from_millis(1)), None, "never written");
        assert!(p.sending(t2 + Duration::from_millis(2)), "a lost heartbeat frees the probe");
    }
}
