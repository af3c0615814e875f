//! One router per client URL: the gRPC services, etcd's JSON gateway
//! (`/v3/...`), `/health`, `/version` and `/metrics`.
//!
//! The gateway speaks JSON the way etcd's grpc-gateway does: field names as
//! in the `.proto` files, bytes as base64, 64-bit integers as strings (both
//! strings and numbers are accepted on input), enums by name or number,
//! fields with default values left out. `/v3/watch` streams one JSON object
//! per line, each `{"result": <WatchResponse>}`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Bytes, StreamBody};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use raft_kv::{KeyValue, TxnRequest};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::server::Routes;
use tonic::{Code, Status};

use crate::etcd::{Shared, ETCD_VERSION};
use crate::grpc::{create_watch, pump_watch, Api};
use crate::pb;

/// What the HTTP handlers need.
#[derive(Clone)]
struct Gw {
    api: Api,
    ctx: Shared,
    transport: transport_tcp::TcpHandle,
}

/// The router for one client URL: gRPC services and HTTP routes together
/// (gRPC requests are HTTP/2 with `/etcdserverpb.*` paths; everything else is
/// the gateway).
pub fn router(ctx: Shared, transport: transport_tcp::TcpHandle) -> Router {
    let api = Api::new(ctx.clone());
    let limit = ctx.max_request_bytes + 512 * 1024;
    let grpc = Routes::new(pb::kv_server::KvServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(pb::watch_server::WatchServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(pb::lease_server::LeaseServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(pb::cluster_server::ClusterServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(pb::maintenance_server::MaintenanceServer::new(api.clone()).max_decoding_message_size(limit))
        .into_router();
    let http = Router::new()
        .route("/v3/kv/range", post(kv_range))
        .route("/v3/kv/put", post(kv_put))
        .route("/v3/kv/deleterange", post(kv_delete))
        .route("/v3/kv/txn", post(kv_txn))
        .route("/v3/kv/compaction", post(kv_compact))
        .route("/v3/lease/grant", post(lease_grant))
        .route("/v3/lease/revoke", post(lease_revoke))
        .route("/v3/lease/timetolive", post(lease_ttl))
        .route("/v3/watch", post(watch))
        .route("/v3/maintenance/status", post(status))
        .route("/v3/cluster/member/list", post(member_list))
        .route("/health", get(health))
        .route("/readyz", get(health))
        .route("/livez", get(livez))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        // JSON carries bytes as base64: allow for it; the decoded request is
        // then held to --max-request-bytes like a gRPC one.
        .layer(DefaultBodyLimit::max(ctx.max_request_bytes * 2 + (64 << 10)))
        .with_state(Gw { api, ctx, transport });
    grpc.merge(http)
}

// ---- input -----------------------------------------------------------------

fn bad(msg: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("bad JSON request: {msg}"))
}

fn parse(body: &[u8]) -> Result<Value, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let v: Value = serde_json::from_slice(body).map_err(bad)?;
    if !v.is_object() {
        return Err(bad("expected a JSON object"));
    }
    Ok(v)
}

fn bytes_of(v: &Value, k: &str) -> Result<bytes::Bytes, Status> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(bytes::Bytes::new()),
        Some(Value::String(s)) => B64.decode(s).map(bytes::Bytes::from).map_err(|e| bad(format!("{k}: {e}"))),
        Some(_) => Err(bad(format!("{k}: expected a base64 string"))),
    }
}

fn int_of(v: &Value, k: &str) -> Result<i64, Status> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| bad(format!("{k}: not an integer"))),
        Some(Value::String(s)) => s.parse().map_err(|_| bad(format!("{k}: not an integer"))),
        Some(_) => Err(bad(format!("{k}: expected an integer"))),
    }
}

fn bool_of(v: &Value, k: &str) -> Result<bool, Status> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("{k}: expected a boolean"))),
    }
}

