//! The Auth service: users, roles, permissions and sign-in, with etcd's
//! rules. Changes go through raft (the member applies etcd's rules and,
//! with auth enabled, checks the caller is root as the change applies);
//! gets and lists are served from the member's applied auth state.

use raft_kv::pb::etcdserverpb as pb;
use raft_kv::{AuthChange, AuthError, Op, SimpleToken, ROOT};
use tonic::{Request, Response as Reply, Status};

use super::Api;
use crate::authn::{Authn, Identity, TokenKind};
use crate::etcd::to_status;
use examples::services;

impl Api {
    /// Proposes an auth change as the request's user; completes with the
    /// response header.
    async fn change(&self, id: &Identity, change: AuthChange) -> Result<Option<pb::ResponseHeader>, Status> {
        self.ctx.auth.write(&self.ctx.node, id, Op::from(change)).await.map_err(to_status)?;
        Ok(self.ctx.header(0))
    }
}

fn refuse(e: AuthError) -> Status {
    to_status(e.into())
}

#[tonic::async_trait]
impl services::auth_server::Auth for Api {
    async fn auth_enable(&self, req: Request<pb::AuthEnableRequest>) -> Result<Reply<pb::AuthEnableResponse>, Status> {
        self.count("AuthEnable");
        let id = Identity::of(&req);
        let header = self.change(&id, AuthChange::Enable(req.into_inner())).await?;
        Ok(Reply::new(pb::AuthEnableResponse { header }))
    }

    async fn auth_disable(
        &self,
        req: Request<pb::AuthDisableRequest>,
    ) -> Result<Reply<pb::AuthDisableResponse>, Status> {
        self.count("AuthDisable");
        let id = Identity::of(&req);
        let header = self.change(&id, AuthChange::Disable(req.into_inner())).await?;
        Ok(Reply::new(pb::AuthDisableResponse { header }))
    }

    /// Root only while auth is enabled, as in etcd 3.5.
    async fn auth_status(&self, req: Request<pb::AuthStatusRequest>) -> Result<Reply<pb::AuthStatusResponse>, Status> {
        self.count("AuthStatus");
        self.ctx.auth.check_admin(&self.ctx.node, &Identity::of(&req))?;
        let st = self.ctx.node.auth_state();
        Ok(Reply::new(pb::AuthStatusResponse {
            header: self.ctx.header(0),
            enabled: st.enabled(),
            auth_revision: st.revision(),
        }))
    }

    async fn user_list(
        &self,
        req: Request<pb::AuthUserListRequest>,
    ) -> Result<Reply<pb::AuthUserListResponse>, Status> {
        self.count("UserList");
        self.ctx.auth.check_admin(&self.ctx.node, &Identity::of(&req))?;
        let users = self.ctx.node.auth_state().user_names();
        Ok(Reply::new(pb::AuthUserListResponse { header: self.ctx.header(0), users }))
    }

    async fn role_list(
        &self,
        req: Request<pb::AuthRoleListRequest>,
    ) -> Result<Reply<pb::AuthRoleListResponse>, Status> {
        self.count("RoleList");
        self.ctx.auth.check_admin(&self.ctx.node, &Identity::of(&req))?;
        let roles = self.ctx.node.auth_state().role_names();
        Ok(Reply::new(pb::AuthRoleListResponse { header: self.ctx.header(0), roles }))
    }

    /// A user may read their own record; root may read anyone's (anyone
    /// else gets the admin check's refusal, as in etcd).
    async fn user_get(&self, req: Request<pb::AuthUserGetRequest>) -> Result<Reply<pb::AuthUserGetResponse>, Status> {
        self.count("UserGet");
        let caller = self.ctx.auth.user(&self.ctx.node, &Identity::of(&req))?;
        let name = req.into_inner().name;
        let st = self.ctx.node.auth_state();
        if caller != name {
            st.check_admin(&caller).map_err(to_status)?;
        }
        let user = st.user(&name).ok_or_else(|| refuse(AuthError::UserNotFound))?;
        Ok(Reply::new(pb::AuthUserGetResponse { header: self.ctx.header(0), roles: user.roles.clone() }))
    }

    /// A user may read the roles they have; root may read any (anyone else
    /// gets the admin check's refusal, as in etcd).
    async fn role_get(&self, req: Request<pb::AuthRoleGetRequest>) -> Result<Reply<pb::AuthRoleGetResponse>, Status> {
        self.count("RoleGet");
        let caller = self.ctx.auth.user(&self.ctx.node, &Identity::of(&req))?;
        let name = req.into_inner().role;
        let st = self.ctx.node.auth_state();
        let has = st.user(&caller).is_some_and(|u| u.roles.contains(&name));
        if !has {
            st.check_admin(&caller).map_err(to_status)?;
        }
        let role = st.role(&name).ok_or_else(|| refuse(AuthError::RoleNotFound))?;
        Ok(Reply::new(pb::AuthRoleGetResponse { header: self.ctx.header(0), perm: role.key_permission.clone() }))
    }

