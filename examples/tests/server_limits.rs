//! The client listener's limits through a real `raft-kv-server` process on
//! loopback: HTTP/2 streams per connection (`--max-concurrent-streams`),
//! connections (`--max-client-connections`), the HTTP/1.1 header read time
//! (`--http1-header-read-timeout`), the decoded header list
//! (`--max-header-list-bytes`) and range responses (`--max-response-bytes`).
//! Every wait is bounded; the waits that show something is *not* served are
//! short and fixed, never a measure of speed.

mod common;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use examples::services::kv_client::KvClient;
use examples::services::watch_client::WatchClient;
use raft_kv::pb::etcdserverpb::{watch_request, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

// ---- a raw HTTP/2 client -----------------------------------------------------

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;
const REFUSED_STREAM: u32 = 0x7;

/// One frame: type, flags, stream id, payload.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// An HTTP/2 connection driven frame by frame, so the test can do what a
/// well-behaved client (which honours the server's settings) never does.
struct RawH2 {
    sock: TcpStream,
    encoder: fluke_hpack::Encoder<'static>,
    authority: String,
    /// The server's SETTINGS, by identifier.
    settings: HashMap<u16, u32>,
}

impl RawH2 {
    /// Connects, sends the preface and empty SETTINGS, reads the server's
    /// SETTINGS and acknowledges them.
    fn connect(addr: &str) -> RawH2 {
        let sock = TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(5)).expect("connect");
        sock.set_write_timeout(Some(Duration::from_secs(10))).expect("write timeout");
        let mut c =
            RawH2 { sock, encoder: fluke_hpack::Encoder::new(), authority: addr.to_string(), settings: HashMap::new() };
        c.write_frame(SETTINGS, 0, 0, &[]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let f = c.read_frame(deadline).expect("the server's SETTINGS");
        assert_eq!((f.kind, f.flags, f.stream), (SETTINGS, 0, 0), "the server's first frame is its SETTINGS");
        for s in f.payload.chunks(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            c.settings.insert(id, u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
        }
        c.write_frame(SETTINGS, ACK, 0, &[]);
        c
    }

    fn write_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len();
        let mut out = Vec::with_capacity(9 + len);
        if kind == SETTINGS && flags == 0 && stream == 0 && payload.is_empty() {
            out.extend_from_slice(PREFACE);
        }
        out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        self.sock.write_all(&out).expect("write frame");
    }

    /// Opens `stream` as a gRPC call to `path` with `extra` headers; the
    /// call's body stays open (no END_STREAM). Header blocks larger than a
    /// frame go out as HEADERS + CONTINUATION.
    fn open(&mut self, stream: u32, path: &str, extra: &[(&str, &[u8])]) {
        let mut headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.as_bytes()),
            (b":authority", self.authority.as_bytes()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ];
        headers.extend(extra.iter().map(|(n, v)| (n.as_bytes(), *v)));
        let block = self.encoder.encode(headers);
        let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let kind = if i == 0 { HEADERS } else { CONTINUATION };
            let flags = if i + 1 == chunks.len() { END_HEADERS } else { 0 };
            self.write_frame(kind, flags, stream, chunk);
        }
    }

    /// The next frame, or `None` when the connection ends (closed or reset)
    /// or nothing arrives before `deadline`.
    fn read_frame(&mut self, deadline: Instant) -> Option<Frame> {
        let mut head = [0u8; 9];
        self.read_exact_by(&mut head, deadline)?;
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        self.read_exact_by(&mut payload, deadline)?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some(Frame { kind: head[3], flags: head[4], stream, payload })
    }

    fn read_exact_by(&mut self, buf: &mut [u8], deadline: Instant) -> Option<()> {
        let mut got = 0;
        while got < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).expect("read timeout");
            match self.sock.read(&mut buf[got..]) {
                Ok(0) | Err(_) => return None,
                Ok(n) => got += n,
            }
        }
        Some(())
    }

    /// Reads frames until one matches `want`; `None` if the connection ends
    /// or `deadline` passes first. Every frame read is passed to `seen`.
    fn until(&mut self, deadline: Instant, seen: &mut Vec<Frame>, want: impl Fn(&Frame) -> bool) -> Option<usize> {
        loop {
            let f = self.read_frame(deadline)?;
            let hit = want(&f);
            seen.push(f);
            if hit {
                return Some(seen.len() - 1);
            }
        }
    }
}

// ---- helpers ---------------------------------------------------------------