fn enum_of(v: &Value, k: &str, names: &[&str]) -> Result<i32, Status> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => {
            names.iter().position(|n| n == s).map(|i| i as i32).ok_or_else(|| bad(format!("{k}: unknown value {s}")))
        }
        Some(Value::Number(n)) => {
            n.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or_else(|| bad(format!("{k}: bad enum value")))
        }
        Some(_) => Err(bad(format!("{k}: expected an enum name"))),
    }
}

fn range_req(v: &Value) -> Result<raft_kv::RangeRequest, Status> {
    Ok(raft_kv::RangeRequest {
        key: bytes_of(v, "key")?,
        range_end: bytes_of(v, "range_end")?,
        limit: int_of(v, "limit")?,
        revision: int_of(v, "revision")?,
        sort_order: enum_of(v, "sort_order", &["NONE", "ASCEND", "DESCEND"])?,
        sort_target: enum_of(v, "sort_target", &["KEY", "VERSION", "CREATE", "MOD", "VALUE"])?,
        serializable: bool_of(v, "serializable")?,
        keys_only: bool_of(v, "keys_only")?,
        count_only: bool_of(v, "count_only")?,
        min_mod_revision: int_of(v, "min_mod_revision")?,
        max_mod_revision: int_of(v, "max_mod_revision")?,
        min_create_revision: int_of(v, "min_create_revision")?,
        max_create_revision: int_of(v, "max_create_revision")?,
    })
}

fn put_req(v: &Value) -> Result<raft_kv::PutRequest, Status> {
    Ok(raft_kv::PutRequest {
        key: bytes_of(v, "key")?,
        value: bytes_of(v, "value")?,
        lease: int_of(v, "lease")?,
        prev_kv: bool_of(v, "prev_kv")?,
        ignore_value: bool_of(v, "ignore_value")?,
        ignore_lease: bool_of(v, "ignore_lease")?,
    })
}

fn delete_req(v: &Value) -> Result<raft_kv::DeleteRangeRequest, Status> {
    Ok(raft_kv::DeleteRangeRequest {
        key: bytes_of(v, "key")?,
        range_end: bytes_of(v, "range_end")?,
        prev_kv: bool_of(v, "prev_kv")?,
    })
}

fn txn_req(v: &Value, depth: usize) -> Result<TxnRequest, Status> {
    use raft_kv::compare::TargetUnion;
    use raft_kv::request_op::Request;
    if depth > 16 {
        return Err(bad("transaction nested too deeply"));
    }
    let list = |k: &str| -> Result<Vec<Value>, Status> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(_) => Err(bad(format!("{k}: expected an array"))),
        }
    };
    let mut txn = TxnRequest::default();
    for c in list("compare")? {
        let target = enum_of(&c, "target", &["VERSION", "CREATE", "MOD", "VALUE", "LEASE"])?;
        let operand = match target {
            0 => TargetUnion::Version(int_of(&c, "version")?),
            1 => TargetUnion::CreateRevision(int_of(&c, "create_revision")?),
            2 => TargetUnion::ModRevision(int_of(&c, "mod_revision")?),
            3 => TargetUnion::Value(bytes_of(&c, "value")?),
            _ => TargetUnion::Lease(int_of(&c, "lease")?),
        };
        txn.compare.push(raft_kv::Compare {
            result: enum_of(&c, "result", &["EQUAL", "GREATER", "LESS", "NOT_EQUAL"])?,
            target,
            key: bytes_of(&c, "key")?,
            target_union: Some(operand),
            range_end: bytes_of(&c, "range_end")?,
        });
    }
    for (branch, out) in [("success", &mut txn.success), ("failure", &mut txn.failure)] {
        for op in list(branch)? {
            let request = if let Some(r) = op.get("request_range") {
                Request::Range(range_req(r)?)
            } else if let Some(r) = op.get("request_put") {
                Request::Put(put_req(r)?)
            } else if let Some(r) = op.get("request_delete_range") {
                Request::DeleteRange(delete_req(r)?)
            } else if let Some(r) = op.get("request_txn") {
                Request::Txn(txn_req(r, depth + 1)?)
            } else {
                return Err(bad("empty request op"));
            };
            out.push(raft_kv::RequestOp { request: Some(request) });
        }
    }
    Ok(txn)
}

