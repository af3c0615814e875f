//! The KV service: range, put, delete, transactions and compaction.

use std::time::Instant;

use prost::Message as _;
use raft_kv::pb::etcdserverpb as pb;
use tonic::{Request, Response as Reply, Status};

use super::{answer, Api};
use examples::services;

#[tonic::async_trait]
impl services::kv_server::Kv for Api {
    async fn range(&self, req: Request<pb::RangeRequest>) -> Result<Reply<pb::RangeResponse>, Status> {
        self.count("Range");
        // The member validates requests (an empty key is etcd's "key is not
        // provided"); the handlers only add what it cannot see.
        answer(&self.ctx, self.ctx.node.range(req.into_inner())).await
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Reply<pb::PutResponse>, Status> {
        self.count("Put");
        let req = req.into_inner();
        self.ctx.check_size(req.encoded_len())?;
        let started = Instant::now();
        let r = answer(&self.ctx, self.ctx.node.put_request(req)).await;
        self.ctx.metrics.observe_proposal(started.elapsed(), r.is_ok());
        r
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Reply<pb::DeleteRangeResponse>, Status> {
        self.count("DeleteRange");
        answer(&self.ctx, self.ctx.node.delete_range(req.into_inner())).await
    }

    /// A transaction of reads only is served as a proposal too (it is
    /// linearizable either way); the member checks `--max-txn-ops` and keys.
    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Reply<pb::TxnResponse>, Status> {
        self.count("Txn");
        let req = req.into_inner();
        self.ctx.check_size(req.encoded_len())?;
        let started = Instant::now();
        let r = answer(&self.ctx, self.ctx.node.txn(req)).await;
        self.ctx.metrics.observe_proposal(started.elapsed(), r.is_ok());
        r
    }

    async fn compact(&self, req: Request<pb::CompactionRequest>) -> Result<Reply<pb::CompactionResponse>, Status> {
        self.count("Compact");
        answer(&self.ctx, self.ctx.node.compact_request(req.into_inner())).await
    }
}
