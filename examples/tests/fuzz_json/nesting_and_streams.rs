//! Deeply nested documents (refused, or skipped under unknown fields, never
//! a stack overflow) and the streaming routes' incremental decoding.

use super::*;

// ---- deep nesting ----------------------------------------------------------------------

/// How a deeply nested document is built.
#[derive(Debug, Clone, Copy)]
enum Nest {
    /// `[[[[...`
    Arrays,
    /// `{"k":{"k":...`
    Objects,
    /// `[{"k":[{"k":...`
    Mixed,
    /// A TxnRequest holding a TxnRequest holding...: a real, recursive
    /// structure (`{"success":[{"request_txn":{...}}]}`).
    Txn,
    /// Arrays under a real field of every type (`{"key":[[[...`).
    UnderField,
}

/// `depth` levels of `nest`, closed or cut off where the innermost value
/// would be.
fn nested(nest: Nest, depth: usize, key: &str, closed: bool) -> String {
    let key = serde_json::to_string(key).expect("key");
    let (open, close, inner) = match nest {
        Nest::Arrays => ("[".to_owned(), "]".to_owned(), "1"),
        Nest::Objects => (format!("{{{key}:"), "}".to_owned(), "1"),
        Nest::Mixed => (format!("[{{{key}:"), "}]".to_owned(), "1"),
        Nest::Txn => (r#"{"success":[{"request_txn":"#.to_owned(), "}]}".to_owned(), "{}"),
        Nest::UnderField => ("[".to_owned(), "]".to_owned(), "1"),
    };
    let mut s = String::new();
    if let Nest::UnderField = nest {
        write!(s, "{{{key}:").expect("write");
    }
    s.push_str(&open.repeat(depth));
    if closed {
        s.push_str(inner);
        s.push_str(&close.repeat(depth));
        if let Nest::UnderField = nest {
            s.push('}');
        }
    }
    s
}

/// A type's own first field (the one `UnderField` nests under), if any.
fn own_field(r: &Req) -> Option<&'static str> {
    r.fields.first().and_then(|f| f.first()).copied()
}

fn is_recursion_limit(e: &serde_json::Error) -> bool {
    e.to_string().contains("recursion limit")
}

/// Whether `r` must refuse `nest` built under `key`: when the document is
/// cut off, when it is not an object (`Arrays`, `Mixed`), when a field of
/// the type holds the nesting (`UnderField` with one of its fields: every
/// first field is a scalar, bytes or a repeated field, none accepts an
/// array of arrays), and a recursive TxnRequest past the limit. Objects
/// nested under one key are not asserted: a type that does not know the
/// key, or whose field under it is a message that does not, skips the
/// value (see `deep_nesting_under_unknown_fields_is_skipped`).
fn must_refuse(r: &Req, nest: Nest, key: &str, closed: bool) -> bool {
    !closed
        || match nest {
            Nest::Arrays | Nest::Mixed => true,
            Nest::Objects => false,
            Nest::Txn => r.name == "TxnRequest",
            Nest::UnderField => own_field(r) == Some(key),
        }
}

/// Decodes a deep document as `r`: never a panic or an overflow, refused
/// where [`must_refuse`] says so, and a deep TxnRequest refused for its
/// depth.
fn decode_deep(r: &Req, nest: Nest, depth: usize, key: &str, closed: bool) -> Result<(), String> {
    let body = nested(nest, depth, key, closed);
    let accepted = (r.check)(body.as_bytes())?;
    if accepted && must_refuse(r, nest, key, closed) {
        return Err(format!("{} accepted {nest:?} x{depth} under {key:?} (closed: {closed})", r.name));
    }
    if let (Nest::Txn, true, "TxnRequest") = (nest, closed, r.name) {
        let e = serde_json::from_str::<pb::TxnRequest>(&body).expect_err("refused above");
        if !is_recursion_limit(&e) {
            return Err(format!("a txn nested {depth} deep is refused, but not for its depth: {e}"));
        }
    }
    Ok(())
}

const NESTS: [Nest; 5] = [Nest::Arrays, Nest::Objects, Nest::Mixed, Nest::Txn, Nest::UnderField];

