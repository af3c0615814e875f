//! What every etcd API handler shares: the member, response headers, the
//! bridge from the blocking library to async handlers, and the translation of
//! raft-kv errors into the gRPC statuses etcd clients recognise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use raft_kv::{Callback, Error, Node, Op, Response, Status as NodeStatus};
use tonic::{Code, Status};

use crate::metrics::Metrics;
use crate::pb;

/// The API version reported by Maintenance.Status and `/version`.
pub const ETCD_VERSION: &str = "3.5.0";

/// Shared state of one server: the member and what its handlers need.
pub struct Ctx {
    /// The raft-kv member.
    pub node: Node,
    /// Cluster id reported in headers.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// The `--initial-cluster-token`, used to derive ids of added members.
    pub token: String,
    /// Largest request accepted, in bytes.
    pub max_request_bytes: usize,
    /// Most operations per transaction branch.
    pub max_txn_ops: usize,
    /// Longest a handler waits for the member.
    pub request_timeout: Duration,
    /// Quiet time after which a watch that asked for progress notifications
    /// gets one.
    pub watch_progress_interval: Duration,
    /// Request and raft metrics.
    pub metrics: Metrics,
    /// The member's latest status, refreshed in the background.
    pub status: Mutex<Option<NodeStatus>>,
    /// When `status` was refreshed.
    pub status_at: Mutex<Instant>,
}

/// A shared [`Ctx`].
pub type Shared = Arc<Ctx>;

