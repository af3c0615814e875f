//! The Auth service: authentication is not enabled on this server.

use raft_kv::pb::etcdserverpb as pb;
use tonic::{Request, Response as Reply, Status};

use super::Api;
use examples::services;

/// Authentication is not enabled on this server (users and roles arrive
/// with TLS and auth): status reports it off, lists are empty, and every
/// change or sign-in is refused with etcd's "not enabled" error.
fn auth_not_enabled() -> Status {
    Status::failed_precondition("etcdserver: authentication is not enabled")
}

#[tonic::async_trait]
impl services::auth_server::Auth for Api {
    async fn auth_enable(&self, _req: Request<pb::AuthEnableRequest>) -> Result<Reply<pb::AuthEnableResponse>, Status> {
        self.count("AuthEnable");
        Err(Status::failed_precondition("etcdserver: root user does not exist"))
    }

    async fn auth_disable(
        &self,
        _req: Request<pb::AuthDisableRequest>,
    ) -> Result<Reply<pb::AuthDisableResponse>, Status> {
        self.count("AuthDisable");
        Ok(Reply::new(pb::AuthDisableResponse { header: self.ctx.header(0) }))
    }

    async fn auth_status(&self, _req: Request<pb::AuthStatusRequest>) -> Result<Reply<pb::AuthStatusResponse>, Status> {
        self.count("AuthStatus");
        Ok(Reply::new(pb::AuthStatusResponse { header: self.ctx.header(0), enabled: false, auth_revision: 1 }))
    }

    async fn user_list(
        &self,
        _req: Request<pb::AuthUserListRequest>,
    ) -> Result<Reply<pb::AuthUserListResponse>, Status> {
        self.count("UserList");
        Ok(Reply::new(pb::AuthUserListResponse { header: self.ctx.header(0), users: Vec::new() }))
    }

    async fn role_list(
        &self,
        _req: Request<pb::AuthRoleListRequest>,
    ) -> Result<Reply<pb::AuthRoleListResponse>, Status> {
        self.count("RoleList");
        Ok(Reply::new(pb::AuthRoleListResponse { header: self.ctx.header(0), roles: Vec::new() }))
    }

    async fn user_get(&self, _req: Request<pb::AuthUserGetRequest>) -> Result<Reply<pb::AuthUserGetResponse>, Status> {
        self.count("UserGet");
        Err(Status::failed_precondition("etcdserver: user name not found"))
    }

    async fn role_get(&self, _req: Request<pb::AuthRoleGetRequest>) -> Result<Reply<pb::AuthRoleGetResponse>, Status> {
        self.count("RoleGet");
        Err(Status::failed_precondition("etcdserver: role name not found"))
    }

    async fn authenticate(
        &self,
        _req: Request<pb::AuthenticateRequest>,
    ) -> Result<Reply<pb::AuthenticateResponse>, Status> {
        self.count("authenticate");
        Err(auth_not_enabled())
    }

    async fn user_add(&self, _req: Request<pb::AuthUserAddRequest>) -> Result<Reply<pb::AuthUserAddResponse>, Status> {
        self.count("user_add");
        Err(auth_not_enabled())
    }

    async fn user_delete(
        &self,
        _req: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Reply<pb::AuthUserDeleteResponse>, Status> {
        self.count("user_delete");
        Err(auth_not_enabled())
    }

    async fn user_change_password(
        &self,
        _req: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Reply<pb::AuthUserChangePasswordResponse>, Status> {
        self.count("user_change_password");
        Err(auth_not_enabled())
    }

    async fn user_grant_role(
        &self,
        _req: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Reply<pb::AuthUserGrantRoleResponse>, Status> {
        self.count("user_grant_role");
        Err(auth_not_enabled())
    }

    async fn user_revoke_role(
        &self,
        _req: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Reply<pb::AuthUserRevokeRoleResponse>, Status> {
        self.count("user_revoke_role");
        Err(auth_not_enabled())
    }

    async fn role_add(&self, _req: Request<pb::AuthRoleAddRequest>) -> Result<Reply<pb::AuthRoleAddResponse>, Status> {
        self.count("role_add");
        Err(auth_not_enabled())
    }

    async fn role_delete(
        &self,
        _req: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Reply<pb::AuthRoleDeleteResponse>, Status> {
        self.count("role_delete");
        Err(auth_not_enabled())
    }

    async fn role_grant_permission(
        &self,
        _req: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Reply<pb::AuthRoleGrantPermissionResponse>, Status> {
        self.count("role_grant_permission");
        Err(auth_not_enabled())
    }

    async fn role_revoke_permission(
        &self,
        _req: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Reply<pb::AuthRoleRevokePermissionResponse>, Status> {
        self.count("role_revoke_permission");
        Err(auth_not_enabled())
    }
}
