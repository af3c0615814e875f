//! [`Dispatch`]: where a client connection's requests go. A gRPC call to one
//! of etcd's services goes straight to that service's tonic server; every
//! other request (the JSON gateway, health, version, metrics) goes to the
//! axum router of `gateway.rs`.
//!
//! gRPC needs no router: the service is the path's first segment. Routed
//! through axum, each call paid for the path match, two `from_fn`
//! middlewares (each boxing the next service and the request body) and the
//! body conversions between them: under serializable point reads axum and
//! its path matcher were 4.2% of a member's samples and allocation 9.2%;
//! dispatched here, 0.2% and 7.5% (issue 17, `perf`). A call pays one check
//! of etcd's `hasleader` metadata ([`require_leader::admit`]), the
//! `grpc_server_*` counters ([`grpc_metrics`]) and one boxed future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use tonic::server::NamedService;
use tower::Service;

use crate::etcd::Shared;
use crate::grpc::Api;
use crate::identity::ClientCertCn;
use crate::{gateway, grpc_metrics, require_leader};
use examples::services::auth_server::AuthServer;
use examples::services::cluster_server::ClusterServer;
use examples::services::kv_server::KvServer;
use examples::services::lease_server::LeaseServer;
use examples::services::maintenance_server::MaintenanceServer;
use examples::services::watch_server::WatchServer;

/// A request's answer, whichever way it went.
type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// One listener's request handler, cloned for each connection and request.
#[derive(Clone)]
pub struct Dispatch {
    /// etcd's gRPC services; none on a `--listen-metrics-urls` listener.
    grpc: Option<Arc<Grpc>>,
    router: Router,
    /// The verified client certificate's CN, put into every request.
    cn: Option<ClientCertCn>,
}

/// etcd's six gRPC services, built once per listener.
struct Grpc {
    ctx: Shared,
    kv: KvServer<Api>,
    watch: WatchServer<Api>,
    lease: LeaseServer<Api>,
    cluster: ClusterServer<Api>,
    maintenance: MaintenanceServer<Api>,
    auth: AuthServer<Api>,
}

/// Which of the services a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Kv,
    Watch,
    Lease,
    Cluster,
    Maintenance,
    Auth,
}

impl Which {
    /// The service `/service/method` names, if it is one of etcd's six.
    fn of(path: &str) -> Option<Which> {
        let (service, _) = path.strip_prefix('/')?.split_once('/')?;
        Some(match service {
            <KvServer<Api> as NamedService>::NAME => Which::Kv,
            <WatchServer<Api> as NamedService>::NAME => Which::Watch,
            <LeaseServer<Api> as NamedService>::NAME => Which::Lease,
            <ClusterServer<Api> as NamedService>::NAME => Which::Cluster,
            <MaintenanceServer<Api> as NamedService>::NAME => Which::Maintenance,
            <AuthServer<Api> as NamedService>::NAME => Which::Auth,
            _ => return None,
        })
    }
}

impl Dispatch {
    /// The handler of a client URL: gRPC services and the gateway.
    pub fn client(ctx: Shared) -> Self {
        let api = Api::new(ctx.clone());
        // A decoded request is held to --max-request-bytes by the services;
        // the frame may carry a little more.
        let limit = ctx.max_request_bytes + 512 * 1024;
        let grpc = Grpc {
            kv: KvServer::new(api.clone()).max_decoding_message_size(limit),
            watch: WatchServer::new(api.clone()).max_decoding_message_size(limit),
            lease: LeaseServer::new(api.clone()).max_decoding_message_size(limit),
            cluster: ClusterServer::new(api.clone()).max_decoding_message_size(limit),
            maintenance: MaintenanceServer::new(api.clone()).max_decoding_message_size(limit),
            auth: AuthServer::new(api).max_decoding_message_size(limit),
            ctx: ctx.clone(),
        };
        Dispatch { grpc: Some(Arc::new(grpc)), router: gateway::router(ctx), cn: None }
    }

    /// The handler of a metrics URL: `/metrics` and the health routes.
    pub fn metrics(ctx: Shared) -> Self {
        Dispatch { grpc: None, router: gateway::metrics_router(ctx), cn: None }
    }

    /// This handler for a connection over a client certificate with `cn`.
    pub fn with_cn(mut self, cn: Option<ClientCertCn>) -> Self {
        self.cn = cn;
        self
    }
}

impl Grpc {
    /// Calls service `which` with `req`, as etcd's interceptors would: a
    /// call refused for want of a leader is answered at once and not
    /// counted; any other call of a known method is counted when it starts
    /// and when its answer ends.
    fn call(&self, which: Which, mut req: hyper::Request<Incoming>) -> Answer {
        if let Err(refused) = require_leader::admit(&self.ctx, &mut req) {
            return Box::pin(std::future::ready(Ok(refused.into_http())));
        }
        let method = grpc_metrics::method_of(req.uri().path());
        if let Some(method) = method {
            self.ctx.metrics.grpc.started(method);
        }
        // The servers are always ready (tonic's generated `poll_ready`).
        let answer = match which {
            Which::Kv => self.kv.clone().call(req),
            Which::Watch => self.watch.clone().call(req),
            Which::Lease => self.lease.clone().call(req),
            Which::Cluster => self.cluster.clone().call(req),
            Which::Maintenance => self.maintenance.clone().call(req),
            Which::Auth => self.auth.clone().call(req),
        };
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let resp = answer.await?;
            Ok(match method {
                Some(method) => grpc_metrics::observe(ctx, method, resp),
                None => resp.map(Body::new),
            })
        })
    }
}

impl Service<hyper::Request<Incoming>> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: hyper::Request<Incoming>) -> Answer {
        if let Some(cn) = &self.cn {
            req.extensions_mut().insert(cn.clone());
        }
        if let Some(grpc) = &self.grpc {
            if let Some(which) = Which::of(req.uri().path()) {
                return grpc.call(which, req);
            }
        }
        // axum's router is always ready too.
        Box::pin(self.router.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_etcds_six_services_are_dispatched_as_grpc() {
        assert_eq!(Which::of("/etcdserverpb.KV/Range"), Some(Which::Kv));
        assert_eq!(Which::of("/etcdserverpb.Watch/Watch"), Some(Which::Watch));
        assert_eq!(Which::of("/etcdserverpb.Lease/LeaseGrant"), Some(Which::Lease));
        assert_eq!(Which::of("/etcdserverpb.Cluster/MemberList"), Some(Which::Cluster));
        assert_eq!(Which::of("/etcdserverpb.Maintenance/Status"), Some(Which::Maintenance));
        assert_eq!(Which::of("/etcdserverpb.Auth/Authenticate"), Some(Which::Auth));
        // An unknown method of a known service is the service's to refuse.
        assert_eq!(Which::of("/etcdserverpb.KV/Nope"), Some(Which::Kv));
        for path in ["/etcdserverpb.KV", "/v3/kv/range", "/etcdserverpb.Nope/Range", "/", "", "etcdserverpb.KV/Range"] {
            assert_eq!(Which::of(path), None, "{path}");
        }
    }
}
