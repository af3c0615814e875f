//! Property-based fuzzing of the JSON gateway's request decoding: the serde
//! implementations pbjson generates for `raft_kv::pb::etcdserverpb`, which
//! raft-kv-server's gateway applies to every request body
//! (`serde_json::from_slice::<T>` for unary routes, serde_json's stream
//! deserializer for the streaming ones).
//!
//! The gateway's own helpers live in the server binary, out of a test's
//! reach, so this tests the serde level: every request type a gateway route
//! decodes, fed arbitrary bytes, arbitrary JSON shaped after its fields,
//! deeply nested JSON and valid values; plus a model of the streaming
//! routes' incremental decoding loop (`json_requests` in gateway.rs).
//!
//! Every property runs a bounded number of cases and writes no failure
//! files.

#![allow(clippy::unwrap_used)]

use std::fmt::{self, Debug, Write as _};

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use raft_kv::pb::etcdserverpb as pb;
use serde::de::DeserializeOwned;
use serde::Serialize;

// ---- the request types ------------------------------------------------------

/// Field names (proto names and the lowerCamel ones accepted on input) of
/// the request messages and the messages they nest.
mod names {
    pub const RANGE: &[&str] = &[
        "key",
        "range_end",
        "rangeEnd",
        "limit",
        "revision",
        "sort_order",
        "sortOrder",
        "sort_target",
        "sortTarget",
        "serializable",
        "keys_only",
        "keysOnly",
        "count_only",
        "countOnly",
        "min_mod_revision",
        "minModRevision",
        "max_mod_revision",
        "maxModRevision",
        "min_create_revision",
        "minCreateRevision",
        "max_create_revision",
        "maxCreateRevision",
    ];
    pub const PUT: &[&str] =
        &["key", "value", "lease", "prev_kv", "prevKv", "ignore_value", "ignoreValue", "ignore_lease", "ignoreLease"];
    pub const DELETE_RANGE: &[&str] = &["key", "range_end", "rangeEnd", "prev_kv", "prevKv"];
    pub const COMPARE: &[&str] = &[
        "result",
        "target",
        "key",
        "range_end",
        "rangeEnd",
        "version",
        "create_revision",
        "createRevision",
        "mod_revision",
        "modRevision",
        "value",
        "lease",
    ];
    pub const REQUEST_OP: &[&str] = &[
        "request_range",
        "requestRange",
        "request_put",
        "requestPut",
        "request_delete_range",
        "requestDeleteRange",
        "request_txn",
        "requestTxn",
    ];
    pub const TXN: &[&str] = &["compare", "success", "failure"];
    pub const COMPACTION: &[&str] = &["revision", "physical"];
    pub const WATCH: &[&str] =
        &["create_request", "createRequest", "cancel_request", "cancelRequest", "progress_request", "progressRequest"];
    pub const WATCH_CREATE: &[&str] = &[
        "key",
        "range_end",
        "rangeEnd",
        "start_revision",
        "startRevision",
        "progress_notify",
        "progressNotify",
        "filters",
        "prev_kv",
        "prevKv",
        "watch_id",
        "watchId",
        "fragment",
    ];
    pub const WATCH_CANCEL: &[&str] = &["watch_id", "watchId"];
    pub const LEASE_GRANT: &[&str] = &["TTL", "ID"];
    pub const ID: &[&str] = &["ID"];
    pub const LEASE_TTL: &[&str] = &["ID", "keys"];
    pub const NONE: &[&str] = &[];
    pub const MEMBER_ADD: &[&str] = &["peerURLs", "isLearner"];
    pub const MEMBER_UPDATE: &[&str] = &["ID", "peerURLs"];
    pub const MEMBER_LIST: &[&str] = &["linearizable"];
    pub const ALARM: &[&str] = &["action", "memberID", "alarm"];
    pub const HASH_KV: &[&str] = &["revision"];
    pub const MOVE_LEADER: &[&str] = &["targetID"];
    pub const DOWNGRADE: &[&str] = &["action", "version"];
    pub const AUTHENTICATE: &[&str] = &["name", "password"];
    pub const USER_ADD: &[&str] = &["name", "password", "options", "hashedPassword"];
    pub const USER_ADD_OPTIONS: &[&str] = &["no_password", "noPassword"];
    pub const NAME: &[&str] = &["name"];
    pub const CHANGE_PASSWORD: &[&str] = &["name", "password", "hashedPassword"];
    pub const USER_GRANT: &[&str] = &["user", "role"];
    pub const USER_REVOKE: &[&str] = &["name", "role"];
    pub const ROLE: &[&str] = &["role"];
    pub const ROLE_GRANT: &[&str] = &["name", "perm"];
    pub const PERMISSION: &[&str] = &["permType", "key", "range_end", "rangeEnd"];
    pub const ROLE_REVOKE: &[&str] = &["role", "key", "range_end", "rangeEnd"];

