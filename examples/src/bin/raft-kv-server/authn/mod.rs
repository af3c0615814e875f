//! Authentication and RBAC for the etcd API: who a request comes from
//! (token or client certificate), the read checks the server makes before
//! serving, and writes proposed on the user's behalf so the member checks
//! them as they apply (etcd's rule; see `raft_kv::AuthState::check_op`).
//!
//! Passwords are hashed and verified with bcrypt on tokio's blocking pool,
//! never on the node thread or a runtime worker; only the hash enters the
//! log. No password, hash or token is ever logged.

pub mod token;

use std::time::Duration;

use raft_kv::{Access, AsyncNode, AuthError, AuthInfo, Error, Op, Response};
use tonic::Status;

use crate::etcd::to_status;
use crate::identity::ClientCertCn;
pub use token::TokenKind;

/// How many times a write checked under an auth state that changed before
/// it applied is checked and proposed again (etcd retries likewise).
const OLD_REVISION_RETRIES: usize = 8;

/// What a request carries about its sender.
#[derive(Debug, Default, Clone)]
pub struct Identity {
    /// The token from the `token` metadata (gRPC) or `Authorization`
    /// header (gateway).
    pub token: Option<String>,
    /// The verified client certificate's common name, if any.
    pub cn: Option<String>,
}

impl Identity {
    /// The identity of a gRPC request.
    pub fn of<T>(req: &tonic::Request<T>) -> Self {
        let token = req.metadata().get("token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Identity { token, cn: req.extensions().get::<ClientCertCn>().map(|c| c.0.clone()) }
    }

    /// The identity of a gateway request (`Authorization: <token>`). As in
    /// etcd, a client certificate's CN never names the user there (the
    /// gateway refuses such a certificate while auth is enabled: see
    /// `gateway::cn_refused`).
    pub fn of_http(headers: &axum::http::HeaderMap) -> Self {
        let token = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        // etcd's gateway passes the header through as is; accept a
        // `Bearer` prefix as well.
        let token = token.map(|t| t.strip_prefix("Bearer ").unwrap_or(t).trim().to_owned()).filter(|t| !t.is_empty());
        Identity { token, cn: None }
    }
}

/// Who a request runs as, once its token or certificate is checked.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The user; empty with auth disabled or for an anonymous request.
    pub user: String,
    /// The auth revision the caller's credentials are checked at: a JWT's
    /// own, else the member's current one.
    pub revision: u64,
    /// True when `revision` came with a JWT (checking again cannot help).
    pub jwt: bool,
}

/// The server's authentication settings.
pub struct Authn {
    /// How tokens are made and checked.
    pub tokens: TokenKind,
    /// bcrypt's cost for new passwords.
    pub bcrypt_cost: u32,
}

impl Authn {
    /// From `--auth-token`, `--auth-token-ttl` (seconds) and
    /// `--bcrypt-cost`.
    pub fn new(spec: &str, ttl_seconds: u64, bcrypt_cost: u32) -> anyhow::Result<Self> {
        if !(4..=31).contains(&bcrypt_cost) {
            anyhow::bail!("--bcrypt-cost {bcrypt_cost}: must be between 4 and 31");
        }
        Ok(Authn { tokens: TokenKind::parse(spec, Duration::from_secs(ttl_seconds.max(1)))?, bcrypt_cost })
    }

    /// The user a request runs as: empty with auth disabled or when the
    /// request names nobody; a token that does not verify is refused.
    pub fn user(&self, node: &AsyncNode, id: &Identity) -> Result<String, Status> {
        Ok(self.caller(node, id)?.user)
    }

    /// [`Authn::user`], with the auth revision to check the request at.
    pub fn caller(&self, node: &AsyncNode, id: &Identity) -> Result<Caller, Status> {
        let st = node.auth_state();
        if !st.enabled() {
            return Ok(Caller::default());
        }
        let current = |user: String| Caller { user, revision: st.revision(), jwt: false };
        match &id.token {
            Some(t) => {
                let caller = match &self.tokens {
                    TokenKind::Simple { .. } => node.auth_tokens().validate(t).map(current),
                    TokenKind::Jwt(j) => j.verify(t).map(|(user, revision)| Caller { user, revision, jwt: true }),
                };
                caller.ok_or_else(|| to_status(AuthError::InvalidToken.into()))
            }
            // Under --client-cert-auth the certificate's CN is the user
            // when the request carries no token (etcd's rule).
            None => Ok(current(id.cn.clone().unwrap_or_default())),
        }
    }

