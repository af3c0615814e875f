//! The etcd v3 gRPC services (KV, Watch, Lease, Cluster, Maintenance, Auth)
//! over a raft-kv member's async API.
//!
//! Requests are the library's own types (one schema), so a handler is a
//! check, one call to the member and a header. No handler blocks a thread:
//! every call is a future completed by the member's thread. The streaming
//! methods are written over plain `Stream`s ([`watch_stream`],
//! [`keep_alive_stream`], [`snapshot_stream`]) so the JSON gateway serves
//! them with the same code.
//!
//! This module holds what the services share ([`Api`], [`ResponseStream`],
//! the response header); each service is in its own file.

mod auth;
mod cluster;
mod kv;
mod lease;
mod maintenance;
mod snapshot;
mod watch;

use std::pin::Pin;

use futures_core::Stream;
use raft_kv::pb::etcdserverpb as pb;
use tonic::{Response as Reply, Status};

use crate::etcd::{to_status, Shared};

pub use lease::keep_alive_stream;
pub use snapshot::snapshot_stream;
pub use watch::watch_stream;

/// A boxed stream of responses, as tonic's streaming methods return them.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Implements every service over one shared context.
#[derive(Clone)]
pub struct Api {
    ctx: Shared,
}

impl Api {
    /// The services of `ctx`'s member.
    pub fn new(ctx: Shared) -> Self {
        Api { ctx }
    }

    fn count(&self, method: &'static str) {
        self.ctx.metrics.request(method);
    }
}

/// Gives a library result etcd's header (cluster, member, term). Responses
/// nested in a transaction keep the library's revision-only header, as
/// etcd's do.
trait Headed {
    fn headed(self, ctx: &crate::etcd::Ctx) -> Self;
}

macro_rules! headed {
    ($($t:ty),* $(,)?) => {$(
        impl Headed for $t {
            fn headed(mut self, ctx: &crate::etcd::Ctx) -> Self {
                self.header = ctx.complete(self.header.take());
                self
            }
        }
    )*};
}

headed!(
    pb::RangeResponse,
    pb::PutResponse,
    pb::DeleteRangeResponse,
    pb::TxnResponse,
    pb::CompactionResponse,
    pb::LeaseGrantResponse,
    pb::LeaseRevokeResponse,
    pb::LeaseKeepAliveResponse,
    pb::LeaseTimeToLiveResponse,
);

/// Runs a member call and gives its result etcd's header.
async fn answer<T: Headed>(ctx: &Shared, call: raft_kv::Call<T>) -> Result<Reply<T>, Status> {
    call.await.map(|r| Reply::new(r.headed(ctx))).map_err(to_status)
}