// ---- output ----------------------------------------------------------------

/// Builds a JSON object, leaving out default values like grpc-gateway.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn int(mut self, k: &str, v: i64) -> Self {
        if v != 0 {
            self.0.insert(k.into(), Value::String(v.to_string()));
        }
        self
    }
    fn uint(mut self, k: &str, v: u64) -> Self {
        if v != 0 {
            self.0.insert(k.into(), Value::String(v.to_string()));
        }
        self
    }
    fn bytes(mut self, k: &str, v: &[u8]) -> Self {
        if !v.is_empty() {
            self.0.insert(k.into(), Value::String(B64.encode(v)));
        }
        self
    }
    fn flag(mut self, k: &str, v: bool) -> Self {
        if v {
            self.0.insert(k.into(), Value::Bool(true));
        }
        self
    }
    fn val(mut self, k: &str, v: Option<Value>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), v);
        }
        self
    }
    fn list(self, k: &str, v: Vec<Value>) -> Self {
        self.val(k, (!v.is_empty()).then_some(Value::Array(v)))
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn header_json(h: &Option<pb::ResponseHeader>) -> Option<Value> {
    h.as_ref().map(|h| {
        Obj::default()
            .uint("cluster_id", h.cluster_id)
            .uint("member_id", h.member_id)
            .int("revision", h.revision)
            .uint("raft_term", h.raft_term)
            .done()
    })
}

fn kv_json(kv: &KeyValue) -> Value {
    Obj::default()
        .bytes("key", &kv.key)
        .int("create_revision", kv.create_revision)
        .int("mod_revision", kv.mod_revision)
        .int("version", kv.version)
        .bytes("value", &kv.value)
        .int("lease", kv.lease)
        .done()
}

fn range_json(r: &pb::RangeResponse) -> Value {
    Obj::default()
        .val("header", header_json(&r.header))
        .list("kvs", r.kvs.iter().map(kv_json).collect())
        .flag("more", r.more)
        .int("count", r.count)
        .done()
}

fn put_json(r: &pb::PutResponse) -> Value {
    Obj::default().val("header", header_json(&r.header)).val("prev_kv", r.prev_kv.as_ref().map(kv_json)).done()
}

fn delete_json(r: &pb::DeleteRangeResponse) -> Value {
    Obj::default()
        .val("header", header_json(&r.header))
        .int("deleted", r.deleted)
        .list("prev_kvs", r.prev_kvs.iter().map(kv_json).collect())
        .done()
}

fn txn_json(r: &pb::TxnResponse) -> Value {
    use pb::response_op::Response as R;
    let ops = r
        .responses
        .iter()
        .map(|op| match &op.response {
            Some(R::ResponseRange(x)) => json!({ "response_range": range_json(x) }),
            Some(R::ResponsePut(x)) => json!({ "response_put": put_json(x) }),
            Some(R::ResponseDeleteRange(x)) => json!({ "response_delete_range": delete_json(x) }),
            Some(R::ResponseTxn(x)) => json!({ "response_txn": txn_json(x) }),
            None => json!({}),
        })
        .collect();
    Obj::default().val("header", header_json(&r.header)).flag("succeeded", r.succeeded).list("responses", ops).done()
}

fn event_json(e: &raft_kv::Event) -> Value {
    let mut o = Obj::default();
    if e.is_delete() {
        o.0.insert("type".into(), Value::String("DELETE".into()));
    }
    o.val("kv", e.kv.as_ref().map(kv_json)).val("prev_kv", e.prev_kv.as_ref().map(kv_json)).done()
}

fn watch_json(r: &pb::WatchResponse) -> Value {
    let mut o = Obj::default().val("header", header_json(&r.header)).int("watch_id", r.watch_id);
    o = o.flag("created", r.created).flag("canceled", r.canceled).int("compact_revision", r.compact_revision);
    if !r.cancel_reason.is_empty() {
        o.0.insert("cancel_reason".into(), Value::String(r.cancel_reason.clone()));
    }
    o.list("events", r.events.iter().map(event_json).collect()).done()
}

fn member_json(m: &raft_kv::Member) -> Value {
    let mut o = Obj::default().uint("ID", m.id);
    if !m.name.is_empty() {
        o.0.insert("name".into(), Value::String(m.name.clone()));
    }
    o.val("peerURLs", Some(json!(m.peer_urls)))
        .val("clientURLs", (!m.client_urls.is_empty()).then(|| json!(m.client_urls)))
        .flag("isLearner", m.is_learner)
        .done()
}

/// grpc-gateway's mapping of a gRPC code to an HTTP status.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn reply(r: Result<Value, Status>) -> Response {
    match r {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(s) => {
            let body = json!({ "error": s.message(), "message": s.message(), "code": s.code() as i32 });
            (http_status(s.code()), axum::Json(body)).into_response()
        }
    }
}