    /// Every enum value name of the requests' enums.
    pub const ENUMS: &[&str] = &[
        "NONE",
        "ASCEND",
        "DESCEND",
        "KEY",
        "VERSION",
        "CREATE",
        "MOD",
        "VALUE",
        "EQUAL",
        "GREATER",
        "LESS",
        "NOT_EQUAL",
        "LEASE",
        "NOPUT",
        "NODELETE",
        "GET",
        "ACTIVATE",
        "DEACTIVATE",
        "NOSPACE",
        "CORRUPT",
        "VALIDATE",
        "ENABLE",
        "CANCEL",
        "READ",
        "WRITE",
        "READWRITE",
        "PUT",
        "DELETE",
    ];
}

/// One request type a gateway route decodes.
struct Req {
    name: &'static str,
    /// Its field names and those of the messages it nests.
    fields: &'static [&'static [&'static str]],
    /// Decodes a body as this type (see [`check`]).
    check: fn(&[u8]) -> Result<bool, String>,
}

macro_rules! requests {
    ($($t:ident: [$($f:ident),*]),* $(,)?) => {
        /// The request types of gateway.rs's route table, in its order.
        const REQUESTS: &[Req] = &[
            $(Req { name: stringify!($t), fields: &[$(names::$f),*], check: check::<pb::$t> }),*
        ];
    };
}

requests! {
    RangeRequest: [RANGE],
    PutRequest: [PUT],
    DeleteRangeRequest: [DELETE_RANGE],
    TxnRequest: [TXN, COMPARE, REQUEST_OP, RANGE, PUT, DELETE_RANGE],
    CompactionRequest: [COMPACTION],
    WatchRequest: [WATCH, WATCH_CREATE, WATCH_CANCEL],
    LeaseGrantRequest: [LEASE_GRANT],
    LeaseRevokeRequest: [ID],
    LeaseKeepAliveRequest: [ID],
    LeaseTimeToLiveRequest: [LEASE_TTL],
    LeaseLeasesRequest: [NONE],
    MemberAddRequest: [MEMBER_ADD],
    MemberRemoveRequest: [ID],
    MemberUpdateRequest: [MEMBER_UPDATE],
    MemberListRequest: [MEMBER_LIST],
    MemberPromoteRequest: [ID],
    AlarmRequest: [ALARM],
    StatusRequest: [NONE],
    DefragmentRequest: [NONE],
    HashKvRequest: [HASH_KV],
    SnapshotRequest: [NONE],
    MoveLeaderRequest: [MOVE_LEADER],
    DowngradeRequest: [DOWNGRADE],
    AuthEnableRequest: [NONE],
    AuthDisableRequest: [NONE],
    AuthStatusRequest: [NONE],
    AuthenticateRequest: [AUTHENTICATE],
    AuthUserAddRequest: [USER_ADD, USER_ADD_OPTIONS],
    AuthUserGetRequest: [NAME],
    AuthUserListRequest: [NONE],
    AuthUserDeleteRequest: [NAME],
    AuthUserChangePasswordRequest: [CHANGE_PASSWORD],
    AuthUserGrantRoleRequest: [USER_GRANT],
    AuthUserRevokeRoleRequest: [USER_REVOKE],
    AuthRoleAddRequest: [NAME],
    AuthRoleGetRequest: [ROLE],
    AuthRoleListRequest: [NONE],
    AuthRoleDeleteRequest: [ROLE],
    AuthRoleGrantPermissionRequest: [ROLE_GRANT, PERMISSION],
    AuthRoleRevokePermissionRequest: [ROLE_REVOKE],
}

/// Decodes `body` as a `T` as the gateway does; `Ok(true)` if it was
/// accepted, in which case the value must also re-encode and decode back
/// to itself. A panic fails the property that called it.
fn check<T>(body: &[u8]) -> Result<bool, String>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let Ok(v) = serde_json::from_slice::<T>(body) else {
        return Ok(false);
    };
    let text = serde_json::to_vec(&v).map_err(|e| format!("accepted {v:?} does not re-encode: {e}"))?;
    let back: T = serde_json::from_slice(&text)
        .map_err(|e| format!("re-encoding {} of {v:?} does not decode: {e}", String::from_utf8_lossy(&text)))?;
    if back != v {
        return Err(format!("{v:?} re-encoded as {} decodes to {back:?}", String::from_utf8_lossy(&text)));
    }
    Ok(true)
}

