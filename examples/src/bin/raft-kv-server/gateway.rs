//! One router per client URL: the gRPC services, etcd's JSON gateway
//! (every route etcd 3.5's grpc-gateway serves, under `/v3/` and its
//! `/v3beta/` and `/v3alpha/` aliases), `/health`, `/livez`, `/readyz`,
//! `/version` and `/metrics`.
//!
//! The gateway is derived from the messages, not written per field: each
//! route decodes its body into the method's request type and encodes the
//! response with the serde implementations generated from the `.proto`
//! files (`raft-kv`'s `json` feature), which follow proto3's JSON mapping
//! as etcd's grpc-gateway applies it: original field names (lowerCamel
//! names accepted too), 64-bit integers as strings, bytes as base64, enums
//! by name, defaults left out, missing fields defaulted, unknown fields
//! ignored. Then it calls the same service method a gRPC client reaches.
//!
//! Streaming routes stream newline-delimited `{"result": ...}` objects:
//! `/v3/watch` and `/v3/lease/keepalive` read their request body as a
//! sequence of JSON requests as it arrives (a body that never ends holds a
//! task, never a thread), `/v3/maintenance/snapshot` answers one request
//! with the backup's chunks. Errors use grpc-gateway's body
//! (`{"error","code","message"}`) and its gRPC → HTTP status mapping; an
//! unknown route gets 404 with such a body.
//!
//! As etcd's gateway, it takes the user from the `Authorization` token only,
//! never from a client certificate's CN: with auth enabled under
//! `--client-cert-auth`, a request over a certificate with a CN is refused
//! with etcd's HTTP 400 ([`CN_REFUSED`]).

use std::convert::Infallible;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use futures_core::Stream;
use futures_util::StreamExt;
use raft_kv::pb::etcdserverpb as pb;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tonic::{Code, Request, Status};

use crate::authn::Identity;
use crate::etcd::{Shared, CLUSTER_VERSION, ETCD_VERSION};
use crate::grpc::{keep_alive_stream, snapshot_stream, watch_stream, Api};
use crate::identity::ClientCertCn;
use examples::services::auth_server::Auth;
use examples::services::cluster_server::Cluster;
use examples::services::kv_server::Kv;
use examples::services::lease_server::Lease;
use examples::services::maintenance_server::Maintenance;

/// What the HTTP handlers need.
#[derive(Clone)]
struct Gw {
    api: Api,
    ctx: Shared,
}

/// The API prefixes etcd 3.5's gateway answers on (clients probe them).
const PREFIXES: [&str; 3] = ["/v3", "/v3beta", "/v3alpha"];

/// The router of a `--listen-metrics-urls` listener: as in etcd, `/metrics`
/// and the health routes only.
pub fn metrics_router(ctx: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/readyz", get(health))
        .route("/livez", get(livez))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(Gw { api: Api::new(ctx.clone()), ctx })
}

/// The router for one client URL's HTTP routes: everything but the gRPC
/// calls, which [`crate::dispatch::Dispatch`] hands to their services.
pub fn router(ctx: Shared) -> Router {
    let api = Api::new(ctx.clone());
    let ctx_for_layer = ctx.clone();
    let mut r = Router::new();
    for prefix in PREFIXES {
        r = r.merge(json_routes(prefix));
    }
    let r = r
        .route("/health", get(health))
        .route("/readyz", get(health))
        .route("/livez", get(livez))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        // JSON carries bytes as base64: allow for it; the decoded request is
        // then held to --max-request-bytes like a gRPC one.
        .layer(DefaultBodyLimit::max(ctx.max_request_bytes * 2 + (64 << 10)))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), cn_refused))
        .with_state(Gw { api, ctx });
    r.layer(axum::middleware::from_fn_with_state(ctx_for_layer, crate::require_leader::check))
}

/// A unary gateway route calling service method `$m` of `$svc`.
macro_rules! unary {
    ($svc:ident :: $m:ident) => {
        unary(|api: Api, req| async move { $svc::$m(&api, req).await.map(tonic::Response::into_inner) })
    };
}