    /// Refuses a read of `[key, range_end)` the user may not make (or
    /// whose JWT predates the auth store's last change).
    pub fn check_read(&self, node: &AsyncNode, id: &Identity, key: &[u8], range_end: &[u8]) -> Result<(), Status> {
        self.check_access(node, id, &[(Access::Read, key, range_end)])
    }

    /// Refuses access to key ranges the user may not make (or whose JWT
    /// predates the auth store's last change).
    pub fn check_access(
        &self,
        node: &AsyncNode,
        id: &Identity,
        wants: &[(Access, &[u8], &[u8])],
    ) -> Result<(), Status> {
        let c = self.caller(node, id)?;
        let st = node.auth_state();
        // Only a JWT's revision is the caller's own; anyone else is checked
        // at the state read here (which may be newer than `caller`'s).
        let revision = if c.jwt { c.revision } else { st.revision() };
        st.check_access_at(&c.user, revision, wants).map_err(to_status)
    }

    /// Refuses an admin call (maintenance, membership, user and role
    /// management) from anyone but root while auth is enabled.
    pub fn check_admin(&self, node: &AsyncNode, id: &Identity) -> Result<String, Status> {
        let user = self.user(node, id)?;
        node.auth_state().check_admin(&user).map_err(to_status)?;
        Ok(user)
    }

    /// [`Authn::check_admin`] for the maintenance calls etcd 3.5 guards
    /// itself (defragment, hash, hash-kv, snapshot, move-leader,
    /// downgrade): etcd passes its auth package's error through unmapped
    /// there, so the client sees code Unknown and `auth: permission denied`
    /// (`auth: user name is empty`, `auth: user not found`, ...) instead of
    /// `etcdserver: ...`.
    pub fn check_maintenance(&self, node: &AsyncNode, id: &Identity) -> Result<String, Status> {
        self.check_admin(node, id).map_err(|s| {
            let why = match s.message() {
                // The one the auth package words differently.
                "etcdserver: user name not found" => "user not found",
                m => m.strip_prefix("etcdserver: ").unwrap_or(m),
            };
            Status::unknown(format!("auth: {why}"))
        })
    }

    /// Refuses anyone who is not a known user while auth is enabled.
    pub fn check_user(&self, node: &AsyncNode, id: &Identity) -> Result<String, Status> {
        let user = self.user(node, id)?;
        node.auth_state().check_user(&user).map_err(to_status)?;
        Ok(user)
    }

    /// Proposes `op` as the request's user; the member checks it as it
    /// applies. A request checked under an older auth state is checked
    /// and proposed again (not one whose JWT is older: that fails).
    pub async fn write(&self, node: &AsyncNode, id: &Identity, op: Op) -> Result<Response, Error> {
        let mut tries = 0;
        loop {
            let c = self.caller(node, id).map_err(|_| Error::Auth(AuthError::InvalidToken))?;
            let info = AuthInfo { user: c.user, revision: c.revision };
            match node.propose_as_user(op.clone(), Some(info)).await {
                Err(Error::Auth(AuthError::OldRevision)) if !c.jwt && tries < OLD_REVISION_RETRIES => tries += 1,
                other => return other,
            }
        }
    }

    /// bcrypt hash of `password`, computed off the runtime's workers.
    pub async fn hash(&self, password: String) -> Result<String, Status> {
        let cost = self.bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|_| Status::internal("etcdserver: password hashing failed"))?
            .map_err(|_| Status::internal("etcdserver: password hashing failed"))
    }

    /// True if `password` matches the bcrypt `hash`, checked off the
    /// runtime's workers.
    pub async fn verify(password: String, hash: Vec<u8>) -> bool {
        tokio::task::spawn_blocking(move || {
            std::str::from_utf8(&hash).ok().is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false))
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests;
