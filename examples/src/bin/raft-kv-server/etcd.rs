//! What every etcd API handler shares: the member, response headers, and
//! the translation of raft-kv errors into the gRPC statuses etcd clients
//! recognise (by error variant, never by message text).

use std::sync::Arc;
use std::time::Duration;

use raft_kv::hash::Fnv64;
use raft_kv::pb::etcdserverpb as pb;
use raft_kv::{AsyncNode, AuthError, Error, InvalidRequest};
use tonic::{Code, Status};

use crate::metrics::Metrics;

/// The server version reported by Maintenance.Status and `/version`: an
/// etcd 3.5 at which Kubernetes turns on RequestWatchProgress (it checks
/// for 3.5.13 or later), whose behaviour raft-kv has.
pub const ETCD_VERSION: &str = "3.5.17";
/// `--version`, in etcd 3.5's four lines. raft-kv has no Go: `Go Version`
/// names the Rust compiler and raft-kv's own version instead, and `Go
/// OS/Arch` is the target in Go's names (`linux/amd64`), which is what
/// scripts that read these lines look for.
pub fn version_text() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        other => other,
    };
    format!(
        "etcd Version: {ETCD_VERSION}\nGit SHA: {}\nGo Version: none (raft-kv {}, {})\nGo OS/Arch: {}/{arch}\n",
        env!("RAFT_KV_GIT_SHA"),
        env!("CARGO_PKG_VERSION"),
        env!("RAFT_KV_RUSTC"),
        std::env::consts::OS,
    )
}

/// The cluster version reported by `/version` (etcd reports major.minor.0).
pub const CLUSTER_VERSION: &str = "3.5.0";

/// Shared state of one server: the member and what its handlers need.
pub struct Ctx {
    /// The raft-kv member.
    pub node: AsyncNode,
    /// Cluster id reported in headers.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// The `--initial-cluster-token`, used to derive ids of added members.
    pub token: String,
    /// Largest request accepted, in bytes.
    pub max_request_bytes: usize,
    /// Quiet time after which a watch that asked for progress notifications
    /// gets one.
    pub watch_progress_interval: Duration,
    /// Raft's election timeout (how often a leader-requiring stream checks
    /// for a leader).
    pub election_timeout: Duration,
    /// Request and raft metrics.
    pub metrics: Metrics,
    /// The peer transport (for its metrics).
    pub transport: transport_tcp::TcpHandle,
    /// Tokens, password hashing and RBAC checks.
    pub auth: crate::authn::Authn,
    /// The data directory (snapshot files are built in it, not in memory).
    pub data_dir: std::path::PathBuf,
}

/// A shared [`Ctx`].
pub type Shared = Arc<Ctx>;

impl Ctx {
    /// A response header at `revision` (0: the member's latest), with the
    /// member's current term: read from the state the member publishes,
    /// without a round trip.
    pub fn header(&self, revision: i64) -> Option<pb::ResponseHeader> {
        let st = self.node.state();
        self.header_of(&st, if revision > 0 { revision } else { st.revision })
    }

    /// A header at the member's latest revision, or `revision` if that is
    /// newer (one read of the member's state).
    pub fn header_not_before(&self, revision: i64) -> Option<pb::ResponseHeader> {
        let st = self.node.state();
        self.header_of(&st, revision.max(st.revision))
    }

    fn header_of(&self, st: &raft_kv::MemberState, revision: i64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: st.term,
        })
    }

    /// Completes a header the library started (it carries the revision).
    pub fn complete(&self, h: Option<pb::ResponseHeader>) -> Option<pb::ResponseHeader> {
        self.header(h.map_or(0, |h| h.revision))
    }

    /// Checks a request's encoded size against `--max-request-bytes`.
    pub fn check_size(&self, encoded_len: usize) -> Result<(), Status> {
        if encoded_len > self.max_request_bytes {
            return Err(to_status(InvalidRequest::TooLarge.into()));
        }
        Ok(())
    }

    /// The client URL of the member with `id`, for requests only the leader
    /// can serve.
    pub async fn client_url(&self, id: u64) -> Result<String, Status> {
        let members = self.node.member_list().await.map_err(to_status)?;
        members
            .into_iter()
            .find(|m| m.id == id)
            .and_then(|m| m.client_ur_ls.into_iter().next())
            .ok_or_else(|| Status::unavailable("etcdserver: not leader"))
    }
}