/// Every gateway route under `prefix`, as etcd 3.5's rpc.proto binds them.
fn json_routes(prefix: &str) -> Router<Gw> {
    let routes: Vec<(&str, MethodRouter<Gw>)> = vec![
        ("/kv/range", unary!(Kv::range)),
        ("/kv/put", unary!(Kv::put)),
        ("/kv/deleterange", unary!(Kv::delete_range)),
        ("/kv/txn", unary!(Kv::txn)),
        ("/kv/compaction", unary!(Kv::compact)),
        ("/watch", post(watch)),
        ("/lease/grant", unary!(Lease::lease_grant)),
        ("/lease/revoke", unary!(Lease::lease_revoke)),
        ("/kv/lease/revoke", unary!(Lease::lease_revoke)),
        ("/lease/keepalive", post(keep_alive)),
        ("/lease/timetolive", unary!(Lease::lease_time_to_live)),
        ("/kv/lease/timetolive", unary!(Lease::lease_time_to_live)),
        ("/lease/leases", unary!(Lease::lease_leases)),
        ("/kv/lease/leases", unary!(Lease::lease_leases)),
        ("/cluster/member/add", unary!(Cluster::member_add)),
        ("/cluster/member/remove", unary!(Cluster::member_remove)),
        ("/cluster/member/update", unary!(Cluster::member_update)),
        ("/cluster/member/list", unary!(Cluster::member_list)),
        ("/cluster/member/promote", unary!(Cluster::member_promote)),
        ("/maintenance/alarm", unary!(Maintenance::alarm)),
        ("/maintenance/status", unary!(Maintenance::status)),
        ("/maintenance/defragment", unary!(Maintenance::defragment)),
        // etcd 3.5 binds both Hash and HashKV here; the gateway registers
        // HashKV last, and the last registration wins.
        ("/maintenance/hash", unary!(Maintenance::hash_kv)),
        ("/maintenance/hashkv", unary!(Maintenance::hash_kv)),
        ("/maintenance/snapshot", post(snapshot)),
        ("/maintenance/transfer-leadership", unary!(Maintenance::move_leader)),
        ("/maintenance/downgrade", unary!(Maintenance::downgrade)),
        ("/auth/enable", unary!(Auth::auth_enable)),
        ("/auth/disable", unary!(Auth::auth_disable)),
        ("/auth/status", unary!(Auth::auth_status)),
        ("/auth/authenticate", unary!(Auth::authenticate)),
        ("/auth/user/add", unary!(Auth::user_add)),
        ("/auth/user/get", unary!(Auth::user_get)),
        ("/auth/user/list", unary!(Auth::user_list)),
        ("/auth/user/delete", unary!(Auth::user_delete)),
        ("/auth/user/changepw", unary!(Auth::user_change_password)),
        ("/auth/user/grant", unary!(Auth::user_grant_role)),
        ("/auth/user/revoke", unary!(Auth::user_revoke_role)),
        ("/auth/role/add", unary!(Auth::role_add)),
        ("/auth/role/get", unary!(Auth::role_get)),
        ("/auth/role/list", unary!(Auth::role_list)),
        ("/auth/role/delete", unary!(Auth::role_delete)),
        ("/auth/role/grant", unary!(Auth::role_grant_permission)),
        ("/auth/role/revoke", unary!(Auth::role_revoke_permission)),
    ];
    routes.into_iter().fold(Router::new(), |r, (path, m)| r.route(&format!("{prefix}{path}"), m))
}

// ---- encoding --------------------------------------------------------------

/// Decodes a request body; an empty body is the default request, as with
/// grpc-gateway.
fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(bad_json)
}

/// A malformed body: etcd's gateway answers InvalidArgument with the
/// decoder's message.
fn bad_json(e: serde_json::Error) -> Status {
    Status::invalid_argument(e.to_string())
}