impl Ctx {
    /// A response header at `revision` (0: the member's latest known).
    pub fn header(&self, revision: i64) -> Option<pb::ResponseHeader> {
        let st = self.status.lock();
        let (rev, term) = st.as_ref().map_or((0, 0), |s| (s.revision, s.term));
        Some(pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision: if revision > 0 { revision } else { rev },
            raft_term: term,
        })
    }

    /// Refreshes the cached status (called by the background poller and
    /// by handlers that need a fresh one).
    pub async fn refresh_status(&self) -> Result<NodeStatus, Status> {
        let st = self.blocking(|n| n.status()).await?;
        let prev = self.status.lock().replace(st.clone());
        *self.status_at.lock() = Instant::now();
        self.metrics.observe_status(prev.as_ref(), &st);
        Ok(st)
    }

    /// Runs a blocking library call off the async threads.
    pub async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> raft_kv::Result<R> + Send + 'static,
    ) -> Result<R, Status> {
        let node = self.node.clone();
        match tokio::time::timeout(self.request_timeout, tokio::task::spawn_blocking(move || f(&node))).await {
            Ok(Ok(r)) => r.map_err(to_status),
            Ok(Err(_)) => Err(Status::internal("etcdserver: internal error")),
            Err(_) => Err(to_status(Error::Timeout)),
        }
    }

    /// Hands a callback to the member with `submit` and awaits it, bounded
    /// by the request timeout.
    async fn call(&self, submit: impl FnOnce(Callback)) -> raft_kv::Result<Response> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        submit(Box::new(move |r| {
            let _ = tx.send(r);
        }));
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Proposes `op` through raft and waits for it to apply here.
    pub async fn propose(&self, op: Op) -> Result<Response, Status> {
        let started = Instant::now();
        let res = self.call(|cb| self.node.propose_with(op, cb)).await;
        self.metrics.observe_proposal(started.elapsed(), res.is_ok());
        res.map_err(to_status)
    }

    /// Serves a range (linearizable unless the request is serializable).
    pub async fn range(&self, req: raft_kv::RangeRequest) -> Result<raft_kv::RangeResponse, Status> {
        let res = self.call(|cb| self.node.range_with(req, cb)).await;
        match res.map_err(to_status)? {
            Response::Range(r) => Ok(r),
            _ => Err(Status::internal("etcdserver: unexpected response")),
        }
    }

    /// Checks a request's encoded size against `--max-request-bytes`.
    pub fn check_size(&self, encoded_len: usize) -> Result<(), Status> {
        if encoded_len > self.max_request_bytes {
            return Err(Status::invalid_argument("etcdserver: request is too large"));
        }
        Ok(())
    }

    /// Checks a transaction against `--max-txn-ops` and for empty keys.
    pub fn check_txn(&self, txn: &raft_kv::TxnRequest) -> Result<(), Status> {
        use raft_kv::request_op::Request;
        if txn.compare.len() > self.max_txn_ops
            || txn.success.len() > self.max_txn_ops
            || txn.failure.len() > self.max_txn_ops
        {
            return Err(Status::invalid_argument("etcdserver: too many operations in txn request"));
        }
        for c in &txn.compare {
            if c.key.is_empty() {
                return Err(key_not_provided());
            }
        }
        for op in txn.success.iter().chain(&txn.failure) {
            match &op.request {
                Some(Request::Range(r)) if r.key.is_empty() => return Err(key_not_provided()),
                Some(Request::Put(r)) if r.key.is_empty() => return Err(key_not_provided()),
                Some(Request::DeleteRange(r)) if r.key.is_empty() => return Err(key_not_provided()),
                Some(Request::Txn(inner)) => self.check_txn(inner)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// A response header carrying the member's latest revision.
    pub fn latest_header(&self) -> Option<pb::ResponseHeader> {
        self.header(0)
    }
}

/// etcd's error for a request without a key.
pub fn key_not_provided() -> Status {
    Status::invalid_argument("etcdserver: key is not provided")
}

/// Translates a library error into the gRPC status etcd would return, with
/// etcd's message so client libraries map it to their typed errors.
pub fn to_status(e: Error) -> Status {
    match e {
        Error::NotLeader { leader: None } => Status::unavailable("etcdserver: no leader"),
        Error::NotLeader { leader: Some(_) } => Status::unavailable("etcdserver: not leader"),
        Error::ProposalDropped => Status::unavailable("etcdserver: leader changed"),
        Error::Timeout => Status::unavailable("etcdserver: request timed out"),
        Error::Stopped => Status::unavailable("etcdserver: server stopped"),
        Error::Compacted { .. } => Status::out_of_range("etcdserver: mvcc: required revision has been compacted"),
        Error::FutureRevision { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
        }
        Error::LeaseNotFound => Status::not_found("etcdserver: requested lease not found"),
        Error::MemberNotFound => Status::not_found("etcdserver: member not found"),
        Error::MemberExists => Status::failed_precondition("etcdserver: Peer URLs already exists"),
        Error::LearnerNotReady => {
            Status::failed_precondition("etcdserver: can only promote a learner member which is in sync with leader")
        }
        Error::InvalidArgument(msg) => invalid(&msg),
        Error::Storage(msg) | Error::Corruption(msg) | Error::Raft(msg) => {
            tracing::warn!(error = %msg, "request failed inside the member");
            Status::new(Code::Internal, format!("etcdserver: {msg}"))
        }
    }
}

/// The etcd status of an invalid-argument error from the library.
fn invalid(msg: &str) -> Status {
    let known = [
        ("key is not provided", "etcdserver: key is not provided"),
        ("too many operations", "etcdserver: too many operations in txn request"),
        ("too many compares", "etcdserver: too many operations in txn request"),
        ("more than the limit", "etcdserver: request is too large"),
        ("duplicate key", "etcdserver: duplicate key given in txn request"),
        ("value is provided", "etcdserver: value is provided"),
        ("lease is provided", "etcdserver: lease is provided"),
        ("key not found", "etcdserver: key not found"),
    ];
    for (needle, message) in known {
        if msg.contains(needle) {
            return Status::invalid_argument(message);
        }
    }
    Status::invalid_argument(format!("etcdserver: {msg}"))
}

/// A member id derived like etcd's: from the member's sorted peer URLs and
/// the cluster token, so every member computes the same ids from
/// `--initial-cluster`, and a member added with `member add` computes its own
/// id from its `--initial-advertise-peer-urls`. Never 0.
pub fn member_id(token: &str, peer_urls: &[String]) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(|u| u.trim().trim_end_matches('/')).collect();
    urls.sort_unstable();
    let mut h = Fnv::default();
    for u in urls {
        h.write(u.as_bytes());
        h.write(b"\n");
    }
    h.write(token.as_bytes());
    h.finish().max(1)
}

/// The cluster id: from the token alone, so members added later agree on it
/// whatever `--initial-cluster` they were given. Never 0.
pub fn cluster_id(token: &str) -> u64 {
    let mut h = Fnv::default();
    h.write(b"raft-kv cluster\n");
    h.write(token.as_bytes());
    h.finish().max(1)
}

/// 64-bit FNV-1a: small, stable across releases and platforms.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_order_independent() {
        let a = vec!["http://a:2380".to_string(), "http://b:2380".to_string()];
        let b = vec!["http://b:2380/".to_string(), "http://a:2380".to_string()];
        assert_eq!(member_id("t", &a), member_id("t", &b));
        assert_ne!(member_id("t", &a), member_id("u", &a));
        assert_ne!(cluster_id("t"), cluster_id("u"));
    }

    #[test]
    fn errors_carry_etcd_messages() {
        let s = to_status(Error::Compacted { requested: 1, compact_revision: 5 });
        assert_eq!(
            (s.code(), s.message()),
            (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted")
        );
        let s = to_status(Error::invalid("too many operations in txn request (200 > 128)"));
        assert_eq!(s.message(), "etcdserver: too many operations in txn request");
        assert_eq!(to_status(Error::LeaseNotFound).code(), Code::NotFound);
    }
}