/// A multi-threaded tokio runtime for the test's gRPC clients.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// A watch on one key, opened on `channel` and waiting for its `created`
/// response; the returned sender keeps the stream open (dropping both ends
/// it).
async fn watch(
    channel: tonic::transport::Channel,
    key: &str,
) -> (mpsc::Sender<WatchRequest>, tonic::Streaming<raft_kv::pb::etcdserverpb::WatchResponse>) {
    let (tx, rx) = mpsc::channel(2);
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.as_bytes().to_vec().into(),
            ..Default::default()
        })),
    };
    tx.send(create).await.expect("request channel");
    let mut responses = WatchClient::new(channel).watch(ReceiverStream::new(rx)).await.expect("watch").into_inner();
    let created = responses.message().await.expect("watch stream").expect("a created response");
    assert!(created.created, "{created:?}");
    (tx, responses)
}

// ---- HTTP/2: streams per connection, frame size, header list ---------------------

/// With `--max-concurrent-streams 4` the server advertises 4 and refuses a
/// fifth stream a client opens anyway (REFUSED_STREAM, as h2 does); a
/// well-behaved client's fifth watch on one connection waits until one of
/// the four ends. The server also states the frame size (16 KiB, etcd's)
/// and the header-list limit, here set through `ETCD_MAX_HEADER_LIST_BYTES`,
/// and a request over that limit is refused while one under it is served.
#[test]
fn http2_streams_frames_and_header_lists_are_bounded() {
    let c = Cluster::start_with_env(1, &["--max-concurrent-streams", "4"], &[("ETCD_MAX_HEADER_LIST_BYTES", "32768")]);
    let addr = c.members[0].client_addr();

    // What the server advertises.
    let mut h2 = RawH2::connect(&addr);
    assert_eq!(h2.settings.get(&SETTINGS_MAX_CONCURRENT_STREAMS), Some(&4), "{:?}", h2.settings);
    assert_eq!(h2.settings.get(&SETTINGS_MAX_FRAME_SIZE), Some(&16_384), "{:?}", h2.settings);
    assert_eq!(h2.settings.get(&SETTINGS_MAX_HEADER_LIST_SIZE), Some(&32_768), "{:?}", h2.settings);

    // Five watch streams opened at once on one connection: the fifth
    // (stream 9) is refused, the first four are not.
    for stream in [1, 3, 5, 7, 9] {
        h2.open(stream, "/etcdserverpb.Watch/Watch", &[]);
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let rst = h2.until(deadline, &mut seen, |f| f.kind == RST_STREAM && f.stream == 9);
    let rst = &seen[rst.expect("the fifth stream is reset")];
    assert_eq!(u32::from_be_bytes(rst.payload[..4].try_into().expect("code")), REFUSED_STREAM);
    assert!(
        !seen.iter().any(|f| f.kind == RST_STREAM && f.stream < 9 || f.kind == GOAWAY),
        "only the fifth stream is refused: {:?}",
        seen.iter().map(|f| (f.kind, f.stream)).collect::<Vec<_>>()
    );
    drop(h2);

    // Header lists: 20 000 bytes of header are served, 40 000 refused —
    // as a connection's first request (the `:authority` fix-up closes the
    // connection) or after a first one (h2 answers 431).
    let status = |first_pad: Option<usize>, pad: usize| -> Option<String> {
        let mut h2 = RawH2::connect(&addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Every header block the server sends, decoded in order (HPACK
        // state is per connection): the `:status` of each.
        let mut decoder = fluke_hpack::Decoder::new();
        let mut call = |h2: &mut RawH2, stream: u32, pad: usize| -> Option<String> {
            let value = vec![b'p'; pad];
            h2.open(stream, "/etcdserverpb.Maintenance/Status", &[("x-pad", &value)]);
            h2.write_frame(DATA, END_STREAM, stream, &[0, 0, 0, 0, 0]); // an empty StatusRequest
            let mut seen = Vec::new();
            let mut status = None;
            // Until the call ends (END_STREAM from the server) or the
            // connection does.
            let done =
                h2.until(deadline, &mut seen, |f| f.stream == stream && f.flags & END_STREAM != 0 || f.kind == GOAWAY);
            for f in seen.iter().filter(|f| f.kind == HEADERS) {
                let headers = decoder.decode(&f.payload).expect("response headers");
                if let Some((_, v)) = headers.into_iter().find(|(n, _)| n == b":status") {
                    status = Some(String::from_utf8_lossy(&v).to_string());
                }
            }
            done.and(status)
        };
        let mut stream = 1;
        if let Some(first) = first_pad {
            assert_eq!(call(&mut h2, stream, first).as_deref(), Some("200"), "a first request under the limit");
            stream += 2;
        }
        call(&mut h2, stream, pad)
    };
    assert_eq!(status(None, 20_000).as_deref(), Some("200"), "a first request under the header-list limit");
    assert_eq!(status(Some(100), 20_000).as_deref(), Some("200"), "a second request under the header-list limit");
    for first in [None, Some(100)] {
        let answer = status(first, 40_000);
        assert!(matches!(answer.as_deref(), None | Some("431")), "over the limit after {first:?}: {answer:?}");
    }

    // A well-behaved client: the fifth watch on one connection waits.
    let rt = runtime();
    let url = c.members[0].client_url.clone();
    rt.block_on(async move {
        let channel = connect(&url).await;
        let mut open = Vec::new();
        for i in 0..4 {
            open.push(
                within(Duration::from_secs(10), "a watch under the limit", watch(channel.clone(), &format!("k{i}")))
                    .await,
            );
        }
        let mut fifth = tokio::spawn(watch(channel.clone(), "k4"));
        assert!(
            tokio::time::timeout(Duration::from_secs(2), &mut fifth).await.is_err(),
            "a fifth watch started while four streams were open"
        );
        drop(open.pop());
        let (_tx, _responses) = within(Duration::from_secs(10), "the fifth watch once one ended", fifth)
            .await
            .expect("the fifth watch task");
    });
}

// ---- connections --------------------------------------------------------------

/// A `GET /health` sent on a new connection; the connection, for reading
/// the answer.
fn health_request(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(5)).expect("connect");
    write!(s, "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("request");
    s
}

/// Asserts no answer arrives on `s` within two seconds.
fn not_served(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) && answer.is_empty() => {}
        other => panic!("{what} was served: {other:?} {:?}", String::from_utf8_lossy(&answer)),
    }
}

/// Asserts `s` is answered (200, healthy) within ten seconds.
fn served(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("\"health\":\"true\""), "{what}: {text}");
}

