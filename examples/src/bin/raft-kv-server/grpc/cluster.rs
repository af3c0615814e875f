//! The Cluster service: member add, remove, update, list and promote.

use raft_kv::pb::etcdserverpb as pb;
use raft_kv::Error;
use tonic::{Request, Response as Reply, Status};

use super::Api;
use crate::authn::Identity;
use crate::etcd::{member_id, to_status};
use examples::services;

#[tonic::async_trait]
impl services::cluster_server::Cluster for Api {
    async fn member_add(&self, req: Request<pb::MemberAddRequest>) -> Result<Reply<pb::MemberAddResponse>, Status> {
        self.count("MemberAdd");
        self.ctx.auth.check_admin(&self.ctx.node, &Identity::of(&req))?;
        let r = req.into_inner();
        if r.peer_ur_ls.is_empty() {
            return Err(to_status(raft_kv::InvalidRequest::NoPeerUrls.into()));
        }
        let mut member = raft_kv::Member::new(member_id(&self.ctx.token, &r.peer_ur_ls), r.peer_ur_ls);
        member.is_learner = r.is_learner;
        let m = self.ctx.node.member_add(member).await.map_err(to_status)?;
        Ok(Reply::new(pb::MemberAddResponse { header: self.ctx.header(0), member: m.member, members: m.members }))
    }

    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Reply<pb::MemberRemoveResponse>, Status> {
        self.count("MemberRemove");
        self.ctx.auth.check_admin(&self.ctx.node, &Identity::of(&req))?;
        let m = self.ctx.node.member_remove(req.into_inner().id).await.map_err(to_status)?;
        Ok(Reply::new(pb::MemberRemoveResponse { header: self.ctx.header(0), members: m.members }))
    }

    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Reply<pb::MemberUpdateResponse>, Status> {
        self.count("MemberUpdate");
        self.ctx.auth.check_admin(&self.ctx.node, &Identity::of(&req))?;
        let r = req.into_inner();
        let m = self.ctx.node.member_update(r.id, r.peer_ur_ls).await.map_err(to_status)?;
        Ok(Reply::new(pb::MemberUpdateResponse { header: self.ctx.header(0), members: m.members }))
    }

    async fn member_list(&self, _req: Request<pb::MemberListRequest>) -> Result<Reply<pb::MemberListResponse>, Status> {
        self.count("MemberList");
        let members = self.ctx.node.member_list().await.map_err(to_status)?;
        Ok(Reply::new(pb::MemberListResponse { header: self.ctx.header(0), members }))
    }

    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Reply<pb::MemberPromoteResponse>, Status> {
        self.count("MemberPromote");
        self.ctx.auth.check_admin(&self.ctx.node, &Identity::of(&req))?;
        let id = req.get_ref().id;
        match self.ctx.node.member_promote(id).await {
            Ok(m) => Ok(Reply::new(pb::MemberPromoteResponse { header: self.ctx.header(0), members: m.members })),
            // Only the leader can judge a learner's progress: ask it.
            Err(Error::NotLeader { leader }) => {
                let url = self.ctx.client_url(leader).await?;
                let mut client = services::cluster_client::ClusterClient::connect(url)
                    .await
                    .map_err(|_| Status::unavailable("etcdserver: not leader"))?;
                client.member_promote(pb::MemberPromoteRequest { id }).await
            }
            Err(e) => Err(to_status(e)),
        }
    }
}