/// grpc-gateway's mapping of a gRPC code to an HTTP status.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// etcd's refusal of a gateway request over a client certificate with a CN
/// (`--client-cert-auth` with auth enabled): the gateway cannot carry the
/// CN as the user, so etcd refuses instead of serving it as nobody.
pub const CN_REFUSED: &str =
    "CommonName of client sending a request against gateway will be ignored and not used as expected";

/// Refuses, as etcd 3.5 does, a `/v3/` (or `/v3beta/`) request whose
/// verified client certificate has a CN while auth is enabled under
/// `--client-cert-auth` (the only case the TLS acceptor records a CN): HTTP
/// 400 with Go's plain-text error body, whatever token the request carries.
async fn cn_refused(State(ctx): State<Shared>, req: HttpRequest, next: axum::middleware::Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/v3/") || path.starts_with("/v3beta/");
    let cn = req.extensions().get::<ClientCertCn>().is_some_and(|c| !c.0.is_empty());
    if api && cn && ctx.node.auth_state().enabled() {
        // Read the request body (up to a bound) before answering: a client
        // still sending it can lose a response that comes first (curl
        // over HTTP/2 reports a stream error).
        let _ = axum::body::to_bytes(req.into_body(), 1 << 20).await;
        let headers =
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")];
        return (StatusCode::BAD_REQUEST, headers, format!("{CN_REFUSED}\n")).into_response();
    }
    next.run(req).await
}

/// grpc-gateway's error body and status.
fn error_response(s: &Status) -> Response {
    let body = json!({ "error": s.message(), "code": s.code() as i32, "message": s.message() });
    (http_status(s.code()), axum::Json(body)).into_response()
}

fn json_response<T: Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error_response(&Status::internal(e.to_string())),
    }
}

/// Carries the gateway request's identity (the `Authorization` header) into
/// the gRPC request the service sees, so both paths run the same checks.
/// As etcd's gateway, it never passes on the client certificate's CN.
fn with_identity<T>(mut req: Request<T>, headers: &HeaderMap) -> Request<T> {
    let id = Identity::of_http(headers);
    if let Some(t) = id.token.and_then(|t| tonic::metadata::MetadataValue::try_from(t).ok()) {
        req.metadata_mut().insert("token", t);
    }
    req
}

/// A unary route: JSON body → request → service method → JSON response.
fn unary<Req, Resp, F, Fut>(f: F) -> MethodRouter<Gw>
where
    Req: DeserializeOwned + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Api, Request<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    post(move |State(g): State<Gw>, headers: HeaderMap, body: Bytes| async move {
        let req = match decode::<Req>(&body) {
            Ok(r) => r,
            Err(s) => return error_response(&s),
        };
        match f(g.api.clone(), with_identity(Request::new(req), &headers)).await {
            Ok(resp) => json_response(&resp),
            Err(s) => error_response(&s),
        }
    })
}

/// Where the JSON value at the start of a growing buffer can end: each byte
/// is scanned once, however the bytes arrive.
#[derive(Default)]
struct ValueEnd {
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl ValueEnd {
    /// Scans what `buf` gained since the last call; true once the object or
    /// array `buf` starts with is closed (always, for anything else, which
    /// the JSON parser then judges).
    fn complete(&mut self, buf: &[u8]) -> bool {
        match buf.first() {
            None => return false,
            Some(b'{' | b'[') => {}
            Some(_) => return true,
        }
        if self.scanned > 0 && self.depth == 0 {
            return true; // closed on an earlier call
        }
        while let Some(&b) = buf.get(self.scanned) {
            self.scanned += 1;
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return true;
                    }
                }
                _ => {}
            }
        }
        false
    }
}

