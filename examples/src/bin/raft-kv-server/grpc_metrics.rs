//! `grpc_server_started_total` and `grpc_server_handled_total`, as etcd
//! exports them (go-grpc-prometheus): by `grpc_type`, `grpc_service`,
//! `grpc_method` and, for handled, `grpc_code`. Counted by [`crate::dispatch`] on
//! the gRPC routes; the code is read from the response's `grpc-status`
//! (headers for a trailers-only answer, else the trailers at the end of the
//! body), and a stream the client abandons counts as `Canceled`.
//!
//! Only etcd's own methods are counted (a fixed table, listed with 0 from
//! the start as etcd does), so a client cannot grow the label set.

use std::fmt::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::Frame;

use crate::etcd::Shared;

/// Every etcd v3 gRPC method: service, method, gRPC type.
const METHODS: &[(&str, &str, &str)] = &[
    ("etcdserverpb.KV", "Range", "unary"),
    ("etcdserverpb.KV", "Put", "unary"),
    ("etcdserverpb.KV", "DeleteRange", "unary"),
    ("etcdserverpb.KV", "Txn", "unary"),
    ("etcdserverpb.KV", "Compact", "unary"),
    ("etcdserverpb.Watch", "Watch", "bidi_stream"),
    ("etcdserverpb.Lease", "LeaseGrant", "unary"),
    ("etcdserverpb.Lease", "LeaseRevoke", "unary"),
    ("etcdserverpb.Lease", "LeaseKeepAlive", "bidi_stream"),
    ("etcdserverpb.Lease", "LeaseTimeToLive", "unary"),
    ("etcdserverpb.Lease", "LeaseLeases", "unary"),
    ("etcdserverpb.Cluster", "MemberAdd", "unary"),
    ("etcdserverpb.Cluster", "MemberRemove", "unary"),
    ("etcdserverpb.Cluster", "MemberUpdate", "unary"),
    ("etcdserverpb.Cluster", "MemberList", "unary"),
    ("etcdserverpb.Cluster", "MemberPromote", "unary"),
    ("etcdserverpb.Maintenance", "Alarm", "unary"),
    ("etcdserverpb.Maintenance", "Status", "unary"),
    ("etcdserverpb.Maintenance", "Defragment", "unary"),
    ("etcdserverpb.Maintenance", "Hash", "unary"),
    ("etcdserverpb.Maintenance", "HashKV", "unary"),
    ("etcdserverpb.Maintenance", "Snapshot", "server_stream"),
    ("etcdserverpb.Maintenance", "MoveLeader", "unary"),
    ("etcdserverpb.Maintenance", "Downgrade", "unary"),
    ("etcdserverpb.Auth", "AuthEnable", "unary"),
    ("etcdserverpb.Auth", "AuthDisable", "unary"),
    ("etcdserverpb.Auth", "AuthStatus", "unary"),
    ("etcdserverpb.Auth", "Authenticate", "unary"),
    ("etcdserverpb.Auth", "UserAdd", "unary"),
    ("etcdserverpb.Auth", "UserGet", "unary"),
    ("etcdserverpb.Auth", "UserList", "unary"),
    ("etcdserverpb.Auth", "UserDelete", "unary"),
    ("etcdserverpb.Auth", "UserChangePassword", "unary"),
    ("etcdserverpb.Auth", "UserGrantRole", "unary"),
    ("etcdserverpb.Auth", "UserRevokeRole", "unary"),
    ("etcdserverpb.Auth", "RoleAdd", "unary"),
    ("etcdserverpb.Auth", "RoleGet", "unary"),
    ("etcdserverpb.Auth", "RoleList", "unary"),
    ("etcdserverpb.Auth", "RoleDelete", "unary"),
    ("etcdserverpb.Auth", "RoleGrantPermission", "unary"),
    ("etcdserverpb.Auth", "RoleRevokePermission", "unary"),
];

/// gRPC status codes by number, named as Go's `codes.Code.String()`.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

/// The counters, one per method (and per method and code).
pub struct GrpcMetrics {
    started: Vec<AtomicU64>,
    handled: Vec<[AtomicU64; CODES.len()]>,
}

impl Default for GrpcMetrics {
    fn default() -> Self {
        GrpcMetrics {
            started: METHODS.iter().map(|_| AtomicU64::new(0)).collect(),
            handled: METHODS.iter().map(|_| std::array::from_fn(|_| AtomicU64::new(0))).collect(),
        }
    }
}

impl GrpcMetrics {
    fn handled(&self, method: usize, code: usize) {
        self.handled[method][code.min(CODES.len() - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// Appends both counters in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let labels = |i: usize| {
            let (service, method, kind) = METHODS[i];
            format!("grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"")
        };
        let _ = writeln!(
            out,
            "# HELP grpc_server_started_total Total number of RPCs started on the server.\n\
             # TYPE grpc_server_started_total counter"
        );
        for (i, n) in self.started.iter().enumerate() {
            let _ = writeln!(out, "grpc_server_started_total{{{}}} {}", labels(i), n.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.\n\
             # TYPE grpc_server_handled_total counter"
        );
        for (i, codes) in self.handled.iter().enumerate() {
            // Every code, 0 included, as etcd lists them.
            for (c, n) in codes.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                let _ = writeln!(out, "grpc_server_handled_total{{grpc_code=\"{}\",{}}} {n}", CODES[c], labels(i));
            }
        }
    }
}

/// The index of the known gRPC method `path` names (`/service/method`).
pub fn method_of(path: &str) -> Option<usize> {
    let (svc, m) = path.strip_prefix('/')?.split_once('/')?;
    METHODS.iter().position(|(s, n, _)| *s == svc && *n == m)
}

impl GrpcMetrics {
    /// Counts the start of a call of `method` (from [`method_of`]).
    pub fn started(&self, method: usize) {
        self.started[method].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts the end of a call of `method` with answer `resp`: now, for a
/// trailers-only answer (an error before any message, its code in the
/// headers), else when its body ends (the code in the trailers).
pub fn observe<B>(ctx: Shared, method: usize, resp: Response<B>) -> Response
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
{
    if let Some(code) = grpc_status(resp.headers()) {
        ctx.metrics.grpc.handled(method, code);
        return resp.map(Body::new);
    }
    resp.map(|body| Body::new(Observed { inner: body, pending: Some((ctx, method)) }))
}

fn grpc_status(h: &axum::http::HeaderMap) -> Option<usize> {
    h.get("grpc-status").and_then(|v| v.to_str().ok()).map(|v| v.parse().unwrap_or(UNKNOWN))
}

/// A response body that records the code from its trailers when it ends,
/// or `Canceled` if it is dropped before (the client went away).
struct Observed<B> {
    inner: B,
    pending: Option<(Shared, usize)>,
}

impl<B> Observed<B> {
    fn record(&mut self, code: usize) {
        if let Some((ctx, method)) = self.pending.take() {
            ctx.metrics.grpc.handled(method, code);
        }
    }
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for Observed<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(code) = f.trailers_ref().map(|t| grpc_status(t).unwrap_or(UNKNOWN)) {
                    self.record(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.record(UNKNOWN),
            Poll::Ready(None) => self.record(UNKNOWN),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Observed<B> {
    fn drop(&mut self) {
        self.record(CANCELED);
    }
}