/// Every request type on `body`; the names of those that accepted it.
fn check_all(body: &[u8]) -> Result<Vec<&'static str>, String> {
    let mut accepted = Vec::new();
    for r in REQUESTS {
        if (r.check)(body).map_err(|e| format!("{}: {e}", r.name))? {
            accepted.push(r.name);
        }
    }
    Ok(accepted)
}

fn all_field_names() -> Vec<&'static str> {
    let mut all: Vec<&'static str> =
        REQUESTS.iter().flat_map(|r| r.fields.iter().flat_map(|f| f.iter().copied())).collect();
    all.sort_unstable();
    all.dedup();
    all
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- JSON text ----------------------------------------------------------------

/// A JSON document as text is built: scalars are kept as the exact text to
/// write, so numbers serde_json's `Value` cannot hold (huge, -0, 1e400)
/// and invalid escapes can be produced too.
#[derive(Debug, Clone)]
enum Json {
    /// A literal written as is: a number, `true`, `null`...
    Raw(String),
    /// A string, escaped properly.
    Str(String),
    /// A string written between quotes without escaping (may be invalid).
    RawStr(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Raw(s) => f.write_str(s),
            Json::Str(s) => f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?),
            Json::RawStr(s) => write!(f, "\"{s}\""),
            Json::Arr(items) => {
                f.write_char('[')?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_char(']')
            }
            Json::Obj(fields) => {
                f.write_char('{')?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{}:{v}", serde_json::to_string(k).map_err(|_| fmt::Error)?)?;
                }
                f.write_char('}')
            }
        }
    }
}

/// Number literals: in and out of every integer type's range, negative,
/// floats, exponents, all valid JSON.
fn arb_number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<i64>().prop_map(|n| n.to_string()),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<i32>().prop_map(|n| n.to_string()),
        1 => any::<i128>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:e}")),
        1 => any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| x.to_string()),
        1 => (0i64..1000, any::<i16>()).prop_map(|(m, e)| format!("{m}e{e}")),
        1 => "[1-9][0-9]{19,400}",
        1 => "-[1-9][0-9]{19,40}",
        2 => prop::sample::select(vec![
            "0", "-0", "0.0", "-0.0", "1.0", "1.5", "-1", "1e2", "1E+2", "1e-2", "1e400", "-1e400", "1e-400",
            "2147483647", "2147483648", "-2147483649", "4294967296", "9223372036854775807", "9223372036854775808",
            "-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616",
        ])
        .prop_map(str::to_owned),
    ]
}