/// The request body as a stream of JSON requests, decoded as the bytes
/// arrive. A request larger than `limit` (or malformed) ends the stream
/// with an error.
///
/// The future resolves if the body fails rather than ends (the client went
/// away mid-body or broke the chunked framing): the response can no longer
/// be delivered, so the streaming routes end theirs then. Otherwise an
/// HTTP/1.1 watch whose client left would hold its connection slot until
/// its next event. It never resolves when the body ends cleanly (a client
/// may send its requests, end the body and keep watching).
fn json_requests<T: DeserializeOwned + Send + 'static>(
    body: Body,
    limit: usize,
) -> (impl Stream<Item = Result<T, Status>> + Send + Unpin + 'static, impl Future<Output = ()> + Send + 'static) {
    struct St {
        data: axum::body::BodyDataStream,
        buf: Vec<u8>,
        end: ValueEnd,
        done: bool,
        failed: Option<tokio::sync::oneshot::Sender<()>>,
    }
    let (fail, on_failure) = tokio::sync::oneshot::channel();
    let failed = async move {
        if on_failure.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let st = St {
        data: body.into_data_stream(),
        buf: Vec::new(),
        end: ValueEnd::default(),
        done: false,
        failed: Some(fail),
    };
    let requests = Box::pin(futures_util::stream::unfold(st, move |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let start = st.buf.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(st.buf.len());
            if start > 0 {
                st.buf.drain(..start);
                st.end = ValueEnd::default();
            }
            // Parse only once the value can be complete: re-parsing the
            // whole buffer on every chunk would cost the square of its size.
            if st.end.complete(&st.buf) {
                let mut it = serde_json::Deserializer::from_slice(&st.buf).into_iter::<T>();
                match it.next() {
                    Some(Ok(v)) => {
                        let used = it.byte_offset();
                        st.buf.drain(..used);
                        st.end = ValueEnd::default();
                        return Some((Ok(v), st));
                    }
                    Some(Err(e)) if e.is_eof() => {}
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(bad_json(e)), st));
                    }
                    None => {}
                }
            }
            if st.buf.len() > limit {
                st.done = true;
                return Some((Err(Status::invalid_argument("etcdserver: request is too large")), st));
            }
            match st.data.next().await {
                Some(Ok(chunk)) => st.buf.extend_from_slice(&chunk),
                end => {
                    if end.is_some() {
                        if let Some(failed) = st.failed.take() {
                            let _ = failed.send(());
                        }
                    }
                    st.done = true;
                    if st.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                        return Some((Err(Status::invalid_argument("unexpected end of JSON input")), st));
                    }
                    return None;
                }
            }
        }
    }));
    (requests, failed)
}

/// A streaming response: one `{"result": ...}` line per message, or an
/// `{"error": ...}` line that ends it; it also ends when `until` resolves.
fn json_lines<T: Serialize + Send + 'static>(
    stream: impl Stream<Item = Result<T, Status>> + Send + 'static,
    until: impl Future<Output = ()> + Send + 'static,
) -> Response {
    let lines = stream.take_until(until).map(|r| {
        let line = match r {
            Ok(m) => json!({ "result": m }),
            Err(s) => json!({ "error": {
                "grpc_code": s.code() as i32,
                "http_code": http_status(s.code()).as_u16(),
                "message": s.message(),
                "http_status": http_status(s.code()).canonical_reason().unwrap_or(""),
            }}),
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(bytes))
    });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(lines)).into_response()
}

// ---- streaming routes ------------------------------------------------------

async fn watch(State(g): State<Gw>, req: HttpRequest) -> Response {
    g.ctx.metrics.request("Watch(HTTP)");
    let id = Identity::of_http(req.headers());
    let (input, failed) = json_requests::<pb::WatchRequest>(req.into_body(), g.ctx.max_request_bytes * 2);
    json_lines(watch_stream(g.ctx.clone(), id, input, false), failed)
}

async fn keep_alive(State(g): State<Gw>, req: HttpRequest) -> Response {
    g.ctx.metrics.request("LeaseKeepAlive(HTTP)");
    if let Err(s) = g.ctx.auth.check_user(&g.ctx.node, &Identity::of_http(req.headers())) {
        return error_response(&s);
    }
    let (input, failed) = json_requests::<pb::LeaseKeepAliveRequest>(req.into_body(), 64 << 10);
    json_lines(keep_alive_stream(g.ctx.clone(), input), failed)
}

