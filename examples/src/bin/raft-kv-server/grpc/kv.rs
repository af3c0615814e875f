//! The KV service: range, put, delete, transactions and compaction.
//!
//! Ranges are checked against the user's read permissions before they are
//! served; writes are proposed as the user and checked by the member as
//! they apply (see `authn`).

use std::time::Instant;

use prost::Message as _;
use raft_kv::pb::etcdserverpb as pb;
use raft_kv::{Error, Op, Response};
use tonic::{Request, Response as Reply, Status};

use super::{answer, Api, Headed};
use crate::authn::Identity;
use crate::etcd::to_status;
use examples::services;

impl Api {
    /// Proposes a write as the request's user and gives its typed result
    /// etcd's header.
    pub(super) async fn write<T: Headed>(
        &self,
        id: &Identity,
        op: Op,
        pick: fn(Response) -> Option<T>,
    ) -> Result<Reply<T>, Status> {
        let r = self.ctx.auth.write(&self.ctx.node, id, op).await.map_err(to_status)?;
        let r = pick(r).ok_or_else(|| to_status(Error::Corruption("unexpected response kind".into())))?;
        Ok(Reply::new(r.headed(&self.ctx)))
    }
}

#[tonic::async_trait]
impl services::kv_server::Kv for Api {
    async fn range(&self, req: Request<pb::RangeRequest>) -> Result<Reply<pb::RangeResponse>, Status> {
        self.count("Range");
        let id = Identity::of(&req);
        let req = req.into_inner();
        self.ctx.auth.check_read(&self.ctx.node, &id, &req.key, &req.range_end)?;
        // The member validates requests (an empty key is etcd's "key is not
        // provided"); the handlers only add what it cannot see.
        answer(&self.ctx, self.ctx.node.range(req)).await
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Reply<pb::PutResponse>, Status> {
        self.count("Put");
        let id = Identity::of(&req);
        let req = req.into_inner();
        self.ctx.check_size(req.encoded_len())?;
        let started = Instant::now();
        let pick = |r| if let Response::Put(p) = r { Some(p) } else { None };
        let r = self.write(&id, Op::Put(req), pick).await;
        self.ctx.metrics.observe_proposal(started.elapsed(), r.is_ok());
        r
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Reply<pb::DeleteRangeResponse>, Status> {
        self.count("DeleteRange");
        let id = Identity::of(&req);
        let pick = |r| if let Response::DeleteRange(d) = r { Some(d) } else { None };
        self.write(&id, Op::DeleteRange(req.into_inner()), pick).await
    }

    /// A transaction of reads only is served as a proposal too (it is
    /// linearizable either way); the member checks `--max-txn-ops` and keys.
    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Reply<pb::TxnResponse>, Status> {
        self.count("Txn");
        let id = Identity::of(&req);
        let req = req.into_inner();
        self.ctx.check_size(req.encoded_len())?;
        let started = Instant::now();
        let pick = |r| if let Response::Txn(t) = r { Some(t) } else { None };
        let r = self.write(&id, Op::Txn(req), pick).await;
        self.ctx.metrics.observe_proposal(started.elapsed(), r.is_ok());
        r
    }

    async fn compact(&self, req: Request<pb::CompactionRequest>) -> Result<Reply<pb::CompactionResponse>, Status> {
        self.count("Compact");
        let id = Identity::of(&req);
        let pick = |r| if let Response::Compact(c) = r { Some(c) } else { None };
        self.write(&id, Op::Compact(req.into_inner()), pick).await
    }
}