// ---- handlers --------------------------------------------------------------

async fn kv_range(State(g): State<Gw>, body: Bytes) -> Response {
    let r = async {
        let req = range_req(&parse(&body)?)?;
        Ok(range_json(&g.api.do_range(req).await?))
    };
    reply(r.await)
}

async fn kv_put(State(g): State<Gw>, body: Bytes) -> Response {
    let r = async {
        let req = put_req(&parse(&body)?)?;
        Ok(put_json(&g.api.do_put(req).await?))
    };
    reply(r.await)
}

async fn kv_delete(State(g): State<Gw>, body: Bytes) -> Response {
    let r = async {
        let req = delete_req(&parse(&body)?)?;
        Ok(delete_json(&g.api.do_delete(req).await?))
    };
    reply(r.await)
}

async fn kv_txn(State(g): State<Gw>, body: Bytes) -> Response {
    let r = async {
        let req = txn_req(&parse(&body)?, 0)?;
        Ok(txn_json(&g.api.do_txn(req).await?))
    };
    reply(r.await)
}

async fn kv_compact(State(g): State<Gw>, body: Bytes) -> Response {
    let r = async {
        let v = parse(&body)?;
        let req = raft_kv::CompactionRequest { revision: int_of(&v, "revision")?, physical: bool_of(&v, "physical")? };
        let resp = g.api.do_compact(req).await?;
        Ok(Obj::default().val("header", header_json(&resp.header)).done())
    };
    reply(r.await)
}

async fn lease_grant(State(g): State<Gw>, body: Bytes) -> Response {
    let r = async {
        let v = parse(&body)?;
        let req = raft_kv::LeaseGrantRequest { ttl: int_of(&v, "TTL")?, id: int_of(&v, "ID")? };
        let resp = g.api.do_lease_grant(req).await?;
        Ok(Obj::default().val("header", header_json(&resp.header)).int("ID", resp.id).int("TTL", resp.ttl).done())
    };
    reply(r.await)
}

async fn lease_revoke(State(g): State<Gw>, body: Bytes) -> Response {
    let r = async {
        let v = parse(&body)?;
        let resp = g.api.do_lease_revoke(raft_kv::LeaseRevokeRequest::new(int_of(&v, "ID")?)).await?;
        Ok(Obj::default().val("header", header_json(&resp.header)).done())
    };
    reply(r.await)
}

async fn lease_ttl(State(g): State<Gw>, body: Bytes) -> Response {
    let r = async {
        let v = parse(&body)?;
        let req = pb::LeaseTimeToLiveRequest { id: int_of(&v, "ID")?, keys: bool_of(&v, "keys")? };
        let resp = g.api.do_lease_ttl(req).await?;
        let keys = resp.keys.iter().map(|k| Value::String(B64.encode(k))).collect();
        Ok(Obj::default()
            .val("header", header_json(&resp.header))
            .int("ID", resp.id)
            .int("TTL", resp.ttl)
            .int("grantedTTL", resp.granted_ttl)
            .list("keys", keys)
            .done())
    };
    reply(r.await)
}