/// Literals that are not JSON (a loose document has a few).
fn arb_bad_literal() -> impl Strategy<Value = Json> {
    prop_oneof![
        prop::sample::select(vec![
            "01",
            "+1",
            ".5",
            "1.",
            "1e",
            "-",
            "NaN",
            "Infinity",
            "-Infinity",
            "0x10",
            "1_000",
            "nul",
            "True"
        ])
        .prop_map(|s| Json::Raw(s.into())),
        prop::sample::select(vec![r"\ud800", r"\udc00x", r"\u00", r"\x41", r"\", "\u{0}", "\n", r"\uDBFF\uDFFF"])
            .prop_map(|s| Json::RawStr(s.into())),
    ]
}

fn base64_of(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
        }
        if pad {
            out.extend(std::iter::repeat_n('=', 3 - chunk.len()));
        }
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 of arbitrary bytes, either alphabet, padded or not.
fn arb_base64() -> impl Strategy<Value = Json> {
    (prop::collection::vec(any::<u8>(), 0..48), any::<bool>(), any::<bool>())
        .prop_map(|(b, url, pad)| Json::Str(base64_of(&b, if url { URL_SAFE } else { STANDARD }, pad)))
}

/// String contents: base64 (both alphabets, padded or not) and strings of
/// base64 characters that are not base64, numbers as strings (proto3
/// JSON's 64-bit integers), enum names, field names and arbitrary text.
fn arb_string() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => arb_base64(),
        1 => "[A-Za-z0-9+/=_-]{0,24}".prop_map(Json::Str),
        3 => arb_number_text().prop_map(Json::Str),
        1 => prop::sample::select(vec![" 1", "1 ", "", " ", "-", "true", "null", "01", "1e", "NaN"]).prop_map(|s| Json::Str(s.into())),
        2 => prop::sample::select(names::ENUMS.to_vec()).prop_map(|s| Json::Str(s.into())),
        1 => prop::sample::select(all_field_names()).prop_map(|s| Json::Str(s.into())),
        2 => any::<String>().prop_map(Json::Str),
    ]
}

/// Object keys: mostly `own` field names, then any request's, then any.
fn arb_key(own: Vec<&'static str>) -> impl Strategy<Value = String> {
    let own = if own.is_empty() { vec!["key"] } else { own };
    prop_oneof![
        6 => prop::sample::select(own).prop_map(str::to_owned),
        2 => prop::sample::select(all_field_names()).prop_map(str::to_owned),
        1 => prop::sample::select(names::ENUMS.to_vec()).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{0,12}",
        1 => any::<String>(),
    ]
}

/// Arbitrary JSON up to 8 levels deep, objects keyed after `own`; a loose
/// document (`strict` false) also holds literals that are not JSON.
fn arb_json(own: Vec<&'static str>, strict: bool) -> BoxedStrategy<Json> {
    let bad = if strict { 0 } else { 1 };
    let leaf = prop_oneof![
        2 => prop::sample::select(vec!["null", "true", "false"]).prop_map(|s| Json::Raw(s.into())),
        6 => arb_number_text().prop_map(Json::Raw),
        8 => arb_string(),
        bad => arb_bad_literal(),
    ];
    leaf.prop_recursive(8, 256, 8, move |inner| {
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..8).prop_map(Json::Arr),
            2 => prop::collection::vec((arb_key(own.clone()), inner), 0..8).prop_map(Json::Obj),
        ]
    })
    .boxed()
}

/// What a field holds, after its name (the few names two messages share
/// with different types get both).
enum Kind {
    Bytes,
    Int,
    Bool,
    Enum,
    Str,
    IntOrStr,
    StrList,
    EnumList,
    Msg(&'static [&'static str]),
    MsgList(&'static [&'static str]),
}

