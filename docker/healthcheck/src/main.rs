//! `raft-kv-healthcheck [URL]`: GET an `http://IP:PORT/PATH` URL and exit 0 if
//! the answer is `200`, 1 otherwise. Built for the Docker `HEALTHCHECK` of the
//! `FROM scratch` image, where there is no shell and no curl.
//!
//! The URL defaults to `$RAFT_KV_HEALTHCHECK_URL`, then to
//! `http://127.0.0.1:2379/health`. Only plain HTTP and numeric addresses
//! (or `localhost`) are supported: the probe runs inside the container it checks.
//!
//! ```text
//! raft-kv-healthcheck http://127.0.0.1:2379/health
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// Default probe target: the server's client port on loopback.
const DEFAULT_URL: &str = "http://127.0.0.1:2379/health";
/// Bound on connect, write and read, each; Docker's own timeout is the backstop.
const TIMEOUT: Duration = Duration::from_secs(3);

/// A parsed `http://host:port/path` URL.
#[derive(Debug, PartialEq)]
struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
}

/// Parse `http://HOST[:PORT][/PATH]` where HOST is an IP literal or `localhost`.
fn parse(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // `[::1]:2379` or `127.0.0.1:2379` or `localhost`.
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or_else(|| format!("{url}: unclosed '['"))?;
        (h, p.strip_prefix(':').unwrap_or("80"))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, "80"),
        }
    };
    let port: u16 = port.parse().map_err(|_| format!("{url}: bad port {port:?}"))?;
    // No resolver is needed (nor available in scratch) for these.
    let ip = if host == "localhost" { "127.0.0.1" } else { host };
    let ip = ip.parse().map_err(|_| format!("{url}: host must be an IP address or localhost"))?;
    Ok(Target { addr: SocketAddr::new(ip, port), host: authority.to_string(), path: path.to_string() })
}

/// Send one `GET` and return the status code of the answer.
fn probe(t: &Target) -> Result<u16, String> {
    let mut s = TcpStream::connect_timeout(&t.addr, TIMEOUT).map_err(|e| format!("connect {}: {e}", t.addr))?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let req = format!("GET {} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n", t.path, t.host);
    s.write_all(req.as_bytes()).map_err(|e| format!("write: {e}"))?;
    // The status line is all we need; read a bounded prefix.
    let mut buf = [0u8; 512];
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("read: {e}")),
        }
        if buf[..n].contains(&b'\n') {
            break;
        }
    }
    status(&buf[..n])
}

/// The status code of an HTTP response's first line (`HTTP/1.1 200 OK`).
fn status(head: &[u8]) -> Result<u16, String> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => {
            code.parse().map_err(|_| format!("bad status line {:?}", line.trim_end()))
        }
        _ => Err(format!("not an HTTP response: {:?}", line.trim_end())),
    }
}

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("RAFT_KV_HEALTHCHECK_URL").ok())
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let result = parse(&url).and_then(|t| probe(&t));
    match result {
        Ok(200) => ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("{url}: HTTP {code}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = parse("http://127.0.0.1:2379/health").expect("valid");
        assert_eq!(t.addr, "127.0.0.1:2379".parse().expect("addr"));
        assert_eq!(t.path, "/health");
        let t = parse("http://localhost:8080").expect("valid");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(t.path, "/");
        let t = parse("http://[::1]:2379/health").expect("valid");
        assert_eq!(t.addr, "[::1]:2379".parse().expect("addr"));
        assert!(parse("https://127.0.0.1/").is_err());
        assert!(parse("http://raft-kv-00:2379/").is_err());
        assert!(parse("http://127.0.0.1:99999/").is_err());
    }

    #[test]
    fn reads_status() {
        assert_eq!(status(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(status(b"HTTP/1.0 503 Service Unavailable\r\nx"), Ok(503));
        assert!(status(b"garbage").is_err());
        assert!(status(b"").is_err());
    }

    #[test]
    fn probes_a_local_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            let mut req = [0u8; 256];
            let _ = c.read(&mut req).expect("read");
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").expect("write");
        });
        let t = parse(&format!("http://{addr}/health")).expect("valid");
        assert_eq!(probe(&t), Ok(200));
        server.join().expect("server thread");
    }
}
