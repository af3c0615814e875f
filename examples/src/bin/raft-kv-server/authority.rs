//! Makes HTTP/2 requests whose `:authority` carries a URL scheme acceptable.
//!
//! etcdctl 3.4 dials its per-endpoint maintenance calls (`endpoint status`,
//! `endpoint hashkv`, `move-leader`, `defrag`) with the endpoint string as
//! the `:authority` pseudo-header, so `--endpoints http://host:port` sends
//! `http://host:port`. That is not an authority, and the HTTP/2 layer under
//! tonic/hyper (h2) resets such streams as malformed before any handler sees
//! them (etcd's own server does not check it).
//!
//! [`AuthorityFix`] wraps each accepted connection and rewrites the inbound
//! direction only: it recognises the HTTP/2 connection preface (anything
//! else, e.g. HTTP/1.1, passes through untouched), then reassembles every
//! header block (HEADERS + CONTINUATION frames), decodes it with an HPACK
//! decoder that tracks the client's compression state, strips a scheme from
//! `:authority`, and re-encodes the block with an encoder of its own whose
//! state the server's decoder mirrors. Every other frame passes unchanged.
//! Malformed input closes the connection, as h2 itself would.
//!
//! Until a connection has shown its protocol (the first bytes of HTTP/1.1,
//! or HTTP/2's preface and first frame) it must do so within a deadline:
//! hyper's own header read timeout starts only once hyper knows the
//! protocol, so without it a client that sends nothing, or half the
//! preface, would hold its connection slot for ever.
//!
//! A client dials one connection per authority, so the first header block
//! decides: if its `:authority` is already clean (every client but
//! etcdctl's per-endpoint calls), that block and the rest of the connection
//! pass through untouched. Decoding and re-encoding every request cost about
//! a quarter of the server's gRPC CPU under load (perf, issue 7).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface of HTTP/2.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame payload we emit or accept: HTTP/2's default
/// SETTINGS_MAX_FRAME_SIZE, which the server advertises and never raises, so
/// a client may not send more (RFC 9113 4.2). A longer frame is refused from
/// its header, before its payload is buffered.
pub const MAX_FRAME: usize = 16_384;
/// Largest header block we reassemble before giving up on the connection.
const MAX_BLOCK: usize = 1 << 20;
/// The default bound on a decoded header list, `--max-header-list-bytes`
/// (RFC 7541 sizes: name and value plus 32 per field): the same bound the
/// server's HTTP/2 layer advertises. A small block can reference one large
/// literal thousands of times; the decoded size, not the block's, is what
/// is bounded.
pub const DEFAULT_MAX_HEADER_LIST: u32 = 256 << 10;
/// The HPACK dynamic table a client may ask for: HTTP/2's default
/// SETTINGS_HEADER_TABLE_SIZE, which the server does not raise.
const MAX_TABLE: usize = 4096;

enum Mode {
    /// Collecting the first bytes to see whether this is HTTP/2.
    Sniff,
    /// Not HTTP/2 (or done sniffing and passing through).
    Passthrough,
    /// HTTP/2: frames are parsed and header blocks rewritten.
    Http2,
}

/// A header block being reassembled: stream id, flags of its HEADERS frame,
/// and the fragments so far.
struct Pending {
    stream: u32,
    flags: u8,
    block: Vec<u8>,
    /// The block's frames as received, for passing them through.
    raw: Vec<u8>,
}