/// A long-lived HTTP/1.1 watch (one connection), once created.
fn http_watch(addr: &str, key: &str) -> HttpStream {
    let mut s = HttpStream::open(addr, "/v3/watch");
    s.send(&json!({"create_request": {"key": b64(key)}}).to_string());
    let first = s.next(Instant::now() + Duration::from_secs(10)).expect("watch created");
    assert_eq!(first["result"]["created"], true, "{first}");
    s
}

/// With `--max-client-connections 2`, a third connection is not served
/// while two are open, and is served once one closes — whether the one
/// that closes is an idle HTTP/2 connection or an HTTP/1.1 watch whose
/// client went away (its slot is freed then, not at the watch's next
/// event).
#[test]
fn a_connection_past_the_limit_waits_until_one_closes() {
    let c = Cluster::start_with(1, &["--max-client-connections", "2"]);
    let addr = c.members[0].client_addr();
    let h2 = RawH2::connect(&addr);
    let watch = http_watch(&addr, "held/1");

    let mut third = health_request(&addr);
    not_served(&mut third, "a third connection");
    drop(watch);
    served(&mut third, "the third connection once an HTTP/1.1 watch closed");

    let _watch = http_watch(&addr, "held/2");
    let mut fourth = health_request(&addr);
    not_served(&mut fourth, "a third connection, again");
    drop(h2);
    served(&mut fourth, "the third connection once an HTTP/2 connection closed");
}

// ---- HTTP/1.1 header read time -------------------------------------------------

/// Sends `first` on a new connection and waits (at most 8 s) until the
/// server closes it; returns how long that took and what arrived.
fn cut_after(addr: &str, first: &[u8]) -> (Duration, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(5)).expect("connect");
    s.write_all(first).expect("first bytes");
    let sent = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(8))).expect("timeout");
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("still connected {:?} after sending {first:?}: {e}", sent.elapsed()),
    }
    (sent.elapsed(), got)
}

