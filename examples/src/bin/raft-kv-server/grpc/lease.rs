//! The Lease service, with [`keep_alive_stream`] for its keep-alive stream.

use futures_core::Stream;
use futures_util::StreamExt;
use raft_kv::pb::etcdserverpb as pb;
use raft_kv::{Access, Error, LeaseRevoke, Op, Response};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response as Reply, Status, Streaming};

use super::{answer, Api, Headed, ResponseStream};
use crate::authn::Identity;
use crate::etcd::{to_status, Shared};
use examples::services;

/// The LeaseKeepAlive service over any stream of requests: one renewal per
/// request, answered in order; ends when the requests end.
pub fn keep_alive_stream<S>(ctx: Shared, mut input: S) -> ResponseStream<pb::LeaseKeepAliveResponse>
where
    S: Stream<Item = Result<pb::LeaseKeepAliveRequest, Status>> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let k = tokio::select! {
                _ = tx.closed() => return,
                k = input.next() => k,
            };
            let Some(Ok(k)) = k else { return };
            let resp = match ctx.node.lease_keep_alive(k.id).await {
                Ok(r) => r.headed(&ctx),
                // etcd answers an unknown lease with TTL 0, not an error.
                Err(Error::LeaseNotFound) => pb::LeaseKeepAliveResponse { header: ctx.header(0), id: k.id, ttl: 0 },
                Err(e) => {
                    let _ = tx.send(Err(to_status(e))).await;
                    return;
                }
            };
            if tx.send(Ok(resp)).await.is_err() {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

#[tonic::async_trait]
impl services::lease_server::Lease for Api {
    async fn lease_grant(&self, req: Request<pb::LeaseGrantRequest>) -> Result<Reply<pb::LeaseGrantResponse>, Status> {
        self.count("LeaseGrant");
        let id = Identity::of(&req);
        let r = req.into_inner();
        let pick = |r| if let Response::LeaseGrant(g) = r { Some(g) } else { None };
        self.write(&id, Op::LeaseGrant(pb::LeaseGrantRequest { ttl: r.ttl, id: r.id }), pick).await
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Reply<pb::LeaseRevokeResponse>, Status> {
        self.count("LeaseRevoke");
        let id = Identity::of(&req);
        let pick = |r| if let Response::LeaseRevoke(g) = r { Some(g) } else { None };
        self.write(&id, Op::LeaseRevoke(LeaseRevoke::new(req.into_inner().id)), pick).await
    }

    type LeaseKeepAliveStream = ResponseStream<pb::LeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Reply<Self::LeaseKeepAliveStream>, Status> {
        self.count("LeaseKeepAlive");
        self.ctx.auth.check_user(&self.ctx.node, &Identity::of(&req))?;
        Ok(Reply::new(keep_alive_stream(self.ctx.clone(), req.into_inner())))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Reply<pb::LeaseTimeToLiveResponse>, Status> {
        self.count("LeaseTimeToLive");
        let id = Identity::of(&req);
        self.ctx.auth.check_user(&self.ctx.node, &id)?;
        let r = req.into_inner();
        let mut resp = answer(&self.ctx, self.ctx.node.lease_time_to_live(r.id, r.keys)).await?;
        // The attached keys' names are data: the caller must be allowed to
        // read each (etcd 3.5.9's fix of CVE-2023-32082; 3.5.1 lists them
        // to anyone).
        let keys: Vec<_> = resp.get_ref().keys.iter().map(|k| (Access::Read, k.as_ref(), &[][..])).collect();
        if !keys.is_empty() {
            self.ctx.auth.check_access(&self.ctx.node, &id, &keys)?;
        }
        resp.get_mut().id = r.id;
        Ok(resp)
    }

    async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Reply<pb::LeaseLeasesResponse>, Status> {
        self.count("LeaseLeases");
        self.ctx.auth.check_user(&self.ctx.node, &Identity::of(&_req))?;
        let ids = self.ctx.node.leases().await.map_err(to_status)?;
        let leases = ids.into_iter().map(|id| pb::LeaseStatus { id }).collect();
        Ok(Reply::new(pb::LeaseLeasesResponse { header: self.ctx.header(0), leases }))
    }
}