fn kind(field: &str) -> Kind {
    use names::*;
    match field {
        "key" | "range_end" | "rangeEnd" | "value" => Kind::Bytes,
        "limit"
        | "revision"
        | "min_mod_revision"
        | "minModRevision"
        | "max_mod_revision"
        | "maxModRevision"
        | "min_create_revision"
        | "minCreateRevision"
        | "max_create_revision"
        | "maxCreateRevision"
        | "lease"
        | "create_revision"
        | "createRevision"
        | "mod_revision"
        | "modRevision"
        | "start_revision"
        | "startRevision"
        | "watch_id"
        | "watchId"
        | "TTL"
        | "ID"
        | "memberID"
        | "targetID" => Kind::Int,
        "sort_order" | "sortOrder" | "sort_target" | "sortTarget" | "result" | "target" | "action" | "alarm"
        | "permType" => Kind::Enum,
        "version" => Kind::IntOrStr,
        "name" | "password" | "hashedPassword" | "user" | "role" => Kind::Str,
        "peerURLs" => Kind::StrList,
        "filters" => Kind::EnumList,
        "compare" => Kind::MsgList(COMPARE),
        "success" | "failure" => Kind::MsgList(REQUEST_OP),
        "request_range" | "requestRange" => Kind::Msg(RANGE),
        "request_put" | "requestPut" => Kind::Msg(PUT),
        "request_delete_range" | "requestDeleteRange" => Kind::Msg(DELETE_RANGE),
        "request_txn" | "requestTxn" => Kind::Msg(TXN),
        "create_request" | "createRequest" => Kind::Msg(WATCH_CREATE),
        "cancel_request" | "cancelRequest" => Kind::Msg(WATCH_CANCEL),
        "progress_request" | "progressRequest" => Kind::Msg(NONE),
        "options" => Kind::Msg(USER_ADD_OPTIONS),
        "perm" => Kind::Msg(PERMISSION),
        _ => Kind::Bool,
    }
}

fn arb_int_value() -> impl Strategy<Value = Json> {
    prop_oneof![arb_number_text().prop_map(Json::Raw), arb_number_text().prop_map(Json::Str)]
}

fn arb_enum_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => prop::sample::select(names::ENUMS.to_vec()).prop_map(|s| Json::Str(s.into())),
        2 => (-1i64..6).prop_map(|n| Json::Raw(n.to_string())),
        1 => arb_number_text().prop_map(Json::Raw),
    ]
}

/// A value for `field`: of the field's type most of the time (so the
/// decoder gets past it to the next), any JSON now and then. Messages nest
/// `depth` more levels at most.
fn typed_value(field: &'static str, depth: u32) -> BoxedStrategy<Json> {
    let list = |s: BoxedStrategy<Json>| prop::collection::vec(s, 0..4).prop_map(Json::Arr).boxed();
    let typed = match kind(field) {
        Kind::Bytes => prop_oneof![4 => arb_base64(), 1 => arb_string()].boxed(),
        Kind::Int => arb_int_value().boxed(),
        Kind::Bool => {
            prop_oneof![any::<bool>().prop_map(|b| Json::Raw(b.to_string())), Just(Json::Raw("null".into()))].boxed()
        }
        Kind::Enum => arb_enum_value().boxed(),
        Kind::Str => prop_oneof![any::<String>().prop_map(Json::Str), arb_string()].boxed(),
        Kind::IntOrStr => prop_oneof![arb_int_value(), arb_string()].boxed(),
        Kind::StrList => list(arb_string().boxed()),
        Kind::EnumList => list(arb_enum_value().boxed()),
        Kind::Msg(fields) if depth > 0 => typed_object(fields, depth - 1),
        Kind::MsgList(fields) if depth > 0 => list(typed_object(fields, depth - 1)),
        Kind::Msg(_) | Kind::MsgList(_) => Just(Json::Obj(Vec::new())).boxed(),
    };
    prop_oneof![6 => typed, 1 => arb_json(vec![field], true)].boxed()
}

/// An object of `fields` holding values of their types, now and then a
/// field of another message or an unknown one with any value.
fn typed_object(fields: &'static [&'static str], depth: u32) -> BoxedStrategy<Json> {
    let other = (arb_key(Vec::new()), arb_json(Vec::new(), true));
    let entry = if fields.is_empty() {
        other.boxed()
    } else {
        prop_oneof![
            8 => prop::sample::select(fields.to_vec()).prop_flat_map(move |f| (Just(f.to_owned()), typed_value(f, depth))),
            1 => other,
        ]
        .boxed()
    };
    prop::collection::vec(entry, 0..6).prop_map(Json::Obj).boxed()
}

