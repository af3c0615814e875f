//! etcd's `WithRequireLeader`: a gRPC request carrying the metadata
//! `hasleader: true` fails fast with Unavailable "etcdserver: no leader" when
//! the member knows no leader, instead of waiting for one. The request is
//! tagged with [`RequireLeader`] so a stream that outlives the check (Watch)
//! can keep checking; as in etcd, such a stream is ended with the same
//! error once the member has had no leader for [`NO_LEADER_CHECKS`] election
//! timeouts in a row.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tonic::Status;

use crate::etcd::Shared;

/// The gRPC metadata key clientv3's `WithRequireLeader` sets, and its value.
const KEY: &str = "hasleader";

/// Election timeouts without a leader after which a leader-requiring
/// stream is ended (etcd's `maxNoLeaderCnt`).
pub const NO_LEADER_CHECKS: u32 = 3;

/// etcd's error for a leader-requiring request on a member without one.
pub fn no_leader() -> Status {
    Status::unavailable("etcdserver: no leader")
}

/// A request extension: the client asked for `hasleader`.
#[derive(Debug, Clone, Copy)]
pub struct RequireLeader;

/// The check, for any request: `Err` with etcd's refusal when the request
/// asks for a leader and the member knows none; else `Ok`, the request
/// tagged with [`RequireLeader`] if it asked.
pub fn admit<B>(ctx: &Shared, req: &mut axum::http::Request<B>) -> Result<(), Status> {
    if req.headers().get(KEY).is_some_and(|v| v.as_bytes() == b"true") {
        if ctx.node.state().leader == 0 {
            return Err(no_leader());
        }
        req.extensions_mut().insert(RequireLeader);
    }
    Ok(())
}

/// The middleware, on the gateway's routes (gRPC calls are checked by
/// [`crate::dispatch`]).
pub async fn check(State(ctx): State<Shared>, mut req: Request, next: Next) -> Response {
    match admit(&ctx, &mut req) {
        Ok(()) => next.run(req).await,
        Err(refused) => refused.into_http(),
    }
}