    /// Checks the password (bcrypt, off the runtime's workers) and issues a
    /// token: a simple token is registered on every member through raft; a
    /// JWT is signed here.
    async fn authenticate(
        &self,
        req: Request<pb::AuthenticateRequest>,
    ) -> Result<Reply<pb::AuthenticateResponse>, Status> {
        self.count("Authenticate");
        let r = req.into_inner();
        let st = self.ctx.node.auth_state();
        if !st.enabled() {
            return Err(refuse(AuthError::NotEnabled));
        }
        let user = st.user(&r.name).filter(|u| !u.options.is_some_and(|o| o.no_password));
        let Some(hash) = user.map(|u| u.password.to_vec()) else {
            return Err(refuse(AuthError::AuthFailed));
        };
        if !Authn::verify(r.password, hash).await {
            tracing::info!(user = %r.name, "authentication failed");
            return Err(refuse(AuthError::AuthFailed));
        }
        let token = match &self.ctx.auth.tokens {
            TokenKind::Jwt(jwt) => jwt.sign(&r.name, st.revision()).map_err(Status::failed_precondition)?,
            simple => {
                let Some((token, ttl_seconds)) = simple.new_simple() else {
                    return Err(Status::internal("etcdserver: no token provider"));
                };
                let register = SimpleToken { user: r.name.clone(), token: token.clone(), ttl_seconds };
                self.ctx.node.auth_change(AuthChange::Authenticate(register)).await.map_err(to_status)?;
                token
            }
        };
        Ok(Reply::new(pb::AuthenticateResponse { header: self.ctx.header(0), token }))
    }

    async fn user_add(&self, req: Request<pb::AuthUserAddRequest>) -> Result<Reply<pb::AuthUserAddResponse>, Status> {
        self.count("UserAdd");
        let id = Identity::of(&req);
        let mut r = req.into_inner();
        if r.name.is_empty() {
            return Err(refuse(AuthError::UserEmpty));
        }
        let no_password = r.options.is_some_and(|o| o.no_password);
        // A hash the client computed itself (etcd 3.5's hashedPassword) is
        // taken as is; otherwise the password is hashed here.
        if !no_password && r.hashed_password.is_empty() {
            r.hashed_password = self.ctx.auth.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        if no_password {
            r.hashed_password.clear();
        }
        let header = self.change(&id, AuthChange::UserAdd(r)).await?;
        Ok(Reply::new(pb::AuthUserAddResponse { header }))
    }

    async fn user_delete(
        &self,
        req: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Reply<pb::AuthUserDeleteResponse>, Status> {
        self.count("UserDelete");
        let id = Identity::of(&req);
        let header = self.change(&id, AuthChange::UserDelete(req.into_inner())).await?;
        Ok(Reply::new(pb::AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        req: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Reply<pb::AuthUserChangePasswordResponse>, Status> {
        self.count("UserChangePassword");
        let id = Identity::of(&req);
        let mut r = req.into_inner();
        if r.hashed_password.is_empty() {
            r.hashed_password = self.ctx.auth.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        let header = self.change(&id, AuthChange::UserChangePassword(r)).await?;
        Ok(Reply::new(pb::AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        req: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Reply<pb::AuthUserGrantRoleResponse>, Status> {
        self.count("UserGrantRole");
        let id = Identity::of(&req);
        let header = self.change(&id, AuthChange::UserGrantRole(req.into_inner())).await?;
        Ok(Reply::new(pb::AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        req: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Reply<pb::AuthUserRevokeRoleResponse>, Status> {
        self.count("UserRevokeRole");
        let id = Identity::of(&req);
        let header = self.change(&id, AuthChange::UserRevokeRole(req.into_inner())).await?;
        Ok(Reply::new(pb::AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(&self, req: Request<pb::AuthRoleAddRequest>) -> Result<Reply<pb::AuthRoleAddResponse>, Status> {
        self.count("RoleAdd");
        let id = Identity::of(&req);
        let header = self.change(&id, AuthChange::RoleAdd(req.into_inner())).await?;
        Ok(Reply::new(pb::AuthRoleAddResponse { header }))
    }

    async fn role_delete(
        &self,
        req: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Reply<pb::AuthRoleDeleteResponse>, Status> {
        self.count("RoleDelete");
        let id = Identity::of(&req);
        let r = req.into_inner();
        if r.role == ROOT && self.ctx.node.auth_state().enabled() {
            return Err(refuse(AuthError::InvalidAuthMgmt));
        }
        let header = self.change(&id, AuthChange::RoleDelete(r)).await?;
        Ok(Reply::new(pb::AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        req: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Reply<pb::AuthRoleGrantPermissionResponse>, Status> {
        self.count("RoleGrantPermission");
        let id = Identity::of(&req);
        let header = self.change(&id, AuthChange::RoleGrantPermission(req.into_inner())).await?;
        Ok(Reply::new(pb::AuthRoleGrantPermissionResponse { header }))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Reply<pb::AuthRoleRevokePermissionResponse>, Status> {
        self.count("RoleRevokePermission");
        let id = Identity::of(&req);
        let header = self.change(&id, AuthChange::RoleRevokePermission(req.into_inner())).await?;
        Ok(Reply::new(pb::AuthRoleRevokePermissionResponse { header }))
    }
}