/// Translates a library error into the gRPC status etcd would return, with
/// etcd's message so client libraries map it to their typed errors.
pub fn to_status(e: Error) -> Status {
    match e {
        Error::NoLeader => Status::unavailable("etcdserver: no leader"),
        Error::NotLeader { .. } => Status::unavailable("etcdserver: not leader"),
        Error::ProposalDropped => Status::unavailable("etcdserver: leader changed"),
        Error::Timeout => Status::unavailable("etcdserver: request timed out"),
        Error::Stopped => Status::unavailable("etcdserver: server stopped"),
        Error::TooManyRequests => Status::resource_exhausted("etcdserver: too many requests"),
        e @ Error::NoSpace => Status::resource_exhausted(e.to_string()),
        e @ Error::Corrupt => Status::data_loss(e.to_string()),
        e @ Error::ResponseTooLarge { .. } => Status::resource_exhausted(e.to_string()),
        Error::Compacted { .. } => Status::out_of_range("etcdserver: mvcc: required revision has been compacted"),
        Error::FutureRevision { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
        }
        Error::LeaseNotFound => Status::not_found("etcdserver: requested lease not found"),
        Error::LeaseExists => Status::failed_precondition("etcdserver: lease already exists"),
        Error::MemberNotFound => Status::not_found("etcdserver: member not found"),
        Error::MemberExists => Status::failed_precondition("etcdserver: Peer URLs already exists"),
        Error::LearnerNotReady => {
            Status::failed_precondition("etcdserver: can only promote a learner member which is in sync with leader")
        }
        Error::MemberNotLearner => Status::failed_precondition("etcdserver: can only promote a learner member"),
        Error::Invalid(r @ InvalidRequest::LeaseTtlTooLarge) => Status::out_of_range(r.to_string()),
        Error::Invalid(r) => Status::invalid_argument(r.to_string()),
        Error::Auth(a) => auth_status(a),
        other => {
            tracing::warn!(error = %other, "request failed inside the member");
            Status::new(Code::Internal, format!("etcdserver: {other}"))
        }
    }
}

/// etcd's gRPC code for each auth refusal (rpctypes).
fn auth_status(a: AuthError) -> Status {
    let code = match a {
        AuthError::PermissionDenied => Code::PermissionDenied,
        AuthError::InvalidToken => Code::Unauthenticated,
        AuthError::UserEmpty
        | AuthError::AuthFailed
        | AuthError::RoleEmpty
        | AuthError::PermissionNotGiven
        | AuthError::InvalidAuthMgmt => Code::InvalidArgument,
        // etcd 3.5.1 passes its auth package's error through unmapped.
        AuthError::OldRevision => Code::Unknown,
        _ => Code::FailedPrecondition,
    };
    Status::new(code, a.to_string())
}

/// A member id derived like etcd's: from the member's sorted peer URLs and
/// the cluster token, so every member computes the same ids from
/// `--initial-cluster`, and a member added with `member add` computes its own
/// id from its `--initial-advertise-peer-urls`. Never 0.
pub fn member_id(token: &str, peer_urls: &[String]) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(|u| u.trim().trim_end_matches('/')).collect();
    urls.sort_unstable();
    let mut h = Fnv64::new();
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
    let mut h = Fnv64::new();
    h.write(b"raft-kv cluster\n");
    h.write(token.as_bytes());
    h.finish().max(1)
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
        let s = to_status(InvalidRequest::TooManyOps.into());
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "etcdserver: too many operations in txn request"));
        assert_eq!(to_status(Error::LeaseNotFound).code(), Code::NotFound);
        assert_eq!(to_status(Error::NoLeader).message(), "etcdserver: no leader");
        assert_eq!(to_status(InvalidRequest::LeaseTtlTooLarge.into()).code(), Code::OutOfRange);
        let s = to_status(AuthError::PermissionDenied.into());
        assert_eq!((s.code(), s.message()), (Code::PermissionDenied, "etcdserver: permission denied"));
        let s = to_status(AuthError::InvalidToken.into());
        assert_eq!((s.code(), s.message()), (Code::Unauthenticated, "etcdserver: invalid auth token"));
        assert_eq!(to_status(AuthError::UserEmpty.into()).code(), Code::InvalidArgument);
        assert_eq!(to_status(AuthError::RootUserMissing.into()).code(), Code::FailedPrecondition);
    }
}