/// A connection whose inbound HTTP/2 header blocks get a clean `:authority`.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from `inner` and not yet processed.
    input: Vec<u8>,
    /// Processed bytes waiting for the reader.
    output: Vec<u8>,
    out_pos: usize,
    pending: Option<Pending>,
    /// Whether the first header block showed this connection needs rewriting.
    rewriting: bool,
    decoder: fluke_hpack::Decoder<'static>,
    encoder: fluke_hpack::Encoder<'static>,
    /// Largest decoded header list accepted.
    max_header_list: usize,
    /// Whether a whole HTTP/2 frame has arrived after the preface.
    framed: bool,
    /// How long the client has to show its protocol.
    handshake_timeout: Duration,
    /// The running deadline, started at the first read.
    handshake_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    /// Wraps an accepted connection whose decoded header lists may hold at
    /// most `max_header_list` bytes, and which must show its protocol
    /// within `handshake_timeout` of its first read.
    pub fn new(inner: S, max_header_list: usize, handshake_timeout: Duration) -> Self {
        AuthorityFix {
            inner,
            mode: Mode::Sniff,
            input: Vec::new(),
            output: Vec::new(),
            out_pos: 0,
            pending: None,
            rewriting: false,
            decoder: {
                let mut d = fluke_hpack::Decoder::new();
                d.set_max_allowed_table_size(MAX_TABLE);
                d
            },
            encoder: fluke_hpack::Encoder::new(),
            max_header_list,
            framed: false,
            handshake_timeout,
            handshake_deadline: None,
            eof: false,
        }
    }

    /// Moves what can be processed from `input` to `output`.
    fn process(&mut self) -> io::Result<()> {
        if matches!(self.mode, Mode::Sniff) {
            let n = self.input.len().min(PREFACE.len());
            if self.input[..n] != PREFACE[..n] {
                self.mode = Mode::Passthrough;
            } else if n == PREFACE.len() {
                self.output.extend_from_slice(PREFACE);
                self.input.drain(..PREFACE.len());
                self.mode = Mode::Http2;
            } else if self.eof {
                self.mode = Mode::Passthrough;
            }
        }
        match self.mode {
            Mode::Sniff => Ok(()),
            Mode::Passthrough => {
                self.output.append(&mut self.input);
                Ok(())
            }
            Mode::Http2 => self.frames(),
        }
    }

    /// While the client has not shown its protocol, the deadline for it:
    /// `Pending` until it passes, then a TimedOut error that closes the
    /// connection.
    fn poll_handshake_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let handshaking = match self.mode {
            Mode::Sniff => true,
            Mode::Http2 => !self.framed,
            Mode::Passthrough => false,
        };
        if !handshaking {
            self.handshake_deadline = None;
            return Poll::Pending;
        }
        let timeout = self.handshake_timeout;
        let deadline = self.handshake_deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not show its protocol within the header read timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn frames(&mut self) -> io::Result<()> {
        let mut at = 0;
        while self.input.len() - at >= 9 {
            let h = &self.input[at..at + 9];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            let (kind, flags) = (h[3], h[4]);
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            if len > MAX_FRAME {
                return Err(malformed("frame larger than the advertised maximum"));
            }
            if self.input.len() - at < 9 + len {
                break;
            }
            let payload = at + 9..at + 9 + len;
            match kind {
                HEADERS => {
                    if self.pending.is_some() {
                        return Err(malformed("HEADERS inside a header block"));
                    }
                    let fragment = header_fragment(&self.input[payload], flags)?.to_vec();
                    let raw = self.input[at..at + 9 + len].to_vec();
                    self.pending = Some(Pending { stream, flags, block: fragment, raw });
                }
                CONTINUATION => {
                    let Some(p) = self.pending.as_mut() else { return Err(malformed("stray CONTINUATION")) };
                    if p.stream != stream {
                        return Err(malformed("CONTINUATION on another stream"));
                    }
                    p.block.extend_from_slice(&self.input[payload]);
                    p.raw.extend_from_slice(&self.input[at..at + 9 + len]);
                }
                _ => {
                    if self.pending.is_some() {
                        return Err(malformed("frame inside a header block"));
                    }
                    self.output.extend_from_slice(&self.input[at..at + 9 + len]);
                }
            }
            if matches!(kind, HEADERS | CONTINUATION) {
                let done = flags & END_HEADERS != 0;
                if self.pending.as_ref().is_some_and(|p| p.block.len() > MAX_BLOCK) {
                    return Err(malformed("header block too large"));
                }
                if done {
                    if let Some(p) = self.pending.take() {
                        if !self.rewrite(p)? {
                            // A clean client: the rest passes through as is.
                            self.input.drain(..at + 9 + len);
                            self.mode = Mode::Passthrough;
                            self.output.append(&mut self.input);
                            return Ok(());
                        }
                    }
                }
            }
            at += 9 + len;
            self.framed = true;
        }
        self.input.drain(..at);
        Ok(())
    }

    /// Decodes a whole header block, fixes `:authority`, re-encodes it and
    /// emits it as HEADERS (+ CONTINUATION) frames. For the connection's
    /// first block with a clean `:authority`, emits it unchanged and returns
    /// false: the connection needs no rewriting.
    fn rewrite(&mut self, p: Pending) -> io::Result<bool> {
        let (decoder, max) = (&mut self.decoder, self.max_header_list);
        // Decoded fields are kept only up to `max`; the rest of the
        // block is still decoded (the client's table must stay in step) but
        // referenced, not copied. The decoder can panic on some malformed
        // size updates: contain it.
        let mut decoded: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut size = 0usize;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoder.decode_with_cb(&p.block, |name, value| {
                size = size.saturating_add(name.len() + value.len() + 32);
                if size <= max {
                    decoded.push((name.into_owned(), value.into_owned()));
                }
            })
        }))
        .map_err(|_| malformed("undecodable header block"))?;
        result.map_err(|e| malformed(&format!("header block: {e:?}")))?;
        if size > max {
            return Err(malformed("header list larger than the limit"));
        }
        if !self.rewriting {
            let dirty = decoded.iter().any(|(n, v)| n == b":authority" && clean_authority(v) != *v);
            if !dirty {
                self.output.extend_from_slice(&p.raw);
                return Ok(false);
            }
            self.rewriting = true;
        }
        let headers: Vec<(Vec<u8>, Vec<u8>)> = decoded
            .into_iter()
            .map(|(name, value)| if name == b":authority" { (name, clean_authority(&value)) } else { (name, value) })
            .collect();
        let block = self.encoder.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
        let mut chunks = block.chunks(MAX_FRAME).peekable();
        let mut first = true;
        if block.is_empty() {
            push_frame(&mut self.output, HEADERS, END_HEADERS | (p.flags & END_STREAM), p.stream, &[]);
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let (kind, mut flags) = if first { (HEADERS, p.flags & END_STREAM) } else { (CONTINUATION, 0) };
            if last {
                flags |= END_HEADERS;
            }
            push_frame(&mut self.output, kind, flags, p.stream, chunk);
            first = false;
        }
        Ok(true)
    }
}