async fn status(State(g): State<Gw>) -> Response {
    let r = async {
        let s = g.api.do_status().await?;
        let mut o = Obj::default().val("header", header_json(&s.header));
        o.0.insert("version".into(), Value::String(s.version.clone()));
        let errors: Vec<Value> = s.errors.iter().map(|e| Value::String(e.clone())).collect();
        Ok(o.int("dbSize", s.db_size)
            .uint("leader", s.leader)
            .uint("raftIndex", s.raft_index)
            .uint("raftTerm", s.raft_term)
            .uint("raftAppliedIndex", s.raft_applied_index)
            .list("errors", errors)
            .int("dbSizeInUse", s.db_size_in_use)
            .flag("isLearner", s.is_learner)
            .done())
    };
    reply(r.await)
}

async fn member_list(State(g): State<Gw>) -> Response {
    let r = async {
        let members = g.ctx.blocking(|n| n.member_list()).await?;
        Ok(Obj::default()
            .val("header", header_json(&g.ctx.latest_header()))
            .list("members", members.iter().map(member_json).collect())
            .done())
    };
    reply(r.await)
}

/// `/v3/watch`: one watch per request; the response streams until the
/// client disconnects or the watch is cancelled.
async fn watch(State(g): State<Gw>, body: Bytes) -> Response {
    g.ctx.metrics.request("Watch(HTTP)");
    let v = match parse(&body) {
        Ok(v) => v,
        Err(s) => return reply(Err(s)),
    };
    let Some(c) = v.get("create_request") else {
        return reply(Err(bad("expected create_request")));
    };
    let create = match (|| -> Result<pb::WatchCreateRequest, Status> {
        let filters = match c.get("filters") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|f| enum_of(&json!({ "f": f }), "f", &["NOPUT", "NODELETE"]))
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        Ok(pb::WatchCreateRequest {
            key: bytes_of(c, "key")?,
            range_end: bytes_of(c, "range_end")?,
            start_revision: int_of(c, "start_revision")?,
            prev_kv: bool_of(c, "prev_kv")?,
            progress_notify: bool_of(c, "progress_notify")?,
            filters,
            ..Default::default()
        })
    })() {
        Ok(c) => c,
        Err(s) => return reply(Err(s)),
    };
    let (tx, rx) = mpsc::channel(1024);
    if let Some(w) = create_watch(&g.ctx, &create, 0, &tx).await {
        pump_watch(g.ctx.clone(), w, 0, create.progress_notify, Arc::default(), tx, || {});
    }
    let lines = ReceiverStream::new(rx).map(|r: Result<pb::WatchResponse, Status>| {
        let v = match r {
            Ok(w) => json!({ "result": watch_json(&w) }),
            Err(s) => json!({ "error": { "code": s.code() as i32, "message": s.message() } }),
        };
        Ok::<_, Infallible>(format!("{v}\n"))
    });
    ([(header::CONTENT_TYPE, "application/json")], StreamBody::new(lines)).into_response()
}

async fn health(State(g): State<Gw>) -> Response {
    g.ctx.metrics.request("health");
    let fresh = g.ctx.status_at.lock().elapsed() < std::time::Duration::from_secs(3);
    let has_leader = g.ctx.status.lock().as_ref().is_some_and(|s| s.leader != 0);
    if fresh && has_leader {
        (StatusCode::OK, axum::Json(json!({ "health": "true", "reason": "" }))).into_response()
    } else {
        let reason = if has_leader { "member not responding" } else { "no leader" };
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "health": "false", "reason": reason }))).into_response()
    }
}

/// Liveness (etcd 3.5's `/livez`): the process serves HTTP. Unlike
/// `/health` it does not need a leader, so an orchestrator can use it before
/// the members have found each other.
async fn livez() -> Response {
    (StatusCode::OK, "ok").into_response()
}

async fn version() -> Response {
    axum::Json(json!({ "etcdserver": ETCD_VERSION, "etcdcluster": "3.5.0" })).into_response()
}

async fn metrics(State(g): State<Gw>) -> Response {
    let text = g.ctx.metrics.render(&g.transport.metrics(), g.ctx.node.metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