/// A request body for `REQUESTS[i]`: mostly an object of its fields with
/// values of their types, or with any values, now and then any JSON at all
/// (sometimes not JSON).
fn arb_body() -> impl Strategy<Value = (usize, String)> {
    (0..REQUESTS.len()).prop_flat_map(|i| {
        let fields = REQUESTS[i].fields;
        let own: Vec<&'static str> = fields.iter().flat_map(|f| f.iter().copied()).collect();
        let loose =
            prop::collection::vec((arb_key(own.clone()), arb_json(own.clone(), true)), 0..10).prop_map(Json::Obj);
        let body = prop_oneof![
            6 => typed_object(fields[0], 3),
            3 => loose,
            1 => arb_json(own.clone(), true),
            1 => arb_json(own, false),
        ];
        (Just(i), body.prop_map(|j| j.to_string()))
    })
}

/// JSON-ish token soup: brackets, separators, keys, literals and
/// whitespace in any order.
fn arb_token_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        4 => prop::sample::select(vec!["{", "}", "[", "]", ":", ",", " ", "\n", "\"", "\\", "null", "true", "-"])
            .prop_map(str::to_owned),
        2 => prop::sample::select(all_field_names()).prop_map(|k| format!("\"{k}\"")),
        2 => arb_number_text(),
        1 => arb_string().prop_map(|s| s.to_string()),
    ];
    prop::collection::vec(token, 0..64).prop_map(|t| t.concat().into_bytes())
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

/// A valid body of some request with a few bytes flipped, cut or added.
fn arb_damaged_body() -> impl Strategy<Value = Vec<u8>> {
    (arb_valid_body(), prop::collection::vec((any::<Index>(), any::<u8>(), 0u8..3), 1..4)).prop_map(|(body, edits)| {
        let mut b = body.into_bytes();
        for (at, byte, kind) in edits {
            let i = at.index(b.len() + 1);
            match kind {
                0 if i < b.len() => b[i] = byte,
                1 => b.insert(i, byte),
                _ => b.truncate(i),
            }
        }
        b
    })
}

// ---- valid values ---------------------------------------------------------------

fn arb_key_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..32),
        1 => Just(vec![0u8]),
        1 => prop::collection::vec(any::<u8>(), 0..600),
    ]
    .prop_map(Bytes::from)
}

fn arb_put() -> impl Strategy<Value = pb::PutRequest> {
    (arb_key_bytes(), arb_key_bytes(), any::<i64>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(key, value, lease, prev_kv, ignore_value, ignore_lease)| pb::PutRequest {
            key,
            value,
            lease,
            prev_kv,
            ignore_value,
            ignore_lease,
        },
    )
}

fn arb_range() -> impl Strategy<Value = pb::RangeRequest> {
    let revs = (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>());
    (arb_key_bytes(), arb_key_bytes(), any::<i64>(), any::<i64>(), 0i32..3, 0i32..5, any::<[bool; 3]>(), revs).prop_map(
        |(key, range_end, limit, revision, sort_order, sort_target, [serializable, keys_only, count_only], revs)| {
            pb::RangeRequest {
                key,
                range_end,
                limit,
                revision,
                sort_order,
                sort_target,
                serializable,
                keys_only,
                count_only,
                min_mod_revision: revs.0,
                max_mod_revision: revs.1,
                min_create_revision: revs.2,
                max_create_revision: revs.3,
            }
        },
    )
}