#[test]
fn ten_thousand_nested_levels_are_refused_without_overflow() {
    for r in REQUESTS {
        for nest in NESTS {
            for closed in [true, false] {
                let key = own_field(r).unwrap_or("key");
                decode_deep(r, nest, 10_000, key, closed).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Nesting past serde_json's limit of 128 levels, in every shape, for
    /// every type, under its own field or another: no panic, no stack
    /// overflow, and refused where the type's fields say it must be.
    #[test]
    fn deep_nesting_is_refused(
        i in 0..REQUESTS.len(),
        nest in prop::sample::select(NESTS.to_vec()),
        depth in prop_oneof![129usize..200, 200usize..=20_000],
        closed in any::<bool>(),
        key in prop_oneof![Just(None), "[a-z_]{1,8}".prop_map(Some)],
    ) {
        let r = &REQUESTS[i];
        let key = key.as_deref().or(own_field(r)).unwrap_or("key");
        decode_deep(r, nest, depth, key, closed).map_err(TestCaseError::fail)?;
    }
}

/// The deepest TxnRequest nesting serde_json allows decodes in a debug
/// build on a test thread's stack (the gateway decodes on tokio's workers,
/// whose stacks are the same size), and one level more is refused.
#[test]
fn deepest_accepted_txn_nesting_fits_the_stack() {
    let mut deepest = None;
    for depth in 0..100 {
        match serde_json::from_str::<pb::TxnRequest>(&nested(Nest::Txn, depth, "", true)) {
            Ok(mut t) => {
                // It is what was sent: `depth` levels of txn.
                for _ in 0..depth {
                    let op = t.success.pop().expect("one op");
                    match op.request {
                        Some(pb::request_op::Request::RequestTxn(inner)) => t = inner,
                        other => panic!("unexpected op {other:?}"),
                    }
                }
                assert_eq!(t, pb::TxnRequest::default());
                deepest = Some(depth);
            }
            Err(e) => {
                assert!(is_recursion_limit(&e), "depth {depth}: {e}");
                break;
            }
        }
    }
    let deepest = deepest.expect("a txn decodes");
    assert!((40..100).contains(&deepest), "deepest txn nesting {deepest}");
}

/// serde_json skips the value of an unknown field iteratively (no
/// recursion, no depth limit: one byte of state per level), so nesting
/// under a field no request has neither overflows the stack nor is
/// refused. Recorded here so a change in either direction is noticed.
#[test]
fn deep_nesting_under_unknown_fields_is_skipped() {
    for closed in [true, false] {
        let body = nested(Nest::UnderField, 100_000, "no_such_field", closed);
        for r in REQUESTS {
            let accepted = (r.check)(body.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", r.name));
            assert_eq!(accepted, closed, "{}", r.name);
        }
    }
}

// ---- the streaming routes' decoding ---------------------------------------------

/// What the streaming routes' body decoder yields (gateway.rs's
/// `json_requests`, which lives in the server binary): the requests decoded
/// before the stream ended or failed, and its error.
struct Streamed<T> {
    items: Vec<T>,
    error: Option<String>,
}

/// A model of gateway.rs's `json_requests` loop over the same serde_json
/// calls: skip whitespace; try to decode one request from the buffer; a
/// complete one is consumed, an EOF error waits for more bytes, any other
/// error ends the stream; a buffer past `limit` ends it; at the end of the
/// body, anything but whitespace left is an error.
fn stream_model<T: DeserializeOwned>(chunks: &[&[u8]], limit: usize) -> Streamed<T> {
    let mut buf: Vec<u8> = Vec::new();
    let mut items = Vec::new();
    let mut chunks = chunks.iter();
    loop {
        let start = buf.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(buf.len());
        buf.drain(..start);
        if !buf.is_empty() {
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<T>();
            match it.next() {
                Some(Ok(v)) => {
                    let used = it.byte_offset();
                    assert!(used > 0 && used <= buf.len(), "consumed {used} of {} bytes", buf.len());
                    buf.drain(..used);
                    items.push(v);
                    continue;
                }
                Some(Err(e)) if e.is_eof() => {}
                Some(Err(e)) => return Streamed { items, error: Some(e.to_string()) },
                None => {}
            }
        }
        if buf.len() > limit {
            return Streamed { items, error: Some("etcdserver: request is too large".into()) };
        }
        match chunks.next() {
            Some(c) => buf.extend_from_slice(c),
            None => {
                let error = buf.iter().any(|b| !b.is_ascii_whitespace()).then(|| "unexpected end of JSON input".into());
                return Streamed { items, error };
            }
        }
    }
}

fn split<'a>(wire: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
    at.push(0);
    at.push(wire.len());
    at.sort_unstable();
    at.windows(2).map(|w| &wire[w[0]..w[1]]).collect()
}

fn arb_whitespace() -> impl Strategy<Value = String> {
    "[ \t\r\n]{0,3}"
}

proptest! {
    #![proptest_config(config(1024))]

    /// A stream of valid watch requests, with or without whitespace
    /// between them, split anywhere: exactly those requests, no error.
    #[test]
    fn watch_stream_decodes_every_request(
        reqs in prop::collection::vec((arb_watch(), arb_whitespace()), 0..8),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let wire: String = reqs.iter().map(|(r, ws)| format!("{}{ws}", to_json(r))).collect();
        let out = stream_model::<pb::WatchRequest>(&split(wire.as_bytes(), &cuts), 3 << 20);
        prop_assert!(out.error.is_none(), "{:?}", out.error);
        prop_assert_eq!(out.items, reqs.into_iter().map(|(r, _)| r).collect::<Vec<_>>());
    }

    /// The same for keep-alives, one byte at a time.
    #[test]
    fn keep_alive_stream_decodes_every_request(
        ids in prop::collection::vec((any::<i64>(), arb_whitespace()), 0..16),
    ) {
        let wire: String = ids.iter().map(|(id, ws)| format!("{}{ws}", to_json(&pb::LeaseKeepAliveRequest { id: *id }))).collect();
        let bytes: Vec<&[u8]> = wire.as_bytes().chunks(1).collect();
        let out = stream_model::<pb::LeaseKeepAliveRequest>(&bytes, 64 << 10);
        prop_assert!(out.error.is_none(), "{:?}", out.error);
        prop_assert_eq!(out.items.iter().map(|r| r.id).collect::<Vec<_>>(), ids.into_iter().map(|(id, _)| id).collect::<Vec<_>>());
    }

    /// Arbitrary bodies, in arbitrary pieces, through the streaming
    /// decoder of both streaming routes: it ends (with or without an
    /// error), never panics, and never holds more than its limit.
    #[test]
    fn arbitrary_streams_never_panic(
        body in prop_oneof![arb_bytes(4096), arb_token_soup(), arb_damaged_body(), arb_valid_body().prop_map(String::into_bytes)],
        cuts in prop::collection::vec(any::<Index>(), 0..16),
        limit in prop_oneof![Just(64usize << 10), 1usize..256],
    ) {
        let chunks = split(&body, &cuts);
        let _ = stream_model::<pb::WatchRequest>(&chunks, limit);
        let _ = stream_model::<pb::LeaseKeepAliveRequest>(&chunks, limit);
    }
}