async fn snapshot(State(g): State<Gw>, headers: HeaderMap, body: Bytes) -> Response {
    g.ctx.metrics.request("Snapshot(HTTP)");
    if let Err(s) = g.ctx.auth.check_maintenance(&g.ctx.node, &Identity::of_http(&headers)) {
        return error_response(&s);
    }
    if let Err(s) = decode::<pb::SnapshotRequest>(&body) {
        return error_response(&s);
    }
    match snapshot_stream(g.ctx.clone()).await {
        Ok(stream) => json_lines(stream, std::future::pending()),
        Err(s) => error_response(&s),
    }
}

// ---- other routes ----------------------------------------------------------

/// An unknown path: 404 with grpc-gateway's error body; a gRPC request for
/// an unknown service gets gRPC's UNIMPLEMENTED.
async fn not_found(req: HttpRequest) -> Response {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        return Status::unimplemented(format!("unknown method {}", req.uri().path())).into_http();
    }
    let s = Status::not_found("Not Found");
    error_response(&s)
}

/// `/health`: the member answers (a round trip to its thread) and knows a
/// leader.
async fn health(State(g): State<Gw>) -> Response {
    g.ctx.metrics.request("health");
    let status = tokio::time::timeout(std::time::Duration::from_secs(3), g.ctx.node.status()).await;
    let reason = match status {
        Ok(Ok(s)) if s.state.leader != 0 => None,
        Ok(Ok(_)) => Some("no leader"),
        Ok(Err(_)) | Err(_) => Some("member not responding"),
    };
    match reason {
        None => (StatusCode::OK, axum::Json(json!({ "health": "true", "reason": "" }))).into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "health": "false", "reason": reason })))
            .into_response(),
    }
}

/// Liveness (etcd 3.5's `/livez`): the process serves HTTP. Unlike
/// `/health` it does not need a leader, so an orchestrator can use it before
/// the members have found each other.
async fn livez() -> Response {
    (StatusCode::OK, "ok").into_response()
}

async fn version() -> Response {
    axum::Json(json!({ "etcdserver": ETCD_VERSION, "etcdcluster": CLUSTER_VERSION })).into_response()
}

async fn metrics(State(g): State<Gw>) -> Response {
    let db_size =
        g.ctx.node.status().await.map(|s| raft_kv::engine::DbSize { total: s.db_size, in_use: s.db_size_in_use }).ok();
    // etcd_debugging_mvcc_keys_total: a local count-only range over every
    // key (no raft round trip; one scan per scrape).
    let all = pb::RangeRequest {
        key: vec![0].into(),
        range_end: vec![0].into(),
        count_only: true,
        serializable: true,
        ..Default::default()
    };
    let keys = g.ctx.node.range(all).await.map(|r| r.count).ok();
    let view = crate::metrics::View {
        db_size,
        keys,
        transport: &g.ctx.transport.metrics(),
        peers: &g.ctx.transport.peer_metrics(),
        node: g.ctx.node.metrics(),
    };
    let text = g.ctx.metrics.render(&g.ctx.node.state(), &view);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::ValueEnd;

    #[test]
    fn value_end_finds_the_close_however_the_bytes_arrive() {
        let body = br#"{"key":"a}\"b","range_end":[1,{"x":"]"}]} {"next":1}"#;
        let first = body.iter().position(|b| *b == b' ').expect("space");
        for split in 1..body.len() {
            let mut end = ValueEnd::default();
            let (a, _) = body.split_at(split);
            let done_early = end.complete(a);
            assert_eq!(done_early, split >= first, "split at {split}");
            assert!(end.complete(&body[..]), "split at {split}");
        }
        assert!(ValueEnd::default().complete(b"42"), "a scalar is left to the parser");
        assert!(!ValueEnd::default().complete(b""));
    }
}