fn arb_delete_range() -> impl Strategy<Value = pb::DeleteRangeRequest> {
    (arb_key_bytes(), arb_key_bytes(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| pb::DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn arb_compare() -> impl Strategy<Value = pb::Compare> {
    use pb::compare::TargetUnion;
    let target = prop::option::of(prop_oneof![
        any::<i64>().prop_map(TargetUnion::Version),
        any::<i64>().prop_map(TargetUnion::CreateRevision),
        any::<i64>().prop_map(TargetUnion::ModRevision),
        arb_key_bytes().prop_map(TargetUnion::Value),
        any::<i64>().prop_map(TargetUnion::Lease),
    ]);
    (0i32..4, 0i32..5, arb_key_bytes(), arb_key_bytes(), target).prop_map(
        |(result, target, key, range_end, target_union)| pb::Compare { result, target, key, range_end, target_union },
    )
}

fn arb_txn() -> impl Strategy<Value = pb::TxnRequest> {
    use pb::request_op::Request;
    let leaf_op = || {
        prop::option::of(prop_oneof![
            arb_range().prop_map(Request::RequestRange),
            arb_put().prop_map(Request::RequestPut),
            arb_delete_range().prop_map(Request::RequestDeleteRange),
        ])
        .prop_map(|request| pb::RequestOp { request })
    };
    let txn = |ops: BoxedStrategy<pb::RequestOp>| {
        (
            prop::collection::vec(arb_compare(), 0..4),
            prop::collection::vec(ops.clone(), 0..4),
            prop::collection::vec(ops, 0..4),
        )
            .prop_map(|(compare, success, failure)| pb::TxnRequest { compare, success, failure })
    };
    txn(leaf_op().boxed()).prop_recursive(3, 24, 4, move |inner| {
        let op = prop_oneof![
            2 => leaf_op(),
            1 => inner.prop_map(|t| pb::RequestOp { request: Some(Request::RequestTxn(t)) }),
        ];
        txn(op.boxed())
    })
}

fn arb_watch() -> impl Strategy<Value = pb::WatchRequest> {
    use pb::watch_request::RequestUnion;
    let create = (
        arb_key_bytes(),
        arb_key_bytes(),
        any::<i64>(),
        any::<bool>(),
        prop::collection::vec(0i32..2, 0..3),
        any::<bool>(),
        any::<i64>(),
        any::<bool>(),
    )
        .prop_map(|(key, range_end, start_revision, progress_notify, filters, prev_kv, watch_id, fragment)| {
            RequestUnion::CreateRequest(pb::WatchCreateRequest {
                key,
                range_end,
                start_revision,
                progress_notify,
                filters,
                prev_kv,
                watch_id,
                fragment,
            })
        });
    prop::option::of(prop_oneof![
        3 => create,
        1 => any::<i64>().prop_map(|watch_id| RequestUnion::CancelRequest(pb::WatchCancelRequest { watch_id })),
        1 => Just(RequestUnion::ProgressRequest(pb::WatchProgressRequest {})),
    ])
    .prop_map(|request_union| pb::WatchRequest { request_union })
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("encode")
}

fn arb_valid_body() -> impl Strategy<Value = String> {
    prop_oneof![
        arb_put().prop_map(|v| to_json(&v)),
        arb_range().prop_map(|v| to_json(&v)),
        arb_txn().prop_map(|v| to_json(&v)),
        arb_watch().prop_map(|v| to_json(&v)),
        any::<i64>().prop_map(|id| to_json(&pb::LeaseKeepAliveRequest { id })),
    ]
}

// ---- properties: unary bodies ------------------------------------------------------

proptest! {
    #![proptest_config(config(4096))]

    /// Arbitrary bytes, JSON-ish token soup and damaged valid bodies,
    /// decoded as every request type: accepted or refused, never a panic;
    /// whatever is accepted re-encodes to itself.
    #[test]
    fn arbitrary_bytes_never_panic(
        body in prop_oneof![arb_bytes(4096), arb_token_soup(), arb_damaged_body()],
    ) {
        check_all(&body).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(1536))]

    /// Arbitrary JSON shaped after a request type's fields (mixed with
    /// other names), every kind of scalar in every field, nested up to 8
    /// deep: decoded as that type and as every other, never a panic.
    #[test]
    fn arbitrary_json_never_panics((i, body) in arb_body()) {
        let r = &REQUESTS[i];
        (r.check)(body.as_bytes()).map_err(|e| TestCaseError::fail(format!("{}: {e}", r.name)))?;
        check_all(body.as_bytes()).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(2048))]

    /// Valid values round-trip through the gateway's JSON exactly.
    #[test]
    fn put_round_trips(v in arb_put()) {
        let back: pb::PutRequest = serde_json::from_str(&to_json(&v)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, v);
    }

    #[test]
    fn range_round_trips(v in arb_range()) {
        let back: pb::RangeRequest = serde_json::from_str(&to_json(&v)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, v);
    }

    #[test]
    fn txn_round_trips(v in arb_txn(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_string_pretty(&v).expect("encode") } else { to_json(&v) };
        let back: pb::TxnRequest = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, v);
    }
}

mod nesting_and_streams;