/// The header block fragment of a HEADERS frame payload (padding and
/// priority removed).
fn header_fragment(payload: &[u8], flags: u8) -> io::Result<&[u8]> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&n, rest) = p.split_first().ok_or_else(|| malformed("short padded HEADERS"))?;
        pad = usize::from(n);
        p = rest;
    }
    if flags & PRIORITY != 0 {
        p = p.get(5..).ok_or_else(|| malformed("short HEADERS priority"))?;
    }
    if pad > p.len() {
        return Err(malformed("HEADERS padding longer than the frame"));
    }
    Ok(&p[..p.len() - pad])
}

fn push_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// `host:port` from `http://host:port/...`; other values unchanged.
fn clean_authority(v: &[u8]) -> Vec<u8> {
    for scheme in [&b"http://"[..], b"https://", b"unix://", b"unixs://"] {
        if let Some(rest) = v.strip_prefix(scheme) {
            let end = rest.iter().position(|b| *b == b'/').unwrap_or(rest.len());
            return rest[..end].to_vec();
        }
    }
    v.to_vec()
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed HTTP/2 input: {what}"))
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.out_pos < this.output.len() {
                let n = buf.remaining().min(this.output.len() - this.out_pos);
                buf.put_slice(&this.output[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.output.len() {
                    this.output.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::Passthrough) && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return this.poll_handshake_deadline(cx),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        this.eof = true;
                    }
                    this.input.extend_from_slice(rb.filled());
                    this.process()?;
                    if this.eof && this.output.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_frame(&mut v, kind, flags, stream, payload);
        v
    }

    fn run(input: &[u8]) -> io::Result<Vec<u8>> {
        run_with(input, DEFAULT_MAX_HEADER_LIST as usize)
    }

    fn run_with(input: &[u8], max_header_list: usize) -> io::Result<Vec<u8>> {
        let mut f = AuthorityFix::new((), max_header_list, Duration::from_secs(10));
        // Feed byte by byte: frames split anywhere must still work.
        for b in input {
            f.input.push(*b);
            f.process()?;
        }
        Ok(f.output)
    }

    #[test]
    fn authority_scheme_is_stripped_and_other_frames_pass() {
        let mut enc = fluke_hpack::Encoder::new();
        let block = enc.encode(vec![
            (&b":method"[..], &b"POST"[..]),
            (b":authority", b"http://127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
        ]);
        let (a, b) = block.split_at(block.len() / 2);
        let settings = frame(0x4, 0, 0, &[]);
        let mut input = PREFACE.to_vec();
        input.extend(&settings);
        input.extend(frame(HEADERS, PADDED, 1, &[&[2u8][..], a, &[0, 0]].concat()));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, b));
        let out = run(&input).unwrap();
        assert!(out.starts_with(&[PREFACE, &settings[..]].concat()));
        let rest = &out[PREFACE.len() + settings.len()..];
        assert_eq!((rest[3], rest[4]), (HEADERS, END_HEADERS));
        let mut dec = fluke_hpack::Decoder::new();
        let headers = dec.decode(&rest[9..]).unwrap();
        assert_eq!(headers[1], (b":authority".to_vec(), b"127.0.0.1:2379".to_vec()));
        assert_eq!(headers[2].1, b"/etcdserverpb.Maintenance/Status".to_vec());
    }

    #[test]
    fn a_clean_first_block_makes_the_connection_pass_through() {
        let mut enc = fluke_hpack::Encoder::new();
        let first = enc.encode(vec![(&b":method"[..], &b"POST"[..]), (b":authority", b"127.0.0.1:2379")]);
        // Not even a header block is decoded after the first: a later one,
        // dirty or undecodable, passes through byte for byte.
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        input.extend(frame(0x0, END_STREAM, 1, b"body"));
        input.extend(frame(HEADERS, END_HEADERS, 3, &[0xff, 0xff, 0xff, 0xff, 0xff]));
        assert_eq!(run(&input).unwrap(), input);
    }

    #[test]
    fn http1_passes_through_and_garbage_is_refused() {
        let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(run(req).unwrap(), req.to_vec());
        let mut bad = PREFACE.to_vec();
        bad.extend(frame(CONTINUATION, END_HEADERS, 1, b"x"));
        assert!(run(&bad).is_err());
        let mut bad = PREFACE.to_vec();
        bad.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff, 0xff]));
        assert!(run(&bad).is_err());
    }

    /// HPACK's integer with an `n`-bit prefix (RFC 7541 5.1).
    fn hpack_int(first: u8, n: u32, mut v: usize, out: &mut Vec<u8>) {
        let max = (1usize << n) - 1;
        if v < max {
            out.push(first | v as u8);
            return;
        }
        out.push(first | max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
    }

    #[test]
    fn a_small_block_that_decodes_huge_is_refused() {
        // One 2 KiB literal added to the dynamic table, then 4,000 one-byte
        // references to it: a 4 KiB block that decodes to 8 MiB.
        let mut block = Vec::new();
        block.push(0x40); // literal with incremental indexing, new name
        hpack_int(0, 7, 1, &mut block);
        block.push(b'x');
        hpack_int(0, 7, 2048, &mut block);
        block.extend(std::iter::repeat_n(b'v', 2048));
        block.extend(std::iter::repeat_n(0x80 | 62, 4000)); // indexed: the dynamic entry
        let mut input = PREFACE.to_vec();
        for chunk_start in (0..block.len()).step_by(MAX_FRAME) {
            let chunk = &block[chunk_start..(chunk_start + MAX_FRAME).min(block.len())];
            let last = chunk_start + MAX_FRAME >= block.len();
            let (kind, flags) = if chunk_start == 0 { (HEADERS, 0) } else { (CONTINUATION, 0) };
            input.extend(frame(kind, flags | if last { END_HEADERS } else { 0 }, 1, chunk));
        }
        let err = run(&input).expect_err("refused");
        assert!(err.to_string().contains("larger than the limit"), "{err}");
        // A table size update beyond the advertised table is refused too.
        let mut input = PREFACE.to_vec();
        let mut update = Vec::new();
        hpack_int(0x20, 5, 65536, &mut update);
        input.extend(frame(HEADERS, END_HEADERS, 1, &update));
        assert!(run(&input).is_err());
    }

    #[test]
    fn the_header_list_limit_is_the_configured_one() {
        // A 10 KiB header: under the default limit, over a 4 KiB one.
        let mut enc = fluke_hpack::Encoder::new();
        let value = vec![b'v'; 10 << 10];
        let block = enc.encode(vec![(&b":authority"[..], &b"http://127.0.0.1:2379"[..]), (b"x-big", &value[..])]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &block));
        assert!(run(&input).is_ok());
        let Err(err) = run_with(&input, 4 << 10) else { panic!("a 10 KiB header passed a 4 KiB limit") };
        assert!(err.to_string().contains("larger than the limit"), "{err}");
    }

    #[test]
    fn a_frame_over_the_maximum_size_is_refused_from_its_header() {
        // Only the 9-byte header of a 16 MiB DATA frame has arrived: it is
        // refused now, not buffered until its payload is complete.
        let mut input = PREFACE.to_vec();
        input.extend([0xff, 0xff, 0xff, 0x0, 0x0, 0, 0, 0, 1]);
        let Err(err) = run(&input) else { panic!("a 16 MiB frame header passed") };
        assert!(err.to_string().contains("larger than the advertised maximum"), "{err}");
        // A frame of exactly the maximum passes.
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x0, 0, 1, &[0u8; MAX_FRAME]));
        assert_eq!(run(&input).unwrap(), input);
    }

    #[test]
    fn authorities() {
        assert_eq!(clean_authority(b"http://a:1/x"), b"a:1");
        assert_eq!(clean_authority(b"a:1"), b"a:1");
    }
}