/// With `--http1-header-read-timeout 1s`, a client that sends half a
/// request line and stalls is disconnected after about a second (not at
/// once), and so is one that sends nothing or half of HTTP/2's preface
/// (before hyper knows the protocol); a request whose head arrives in two
/// parts within the time is served.
#[test]
fn a_stalled_request_head_is_cut_at_the_header_read_timeout() {
    let c = Cluster::start_with(1, &["--http1-header-read-timeout", "1s"]);
    let addr = c.members[0].client_addr();

    for first in [&b"GET /hea"[..], b"", b"PRI * HTTP/2.0\r\n"] {
        let (took, got) = cut_after(&addr, first);
        assert!(took >= Duration::from_millis(900), "{first:?}: cut after {took:?}, before the header read timeout");
        assert!(!String::from_utf8_lossy(&got).contains(" 200 "), "{:?}", String::from_utf8_lossy(&got));
    }

    let mut s = TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(5)).expect("connect");
    s.write_all(b"GET /hea").expect("first part");
    std::thread::sleep(Duration::from_millis(300));
    write!(s, "lth HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("second part");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // An HTTP/2 connection that has shown its protocol may stay idle past
    // the timeout (a gRPC channel waiting for calls).
    let mut h2 = RawH2::connect(&addr);
    std::thread::sleep(Duration::from_millis(1500));
    h2.open(1, "/etcdserverpb.Maintenance/Status", &[]);
    h2.write_frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]);
    let mut seen = Vec::new();
    let answer = h2.until(Instant::now() + Duration::from_secs(10), &mut seen, |f| f.stream == 1);
    assert_eq!(answer.map(|i| seen[i].kind), Some(HEADERS), "an idle HTTP/2 connection was cut");
}

// ---- responses ------------------------------------------------------------------

/// With `--max-response-bytes 4096`, a range over 10 KB of values fails
/// with ResourceExhausted and grpc-go's message for a message over its send
/// limit (what etcd 3.5's clients see from etcd), through gRPC, etcdctl 3.5
/// and the JSON gateway; ranges under the limit are served.
#[test]
fn a_range_over_max_response_bytes_gets_grpcs_send_limit_error() {
    let c = Cluster::start_with(1, &["--max-response-bytes", "4096"]);
    let url = c.members[0].client_url.clone();
    let rt = runtime();
    rt.block_on(async {
        let mut kv = KvClient::new(connect(&url).await);
        for i in 0..10 {
            let put = PutRequest {
                key: format!("/big/{i}").into_bytes().into(),
                value: vec![b'v'; 1000].into(),
                ..Default::default()
            };
            kv.put(put).await.expect("put");
        }
        let all =
            RangeRequest { key: b"/big/".to_vec().into(), range_end: b"/big0".to_vec().into(), ..Default::default() };
        let err = kv.range(all.clone()).await.expect_err("a range over the limit");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
        assert_send_limit_message(err.message(), 4096);
        // Under the limit: one key, a limited range, a count.
        let one =
            kv.range(RangeRequest { key: b"/big/1".to_vec().into(), ..Default::default() }).await.expect("one key");
        assert_eq!(one.into_inner().kvs.len(), 1);
        let three = kv.range(RangeRequest { limit: 3, ..all.clone() }).await.expect("a limited range").into_inner();
        assert_eq!((three.kvs.len(), three.count, three.more), (3, 10, true));
        let count = kv.range(RangeRequest { count_only: true, ..all }).await.expect("a count").into_inner();
        assert_eq!(count.count, 10);
    });

    // etcdctl 3.5 shows the same code and message.
    let out = etcdctl35_raw(&url, &["get", "/big/", "--prefix"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr.lines().find_map(|l| l.strip_prefix("Error: ")).unwrap_or_else(|| panic!("{stderr}"));
    let desc = error.strip_prefix("rpc error: code = ResourceExhausted desc = ").unwrap_or_else(|| panic!("{stderr}"));
    assert_send_limit_message(desc, 4096);
    assert_eq!(
        etcdctl35_raw(&url, &["get", "/big/1", "--print-value-only"], None).stdout,
        [&[b'v'; 1000][..], b"\n"].concat()
    );

    // The gateway: grpc-gateway's 429 with code 8 and the same message.
    let (code, body) = http(
        &c.members[0].client_addr(),
        "POST",
        "/v3/kv/range",
        &json!({"key": b64("/big/"), "range_end": b64("/big0")}).to_string(),
    )
    .expect("gateway range");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((code, &v["code"]), (429, &json!(8)), "{body}");
    assert_send_limit_message(v["message"].as_str().expect("message"), 4096);
}

/// Asserts `m` is exactly grpc-go's "grpc: trying to send message larger
/// than max (N vs. MAX)" with N > MAX.
fn assert_send_limit_message(m: &str, max: usize) {
    let inner = m
        .strip_prefix("grpc: trying to send message larger than max (")
        .and_then(|r| r.strip_suffix(&format!(" vs. {max})")))
        .unwrap_or_else(|| panic!("not grpc-go's message: {m:?}"));
    let n: usize = inner.parse().unwrap_or_else(|_| panic!("not grpc-go's message: {m:?}"));
    assert!(n > max, "{m}");
}
