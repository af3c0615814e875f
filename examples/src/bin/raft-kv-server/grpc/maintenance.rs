//! The Maintenance service (Snapshot is in `snapshot.rs`).

use raft_kv::pb::etcdserverpb as pb;
use raft_kv::{Error, Role};
use tonic::{Request, Response as Reply, Status};

use super::{Api, ResponseStream};
use crate::authn::Identity;
use crate::etcd::{to_status, ETCD_VERSION};
use examples::services;

/// etcd's hashes are 32-bit: fold the library's 64-bit hash.
fn fold_hash(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

#[tonic::async_trait]
impl services::maintenance_server::Maintenance for Api {
    /// GET lists the active alarms as this member applied them; ACTIVATE
    /// and DEACTIVATE go through raft (`etcdctl alarm disarm` sends one
    /// DEACTIVATE per listed alarm).
    async fn alarm(&self, req: Request<pb::AlarmRequest>) -> Result<Reply<pb::AlarmResponse>, Status> {
        self.count("Alarm");
        let resp = self.ctx.node.alarm(req.into_inner()).await.map_err(to_status)?;
        Ok(Reply::new(pb::AlarmResponse { header: self.ctx.header(0), alarms: resp.alarms }))
    }

    async fn status(&self, _req: Request<pb::StatusRequest>) -> Result<Reply<pb::StatusResponse>, Status> {
        self.count("Status");
        let s = self.ctx.node.status().await.map_err(to_status)?;
        let mut errors = if s.state.leader == 0 { vec!["etcdserver: no leader".to_string()] } else { Vec::new() };
        // etcd lists each active alarm here, in the protobuf text form
        // `etcdctl alarm list` prints.
        errors.extend(s.alarms.iter().map(alarm_text));
        Ok(Reply::new(pb::StatusResponse {
            header: self.ctx.header(s.state.revision),
            version: ETCD_VERSION.to_string(),
            db_size: s.db_size as i64,
            leader: s.state.leader,
            raft_index: s.state.commit_index,
            raft_term: s.state.term,
            raft_applied_index: s.state.applied_index,
            errors,
            db_size_in_use: s.db_size_in_use as i64,
            is_learner: s.learners.contains(&s.state.id),
        }))
    }

    /// Compacts this member's whole RocksDB off its node thread and
    /// answers when done, as etcd answers after rewriting its bbolt file.
    async fn defragment(&self, _req: Request<pb::DefragmentRequest>) -> Result<Reply<pb::DefragmentResponse>, Status> {
        self.count("Defragment");
        self.ctx.auth.check_maintenance(&self.ctx.node, &Identity::of(&_req))?;
        self.ctx.node.defragment().await.map_err(to_status)?;
        Ok(Reply::new(pb::DefragmentResponse { header: self.ctx.header(0) }))
    }

    async fn hash(&self, _req: Request<pb::HashRequest>) -> Result<Reply<pb::HashResponse>, Status> {
        self.count("Hash");
        self.ctx.auth.check_maintenance(&self.ctx.node, &Identity::of(&_req))?;
        let h = self.ctx.node.hash(0).await.map_err(to_status)?;
        Ok(Reply::new(pb::HashResponse { header: self.ctx.header(0), hash: fold_hash(h) }))
    }

    async fn hash_kv(&self, req: Request<pb::HashKvRequest>) -> Result<Reply<pb::HashKvResponse>, Status> {
        self.count("HashKV");
        self.ctx.auth.check_maintenance(&self.ctx.node, &Identity::of(&req))?;
        let rev = req.into_inner().revision;
        let st = self.ctx.node.state();
        let h = self.ctx.node.hash(rev).await.map_err(to_status)?;
        Ok(Reply::new(pb::HashKvResponse {
            header: self.ctx.header(st.revision),
            hash: fold_hash(h),
            compact_revision: st.compact_revision,
            hash_revision: if rev > 0 { rev } else { st.revision },
        }))
    }

    type SnapshotStream = ResponseStream<pb::SnapshotResponse>;

    async fn snapshot(&self, _req: Request<pb::SnapshotRequest>) -> Result<Reply<Self::SnapshotStream>, Status> {
        self.count("Snapshot");
        self.ctx.auth.check_maintenance(&self.ctx.node, &Identity::of(&_req))?;
        Ok(Reply::new(super::snapshot_stream(self.ctx.clone()).await?))
    }

    async fn move_leader(&self, req: Request<pb::MoveLeaderRequest>) -> Result<Reply<pb::MoveLeaderResponse>, Status> {
        self.count("MoveLeader");
        self.ctx.auth.check_maintenance(&self.ctx.node, &Identity::of(&req))?;
        let token = req.metadata().get("token").cloned();
        let target = req.into_inner().target_id;
        let st = self.ctx.node.status().await.map_err(to_status)?;
        if !st.voters.contains(&target) {
            return Err(Status::failed_precondition("etcdserver: bad leader transferee"));
        }
        if st.state.role != Role::Leader {
            // etcd requires this call on the leader; we forward it there.
            if st.state.leader == 0 {
                return Err(to_status(Error::NoLeader));
            }
            let url = self.ctx.client_url(st.state.leader).await?;
            let mut client = services::maintenance_client::MaintenanceClient::connect(url)
                .await
                .map_err(|_| Status::unavailable("etcdserver: not leader"))?;
            // The leader checks the caller again: pass the token on.
            let mut forward = Request::new(pb::MoveLeaderRequest { target_id: target });
            if let Some(t) = token {
                forward.metadata_mut().insert("token", t);
            }
            return client.move_leader(forward).await;
        }
        self.ctx.node.move_leader(target).await.map_err(to_status)?;
        Ok(Reply::new(pb::MoveLeaderResponse { header: self.ctx.header(0) }))
    }

    /// Downgrades need a second storage format to go back to; raft-kv has
    /// one. The target is checked like etcd checks it (one minor version
    /// below the cluster's), so VALIDATE answers as etcd does, and ENABLE
    /// of a valid target is refused.
    async fn downgrade(&self, req: Request<pb::DowngradeRequest>) -> Result<Reply<pb::DowngradeResponse>, Status> {
        use pb::downgrade_request::DowngradeAction;
        self.count("Downgrade");
        self.ctx.auth.check_maintenance(&self.ctx.node, &Identity::of(&req))?;
        let r = req.into_inner();
        let action = DowngradeAction::try_from(r.action).unwrap_or(DowngradeAction::Validate);
        if action == DowngradeAction::Cancel {
            return Err(Status::failed_precondition("etcdserver: no inflight downgrade job"));
        }
        let parts = r.version.split('.').take(2).map(|p| p.parse::<u32>()).collect::<Result<Vec<_>, _>>();
        let target = match parts.as_deref() {
            Ok([major, minor]) => (*major, *minor),
            _ => return Err(Status::invalid_argument("etcdserver: wrong downgrade target version format")),
        };
        if target != (3, 4) {
            return Err(Status::invalid_argument("etcdserver: invalid downgrade target version"));
        }
        if action == DowngradeAction::Enable {
            return Err(Status::failed_precondition("etcdserver: raft-kv cannot downgrade its storage format"));
        }
        Ok(Reply::new(pb::DowngradeResponse {
            header: self.ctx.header(0),
            version: crate::etcd::CLUSTER_VERSION.into(),
        }))
    }
}

/// An alarm as etcd's `AlarmMember.String()` writes it (protobuf text):
/// `memberID:10276657743932975437 alarm:NOSPACE `.
fn alarm_text(a: &pb::AlarmMember) -> String {
    let kind = pb::AlarmType::try_from(a.alarm).map_or_else(|_| a.alarm.to_string(), |t| t.as_str_name().to_string());
    format!("memberID:{} alarm:{} ", a.member_id, kind)
}
